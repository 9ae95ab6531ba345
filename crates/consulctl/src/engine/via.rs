//! Reading Consul through the first agent that answers: several hosts' agents are candidates,
//! the first with an answer (and a raft configuration) wins, the others' errors explain a
//! failure.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::engine::verify::{self, ClusterView};

/// How long one agent may take to answer before the next one is asked.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// An agent Consul is asked through: the name of its host and a client of it.
pub use crate::engine::verify::Agent as Via;

/// Consul's view (with a raft configuration) through the first of `via` that answers.
pub async fn read_view_via(via: &[Via]) -> Result<(ClusterView, &Via)> {
    let got = verify::first_answer(via, Some(READ_TIMEOUT), |a| async move {
        let view = verify::read_view_with(&a.client, &a.host).await?;
        if view.raft.is_empty() {
            bail!("no raft configuration (no leader?)");
        }
        Ok(view)
    })
    .await;
    if let Some((a, view)) = got.answer {
        return Ok((view, a));
    }
    if via.is_empty() {
        bail!("no live server is reachable over SSH with its agent running");
    }
    let errors: Vec<String> = got.errors.iter().map(verify::NoAnswer::short).collect();
    bail!("no live server answered: {}", errors.join("; "))
}
