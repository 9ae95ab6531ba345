//! The recap: what happened on each host, printed once at the end (text table or JSON).

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Ok,
    Changed,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub name: String,
    pub status: HostStatus,
    /// Number of actions that changed something.
    pub changed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The phase the host failed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub duration_ms: u64,
    /// SSH round trips made to this host.
    pub round_trips: u32,
    /// Settings written but applied only at the agent's next restart (deferred on purpose).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_restart: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub hosts: usize,
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub changed_actions: usize,
}

impl crate::engine::output::Report for Recap {
    fn to_text(&self) -> String {
        Recap::to_text(self)
    }
    fn redacted(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Recap {
    pub hosts: Vec<HostResult>,
    pub totals: Totals,
    /// Cluster verification: None when it was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyResult>,
    pub duration_ms: u64,
    pub debug_log: String,
    /// Agents restarted by the rolling engine, in the order they restarted (servers one at a
    /// time, followers first and the leader last, then client batches).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<crate::engine::rolling::StepRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyResult {
    pub healthy: bool,
    pub leader: Option<String>,
    pub voters: usize,
    pub alive_members: usize,
    pub problems: Vec<String>,
    /// Hosts that had already failed in an earlier phase: not checked and not waited for
    /// (they count as failed whatever Consul says about them).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub not_checked: Vec<String>,
}

impl Recap {
    pub fn new(
        hosts: Vec<HostResult>,
        verify: Option<VerifyResult>,
        duration: Duration,
        debug_log: String,
    ) -> Recap {
        let count = |s| hosts.iter().filter(|h| h.status == s).count();
        let totals = Totals {
            hosts: hosts.len(),
            ok: count(HostStatus::Ok),
            changed: count(HostStatus::Changed),
            failed: count(HostStatus::Failed),
            changed_actions: hosts.iter().map(|h| h.changed).sum(),
        };
        Recap {
            hosts,
            totals,
            verify,
            duration_ms: duration.as_millis() as u64,
            debug_log,
            restarts: Vec::new(),
        }
    }

    pub fn failed(&self) -> bool {
        self.totals.failed > 0 || self.verify.as_ref().map(|v| !v.healthy).unwrap_or(false)
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let width = self
            .hosts
            .iter()
            .map(|h| h.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        s.push_str(&format!(
            "{:<width$}  {:<8} {:>7} {:>8}\n",
            "HOST", "STATUS", "CHANGED", "TIME"
        ));
        for h in &self.hosts {
            let status = match h.status {
                HostStatus::Ok => "ok",
                HostStatus::Changed => "changed",
                HostStatus::Failed => "failed",
            };
            s.push_str(&format!(
                "{:<width$}  {:<8} {:>7} {:>7.1}s\n",
                h.name,
                status,
                h.changed,
                h.duration_ms as f64 / 1000.0
            ));
            if !h.pending_restart.is_empty() {
                s.push_str(&format!(
                    "{:<width$}    restart pending: {} changed; applied at the next restart (`consulctl restart`)\n",
                    "",
                    h.pending_restart.join(", ")
                ));
            }
            if let Some(err) = &h.error {
                let phase = h.phase.as_deref().unwrap_or("?");
                for (i, line) in err.lines().enumerate() {
                    if i == 0 {
                        s.push_str(&format!("{:<width$}    failed in {phase}: {line}\n", ""));
                    } else {
                        s.push_str(&format!("{:<width$}      {line}\n", ""));
                    }
                }
            }
        }
        if !self.restarts.is_empty() {
            let order: Vec<String> = self
                .restarts
                .iter()
                .map(|r| {
                    format!(
                        "{}{}{}",
                        r.host,
                        if r.was_leader { " (leader)" } else { "" },
                        if r.ok { "" } else { " FAILED" }
                    )
                })
                .collect();
            s.push_str(&format!("\nrolling restart: {}\n", order.join(" -> ")));
        }
        let t = &self.totals;
        s.push_str(&format!(
            "\n{} hosts: {} ok, {} changed, {} failed; {} changed actions in {:.1}s\n",
            t.hosts,
            t.ok,
            t.changed,
            t.failed,
            t.changed_actions,
            self.duration_ms as f64 / 1000.0
        ));
        if let Some(v) = &self.verify {
            if v.healthy {
                s.push_str(&format!(
                    "cluster healthy: leader {}, {} voters, {} alive members\n",
                    v.leader.as_deref().unwrap_or("?"),
                    v.voters,
                    v.alive_members
                ));
                if !v.not_checked.is_empty() {
                    s.push_str(&format!(
                        "  (not checked: {}, failed before verify)\n",
                        v.not_checked.join(", ")
                    ));
                }
            } else {
                s.push_str("cluster NOT healthy:\n");
                for p in &v.problems {
                    s.push_str(&format!("  - {p}\n"));
                }
            }
        }
        s
    }
}

tokio::task_local! {
    static CAPTURE: std::cell::RefCell<Option<Recap>>;
}

/// Run `f` (a command that runs a rollout, e.g. `rollout::run`) with the rollout's recap kept
/// instead of printed: for commands that print one JSON object of their own around it.
pub async fn capture<F: std::future::Future>(f: F) -> (F::Output, Option<Recap>) {
    CAPTURE
        .scope(std::cell::RefCell::new(None), async {
            let out = f.await;
            let recap = CAPTURE.with(|c| c.borrow_mut().take());
            (out, recap)
        })
        .await
}

/// Where a recap would be printed: true when it is being [`capture`]d (then it is not printed).
pub fn captured(recap: &Recap) -> bool {
    CAPTURE
        .try_with(|c| *c.borrow_mut() = Some(recap.clone()))
        .is_ok()
}
