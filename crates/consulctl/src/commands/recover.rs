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
//! `apply` brings replacement servers in as new members. Refused (exit 2) while the cluster has
//! a leader, unless forced.
//!
//! Consul is read and written through `consul_api::Client`s of live servers' agents ([`Via`]);
//! the decisions ([`check_node`], [`wait_back`], [`split_survivors`], [`refuse_if_leader`],
//! [`peers_of`], [`peers_json`], [`wait_leader`]) take such clients or plain data, so they are
//! tested against recorded answers. The scripts on hosts only stop and start agents and move,
//! copy and write files.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::cli::RecoverArgs;
use crate::engine::context::{self, HostRun, Prepared};
use crate::engine::execute::path_arg;
use crate::engine::progress::Progress;
use crate::engine::verify::{self, ClusterView};
use crate::remote::ssh::Connection;
use consul_api::poll::{wait_until_with, Clock, Last, Progress as Poll, TokioClock};
use consul_api::quorum::{parse_addr_ip, raft_addr};
use consul_api::{agent, operator, status, AutopilotHealth, Client};
use consulctl_core::error::Error;
use consulctl_core::model::{Cluster, Host, Role};
use consulctl_core::templates::Templates;

const READ_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------------------------------
// Decisions, through Consul API clients (tested with a fake transport)
// ------------------------------------------------------------------------------------------

pub use crate::engine::via::Via;
pub use consul_api::quorum::quorum_while_down;

/// Consul's state through one agent: leader, raft configuration (with the servers' IDs),
/// members, and autopilot's health (the error, as text, when autopilot did not answer).
#[derive(Debug, Clone)]
pub struct Reading {
    pub view: ClusterView,
    pub autopilot: std::result::Result<AutopilotHealth, String>,
}

/// Leader, raft configuration, members and autopilot health through `client`, in one round
/// trip. Without a leader the raft configuration may be unavailable: it is then empty.
pub async fn read_state(client: &Client, via: &str) -> Result<Reading> {
    let leader = status::leader();
    let raft = operator::raft_configuration(true);
    let members = agent::members(false);
    let autopilot = operator::autopilot_health();
    let answers = client
        .send(vec![
            leader.request.clone(),
            raft.request.clone(),
            members.request.clone(),
            autopilot.request.clone(),
        ])
        .await?;
    let leader = leader.finish(&answers[0]).context("reading the leader")?;
    let raft = raft
        .finish(&answers[1])
        .map(|c| c.servers)
        .unwrap_or_default();
    let members = members.finish(&answers[2]).context("reading the members")?;
    Ok(Reading {
        view: ClusterView {
            via: via.to_string(),
            leader,
            raft,
            members,
        },
        autopilot: autopilot.finish(&answers[3]).map_err(|e| e.to_string()),
    })
}

/// [`read_state`] through the first of `via` that answers.
pub async fn read_via(via: &[Via]) -> Result<(Reading, &Via)> {
    let got =
        verify::first_answer(via, Some(READ_TIMEOUT), |a| read_state(&a.client, &a.host)).await;
    if let Some((a, reading)) = got.answer {
        return Ok((reading, a));
    }
    if via.is_empty() {
        bail!("no live server is reachable over SSH with its agent running");
    }
    let errors: Vec<String> = got.errors.iter().map(verify::NoAnswer::short).collect();
    bail!("no server answered: {}", errors.join("; "))
}

/// Whether `recover NODE` may take the server `name` (bind IP `ip`) down, asked through the
/// other live servers `via`: refused ([`Error::Locked`], exit 2) when the other voters alive
/// would be fewer than the quorum while it is down, or when no other server answers. With
/// `force` the problem is returned as a warning instead. A client needs no check.
pub async fn check_node(
    via: &[Via],
    name: &str,
    ip: Option<IpAddr>,
    server: bool,
    force: bool,
) -> Result<Option<String>, Error> {
    if !server {
        return Ok(None);
    }
    let problem = match read_via(via).await {
        Ok((r, _)) => quorum_while_down(&r.view.raft, &r.view.members, name, ip),
        Err(e) => Some(format!(
            "cannot read the raft configuration through another server ({e:#}); if most servers \
             are gone for good, `consulctl recover quorum` is the step to take"
        )),
    };
    match problem {
        None => Ok(None),
        Some(problem) if !force => Err(Error::Locked(anyhow!(
            "refusing to recover server {name}: {problem}. Nothing was changed; --force overrides"
        ))),
        Some(problem) => Ok(Some(problem)),
    }
}

