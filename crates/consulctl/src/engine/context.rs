//! The command context: what every command that works on hosts shares. Settings from the
//! command line become a [`Prepared`] (inventory loaded and validated, hosts selected,
//! templates and install source ready) before any host is touched; then each selected host
//! becomes a [`HostRun`] that is connected, has its facts gathered and its bind address
//! resolved, and is reported on and disconnected at the end. A host that fails a step is
//! skipped by the later ones; the others go on.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use futures::StreamExt;

use crate::cli::Settings;
use crate::engine::lock::Holder;
use crate::engine::progress::Progress;
use crate::engine::recap::{HostResult, HostStatus};
use crate::engine::source::{self, PreparedBinary};
use crate::remote::ssh::Connection;
use consulctl_core::desired::DesiredFile;
use consulctl_core::error::Error;
use consulctl_core::facts::Facts;
use consulctl_core::model::{BindAddr, Cluster, Host, InstallSource};
use consulctl_core::plan::HostPlan;
use consulctl_core::selector::Selector;
use consulctl_core::templates::Templates;

/// One host's state as it goes through the phases.
pub struct HostRun {
    pub host: Host,
    pub conn: Option<Connection>,
    pub facts: Option<Facts>,
    pub desired: Vec<DesiredFile>,
    pub plan: HostPlan,
    /// (phase, error) of the first failure.
    pub failed: Option<(String, String)>,
    pub changed: usize,
    pub round_trips: u32,
    pub started: Instant,
    /// When this host last finished a piece of work (its duration in the recap).
    pub done_at: Option<Instant>,
    /// This run holds the host's lock.
    pub locked: bool,
    /// Files the configure phase wrote (the last good ones are in this run's backup dir).
    pub written: Vec<String>,
    /// This run started the host's agent (it was not running before).
    pub agent_started: bool,
}

impl HostRun {
    pub fn new_pub(host: Host) -> HostRun {
        Self::new(host)
    }

    pub fn new(host: Host) -> HostRun {
        HostRun {
            host,
            conn: None,
            facts: None,
            desired: Vec::new(),
            plan: HostPlan::default(),
            failed: None,
            changed: 0,
            round_trips: 0,
            started: Instant::now(),
            done_at: None,
            locked: false,
            written: Vec::new(),
            agent_started: false,
        }
    }

    pub fn alive(&self) -> bool {
        self.failed.is_none()
    }

    /// The base URL of this host's agent API (loopback when its bind address is unknown).
    pub fn api_url(&self, binds: &BTreeMap<String, IpAddr>) -> String {
        crate::engine::verify::agent_url(&self.host, binds.get(&self.host.name).copied())
    }

    pub fn mark(&mut self) {
        self.done_at = Some(Instant::now());
    }

    pub fn fail(&mut self, phase: &str, err: &anyhow::Error) {
        if self.failed.is_none() {
            tracing::debug!(host = %self.host.name, phase, error = %format!("{err:#}"), "host failed");
            let err = consulctl_core::redact::redact(&format!("{err:#}"), &[]);
            self.failed = Some((phase.to_string(), err));
        }
    }
}

/// Commands that leave no file beside the inventory but their debug log: they read, or change
/// only Consul's state (registrations, maintenance, members), never generate secrets.
pub const READ_ONLY_COMMANDS: &[&str] = &[
    "plan",
    "status",
    "doctor",
    "services",
    "unlock",
    "catalog",
    "service",
    "maint",
    "reload",
    "force-leave",
];

/// Everything prepared before any host is touched.
pub struct Prepared {
    pub cluster: Arc<Cluster>,
    pub selected: Vec<Host>,
    pub templates: Templates,
    pub binary: Option<PreparedBinary>,
    /// `consulctl-host` for the hosts with a registrar (`[registrar] binary`), prepared like a
    /// consul file source (cached with its compressed forms); None when no host has one.
    pub host_binary: Option<PreparedBinary>,
    pub debug_log: PathBuf,
    pub accept_new: bool,
    pub allow_downgrade: bool,
    pub concurrency: usize,
}

