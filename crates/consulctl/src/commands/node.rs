//! `consulctl node remove`: take hosts out of the cluster for good, one verified step at a time.
//!
//! Per host (graceful, the agent runs and answers over SSH):
//! 1. servers only: `consul snapshot save` through a live server (another one when there is
//!    one), copied back binary-safe into `<state dir>/backups/<UTC>-<node>.snap` and checked
//!    (size > 0, size and sha256 equal to the remote file);
//! 2. the config dir moved aside, then `consul leave` through the host's agent. The config dir
//!    goes first because supervisord (`autorestart=true`) restarts an agent that exits after a
//!    leave, and the restarted agent rejoins within a second; without its config dir such a
//!    restart fails at once. When the leave fails the config dir is put back;
//! 3. wait until Consul, asked through another live server, reports the member `left` (and, for
//!    a server, until it is out of the raft configuration);
//! 4. stop and disable the agent (systemd: `systemctl disable --now consul`; supervisord: stop,
//!    program file moved aside, `reread` + `update`), wait for the process to be gone, then move
//!    the data dir (and with `--remove-binary` the binary) aside. Nothing is deleted.
//!
//! A host that SSH cannot reach, or whose agent is not running, cannot leave by itself: without
//! `--force` it fails with a hint; with `--force` a live server's agent is asked to force-leave
//! it with prune (`PUT /v1/agent/force-leave/<node>?prune`), then, when its address is still a
//! raft peer after a few seconds, to remove that peer (`DELETE /v1/operator/raft/peer`), and
//! Consul is asked until the node is gone from the peers.
//!
//! Servers are removed one at a time. Before anything changes, [`quorum_after_removal`] (pure,
//! over Consul's raft configuration and member status) must show that the voters left alive are
//! enough for the quorum of the remaining voter set, else the removal is refused (exit 2); it is
//! checked again before each server. `--force` overrides that check only with a printed warning.
//!
//! Every read and write of Consul's state goes through a `consul_api::Client` of a live server's
//! agent ([`Via`]); the decisions ([`check_up_front`], [`check_before_server`], [`force_out`],
//! [`wait_gone`]) take such clients, so they are tested against recorded answers. Only
//! `consul snapshot save` and `consul leave` (with the config dir moved aside around it) run
//! the consul CLI on a host.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::NodeRemoveArgs;
use crate::engine::context::{self, HostRun, Prepared};
use crate::engine::execute::path_arg;
use crate::engine::progress::Progress;
use crate::engine::recap::{HostResult, HostStatus, Recap};
use crate::engine::verify::{self, ClusterView, RaftServer};
use crate::remote::ssh::Connection;
use consul_api::poll::{wait_until_with, Clock, Last, Progress as Poll, TokioClock};
use consul_api::{agent, operator, quorum};
use consulctl_core::error::Error;
use consulctl_core::model::{Cluster, Host, Init, Role};
use consulctl_core::templates::Templates;

/// How long one read of Consul's state through one agent may take.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------------------------------
// Decisions, through Consul API clients (tested with a fake transport)
// ------------------------------------------------------------------------------------------

pub use consul_api::quorum::{quorum_after_removal, QuorumCheck};

/// How often a wait re-reads Consul.
const POLL: Duration = Duration::from_millis(500);

/// How long the leader gets to drop a force-left server from raft by itself.
const RAFT_SETTLE: Duration = Duration::from_secs(10);

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn voters(view: &ClusterView) -> usize {
    view.raft.iter().filter(|s| s.voter).count()
}

pub use crate::engine::via::{read_view_via, Via};

/// What `node remove` saw and decided before changing anything.
#[derive(Debug)]
pub struct UpFront {
    /// Consul's view, when a server answered.
    pub view: Option<ClusterView>,
    /// The quorum after removing the servers, when servers are removed.
    pub check: Option<QuorumCheck>,
    pub warnings: Vec<String>,
}

/// The check before anything changes: Consul's view through the first of `via` that answers
/// and, when `servers` are removed (`remove_ips`: their bind IPs), whether the voters left
/// alive keep the quorum of the remaining voter set. A removal that would lose the quorum is
/// refused ([`Error::Locked`], exit 2) unless `force`, which makes it a warning. Without a
/// view, removing servers is an error (the quorum cannot be checked); removing clients only
/// goes on with a warning.
pub async fn check_up_front(
    via: &[Via],
    servers: &[String],
    remove_ips: &BTreeSet<IpAddr>,
    force: bool,
) -> Result<UpFront, Error> {
    let mut out = UpFront {
        view: None,
        check: None,
        warnings: Vec::new(),
    };
    match read_view_via(via).await {
        Ok((view, a)) => {
            tracing::info!(via = %a.host, leader = ?view.leader, voters = voters(&view), "cluster state");
            out.view = Some(view);
        }
        Err(e) if !servers.is_empty() => {
            return Err(Error::Runtime(anyhow!(
                "cannot read Consul's raft configuration, so the quorum after removing {} cannot be \
                 checked: {e:#}; nothing was changed",
                servers.join(", ")
            )));
        }
        Err(e) => out
            .warnings
            .push(format!("cannot read the cluster state: {e:#}")),
    }
    if let (Some(view), false) = (&out.view, servers.is_empty()) {
        let check = quorum_after_removal(&view.raft, &view.members, servers, remove_ips);
        tracing::info!(check = ?check, "quorum");
        if let Some(problem) = check.problem() {
            if !force {
                return Err(Error::Locked(anyhow!(
                    "refusing: {problem}. Nothing was changed; --force overrides this check"
                )));
            }
            let w = format!(
                "--force: {problem}; going on anyway: the cluster may lose its leader and stop accepting writes"
            );
            eprintln!("WARNING: {w}");
            out.warnings.push(w);
        }
        out.check = Some(check);
    }
    Ok(out)
}

/// The quorum check again right before the server `name` (bind IP `ip`) is removed: servers
/// go one at a time. Err: why this server is not removed. With `force` a problem is a warning
/// (said once for the same numbers).
pub async fn check_before_server(
    via: &[Via],
    name: &str,
    ip: Option<IpAddr>,
    force: bool,
    warnings: &mut Vec<String>,
) -> std::result::Result<(), String> {
    match read_view_via(via).await {
        Ok((view, _)) => {
            let ips: BTreeSet<IpAddr> = ip.into_iter().collect();
            let check = quorum_after_removal(&view.raft, &view.members, &[name.to_string()], &ips);
            if let Some(problem) = check.problem() {
                if !force {
                    return Err(format!("refusing: {problem}; --force overrides"));
                }
                // Already said up front for the same numbers: say it once.
                if !warnings.iter().any(|w| w.contains(&problem)) {
                    let w = format!("--force: {problem}; going on anyway");
                    eprintln!("WARNING: {w}");
                    warnings.push(w);
                }
            }
            Ok(())
        }
        Err(e) if !force => Err(format!(
            "cannot check the quorum before removing {name}: {e:#}"
        )),
        Err(e) => {
            let w = format!("--force: cannot check the quorum before removing {name}: {e:#}");
            eprintln!("WARNING: {w}");
            warnings.push(w);
            Ok(())
        }
    }
}

/// Whether Consul's view (read through `via`) shows `node` gone: not a member any more or
/// `left`, and for a server out of the raft configuration (matched by name, else by its bind
/// IP `ip`). Ok: what Consul reports, for the actions; Err: what is still there.
pub fn gone(
    view: &ClusterView,
    via: &str,
    node: &str,
    ip: Option<IpAddr>,
    server: bool,
) -> std::result::Result<Vec<String>, String> {
    let member = view.members.iter().find(|m| m.name == node);
    let member_gone = member.map_or(true, |m| m.status == 3);
    let in_raft = quorum::find_server(&view.raft, node, ip).is_some();
    let raft_known = !view.raft.is_empty();
    let raft_gone = !server || (raft_known && !in_raft);
    if member_gone && raft_gone {
        let mut said = vec![match member {
            Some(m) => format!(
                "Consul (through {via}) reports {node} as {}",
                m.status_word()
            ),
            None => format!("Consul (through {via}) no longer lists {node} as a member"),
        }];
        if server {
            let n = voters(view);
            said.push(format!(
                "{node} is out of the raft configuration ({n} voter{} now, leader {})",
                plural(n),
                view.leader.as_deref().unwrap_or("NONE")
            ));
        }
        return Ok(said);
    }
    Err(format!(
        "Consul (through {via}) still reports {node} as {}{}",
        member.map(|m| m.status_word()).unwrap_or("gone"),
        if in_raft {
            " and in the raft configuration"
        } else if !raft_known && server {
            " (raft configuration unreadable)"
        } else {
            ""
        }
    ))
}

