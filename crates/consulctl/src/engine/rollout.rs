//! `apply` and `plan`: the rollout as titled phases (from `playbooks/rollout.toml`), each run
//! on all hosts concurrently. A host that fails a phase is skipped by the later ones; the others
//! go on, and the recap names every failed host with its phase and error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures::StreamExt;

use crate::cli::{Output, RolloutSettings, Settings};
use crate::engine::lock::{Holder, RunLock};
use crate::engine::phase::{BoxFuture, Manager, Phase};
use crate::engine::progress::Progress;
use crate::engine::recap::{Recap, VerifyResult};
use crate::engine::source;
use crate::remote::ssh::Connection;
use consulctl_core::agent_config::{self, HostContext};
use consulctl_core::desired::DesiredFile;
use consulctl_core::error::Error;
use consulctl_core::model::{BindAddr, Cluster, Host, InstallSource, Role};
use consulctl_core::plan::{self, BinaryPlan, HostPlan, PlanInput};
use consulctl_core::playbook::{Playbook, Task};
use consulctl_core::selector::Selector;

pub use super::context::*;

/// Render desired state and plan each host (pure; no remote calls).
pub fn validate(
    runs: &mut [HostRun],
    p: &Prepared,
    progress: &Progress,
) -> BTreeMap<String, IpAddr> {
    validate_selected(runs, p, progress, None)
}

/// The hosts a playbook step acts on (its `hosts` selector; all when None), taken out of
/// `runs`; the others stay in `runs`, untouched by the step. [`put_back`] restores the order.
fn take_selected(runs: &mut Vec<HostRun>, selector: Option<&Selector>) -> Vec<HostRun> {
    let (chosen, rest): (Vec<HostRun>, Vec<HostRun>) = std::mem::take(runs)
        .into_iter()
        .partition(|r| selector.map(|s| s.matches(&r.host)).unwrap_or(true));
    *runs = rest;
    chosen
}

/// Undo [`take_selected`]: every host back in `runs`, in the run's (inventory) order.
fn put_back(runs: &mut Vec<HostRun>, chosen: Vec<HostRun>, order: &[Host]) {
    runs.extend(chosen);
    runs.sort_by_key(|r| order.iter().position(|h| h.name == r.host.name));
}

