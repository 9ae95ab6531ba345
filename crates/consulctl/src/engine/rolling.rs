//! The rolling restart engine: restart agents without losing the cluster.
//!
//! Servers go one at a time, followers first and the leader last (the leader is read from
//! Consul before every server step, so a leadership change during the roll is followed).
//! Around every step the cluster is gated on Consul's own view: a leader, every inventory server
//! a raft voter, every inventory host an alive member (`verify::check`), and autopilot's
//! `/v1/operator/autopilot/health` answering `Healthy: true` (1.8.7 answers HTTP 429 with the
//! same JSON body when it is not). After a server restart the roll waits, reading through that
//! server's own agent, until it knows the leader and autopilot lists it as a healthy voter, twice
//! in a row. Then clients go in batches (`--batch`, default 25 % of them, at least 1), each
//! batch concurrently, every restarted client read back through its own agent, and the whole
//! cluster gated before the next batch.
//!
//! A restart is the init system's (`systemctl restart consul` / `supervisorctl restart consul`,
//! `remote/restart.sh`); it is done when a process with a new PID answers the local HTTP API.
//!
//! Any failure (a restart that does not come back, a gate that does not pass within
//! `step_timeout`) marks that host failed, marks every target not restarted yet as failed
//! ("not restarted: ...") and STOPS the roll: the next server is never restarted while the
//! cluster is unhealthy.
//!
//! Every step is one `tracing::info!` line `rolling restart step` in the debug log (step, host,
//! role, was_leader, batch, PIDs, timings), so the order is provable afterwards.
//!
//! # Use from `apply`
//!
//! ```ignore
//! // after connect, gather_facts, validate (-> binds), upload, configure:
//! let targets: BTreeSet<String> = runs.iter()
//!     .filter(|r| r.failed.is_none() && r.plan.needs_restart())   // whatever marks a restart
//!     .map(|r| r.host.name.clone()).collect();
//! let report = rolling::rolling_restart(&mut runs, &p, &progress, &binds, &targets,
//!                                       &RollingOpts::default()).await?;
//! // report.steps: what happened, in order; failed hosts are marked in `runs`.
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use consul_api::poll::{self, Progress as Poll};
use serde::Serialize;

use crate::engine::execute::path_arg;
use crate::engine::progress::Progress;
use crate::engine::rollout::{HostRun, Prepared};
use crate::engine::verify::{self, ClusterView};
use crate::remote::ssh::Connection;
use consulctl_core::error::Error;
use consulctl_core::model::{Cluster, Host, Role};

/// Autopilot's health endpoint (servers, voters, health as the leader sees them).
pub const AUTOPILOT: &str = "/v1/operator/autopilot/health";

/// How often a gate re-reads Consul.
const POLL: Duration = Duration::from_millis(500);

/// How many clients restart at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchSpec {
    /// This many clients per batch.
    Count(usize),
    /// This percentage of the clients (rounded down, at least 1).
    Percent(u32),
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec::Percent(25)
    }
}

impl fmt::Display for BatchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSpec::Count(n) => write!(f, "{n}"),
            BatchSpec::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl BatchSpec {
    /// Parse `--batch`: `3` or `25%`. The error names the flag and what is allowed.
    pub fn parse(s: &str) -> Result<BatchSpec, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "--batch {s:?}: expected a number of clients per batch (1 or more, e.g. `3`) \
                 or a percentage of the clients (1% to 100%, e.g. `25%`)"
            )
        };
        if let Some(pct) = t.strip_suffix('%') {
            let p: u32 = pct.trim().parse().map_err(|_| bad())?;
            if !(1..=100).contains(&p) {
                return Err(bad());
            }
            Ok(BatchSpec::Percent(p))
        } else {
            let n: usize = t.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            Ok(BatchSpec::Count(n))
        }
    }

    /// The batch size for `clients` clients: at least 1, at most `clients` (when there are any).
    pub fn size(self, clients: usize) -> usize {
        let n = match self {
            BatchSpec::Count(n) => n,
            BatchSpec::Percent(p) => clients * p as usize / 100,
        };
        n.min(clients).max(1)
    }
}

/// Options of a roll.
#[derive(Debug, Clone)]
pub struct RollingOpts {
    /// Client batch size.
    pub batch: BatchSpec,
    /// The longest each wait of a step may take: the health gate before it, the agent coming
    /// back, the health gate after it.
    pub step_timeout: Duration,
    /// Per host: how its restart goes and what to put back when it fails (`apply` fills it;
    /// a host not listed restarts plainly and has only a swapped-in binary to put back).
    pub hosts: BTreeMap<String, HostRestart>,
    /// This run's backup dir on the hosts (`/var/backups/consulctl/<UTC>`): where the last good
    /// files are, and where the failed ones are kept (`failed/`).
    pub backup_dir: String,
    /// The hosts that must be alive members for the cluster to count as healthy (the inventory
    /// without hosts whose agent is known not to run yet); `None`: every inventory host.
    pub expect: Option<std::sync::Arc<Cluster>>,
}

impl Default for RollingOpts {
    fn default() -> Self {
        RollingOpts {
            batch: BatchSpec::default(),
            step_timeout: Duration::from_secs(120),
            hosts: BTreeMap::new(),
            backup_dir: crate::engine::execute::backup_dir(
                &chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            ),
            expect: None,
        }
    }
}

/// How one host restarts in a roll that `apply` drives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRestart {
    /// The unit or program file changed: `systemctl daemon-reload` / `supervisorctl update`.
    pub reload_init: bool,
    /// `systemctl enable consul` too.
    pub enable: bool,
    /// Commands (argv) to run right before the restart: a package upgrade held back so that
    /// it never replaces the binary under every running agent at once.
    pub before: Vec<Vec<String>>,
    /// The agent's files this run wrote (config, services, TLS, unit/program): put back from
    /// the backup dir when the agent does not come up with them, or when the roll stops before
    /// this host's turn.
    pub written: Vec<String>,
}

/// `/v1/operator/autopilot/health` (servers, voters, health as the leader sees them).
pub use consul_api::AutopilotHealth;

