//! `consulctl recover`: the runbook's repair steps, each verified by asking Consul.
//!
//! `recover NODE`: stop the agent, move its data dir aside to `<data_dir>.stale-<UTC>` (the
//! newest `--keep` of those are kept, the newest never deleted), start it with an empty data
//! dir (a new node ID, a keyring rebuilt from the configured key, no stale gossip or raft
//! state) and wait until Consul reports it an alive member, for a server also a healthy voter;
//! a raft entry left behind under its old node ID is removed. A server is refused (exit 2)
//! when the voters left alive while it is down would be fewer than the quorum, unless forced.
//!
//! `recover quorum`: most servers are gone for good and there is no leader. On every server
//! that SSH still reaches: stop the agent, copy its data dir aside
//! (`<data_dir>.pre-recovery-<UTC>`), write the same `raft/peers.json` (raft protocol 3: each
//! survivor's node ID, `IP:8300`, voter) on each, start them, and wait for a leader. A later
//! `apply` brings replacement servers in as new members.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::apply::{self, HostRun, Prepared};
use crate::cli::{Output, RecoverArgs};
use crate::execute::path_arg;
use crate::progress::Progress;
use crate::rolling;
use crate::ssh::Connection;
use crate::verify::{self, Member};
use consulctl_core::error::Error;
use consulctl_core::model::{Cluster, Host, Role};
use consulctl_core::templates::Templates;

const READ_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------------------------------
// Pure parts
// ------------------------------------------------------------------------------------------

/// A raft server entry with its ID (`/v1/operator/raft/configuration`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct RaftPeer {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Node", default)]
    pub node: String,
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Voter", default)]
    pub voter: bool,
}

/// Whether taking `target` down for a while keeps a quorum: the voters other than it that are
/// alive members must be at least `voters / 2 + 1`. Some(problem) when not.
pub fn quorum_while_down(
    raft: &[RaftPeer],
    members: &[Member],
    target: &str,
    target_addr: Option<&str>,
) -> Option<String> {
    let voters: Vec<&RaftPeer> = raft.iter().filter(|s| s.voter).collect();
    let is_target = |s: &RaftPeer| s.node == target || target_addr.is_some_and(|a| a == s.address);
    if !voters.iter().any(|s| is_target(s)) {
        return None;
    }
    let alive_others = voters
        .iter()
        .filter(|s| !is_target(s))
        .filter(|s| {
            members.iter().any(|m| {
                m.status == 1
                    && (m.name == s.node
                        || s.address.rsplit_once(':').map(|(ip, _)| ip) == Some(&m.addr))
            })
        })
        .count();
    let quorum = voters.len() / 2 + 1;
    if alive_others < quorum {
        Some(format!(
            "while {target} is down, {alive_others} of the {} voters would be alive; the quorum needs {quorum}",
            voters.len()
        ))
    } else {
        None
    }
}

/// `raft/peers.json` for the surviving servers: (node ID, bind IP), in the raft protocol 3
/// format Consul documents for outage recovery.
pub fn peers_json(survivors: &[(String, IpAddr)]) -> String {
    #[derive(Serialize)]
    struct Peer<'a> {
        id: &'a str,
        address: String,
        non_voter: bool,
    }
    let peers: Vec<Peer> = survivors
        .iter()
        .map(|(id, ip)| Peer {
            id,
            address: verify::raft_addr(*ip),
            non_voter: false,
        })
        .collect();
    serde_json::to_string_pretty(&peers).expect("peers serialize") + "\n"
}

// ------------------------------------------------------------------------------------------
// Running
// ------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub ok: bool,
    /// Per host, what was done, in order.
    pub actions: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub leader: Option<String>,
    pub voters: Vec<String>,
    pub elapsed_ms: u64,
    pub debug_log: PathBuf,
}

struct Ctx {
    p: Prepared,
    runs: Vec<HostRun>,
    binds: BTreeMap<String, IpAddr>,
    progress: Progress,
    timestamp: String,
    actions: BTreeMap<String, Vec<String>>,
}

