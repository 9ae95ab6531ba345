//! Reading Consul through the first agent that answers: several hosts' agents are candidates,
//! the first with an answer (and a raft configuration) wins, the others' errors explain a
//! failure.

use std::time::Duration;

use anyhow::{bail, Result};
use consul_api::Client;

use crate::engine::verify::{self, ClusterView};

/// How long one agent may take to answer before the next one is asked.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// An agent Consul is asked through: the name of its host and a client of it.
#[derive(Debug, Clone)]
pub struct Via {
    pub name: String,
    pub client: Client,
}

/// Consul's view (with a raft configuration) through the first of `via` that answers.
pub async fn read_view_via(via: &[Via]) -> Result<(ClusterView, &Via)> {
    let mut errors = Vec::new();
    for a in via {
        match tokio::time::timeout(READ_TIMEOUT, verify::read_view_with(&a.client, &a.name)).await {
            Ok(Ok(view)) if !view.raft.is_empty() => return Ok((view, a)),
            Ok(Ok(_)) => errors.push(format!("{}: no raft configuration (no leader?)", a.name)),
            Ok(Err(e)) => errors.push(format!("{}: {e:#}", a.name)),
            Err(_) => errors.push(format!("{}: timed out", a.name)),
        }
    }
    if via.is_empty() {
        bail!("no live server is reachable over SSH with its agent running");
    }
    bail!("no live server answered: {}", errors.join("; "))
}