/// Why a recovered node is not back as a member: not an alive member of the pool.
pub fn member_not_back(r: &Reading, name: &str) -> Option<String> {
    let member = r.view.members.iter().find(|m| m.name == name);
    (!member.is_some_and(|m| m.is_alive())).then(|| {
        format!(
            "{name} is {}",
            member.map(|m| m.status_word()).unwrap_or("not a member")
        )
    })
}

/// Why a recovered server is not back as a voter: not a healthy voter by autopilot (matched
/// by name, else by the IP of its raft address).
pub fn voter_not_back(r: &Reading, name: &str, ip: Option<IpAddr>) -> Option<String> {
    match &r.autopilot {
        Ok(h) => {
            match h.servers.iter().find(|s| {
                s.name == name || ip.is_some_and(|ip| parse_addr_ip(&s.address) == Some(ip))
            }) {
                Some(s) if s.healthy && s.voter => None,
                Some(s) => Some(format!(
                    "{name}: autopilot healthy {}, voter {}",
                    s.healthy, s.voter
                )),
                None => Some(format!("{name} is not among autopilot's servers yet")),
            }
        }
        Err(e) => Some(format!("autopilot: {e}")),
    }
}

/// Whether the raft configuration still holds an entry under the recovered server's old node
/// ID while its member carries a new one (Consul did not replace the entry itself).
pub fn old_entry_lingers(r: &Reading, name: &str, old_id: &str) -> bool {
    let new_id = r
        .view
        .members
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| m.tags.get("id"))
        .map(String::as_str);
    r.view.raft.iter().any(|p| p.id == old_id) && new_id.is_some_and(|n| n != old_id)
}

/// Wait until Consul, asked through the first of `via` that answers, reports the recovered
/// node back ([`member_not_back`], for a server also [`voter_not_back`], find nothing). For a
/// server whose raft entry lingers under its
/// old node ID `old_id`, that entry is removed once (by ID, through a server other than the
/// node itself when there is one) while there is a leader. `done` gets what was done.
#[allow(clippy::too_many_arguments)]
pub async fn wait_back(
    via: &[Via],
    name: &str,
    ip: Option<IpAddr>,
    server: bool,
    old_id: Option<&str>,
    clock: &dyn Clock,
    timeout: Duration,
    done: &mut Vec<String>,
) -> Result<()> {
    let removed_old = AtomicBool::new(false);
    let said: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let (removed_old, said_ref) = (&removed_old, &said);
    let waited = wait_until_with(
        clock,
        &format!("{name} back"),
        timeout,
        Duration::from_secs(1),
        || async move {
            let (r, _) = read_via(via).await.map_err(|e| format!("{e:#}"))?;
            let mut problems: Vec<String> = member_not_back(&r, name).into_iter().collect();
            if server {
                if let Some(old) = old_id {
                    let lingering = old_entry_lingers(&r, name, old);
                    if lingering && !removed_old.load(Ordering::SeqCst) && r.view.leader.is_some() {
                        let through = via.iter().find(|v| v.host != name).or(via.first());
                        if let Some(v) = through {
                            removed_old.store(true, Ordering::SeqCst);
                            match v.client.call(operator::raft_remove_peer_by_id(old)).await {
                                Ok(()) => said_ref.lock().unwrap_or_else(|e| e.into_inner()).push(
                                    format!(
                                    "consul operator raft remove-peer -id={old} (its entry under \
                                         the old node ID lingered; through {})",
                                    v.host
                                ),
                                ),
                                Err(e) => {
                                    problems.push(format!("removing the old raft entry {old}: {e}"))
                                }
                            }
                        }
                    }
                    if lingering {
                        problems.push(format!(
                            "the raft entry under the old node ID {old} is still there"
                        ));
                    }
                }
                problems.extend(voter_not_back(&r, name, ip));
            }
            Ok::<_, String>(if problems.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(problems.join("; "))
            })
        },
    )
    .await;
    done.extend(said.into_inner().unwrap_or_else(|e| e.into_inner()));
    match waited {
        Ok(()) => {
            done.push(if server {
                "Consul reports it an alive member and a healthy voter".to_string()
            } else {
                "Consul reports it an alive member".to_string()
            });
            Ok(())
        }
        Err(t) => {
            let last = match t.last {
                Last::Pending(s) | Last::Error(s) => s,
            };
            bail!(
                "{name} did not come back within {}s: {last}",
                timeout.as_secs()
            )
        }
    }
}