impl Ctx {
    fn did(&mut self, host: &str, what: impl Into<String>) {
        let what = what.into();
        tracing::info!(host, action = %what, "done");
        self.progress.println(&format!("{host}: {what}"));
        self.actions.entry(host.to_string()).or_default().push(what);
    }

    fn run_of(&self, name: &str) -> Option<&HostRun> {
        self.runs.iter().find(|r| r.host.name == name)
    }

    fn conn(&self, name: &str) -> Result<&Connection> {
        let r = self.run_of(name).context("not selected")?;
        if let Some((phase, err)) = &r.failed {
            bail!("{name}: {phase}: {err}");
        }
        r.conn
            .as_ref()
            .with_context(|| format!("{name}: not connected"))
    }

    fn http(&self, host: &Host) -> String {
        let bind = self
            .binds
            .get(&host.name)
            .copied()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        verify::http_addr(host, bind)
    }

    /// Connected servers (except `exclude`) whose agent runs.
    fn live_servers(&self, exclude: &str) -> Vec<&HostRun> {
        self.runs
            .iter()
            .filter(|r| r.host.role == Role::Server && r.host.name != exclude)
            .filter(|r| r.failed.is_none() && r.conn.is_some())
            .filter(|r| {
                r.facts
                    .as_ref()
                    .is_some_and(|f| f.agent_running(r.host.init) || f.consul_pid.is_some())
            })
            .collect()
    }

    /// Members, leader, autopilot and the raft peers with IDs through the first of `via` that
    /// answers.
    async fn read(&self, via: &[&HostRun]) -> Result<(rolling::Reading, Vec<RaftPeer>)> {
        let mut errors = Vec::new();
        for r in via {
            let conn = r.conn.as_ref().expect("live");
            let http = self.http(&r.host);
            let res = tokio::time::timeout(READ_TIMEOUT, async {
                // One round trip: leader, raft (with server IDs), members, autopilot.
                let args = [
                    http.clone(),
                    verify::LEADER.into(),
                    verify::RAFT.into(),
                    verify::MEMBERS.into(),
                    rolling::AUTOPILOT.into(),
                ];
                let out = conn.run("consul api", verify::API, &args, None).await?;
                let map = verify::parse_api_output(&out.stdout);
                let reading = rolling::reading_from(conn.host(), &map)?;
                let peers = map
                    .get(verify::RAFT)
                    .filter(|(c, _)| *c == 200)
                    .and_then(|(_, b)| {
                        #[derive(Deserialize)]
                        struct Cfg {
                            #[serde(rename = "Servers")]
                            servers: Vec<RaftPeer>,
                        }
                        serde_json::from_str::<Cfg>(b).ok()
                    })
                    .map(|c| c.servers)
                    .unwrap_or_default();
                anyhow::Ok((reading, peers))
            })
            .await;
            match res {
                Ok(Ok(x)) => return Ok(x),
                Ok(Err(e)) => errors.push(format!("{}: {e:#}", r.host.name)),
                Err(_) => errors.push(format!("{}: timed out", r.host.name)),
            }
        }
        if via.is_empty() {
            bail!("no live server is reachable over SSH with its agent running");
        }
        bail!("no server answered: {}", errors.join("; "))
    }
}