/// Wait until Consul, asked through the first of `via` that answers, reports `node` [`gone`].
/// `done` gets what Consul reported. `graceful` names the step before in the timeout error.
#[allow(clippy::too_many_arguments)]
pub async fn wait_gone(
    via: &[Via],
    node: &str,
    ip: Option<IpAddr>,
    server: bool,
    graceful: bool,
    clock: &dyn Clock,
    timeout: Duration,
    done: &mut Vec<String>,
) -> Result<()> {
    if via.is_empty() {
        done.push(format!(
            "no other live server to confirm that {node} left (it was the last one reachable)"
        ));
        return Ok(());
    }
    let waited = wait_until_with(
        clock,
        &format!("{node} gone"),
        timeout,
        POLL,
        || async move {
            let mut last = String::from("no answer yet");
            for a in via {
                let view = match tokio::time::timeout(
                    READ_TIMEOUT,
                    verify::read_view_with(&a.client, &a.host),
                )
                .await
                {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        last = format!("{} did not answer: {e:#}", a.host);
                        continue;
                    }
                    Err(_) => {
                        last = format!("{} did not answer in time", a.host);
                        continue;
                    }
                };
                return Ok::<_, String>(match gone(&view, &a.host, node, ip, server) {
                    Ok(said) => Poll::Ready(said),
                    Err(still) => Poll::Pending(still),
                });
            }
            Ok(Poll::Pending(last))
        },
    )
    .await;
    match waited {
        Ok(said) => {
            done.extend(said);
            Ok(())
        }
        Err(t) => {
            let what = if graceful {
                "after consul leave"
            } else {
                "after force-leave"
            };
            let last = match t.last {
                Last::Pending(s) | Last::Error(s) => s,
            };
            bail!("{what}, within {}s: {last}", timeout.as_secs())
        }
    }
}

