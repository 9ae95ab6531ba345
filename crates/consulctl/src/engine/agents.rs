//! The day-2 commands' one flow to Consul: load the inventory and select hosts (nothing touched
//! when that fails), connect them and gather their facts (whether the agent runs, its bind
//! address), then ask Consul through the first agent that answers, or through one host's own
//! agent, over SSH with the inventory's token and CA. Hosts that cannot be reached are kept
//! with their error, so a command can say which host failed and why.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Result};
use consulctl_core::error::Error;
use consulctl_core::model::Cluster;

use crate::cli::Settings;
use crate::engine::context::{self, HostRun, Prepared};
use crate::engine::progress::Progress;
use crate::engine::verify::{self, Agent};

/// How long one agent may take to answer before the next one is asked.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The connected hosts of a command and their agents.
pub struct Agents {
    pub p: Prepared,
    runs: Vec<HostRun>,
    binds: BTreeMap<String, IpAddr>,
}

impl Agents {
    /// Prepare (inventory, selection: exit 2 on bad input), then [`Agents::connect`].
    pub async fn open(
        settings: Settings,
        command: &str,
        debug_log: Option<&Path>,
    ) -> Result<Agents, Error> {
        Ok(Agents::connect(context::prepare(settings, command, debug_log).await?).await)
    }

    /// Connect the prepared selection and gather its facts (for a command that checks more
    /// input against the loaded inventory before touching any host).
    pub async fn connect(p: Prepared) -> Agents {
        let mut runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new).collect();
        let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
        context::connect(&mut runs, &p, &progress).await;
        context::gather_facts(&mut runs, &p, &progress).await;
        for r in &runs {
            progress.finish(&r.host.name, "");
        }
        progress.clear();
        let binds = context::bind_addrs(&p.cluster, &runs);
        Agents { p, runs, binds }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.p.cluster
    }

    /// The agents that run on reachable hosts, servers first.
    pub fn running(&self) -> Vec<Agent> {
        crate::engine::status::agents(&self.runs, &self.binds)
    }

    /// The agent of one selected host, or why it cannot be asked.
    pub fn of(&self, host: &str) -> Result<Agent, String> {
        let r = self
            .runs
            .iter()
            .find(|r| r.host.name == host)
            .ok_or_else(|| format!("{host} is not selected"))?;
        if let Some((phase, e)) = &r.failed {
            return Err(format!("{phase}: {e}"));
        }
        let running = r
            .facts
            .as_ref()
            .is_some_and(|f| f.agent_running(r.host.init));
        if !running {
            return Err("its consul agent is not running".into());
        }
        let conn = r.conn.as_ref().ok_or("not connected")?;
        let bind = self.binds.get(host).copied();
        Ok(verify::agent(conn, &r.host, bind))
    }

    /// Ask through the first running agent that answers: that agent (to go on through it) and
    /// the answer; a runtime error (exit 1) naming why each agent asked did not answer.
    pub async fn first<T, F, Fut>(&self, read: F) -> Result<(Agent, T), Error>
    where
        F: FnMut(&Agent) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let agents = self.running();
        let got = verify::first_answer(&agents, Some(READ_TIMEOUT), read).await;
        if let Some((a, v)) = got.answer {
            return Ok((a.clone(), v));
        }
        let mut why: Vec<String> = got.errors.iter().map(verify::NoAnswer::short).collect();
        why.extend(self.runs.iter().filter_map(|r| {
            r.failed
                .as_ref()
                .map(|(p, e)| format!("{}: {p}: {e}", r.host.name))
        }));
        Err(Error::Runtime(anyhow!(
            "no agent answered: {}",
            if why.is_empty() {
                "no selected host runs a consul agent".to_string()
            } else {
                why.join("; ")
            }
        )))
    }

    /// Release the connections.
    pub async fn close(mut self) {
        context::disconnect(&mut self.runs, None).await;
    }
}

/// Settings that select `hosts` (by name) of the inventory.
pub fn settings_for(cluster: &crate::cli::ClusterArgs, hosts: &[String]) -> Settings {
    let mut s = Settings::all_hosts(&cluster.inventory, cluster.accept_new_host_keys);
    s.limit = Some(hosts.join(","));
    s
}

/// Settings of a read: the `--limit` given, else the servers (any of them can answer a
/// catalog query; connecting every client would only cost time).
pub fn settings_servers_by_default(inv: &crate::cli::InventoryArgs) -> Settings {
    let mut s = Settings::from(inv);
    if s.limit.is_none() {
        s.limit = Some("role:server".into());
    }
    s
}

/// What a per-host operation did on one host, or why it failed there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub ok: bool,
    /// What was done (ok) or the error (failed).
    pub detail: String,
}

/// The per-host outcomes of one operation: `maint`, `reload`.
#[derive(Debug, serde::Serialize)]
pub struct PerHostReport {
    pub action: String,
    pub hosts: Vec<HostOutcome>,
}

impl PerHostReport {
    pub fn failed(&self) -> usize {
        self.hosts.iter().filter(|h| !h.ok).count()
    }
}

impl crate::engine::output::Report for PerHostReport {
    fn to_text(&self) -> String {
        let w = self.hosts.iter().map(|h| h.host.len()).max().unwrap_or(0);
        let mut s = String::new();
        for h in &self.hosts {
            s.push_str(&format!(
                "{:<w$}  {:<6}  {}\n",
                h.host,
                if h.ok { "ok" } else { "FAILED" },
                h.detail
            ));
        }
        s.push_str(&format!(
            "{}: {} of {} host{} ok\n",
            self.action,
            self.hosts.len() - self.failed(),
            self.hosts.len(),
            if self.hosts.len() == 1 { "" } else { "s" }
        ));
        s
    }

    /// Errors may quote a host's answer.
    fn redacted(&self) -> bool {
        true
    }
}

impl Agents {
    /// Run `op` on the agent of every selected host, `concurrency` at a time; a host that is
    /// unreachable or has no running agent fails with that reason, the others go on.
    pub async fn each<F, Fut>(&self, op: F) -> Vec<HostOutcome>
    where
        F: Fn(Agent) -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        use futures::StreamExt;
        let jobs = self.runs.iter().map(|r| {
            let name = r.host.name.clone();
            let agent = self.of(&name);
            let op = &op;
            async move {
                let res = match agent {
                    Err(why) => Err(why),
                    Ok(agent) => op(agent)
                        .await
                        .map_err(|e| consulctl_core::redact::redact(&format!("{e:#}"), &[])),
                };
                tracing::info!(host = %name, result = ?res, "per-host operation");
                match res {
                    Ok(detail) => HostOutcome {
                        host: name,
                        ok: true,
                        detail,
                    },
                    Err(detail) => HostOutcome {
                        host: name,
                        ok: false,
                        detail,
                    },
                }
            }
        });
        let mut out: Vec<HostOutcome> = futures::stream::iter(jobs)
            .buffer_unordered(self.p.concurrency.max(1))
            .collect()
            .await;
        let order: Vec<&str> = self.runs.iter().map(|r| r.host.name.as_str()).collect();
        out.sort_by_key(|o| order.iter().position(|n| *n == o.host));
        out
    }
}