/// [`validate`] for the hosts the selector matches (all when None): the bind addresses come
/// from every host's facts (each config lists all servers), only the selected hosts are planned.
/// The others keep the plan they had (none unless an earlier step planned them).
pub fn validate_selected(
    runs: &mut [HostRun],
    p: &Prepared,
    progress: &Progress,
    selector: Option<&Selector>,
) -> BTreeMap<String, IpAddr> {
    let cluster = &p.cluster;
    let binds = bind_addrs(cluster, runs);
    let retry_join: Vec<IpAddr> = cluster
        .servers()
        .filter_map(|s| binds.get(&s.name).copied())
        .collect();
    let missing_servers: Vec<&str> = cluster
        .servers()
        .filter(|s| !binds.contains_key(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    for r in runs
        .iter_mut()
        .filter(|r| r.alive() && selector.map(|s| s.matches(&r.host)).unwrap_or(true))
    {
        progress.set(&r.host.name, "validate");
        let res = plan_one(r, p, &binds, &retry_join, &missing_servers);
        match res {
            Ok((desired, plan)) => {
                r.desired = desired;
                r.plan = plan;
            }
            Err(e) => r.fail("validate", &e),
        }
        r.mark();
    }
    binds
}

fn plan_one(
    r: &HostRun,
    p: &Prepared,
    binds: &BTreeMap<String, IpAddr>,
    retry_join: &[IpAddr],
    missing_servers: &[&str],
) -> Result<(Vec<DesiredFile>, HostPlan)> {
    let host = &r.host;
    let facts = r.facts.as_ref().expect("facts gathered");
    if !missing_servers.is_empty() {
        return Err(anyhow!(
            "the bind address of server(s) {} is unknown (bind_cidr without their facts); \
             include them in --limit or give them bind_addr",
            missing_servers.join(", ")
        ));
    }
    let wanted = p.cluster.consul.version;
    if let Some(installed) = facts.consul.as_ref().and_then(|c| c.version) {
        if installed > wanted && !p.allow_downgrade {
            return Err(anyhow!(
                "the host runs Consul {installed}; installing {wanted} would be a downgrade, which \
                 is refused (Consul does not support it in general); pass --allow-downgrade to force it"
            ));
        }
    }
    let bind_addr = match &host.bind {
        BindAddr::Cidr(net) => facts
            .bind_addr_in(net)
            .map_err(|e| anyhow!("bind_cidr {net}: {e}"))?,
        BindAddr::Fixed(ip) => *ip,
    };
    debug_assert_eq!(binds.get(&host.name), Some(&bind_addr));
    let pid1_ok = match host.init {
        consulctl_core::model::Init::Systemd => facts.pid1 == "systemd",
        consulctl_core::model::Init::Supervisord => true,
    };
    if !pid1_ok {
        return Err(anyhow!(
            "init = \"systemd\" but PID 1 on this host is `{}`; set init = \"supervisord\" for it in the inventory",
            facts.pid1
        ));
    }
    let supervisor_program = match host.init {
        consulctl_core::model::Init::Supervisord => facts.supervisor_program_path(host).ok_or_else(|| {
            anyhow!("init = \"supervisord\" but supervisord is not installed on this host (no include dir found)")
        })?,
        consulctl_core::model::Init::Systemd => PathBuf::new(),
    };
    let ctx = HostContext {
        cluster: &p.cluster,
        host,
        bind_addr,
        retry_join: retry_join.to_vec(),
        supervisor_program,
    };
    let mut desired =
        agent_config::render_host(&p.templates, &ctx).context("rendering the configuration")?;
    let mut plumbing = consulctl_core::plumbing::render(&p.cluster, host, facts, bind_addr)
        .context("host plumbing (dns, services, prepare)")?;
    // consulctl-host's daemons: the Docker registrar and the LB sync daemon.
    let registrar = consulctl_core::lb::render_daemons(
        &p.cluster,
        host,
        facts,
        bind_addr,
        p.host_binary.as_ref().map(|b| b.sha256.as_str()),
    )?;
    plumbing.files.extend(registrar.files);
    plumbing.actions.extend(registrar.actions);
    desired.extend(plumbing.files.iter().cloned());
    let binary = match (&p.cluster.consul.source, &p.binary) {
        (InstallSource::Package { manager }, _) => {
            let m = source::resolve_package_manager(*manager, facts).map_err(|e| anyhow!(e))?;
            BinaryPlan::Package {
                commands: source::package_install_commands(m, &p.cluster.consul.version),
            }
        }
        (_, Some(b)) => BinaryPlan::Upload {
            sha256: b.sha256.clone(),
        },
        (_, None) => return Err(anyhow!("internal: no prepared binary")),
    };
    let mut plan = plan::plan_host(&PlanInput {
        host,
        facts,
        desired: &desired,
        binary: &binary,
        version: p.cluster.consul.version,
    });
    plan::add_plumbing(&mut plan, &plumbing, facts.agent_running(host.init));
    Ok((desired, plan))
}

/// For hosts whose only restart reason is their agent config, read the config they run now and
/// decide between restart, `consul reload` and a deferred (pending) restart.
pub async fn refine(runs: &mut [HostRun], p: &Prepared, progress: &Progress) {
    each_host(runs, p.concurrency, progress, "validate", |r| async move {
        let wants_restart = r.plan.actions.iter().any(
            |a| matches!(a, consulctl_core::action::Action::Restart { reasons } if reasons == &["config changed"]),
        );
        let Some(new) = r
            .desired
            .iter()
            .find(|f| f.kind == consulctl_core::desired::FileKind::AgentConfig)
            .cloned()
        else {
            return;
        };
        if !wants_restart {
            return;
        }
        let conn = r.conn.as_ref().expect("connected");
        match crate::engine::execute::read_files(conn, &[new.path.as_path()]).await {
            Ok(files) => {
                let old = files.get(&new.path.display().to_string()).cloned().unwrap_or_default();
                plan::refine_with_current_config(&mut r.plan, &old, &new.content);
            }
            Err(e) => r.fail("validate", &e),
        }
    })
    .await;
}

/// Take the host lock on every host that is about to change. `took_over`: the dead run whose
/// stale control lock this run took over (its host locks are taken over too).
pub async fn lock_hosts(
    runs: &mut [HostRun],
    p: &Prepared,
    progress: &Progress,
    holder: &Holder,
    took_over: Option<&Holder>,
) {
    each_host(runs, p.concurrency, progress, "lock", |r| async move {
        if r.plan.is_empty() {
            // Nothing to change here; a lock the dead run left still goes.
            if let (Some(dead), Some(conn)) = (took_over, r.conn.as_ref()) {
                match crate::engine::lock::release_stale(conn, dead).await {
                    Ok(true) => progress.println(&format!(
                        "warning: {}: removed the host lock of {}, a run that is gone",
                        r.host.name,
                        dead.describe()
                    )),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(host = %r.host.name, error = %format!("{e:#}"), "removing a stale host lock"),
                }
            }
            return;
        }
        let conn = r.conn.as_ref().expect("connected");
        match crate::engine::lock::lock_host(conn, holder, took_over).await {
            Ok(stale) => {
                r.locked = true;
                if let Some(why) = stale {
                    progress.println(&format!(
                        "warning: {}: taking over a stale host lock: {why}",
                        r.host.name
                    ));
                    tracing::warn!(host = %r.host.name, previous = %why, "took over a stale host lock");
                }
            }
            Err(e) => r.fail("lock", &e),
        }
    })
    .await;
}

pub async fn upload(runs: &mut [HostRun], p: &Prepared, progress: &Progress) {
    let binary = p.binary.as_ref();
    let host_binary = p.host_binary.as_ref();
    each_host(runs, p.concurrency, progress, "upload", |r| async move {
        let consul = !matches!(
            r.plan.binary_action(),
            None | Some(consulctl_core::action::Action::InstallPackage { deferred: true, .. })
        );
        let registrar = r.plan.host_binary_action().is_some();
        if !consul && !registrar {
            return;
        }
        let conn = r.conn.as_ref().expect("connected");
        if consul {
            match crate::engine::execute::upload(conn, &r.host, &r.plan, r.facts.as_ref(), binary)
                .await
            {
                Ok(()) => r.changed += 1,
                Err(e) => {
                    r.fail("upload", &e);
                    r.mark();
                    return;
                }
            }
        }
        if registrar {
            match crate::engine::execute::upload_host_binary(
                conn,
                &r.plan,
                r.facts.as_ref(),
                host_binary,
            )
            .await
            {
                Ok(()) => r.changed += 1,
                Err(e) => r.fail("upload", &e),
            }
        }
        r.mark();
    })
    .await;
}

pub async fn configure(runs: &mut [HostRun], p: &Prepared, progress: &Progress, timestamp: &str) {
    each_host(runs, p.concurrency, progress, "configure", |r| async move {
        let conn = r.conn.as_ref().expect("connected");
        let n = r.plan.actions.iter().filter(|a| a.is_configure()).count();
        match crate::engine::execute::configure(conn, &r.host, &r.plan, timestamp).await {
            Ok(written) => {
                r.changed += n;
                r.written = written;
            }
            Err(e) => r.fail("configure", &e),
        }
        r.mark();
    })
    .await;
}

/// A start step: agents that do not run yet are started (a fresh cluster's servers together,
/// servers joining a running cluster one at a time, each a voter before the next), agents that
/// only need `consul reload` are reloaded, and agents that must restart (binary, config or unit
/// changed) go through the rolling restart engine: servers one at a time, followers first and
/// the leader last, clients in batches, every step gated on Consul's health; a restart that does
/// not come back puts the last good files back and stops the roll.
pub async fn start(
    runs: &mut [HostRun],
    p: &Prepared,
    progress: &Progress,
    sel: &str,
    binds: &BTreeMap<String, IpAddr>,
    timestamp: &str,
    restarts: &mut crate::engine::rolling::RollState,
) -> Result<(), Error> {
    let selector = selector_for(sel, &p.cluster)?;
    let started = Instant::now();
    // Servers joining a cluster that already runs go one at a time, each a voter before the
    // next (never two new voters at once). A fresh cluster starts all servers together:
    // bootstrap_expect waits for them.
    let cluster_runs = p.cluster.servers().any(|s| {
        runs.iter()
            .find(|r| r.host.name == s.name)
            .map(|r| {
                r.facts
                    .as_ref()
                    .is_some_and(|f| f.agent_running(r.host.init))
            })
            .unwrap_or(true) // not selected: assume it runs
    });
    let is_joiner = |r: &HostRun| {
        cluster_runs
            && r.host.role == Role::Server
            && r.plan
                .actions
                .iter()
                .any(|a| matches!(a, consulctl_core::action::Action::Start))
    };
    let restarts_agent = |r: &HostRun| {
        r.plan
            .actions
            .iter()
            .any(|a| matches!(a, consulctl_core::action::Action::Restart { .. }))
    };
    let mut together: Vec<&mut HostRun> = Vec::new();
    let mut joiners: Vec<&mut HostRun> = Vec::new();
    let mut roll: BTreeSet<String> = BTreeSet::new();
    for r in runs.iter_mut().filter(|r| r.alive()) {
        if !selector
            .as_ref()
            .map(|s| s.matches(&r.host))
            .unwrap_or(true)
        {
            continue;
        }
        if r.plan.service_actions().next().is_none() {
            continue;
        }
        if restarts_agent(r) {
            roll.insert(r.host.name.clone());
            progress.set(&r.host.name, "waiting for its turn to restart");
            continue;
        }
        progress.set(&r.host.name, "start");
        if is_joiner(r) {
            joiners.push(r);
        } else {
            together.push(r);
        }
    }
    futures::stream::iter(together)
        .for_each_concurrent(p.concurrency, |r| start_one(r, binds))
        .await;
    for r in joiners {
        start_one(r, binds).await;
        if !r.alive() {
            // Never start the next new server while this one is not a healthy voter.
            break;
        }
        progress.set(&r.host.name, "waiting to be a voter");
        let bind = binds.get(&r.host.name).copied();
        let res = match (r.conn.as_ref(), bind) {
            (Some(conn), Some(bind)) => {
                wait_voter(conn, &r.host, bind, Duration::from_secs(90)).await
            }
            _ => Err(anyhow!("no connection")),
        };
        if let Err(e) = res {
            r.fail("start", &e);
            break;
        }
        r.mark();
    }
    if !roll.is_empty() {
        let opts = roll_opts(runs, p, timestamp, &roll);
        if let Some(why) = restarts.stopped.clone() {
            let pending: Vec<String> = roll.into_iter().collect();
            let reason = format!("an earlier restart stopped the roll ({why})");
            crate::engine::rolling::not_restarted(runs, &pending, &reason, progress, &opts).await;
        } else {
            let report =
                crate::engine::rolling::rolling_restart(runs, p, progress, binds, &roll, &opts)
                    .await?;
            restarts.steps.extend(report.steps);
            restarts.stopped = report.stopped;
        }
    }
    tracing::info!(
        phase = sel,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "start phase done"
    );
    Ok(())
}

/// How `apply` rolls restarts: per host the init-system steps its plan asks for and the agent
/// files it wrote (put back if it fails), and the hosts that must be alive members meanwhile:
/// the inventory without the hosts whose agent this run found not running and did not start.
fn roll_opts(
    runs: &[HostRun],
    p: &Prepared,
    timestamp: &str,
    roll: &BTreeSet<String>,
) -> crate::engine::rolling::RollingOpts {
    use consulctl_core::action::Action;
    use consulctl_core::desired::FileKind;
    let mut hosts = BTreeMap::new();
    for r in runs.iter().filter(|r| roll.contains(&r.host.name)) {
        let agent_file = |path: &String| {
            r.plan.file_writes().any(|f| {
                f.path.display().to_string() == *path
                    && matches!(
                        f.kind,
                        FileKind::AgentConfig
                            | FileKind::ServiceDefinition
                            | FileKind::TlsFile
                            | FileKind::SystemdUnit
                            | FileKind::SupervisorProgram
                    )
            })
        };
        hosts.insert(
            r.host.name.clone(),
            crate::engine::rolling::HostRestart {
                reload_init: r.plan.actions.contains(&Action::ReloadInit),
                before: match r.plan.binary_action() {
                    Some(Action::InstallPackage {
                        commands,
                        deferred: true,
                    }) => commands.clone(),
                    _ => Vec::new(),
                },
                enable: r.plan.actions.contains(&Action::Enable),
                written: r
                    .written
                    .iter()
                    .filter(|w| agent_file(w))
                    .cloned()
                    .collect(),
            },
        );
    }
    let not_running: BTreeSet<&str> = runs
        .iter()
        .filter(|r| {
            !r.agent_started
                && r.facts
                    .as_ref()
                    .is_some_and(|f| !f.agent_running(r.host.init))
        })
        .map(|r| r.host.name.as_str())
        .collect();
    let mut expect = (*p.cluster).clone();
    expect
        .hosts
        .retain(|h| !not_running.contains(h.name.as_str()));
    crate::engine::rolling::RollingOpts {
        hosts,
        backup_dir: crate::engine::execute::backup_dir(timestamp),
        expect: Some(Arc::new(expect)),
        ..crate::engine::rolling::RollingOpts::default()
    }
}

async fn start_one(r: &mut HostRun, binds: &BTreeMap<String, IpAddr>) {
    let n = r.plan.service_actions().count();
    let conn = r.conn.as_ref().expect("connected");
    let http = r.api_url(binds);
    let starts = r
        .plan
        .actions
        .contains(&consulctl_core::action::Action::Start);
    match crate::engine::execute::start(conn, &r.host, &r.plan, &http, 60).await {
        Ok(pid) => {
            tracing::info!(host = %r.host.name, pid = ?pid, "agent up");
            r.changed += n;
            r.agent_started |= starts;
        }
        Err(e) => r.fail("start", &e),
    }
    r.mark();
}

/// Wait until Consul (asked through this server) has a leader and lists this server as a voter.
async fn wait_voter(conn: &Connection, host: &Host, bind: IpAddr, timeout: Duration) -> Result<()> {
    let agent = crate::engine::verify::agent(conn, host, Some(bind));
    wait_voter_with(&agent, bind, timeout).await?;
    tracing::info!(host = %host.name, "new server is a voter");
    Ok(())
}

/// Read the view through `agent` every 500 ms until there is a leader and the server at
/// `bind` is a voter.
async fn wait_voter_with(
    agent: &crate::engine::verify::Agent,
    bind: IpAddr,
    timeout: Duration,
) -> Result<()> {
    let me = crate::engine::verify::raft_addr(bind);
    let me = &me;
    consul_api::poll::wait_until(
        "a voter",
        timeout,
        Duration::from_millis(500),
        move || async move {
            let view = crate::engine::verify::read_view_with(&agent.client, &agent.host)
                .await
                .map_err(|e| format!("{e:#}"))?;
            let voter = view.raft.iter().any(|s| &s.address == me && s.voter);
            if view.leader.is_some() && voter {
                return Ok(consul_api::poll::Progress::Ready(()));
            }
            Ok(consul_api::poll::Progress::Pending(format!(
                "leader {:?}, raft peers {:?}",
                view.leader,
                view.raft
                    .iter()
                    .map(|s| format!("{}{}", s.address, if s.voter { "" } else { " (non-voter)" }))
                    .collect::<Vec<_>>()
            )))
        },
    )
    .await
    .map_err(|t| {
        anyhow!(
            "did not become a voter within {}s: {}",
            timeout.as_secs(),
            crate::engine::verify::last_seen(&t)
        )
    })
}

fn selector_for(sel: &str, cluster: &Cluster) -> Result<Option<Selector>, Error> {
    if sel == "all" {
        return Ok(None);
    }
    // A playbook step for a role the inventory has no hosts of (e.g. no clients) is empty,
    // not an error: the selector matches nothing.
    if let Some(role) = sel.strip_prefix("role:") {
        let empty = match role {
            "server" => cluster.servers().next().is_none(),
            "client" => cluster.clients().next().is_none(),
            _ => false,
        };
        if empty {
            return Ok(Some(Selector::nothing()));
        }
    }
    Selector::parse(sel, cluster)
        .map(Some)
        .map_err(|e| Error::Input(anyhow!("playbook step hosts = {sel:?}: {e}")))
}

pub async fn verify(
    runs: &[HostRun],
    p: &Prepared,
    progress: &Progress,
    binds: &BTreeMap<String, IpAddr>,
    timeout: Duration,
) -> VerifyResult {
    // Ask through servers first, then clients; any connected host will do.
    let mut via: Vec<(&Connection, String)> = Vec::new();
    for role in [Role::Server, Role::Client] {
        for r in runs.iter().filter(|r| r.host.role == role) {
            if let (Some(conn), Some(bind)) = (r.conn.as_ref(), binds.get(&r.host.name)) {
                if r.failed
                    .as_ref()
                    .map(|(ph, _)| ph == "connect")
                    .unwrap_or(false)
                {
                    continue;
                }
                via.push((conn, crate::engine::verify::agent_url(&r.host, Some(*bind))));
            }
        }
    }
    for r in runs.iter().filter(|r| r.alive()) {
        progress.set(&r.host.name, "verify");
    }
    let started = Instant::now();
    // No host to ask: nothing to wait for.
    let timeout = if via.is_empty() {
        Duration::ZERO
    } else {
        timeout
    };
    // Hosts that already failed are failures whatever Consul says: not waited for.
    let failed: std::collections::BTreeSet<String> = runs
        .iter()
        .filter(|r| r.failed.is_some())
        .map(|r| r.host.name.clone())
        .collect();
    // Servers that failed before they were started can leave too few for a leader: then
    // there is nothing to wait for either (one look, then say why).
    let impossible = leader_impossible(&p.cluster, runs);
    let timeout = if impossible.is_some() {
        Duration::ZERO
    } else {
        timeout
    };
    let result =
        crate::engine::verify::wait_healthy_except(&p.cluster, binds, &via, timeout, &failed).await;
    let not_checked: Vec<String> = failed.into_iter().collect();
    tracing::info!(
        phase = "verify",
        elapsed_ms = started.elapsed().as_millis() as u64,
        ok = result.is_ok(),
        "phase done"
    );
    match result {
        Ok(view) => VerifyResult {
            healthy: true,
            leader: view.leader.clone(),
            voters: view.raft.iter().filter(|s| s.voter).count(),
            alive_members: view.members.iter().filter(|m| m.status == 1).count(),
            problems: Vec::new(),
            not_checked,
        },
        Err((mut problems, view)) => VerifyResult {
            problems: {
                problems.extend(impossible);
                problems
            },
            healthy: false,
            leader: view.as_ref().and_then(|v| v.leader.clone()),
            voters: view
                .as_ref()
                .map(|v| v.raft.iter().filter(|s| s.voter).count())
                .unwrap_or(0),
            alive_members: view
                .as_ref()
                .map(|v| v.members.iter().filter(|m| m.status == 1).count())
                .unwrap_or(0),
            not_checked,
        },
    }
}

/// Why no leader can be elected, when the servers that failed before this run started them
/// (no agent running on them) leave fewer servers than a quorum of the inventory's servers.
pub fn leader_impossible(cluster: &Cluster, runs: &[HostRun]) -> Option<String> {
    let n = cluster.servers().count();
    let before_start = crate::engine::evidence::failed_before_start(runs);
    let down: Vec<&str> = runs
        .iter()
        .filter(|r| r.host.role == Role::Server && before_start.contains_key(&r.host.name))
        .filter(|r| {
            r.facts
                .as_ref()
                .is_some_and(|f| !f.agent_running(r.host.init) && f.consul_pid.is_none())
        })
        .map(|r| r.host.name.as_str())
        .collect();
    let quorum = n / 2 + 1;
    (!down.is_empty() && n - down.len() < quorum).then(|| {
        format!(
            "no leader can be elected: {} of the inventory's {n} servers failed before they \
             were started and run no agent ({}); a leader needs {quorum}",
            down.len(),
            down.join(", ")
        )
    })
}

/// `acl = true`: bootstrap the ACL system through a server unless the secrets file has the
/// management token (it is stored there at once, then given to every connection), then make
/// each node's agent policy and token exist. A failure fails the server it went through.
pub async fn acl(
    runs: &mut [HostRun],
    p: &Prepared,
    progress: &Progress,
    binds: &BTreeMap<String, IpAddr>,
) {
    if !p.cluster.acl {
        return;
    }
    let started = Instant::now();
    // Through a server; with `--limit` to clients only, through a client (it forwards).
    let Some(i) = runs
        .iter()
        .position(|r| r.alive() && r.host.role == Role::Server && r.conn.is_some())
        .or_else(|| runs.iter().position(|r| r.alive() && r.conn.is_some()))
    else {
        tracing::warn!("ACLs: no reachable host to go through");
        return;
    };
    let mut token = p.cluster.acl_tokens.management.clone();
    let res: Result<usize> = async {
        let r = &runs[i];
        progress.set(&r.host.name, "ACLs");
        let conn = r.conn.as_ref().expect("connected");
        let http = r.api_url(binds);
        let mut written = 0;
        if token.is_none() {
            let secrets = consulctl_core::secrets::path_for(&p.cluster.inventory_path);
            let t = crate::engine::acl::bootstrap(conn, &http, &secrets, Duration::from_secs(90))
                .await?;
            consulctl_core::secrets::save_management_token(&p.cluster.inventory_path, &t)
                .context("storing the management token")?;
            progress.println(&format!(
                "    ACL system bootstrapped; the management token is in {} (mode 0600)",
                secrets.display()
            ));
            token = Some(t);
            written += 1;
        }
        // From here on every script gets the token.
        for r in runs.iter() {
            if let Some(c) = r.conn.as_ref() {
                let mut env = c.consul_env();
                env.token = token.clone();
                c.set_consul_env(env);
            }
        }
        let conn = runs[i].conn.as_ref().expect("connected");
        written += crate::engine::acl::ensure_agent_tokens(conn, &http, &p.cluster).await?;
        Ok(written)
    }
    .await;
    let r = &mut runs[i];
    match res {
        Ok(n) => r.changed += n,
        Err(e) => r.fail("acl", &e),
    }
    r.mark();
    tracing::info!(
        phase = "acl",
        elapsed_ms = started.elapsed().as_millis() as u64,
        "phase done"
    );
}

/// The shipped rollout playbook on the hosts of `settings`: what `apply` does, and what
/// `keys rotate`, `tls renew` and `lab up` run after changing the inventory's secrets or hosts.
pub async fn apply(
    settings: &Settings,
    rollout: RolloutSettings,
    debug_log: Option<&Path>,
) -> Result<(), Error> {
    let p = prepare(settings, "apply", debug_log).await?;
    run_playbook(
        &Playbook::rollout(),
        &p,
        "apply",
        rollout.output,
        rollout.verify_timeout_secs,
    )
    .await
}

/// The rollout's state as its phases go: the hosts, their bind addresses, what verify and the
/// rolling restarts found. `lock` is None in a dry run (`plan`), which locks no host.
pub struct Rollout<'p> {
    pub p: &'p Prepared,
    pub runs: Vec<HostRun>,
    pub progress: Progress,
    pub binds: BTreeMap<String, IpAddr>,
    pub verify_result: Option<VerifyResult>,
    pub restarts: crate::engine::rolling::RollState,
    /// This run's holder, and the dead run whose control lock it took over.
    pub lock: Option<(Holder, Option<Holder>)>,
    pub timestamp: String,
    pub verify_timeout: u64,
    /// In a dry run: the current contents of the files each host's plan would change, read
    /// before disconnecting (the diffs of `plan`).
    pub current: BTreeMap<String, Result<BTreeMap<String, String>>>,
}

impl<'p> Rollout<'p> {
    pub fn new(
        p: &'p Prepared,
        lock: Option<(Holder, Option<Holder>)>,
        verify_timeout: u64,
    ) -> Self {
        let runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new).collect();
        let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
        Rollout {
            p,
            runs,
            progress,
            binds: BTreeMap::new(),
            verify_result: None,
            restarts: crate::engine::rolling::RollState::default(),
            lock,
            timestamp: chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            verify_timeout,
            current: BTreeMap::new(),
        }
    }
}