/// One server in [`AutopilotHealth`]: `Name` is empty for a server autopilot only knows from
/// raft (being pruned); `LastContact` is a Go duration (`"35.2ms"`, `"-1ns"` for never).
pub type AutopilotServer = consul_api::ServerHealth;

/// Parse an autopilot health answer. HTTP 200 (healthy) and 429 (unhealthy) both carry the
/// JSON body; anything else (no leader: 500) is an error carrying the body.
pub fn parse_autopilot(code: u16, body: &str) -> Result<AutopilotHealth> {
    autopilot_answer(
        consul_api::operator::autopilot_health()
            .finish(&consul_api::Response::new(code, body.as_bytes())),
    )
}

/// The autopilot call's result with this module's messages: `... answered HTTP 500: No
/// cluster leader`, `parsing the ... answer: ...`.
fn autopilot_answer(res: Result<AutopilotHealth, consul_api::Error>) -> Result<AutopilotHealth> {
    match res {
        Ok(h) => Ok(h),
        Err(consul_api::Error::Status { status, body, .. }) => {
            bail!("{AUTOPILOT} answered HTTP {status}: {body}")
        }
        Err(consul_api::Error::Decode { source, .. }) => {
            Err(anyhow!(source).context(format!("parsing the {AUTOPILOT} answer")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Servers in restart order: the followers in the order given, the leader last.
/// `leader` is a host name; one that is not among `servers` changes nothing.
pub fn server_order(servers: &[String], leader: Option<&str>) -> Vec<String> {
    let mut order: Vec<String> = servers
        .iter()
        .filter(|s| Some(s.as_str()) != leader)
        .cloned()
        .collect();
    order.extend(
        servers
            .iter()
            .filter(|s| Some(s.as_str()) == leader)
            .cloned(),
    );
    order
}

/// Clients in batches of `batch` (at least 1), keeping their order.
pub fn client_batches(clients: &[String], batch: usize) -> Vec<Vec<String>> {
    clients
        .chunks(batch.max(1))
        .map(<[String]>::to_vec)
        .collect()
}

/// The host name of the leader Consul reports (`IP:8300`): the server whose bind address it
/// is, or else the raft configuration's node with that address.
pub fn leader_name(
    view: &ClusterView,
    cluster: &Cluster,
    binds: &BTreeMap<String, IpAddr>,
) -> Option<String> {
    let addr = view.leader.as_ref()?;
    cluster
        .servers()
        .find(|h| {
            binds
                .get(&h.name)
                .map(|ip| verify::raft_addr(*ip) == *addr)
                .unwrap_or(false)
        })
        .map(|h| h.name.clone())
        .or_else(|| {
            view.raft
                .iter()
                .find(|s| s.address == *addr)
                .map(|s| s.node.clone())
        })
}

/// Everything that keeps the cluster from being healthy enough for the next step. Empty =
/// go on. `verify::check` (leader, every inventory server a voter, every host an alive member)
/// plus autopilot's health, and, with `back`, that this server is a healthy voter again.
pub fn gate_problems(
    cluster: &Cluster,
    binds: &BTreeMap<String, IpAddr>,
    view: &ClusterView,
    autopilot: &Result<AutopilotHealth, String>,
    back: Option<&str>,
) -> Vec<String> {
    let mut problems = verify::check(cluster, binds, view);
    match autopilot {
        Err(e) => problems.push(format!("autopilot health unavailable: {e}")),
        Ok(h) => {
            if !h.healthy {
                let bad: Vec<String> = h
                    .servers
                    .iter()
                    .filter(|s| !s.healthy)
                    .map(|s| {
                        let name = if s.name.is_empty() {
                            &s.address
                        } else {
                            &s.name
                        };
                        format!(
                            "{name} (serf {}, last contact {})",
                            s.serf_status, s.last_contact
                        )
                    })
                    .collect();
                if bad.is_empty() {
                    problems.push("autopilot reports the cluster unhealthy".into());
                } else {
                    problems.push(format!(
                        "autopilot reports unhealthy servers: {}",
                        bad.join(", ")
                    ));
                }
            }
            if let Some(name) = back {
                let addr = binds.get(name).map(|ip| verify::raft_addr(*ip));
                match h
                    .servers
                    .iter()
                    .find(|s| s.name == name || Some(&s.address) == addr.as_ref())
                {
                    None => problems.push(format!("{name} is not among autopilot's servers yet")),
                    Some(s) if !(s.healthy && s.voter) => problems.push(format!(
                        "{name} is not back as a healthy voter yet (autopilot: healthy {}, voter {})",
                        s.healthy, s.voter
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    problems
}

/// What happened in one step (one host).
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// 1-based, in the order the restarts started (clients of one batch share a batch number
    /// and run concurrently).
    pub step: usize,
    pub host: String,
    pub role: Role,
    /// Whether this server was the leader (as Consul reported it right before its step).
    pub was_leader: bool,
    /// Client batch number (1-based); None for servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Agent PID before and after (from the init system).
    pub pid_before: Option<String>,
    pub pid_after: Option<String>,
    /// Waiting for a healthy cluster before the step (for a batch: before the batch).
    pub gate_before_ms: u64,
    /// The init system's restart until the new agent answered locally.
    pub restart_ms: u64,
    /// Until the cluster was healthy again with this host back.
    pub gate_after_ms: u64,
    /// Wall clock (Unix ms) when the restart was issued and when the host was back.
    pub started_unix_ms: i64,
    pub finished_unix_ms: i64,
    /// The leader Consul reported after the step (host name).
    pub leader_after: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was put back after the agent did not come up (files, binary, the agent again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
}

/// The outcome of a roll.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollReport {
    /// The leader (host name) Consul reported before the first step.
    pub leader_before: Option<String>,
    /// The client batch size used.
    pub batch_size: usize,
    pub steps: Vec<StepRecord>,
    /// Why the roll stopped early; None when every target was restarted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl HostRun {
    /// Mark this host failed in `phase` (the first failure wins), for modules outside `apply`.
    pub fn mark_failed(&mut self, phase: &str, error: &str) {
        if self.failed.is_none() {
            tracing::debug!(host = %self.host.name, phase, error, "host failed");
            self.failed = Some((phase.to_string(), error.to_string()));
        }
        self.done_at = Some(Instant::now());
    }
}

/// Restart `host`'s agent under its init system; wait until a new process answers at `http`.
/// Returns (PID before, PID after).
pub async fn restart_agent(
    conn: &Connection,
    host: &Host,
    http: &str,
    wait_secs: u64,
    how: &HostRestart,
) -> Result<Restarted> {
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let args = vec![
        host.init.as_str().to_string(),
        path_arg(&host.paths.binary),
        http.to_string(),
        wait_secs.max(1).to_string(),
        path_arg(&host.paths.log_dir),
        flag(how.reload_init),
        flag(how.enable && host.init == consulctl_core::model::Init::Systemd),
    ];
    let out = conn
        .run("restart", crate::remote::RESTART, &args, None)
        .await?;
    let field = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .filter(|v| v != "none")
    };
    Ok(Restarted {
        pid_before: field("pid_before "),
        pid_after: if out.success() { field("pid ") } else { None },
        swapped: out.stdout.lines().any(|l| l.trim() == "swapped"),
        error: (!out.success()).then(|| {
            format!(
                "consul did not come back after the restart: {}",
                out.tail(15)
            )
        }),
    })
}

/// What `restart.sh` did.
#[derive(Debug, Clone, Default)]
pub struct Restarted {
    pub pid_before: Option<String>,
    pub pid_after: Option<String>,
    /// A staged binary was swapped in (the old one kept as `.consulctl-prev`).
    pub swapped: bool,
    /// The agent did not come back (with its last log lines).
    pub error: Option<String>,
}

/// Put back the last good files (and the binary, when `binary`) of a host; returns what the
/// script reports it restored. Nothing to put back: no round trip.
pub async fn restore_files(
    conn: &Connection,
    host: &Host,
    backup_dir: &str,
    written: &[String],
    binary: bool,
) -> Result<Vec<String>> {
    if written.is_empty() && !binary {
        return Ok(Vec::new());
    }
    let mut args = vec![
        backup_dir.to_string(),
        path_arg(&host.paths.binary),
        if binary { "1" } else { "0" }.to_string(),
    ];
    args.extend(written.iter().cloned());
    let out = conn
        .run_ok("restore", crate::remote::RESTORE, &args, None)
        .await?;
    Ok(out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// After a failed restart: put back the last good files and binary, start the agent on them
/// and say what happened (for the recap).
async fn restore_after_failure(
    me: &Reader<'_>,
    host: &Host,
    opts: &RollingOpts,
    swapped: bool,
) -> String {
    let how = opts.hosts.get(&host.name).cloned().unwrap_or_default();
    let restored = match restore_files(me.conn, host, &opts.backup_dir, &how.written, swapped).await
    {
        Ok(r) if r.is_empty() => return "nothing to restore (no file or binary changed)".into(),
        Ok(r) => r,
        Err(e) => return format!("restoring the last good files failed: {e:#}"),
    };
    tracing::warn!(host = %host.name, restored = ?restored, "restored the last good files after a failed restart");
    let again = HostRestart {
        reload_init: how.reload_init,
        ..HostRestart::default()
    };
    let what = format!(
        "restored the last good {} (the failed files are kept in {}/failed)",
        describe_restored(&restored),
        opts.backup_dir
    );
    match restart_agent(me.conn, host, &me.http, opts.step_timeout.as_secs(), &again).await {
        Ok(Restarted {
            error: None,
            pid_after,
            ..
        }) => format!(
            "{what}; the agent runs again on them (PID {})",
            pid_after.as_deref().unwrap_or("?")
        ),
        Ok(Restarted { error: Some(e), .. }) => {
            format!("{what}, but the agent did not come up on them either: {e}")
        }
        Err(e) => format!("{what}, but restarting the agent on them failed: {e:#}"),
    }
}

/// "config, binary" from `restore.sh`'s report lines.
fn describe_restored(lines: &[String]) -> String {
    let files: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            l.strip_prefix("restored ")
                .or_else(|| l.strip_prefix("set aside "))
        })
        .filter(|l| *l != "binary")
        .collect();
    let mut parts = Vec::new();
    if !files.is_empty() {
        parts.push(format!("files ({})", files.join(", ")));
    }
    if lines.iter().any(|l| l == "restored binary") {
        parts.push("binary".to_string());
    }
    parts.join(" and ")
}

#[derive(Debug, Clone)]
pub struct Reading {
    pub view: ClusterView,
    pub autopilot: Result<AutopilotHealth, String>,
}

/// Read leader, raft configuration, members and autopilot health through one host's agent
/// (one round trip).
pub async fn read_state(conn: &Connection, http: &str) -> Result<Reading> {
    read_reading(&crate::remote::consul::client(conn, http), conn.host()).await
}

/// Leader, raft configuration, members and autopilot health through one client, in one round
/// trip. `via` names the host whose agent answers. An autopilot that does not answer (no
/// leader) is part of the reading, not an error.
pub async fn read_reading(client: &consul_api::Client, via: &str) -> Result<Reading> {
    let (leader, raft, members, autopilot) = client
        .call4(
            consul_api::status::leader(),
            consul_api::operator::raft_configuration(true),
            consul_api::agent::members(false),
            consul_api::operator::autopilot_health(),
        )
        .await;
    let view = verify::view_from(via, leader, raft, members)?;
    let autopilot = autopilot_answer(autopilot).map_err(|e| format!("{e:#}"));
    Ok(Reading { view, autopilot })
}

/// A host whose agent the gates read through: its connection and base URL (for the restart
/// script) and a client of its agent.
struct Reader<'a> {
    conn: &'a Connection,
    http: String,
    agent: verify::Agent,
}

fn reader<'a>(r: &'a HostRun, binds: &BTreeMap<String, IpAddr>) -> Option<Reader<'a>> {
    let conn = r.conn.as_ref()?;
    let http = verify::agent_url(&r.host, binds.get(&r.host.name).copied());
    Some(Reader {
        conn,
        agent: verify::Agent::via_ssh(conn, &http),
        http,
    })
}

/// Agents to read the cluster through: healthy, connected hosts, servers first.
fn readers(runs: &[HostRun], binds: &BTreeMap<String, IpAddr>) -> Vec<verify::Agent> {
    let mut out = Vec::new();
    for role in [Role::Server, Role::Client] {
        out.extend(
            runs.iter()
                .filter(|r| r.host.role == role && r.failed.is_none())
                .filter_map(|r| reader(r, binds))
                .map(|r| r.agent),
        );
    }
    out
}

/// How long one read through one agent may take in a gate.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Poll Consul through `agents` (the first that answers, each poll) until the gate passes
/// `passes` times in a row, or `timeout` passes: then the last problems.
async fn wait_gate(
    cluster: &Cluster,
    binds: &BTreeMap<String, IpAddr>,
    agents: &[verify::Agent],
    back: Option<&str>,
    passes: u32,
    timeout: Duration,
) -> Result<Reading, Vec<String>> {
    if agents.is_empty() {
        return Err(vec![
            "no reachable host to read the cluster state through".into()
        ]);
    }
    let in_row = AtomicU32::new(0);
    let last = Mutex::new(vec!["no host answered".to_string()]);
    let (in_row_ref, last_ref) = (&in_row, &last);
    let res = poll::wait_until("the cluster gate", timeout, POLL, move || async move {
        let got = verify::first_answer(agents, Some(READ_TIMEOUT), |a| {
            read_reading(&a.client, &a.host)
        })
        .await;
        let mut last = last_ref.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = got.errors.last() {
            *last = vec![e.long()];
        }
        let Some((_, reading)) = got.answer else {
            in_row_ref.store(0, Ordering::SeqCst);
            return Ok::<_, String>(Poll::Pending(last.join("; ")));
        };
        let problems = gate_problems(cluster, binds, &reading.view, &reading.autopilot, back);
        if problems.is_empty() {
            let n = in_row_ref.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= passes {
                return Ok(Poll::Ready(reading));
            }
            return Ok(Poll::Pending(format!("passed {n} of {passes} times")));
        }
        if problems != *last {
            tracing::debug!(via = %reading.view.via, problems = ?problems, "gate not passed yet");
        }
        in_row_ref.store(0, Ordering::SeqCst);
        let why = problems.join("; ");
        *last = problems;
        Ok(Poll::Pending(why))
    })
    .await;
    res.map_err(|_| last.into_inner().unwrap_or_else(|e| e.into_inner()))
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn now_unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Restart one host and wait, reading through its own agent, until the cluster gate passes
/// twice in a row with it back (for a server: a healthy voter in autopilot).
async fn restart_one(
    r: &HostRun,
    cluster: &Cluster,
    binds: &BTreeMap<String, IpAddr>,
    opts: &RollingOpts,
    progress: &Progress,
    step: StepRecord,
) -> StepRecord {
    let mut rec = step;
    let name = r.host.name.as_str();
    let Some(me) = reader(r, binds) else {
        rec.error = Some("not connected".into());
        return rec;
    };
    progress.set(name, "restarting");
    rec.started_unix_ms = now_unix_ms();
    let t = Instant::now();
    let how = opts.hosts.get(name).cloned().unwrap_or_default();
    for argv in &how.before {
        let title = consulctl_core::action::shell_words(argv);
        if let Err(e) = me.conn.run_ok(&title, "set -eu; \"$@\"", argv, None).await {
            rec.restart_ms = ms(t.elapsed());
            rec.finished_unix_ms = now_unix_ms();
            rec.error = Some(format!("{title}: {e:#} (the agent was not restarted)"));
            return rec;
        }
    }
    let res = restart_agent(
        me.conn,
        &r.host,
        &me.http,
        opts.step_timeout.as_secs(),
        &how,
    )
    .await;
    rec.restart_ms = ms(t.elapsed());
    match res {
        Ok(Restarted {
            pid_before,
            pid_after,
            error: None,
            ..
        }) => {
            rec.pid_before = pid_before;
            rec.pid_after = pid_after;
        }
        Ok(Restarted {
            pid_before,
            swapped,
            error: Some(e),
            ..
        }) => {
            rec.pid_before = pid_before;
            progress.set(name, "restoring the last good config");
            let restored = restore_after_failure(&me, &r.host, opts, swapped).await;
            rec.finished_unix_ms = now_unix_ms();
            rec.error = Some(format!("{e}; {restored}"));
            rec.restored = Some(restored);
            return rec;
        }
        Err(e) => {
            rec.finished_unix_ms = now_unix_ms();
            rec.error = Some(format!("{e:#}"));
            return rec;
        }
    }
    progress.set(
        name,
        if r.host.role == Role::Server {
            "waiting until back as a healthy voter"
        } else {
            "waiting until back as an alive member"
        },
    );
    let t = Instant::now();
    let back = (r.host.role == Role::Server).then_some(name);
    let gate = wait_gate(
        cluster,
        binds,
        std::slice::from_ref(&me.agent),
        back,
        2,
        opts.step_timeout,
    )
    .await;
    rec.gate_after_ms = ms(t.elapsed());
    rec.finished_unix_ms = now_unix_ms();
    match gate {
        Ok(reading) => {
            rec.leader_after = leader_name(&reading.view, cluster, binds);
            rec.ok = true;
        }
        Err(problems) => {
            rec.error = Some(format!(
                "restarted (PID {} -> {}), but the cluster was not healthy with it back within {}s: {}",
                rec.pid_before.as_deref().unwrap_or("none"),
                rec.pid_after.as_deref().unwrap_or("?"),
                opts.step_timeout.as_secs(),
                problems.join("; ")
            ));
        }
    }
    rec
}

fn log_step(rec: &StepRecord) {
    tracing::info!(
        step = rec.step,
        host = %rec.host,
        role = %rec.role.as_str(),
        was_leader = rec.was_leader,
        batch = rec.batch.unwrap_or(0),
        pid_before = %rec.pid_before.as_deref().unwrap_or("none"),
        pid_after = %rec.pid_after.as_deref().unwrap_or("none"),
        gate_before_ms = rec.gate_before_ms,
        restart_ms = rec.restart_ms,
        gate_after_ms = rec.gate_after_ms,
        leader_after = %rec.leader_after.as_deref().unwrap_or("none"),
        ok = rec.ok,
        error = %rec.error.as_deref().unwrap_or(""),
        "rolling restart step"
    );
}

fn new_step(step: usize, r: &HostRun, was_leader: bool, batch: Option<usize>) -> StepRecord {
    StepRecord {
        step,
        host: r.host.name.clone(),
        role: r.host.role,
        was_leader,
        batch,
        pid_before: None,
        pid_after: None,
        gate_before_ms: 0,
        restart_ms: 0,
        gate_after_ms: 0,
        started_unix_ms: 0,
        finished_unix_ms: 0,
        leader_after: None,
        ok: false,
        error: None,
        restored: None,
    }
}

fn run_of<'a>(runs: &'a [HostRun], name: &str) -> &'a HostRun {
    runs.iter()
        .find(|r| r.host.name == name)
        .expect("target among runs")
}

/// Apply a finished step to its host: changed on success, failed otherwise.
fn settle(runs: &mut [HostRun], rec: &StepRecord, progress: &Progress) {
    if let Some(r) = runs.iter_mut().find(|r| r.host.name == rec.host) {
        match &rec.error {
            None => {
                r.changed += 1;
                r.done_at = Some(Instant::now());
                progress.set(&rec.host, "restarted");
            }
            Some(e) => {
                r.mark_failed("restart", e);
                progress.set(&rec.host, "failed");
            }
        }
    }
}

/// Stop the roll: every target not restarted yet is marked failed with the reason.
async fn stop(
    runs: &mut [HostRun],
    report: &mut RollReport,
    pending: &[String],
    reason: String,
    progress: &Progress,
    opts: &RollingOpts,
) {
    tracing::info!(reason = %reason, not_restarted = ?pending, "rolling restart stopped");
    not_restarted(runs, pending, &reason, progress, opts).await;
    report.stopped = Some(reason);
}

/// Mark hosts whose restart will not happen (the roll stopped) as failed with the reason, and
/// put their last good files back: they were never run, and no later restart (or reboot) may
/// pick up a change the roll did not get to check. A staged binary stays staged.
pub async fn not_restarted(
    runs: &mut [HostRun],
    pending: &[String],
    reason: &str,
    progress: &Progress,
    opts: &RollingOpts,
) {
    for name in pending {
        let Some(r) = runs.iter_mut().find(|r| &r.host.name == name) else {
            continue;
        };
        let mut note = String::new();
        if let (Some(how), Some(conn)) = (opts.hosts.get(name), r.conn.as_ref()) {
            match restore_files(conn, &r.host, &opts.backup_dir, &how.written, false).await {
                Ok(lines) if !lines.is_empty() => {
                    note = format!(
                        "; its new files were put back to the last good ones (kept in {}/failed)",
                        opts.backup_dir
                    )
                }
                Ok(_) => {}
                Err(e) => note = format!("; putting back its last good files failed: {e:#}"),
            }
        }
        r.mark_failed("restart", &format!("not restarted: {reason}{note}"));
        progress.set(name, "not restarted");
    }
}

/// The restarts of one run that may roll several times (`apply`: servers, then clients):
/// every step in order, and why restarting stopped, once it did (later rolls then restart
/// nothing).
#[derive(Debug, Default)]
pub struct RollState {
    pub steps: Vec<StepRecord>,
    pub stopped: Option<String>,
}

/// Restart the agents of `targets` (host names among `runs`) without losing the cluster.
///
/// - Servers one at a time, followers first and the leader last (the leader read from Consul
///   before each step, matched to the servers' bind addresses, else the raft configuration).
/// - Before each server step: Consul healthy (`gate_problems` empty) through any connected
///   host. After it: healthy twice in a row read through the restarted server's own agent,
///   which must know the leader and be a healthy voter in autopilot.
/// - Then the client targets in batches of `opts.batch`, each batch concurrently, the cluster
///   gated before every batch and each client read back through its own agent.
/// - Targets that already failed or are not connected are skipped.
/// - A failure marks that host failed (phase `restart`), marks every target not restarted yet
///   failed with the reason, records `stopped` and returns: the roll never goes on with an
///   unhealthy cluster. A restarted host counts as changed.
///
/// `Err` only for a caller mistake (a target that is not among `runs`); what happened on the
/// hosts is in the report and in `runs`.
pub async fn rolling_restart(
    runs: &mut [HostRun],
    p: &Prepared,
    progress: &Progress,
    binds: &BTreeMap<String, IpAddr>,
    targets: &BTreeSet<String>,
    opts: &RollingOpts,
) -> Result<RollReport, Error> {
    if let Some(t) = targets
        .iter()
        .find(|t| !runs.iter().any(|r| &r.host.name == *t))
    {
        return Err(Error::Runtime(anyhow!(
            "internal: restart target {t} is not among the hosts of this run"
        )));
    }
    let cluster: &Cluster = opts.expect.as_deref().unwrap_or(&p.cluster);
    let wanted = |role: Role| -> Vec<String> {
        runs.iter()
            .filter(|r| {
                r.host.role == role
                    && targets.contains(&r.host.name)
                    && r.failed.is_none()
                    && r.conn.is_some()
            })
            .map(|r| r.host.name.clone())
            .collect()
    };
    let servers = wanted(Role::Server);
    let clients = wanted(Role::Client);
    let batch_size = opts.batch.size(clients.len());
    let mut report = RollReport {
        batch_size,
        ..RollReport::default()
    };
    if servers.is_empty() && clients.is_empty() {
        return Ok(report);
    }
    let started = Instant::now();
    let mut pending: Vec<String> = servers.iter().chain(&clients).cloned().collect();
    for n in &pending {
        progress.set(n, "waiting for its turn");
    }

    // Servers, one at a time.
    let mut todo = servers.clone();
    while !todo.is_empty() {
        let t = Instant::now();
        let gate = wait_gate(
            cluster,
            binds,
            &readers(runs, binds),
            None,
            1,
            opts.step_timeout,
        )
        .await;
        let gate_before_ms = ms(t.elapsed());
        let reading = match gate {
            Ok(r) => r,
            Err(problems) => {
                let next = &todo[0];
                let reason = format!(
                    "the cluster was not healthy before restarting {next} (waited {}s): {}",
                    opts.step_timeout.as_secs(),
                    problems.join("; ")
                );
                stop(runs, &mut report, &pending, reason, progress, opts).await;
                return Ok(report);
            }
        };
        let leader = leader_name(&reading.view, cluster, binds);
        if report.steps.is_empty() {
            report.leader_before = leader.clone();
            tracing::info!(
                leader = %leader.as_deref().unwrap_or("none"),
                order = ?server_order(&todo, leader.as_deref()),
                batch_size,
                "rolling restart plan"
            );
        }
        let name = server_order(&todo, leader.as_deref()).remove(0);
        let was_leader = leader.as_deref() == Some(name.as_str());
        let r = run_of(runs, &name);
        let mut rec = new_step(report.steps.len() + 1, r, was_leader, None);
        rec.gate_before_ms = gate_before_ms;
        let rec = restart_one(r, cluster, binds, opts, progress, rec).await;
        log_step(&rec);
        settle(runs, &rec, progress);
        todo.retain(|n| n != &name);
        pending.retain(|n| n != &name);
        let failed = rec.error.is_some();
        report.steps.push(rec);
        if failed {
            let reason = format!("the roll stopped after restarting {name} failed");
            stop(runs, &mut report, &pending, reason, progress, opts).await;
            return Ok(report);
        }
    }

    // Clients, in batches.
    for (i, batch) in client_batches(&clients, batch_size).iter().enumerate() {
        let t = Instant::now();
        let gate = wait_gate(
            cluster,
            binds,
            &readers(runs, binds),
            None,
            1,
            opts.step_timeout,
        )
        .await;
        let gate_before_ms = ms(t.elapsed());
        if let Err(problems) = gate {
            let reason = format!(
                "the cluster was not healthy before client batch {} ({}) (waited {}s): {}",
                i + 1,
                batch.join(", "),
                opts.step_timeout.as_secs(),
                problems.join("; ")
            );
            stop(runs, &mut report, &pending, reason, progress, opts).await;
            return Ok(report);
        }
        if report.steps.is_empty() {
            tracing::info!(batch_size, "rolling restart plan: clients only");
        }
        let first = report.steps.len() + 1;
        let shared: &[HostRun] = runs;
        let recs = futures::future::join_all(batch.iter().enumerate().map(|(j, name)| {
            let r = run_of(shared, name);
            let mut rec = new_step(first + j, r, false, Some(i + 1));
            rec.gate_before_ms = gate_before_ms;
            restart_one(r, cluster, binds, opts, progress, rec)
        }))
        .await;
        let mut failed = Vec::new();
        for rec in recs {
            log_step(&rec);
            settle(runs, &rec, progress);
            pending.retain(|n| n != &rec.host);
            if rec.error.is_some() {
                failed.push(rec.host.clone());
            }
            report.steps.push(rec);
        }
        if !failed.is_empty() {
            let reason = format!(
                "the roll stopped after restarting {} failed",
                failed.join(", ")
            );
            stop(runs, &mut report, &pending, reason, progress, opts).await;
            return Ok(report);
        }
    }
    tracing::info!(
        steps = report.steps.len(),
        elapsed_ms = ms(started.elapsed()),
        "rolling restart done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::verify::{Member, RaftServer};
    use consulctl_core::model::{BindAddr, Init};

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn batch_spec_parses_counts_and_percentages() {
        assert_eq!(BatchSpec::parse("3"), Ok(BatchSpec::Count(3)));
        assert_eq!(BatchSpec::parse("25%"), Ok(BatchSpec::Percent(25)));
        assert_eq!(BatchSpec::parse(" 100% "), Ok(BatchSpec::Percent(100)));
        assert_eq!(BatchSpec::default(), BatchSpec::Percent(25));
        for bad in ["0", "0%", "101%", "-1", "abc", "", "2.5", "%", "25 %x"] {
            let e = BatchSpec::parse(bad).unwrap_err();
            assert!(e.starts_with("--batch"), "{bad}: {e}");
            assert!(e.contains("1 or more") && e.contains("1% to 100%"), "{e}");
        }
    }

    #[test]
    fn batch_size_is_at_least_one_and_at_most_all() {
        let p = BatchSpec::Percent(25);
        assert_eq!(p.size(0), 1);
        assert_eq!(p.size(2), 1);
        assert_eq!(p.size(4), 1);
        assert_eq!(p.size(8), 2);
        assert_eq!(p.size(10), 2);
        assert_eq!(p.size(100), 25);
        assert_eq!(BatchSpec::Percent(100).size(7), 7);
        assert_eq!(BatchSpec::Count(3).size(10), 3);
        assert_eq!(BatchSpec::Count(30).size(10), 10);
        assert_eq!(BatchSpec::Count(1).size(5), 1);
    }

    #[test]
    fn servers_go_followers_first_and_the_leader_last() {
        let s = names(&["server1", "server2", "server3"]);
        assert_eq!(
            server_order(&s, Some("server2")),
            names(&["server1", "server3", "server2"])
        );
        assert_eq!(
            server_order(&s, Some("server1")),
            names(&["server2", "server3", "server1"])
        );
        assert_eq!(server_order(&s, Some("server3")), s);
        // No leader known, or a leader that is not a target: the given order.
        assert_eq!(server_order(&s, None), s);
        assert_eq!(server_order(&s, Some("server9")), s);
        assert_eq!(
            server_order(&names(&["server2"]), Some("server2")),
            names(&["server2"])
        );
        assert!(server_order(&[], Some("server1")).is_empty());
    }

    #[test]
    fn clients_are_chunked_in_order() {
        let c = names(&["c1", "c2", "c3", "c4", "c5"]);
        assert_eq!(
            client_batches(&c, 2),
            vec![names(&["c1", "c2"]), names(&["c3", "c4"]), names(&["c5"])]
        );
        assert_eq!(client_batches(&c, 1).len(), 5);
        assert_eq!(client_batches(&c, 0).len(), 5, "0 acts as 1");
        assert_eq!(client_batches(&c, 9), vec![c.clone()]);
        assert!(client_batches(&[], 3).is_empty());
    }

    #[test]
    fn autopilot_healthy_answer_from_1_8_7() {
        let h = parse_autopilot(200, &fixture("autopilot-health-1.8.7-healthy.json")).unwrap();
        assert!(h.healthy);
        assert_eq!(h.failure_tolerance, 1);
        assert_eq!(h.servers.len(), 3);
        assert!(h.servers.iter().all(|s| s.healthy && s.voter));
        let leader: Vec<&str> = h
            .servers
            .iter()
            .filter(|s| s.leader)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(leader, ["server2"]);
        assert_eq!(h.servers[0].address, "10.213.1.12:8300");
        assert_eq!(h.servers[0].serf_status, "alive");
    }

    #[test]
    fn autopilot_429_carries_the_unhealthy_answer() {
        let h = parse_autopilot(429, &fixture("autopilot-health-1.8.7-server-down.json")).unwrap();
        assert!(!h.healthy);
        assert_eq!(h.failure_tolerance, 0);
        let down: Vec<&AutopilotServer> = h.servers.iter().filter(|s| !s.healthy).collect();
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].name, "server1");
        assert_eq!(down[0].last_contact, "-1ns");
        assert!(down[0].voter);
    }

    #[test]
    fn autopilot_errors_carry_the_status_and_body() {
        let e = parse_autopilot(500, "No cluster leader").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("HTTP 500") && msg.contains("No cluster leader"),
            "{msg}"
        );
        assert!(parse_autopilot(200, "{not json").is_err());
    }

    /// The lab the fixtures came from: 3 servers 10.213.1.11-13, 2 clients .21/.22.
    fn lab() -> (Cluster, BTreeMap<String, IpAddr>) {
        let mut hosts = Vec::new();
        let mut binds = BTreeMap::new();
        for (name, ip, role) in [
            ("server1", "10.213.1.11", Role::Server),
            ("server2", "10.213.1.12", Role::Server),
            ("server3", "10.213.1.13", Role::Server),
            ("client1", "10.213.1.21", Role::Client),
            ("client2", "10.213.1.22", Role::Client),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            hosts.push(Host::minimal(
                name,
                &ip.to_string(),
                role,
                Init::Systemd,
                BindAddr::Fixed(ip),
            ));
            binds.insert(name.to_string(), ip);
        }
        let cluster = Cluster {
            inventory_path: "lab.toml".into(),
            name: "lab".into(),
            datacenter: "lab".into(),
            domain: "consul".into(),
            consul: consulctl_core::model::ConsulSpec {
                version: "1.8.7".parse().unwrap(),
                source: consulctl_core::model::InstallSource::File {
                    path: "consul".into(),
                },
            },
            encrypt: None,
            encrypt_auto: false,
            tls_auto: false,
            acl: false,
            acl_tokens: Default::default(),
            registrar_binary: None,
            retry_join_wan: vec![],
            hosts,
            warnings: Vec::new(),
        };
        (cluster, binds)
    }

    fn view(leader: Option<&str>, voters: &[(&str, &str, bool)], alive: &[&str]) -> ClusterView {
        ClusterView {
            via: "server1".into(),
            leader: leader.map(str::to_string),
            raft: voters
                .iter()
                .map(|(n, a, v)| RaftServer {
                    node: n.to_string(),
                    address: a.to_string(),
                    leader: Some(*a) == leader,
                    voter: *v,
                    ..Default::default()
                })
                .collect(),
            members: alive
                .iter()
                .map(|n| Member {
                    name: n.to_string(),
                    addr: String::new(),
                    status: 1,
                    tags: BTreeMap::new(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    const RAFT3: [(&str, &str, bool); 3] = [
        ("server1", "10.213.1.11:8300", true),
        ("server2", "10.213.1.12:8300", true),
        ("server3", "10.213.1.13:8300", true),
    ];
    const ALL: [&str; 5] = ["server1", "server2", "server3", "client1", "client2"];

    #[test]
    fn the_leader_is_matched_to_a_host_by_bind_address_then_raft() {
        let (cluster, binds) = lab();
        let v = view(Some("10.213.1.12:8300"), &RAFT3, &ALL);
        assert_eq!(
            leader_name(&v, &cluster, &binds).as_deref(),
            Some("server2")
        );
        // Unknown bind address: the raft configuration names the node.
        let v = view(
            Some("10.9.9.9:8300"),
            &[("serverX", "10.9.9.9:8300", true)],
            &ALL,
        );
        assert_eq!(
            leader_name(&v, &cluster, &binds).as_deref(),
            Some("serverX")
        );
        assert_eq!(
            leader_name(&view(None, &RAFT3, &ALL), &cluster, &binds),
            None
        );
    }

    #[test]
    fn the_gate_passes_only_on_a_healthy_cluster() {
        let (cluster, binds) = lab();
        let healthy = parse_autopilot(200, &fixture("autopilot-health-1.8.7-healthy.json"))
            .map_err(|e| e.to_string());
        let down = parse_autopilot(429, &fixture("autopilot-health-1.8.7-server-down.json"))
            .map_err(|e| e.to_string());
        let nonvoter = parse_autopilot(200, &fixture("autopilot-health-1.8.7-nonvoter.json"))
            .map_err(|e| e.to_string());
        let good = view(Some("10.213.1.12:8300"), &RAFT3, &ALL);

        assert!(gate_problems(&cluster, &binds, &good, &healthy, None).is_empty());
        assert!(gate_problems(&cluster, &binds, &good, &healthy, Some("server1")).is_empty());

        let p = gate_problems(&cluster, &binds, &good, &down, None);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("unhealthy servers: server1 (serf alive, last contact -1ns)"),
            "{p:?}"
        );

        // Overall Healthy: true, but the restarted server is not a voter yet.
        assert!(gate_problems(&cluster, &binds, &good, &nonvoter, None).is_empty());
        let p = gate_problems(&cluster, &binds, &good, &nonvoter, Some("server1"));
        assert_eq!(
            p,
            ["server1 is not back as a healthy voter yet (autopilot: healthy true, voter false)"]
        );

        let p = gate_problems(
            &cluster,
            &binds,
            &good,
            &Err("HTTP 500: No cluster leader".into()),
            None,
        );
        assert!(p[0].contains("autopilot health unavailable"), "{p:?}");

        // Consul's own view counts too: no leader, a missing member.
        let p = gate_problems(
            &cluster,
            &binds,
            &view(None, &RAFT3, &ALL[..4]),
            &healthy,
            None,
        );
        assert!(p.iter().any(|x| x == "no leader elected"), "{p:?}");
        assert!(p.iter().any(|x| x.contains("client2")), "{p:?}");
        // Autopilot healthy with two servers after pruning one: the inventory wants three.
        let p = gate_problems(
            &cluster,
            &binds,
            &view(Some("10.213.1.12:8300"), &RAFT3[1..], &ALL),
            &healthy,
            None,
        );
        assert!(
            p.iter()
                .any(|x| x.contains("servers not in the raft configuration: server1")),
            "{p:?}"
        );
    }

    fn lab_fake(autopilot: &str, status: u16) -> consul_api::testing::FakeTransport {
        let raft = serde_json::json!({"Servers": RAFT3.iter().map(|(n, a, v)| serde_json::json!({
            "ID": n, "Node": n, "Address": a, "Leader": *n == "server2", "Voter": v,
        })).collect::<Vec<_>>(), "Index": 9});
        let members: Vec<serde_json::Value> = ALL
            .iter()
            .map(|n| serde_json::json!({"Name": n, "Addr": "", "Port": 8301, "Status": 1}))
            .collect();
        consul_api::testing::FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.213.1.12:8300\"")
            .on_json("GET", "/v1/operator/raft/configuration", &raft)
            .on_json("GET", "/v1/agent/members", &serde_json::json!(members))
            .on(
                "GET",
                "/v1/operator/autopilot/health",
                status,
                &fixture(autopilot),
            )
    }

    #[test]
    fn a_reading_is_one_round_trip_and_an_unhealthy_autopilot_is_an_answer() {
        use consul_api::testing::block_on;
        let (cluster, binds) = lab();
        let fake = lab_fake("autopilot-health-1.8.7-server-down.json", 429);
        let client = consul_api::Client::new(fake.clone());
        let r = block_on(read_reading(&client, "server1")).unwrap();
        assert_eq!(fake.batches(), [4]);
        assert_eq!(
            fake.sent(),
            [
                "GET /v1/status/leader",
                "GET /v1/operator/raft/configuration?stale",
                "GET /v1/agent/members",
                "GET /v1/operator/autopilot/health",
            ]
        );
        assert_eq!(r.view.via, "server1");
        assert_eq!(
            leader_name(&r.view, &cluster, &binds).as_deref(),
            Some("server2")
        );
        let p = gate_problems(&cluster, &binds, &r.view, &r.autopilot, None);
        assert_eq!(
            p,
            ["autopilot reports unhealthy servers: server1 (serf alive, last contact -1ns)"]
        );
        // No leader: autopilot answers 500; the reading says so, it is not an error.
        let fake = consul_api::testing::FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"\"")
            .on("GET", "/v1/agent/members", 200, "[]")
            .on(
                "GET",
                "/v1/operator/autopilot/health",
                500,
                "No cluster leader",
            );
        let r = block_on(read_reading(&consul_api::Client::new(fake), "server1")).unwrap();
        assert_eq!(r.view.leader, None);
        assert_eq!(
            r.autopilot.unwrap_err(),
            "/v1/operator/autopilot/health answered HTTP 500: No cluster leader"
        );
        // An agent that does not answer fails the reading.
        let fake = consul_api::testing::FakeTransport::new().fail_all("ssh server1: refused");
        assert!(block_on(read_reading(&consul_api::Client::new(fake), "server1")).is_err());
    }

    #[tokio::test]
    async fn the_gate_waits_for_passes_in_a_row_through_the_first_agent_that_answers() {
        let (cluster, binds) = lab();
        let down = consul_api::testing::FakeTransport::new().fail_all("ssh server1: refused");
        let fake = lab_fake("autopilot-health-1.8.7-nonvoter.json", 200).on(
            "GET",
            "/v1/operator/autopilot/health",
            200,
            &fixture("autopilot-health-1.8.7-healthy.json"),
        );
        let agents = [
            verify::Agent::new("server1", consul_api::Client::new(down.clone())),
            verify::Agent::new("server2", consul_api::Client::new(fake.clone())),
        ];
        let r = wait_gate(
            &cluster,
            &binds,
            &agents,
            Some("server1"),
            2,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(r.view.via, "server2");
        // Not a voter yet, then healthy twice.
        assert_eq!(fake.batches(), [4, 4, 4]);
        assert_eq!(down.batches().len(), 3);

        // Never healthy: the last problems.
        let e = wait_gate(
            &cluster,
            &binds,
            &agents[1..],
            Some("server1"),
            1,
            Duration::from_millis(200),
        )
        .await;
        assert!(e.is_ok(), "healthy now");
        let e = wait_gate(
            &cluster,
            &binds,
            &agents[..1],
            None,
            1,
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e,
            ["server1 did not answer: reading the leader: ssh server1: refused"]
        );
        let e = wait_gate(&cluster, &binds, &[], None, 1, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(e, ["no reachable host to read the cluster state through"]);
    }
}