type StepResult = std::result::Result<(), (&'static str, anyhow::Error)>;

/// `--force`: take `node` (bind IP `ip`) out through the live server `via`: force-leave it
/// with prune when it is a member, then, for a server the leader has not dropped from raft
/// by itself within `settle`, remove its raft peer by address. `done` gets what was done.
#[allow(clippy::too_many_arguments)]
pub async fn force_out(
    via: &Via,
    node: &str,
    ip: Option<IpAddr>,
    server: bool,
    clock: &dyn Clock,
    settle: Duration,
    done: &mut Vec<String>,
) -> StepResult {
    let (view, _) = read_view_via(std::slice::from_ref(via))
        .await
        .map_err(|e| ("force-leave", e))?;
    if view.members.iter().any(|m| m.name == node) {
        via.client
            .call(agent::force_leave(node, true))
            .await
            .map_err(|e| ("force-leave", anyhow::Error::from(e)))?;
        done.push(format!(
            "consul force-leave -prune {node} (through {})",
            via.host
        ));
    } else {
        done.push(format!(
            "{node} is not a member any more (as {} sees it)",
            via.host
        ));
    }
    if !server {
        return Ok(());
    }
    // Give the leader a moment to drop it from raft by itself, then remove the peer if needed.
    let seen: Mutex<Option<RaftServer>> = Mutex::new(None);
    let seen_ref = &seen;
    let dropped = wait_until_with(
        clock,
        &format!("{node} out of the raft configuration"),
        settle,
        POLL,
        || async move {
            let (view, _) = read_view_via(std::slice::from_ref(via))
                .await
                .map_err(|e| format!("{e:#}"))?;
            let entry = quorum::find_server(&view.raft, node, ip).cloned();
            let still = entry
                .as_ref()
                .map(|e| format!("{} is still a raft peer", e.address));
            *seen_ref.lock().unwrap_or_else(|e| e.into_inner()) = entry;
            Ok::<_, String>(match still {
                None => Poll::Ready(()),
                Some(s) => Poll::Pending(s),
            })
        },
    )
    .await;
    let entry = match dropped {
        Ok(()) => None,
        Err(_) => seen.into_inner().unwrap_or_else(|e| e.into_inner()),
    };
    if let Some(entry) = entry {
        via.client
            .call(operator::raft_remove_peer_by_address(&entry.address))
            .await
            .map_err(|e| ("remove-peer", anyhow::Error::from(e)))?;
        done.push(format!(
            "consul operator raft remove-peer -address={} (through {})",
            entry.address, via.host
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Inventory edit (pure)
// ------------------------------------------------------------------------------------------

/// Remove the `[[hosts]]` entries (or inline `hosts = [...]` elements) whose `name` is in
/// `names`, keeping every other byte of the file. A `[[hosts]]` entry is cut out of the text
/// as: its header through its last value (sub-tables such as `[hosts.ssh]` included, to the
/// end of that line), the comment lines directly above the header (no blank line between),
/// and one blank line that separated it from what came before (or after). Comments separated
/// from the header by a blank line (section headings) stay. Returns the new text and the names
/// that were found.
pub fn remove_hosts_from_inventory(text: &str, names: &[String]) -> Result<(String, Vec<String>)> {
    let doc = toml_edit::ImDocument::parse(text.to_owned()).context("parsing the inventory")?;
    let mut found = Vec::new();
    let name_of =
        |t: &dyn toml_edit::TableLike| t.get("name").and_then(|v| v.as_str()).map(str::to_string);
    let new = match doc.as_table().get("hosts") {
        Some(toml_edit::Item::ArrayOfTables(aot)) => {
            let mut ranges = Vec::new();
            for t in aot.iter() {
                let Some(n) = name_of(t).filter(|n| names.contains(n)) else {
                    continue;
                };
                let (Some(span), Some(end)) = (t.span(), table_end(t)) else {
                    bail!("cannot locate the [[hosts]] entry of {n} in the file");
                };
                ranges.push(entry_range(text, span.start, end));
                found.push(n);
            }
            let mut out = text.to_string();
            ranges.sort_by_key(|r| std::cmp::Reverse(r.start));
            for r in ranges {
                out.replace_range(r, "");
            }
            out
        }
        Some(toml_edit::Item::Value(toml_edit::Value::Array(_))) => {
            // Inline `hosts = [ {...}, ... ]`: let toml_edit re-render that one array.
            let mut doc: toml_edit::DocumentMut = text.parse().context("parsing the inventory")?;
            if let Some(arr) = doc.get_mut("hosts").and_then(|h| h.as_array_mut()) {
                arr.retain(|v| match v.as_inline_table().and_then(|t| name_of(t)) {
                    Some(n) if names.contains(&n) => {
                        found.push(n);
                        false
                    }
                    _ => true,
                });
            }
            doc.to_string()
        }
        _ => bail!("the inventory has no [[hosts]] entries"),
    };
    // Never hand back a file that lost more (or other) than asked.
    let check: toml_edit::DocumentMut = new
        .parse()
        .context("internal: the edited inventory does not parse")?;
    let before = host_names(doc.as_table());
    let after = host_names(check.as_table());
    let expected: Vec<String> = before
        .iter()
        .filter(|n| !found.contains(n))
        .cloned()
        .collect();
    if after != expected {
        bail!("internal: editing the inventory would leave hosts {after:?}, expected {expected:?}");
    }
    Ok((new, found))
}

fn host_names(root: &toml_edit::Table) -> Vec<String> {
    let name = |t: &dyn toml_edit::TableLike| {
        t.get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    match root.get("hosts") {
        Some(toml_edit::Item::ArrayOfTables(aot)) => aot.iter().map(|t| name(t)).collect(),
        Some(toml_edit::Item::Value(toml_edit::Value::Array(arr))) => arr
            .iter()
            .filter_map(|v| v.as_inline_table().map(|t| name(t)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The end (byte offset) of a parsed table's last value, its explicit sub-tables included.
fn table_end(t: &toml_edit::Table) -> Option<usize> {
    let mut end = t.span()?.end;
    for (_, item) in t.iter() {
        match item {
            toml_edit::Item::Table(sub) => {
                if let Some(e) = table_end(sub) {
                    end = end.max(e);
                }
            }
            toml_edit::Item::ArrayOfTables(aot) => {
                for sub in aot.iter() {
                    if let Some(e) = table_end(sub) {
                        end = end.max(e);
                    }
                }
            }
            _ => {}
        }
    }
    Some(end)
}

/// The byte range of a `[[hosts]]` entry whose header starts at `start` and whose last value
/// ends at `end`: whole lines, the comments directly above, one separating blank line.
fn entry_range(text: &str, start: usize, end: usize) -> std::ops::Range<usize> {
    let line_start = |i: usize| text[..i].rfind('\n').map(|p| p + 1).unwrap_or(0);
    let line_end = |i: usize| {
        text[i..]
            .find('\n')
            .map(|p| i + p + 1)
            .unwrap_or(text.len())
    };
    let mut a = line_start(start);
    let mut b = line_end(end.saturating_sub(1).max(start));
    // Comment lines directly above the header belong to it.
    while a > 0 {
        let prev = line_start(a - 1);
        if text[prev..a].trim_start().starts_with('#') {
            a = prev;
        } else {
            break;
        }
    }
    // One blank line that separated it: the one before, else the one after.
    if a > 0 {
        let prev = line_start(a - 1);
        if text[prev..a].trim().is_empty() {
            return prev..b;
        }
    }
    if b < text.len() {
        let next = line_end(b);
        if text[b..next].trim().is_empty() {
            b = next;
        }
    }
    a..b
}

/// Rewrite the inventory file without the given hosts (atomically, same permissions).
fn update_inventory(path: &Path, names: &[String]) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (new, found) = remove_hosts_from_inventory(&text, names)?;
    if found.is_empty() {
        return Ok(found);
    }
    let tmp = path.with_extension("toml.consulctl-tmp");
    std::fs::write(&tmp, new.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    if let Err(diags) = consulctl_core::inventory::parse(path, &new) {
        let first = diags.first().map(|d| format!("{d}")).unwrap_or_default();
        eprintln!(
            "warning: {} no longer validates after removing {}: {first}",
            path.display(),
            found.join(", ")
        );
    }
    Ok(found)
}

// ------------------------------------------------------------------------------------------
// Names
// ------------------------------------------------------------------------------------------

/// The named hosts, each once, in the order given. Unknown names are bad input.
pub fn check_names(cluster: &Cluster, names: &[String]) -> Result<Vec<String>, Error> {
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| cluster.host(n).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let valid: Vec<&str> = cluster.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(Error::Input(anyhow!(
            "{}: no host named {} in the inventory; its hosts are: {}",
            cluster.inventory_path.display(),
            unknown.join(", "),
            valid.join(", ")
        )));
    }
    let mut seen = BTreeSet::new();
    Ok(names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect())
}

// ------------------------------------------------------------------------------------------
// The run
// ------------------------------------------------------------------------------------------

/// How a target host is taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// The agent runs: `consul leave` through it.
    Graceful,
    /// `--force`, SSH works but the agent is not running: force-leave, then stop and move aside.
    ForceLocal,
    /// `--force`, SSH cannot reach the host: force-leave and raft remove-peer only.
    ForceRemote,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// The server it was taken through.
    pub via: String,
}

struct Target {
    host: Host,
    way: Way,
    actions: Vec<String>,
    snapshot: Option<SnapshotFile>,
    failed: Option<(String, String)>,
    removed: bool,
    started: Instant,
    done_at: Option<Instant>,
}

impl Target {
    fn fail(&mut self, phase: &str, msg: impl Into<String>) {
        let msg = msg.into();
        tracing::debug!(host = %self.host.name, phase, error = %msg, "node remove failed");
        if self.failed.is_none() {
            self.failed = Some((phase.to_string(), msg));
        }
        self.done_at = Some(Instant::now());
    }

    fn did(&mut self, what: impl Into<String>) {
        let what = what.into();
        tracing::info!(host = %self.host.name, action = %what, "done");
        self.actions.push(what);
    }
}

/// A live agent to ask or to run a command through.
#[derive(Clone)]
struct Agent<'a> {
    host: &'a Host,
    conn: &'a Connection,
    /// Consul's API through this agent.
    via: Via,
}

fn vias(agents: &[Agent<'_>]) -> Vec<Via> {
    agents.iter().map(|a| a.via.clone()).collect()
}

struct Ctx<'a> {
    cluster: &'a Cluster,
    runs: &'a [HostRun],
    binds: std::collections::BTreeMap<String, IpAddr>,
    args: &'a NodeRemoveArgs,
    timestamp: String,
    suffix: String,
    progress: &'a Progress,
}

impl<'a> Ctx<'a> {
    fn run_of(&self, name: &str) -> Option<&'a HostRun> {
        self.runs.iter().find(|r| r.host.name == name)
    }

    fn http(&self, host: &Host) -> String {
        let bind = self
            .binds
            .get(&host.name)
            .copied()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        verify::http_addr(host, bind)
    }

    /// The bind IP of a host, when known.
    fn ip(&self, name: &str) -> Option<IpAddr> {
        self.binds.get(name).copied()
    }

    /// Connected servers whose agent runs, except `exclude`, in inventory order.
    fn live_servers(&self, exclude: &BTreeSet<String>) -> Vec<Agent<'a>> {
        self.runs
            .iter()
            .filter(|r| r.host.role == Role::Server && !exclude.contains(&r.host.name))
            .filter(|r| r.failed.is_none() && self.binds.contains_key(&r.host.name))
            .filter(|r| {
                r.facts
                    .as_ref()
                    .is_some_and(|f| f.agent_running(r.host.init) || f.consul_pid.is_some())
            })
            .filter_map(|r| {
                let conn = r.conn.as_ref()?;
                Some(Agent {
                    host: &r.host,
                    conn,
                    via: Via::new(
                        r.host.name.clone(),
                        crate::remote::consul::client(conn, &self.http(&r.host)),
                    ),
                })
            })
            .collect()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.args.timeout)
    }
}

/// `consulctl node remove`.
pub async fn remove(args: &NodeRemoveArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let started = Instant::now();
    let cluster = consulctl_core::inventory::load(&args.cluster.inventory)?;
    consulctl_core::inventory::persist_secrets(&cluster)?;
    let names = check_names(&cluster, &args.names)?;
    let templates = Templates::load(None).map_err(Error::Input)?;
    let log_path = debug_log
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::engine::log::default_path(&cluster.state_dir(), "node-remove"));
    let debug_log = crate::engine::log::open(&log_path).map_err(Error::Runtime)?;
    tracing::info!(inventory = %args.cluster.inventory.display(), hosts = ?names, force = args.force, "node remove");
    for w in &cluster.warnings {
        eprintln!("warning: {w}");
    }
    let timestamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    // Connect to every server (to ask Consul and to run commands through) and to the targets.
    let selected: Vec<Host> = cluster
        .hosts
        .iter()
        .filter(|h| h.role == Role::Server || names.contains(&h.name))
        .cloned()
        .collect();
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
    // Two operators must not change the same cluster at once.
    let _lock = crate::engine::lock::RunLock::acquire(&p.cluster.state_dir(), "node remove")?;
    let (mut runs, progress) = context::connect_and_gather(&p).await;
    let binds = context::bind_addrs(&p.cluster, &runs);
    let ctx = Ctx {
        cluster: &p.cluster,
        runs: &runs,
        binds,
        args,
        suffix: format!(".removed-{timestamp}"),
        timestamp,
        progress: &progress,
    };
    let outcome = run_targets(&ctx, &names).await;
    drop(ctx);
    context::disconnect(&mut runs, None).await;
    let (targets, warnings) = outcome?;
    report(args, &p, targets, warnings, started.elapsed())
}

/// Classify, check quorum, then remove: clients concurrently, servers one at a time.
/// Err only for a refusal or a failure before anything changed.
async fn run_targets(ctx: &Ctx<'_>, names: &[String]) -> Result<(Vec<Target>, Vec<String>), Error> {
    let force = ctx.args.force;
    let mut warnings = Vec::new();
    let mut targets: Vec<Target> = names
        .iter()
        .map(|n| {
            let host = ctx.cluster.host(n).expect("checked").clone();
            Target {
                host,
                way: Way::Graceful,
                actions: Vec::new(),
                snapshot: None,
                failed: None,
                removed: false,
                started: Instant::now(),
                done_at: None,
            }
        })
        .collect();

    // How each host can be taken out.
    for t in targets.iter_mut() {
        let r = ctx.run_of(&t.host.name).expect("connected to every target");
        match (&r.failed, r.facts.as_ref()) {
            (Some((phase, err)), _) if phase == "connect" => {
                if force {
                    t.way = Way::ForceRemote;
                } else {
                    t.fail(
                        "connect",
                        format!(
                            "{err}\n{} cannot be reached over SSH, so it cannot leave by itself; if it is gone \
                             for good, run again with --force to force-leave it from a live server",
                            t.host.name
                        ),
                    );
                }
            }
            (Some((phase, err)), _) => t.fail(phase, err.clone()),
            (None, Some(f)) if !(f.agent_running(t.host.init) || f.consul_pid.is_some()) => {
                if force {
                    t.way = Way::ForceLocal;
                } else {
                    t.fail(
                        "check",
                        format!(
                            "the consul agent on {} is not running, so it cannot leave gracefully; run again \
                             with --force to force-leave it from a live server (its files are then moved aside)",
                            t.host.name
                        ),
                    );
                }
            }
            (None, _) => t.way = Way::Graceful,
        }
    }

    // Consul's own view, through a server that stays (any live server if none does).
    let target_set: BTreeSet<String> = names.iter().cloned().collect();
    let server_targets: Vec<String> = targets
        .iter()
        .filter(|t| t.host.role == Role::Server)
        .map(|t| t.host.name.clone())
        .collect();
    let mut agents = ctx.live_servers(&target_set);
    agents.extend(
        ctx.live_servers(&BTreeSet::new())
            .into_iter()
            .filter(|a| target_set.contains(&a.host.name)),
    );
    ctx.progress.println("==> read the cluster state");
    let remove_ips: BTreeSet<IpAddr> = server_targets.iter().filter_map(|n| ctx.ip(n)).collect();
    let up = check_up_front(&vias(&agents), &server_targets, &remove_ips, force).await?;
    warnings.extend(up.warnings);

    // Clients first (they do not touch the quorum), concurrently.
    let clients: Vec<&mut Target> = targets
        .iter_mut()
        .filter(|t| t.host.role == Role::Client && t.failed.is_none())
        .collect();
    if !clients.is_empty() {
        ctx.progress.println("==> remove clients");
    }
    futures::stream::iter(clients)
        .for_each_concurrent(8, |t| async move {
            remove_one(ctx, t, &BTreeSet::new()).await;
        })
        .await;

    // Servers one at a time, the quorum checked again before each.
    let mut removed: BTreeSet<String> = BTreeSet::new();
    for t in targets
        .iter_mut()
        .filter(|t| t.host.role == Role::Server && t.failed.is_none())
    {
        ctx.progress
            .println(&format!("==> remove server {}", t.host.name));
        let mut others = removed.clone();
        others.insert(t.host.name.clone());
        let mut agents = ctx.live_servers(&others);
        if agents.is_empty() {
            agents = ctx.live_servers(&removed);
        }
        if let Err(e) = check_before_server(
            &vias(&agents),
            &t.host.name,
            ctx.ip(&t.host.name),
            force,
            &mut warnings,
        )
        .await
        {
            t.fail("quorum", e);
            continue;
        }
        remove_one(ctx, t, &removed).await;
        if t.removed {
            removed.insert(t.host.name.clone());
        }
    }
    Ok((targets, warnings))
}

/// Take one host out. `removed`: servers already taken out in this run (not asked any more).
async fn remove_one(ctx: &Ctx<'_>, t: &mut Target, removed: &BTreeSet<String>) {
    t.started = Instant::now();
    let mut exclude = removed.clone();
    exclude.insert(t.host.name.clone());
    let others = ctx.live_servers(&exclude);
    if t.host.role == Role::Server {
        // The snapshot through another server if possible, else through the target itself.
        let mut via = others.clone();
        if via.is_empty() {
            via = ctx
                .live_servers(removed)
                .into_iter()
                .filter(|a| a.host.name == t.host.name)
                .collect();
        }
        match snapshot(ctx, &t.host.name, &via).await {
            Ok(s) => {
                t.did(format!(
                    "snapshot through {}: {} ({} bytes)",
                    s.via,
                    s.path.display(),
                    s.bytes
                ));
                t.snapshot = Some(s);
            }
            Err(e) => return t.fail("snapshot", format!("{e:#}")),
        }
    }
    let res = match t.way {
        Way::Graceful => graceful(ctx, t, &others).await,
        Way::ForceLocal | Way::ForceRemote => forced(ctx, t, &others).await,
    };
    match res {
        Ok(()) => {
            t.removed = true;
            t.done_at = Some(Instant::now());
        }
        Err((phase, e)) => t.fail(phase, format!("{e:#}")),
    }
}

async fn graceful(ctx: &Ctx<'_>, t: &mut Target, others: &[Agent<'_>]) -> StepResult {
    let run = ctx.run_of(&t.host.name).expect("connected");
    let conn = run.conn.as_ref().expect("connected");
    let host = t.host.clone();
    let conf = path_arg(&host.paths.config_dir);
    // 1. config dir aside, consul leave.
    let args = vec![
        path_arg(&host.paths.binary),
        ctx.http(&host),
        conf.clone(),
        ctx.suffix.clone(),
    ];
    let out = timed(
        ctx,
        conn.run("consul leave", crate::remote::NODE_LEAVE, &args, None),
    )
    .await
    .map_err(|e| ("leave", e))?;
    let moved_conf = out.stdout.lines().any(|l| l == format!("moved {conf}"));
    if moved_conf {
        t.did(format!("moved {conf} aside to {conf}{}", ctx.suffix));
    }
    if !out.success() {
        return Err(("leave", anyhow!("{}", out.tail(8))));
    }
    let said = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("left "))
        .unwrap_or("")
        .trim()
        .to_string();
    t.did(format!("consul leave: {said}"));
    // 2. Consul (through another server) reports it left.
    let mut said = Vec::new();
    let waited = wait_gone(
        &vias(others),
        &host.name,
        ctx.ip(&host.name),
        host.role == Role::Server,
        true,
        &TokioClock,
        ctx.timeout(),
        &mut said,
    )
    .await;
    for s in said {
        t.did(s);
    }
    waited.map_err(|e| ("wait for left", e))?;
    // 3. stop, disable, move aside.
    let mut paths = Vec::new();
    if !moved_conf {
        paths.push(host.paths.config_dir.clone());
    }
    stop_and_move(ctx, t, conn, paths).await
}

async fn forced(ctx: &Ctx<'_>, t: &mut Target, others: &[Agent<'_>]) -> StepResult {
    let host = t.host.clone();
    let Some(agent) = others.first() else {
        return Err((
            "force-leave",
            anyhow!(
                "no other live server is reachable over SSH to force-leave {} from",
                host.name
            ),
        ));
    };
    let ip = ctx.ip(&host.name);
    let server = host.role == Role::Server;
    let mut done = Vec::new();
    let res = force_out(
        &agent.via,
        &host.name,
        ip,
        server,
        &TokioClock,
        RAFT_SETTLE,
        &mut done,
    )
    .await;
    for d in done.drain(..) {
        t.did(d);
    }
    res?;
    let waited = wait_gone(
        std::slice::from_ref(&agent.via),
        &host.name,
        ip,
        server,
        false,
        &TokioClock,
        ctx.timeout(),
        &mut done,
    )
    .await;
    for d in done {
        t.did(d);
    }
    waited.map_err(|e| ("verify", e))?;
    match t.way {
        Way::ForceLocal => {
            let run = ctx.run_of(&host.name).expect("connected");
            let conn = run.conn.as_ref().expect("connected");
            stop_and_move(ctx, t, conn, vec![host.paths.config_dir.clone()]).await
        }
        _ => {
            t.did(format!(
                "{} is unreachable: its agent, config and data were not touched; if the machine comes \
                 back, stop and disable consul there before it rejoins",
                host.name
            ));
            Ok(())
        }
    }
}

