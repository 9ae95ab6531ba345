//! `consulctl force-leave NODE [--prune]`: take a failed member out of the member list
//! (Consul marks it `left`; `--prune` forgets it at once instead of after 72 hours). Refused
//! for a member that is alive: it would only rejoin, and a live node is taken out with
//! `consulctl node remove` (inventory hosts) or `consul leave` on it. Confirmed by reading
//! the members again.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use consul_api::poll::{self, Progress};
use consul_api::Member;
use consulctl_core::error::Error;
use serde::Serialize;

use crate::cli::ForceLeaveArgs;
use crate::engine::agents::{self, Agents};
use crate::engine::output::{self, Report};

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub node: String,
    /// The member's status before: `failed`, `left`, ...
    pub was: String,
    /// `left`, or `gone` (pruned).
    pub now: String,
    pub pruned: bool,
    pub via: String,
}

impl Report for Outcome {
    fn to_text(&self) -> String {
        format!(
            "{}: {} -> {}{} (via {})\n",
            self.node,
            self.was,
            self.now,
            if self.pruned {
                ", removed from the member list"
            } else {
                ""
            },
            self.via
        )
    }
}

/// Whether force-leave may go on for `node`: Ok(its member entry), or why not.
pub fn decide<'a>(
    node: &str,
    members: &'a [Member],
    inventory: &str,
    is_inventory_host: bool,
) -> Result<&'a Member, Error> {
    let Some(m) = members.iter().find(|m| m.name == node) else {
        let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        names.sort();
        return Err(Error::Input(anyhow!(
            "{node} is not a member (members: {})",
            names.join(", ")
        )));
    };
    if m.is_alive() {
        let how = if is_inventory_host {
            format!("`consulctl node remove {node} -i {inventory}`")
        } else {
            format!("`consul leave` on {node}")
        };
        return Err(Error::Locked(anyhow!(
            "{node} is alive ({}): force-leave is for failed nodes (a live one rejoins at \
             once); to take it out use {how}",
            m.addr
        )));
    }
    Ok(m)
}

pub async fn run(args: &ForceLeaveArgs, log: Option<&Path>) -> Result<(), Error> {
    let a = Agents::open(
        agents::settings_servers_by_default(&args.inv),
        "force-leave",
        log,
    )
    .await?;
    let res = force_leave(&a, args).await;
    a.close().await;
    let outcome = res?;
    output::print(args.output, &outcome);
    Ok(())
}

async fn force_leave(a: &Agents, args: &ForceLeaveArgs) -> Result<Outcome, Error> {
    let node = args.node.as_str();
    let (agent, members) = a
        .first(|agent| {
            let c = agent.client.clone();
            async move { Ok(c.call(consul_api::agent::members(false)).await?) }
        })
        .await?;
    let inventory = a.cluster().inventory_path.display().to_string();
    let is_host = a.cluster().hosts.iter().any(|h| h.name == node);
    let m = decide(node, &members, &inventory, is_host)?;
    let via = agent.host.clone();
    let was = m.status_word().to_string();
    if m.status_word() == "left" && !args.prune {
        return Ok(Outcome {
            node: node.into(),
            was: was.clone(),
            now: was,
            pruned: false,
            via,
        });
    }
    agent
        .client
        .call(consul_api::agent::force_leave(node, args.prune))
        .await
        .map_err(|e| Error::Runtime(anyhow!("{via}: force-leave {node}: {e}")))?;
    let prune = args.prune;
    let now = poll::wait_until(
        &format!(
            "{node} to be {}",
            if prune {
                "gone from the members"
            } else {
                "left"
            }
        ),
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let ms = agent.client.call(consul_api::agent::members(false)).await?;
            let status = ms.iter().find(|m| m.name == node).map(|m| m.status_word());
            Ok::<_, consul_api::Error>(match (status, prune) {
                (None, _) => Progress::Ready("gone"),
                (Some("left"), false) => Progress::Ready("left"),
                (Some(s), _) => Progress::Pending(format!("{node} is {s}")),
            })
        },
    )
    .await
    .map_err(|t| Error::Runtime(anyhow!("{via}: {t}")))?;
    Ok(Outcome {
        node: node.into(),
        was,
        now: now.into(),
        pruned: prune,
        via,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, status: u8) -> Member {
        Member {
            name: name.into(),
            addr: "10.0.0.9".into(),
            status,
            ..Member::default()
        }
    }

    #[test]
    fn alive_members_are_refused_and_unknown_ones_are_bad_input() {
        let ms = [member("client1", 1), member("client2", 4), member("old", 3)];
        let e = decide("client1", &ms, "inv.toml", true).unwrap_err();
        assert_eq!(e.code(), 2);
        assert!(
            e.to_string()
                .contains("consulctl node remove client1 -i inv.toml"),
            "{e}"
        );
        let e = decide("box", &[member("box", 1)], "inv.toml", false).unwrap_err();
        assert!(e.to_string().contains("`consul leave` on box"), "{e}");
        let e = decide("nope", &ms, "inv.toml", false).unwrap_err();
        assert_eq!(e.code(), 2);
        assert!(
            e.to_string().contains("members: client1, client2, old"),
            "{e}"
        );
        assert_eq!(decide("client2", &ms, "inv.toml", true).unwrap().status, 4);
        assert_eq!(decide("old", &ms, "inv.toml", false).unwrap().status, 3);
    }
}
