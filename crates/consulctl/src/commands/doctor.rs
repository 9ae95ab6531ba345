//! `consulctl doctor`: read, on every host, the agent's state, its view of members and leader
//! and its recent log (`engine::evidence`, read-only), then let `diagnose` (pure) say what is
//! wrong, why, and which consulctl command fixes it. Exit 0 when healthy, 1 with findings.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::engine::context::{self, HostRun};
use crate::engine::progress::Progress;
use crate::engine::{evidence, output};
use consulctl_core::diagnose::{self, Finding};
use consulctl_core::error::Error;

#[derive(Debug, Serialize)]
pub struct HostSummary {
    pub name: String,
    pub reachable: bool,
    pub agent_pid: Option<u32>,
    pub init_state: Option<String>,
    pub leader: Option<String>,
    pub members_alive: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub healthy: bool,
    pub findings: Vec<Finding>,
    pub hosts: Vec<HostSummary>,
    pub debug_log: PathBuf,
}

/// `consulctl doctor`.
pub async fn run(args: &DoctorArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let p = context::prepare(&args.inv, "doctor", debug_log).await?;
    let mut runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new_pub).collect();
    let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
    context::connect(&mut runs, &p, &progress).await;
    context::gather_facts(&mut runs, &p, &progress).await;
    let binds = context::bind_addrs(&p.cluster, &runs);
    for r in runs.iter().filter(|r| r.failed.is_none()) {
        progress.set(&r.host.name, "reading agent state and log");
    }
    let observations =
        evidence::observe(&runs, &binds, p.concurrency, args.log_lines, args.since).await;
    for r in &runs {
        progress.finish(&r.host.name, "");
    }
    progress.clear();
    context::disconnect(&mut runs, None).await;

    let mut exp = evidence::expected(&p.cluster, &binds);
    exp.inventory = args.inv.cluster.inventory.display().to_string();
    let findings = diagnose::diagnose(&exp, &observations);
    tracing::info!(findings = findings.len(), "doctor");
    for f in &findings {
        tracing::info!(code = %f.code, hosts = ?f.hosts, cause = %f.cause, "finding");
    }
    let report = Report {
        healthy: findings.is_empty(),
        hosts: observations
            .iter()
            .map(|o| HostSummary {
                name: o.host.clone(),
                reachable: o.unreachable.is_none(),
                agent_pid: o.agent_pid,
                init_state: o.init_state.clone(),
                leader: o.api.as_ref().and_then(|a| a.leader.clone()),
                members_alive: o
                    .api
                    .as_ref()
                    .map(|a| a.members.iter().filter(|m| m.status == 1).count()),
            })
            .collect(),
        findings,
        debug_log: p.debug_log.clone(),
    };
    output::print(args.output, &report);
    if report.healthy {
        Ok(())
    } else {
        Err(Error::Runtime(anyhow!(
            "{} problem{} found (debug log: {})",
            report.findings.len(),
            if report.findings.len() == 1 { "" } else { "s" },
            p.debug_log.display()
        )))
    }
}

pub fn to_text(r: &Report) -> String {
    let mut out = String::new();
    for h in &r.hosts {
        let state = match (h.reachable, h.agent_pid) {
            (false, _) => "unreachable".to_string(),
            (true, Some(pid)) => format!("agent running (pid {pid})"),
            (true, None) => format!(
                "agent not running ({})",
                h.init_state.as_deref().unwrap_or("unknown state")
            ),
        };
        let view = match (&h.leader, h.members_alive) {
            (_, None) => String::new(),
            (Some(l), Some(n)) => format!(", sees leader {l} and {n} alive members"),
            (None, Some(n)) => format!(", sees no leader and {n} alive members"),
        };
        out.push_str(&format!("{:<16} {state}{view}\n", h.name));
    }
    out.push('\n');
    if r.healthy {
        out.push_str(&format!(
            "healthy: {} host{} checked, no problems found\n",
            r.hosts.len(),
            if r.hosts.len() == 1 { "" } else { "s" }
        ));
    } else {
        out.push_str(&diagnose::to_text(&r.findings));
    }
    out
}

impl output::Report for Report {
    fn to_text(&self) -> String {
        to_text(self)
    }
}