/// The current contents of the files the plans would change: one read per host.
async fn read_current(runs: &[HostRun]) -> Vec<(String, Result<BTreeMap<String, String>>)> {
    let reads = runs
        .iter()
        .filter(|r| r.alive() && !r.plan.is_empty() && r.conn.is_some())
        .map(|r| async move {
            let paths: Vec<&Path> = r.plan.file_writes().map(|f| f.path.as_path()).collect();
            let conn = r.conn.as_ref().expect("connected");
            (
                r.host.name.clone(),
                crate::engine::execute::read_files(conn, &paths).await,
            )
        });
    futures::future::join_all(reads).await
}

/// One playbook step as a phase of the rollout.
struct StepPhase<'s> {
    step: &'s consulctl_core::playbook::Step,
}

/// A playbook's steps as phases; a dry run (`plan`) runs only the steps that change nothing on
/// the hosts: connect, gather facts, validate (without locking hosts), disconnect.
pub fn phases<'s, 'p>(playbook: &'s Playbook, dry_run: bool) -> Manager<'s, Rollout<'p>>
where
    'p: 's,
{
    let mut m = Manager::new(dry_run);
    for step in &playbook.steps {
        m.add(StepPhase { step });
    }
    m
}

impl<'s, 'p> Phase<Rollout<'p>> for StepPhase<'s> {
    fn title(&self) -> String {
        self.step.title.clone()
    }

    fn mutates(&self) -> bool {
        !matches!(
            self.step.task,
            Task::Connect | Task::GatherFacts | Task::Validate | Task::Disconnect
        )
    }

    fn dry_run(&self, s: &Rollout<'p>) -> Vec<String> {
        s.runs
            .iter()
            .filter(|r| r.alive() && !r.plan.is_empty())
            .map(|r| format!("{}: {} actions", r.host.name, r.plan.actions.len()))
            .collect()
    }

    fn run<'a>(&'a mut self, s: &'a mut Rollout<'p>) -> BoxFuture<'a, Result<(), Error>> {
        let step = self.step;
        Box::pin(async move {
            let p = s.p;
            match step.task {
                Task::Connect => connect(&mut s.runs, p, &s.progress).await,
                Task::GatherFacts => gather_facts(&mut s.runs, p, &s.progress).await,
                Task::Validate => {
                    let selector = selector_for(&step.hosts, &p.cluster)?;
                    s.binds = validate_selected(&mut s.runs, p, &s.progress, selector.as_ref());
                    let mut chosen = take_selected(&mut s.runs, selector.as_ref());
                    refine(&mut chosen, p, &s.progress).await;
                    match &s.lock {
                        Some((holder, took_over)) => {
                            lock_hosts(&mut chosen, p, &s.progress, holder, took_over.as_ref())
                                .await
                        }
                        None => s.current.extend(read_current(&chosen).await),
                    }
                    put_back(&mut s.runs, chosen, &p.selected);
                }
                Task::Upload => {
                    let selector = selector_for(&step.hosts, &p.cluster)?;
                    let mut chosen = take_selected(&mut s.runs, selector.as_ref());
                    upload(&mut chosen, p, &s.progress).await;
                    put_back(&mut s.runs, chosen, &p.selected);
                }
                Task::Configure => {
                    let selector = selector_for(&step.hosts, &p.cluster)?;
                    let mut chosen = take_selected(&mut s.runs, selector.as_ref());
                    configure(&mut chosen, p, &s.progress, &s.timestamp).await;
                    put_back(&mut s.runs, chosen, &p.selected);
                }
                Task::Start => {
                    start(
                        &mut s.runs,
                        p,
                        &s.progress,
                        &step.hosts,
                        &s.binds,
                        &s.timestamp,
                        &mut s.restarts,
                    )
                    .await?
                }
                Task::Acl => acl(&mut s.runs, p, &s.progress, &s.binds).await,
                Task::Verify => {
                    let timeout = Duration::from_secs(s.verify_timeout);
                    let mut v = verify(&s.runs, p, &s.progress, &s.binds, timeout).await;
                    if !v.healthy && s.runs.iter().any(|r| r.conn.is_some()) {
                        // Say why, as `doctor` would: a wrong gossip key, a node-ID conflict ...
                        s.progress
                            .println("==> Verify failed: reading the hosts' agent logs and state");
                        let why = crate::engine::evidence::explain(
                            &p.cluster,
                            &s.runs,
                            &s.binds,
                            p.concurrency,
                        )
                        .await;
                        v.problems.extend(why);
                    }
                    s.verify_result = Some(v);
                }
                Task::Disconnect => {
                    let holder = s.lock.as_ref().map(|(h, _)| h);
                    disconnect(&mut s.runs, holder).await
                }
                Task::Command => command_step(&mut s.runs, p, &s.progress, step).await?,
            }
            Ok(())
        })
    }
}