/// Stop and disable the agent, then move the data dir, `extra` paths and (with
/// `--remove-binary`) the binary aside.
async fn stop_and_move(
    ctx: &Ctx<'_>,
    t: &mut Target,
    conn: &Connection,
    extra: Vec<PathBuf>,
) -> StepResult {
    let host = t.host.clone();
    let run = ctx.run_of(&host.name).expect("connected");
    let program = match host.init {
        Init::Supervisord => run
            .facts
            .as_ref()
            .and_then(|f| f.supervisor_program_path(&host))
            .unwrap_or_else(|| PathBuf::from(consulctl_core::facts::SUPERVISOR_PROGRAM_DEBIAN)),
        Init::Systemd => PathBuf::new(),
    };
    let mut paths = extra;
    paths.push(host.paths.data_dir.clone());
    if ctx.args.remove_binary {
        paths.push(host.paths.binary.clone());
    }
    let mut args = vec![
        host.init.as_str().to_string(),
        path_arg(&program),
        ctx.suffix.clone(),
    ];
    args.extend(paths.iter().map(|p| path_arg(p)));
    let out = timed(
        ctx,
        conn.run("stop and move aside", crate::remote::NODE_STOP, &args, None),
    )
    .await
    .map_err(|e| ("stop", e))?;
    for line in out.stdout.lines() {
        if let Some(init) = line.strip_prefix("stopped ") {
            t.did(match init {
                "systemd" => "systemd: systemctl disable --now consul".to_string(),
                _ => "supervisord: supervisorctl stop consul".to_string(),
            });
        } else if line == "updated supervisord" {
            t.did("supervisord: reread + update (the consul program is gone)");
        } else if let Some(p) = line.strip_prefix("moved ") {
            t.did(format!("moved {p} aside to {p}{}", ctx.suffix));
        } else if let Some(p) = line.strip_prefix("absent ") {
            t.did(format!("{p} does not exist: nothing to move"));
        }
    }
    if !out.success() {
        return Err(("stop", anyhow!("{}", out.tail(8))));
    }
    Ok(())
}