/// Parse and validate everything local: inventory, selector, templates, install source.
/// Any problem here is bad input (exit 2) and no host has been contacted.
pub async fn prepare(
    settings: impl Into<Settings>,
    command: &str,
    debug_log: Option<&Path>,
) -> Result<Prepared, Error> {
    let args: Settings = settings.into();
    let cluster = consulctl_core::inventory::load(&args.inventory)?;
    // Loading writes nothing; commands that change hosts keep the secrets it generated (gossip
    // key, ACL tokens, TLS material) beside the inventory before any host is touched.
    if !READ_ONLY_COMMANDS.contains(&command) {
        consulctl_core::inventory::persist_secrets(&cluster)?;
    }
    let selected: Vec<Host> = match &args.limit {
        Some(limit) => {
            let sel = Selector::parse(limit, &cluster)
                .map_err(|e| Error::Input(anyhow!("--limit {limit}: {e}")))?;
            cluster
                .hosts
                .iter()
                .filter(|h| sel.matches(h))
                .cloned()
                .collect()
        }
        None => cluster.hosts.clone(),
    };
    let templates = Templates::load(args.templates.as_deref()).map_err(Error::Input)?;
    let log_path = debug_log
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::engine::log::default_path(&cluster.state_dir(), command));
    let debug_log = crate::engine::log::open(&log_path).map_err(Error::Runtime)?;
    tracing::info!(inventory = %args.inventory.display(), hosts = selected.len(), command, "start");
    for w in &cluster.warnings {
        eprintln!("warning: {w}");
    }
    let binary = source::prepare(&cluster).await.map_err(|e| {
        Error::Input(e.context(format!(
            "{}: consul.source",
            cluster.inventory_path.display()
        )))
    })?;
    let host_binary = match &cluster.registrar_binary {
        None => None,
        Some(path) => {
            let cache = source::cache_dir().map_err(Error::Input)?;
            source::prepare_in(&InstallSource::File { path: path.clone() }, &cache)
                .await
                .map_err(|e| {
                    Error::Input(e.context(format!(
                        "{}: the consulctl-host binary (registrar.binary / lb.binary: {})",
                        cluster.inventory_path.display(),
                        path.display()
                    )))
                })?
        }
    };
    Ok(Prepared {
        cluster: Arc::new(cluster),
        selected,
        templates,
        binary,
        host_binary,
        debug_log,
        accept_new: args.accept_new_host_keys,
        allow_downgrade: args.allow_downgrade,
        concurrency: args.concurrency,
    })
}

/// Run `f` on every selected, still-healthy host, `limit` at a time.
pub async fn each_host<'a, F, Fut>(
    runs: &'a mut [HostRun],
    limit: usize,
    progress: &Progress,
    phase: &str,
    f: F,
) where
    F: Fn(&'a mut HostRun) -> Fut,
    Fut: std::future::Future<Output = ()> + 'a,
{
    let started = Instant::now();
    for r in runs.iter().filter(|r| r.alive()) {
        progress.set(&r.host.name, phase);
    }
    futures::stream::iter(runs.iter_mut().filter(|r| r.alive()))
        .for_each_concurrent(limit, f)
        .await;
    tracing::info!(
        phase,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "phase done"
    );
}

pub async fn connect(runs: &mut [HostRun], p: &Prepared, progress: &Progress) {
    let accept_new = p.accept_new;
    let cluster = p.cluster.clone();
    each_host(runs, p.concurrency, progress, "connect", |r| {
        let cluster = cluster.clone();
        async move {
            match Connection::connect(&r.host, accept_new).await {
                Ok(c) => {
                    c.set_consul_env(crate::engine::verify::consul_env(&cluster, &r.host));
                    r.conn = Some(c)
                }
                Err(e) => r.fail("connect", &e),
            }
            r.mark();
        }
    })
    .await;
}

/// Connect to the selected hosts and gather their facts, announcing both phases; the progress
/// bars are cleared afterwards (for commands that then print their own steps).
pub async fn connect_and_gather(p: &Prepared) -> (Vec<HostRun>, Progress) {
    let mut runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new).collect();
    let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
    progress.println("==> connect");
    connect(&mut runs, p, &progress).await;
    progress.println("==> gather facts");
    gather_facts(&mut runs, p, &progress).await;
    for r in &runs {
        progress.finish(&r.host.name, "");
    }
    progress.clear();
    (runs, progress)
}

