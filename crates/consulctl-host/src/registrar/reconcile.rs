//! What to change on the agent so that its services equal the desired ones.
//!
//! Pure: the desired services (from every container that runs), the agent's services and
//! checks, and the drain state in; the actions out, empty when the agent already matches.
//! Only services this registrar owns (meta `managed-by = consulctl-registrar` and
//! `registrar-node = <node>`) are ever deregistered or put in maintenance: anything else on the
//! agent is not touched.

use std::collections::BTreeMap;
use std::time::Duration;

use consul_api::agent::{AgentService, ServiceRegistration};
use consul_api::HealthCheck;

use super::conventions::DesiredService;

/// The agent's current state (`/v1/agent/services`, `/v1/agent/checks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub services: BTreeMap<String, AgentService>,
    pub checks: BTreeMap<String, HealthCheck>,
}

/// One change on the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Register (or re-register, replacing its checks) a service.
    Register(ServiceRegistration),
    /// Deregister an owned service whose container is gone (or whose drain ended).
    Deregister { id: String, reason: String },
    /// Turn a service's maintenance mode on or off.
    Maintenance {
        id: String,
        enable: bool,
        reason: String,
    },
    /// Set a TTL check's status.
    Ttl {
        check_id: String,
        status: String,
        note: String,
    },
}

/// Services being drained: service ID -> when to deregister (ms on the caller's clock).
pub type Draining = BTreeMap<String, u64>;

/// Options of one reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub node: String,
    /// `Some(grace)`: an owned service whose container is gone goes into maintenance first and
    /// is deregistered `grace` later; `None`: deregistered at once.
    pub drain: Option<Duration>,
    /// Now, on the clock of [`Draining`].
    pub now_ms: u64,
    /// Send every mirrored TTL status even when the agent already has it (to refresh the TTL).
    pub refresh_ttl: bool,
}

/// The actions that make `current` equal `desired`, in this order: registrations,
/// maintenance changes, TTL updates, deregistrations. Updates `draining` (entries added when a
/// drain starts, removed when the service comes back or is deregistered).
pub fn reconcile(
    desired: &[DesiredService],
    current: &Current,
    draining: &mut Draining,
    options: &Options,
) -> Vec<Action> {
    let _ = (desired, current, draining, options);
    todo!()
}
