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

use super::conventions::{
    DesiredService, MANAGED_BY, META_CONTAINER, META_HASH, META_MANAGED_BY, META_NODE,
};
use super::duration::format_duration;

/// The agent's current state (`/v1/agent/services`, `/v1/agent/checks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub services: BTreeMap<String, AgentService>,
    pub checks: BTreeMap<String, HealthCheck>,
}

/// One change on the agent.
// A few actions per pass, short-lived: boxing the registration would only make them harder to
// build and match.
#[allow(clippy::large_enum_variant)]
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
///
/// A desired service whose ID another desired service already has is left out (the first
/// wins). A service in maintenance whose reason is not the desired one gets maintenance off and
/// on again (the agent keeps the first reason otherwise).
pub fn reconcile(
    desired: &[DesiredService],
    current: &Current,
    draining: &mut Draining,
    options: &Options,
) -> Vec<Action> {
    let mut wanted: BTreeMap<&str, &DesiredService> = BTreeMap::new();
    for d in desired {
        wanted.entry(d.registration.id.as_str()).or_insert(d);
    }
    draining.retain(|id, _| {
        current
            .services
            .get(id)
            .is_some_and(|svc| owned(svc, options))
            && !wanted.contains_key(id.as_str())
    });

    let mut registers = Vec::new();
    let mut maintenance = Vec::new();
    let mut ttls = Vec::new();
    let mut deregisters = Vec::new();

    for (id, d) in &wanted {
        let on_agent = current.services.get(*id);
        let registering = on_agent.map_or(true, |svc| {
            svc.meta.get(META_HASH) != d.registration.meta.get(META_HASH)
        });
        if registering {
            registers.push(Action::Register(d.registration.clone()));
        }
        let running = match d.registration.meta.get(META_CONTAINER) {
            Some(name) => format!("container {name} is running"),
            None => "its container is running".to_string(),
        };
        maintenance.extend(maintenance_to(
            id,
            d.maintenance.as_deref(),
            &running,
            current,
        ));
        for t in &d.ttl {
            let stale = current.checks.get(&t.check_id).map_or(true, |check| {
                check.status != t.status || check.output != t.note
            });
            // A (re-)registered TTL check starts critical: its status is sent again.
            if stale || registering || options.refresh_ttl {
                ttls.push(Action::Ttl {
                    check_id: t.check_id.clone(),
                    status: t.status.clone(),
                    note: t.note.clone(),
                });
            }
        }
    }

    for (id, svc) in &current.services {
        if wanted.contains_key(id.as_str()) || !owned(svc, options) {
            continue;
        }
        let gone = match svc.meta.get(META_CONTAINER) {
            Some(name) => format!("container {name} is gone"),
            None => "its container is gone".to_string(),
        };
        match (options.drain, draining.get(id).copied()) {
            (None, _) => {
                draining.remove(id);
                deregisters.push(Action::Deregister {
                    id: id.clone(),
                    reason: gone,
                });
            }
            (Some(grace), None) => {
                let reason = format!(
                    "draining: container gone, deregistering in {}",
                    format_duration(grace)
                );
                maintenance.extend(maintenance_to(id, Some(&reason), "", current));
                let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
                draining.insert(id.clone(), options.now_ms.saturating_add(grace_ms));
            }
            (Some(grace), Some(deadline)) if options.now_ms >= deadline => {
                draining.remove(id);
                deregisters.push(Action::Deregister {
                    id: id.clone(),
                    reason: format!("{gone}, drained for {}", format_duration(grace)),
                });
            }
            (Some(_), Some(_)) => {}
        }
    }

    let mut actions = registers;
    actions.extend(maintenance);
    actions.extend(ttls);
    actions.extend(deregisters);
    actions
}

/// The ID of the check by which the agent marks a service in maintenance.
pub fn maintenance_check_id(service_id: &str) -> String {
    format!("_service_maintenance:{service_id}")
}

/// Whether this registrar owns `svc`.
pub fn owned(svc: &AgentService, options: &Options) -> bool {
    svc.meta.get(META_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
        && svc.meta.get(META_NODE) == Some(&options.node)
}

/// The maintenance actions that bring service `id` to `want` (`Some(reason)`: in maintenance;
/// `None`: not, for `off_reason`).
fn maintenance_to(
    id: &str,
    want: Option<&str>,
    off_reason: &str,
    current: &Current,
) -> Vec<Action> {
    let check = current.checks.get(&maintenance_check_id(id));
    let set = |enable: bool, reason: &str| Action::Maintenance {
        id: id.to_string(),
        enable,
        reason: reason.to_string(),
    };
    match (want, check) {
        (None, None) => vec![],
        (None, Some(_)) => vec![set(false, off_reason)],
        (Some(reason), None) => vec![set(true, reason)],
        (Some(reason), Some(check)) if check.notes == reason => vec![],
        // The agent keeps the first reason: maintenance is turned off and on again.
        (Some(reason), Some(_)) => vec![set(false, "the reason changed"), set(true, reason)],
    }
}