impl Ctx {
    /// Stop the agent and wait until it is gone; the node ID its data dir held.
    async fn stop(&mut self, args: &RecoverArgs, host: &Host) -> Result<Option<String>> {
        let conn = self.conn(&host.name)?;
        let fargs = [host.init.as_str().into(), path_arg(&host.paths.data_dir)];
        let out = timed(
            args,
            conn.run("recover: stop", crate::remote::RECOVER_STOP, &fargs, None),
        )
        .await?;
        if !out.success() {
            bail!("stopping the agent on {}: {}", host.name, out.tail(8));
        }
        let id = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("old_node_id "))
            .map(str::to_string);
        self.did(
            &host.name,
            format!("stopped the agent ({})", host.init.as_str()),
        );
        Ok(id)
    }

    /// Move (`move`) or copy (`copy`) the data dir aside to `<data_dir><prefix><UTC>`, keeping
    /// the newest `--keep` of those.
    async fn set_aside(
        &mut self,
        args: &RecoverArgs,
        host: &Host,
        mode: &str,
        prefix: &str,
    ) -> Result<()> {
        let conn = self.conn(&host.name)?;
        let dargs = [
            path_arg(&host.paths.data_dir),
            mode.to_string(),
            format!("{prefix}{}", self.timestamp),
            prefix.to_string(),
            args.keep.to_string(),
        ];
        let out = timed(
            args,
            conn.run(
                "recover: set the data dir aside",
                crate::remote::RECOVER_DATA,
                &dargs,
                None,
            ),
        )
        .await?;
        for line in out.stdout.lines() {
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            let (from, to) = rest.split_once(' ').unwrap_or((rest, ""));
            match word {
                "moved" => self.did(
                    &host.name,
                    format!("moved the data dir {from} aside to {to}"),
                ),
                "copied" => self.did(&host.name, format!("copied the data dir {from} to {to}")),
                "pruned" => self.did(
                    &host.name,
                    format!("deleted {rest} (only the newest {} are kept)", args.keep),
                ),
                "absent" => self.did(&host.name, format!("{rest} did not exist")),
                _ => {}
            }
        }
        if !out.success() {
            bail!(
                "setting the data dir aside on {}: {}; the agent is stopped",
                host.name,
                out.tail(8)
            );
        }
        Ok(())
    }

    /// Start the agent and wait until it answers locally; its PID.
    async fn start(&mut self, args: &RecoverArgs, host: &Host) -> Result<String> {
        let sargs = vec![
            host.init.as_str().to_string(),
            "start".into(),
            "0".into(),
            "0".into(),
            path_arg(&host.paths.binary),
            self.http(host),
            args.timeout.to_string(),
            path_arg(&host.paths.log_dir),
            "0".into(),
        ];
        let conn = self.conn(&host.name)?;
        let out = conn
            .run("recover: start", crate::remote::SERVICE, &sargs, None)
            .await?;
        if !out.success() {
            bail!("the agent on {} did not start: {}", host.name, out.tail(15));
        }
        Ok(out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("pid "))
            .unwrap_or("?")
            .to_string())
    }
}

/// Connect to `selected` and gather facts.
async fn setup(
    args: &RecoverArgs,
    cluster: Cluster,
    selected: Vec<Host>,
    debug_log: Option<&Path>,
    command: &str,
) -> Result<Ctx, Error> {
    let templates = Templates::load(None).map_err(Error::Input)?;
    let log_path = debug_log
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::log::default_path(&cluster.state_dir(), command));
    let debug_log = crate::log::open(&log_path).map_err(Error::Runtime)?;
    tracing::info!(inventory = %args.cluster.inventory.display(), target = %args.target, force = args.force, "recover");
    for w in &cluster.warnings {
        eprintln!("warning: {w}");
    }
    let p = Prepared {
        cluster: Arc::new(cluster),
        selected,
        templates,
        binary: None,
        debug_log,
        accept_new: args.cluster.accept_new_host_keys,
        allow_downgrade: false,
        concurrency: 64,
    };
    let (runs, progress) = apply::connect_and_gather(&p).await;
    let binds = apply::bind_addrs(&p.cluster, &runs);
    Ok(Ctx {
        p,
        runs,
        binds,
        progress,
        timestamp: chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
        actions: BTreeMap::new(),
    })
}