async fn timed<T>(ctx: &Ctx<'_>, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(ctx.timeout(), fut).await {
        Ok(r) => r,
        Err(_) => bail!("no answer within {}s", ctx.args.timeout),
    }
}

/// `consul snapshot save` through the first of `agents` that manages, copied back into
/// `<state dir>/backups/<timestamp>-<node>.snap` and checked against the remote size and sha256.
async fn snapshot(ctx: &Ctx<'_>, node: &str, agents: &[Agent<'_>]) -> Result<SnapshotFile> {
    if agents.is_empty() {
        bail!(
            "no live server is reachable to take a snapshot through; nothing was changed on {node}"
        );
    }
    let dir = ctx.cluster.state_dir().join("backups");
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}-{node}.snap", ctx.timestamp));
    let first = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut errors = Vec::new();
        for a in agents {
            let args = vec![path_arg(&a.host.paths.binary), ctx.http(a.host)];
            let (out, data) = match timed(
                ctx,
                a.conn.run_bytes(
                    "consul snapshot save",
                    crate::remote::NODE_SNAPSHOT,
                    &args,
                    None,
                ),
            )
            .await
            {
                Ok(x) => x,
                Err(e) => {
                    errors.push(format!("{}: {e:#}", a.host.name));
                    continue;
                }
            };
            if !out.success() {
                errors.push(format!("{}: {}", a.host.name, out.tail(4)));
                continue;
            }
            let field = |k: &str| {
                out.stderr
                    .lines()
                    .find_map(|l| l.strip_prefix("consulctl-snapshot ")?.strip_prefix(k))
                    .map(|v| v.trim().to_string())
            };
            let size: Option<u64> = field("size ").and_then(|s| s.parse().ok());
            let sha = field("sha256 ");
            let got = hex::encode(Sha256::digest(&data));
            if data.is_empty()
                || size != Some(data.len() as u64)
                || sha.as_deref() != Some(got.as_str())
            {
                errors.push(format!(
                "{}: the copy does not match the snapshot on the host ({} bytes, sha256 {got}; \
                 the host reported {} bytes, sha256 {})",
                a.host.name,
                data.len(),
                size.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
                sha.as_deref().unwrap_or("?")
            ));
                continue;
            }
            write_private(&path, &data)?;
            let on_disk = std::fs::metadata(&path)
                .with_context(|| format!("reading back {}", path.display()))?
                .len();
            if on_disk == 0 || on_disk != data.len() as u64 {
                bail!(
                    "{} has {on_disk} bytes, expected {}",
                    path.display(),
                    data.len()
                );
            }
            return Ok(SnapshotFile {
                path,
                bytes: on_disk,
                sha256: got,
                via: a.host.name.clone(),
            });
        }
        if errors.iter().any(|e| snapshot_retryable(e)) {
            if let Some(delay) = consul_api::poll::backoff(
                attempt,
                first.elapsed(),
                SNAPSHOT_RETRY_BUDGET,
                Duration::from_secs(5),
            ) {
                let msg = format!(
                    "snapshot for {node}: Consul cannot take one yet ({}); retrying in {}s",
                    errors.join("; "),
                    delay.as_secs()
                );
                tracing::warn!("{msg}");
                eprintln!("{msg}");
                consul_api::poll::Clock::sleep(&consul_api::poll::TokioClock, delay).await;
                continue;
            }
        }
        bail!(
            "no snapshot could be taken{}: {}; nothing was changed on {node}",
            if attempt > 1 {
                format!(" in {attempt} attempts over {}s", first.elapsed().as_secs())
            } else {
                String::new()
            },
            errors.join("; ")
        )
    }
}

/// How long a snapshot Consul refuses for now is retried.
const SNAPSHOT_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// Consul refuses `snapshot save` while the latest raft configuration change (servers that just
/// joined or left) is not applied yet: HTTP 500 "cannot take snapshot now, wait until the
/// configuration entry at N has been applied". That passes by itself within seconds; any other
/// error does not.
pub fn snapshot_retryable(err: &str) -> bool {
    err.contains("cannot take snapshot now")
        || (err.contains("wait until the configuration entry") && err.contains("applied"))
}

/// Write a file readable by the owner only (snapshots hold the KV store and ACL data).
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("snap.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Report
// ------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct HostReport {
    name: String,
    role: Role,
    status: &'static str,
    actions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<SnapshotFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<String>,
}

#[derive(Debug, Serialize)]
struct InventoryReport {
    path: PathBuf,
    updated: bool,
    /// Hosts whose `[[hosts]]` entry was removed (`--update-inventory`) or is to be removed.
    entries: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    hosts: Vec<HostReport>,
    warnings: Vec<String>,
    inventory: InventoryReport,
    recap: Recap,
}