/// `recover quorum`'s survivors: the servers SSH reaches whose bind IP is known, in inventory
/// order, and the servers gone (the rest).
pub fn split_survivors(servers: &[(String, bool)]) -> (Vec<String>, Vec<String>) {
    let (ok, gone): (Vec<_>, Vec<_>) = servers.iter().partition(|(_, reachable)| *reachable);
    (
        ok.into_iter().map(|(n, _)| n.clone()).collect(),
        gone.into_iter().map(|(n, _)| n.clone()).collect(),
    )
}

/// `recover quorum` is for an outage without a leader: refused ([`Error::Locked`], exit 2)
/// when Consul, asked through the first of `via` that answers, reports one; with `force` the
/// problem is returned as a warning. No answer at all is no refusal (the servers may be down).
pub async fn refuse_if_leader(via: &[Via], force: bool) -> Result<Option<String>, Error> {
    let Ok((r, _)) = read_via(via).await else {
        return Ok(None);
    };
    let Some(leader) = &r.view.leader else {
        return Ok(None);
    };
    let problem = format!(
        "the cluster has a leader ({leader}); recover quorum is for an outage where most servers are gone"
    );
    if !force {
        return Err(Error::Locked(anyhow!(
            "refusing: {problem}. Nothing was changed; --force overrides"
        )));
    }
    Ok(Some(problem))
}

/// The peers of `raft/peers.json`: each survivor's (node ID, bind IP). Err: the first survivor
/// without a node ID (it holds no raft state to recover from).
pub fn peers_of(
    survivors: &[(String, IpAddr, Option<String>)],
) -> std::result::Result<Vec<(String, IpAddr)>, String> {
    survivors
        .iter()
        .map(|(name, ip, id)| match id {
            Some(id) => Ok((id.clone(), *ip)),
            None => Err(name.clone()),
        })
        .collect()
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
            address: raft_addr(*ip),
            non_voter: false,
        })
        .collect();
    serde_json::to_string_pretty(&peers).expect("peers serialize") + "\n"
}

/// Whether the recovered cluster is up: a leader, and every survivor (bind IPs `want`) a
/// voter. Ok: the leader and the voters' addresses; Err: what is missing.
pub fn leader_elected(
    r: &Reading,
    want: &[IpAddr],
) -> std::result::Result<(String, Vec<String>), String> {
    let Some(leader) = &r.view.leader else {
        return Err("no leader yet".into());
    };
    let have: BTreeSet<String> = r
        .view
        .raft
        .iter()
        .filter(|p| p.voter)
        .map(|p| p.address.clone())
        .collect();
    let have_ips: BTreeSet<IpAddr> = have.iter().filter_map(|a| parse_addr_ip(a)).collect();
    if want.iter().all(|ip| have_ips.contains(ip)) {
        return Ok((leader.clone(), have.into_iter().collect()));
    }
    let want: BTreeSet<String> = want.iter().map(|ip| raft_addr(*ip)).collect();
    Err(format!("voters {have:?}, expected {want:?}"))
}