pub async fn gather_facts(runs: &mut [HostRun], p: &Prepared, progress: &Progress) {
    each_host(
        runs,
        p.concurrency,
        progress,
        "gather facts",
        |r| async move {
            let conn = r.conn.as_ref().expect("connected");
            let args = consulctl_core::facts::script_args(&r.host);
            let res = conn
                .run_ok("gather facts", crate::remote::FACTS, &args, None)
                .await
                .and_then(|out| Facts::parse(&out.stdout));
            match res {
                Ok(f) => r.facts = Some(f),
                Err(e) => r.fail("gather facts", &e),
            }
            r.mark();
        },
    )
    .await;
}

/// The bind address of every host that can be known: fixed ones, CIDR ones from facts, and CIDR
/// ones whose SSH address is an IP inside the CIDR.
pub fn bind_addrs(cluster: &Cluster, runs: &[HostRun]) -> BTreeMap<String, IpAddr> {
    let mut map = BTreeMap::new();
    for host in &cluster.hosts {
        let ip = match &host.bind {
            BindAddr::Fixed(ip) => Some(*ip),
            BindAddr::Cidr(net) => runs
                .iter()
                .find(|r| r.host.name == host.name)
                .and_then(|r| r.facts.as_ref())
                .and_then(|f| f.bind_addr_in(net).ok())
                .or_else(|| {
                    host.address
                        .parse::<IpAddr>()
                        .ok()
                        .filter(|ip| net.contains(ip))
                }),
        };
        if let Some(ip) = ip {
            map.insert(host.name.clone(), ip);
        }
    }
    map
}

/// Release the host locks this run holds, then close every connection.
pub async fn disconnect(runs: &mut [HostRun], holder: Option<&Holder>) {
    if let Some(holder) = holder {
        let unlocks = runs.iter_mut().filter(|r| r.locked).map(|r| async move {
            if let Some(conn) = r.conn.as_ref() {
                match crate::engine::lock::unlock_host(conn, holder).await {
                    Ok(()) => r.locked = false,
                    Err(e) => tracing::warn!(host = %r.host.name, error = %format!("{e:#}"), "releasing the host lock"),
                }
            }
        });
        futures::future::join_all(unlocks).await;
    }
    let conns: Vec<Connection> = runs
        .iter_mut()
        .filter_map(|r| {
            let c = r.conn.take()?;
            r.round_trips = c.round_trips();
            Some(c)
        })
        .collect();
    futures::future::join_all(conns.into_iter().map(|c| c.close())).await;
}

/// Per-host results for the recap (hosts with changed actions are `changed`).
pub fn results(runs: &[HostRun]) -> Vec<HostResult> {
    runs.iter()
        .map(|r| HostResult {
            name: r.host.name.clone(),
            status: if r.failed.is_some() {
                HostStatus::Failed
            } else if r.changed > 0 {
                HostStatus::Changed
            } else {
                HostStatus::Ok
            },
            changed: r.changed,
            error: r.failed.as_ref().map(|(_, e)| e.clone()),
            phase: r.failed.as_ref().map(|(p, _)| p.clone()),
            duration_ms: r
                .done_at
                .map(|t| t.duration_since(r.started).as_millis() as u64)
                .unwrap_or(0),
            round_trips: r
                .round_trips
                .max(r.conn.as_ref().map(|c| c.round_trips()).unwrap_or(0)),
            pending_restart: r.plan.pending_restart.clone(),
        })
        .collect()
}