fn report(
    args: &NodeRemoveArgs,
    p: &Prepared,
    targets: Vec<Target>,
    warnings: Vec<String>,
    elapsed: Duration,
) -> Result<(), Error> {
    let removed: Vec<String> = targets
        .iter()
        .filter(|t| t.removed)
        .map(|t| t.host.name.clone())
        .collect();
    let mut inventory = InventoryReport {
        path: args.cluster.inventory.clone(),
        updated: false,
        entries: removed.clone(),
        error: None,
    };
    if args.update_inventory && !removed.is_empty() {
        match update_inventory(&args.cluster.inventory, &removed) {
            Ok(found) => {
                inventory.updated = !found.is_empty();
                inventory.entries = found;
            }
            Err(e) => inventory.error = Some(format!("{e:#}")),
        }
    }
    let results: Vec<HostResult> = targets
        .iter()
        .map(|t| HostResult {
            name: t.host.name.clone(),
            status: if t.failed.is_some() {
                HostStatus::Failed
            } else if t.actions.is_empty() {
                HostStatus::Ok
            } else {
                HostStatus::Changed
            },
            changed: t.actions.len(),
            error: t.failed.as_ref().map(|(_, e)| e.clone()),
            phase: t.failed.as_ref().map(|(ph, _)| ph.clone()),
            duration_ms: t
                .done_at
                .map(|d| d.duration_since(t.started).as_millis() as u64)
                .unwrap_or(0),
            round_trips: 0,
            pending_restart: Vec::new(),
        })
        .collect();
    let recap = Recap::new(results, None, elapsed, p.debug_log.display().to_string());
    let hosts: Vec<HostReport> = targets
        .into_iter()
        .map(|t| HostReport {
            status: if t.removed { "removed" } else { "failed" },
            name: t.host.name,
            role: t.host.role,
            actions: t.actions,
            snapshot: t.snapshot,
            error: t.failed.as_ref().map(|(_, e)| e.clone()),
            phase: t.failed.map(|(ph, _)| ph),
        })
        .collect();
    let report = Report {
        hosts,
        warnings,
        inventory,
        recap,
    };
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "done");
    crate::engine::output::print(args.output, &report);
    let failed = report.recap.totals.failed;
    if failed > 0 || report.inventory.error.is_some() {
        eprintln!("debug log: {}", p.debug_log.display());
    }
    if failed > 0 {
        return Err(Error::HostsFailed {
            failed,
            total: report.recap.totals.hosts,
        });
    }
    if let Some(e) = &report.inventory.error {
        return Err(Error::Runtime(anyhow!(
            "the hosts were removed but the inventory was not updated: {e}"
        )));
    }
    Ok(())
}