/// Wait until Consul, asked through the first of `via` that answers, reports a leader with
/// every survivor a voter ([`leader_elected`]).
pub async fn wait_leader(
    via: &[Via],
    want: &[IpAddr],
    clock: &dyn Clock,
    timeout: Duration,
) -> Result<(String, Vec<String>)> {
    let waited = wait_until_with(
        clock,
        "a leader",
        timeout,
        Duration::from_millis(500),
        || async move {
            let (r, _) = read_via(via).await.map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>(match leader_elected(&r, want) {
                Ok(x) => Poll::Ready(x),
                Err(why) => Poll::Pending(why),
            })
        },
    )
    .await;
    waited.map_err(|t| {
        let last = match t.last {
            Last::Pending(s) | Last::Error(s) => s,
        };
        anyhow!("no leader within {}s: {last}", timeout.as_secs())
    })
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

    /// Clients of the agents of the named hosts (those connected), in that order.
    fn vias(&self, names: &[String]) -> Vec<Via> {
        names
            .iter()
            .filter_map(|n| self.run_of(n))
            .filter_map(|r| {
                Some(Via::new(
                    r.host.name.clone(),
                    crate::remote::consul::client(r.conn.as_ref()?, &self.http(&r.host)),
                ))
            })
            .collect()
    }

    /// Clients of the live servers' agents (except `exclude`).
    fn live_vias(&self, exclude: &str) -> Vec<Via> {
        let names: Vec<String> = self
            .live_servers(exclude)
            .iter()
            .map(|r| r.host.name.clone())
            .collect();
        self.vias(&names)
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
        .unwrap_or_else(|| crate::engine::log::default_path(&cluster.state_dir(), command));
    let debug_log = crate::engine::log::open(&log_path).map_err(Error::Runtime)?;
    tracing::info!(inventory = %args.cluster.inventory.display(), target = %args.target, force = args.force, "recover");
    for w in &cluster.warnings {
        eprintln!("warning: {w}");
    }
    let p = Prepared {
        cluster: Arc::new(cluster),
        selected,
        templates,
        binary: None,
        host_binary: None,
        debug_log,
        accept_new: args.cluster.accept_new_host_keys,
        allow_downgrade: false,
        concurrency: 64,
    };
    let (runs, progress) = context::connect_and_gather(&p).await;
    let binds = context::bind_addrs(&p.cluster, &runs);
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
    let _lock = crate::engine::lock::RunLock::acquire(&ctx.p.cluster.state_dir(), command)?;
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
    context::disconnect(&mut ctx.runs, None).await;
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
    crate::engine::output::print(args.output, &report);
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
    match read_via(&ctx.live_vias("")).await {
        Ok((reading, _)) => (
            reading.view.leader.clone(),
            reading
                .view
                .raft
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
    let ip = ctx.binds.get(&name).copied();
    let server = host.role == Role::Server;
    let others: Vec<String> = ctx
        .live_servers(&name)
        .iter()
        .map(|r| r.host.name.clone())
        .collect();

    // Consul's view before anything changes: quorum while a server is down.
    ctx.progress.println("==> read the cluster state");
    if let Some(problem) = check_node(&ctx.vias(&others), &name, ip, server, args.force).await? {
        eprintln!("WARNING: --force: {problem}; going on anyway");
        ctx.did(
            &name,
            format!("WARNING: --force past the quorum check: {problem}"),
        );
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
    let mut via_names = others.clone();
    if server || via_names.is_empty() {
        via_names.push(name.clone());
    }
    let via = ctx.vias(&via_names);
    let mut done = Vec::new();
    let back = wait_back(
        &via,
        &name,
        ip,
        server,
        old_id.as_deref(),
        &TokioClock,
        Duration::from_secs(args.timeout),
        &mut done,
    )
    .await;
    for d in done {
        ctx.did(&name, d);
    }
    back.map_err(Error::Runtime)
}

async fn recover_quorum(ctx: &mut Ctx, args: &RecoverArgs) -> Result<(), Error> {
    // Survivors: servers SSH reaches (with a bind IP).
    let servers: Vec<(String, bool)> = ctx
        .p
        .cluster
        .servers()
        .map(|h| {
            let r = ctx.run_of(&h.name).expect("selected");
            (
                h.name.clone(),
                r.failed.is_none() && ctx.binds.contains_key(&h.name),
            )
        })
        .collect();
    let (survivor_names, lost) = split_survivors(&servers);
    if survivor_names.is_empty() {
        return Err(anyhow!(
            "no server is reachable over SSH: nothing to recover from ({})",
            lost.join(", ")
        )
        .into());
    }
    let survivors: Vec<Host> = survivor_names
        .iter()
        .map(|n| ctx.p.cluster.host(n).expect("a server").clone())
        .collect();
    ctx.progress.println(&format!(
        "==> survivors: {}; gone: {}",
        survivor_names.join(", "),
        if lost.is_empty() {
            "none".to_string()
        } else {
            lost.join(", ")
        }
    ));
    // A cluster with a leader needs no peers.json.
    if let Some(problem) = refuse_if_leader(&ctx.live_vias(""), args.force).await? {
        eprintln!("WARNING: --force: {problem}; going on anyway");
    }

    // Stop every survivor and copy its data dir aside.
    ctx.progress
        .println("==> stop the surviving servers, copy their data dirs aside");
    // Every survivor's node ID first (read-only): a server without one holds no raft state.
    let mut found: Vec<(String, IpAddr, Option<String>)> = Vec::new();
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
        let id = out.stdout.split_whitespace().next().map(str::to_string);
        let missing = id.is_none();
        found.push((h.name.clone(), ctx.binds[&h.name], id));
        if missing {
            break;
        }
    }
    let ids = peers_of(&found).map_err(|name| {
        let h = ctx.p.cluster.host(&name).expect("a survivor");
        Error::Runtime(anyhow!(
            "{}: {} is missing: this server holds no raft state to recover from; remove it \
             from the inventory's servers for the recovery and let `apply` add it afterwards. \
             Nothing was changed",
            h.name,
            h.paths.data_dir.join("node-id").display()
        ))
    })?;
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
    let t0 = Instant::now();
    let want: Vec<IpAddr> = ids.iter().map(|(_, ip)| *ip).collect();
    let (leader, voters) = wait_leader(
        &ctx.vias(&survivor_names),
        &want,
        &TokioClock,
        Duration::from_secs(args.timeout),
    )
    .await?;
    ctx.did(
        &survivor_names[0],
        format!(
            "leader {leader} elected {:.1}s after the start; voters: {}",
            t0.elapsed().as_secs_f64(),
            voters.join(", ")
        ),
    );
    if !lost.is_empty() {
        ctx.progress.println(&format!(
            "next: replace {} in the inventory with new server hosts (or remove them) and run `consulctl apply -i {}`",
            lost.join(", "),
            args.cluster.inventory.display()
        ));
    }
    Ok(())
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

impl crate::engine::output::Report for Report {
    fn to_text(&self) -> String {
        to_text(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_api::testing::{FakeTransport, ManualClock};

    // The quorum arithmetic while a server is down (one of three healthy, one failed, not a
    // voter, the only server, IPv6) is tested in `consul_api::quorum`; here: the decisions of
    // `recover` over Consul's answers (fixtures in tests/fixtures/consul).

    fn fixture(name: &str) -> FakeTransport {
        FakeTransport::from_file(format!(
            "{}/tests/fixtures/consul/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn via(name: &str, fake: &FakeTransport) -> Via {
        Via::new(name, Client::new(fake.clone()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const READ: [&str; 4] = [
        "GET /v1/status/leader",
        "GET /v1/operator/raft/configuration?stale",
        "GET /v1/agent/members",
        "GET /v1/operator/autopilot/health",
    ];

    #[tokio::test]
    async fn recovering_one_of_three_healthy_servers_goes_ahead() {
        let fake = fixture("healthy-3-servers.json");
        let w = check_node(
            &[via("server1", &fake)],
            "server3",
            Some(ip("10.0.0.3")),
            true,
            false,
        )
        .await
        .unwrap();
        assert_eq!(w, None);
        assert_eq!(fake.sent(), READ);
        assert_eq!(fake.batches(), [4], "one round trip");
    }

    #[tokio::test]
    async fn recovering_a_server_while_another_is_failed_is_refused_with_exit_2() {
        let fake = fixture("one-server-failed.json");
        let e = check_node(
            &[via("server1", &fake)],
            "server2",
            Some(ip("10.0.0.2")),
            true,
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.to_string(),
            "refusing to recover server server2: while server2 is down, 1 of the 3 voters would \
             be alive; the quorum needs 2. Nothing was changed; --force overrides"
        );
        assert_eq!(fake.sent(), READ, "nothing but the read");
        // The failed one itself may be recovered: the other two keep the quorum.
        let w = check_node(
            &[via("server1", &fake)],
            "server3",
            Some(ip("10.0.0.3")),
            true,
            false,
        )
        .await
        .unwrap();
        assert_eq!(w, None);
        // --force: the problem comes back as a warning.
        let w = check_node(
            &[via("server1", &fake)],
            "server2",
            Some(ip("10.0.0.2")),
            true,
            true,
        )
        .await
        .unwrap();
        assert_eq!(
            w.as_deref(),
            Some("while server2 is down, 1 of the 3 voters would be alive; the quorum needs 2")
        );
        // A client needs no check and no read.
        fake.clear_record();
        assert_eq!(
            check_node(&[via("server1", &fake)], "client1", None, false, false)
                .await
                .unwrap(),
            None
        );
        assert!(fake.sent().is_empty());
    }

    #[tokio::test]
    async fn recovering_without_a_quorum_or_without_an_answer_is_refused() {
        let fake = fixture("no-leader.json");
        let e = check_node(
            &[via("server1", &fake)],
            "server1",
            Some(ip("10.0.0.1")),
            true,
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert!(
            e.to_string().contains("0 of the 3 voters would be alive"),
            "{e}"
        );
        let down = FakeTransport::new().fail_all("ssh server1: connection refused");
        let e = check_node(&[via("server1", &down)], "server2", None, true, false)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("`consulctl recover quorum` is the step"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn ipv6_servers_are_matched_by_their_bracketed_raft_addresses() {
        // The inventory's server2 / server3 are Consul's node-b / node-c; node-c failed.
        let fake = fixture("ipv6-one-server-failed.json");
        let e = check_node(
            &[via("server1", &fake)],
            "server2",
            Some(ip("fd00::2")),
            true,
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("while server2 is down, 1 of the 3 voters would be alive"),
            "{e}"
        );
        let w = check_node(
            &[via("server1", &fake)],
            "server3",
            Some(ip("fd00::3")),
            true,
            false,
        )
        .await
        .unwrap();
        assert_eq!(w, None);
        // Autopilot's entry is found by the raft address too.
        let (r, _) = read_via(&[via("server1", &fake)]).await.unwrap();
        assert_eq!(
            voter_not_back(&r, "server2", Some(ip("fd00::2"))),
            None,
            "node-b is a healthy voter"
        );
        assert_eq!(
            voter_not_back(&r, "server3", Some(ip("fd00::3"))).as_deref(),
            Some("server3: autopilot healthy false, voter true")
        );
    }

    #[tokio::test]
    async fn a_recovered_server_whose_old_raft_entry_lingers_gets_it_removed_once() {
        let fake = fixture("server-back-with-old-raft-entry.json");
        let old = "0d6d1f4c-6f0e-8c3e-3c2b-8a1d3e1f0003";
        let clock = ManualClock::new();
        let mut done = Vec::new();
        wait_back(
            &[via("server1", &fake), via("server3", &fake)],
            "server3",
            Some(ip("10.0.0.3")),
            true,
            Some(old),
            &clock,
            Duration::from_secs(60),
            &mut done,
        )
        .await
        .unwrap();
        assert_eq!(
            done,
            [
                format!(
                    "consul operator raft remove-peer -id={old} (its entry under the old node ID \
                     lingered; through server1)"
                ),
                "Consul reports it an alive member and a healthy voter".to_string(),
            ]
        );
        let mut want: Vec<String> = READ.iter().map(|s| s.to_string()).collect();
        want.push(format!("DELETE /v1/operator/raft/peer?id={old}"));
        want.extend(READ.iter().map(|s| s.to_string()));
        assert_eq!(fake.sent(), want);
        assert_eq!(clock.sleeps(), [Duration::from_secs(1)]);
    }

    #[tokio::test]
    async fn a_node_that_does_not_come_back_times_out_naming_why() {
        let fake = fixture("one-server-failed.json");
        let clock = ManualClock::new();
        let mut done = Vec::new();
        let e = wait_back(
            &[via("server1", &fake)],
            "server3",
            Some(ip("10.0.0.3")),
            true,
            None,
            &clock,
            Duration::from_secs(3),
            &mut done,
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "server3 did not come back within 3s: server3 is failed; server3: autopilot healthy \
             false, voter true"
        );
        assert!(done.is_empty());
        assert_eq!(fake.count("DELETE", "/v1/operator/raft/peer"), 0);
    }

    #[tokio::test]
    async fn recover_quorum_picks_the_reachable_servers_and_writes_their_peers() {
        // server3 is unreachable; Consul (through server1) has no leader.
        let servers = vec![
            ("server1".to_string(), true),
            ("server2".to_string(), true),
            ("server3".to_string(), false),
        ];
        let (survivors, lost) = split_survivors(&servers);
        assert_eq!(
            (survivors.as_slice(), lost.as_slice()),
            (
                &["server1".to_string(), "server2".to_string()][..],
                &["server3".to_string()][..]
            )
        );
        let fake = fixture("no-leader.json");
        assert_eq!(
            refuse_if_leader(&[via("server1", &fake)], false)
                .await
                .unwrap(),
            None
        );
        assert_eq!(fake.sent(), READ, "only read");
        let found = vec![
            (
                "server1".to_string(),
                ip("10.0.0.1"),
                Some("id-1".to_string()),
            ),
            (
                "server2".to_string(),
                ip("10.0.0.2"),
                Some("id-2".to_string()),
            ),
        ];
        let peers = peers_of(&found).unwrap();
        assert_eq!(
            peers_json(&peers),
            "[\n  {\n    \"id\": \"id-1\",\n    \"address\": \"10.0.0.1:8300\",\n    \"non_voter\": false\n  },\n  {\n    \"id\": \"id-2\",\n    \"address\": \"10.0.0.2:8300\",\n    \"non_voter\": false\n  }\n]\n"
        );
        // A survivor without a node ID holds no raft state: named, nothing written.
        let mut missing = found.clone();
        missing[1].2 = None;
        assert_eq!(peers_of(&missing).unwrap_err(), "server2");
    }

    #[tokio::test]
    async fn recover_quorum_with_ipv6_survivors() {
        let found = vec![
            (
                "server1".to_string(),
                ip("fd00::1"),
                Some("id-1".to_string()),
            ),
            (
                "server2".to_string(),
                ip("fd00::2"),
                Some("id-2".to_string()),
            ),
        ];
        let v: serde_json::Value =
            serde_json::from_str(&peers_json(&peers_of(&found).unwrap())).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"id": "id-1", "address": "[fd00::1]:8300", "non_voter": false},
                {"id": "id-2", "address": "[fd00::2]:8300", "non_voter": false}
            ])
        );
        // After the start: a leader, and both survivors voters by their bracketed addresses.
        let fake = fixture("ipv6-one-server-failed.json");
        let (leader, voters) = wait_leader(
            &[via("server1", &fake)],
            &[ip("fd00::1"), ip("fd00::2")],
            &ManualClock::new(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(leader, "[fd00::1]:8300");
        assert_eq!(
            voters,
            ["[fd00::1]:8300", "[fd00::2]:8300", "[fd00::3]:8300"]
        );
    }

    #[tokio::test]
    async fn recover_quorum_is_refused_while_there_is_a_leader() {
        let fake = fixture("healthy-3-servers.json");
        let e = refuse_if_leader(&[via("server1", &fake)], false)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.to_string(),
            "refusing: the cluster has a leader (10.0.0.1:8300); recover quorum is for an outage \
             where most servers are gone. Nothing was changed; --force overrides"
        );
        assert_eq!(fake.sent(), READ, "nothing written");
        let w = refuse_if_leader(&[via("server1", &fake)], true)
            .await
            .unwrap();
        assert!(w
            .unwrap()
            .starts_with("the cluster has a leader (10.0.0.1:8300)"));
        // No server answers: no refusal (the servers may be down).
        let down = FakeTransport::new().fail_all("ssh: no route to host");
        assert_eq!(
            refuse_if_leader(&[via("server1", &down)], false)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn waiting_for_a_leader_times_out_naming_the_last_state() {
        let fake = fixture("no-leader.json");
        let clock = ManualClock::new();
        let e = wait_leader(
            &[via("server1", &fake)],
            &[ip("10.0.0.1")],
            &clock,
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), "no leader within 2s: no leader yet");
        assert_eq!(fake.count("GET", "/v1/status/leader"), 5);
        // A leader without every survivor a voter is not done yet.
        let fake = fixture("healthy-3-servers.json");
        let e = wait_leader(
            &[via("server1", &fake)],
            &[ip("10.0.0.1"), ip("10.0.0.9")],
            &clock,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("expected {\"10.0.0.1:8300\", \"10.0.0.9:8300\"}"),
            "{e}"
        );
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