/// `consulctl recover NODE|quorum`.
pub async fn run(args: &RecoverArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let started = Instant::now();
    let cluster = consulctl_core::inventory::load(&args.cluster.inventory)?;
    consulctl_core::inventory::persist_secrets(&cluster)?;
    let quorum = args.target == "quorum" && cluster.host("quorum").is_none();
    if !quorum && cluster.host(&args.target).is_none() {
        let names: Vec<&str> = cluster.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(Error::Input(anyhow!(
            "{}: no host named {:?} in [[hosts]]; allowed: one of {} or `quorum`",
            args.cluster.inventory.display(),
            args.target,
            names.join(", ")
        )));
    }
    let selected: Vec<Host> = cluster
        .hosts
        .iter()
        .filter(|h| h.role == Role::Server || h.name == args.target)
        .cloned()
        .collect();
    let command = if quorum { "recover-quorum" } else { "recover" };
    let mut ctx = setup(args, cluster, selected, debug_log, command).await?;
    let _lock = crate::lock::RunLock::acquire(&ctx.p.cluster.state_dir(), command)?;
    let outcome = if quorum {
        recover_quorum(&mut ctx, args).await
    } else {
        recover_node(&mut ctx, args).await
    };
    // A refusal (exit 2) changed nothing; report it as such.
    let refused = matches!(outcome, Err(Error::Input(_)) | Err(Error::Locked(_)));
    let (leader, voters) = if refused {
        (None, Vec::new())
    } else {
        final_state(&ctx).await
    };
    apply::disconnect(&mut ctx.runs, None).await;
    if refused {
        return outcome.map(|_| ());
    }
    let error = match &outcome {
        Ok(()) => None,
        Err(e) => Some(e.to_string()),
    };
    let report = Report {
        command: if quorum {
            "recover quorum".into()
        } else {
            format!("recover {}", args.target)
        },
        ok: error.is_none(),
        actions: std::mem::take(&mut ctx.actions),
        error,
        leader,
        voters,
        elapsed_ms: started.elapsed().as_millis() as u64,
        debug_log: ctx.p.debug_log.clone(),
    };
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Output::Text => print!("{}", to_text(&report)),
    }
    outcome.map_err(|e| match e {
        Error::Runtime(e) => Error::Runtime(e.context(format!(
            "{} failed (debug log: {})",
            report.command,
            report.debug_log.display()
        ))),
        other => other,
    })
}

/// Leader and voters after the run, through any live server.
async fn final_state(ctx: &Ctx) -> (Option<String>, Vec<String>) {
    let via = ctx.live_servers("");
    match ctx.read(&via).await {
        Ok((reading, peers)) => (
            reading.view.leader.clone(),
            peers
                .iter()
                .filter(|p| p.voter)
                .map(|p| format!("{} ({})", p.node, p.address))
                .collect(),
        ),
        Err(_) => (None, Vec::new()),
    }
}