/// Run a playbook's steps over the selected hosts under the run lock, then print the recap.
pub async fn run_playbook(
    playbook: &Playbook,
    p: &Prepared,
    command: &str,
    output: Output,
    verify_timeout: u64,
) -> Result<(), Error> {
    let started = Instant::now();
    let lock = RunLock::acquire(&p.cluster.state_dir(), command)?;
    let holder = lock.holder().clone();
    let mut state = Rollout::new(
        p,
        Some((holder.clone(), lock.took_over().cloned())),
        verify_timeout,
    );
    let manager = phases(playbook, false);
    let progress = state.progress.clone();
    let mut manager = manager.announce(move |line| progress.println(line));
    manager.run(&mut state).await?;
    let Rollout {
        mut runs,
        progress,
        verify_result,
        restarts,
        ..
    } = state;
    disconnect(&mut runs, Some(&holder)).await;
    drop(lock);
    for r in &runs {
        progress.finish(
            &r.host.name,
            if r.failed.is_some() { "failed" } else { "done" },
        );
    }
    progress.clear();
    let mut recap = Recap::new(
        results(&runs),
        verify_result,
        started.elapsed(),
        p.debug_log.display().to_string(),
    );
    recap.restarts = restarts.steps;
    tracing::info!(recap = %serde_json::to_string(&recap).unwrap_or_default(), "done");
    if !crate::engine::recap::captured(&recap) {
        crate::engine::output::print(output, &recap);
    }
    if recap.failed() {
        crate::engine::output::hosts_failed(
            recap.totals.failed,
            recap.totals.hosts,
            Some(&p.debug_log),
        )?;
        eprintln!("debug log: {}", p.debug_log.display());
        return Err(Error::Runtime(anyhow!(
            "the cluster did not become healthy within {}s: {}",
            verify_timeout,
            recap
                .verify
                .as_ref()
                .map(|v| v.problems.join("; "))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// A `command` step: the argv on each selected host, `serial` hosts at a time. Each argument
/// is passed through SSH escaping; no shell interprets it.
pub async fn command_step(
    runs: &mut [HostRun],
    p: &Prepared,
    progress: &Progress,
    step: &consulctl_core::playbook::Step,
) -> Result<(), Error> {
    let selector = selector_for(&step.hosts, &p.cluster)?;
    let argv = step.command.clone().unwrap_or_default();
    let title = step.title.clone();
    let mut chosen: Vec<&mut HostRun> = runs
        .iter_mut()
        .filter(|r| r.alive() && r.conn.is_some())
        .filter(|r| {
            selector
                .as_ref()
                .map(|s| s.matches(&r.host))
                .unwrap_or(true)
        })
        .collect();
    let batch = step
        .serial
        .map(|s| s.batch(chosen.len()))
        .unwrap_or(chosen.len().max(1));
    for group in chosen.chunks_mut(batch) {
        futures::stream::iter(group.iter_mut())
            .for_each_concurrent(p.concurrency, |r| {
                let (argv, title) = (&argv, &title);
                async move {
                    progress.set(&r.host.name, title);
                    let conn = r.conn.as_ref().expect("connected");
                    let res = conn.run_ok(title, "\"$@\"", argv, None).await;
                    match res {
                        Ok(_) => r.changed += 1,
                        Err(e) if step.ignore_errors => {
                            tracing::warn!(host = %r.host.name, error = %format!("{e:#}"), "command failed (ignored)")
                        }
                        Err(e) => r.fail(title, &e),
                    }
                    r.mark();
                }
            })
            .await;
    }
    Ok(())
}

/// Hide every secret in `text`: the values of secret-bearing keys whatever they are, every
/// secret consulctl holds, and `secrets` ([`consulctl_core::redact::redact`]).
pub fn redact(text: &str, secrets: &[String]) -> String {
    consulctl_core::redact::redact(text, secrets)
}

/// A unified diff of one file, `--- PATH` / `+++ PATH` headers, 3 lines of context.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    let diff = similar::TextDiff::from_lines(old, new);
    let old_header = if old.is_empty() {
        "/dev/null".to_string()
    } else {
        path.to_string()
    };
    let mut s = diff
        .unified_diff()
        .context_radius(3)
        .header(&old_header, path)
        .to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use consulctl_core::facts::Facts;

    #[test]
    fn diff_shows_only_the_changed_line() {
        let old = "a = 1\nlog_level = \"INFO\"\nb = 2\n";
        let new = "a = 1\nlog_level = \"DEBUG\"\nb = 2\n";
        let d = unified_diff("/etc/consul.d/consul.hcl", old, new);
        assert!(d.contains("--- /etc/consul.d/consul.hcl"), "{d}");
        assert!(d.contains("-log_level = \"INFO\""), "{d}");
        assert!(d.contains("+log_level = \"DEBUG\""), "{d}");
        assert_eq!(
            d.lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .count(),
            1
        );
    }

    #[test]
    fn new_file_diffs_against_dev_null() {
        let d = unified_diff("/etc/x", "", "x\n");
        assert!(d.starts_with("--- /dev/null\n+++ /etc/x\n"), "{d}");
    }

    #[test]
    fn a_leader_is_impossible_only_when_failed_stopped_servers_break_the_quorum() {
        let text = "[cluster]\ndatacenter = \"dc1\"\n[consul]\nversion = \"1.8.7\"\nsource = { package = \"auto\" }\n\
[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
[[hosts]]\nname = \"s2\"\naddress = \"10.0.0.2\"\nrole = \"server\"\n\
[[hosts]]\nname = \"s3\"\naddress = \"10.0.0.3\"\nrole = \"server\"\n\
[[hosts]]\nname = \"c1\"\naddress = \"10.0.0.4\"\nrole = \"client\"\n";
        let cluster = consulctl_core::inventory::parse(Path::new("inv.toml"), text).unwrap();
        let runs = |failed: &[(&str, &str)], running: &[&str]| -> Vec<HostRun> {
            cluster
                .hosts
                .iter()
                .map(|h| {
                    let mut r = HostRun::new(h.clone());
                    let mut f = Facts::default();
                    if running.contains(&h.name.as_str()) {
                        f.consul_pid = Some(42);
                    }
                    r.facts = Some(f);
                    r.failed = failed
                        .iter()
                        .find(|(n, _)| *n == h.name)
                        .map(|(_, phase)| (phase.to_string(), "x".to_string()));
                    r
                })
                .collect()
        };
        // One of three fresh servers failed validation: two still elect a leader.
        assert_eq!(
            leader_impossible(&cluster, &runs(&[("s3", "validate")], &[])),
            None
        );
        // Two of three: no leader can come, say so.
        let msg = leader_impossible(&cluster, &runs(&[("s2", "validate"), ("s3", "lock")], &[]))
            .expect("impossible");
        assert!(
            msg.contains("2 of the inventory's 3 servers") && msg.contains("s2, s3"),
            "{msg}"
        );
        // A failed server whose agent runs (an existing cluster) still votes; a server that
        // failed at its start may be up: neither counts as down; clients never count.
        assert_eq!(
            leader_impossible(
                &cluster,
                &runs(&[("s2", "validate"), ("s3", "lock")], &["s3"])
            ),
            None
        );
        assert_eq!(
            leader_impossible(&cluster, &runs(&[("s2", "validate"), ("s3", "start")], &[])),
            None
        );
        assert_eq!(
            leader_impossible(
                &cluster,
                &runs(&[("s2", "validate"), ("c1", "validate")], &[])
            ),
            None
        );
    }

    #[test]
    fn secrets_are_redacted_in_diffs() {
        let key = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=".to_string();
        let text = format!("encrypt = \"{key}\"\n");
        let r = redact(&text, std::slice::from_ref(&key));
        assert!(!r.contains(&key));
        assert!(r.contains("<redacted>"));
    }

    #[tokio::test]
    async fn a_new_server_is_waited_for_until_it_is_a_voter() {
        use consul_api::testing::FakeTransport;
        let raft = |voter: bool| {
            format!(
                r#"{{"Servers":[{{"ID":"a","Node":"s1","Address":"10.0.0.1:8300","Leader":true,"Voter":true}},{{"ID":"b","Node":"s2","Address":"10.0.0.2:8300","Leader":false,"Voter":{voter}}}]}}"#
            )
        };
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
            .on("GET", "/v1/operator/raft/configuration", 200, &raft(false))
            .on("GET", "/v1/operator/raft/configuration", 200, &raft(true))
            .on("GET", "/v1/agent/members", 200, "[]");
        let agent = crate::engine::verify::Agent::new("s2", consul_api::Client::new(fake.clone()));
        let s2: IpAddr = "10.0.0.2".parse().unwrap();
        wait_voter_with(&agent, s2, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(fake.batches(), [3, 3]);
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
            .on("GET", "/v1/operator/raft/configuration", 200, &raft(false))
            .on("GET", "/v1/agent/members", 200, "[]");
        let agent = crate::engine::verify::Agent::new("s2", consul_api::Client::new(fake));
        let e = wait_voter_with(&agent, s2, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(
            format!("{e}"),
            "did not become a voter within 0s: leader Some(\"10.0.0.1:8300\"), raft peers \
             [\"10.0.0.1:8300\", \"10.0.0.2:8300 (non-voter)\"]"
        );
        let fake = FakeTransport::new().fail_all("ssh s2: refused");
        let agent = crate::engine::verify::Agent::new("s2", consul_api::Client::new(fake));
        let e = wait_voter_with(&agent, s2, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(
            format!("{e}"),
            "did not become a voter within 0s: reading the leader: ssh s2: refused"
        );
    }
}