fn to_text(r: &Report) -> String {
    let mut s = String::new();
    for h in &r.hosts {
        let status = match &h.phase {
            Some(phase) => format!("{} in {phase}", h.status),
            None => h.status.to_string(),
        };
        s.push_str(&format!("{} ({}): {status}\n", h.name, h.role.as_str()));
        for a in &h.actions {
            s.push_str(&format!("  - {a}\n"));
        }
        // (A failure's message is in the recap below.)
        s.push('\n');
    }
    for w in &r.warnings {
        s.push_str(&format!("WARNING: {w}\n"));
    }
    if !r.warnings.is_empty() {
        s.push('\n');
    }
    s.push_str(&r.recap.to_text());
    let inv = &r.inventory;
    if inv.updated {
        s.push_str(&format!(
            "\ninventory {}: removed the [[hosts]] entr{} of {}\n",
            inv.path.display(),
            if inv.entries.len() == 1 { "y" } else { "ies" },
            inv.entries.join(", ")
        ));
    } else if let Some(e) = &inv.error {
        s.push_str(&format!(
            "\ninventory {} NOT updated: {e}\nnext: delete the [[hosts]] entries of {} from it by hand\n",
            inv.path.display(),
            inv.entries.join(", ")
        ));
    } else if !inv.entries.is_empty() {
        s.push_str(&format!(
            "\nnext: delete the [[hosts]] entr{} of {} from {} (or run with --update-inventory), \
             or the next `apply` puts {} back\n",
            if inv.entries.len() == 1 { "y" } else { "ies" },
            inv.entries.join(", "),
            inv.path.display(),
            if inv.entries.len() == 1 { "it" } else { "them" },
        ));
    }
    s
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
    use consul_api::Client;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    // The quorum arithmetic itself (five to three, one dead of three, the last server,
    // non-voters, names that differ from the inventory, IPv6) is tested in
    // `consul_api::quorum`; here: the decisions of `node remove` over Consul's answers.

    const COMMENTED: &str = r#"# Production cluster: edit with care.
[cluster]
datacenter = "dc1" # the only one

[consul]
version = "1.8.7"

# --- servers ---------------------------------------------------------

[[hosts]]
name = "server1"
address = "10.0.0.11"   # rack A
role = "server"

# server2 sits in rack B.
[[hosts]]
name = "server2"
address = "10.0.0.12"
role = "server"
[hosts.ssh]
user = "deploy"

[[hosts]]
name = "server3"
address = "10.0.0.13"
role = "server"

# --- clients ---
[[hosts]]
name   =   "client1"
address = "10.0.0.21"
role = "client"
tags = [ "web",  "lab" ]

# trailing words
"#;

    #[test]
    fn inventory_edit_removes_exactly_the_entry_with_its_comment() {
        let (out, found) = remove_hosts_from_inventory(COMMENTED, &names(&["server2"])).unwrap();
        assert_eq!(found, names(&["server2"]));
        let block = "\n# server2 sits in rack B.\n[[hosts]]\nname = \"server2\"\naddress = \"10.0.0.12\"\nrole = \"server\"\n[hosts.ssh]\nuser = \"deploy\"\n";
        assert!(COMMENTED.contains(block));
        assert_eq!(out, COMMENTED.replacen(block, "", 1));
    }

    #[test]
    fn inventory_edit_keeps_layout_of_the_rest_and_handles_several() {
        let (out, mut found) =
            remove_hosts_from_inventory(COMMENTED, &names(&["client1", "server1", "nope"]))
                .unwrap();
        found.sort();
        assert_eq!(found, names(&["client1", "server1"]));
        let expected = COMMENTED
            .replacen(
                "\n[[hosts]]\nname = \"server1\"\naddress = \"10.0.0.11\"   # rack A\nrole = \"server\"\n",
                "",
                1,
            )
            .replacen(
                "\n# --- clients ---\n[[hosts]]\nname   =   \"client1\"\naddress = \"10.0.0.21\"\nrole = \"client\"\ntags = [ \"web\",  \"lab\" ]\n",
                "",
                1,
            );
        assert_eq!(out, expected);
        // What is left still parses as an inventory with the same hosts minus the removed ones.
        let doc: toml_edit::DocumentMut = out.parse().unwrap();
        let left: Vec<&str> = doc["hosts"]
            .as_array_of_tables()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(left, ["server2", "server3"]);
    }

    #[test]
    fn inventory_edit_of_an_unknown_name_changes_nothing() {
        let (out, found) = remove_hosts_from_inventory(COMMENTED, &names(&["ghost"])).unwrap();
        assert!(found.is_empty());
        assert_eq!(out, COMMENTED);
    }

    #[test]
    fn inventory_edit_of_inline_hosts() {
        let text = "hosts = [\n  { name = \"a\", address = \"10.0.0.1\", role = \"server\" },\n  { name = \"b\", address = \"10.0.0.2\", role = \"client\" },\n]\n\n[cluster]\ndatacenter = \"dc1\"\n";
        let (out, found) = remove_hosts_from_inventory(text, &names(&["b"])).unwrap();
        assert_eq!(found, names(&["b"]));
        assert!(out.contains("name = \"a\""), "{out}");
        assert!(!out.contains("name = \"b\""), "{out}");
        assert!(out.contains("[cluster]\ndatacenter = \"dc1\"\n"), "{out}");
    }

    #[test]
    fn unknown_names_are_bad_input_listing_the_valid_ones() {
        let text = "[cluster]\ndatacenter = \"dc1\"\n[consul]\nversion = \"1.8.7\"\nsource = { package = \"auto\" }\n[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n[[hosts]]\nname = \"c1\"\naddress = \"10.0.0.2\"\nrole = \"client\"\n";
        let cluster = consulctl_core::inventory::parse(Path::new("inv.toml"), text).unwrap();
        let err = check_names(&cluster, &names(&["s1", "web9"])).unwrap_err();
        assert_eq!(err.code(), 2);
        let msg = err.to_string();
        assert!(msg.contains("no host named web9"), "{msg}");
        assert!(msg.contains("s1, c1"), "{msg}");
        assert_eq!(
            check_names(&cluster, &names(&["c1", "s1", "c1"])).unwrap(),
            names(&["c1", "s1"])
        );
    }

    // --- the remote scripts, run locally under sh with stand-ins -------------------------

    fn sh(script: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .output()
            .unwrap()
    }

    fn fake_consul(dir: &Path, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("consul");
        std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin.to_string_lossy().into_owned()
    }

    #[test]
    fn leave_script_moves_the_config_dir_aside_and_puts_it_back_when_leave_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("consul d");
        std::fs::create_dir(&conf).unwrap();
        std::fs::write(conf.join("consul.hcl"), "x").unwrap();
        let conf_s = conf.to_string_lossy().into_owned();
        let moved = format!("{conf_s}.removed-T");

        let failing = fake_consul(tmp.path(), "echo 'connection refused' >&2; exit 1");
        let out = sh(
            crate::remote::NODE_LEAVE,
            &[&failing, "http://127.0.0.1:8500", &conf_s, ".removed-T"],
        );
        assert_eq!(out.status.code(), Some(4));
        assert!(String::from_utf8_lossy(&out.stderr).contains("connection refused"));
        assert!(conf.join("consul.hcl").exists(), "config dir put back");
        assert!(!Path::new(&moved).exists());

        let ok = fake_consul(
            tmp.path(),
            "[ \"$1\" = leave ] && [ \"$2\" = -http-addr=http://127.0.0.1:8500 ] && echo 'Graceful leave complete'",
        );
        let out = sh(
            crate::remote::NODE_LEAVE,
            &[&ok, "http://127.0.0.1:8500", &conf_s, ".removed-T"],
        );
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("moved {conf_s}\n")), "{stdout}");
        assert!(stdout.contains("left Graceful leave complete"), "{stdout}");
        assert!(Path::new(&moved).join("consul.hcl").exists());
        assert!(!conf.exists());
    }

    #[test]
    fn stop_script_moves_paths_aside_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("node-id"), "abc").unwrap();
        let taken = tmp.path().join("taken");
        std::fs::write(&taken, "old").unwrap();
        std::fs::write(tmp.path().join("taken.removed-T"), "older").unwrap();
        let missing = tmp.path().join("missing");
        // An init system this script does not know changes nothing.
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let out = sh(
            crate::remote::NODE_STOP,
            &["upstart", "", ".removed-T", &s(&data)],
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(data.exists());
        // Stand-in init commands on PATH.
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // (pidof/pgrep too: consul agents of lab containers show in this machine's /proc.)
        for cmd in ["systemctl", "pidof", "pgrep"] {
            fake_consul(
                &bin,
                if cmd == "systemctl" {
                    "exit 0"
                } else {
                    "exit 1"
                },
            );
            std::fs::rename(bin.join("consul"), bin.join(cmd)).unwrap();
        }
        let script = format!("PATH={}:$PATH\n{}", s(&bin), crate::remote::NODE_STOP);
        let out = sh(
            &script,
            &[
                "systemd",
                "",
                ".removed-T",
                &s(&data),
                &s(&taken),
                &s(&missing),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        assert!(stdout.contains("stopped systemd"), "{stdout}");
        assert!(
            stdout.contains(&format!("moved {}\n", s(&data))),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("absent {}\n", s(&missing))),
            "{stdout}"
        );
        assert!(tmp.path().join("data.removed-T/node-id").exists());
        assert_eq!(
            std::fs::read_to_string(&taken).unwrap(),
            "old",
            "not moved over an existing file"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("taken.removed-T")).unwrap(),
            "older"
        );
    }

    #[test]
    fn snapshot_script_streams_the_bytes_and_reports_size_and_sha() {
        let tmp = tempfile::tempdir().unwrap();
        // A "snapshot" with NUL bytes and invalid UTF-8.
        let consul = fake_consul(tmp.path(), "printf 'a\\000\\377\\nb' > \"$4\"; echo saved");
        let out = sh(
            crate::remote::NODE_SNAPSHOT,
            &[&consul, "http://127.0.0.1:8500"],
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"a\0\xff\nb");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("consulctl-snapshot size 5\n"), "{stderr}");
        let sha = hex::encode(Sha256::digest(b"a\0\xff\nb"));
        assert!(
            stderr.contains(&format!("consulctl-snapshot sha256 {sha}")),
            "{stderr}"
        );
        let empty = fake_consul(tmp.path(), ": > \"$4\"");
        let out = sh(
            crate::remote::NODE_SNAPSHOT,
            &[&empty, "http://127.0.0.1:8500"],
        );
        assert_eq!(out.status.code(), Some(4));
    }

    #[test]
    fn a_snapshot_refused_until_a_configuration_entry_is_applied_is_retried_for_a_while() {
        // What `consul snapshot save` (1.8.7) prints right after servers joined, as the
        // snapshot script passes it on.
        let refused = "server4: consul snapshot save failed: Error saving snapshot: Unexpected \
                       response code: 500 (cannot take snapshot now, wait until the configuration \
                       entry at 104 has been applied)";
        assert!(snapshot_retryable(refused));
        for other in [
            "server4: consul snapshot save failed: Error saving snapshot: Unexpected response \
             code: 403 (Permission denied)",
            "server4: consul snapshot save failed: Error saving snapshot: Unexpected response \
             code: 500 (No cluster leader)",
            "server4: SSH connection lost during `consul snapshot save`",
            "server4: consul snapshot save wrote an empty file: ",
        ] {
            assert!(!snapshot_retryable(other), "{other}");
        }
    }

    // --- decisions over Consul's answers (fixtures in tests/fixtures/consul) ---------------

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

    fn ips(v: &[&str]) -> BTreeSet<IpAddr> {
        v.iter().map(|s| ip(s)).collect()
    }

    const VIEW: [&str; 3] = [
        "GET /v1/status/leader",
        "GET /v1/operator/raft/configuration?stale",
        "GET /v1/agent/members",
    ];

    #[tokio::test]
    async fn removing_a_healthy_server_keeps_the_quorum() {
        let fake = fixture("healthy-3-servers.json");
        let up = check_up_front(
            &[via("server1", &fake)],
            &names(&["server3"]),
            &ips(&["10.0.0.3"]),
            false,
        )
        .await
        .unwrap();
        let c = up.check.unwrap();
        assert_eq!(
            (
                c.voters,
                c.removed_voters,
                c.remaining,
                c.alive_remaining,
                c.quorum
            ),
            (3, 1, 2, 2, 2)
        );
        assert!(up.warnings.is_empty(), "{:?}", up.warnings);
        assert_eq!(up.view.unwrap().leader.as_deref(), Some("10.0.0.1:8300"));
        // One read, one round trip, nothing written.
        assert_eq!(fake.sent(), VIEW);
        assert_eq!(fake.batches(), [3]);
    }

    #[tokio::test]
    async fn removing_the_failed_server_is_allowed_and_force_leaves_it() {
        let fake = fixture("one-server-failed.json");
        let v = via("server1", &fake);
        let up = check_up_front(
            std::slice::from_ref(&v),
            &names(&["server3"]),
            &ips(&["10.0.0.3"]),
            false,
        )
        .await
        .unwrap();
        let c = up.check.unwrap();
        assert_eq!((c.remaining, c.alive_remaining, c.quorum), (2, 2, 2));
        assert_eq!(c.problem(), None);
        fake.clear_record();

        // --force on the dead server: force-leave, the leader keeps it in raft for the whole
        // settle time, so its peer is removed by address.
        let clock = ManualClock::new();
        let mut done = Vec::new();
        force_out(
            &v,
            "server3",
            Some(ip("10.0.0.3")),
            true,
            &clock,
            RAFT_SETTLE,
            &mut done,
        )
        .await
        .unwrap();
        assert_eq!(
            done,
            [
                "consul force-leave -prune server3 (through server1)",
                "consul operator raft remove-peer -address=10.0.0.3:8300 (through server1)",
            ]
        );
        let sent = fake.sent();
        assert_eq!(sent[..3], VIEW);
        assert_eq!(sent[3], "PUT /v1/agent/force-leave/server3?prune");
        assert_eq!(
            sent.last().unwrap(),
            "DELETE /v1/operator/raft/peer?address=10.0.0.3%3A8300"
        );
        // Between them only reads, every 500ms for 10s.
        let reads = &sent[4..sent.len() - 1];
        assert_eq!(reads.len(), 21 * 3);
        assert!(reads.chunks(3).all(|c| c == VIEW), "{reads:?}");
        assert_eq!(clock.slept(), RAFT_SETTLE);
        assert_eq!(fake.count("PUT", "/v1/agent/force-leave/server3?prune"), 1);
    }

    #[tokio::test]
    async fn a_server_the_leader_drops_by_itself_needs_no_remove_peer() {
        // After the first read (server3 failed, a raft peer) Consul shows it left and out of raft.
        let fake = fixture("one-server-failed.json")
            .on_json(
                "GET",
                "/v1/operator/raft/configuration",
                &serde_json::json!({"Servers": [
                    {"ID": "1", "Node": "server1", "Address": "10.0.0.1:8300", "Leader": true, "Voter": true},
                    {"ID": "2", "Node": "server2", "Address": "10.0.0.2:8300", "Leader": false, "Voter": true}
                ], "Index": 150}),
            )
            .on_json(
                "GET",
                "/v1/agent/members",
                &serde_json::json!([
                    {"Name": "server1", "Addr": "10.0.0.1", "Status": 1, "Tags": {"role": "consul"}},
                    {"Name": "server2", "Addr": "10.0.0.2", "Status": 1, "Tags": {"role": "consul"}},
                    {"Name": "server3", "Addr": "10.0.0.3", "Status": 3, "Tags": {"role": "consul"}}
                ]),
            );
        let v = via("server2", &fake);
        let clock = ManualClock::new();
        let mut done = Vec::new();
        force_out(&v, "server3", None, true, &clock, RAFT_SETTLE, &mut done)
            .await
            .unwrap();
        assert_eq!(
            done,
            ["consul force-leave -prune server3 (through server2)"]
        );
        assert_eq!(fake.count("DELETE", "/v1/operator/raft/peer"), 0);
        assert!(clock.sleeps().is_empty());
        let mut want: Vec<&str> = VIEW.to_vec();
        want.push("PUT /v1/agent/force-leave/server3?prune");
        want.extend(VIEW);
        assert_eq!(fake.sent(), want);
        // Then Consul reports it gone.
        let mut said = Vec::new();
        wait_gone(
            std::slice::from_ref(&v),
            "server3",
            None,
            true,
            false,
            &clock,
            Duration::from_secs(60),
            &mut said,
        )
        .await
        .unwrap();
        assert_eq!(
            said,
            [
                "Consul (through server2) reports server3 as left",
                "server3 is out of the raft configuration (2 voters now, leader 10.0.0.1:8300)",
            ]
        );
        assert_eq!(fake.count("PUT", "/v1/agent/force-leave/server3?prune"), 1);
    }

    #[tokio::test]
    async fn removing_a_live_server_while_another_failed_is_refused_with_exit_2() {
        let fake = fixture("one-server-failed.json");
        let e = check_up_front(
            &[via("server1", &fake)],
            &names(&["server2"]),
            &ips(&["10.0.0.2"]),
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.to_string(),
            "refusing: removing server2 would leave 1 alive voter of 2; quorum of the remaining 2 \
             needs 2. Nothing was changed; --force overrides this check"
        );
        assert_eq!(fake.sent(), VIEW, "nothing but the read");
        // --force: a warning instead.
        let up = check_up_front(
            &[via("server1", &fake)],
            &names(&["server2"]),
            &ips(&["10.0.0.2"]),
            true,
        )
        .await
        .unwrap();
        assert_eq!(up.warnings.len(), 1);
        assert!(
            up.warnings[0].starts_with("--force: removing server2 would leave 1 alive voter of 2")
        );
        // The check before the server itself says it once more only when it is news.
        let mut warnings = up.warnings.clone();
        check_before_server(
            &[via("server1", &fake)],
            "server2",
            Some(ip("10.0.0.2")),
            true,
            &mut warnings,
        )
        .await
        .unwrap();
        assert_eq!(warnings.len(), 1);
        let e = check_before_server(
            &[via("server1", &fake)],
            "server2",
            Some(ip("10.0.0.2")),
            false,
            &mut warnings,
        )
        .await
        .unwrap_err();
        assert_eq!(
            e,
            "refusing: removing server2 would leave 1 alive voter of 2; quorum of the remaining 2 needs 2; --force overrides"
        );
    }

    #[tokio::test]
    async fn ipv6_servers_named_otherwise_in_consul_are_matched_by_address() {
        // The inventory's server2 / server3 are Consul's node-b / node-c at [fd00::2] / [fd00::3].
        let fake = fixture("ipv6-one-server-failed.json");
        let e = check_up_front(
            &[via("server1", &fake)],
            &names(&["server2"]),
            &ips(&["fd00::2"]),
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("would leave 1 alive voter of 2; quorum of the remaining 2 needs 2"),
            "{e}"
        );
        let up = check_up_front(
            &[via("server1", &fake)],
            &names(&["server3"]),
            &ips(&["fd00::3"]),
            false,
        )
        .await
        .unwrap();
        let c = up.check.unwrap();
        assert_eq!(
            (c.removed_voters, c.remaining, c.alive_remaining),
            (1, 2, 2)
        );
        // Forced out: node-c is not a member by the inventory's name; its raft peer goes by
        // its bracketed address.
        fake.clear_record();
        let clock = ManualClock::new();
        let mut done = Vec::new();
        force_out(
            &via("server1", &fake),
            "server3",
            Some(ip("fd00::3")),
            true,
            &clock,
            Duration::from_secs(1),
            &mut done,
        )
        .await
        .unwrap();
        assert_eq!(
            done,
            [
                "server3 is not a member any more (as server1 sees it)",
                "consul operator raft remove-peer -address=[fd00::3]:8300 (through server1)",
            ]
        );
        assert_eq!(
            fake.sent().last().unwrap(),
            "DELETE /v1/operator/raft/peer?address=%5Bfd00%3A%3A3%5D%3A8300"
        );
        assert_eq!(fake.count("PUT", "/v1/agent/force-leave/server3?prune"), 0);
    }

    #[tokio::test]
    async fn without_a_raft_configuration_removing_a_server_is_an_error_and_a_client_a_warning() {
        let fake = FakeTransport::new().fail_all("ssh server1: connection refused");
        let e = check_up_front(
            &[via("server1", &fake)],
            &names(&["server2"]),
            &ips(&[]),
            true,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Runtime(_)), "{e:?}");
        assert!(e.to_string().contains("cannot be checked"), "{e}");
        let up = check_up_front(&[via("server1", &fake)], &[], &ips(&[]), false)
            .await
            .unwrap();
        assert!(up.view.is_none() && up.check.is_none());
        assert_eq!(
            up.warnings,
            ["cannot read the cluster state: no live server answered: server1: reading the leader: ssh server1: connection refused"]
        );
    }

    #[tokio::test]
    async fn waiting_for_a_node_to_leave_times_out_naming_what_is_left() {
        let fake = fixture("one-server-failed.json");
        let clock = ManualClock::new();
        let mut said = Vec::new();
        let e = wait_gone(
            &[via("server1", &fake)],
            "server3",
            Some(ip("10.0.0.3")),
            true,
            true,
            &clock,
            Duration::from_secs(5),
            &mut said,
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "after consul leave, within 5s: Consul (through server1) still reports server3 as \
             failed and in the raft configuration"
        );
        assert!(said.is_empty());
        assert_eq!(fake.count("GET", "/v1/agent/members"), 11);
    }

    /// A node name is one path segment of the force-leave request, whatever it holds (the
    /// former script passed it after `--` for a name with a leading dash).
    #[tokio::test]
    async fn force_leave_of_an_odd_node_name() {
        let fake = FakeTransport::new()
            .on_json(
                "GET",
                "/v1/agent/members",
                &serde_json::json!([{"Name": "-n1", "Addr": "10.0.0.9", "Status": 4, "Tags": {}}]),
            )
            .on("PUT", "/v1/agent/force-leave/-n1", 200, "")
            .load_file(format!(
                "{}/tests/fixtures/consul/healthy-3-servers.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
        let mut done = Vec::new();
        force_out(
            &via("server1", &fake),
            "-n1",
            None,
            false,
            &ManualClock::new(),
            RAFT_SETTLE,
            &mut done,
        )
        .await
        .unwrap();
        assert_eq!(done, ["consul force-leave -prune -n1 (through server1)"]);
        assert_eq!(fake.sent()[3..], ["PUT /v1/agent/force-leave/-n1?prune"]);
    }
}