async fn recover_node(ctx: &mut Ctx, args: &RecoverArgs) -> Result<(), Error> {
    let name = args.target.clone();
    let host = ctx.p.cluster.host(&name).expect("checked").clone();
    ctx.conn(&name)
        .map_err(|e| Error::Runtime(e.context(format!("cannot reach {name} over SSH"))))?;
    let target_addr = ctx.binds.get(&name).map(|ip| verify::raft_addr(*ip));
    let others: Vec<String> = ctx
        .live_servers(&name)
        .iter()
        .map(|r| r.host.name.clone())
        .collect();

    // Consul's view before anything changes: quorum while a server is down.
    ctx.progress.println("==> read the cluster state");
    let via: Vec<&HostRun> = others.iter().filter_map(|n| ctx.run_of(n)).collect();
    let before = ctx.read(&via).await;
    if host.role == Role::Server {
        let problem = match &before {
            Ok((reading, peers)) => {
                quorum_while_down(peers, &reading.view.members, &name, target_addr.as_deref())
            }
            Err(e) => Some(format!(
                "cannot read the raft configuration through another server ({e:#}); if most servers \
                 are gone for good, `consulctl recover quorum` is the step to take"
            )),
        };
        if let Some(problem) = problem {
            if !args.force {
                return Err(Error::Input(anyhow!(
                    "refusing to recover server {name}: {problem}. Nothing was changed; --force overrides"
                )));
            }
            eprintln!("WARNING: --force: {problem}; going on anyway");
            ctx.did(
                &name,
                format!("WARNING: --force past the quorum check: {problem}"),
            );
        }
    }

    // Stop, move the data dir aside, start.
    ctx.progress.println(&format!("==> recover {name}"));
    let old_id = ctx.stop(args, &host).await?;
    ctx.set_aside(args, &host, "move", ".stale-").await?;
    let pid = ctx.start(args, &host).await?;
    ctx.did(
        &name,
        format!("started the agent with an empty data dir (pid {pid})"),
    );

    // Wait until Consul reports it back.
    ctx.progress
        .println(&format!("==> wait until Consul reports {name} back"));
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut removed_old = false;
    let mut last: String;
    loop {
        let mut via_names = others.clone();
        if host.role == Role::Server || via_names.is_empty() {
            via_names.push(name.clone());
        }
        let via: Vec<&HostRun> = via_names.iter().filter_map(|n| ctx.run_of(n)).collect();
        match ctx.read(&via).await {
            Ok((reading, peers)) => {
                let member = reading.view.members.iter().find(|m| m.name == name);
                let alive = member.is_some_and(|m| m.status == 1);
                let mut problems = Vec::new();
                if !alive {
                    problems.push(format!(
                        "{name} is {}",
                        member.map(|m| m.status_word()).unwrap_or("not a member")
                    ));
                }
                if host.role == Role::Server {
                    // The entry under the old node ID, when Consul did not replace it itself.
                    if let Some(old) = old_id.as_deref() {
                        let new_id = member.and_then(|m| m.tags.get("id")).map(String::as_str);
                        let lingering =
                            peers.iter().any(|p| p.id == old) && new_id.is_some_and(|n| n != old);
                        if lingering && !removed_old && reading.view.leader.is_some() {
                            let via = via
                                .iter()
                                .find(|r| r.host.name != name)
                                .copied()
                                .or(via.first().copied());
                            if let Some(v) = via {
                                let conn = v.conn.as_ref().expect("live");
                                let out = conn
                                    .run(
                                        "recover: remove old raft peer",
                                        crate::remote::REMOVE_PEER,
                                        &[
                                            path_arg(&v.host.paths.binary),
                                            ctx.http(&v.host),
                                            old.to_string(),
                                        ],
                                        None,
                                    )
                                    .await?;
                                removed_old = true;
                                if out.success() {
                                    let msg = format!("consul operator raft remove-peer -id={old} (its entry under the old node ID lingered; through {})", v.host.name);
                                    ctx.did(&name, msg);
                                } else {
                                    problems.push(format!(
                                        "removing the old raft entry {old}: {}",
                                        out.tail(3)
                                    ));
                                }
                            }
                        }
                        if lingering {
                            problems.push(format!(
                                "the raft entry under the old node ID {old} is still there"
                            ));
                        }
                    }
                    match &reading.autopilot {
                        Ok(h) => {
                            match h.servers.iter().find(|s| {
                                s.name == name || Some(&s.address) == target_addr.as_ref()
                            }) {
                                Some(s) if s.healthy && s.voter => {}
                                Some(s) => problems.push(format!(
                                    "{name}: autopilot healthy {}, voter {}",
                                    s.healthy, s.voter
                                )),
                                None => problems
                                    .push(format!("{name} is not among autopilot's servers yet")),
                            }
                        }
                        Err(e) => problems.push(format!("autopilot: {e}")),
                    }
                }
                if problems.is_empty() {
                    let what = if host.role == Role::Server {
                        "Consul reports it an alive member and a healthy voter"
                    } else {
                        "Consul reports it an alive member"
                    };
                    ctx.did(&name, what);
                    return Ok(());
                }
                last = problems.join("; ");
            }
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            return Err(
                anyhow!("{name} did not come back within {}s: {last}", args.timeout).into(),
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn recover_quorum(ctx: &mut Ctx, args: &RecoverArgs) -> Result<(), Error> {
    // Survivors: servers SSH reaches whose data dir holds a node ID.
    let servers: Vec<Host> = ctx.p.cluster.servers().cloned().collect();
    let mut survivors: Vec<Host> = Vec::new();
    let mut lost: Vec<String> = Vec::new();
    for h in &servers {
        let r = ctx.run_of(&h.name).expect("selected");
        if r.failed.is_none() && ctx.binds.contains_key(&h.name) {
            survivors.push(h.clone());
        } else {
            lost.push(h.name.clone());
        }
    }
    if survivors.is_empty() {
        return Err(anyhow!(
            "no server is reachable over SSH: nothing to recover from ({})",
            lost.join(", ")
        )
        .into());
    }
    ctx.progress.println(&format!(
        "==> survivors: {}; gone: {}",
        survivors
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if lost.is_empty() {
            "none".to_string()
        } else {
            lost.join(", ")
        }
    ));
    // A cluster with a leader needs no peers.json.
    let live: Vec<String> = ctx
        .live_servers("")
        .iter()
        .map(|r| r.host.name.clone())
        .collect();
    let via: Vec<&HostRun> = live.iter().filter_map(|n| ctx.run_of(n)).collect();
    if let Ok((reading, _)) = ctx.read(&via).await {
        if let Some(leader) = &reading.view.leader {
            let problem = format!("the cluster has a leader ({leader}); recover quorum is for an outage where most servers are gone");
            if !args.force {
                return Err(Error::Input(anyhow!(
                    "refusing: {problem}. Nothing was changed; --force overrides"
                )));
            }
            eprintln!("WARNING: --force: {problem}; going on anyway");
        }
    }

    // Stop every survivor and copy its data dir aside.
    ctx.progress
        .println("==> stop the surviving servers, copy their data dirs aside");
    // Every survivor's node ID first (read-only): a server without one holds no raft state.
    let mut ids: Vec<(String, IpAddr)> = Vec::new();
    for h in &survivors {
        let conn = ctx.conn(&h.name)?;
        let out = conn
            .run_ok(
                "recover: read node-id",
                crate::remote::READ_NODE_ID,
                &[path_arg(&h.paths.data_dir)],
                None,
            )
            .await?;
        match out.stdout.split_whitespace().next() {
            Some(id) => ids.push((id.to_string(), ctx.binds[&h.name])),
            None => {
                return Err(anyhow!(
                    "{}: {} is missing: this server holds no raft state to recover from; remove it \
                     from the inventory's servers for the recovery and let `apply` add it afterwards. \
                     Nothing was changed",
                    h.name,
                    h.paths.data_dir.join("node-id").display()
                )
                .into())
            }
        }
    }
    for h in &survivors {
        ctx.stop(args, h).await?;
        ctx.set_aside(args, h, "copy", ".pre-recovery-").await?;
    }

    // The same peers.json on every survivor, then start them all.
    let peers = peers_json(&ids);
    tracing::info!(peers = %peers, "peers.json");
    ctx.progress.println("==> write raft/peers.json and start");
    for h in &survivors {
        let conn = ctx.conn(&h.name)?;
        conn.run_ok(
            "recover: write peers.json",
            crate::remote::RECOVER_PEERS,
            &[path_arg(&h.paths.data_dir)],
            Some(peers.as_bytes()),
        )
        .await?;
        ctx.did(
            &h.name,
            format!(
                "wrote {} with {} voter{}",
                h.paths.data_dir.join("raft/peers.json").display(),
                ids.len(),
                if ids.len() == 1 { "" } else { "s" }
            ),
        );
    }
    for h in &survivors {
        let pid = ctx.start(args, h).await?;
        ctx.did(&h.name, format!("started the agent (pid {pid})"));
    }

    // Wait for a leader among the survivors.
    ctx.progress.println("==> wait for a leader");
    let names: Vec<String> = survivors.iter().map(|h| h.name.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let t0 = Instant::now();
    let mut last: String;
    loop {
        let via: Vec<&HostRun> = names.iter().filter_map(|n| ctx.run_of(n)).collect();
        match ctx.read(&via).await {
            Ok((reading, peers)) if reading.view.leader.is_some() => {
                let want: BTreeSet<String> =
                    ids.iter().map(|(_, ip)| verify::raft_addr(*ip)).collect();
                let have: BTreeSet<String> = peers
                    .iter()
                    .filter(|p| p.voter)
                    .map(|p| p.address.clone())
                    .collect();
                if want.is_subset(&have) {
                    let leader = reading.view.leader.clone().unwrap_or_default();
                    ctx.did(
                        &names[0],
                        format!(
                            "leader {leader} elected {:.1}s after the start; voters: {}",
                            t0.elapsed().as_secs_f64(),
                            have.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    );
                    if !lost.is_empty() {
                        ctx.progress.println(&format!(
                            "next: replace {} in the inventory with new server hosts (or remove them) and run `consulctl apply -i {}`",
                            lost.join(", "),
                            args.cluster.inventory.display()
                        ));
                    }
                    return Ok(());
                }
                last = format!("voters {have:?}, expected {want:?}");
            }
            Ok(_) => last = "no leader yet".into(),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            return Err(anyhow!("no leader within {}s: {last}", args.timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn timed<T>(
    args: &RecoverArgs,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(Duration::from_secs(args.timeout), fut).await {
        Ok(r) => r,
        Err(_) => bail!("no answer within {}s", args.timeout),
    }
}

pub fn to_text(r: &Report) -> String {
    let mut out = String::new();
    for (host, actions) in &r.actions {
        out.push_str(&format!("{host}:\n"));
        for a in actions {
            out.push_str(&format!("  - {a}\n"));
        }
    }
    match &r.leader {
        Some(l) => out.push_str(&format!("leader: {l}\n")),
        None => out.push_str("leader: none\n"),
    }
    if !r.voters.is_empty() {
        out.push_str(&format!("voters: {}\n", r.voters.join(", ")));
    }
    out.push_str(&format!(
        "{}: {} in {:.1}s\n",
        r.command,
        if r.ok { "done" } else { "FAILED" },
        r.elapsed_ms as f64 / 1000.0
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(node: &str, ip: &str, voter: bool) -> RaftPeer {
        RaftPeer {
            id: format!("id-{node}"),
            node: node.into(),
            address: format!("{ip}:8300"),
            voter,
        }
    }

    fn member(name: &str, ip: &str, status: u8) -> Member {
        Member {
            name: name.into(),
            addr: ip.into(),
            status,
            tags: Default::default(),
            ..Default::default()
        }
    }

    #[test]
    fn recovering_one_of_three_healthy_servers_keeps_quorum() {
        let raft = [
            peer("s1", "10.0.0.1", true),
            peer("s2", "10.0.0.2", true),
            peer("s3", "10.0.0.3", true),
        ];
        let members = [
            member("s1", "10.0.0.1", 1),
            member("s2", "10.0.0.2", 1),
            member("s3", "10.0.0.3", 1),
        ];
        assert_eq!(
            quorum_while_down(&raft, &members, "s3", Some("10.0.0.3:8300")),
            None
        );
    }

    #[test]
    fn recovering_a_server_while_another_is_failed_is_refused() {
        let raft = [
            peer("s1", "10.0.0.1", true),
            peer("s2", "10.0.0.2", true),
            peer("s3", "10.0.0.3", true),
        ];
        let members = [
            member("s1", "10.0.0.1", 1),
            member("s2", "10.0.0.2", 4),
            member("s3", "10.0.0.3", 1),
        ];
        let p = quorum_while_down(&raft, &members, "s3", Some("10.0.0.3:8300")).unwrap();
        assert!(
            p.contains("1 of the 3 voters would be alive; the quorum needs 2"),
            "{p}"
        );
    }

    #[test]
    fn a_server_that_is_not_a_voter_needs_no_quorum_check() {
        let raft = [peer("s1", "10.0.0.1", true)];
        let members = [member("s1", "10.0.0.1", 1)];
        assert_eq!(
            quorum_while_down(&raft, &members, "s2", Some("10.0.0.2:8300")),
            None
        );
    }

    #[test]
    fn the_only_server_cannot_be_recovered_without_force() {
        let raft = [peer("s1", "10.0.0.1", true)];
        let members = [member("s1", "10.0.0.1", 1)];
        assert!(quorum_while_down(&raft, &members, "s1", None).is_some());
    }

    /// Run a remote script locally with `sh -c SCRIPT sh ARGS...`, as on a host.
    fn sh(script: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    #[test]
    fn data_dir_moved_aside_recreated_empty_and_only_the_newest_kept() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("consul");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("node-id"), "cloned").unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
        for ts in ["20240101T000000Z", "20240102T000000Z", "20240103T000000Z"] {
            std::fs::create_dir(tmp.path().join(format!("consul.stale-{ts}"))).unwrap();
        }
        let d = data.to_str().unwrap();
        let out = sh(
            crate::remote::RECOVER_DATA,
            &[d, "move", ".stale-20250101T000000Z", ".stale-", "3"],
            None,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("moved {d} {d}.stale-20250101T000000Z")),
            "{stdout}"
        );
        // The data dir is back, empty, with its mode.
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        // The moved one keeps its contents; of four stale dirs the oldest went.
        let moved = tmp.path().join("consul.stale-20250101T000000Z/node-id");
        assert_eq!(std::fs::read_to_string(moved).unwrap(), "cloned");
        assert!(
            stdout.contains("pruned") && stdout.contains("20240101T000000Z"),
            "{stdout}"
        );
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "consul",
                "consul.stale-20240102T000000Z",
                "consul.stale-20240103T000000Z",
                "consul.stale-20250101T000000Z"
            ]
        );
        // The same suffix twice is refused and touches nothing.
        let again = sh(
            crate::remote::RECOVER_DATA,
            &[d, "move", ".stale-20250101T000000Z", ".stale-", "3"],
            None,
        );
        assert_eq!(again.status.code(), Some(4));
    }

    #[test]
    fn keep_one_never_deletes_the_newest_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("consul");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("raft.db"), "state").unwrap();
        let d = data.to_str().unwrap();
        for ts in ["20240101T000000Z", "20240102T000000Z"] {
            let out = sh(
                crate::remote::RECOVER_DATA,
                &[
                    d,
                    "copy",
                    &format!(".pre-recovery-{ts}"),
                    ".pre-recovery-",
                    "1",
                ],
                None,
            );
            assert!(out.status.success());
        }
        // copy leaves the data dir in place; only the newest copy is kept.
        assert_eq!(
            std::fs::read_to_string(data.join("raft.db")).unwrap(),
            "state"
        );
        assert!(!tmp
            .path()
            .join("consul.pre-recovery-20240101T000000Z")
            .exists());
        assert_eq!(
            std::fs::read_to_string(
                tmp.path()
                    .join("consul.pre-recovery-20240102T000000Z/raft.db")
            )
            .unwrap(),
            "state"
        );
    }

    #[test]
    fn peers_json_written_from_stdin_into_the_raft_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_str().unwrap();
        let json = peers_json(&[("id-1".into(), "10.1.0.1".parse().unwrap())]);
        let out = sh(crate::remote::RECOVER_PEERS, &[d], Some(&json));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("raft/peers.json")).unwrap(),
            json
        );
        let out = sh(crate::remote::READ_NODE_ID, &[d], None);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "");
        std::fs::write(tmp.path().join("node-id"), "abc").unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sh(crate::remote::READ_NODE_ID, &[d], None).stdout),
            "abc"
        );
    }

    #[test]
    fn peers_json_is_raft_protocol_3() {
        let json = peers_json(&[
            (
                "adf4238a-882b-9ddc-4a9d-5b6758e4159e".into(),
                "10.1.0.1".parse().unwrap(),
            ),
            (
                "8b6dda82-3103-11e7-93ae-92361f002671".into(),
                "10.1.0.2".parse().unwrap(),
            ),
        ]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"id": "adf4238a-882b-9ddc-4a9d-5b6758e4159e", "address": "10.1.0.1:8300", "non_voter": false},
                {"id": "8b6dda82-3103-11e7-93ae-92361f002671", "address": "10.1.0.2:8300", "non_voter": false}
            ])
        );
    }
}
