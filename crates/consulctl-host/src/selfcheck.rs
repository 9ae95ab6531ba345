//! How a daemon reports on itself: a service of its own on the local agent (named after the
//! daemon, no port) with one TTL check that the daemon keeps up to date. The check belongs to
//! that service, not to the node: a daemon in trouble makes only its own service critical,
//! never the node and so every other service on it (Consul counts a node's checks against all
//! of its services). `consulctl doctor` reads the check by its ID.

use consul_api::agent::{self, CheckDefinition, ServiceRegistration};
use consul_api::Client;

/// A daemon's self check.
#[derive(Debug, Clone)]
pub struct SelfCheck {
    /// Check ID, also the service's ID and name (`consulctl-registrar`, `consulctl-lb`).
    pub id: &'static str,
    pub name: String,
    pub notes: String,
    /// The TTL (`30s`): no update that long and Consul marks it critical.
    pub ttl: &'static str,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// The check was updated.
    Updated,
    /// The agent did not know the check (first start, or it lost its state): registered.
    Registered,
    /// The agent did not answer (or refused the registration): the message.
    Failed(String),
}

impl SelfCheck {
    fn registration(&self) -> ServiceRegistration {
        ServiceRegistration {
            id: self.id.into(),
            name: self.id.into(),
            meta: [("consulctl-daemon".to_string(), self.id.to_string())].into(),
            check: Some(CheckDefinition {
                check_id: self.id.into(),
                name: self.name.clone(),
                notes: self.notes.clone(),
                ttl: self.ttl.into(),
                ..CheckDefinition::default()
            }),
            ..ServiceRegistration::default()
        }
    }

    /// Set the check to `status` (`passing`, `warning`, anything else critical) with `note`
    /// (at most 1000 characters kept); register it first when the agent does not know it.
    pub async fn report(&self, consul: &Client, status: &str, note: &str) -> Reported {
        let note: String = note.chars().take(1000).collect();
        let update = || match status {
            "passing" => agent::check_pass(self.id, Some(&note)),
            "warning" => agent::check_warn(self.id, Some(&note)),
            _ => agent::check_fail(self.id, Some(&note)),
        };
        match consul.call(update()).await {
            Ok(()) => Reported::Updated,
            Err(e) if matches!(e.status(), Some(404) | Some(500)) => {
                match consul
                    .call(agent::service_register(&self.registration(), true))
                    .await
                {
                    Ok(()) => {
                        let _ = consul.call(update()).await;
                        Reported::Registered
                    }
                    Err(e) => Reported::Failed(format!("cannot register check {}: {e}", self.id)),
                }
            }
            Err(e) => Reported::Failed(format!("the Consul agent does not answer: {e}")),
        }
    }
}
