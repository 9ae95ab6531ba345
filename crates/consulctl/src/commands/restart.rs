//! `consulctl restart`: a rolling restart of the selected agents (see `rolling`), then a
//! verification of the whole cluster. Servers one at a time, followers first and the leader
//! last; clients in batches. Exit 0 only when every selected host was restarted and the
//! cluster verified healthy.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::RestartArgs;
use crate::engine::context::{self, HostRun};
use crate::engine::progress::Progress;
use crate::engine::recap::Recap;
use crate::engine::rolling::{self, BatchSpec, RollReport, RollingOpts, StepRecord};
use crate::engine::rollout;
use consulctl_core::error::Error;

/// What `restart --output json` prints: the recap (`hosts`, `totals`, `verify`, ...) plus the
/// roll: `leader_before`, `batch_size`, `steps` in order, and `stopped` when it stopped early.
#[derive(Debug, Serialize)]
pub struct RestartOutput {
    #[serde(flatten)]
    pub recap: Recap,
    #[serde(flatten)]
    pub roll: RollReport,
}

/// Parse and check the flags that clap leaves raw. Errors name the flag (exit 2).
pub fn opts(args: &RestartArgs) -> Result<RollingOpts, Error> {
    let batch = BatchSpec::parse(&args.batch).map_err(|e| Error::Input(anyhow!(e)))?;
    if args.step_timeout == 0 {
        return Err(Error::Input(anyhow!(
            "--step-timeout 0: give the seconds each step may wait, 1 or more (default 120)"
        )));
    }
    Ok(RollingOpts {
        batch,
        step_timeout: Duration::from_secs(args.step_timeout),
        ..RollingOpts::default()
    })
}

pub async fn run(args: &RestartArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let started = Instant::now();
    let opts = opts(args)?;
    let p = context::prepare(&args.inv, "restart", debug_log).await?;
    // Two operators must not change the same cluster at once.
    let _lock = crate::engine::lock::RunLock::acquire(&p.cluster.state_dir(), "restart")?;
    let mut runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new_pub).collect();
    let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
    progress.println("==> connect");
    context::connect(&mut runs, &p, &progress).await;
    progress.println("==> gather facts");
    context::gather_facts(&mut runs, &p, &progress).await;
    let binds = context::bind_addrs(&p.cluster, &runs);
    let targets: BTreeSet<String> = runs
        .iter()
        .filter(|r| r.failed.is_none())
        .map(|r| r.host.name.clone())
        .collect();
    progress.println(&format!(
        "==> restart: servers one at a time (followers first, the leader last), then clients in batches of {}",
        opts.batch
    ));
    let roll = rolling::rolling_restart(&mut runs, &p, &progress, &binds, &targets, &opts).await?;
    progress.println("==> verify");
    let verify = rollout::verify(&runs, &p, &progress, &binds, opts.step_timeout).await;
    context::disconnect(&mut runs, None).await;
    for r in &runs {
        progress.finish(
            &r.host.name,
            if r.failed.is_some() { "failed" } else { "done" },
        );
    }
    progress.clear();
    let recap = Recap::new(
        context::results(&runs),
        Some(verify),
        started.elapsed(),
        p.debug_log.display().to_string(),
    );
    let out = RestartOutput { recap, roll };
    tracing::info!(result = %serde_json::to_string(&out).unwrap_or_default(), "done");
    crate::engine::output::print(args.output, &out);
    if out.recap.failed() {
        eprintln!("debug log: {}", p.debug_log.display());
        if out.recap.totals.failed > 0 {
            return Err(Error::HostsFailed {
                failed: out.recap.totals.failed,
                total: out.recap.totals.hosts,
            });
        }
        return Err(Error::Runtime(anyhow!(
            "the cluster did not verify healthy within {}s after the restart: {}",
            opts.step_timeout.as_secs(),
            out.recap
                .verify
                .as_ref()
                .map(|v| v.problems.join("; "))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// The steps table, then the recap.
pub fn to_text(out: &RestartOutput) -> String {
    let roll = &out.roll;
    let mut s = String::new();
    s.push_str(&format!(
        "leader before: {}; client batch size {}\n\n",
        roll.leader_before.as_deref().unwrap_or("none"),
        roll.batch_size
    ));
    if !roll.steps.is_empty() {
        let w = roll
            .steps
            .iter()
            .map(|r| r.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        s.push_str(&format!(
            "{:>4}  {:<w$}  {:<7} {:<7} {:>5}  {:<15} {:>7} {:>8} {:>7}  {}\n",
            "STEP", "HOST", "ROLE", "LEADER", "BATCH", "PID", "GATE", "RESTART", "BACK", "RESULT"
        ));
        for r in &roll.steps {
            s.push_str(&step_line(r, w));
        }
        s.push('\n');
    }
    if let Some(reason) = &roll.stopped {
        s.push_str(&format!("roll STOPPED: {reason}\n\n"));
    }
    s.push_str(&out.recap.to_text());
    s
}

fn step_line(r: &StepRecord, w: usize) -> String {
    let pid = format!(
        "{}->{}",
        r.pid_before.as_deref().unwrap_or("-"),
        r.pid_after.as_deref().unwrap_or("-")
    );
    format!(
        "{:>4}  {:<w$}  {:<7} {:<7} {:>5}  {:<15} {:>7} {:>8} {:>7}  {}\n",
        r.step,
        r.host,
        r.role.as_str(),
        if r.was_leader { "yes" } else { "-" },
        r.batch.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
        pid,
        secs(r.gate_before_ms),
        secs(r.restart_ms),
        secs(r.gate_after_ms),
        if r.ok { "ok" } else { "FAILED" }
    )
}

impl crate::engine::output::Report for RestartOutput {
    fn to_text(&self) -> String {
        to_text(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{InventoryArgs, Output, RestartArgs};

    fn args(batch: &str, step_timeout: u64) -> RestartArgs {
        RestartArgs {
            inv: InventoryArgs {
                cluster: crate::cli::ClusterArgs {
                    inventory: "x.toml".into(),
                    accept_new_host_keys: false,
                },
                limit: None,
                concurrency: 64,
                templates: None,
                allow_downgrade: false,
            },
            output: Output::Text,
            batch: batch.into(),
            step_timeout,
        }
    }

    #[test]
    fn flags_are_checked_before_anything_else() {
        let o = opts(&args("25%", 120)).unwrap();
        assert_eq!(o.batch, BatchSpec::Percent(25));
        assert_eq!(o.step_timeout, Duration::from_secs(120));
        let e = opts(&args("zero", 120)).unwrap_err();
        assert_eq!(e.code(), 2);
        assert!(e.to_string().starts_with("--batch \"zero\""), "{e}");
        let e = opts(&args("2", 0)).unwrap_err();
        assert_eq!(e.code(), 2);
        assert!(e.to_string().contains("--step-timeout"), "{e}");
    }
}
