//! The registrar's loop: Docker events and a periodic full resync in, agent changes out.
//!
//! Level-triggered rather than event-driven: every pass computes the services that *all*
//! known containers stand for and reconciles the agent against that, so a missed event, a
//! restarted agent or a restarted daemon is corrected by the next pass. Events only make it
//! prompt: a container an event names is re-read (inspect) and a pass follows.
//!
//! Full resync (list + inspect every container, then a pass): at start, whenever the event
//! stream (re)connects (events may have been missed while it was down), after the agent was
//! unreachable or lost this daemon's check (it restarted with an empty state), and every
//! `resync` period.
//!
//! Everything runs on one task, so a resync and an event can never race each other (a
//! container is read after the event that named it, never before).
//!
//! The daemon reports on itself in a TTL check of its node, `consulctl-registrar`: passing
//! with a summary, warning when some container has settings it could not use (named in the
//! note), critical when Docker cannot be reached; when the daemon or its agent connection is
//! down the TTL runs out and Consul marks it critical. `consulctl doctor` reads that check.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use consul_api::agent;
use consul_api::Client;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::config::Config;
use super::container::Container;
use super::conventions::{services_for, DesiredService, Problem};
use super::docker::Docker;
use super::reconcile::{reconcile, Action, Current, Draining, Options};
use crate::log;
use crate::selfcheck::{Reported, SelfCheck};

/// The node check that reports the registrar's own state.
pub const SELF_CHECK_ID: &str = "consulctl-registrar";
const SELF_CHECK_NAME: &str = "consulctl registrar (Docker containers -> Consul)";
const SELF_CHECK_TTL: &str = "30s";
/// How often the self check is refreshed (and the agent's health looked at).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Events that arrive this close together are handled in one pass.
const COALESCE: Duration = Duration::from_millis(100);

/// What the event task tells the loop.
#[derive(Debug)]
enum Signal {
    /// The stream is connected (again): what happened meanwhile is unknown.
    StreamUp,
    /// A container may have changed.
    Container(String, String),
    /// The stream broke; it reconnects by itself.
    StreamDown(String),
}

/// The registrar's state between passes.
pub struct Registrar {
    config: Config,
    consul: Client,
    docker: Option<Docker>,
    /// Known containers (on the configured networks), by ID.
    containers: BTreeMap<String, Container>,
    draining: Draining,
    /// Problems already logged, per container ID (logged again only when they change).
    logged: BTreeMap<String, Vec<Problem>>,
    docker_error: Option<String>,
    /// The agent did not answer the last call (a full resync follows when it does).
    agent_down: bool,
    clock: Instant,
    /// Last TTL refresh of mirrored HEALTHCHECK states.
    last_ttl_refresh: Option<Instant>,
    /// Counts of the last pass, for the self check.
    registered: usize,
}

/// The outcome of a dry pass: what would be registered and what would change.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    pub desired: Vec<DesiredService>,
    pub problems: Vec<Problem>,
    pub actions: Vec<Action>,
}

impl Registrar {
    pub fn new(config: Config, consul: Client) -> Self {
        Registrar {
            config,
            consul,
            docker: None,
            containers: BTreeMap::new(),
            draining: Draining::new(),
            logged: BTreeMap::new(),
            docker_error: None,
            agent_down: false,
            clock: Instant::now(),
            last_ttl_refresh: None,
            registered: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    async fn docker(&mut self) -> Result<Docker, String> {
        if let Some(d) = &self.docker {
            return Ok(d.clone());
        }
        let d = Docker::connect(&self.config.docker_socket).await?;
        log::info(&format!(
            "connected to {} at {}",
            d.describe, self.config.docker_socket
        ));
        self.docker = Some(d.clone());
        Ok(d)
    }

    fn on_configured_network(&self, c: &Container) -> bool {
        self.config.networks.is_empty()
            || self
                .config
                .networks
                .iter()
                .any(|n| c.networks.contains_key(n))
    }

    /// Re-read every container from Docker.
    async fn read_all(&mut self) -> Result<(), String> {
        let docker = self.docker().await?;
        let ids = docker.running(&self.config.networks).await?;
        let mut containers = BTreeMap::new();
        for id in ids {
            if let Some(c) = docker.inspect(&id).await? {
                if self.on_configured_network(&c) {
                    containers.insert(c.id.clone(), c);
                }
            }
        }
        self.containers = containers;
        Ok(())
    }

    /// Re-read some containers.
    async fn read_some(&mut self, ids: &BTreeSet<String>) -> Result<(), String> {
        let docker = self.docker().await?;
        for id in ids {
            // Events may carry a name or short ID; the cache is keyed by full ID.
            let known = self
                .containers
                .keys()
                .find(|k| k.starts_with(id.as_str()))
                .cloned();
            match docker.inspect(id).await? {
                Some(c) if self.on_configured_network(&c) => {
                    self.containers.insert(c.id.clone(), c);
                }
                Some(c) => {
                    self.containers.remove(&c.id);
                }
                None => {
                    if let Some(k) = known {
                        self.containers.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }

    /// The services every known container stands for, sorted by ID; the problems found.
    fn desired(&self) -> (Vec<DesiredService>, Vec<(String, Vec<Problem>)>) {
        let mut desired = Vec::new();
        let mut problems = Vec::new();
        for (id, c) in &self.containers {
            let (services, found) = services_for(c, &self.config.settings);
            desired.extend(services);
            problems.push((id.clone(), found));
        }
        desired.sort_by(|a, b| a.registration.id.cmp(&b.registration.id));
        (desired, problems)
    }

    fn log_problems(&mut self, problems: Vec<(String, Vec<Problem>)>) {
        let ids: BTreeSet<&String> = problems.iter().map(|(id, _)| id).collect();
        self.logged.retain(|id, _| ids.contains(id));
        for (id, found) in problems {
            if self.logged.get(&id) != Some(&found) {
                for p in &found {
                    log::warn(&p.to_string());
                }
            }
            self.logged.insert(id, found);
        }
    }

    async fn current(&self) -> Result<Current, consul_api::Error> {
        let (services, checks) = self.consul.call2(agent::services(), agent::checks()).await;
        Ok(Current {
            services: services?,
            checks: checks?,
        })
    }

    /// Compute and (unless `dry`) apply the actions of one pass.
    async fn pass(&mut self, dry: bool) -> Result<DryRun, String> {
        let (desired, problems) = self.desired();
        let flat: Vec<Problem> = problems.iter().flat_map(|(_, p)| p.clone()).collect();
        if !dry {
            self.log_problems(problems);
        }
        let current = match self.current().await {
            Ok(c) => {
                if self.agent_down && !dry {
                    log::info("the Consul agent answers again");
                }
                self.agent_down = false;
                c
            }
            Err(e) => {
                if !self.agent_down && !dry {
                    log::error(&format!("cannot read the agent's services: {e}"));
                }
                self.agent_down = true;
                return Err(format!("Consul agent: {e}"));
            }
        };
        let refresh_ttl = self
            .last_ttl_refresh
            .map_or(true, |t| t.elapsed() >= self.config.resync);
        let options = Options {
            node: self.config.settings.node.clone(),
            drain: self.config.drain,
            now_ms: self.now_ms(),
            refresh_ttl,
        };
        let mut draining = self.draining.clone();
        let actions = reconcile(&desired, &current, &mut draining, &options);
        if dry {
            return Ok(DryRun {
                desired,
                problems: flat,
                actions,
            });
        }
        self.draining = draining;
        if refresh_ttl {
            self.last_ttl_refresh = Some(Instant::now());
        }
        for action in &actions {
            self.apply(action).await;
        }
        self.registered = desired.len();
        Ok(DryRun {
            desired,
            problems: flat,
            actions,
        })
    }

    async fn apply(&mut self, action: &Action) {
        let (what, result) = match action {
            Action::Register(r) => (
                format!(
                    "registered {} ({}) at {}:{} for container {}",
                    r.name,
                    r.id,
                    r.address,
                    r.port.unwrap_or(0),
                    r.meta.get("container").map(String::as_str).unwrap_or("?")
                ),
                self.consul.call(agent::service_register(r, true)).await,
            ),
            Action::Deregister { id, reason } => (
                format!("deregistered {id}: {reason}"),
                self.consul.call(agent::service_deregister(id)).await,
            ),
            Action::Maintenance { id, enable, reason } => (
                format!(
                    "maintenance {} for {id}: {reason}",
                    if *enable { "on" } else { "off" }
                ),
                self.consul
                    .call(agent::service_maintenance(id, *enable, Some(reason)))
                    .await,
            ),
            Action::Ttl {
                check_id,
                status,
                note,
            } => {
                let call = match status.as_str() {
                    "passing" => agent::check_pass(check_id, Some(note)),
                    "warning" => agent::check_warn(check_id, Some(note)),
                    _ => agent::check_fail(check_id, Some(note)),
                };
                // Not worth a line per refresh unless it fails.
                (String::new(), self.consul.call(call).await)
            }
        };
        match result {
            Ok(()) if what.is_empty() => {}
            Ok(()) => log::info(&what),
            Err(e) => log::error(&format!("{action:?} failed: {e}")),
        }
    }

    /// Re-read everything, then a pass.
    async fn resync(&mut self, why: &str) {
        if why != "period" {
            log::info(&format!("full resync: {why}"));
        }
        match self.read_all().await {
            Ok(()) => {
                if self.docker_error.take().is_some() {
                    log::info("Docker answers again");
                }
            }
            Err(e) => {
                // Without Docker nothing is known: leave the agent as it is (no deregistration
                // of everything because the socket is gone) and say so.
                self.docker = None;
                if self.docker_error.as_deref() != Some(e.as_str()) {
                    log::error(&format!("{e} (registrations left as they are)"));
                }
                self.docker_error = Some(e);
                self.report().await;
                return;
            }
        }
        // An unreachable agent was logged by the pass; the next heartbeat resyncs when it is back.
        let _ = self.pass(false).await;
        self.report().await;
    }

    /// The self check's status and note.
    fn self_status(&self) -> (&'static str, String) {
        if let Some(e) = &self.docker_error {
            return ("critical", format!("cannot reach Docker: {e}"));
        }
        let docker = self
            .docker
            .as_ref()
            .map(|d| d.describe.clone())
            .unwrap_or_else(|| "Docker".into());
        let summary = format!(
            "{docker} at {}: {} containers, {} services registered",
            self.config.docker_socket,
            self.containers.len(),
            self.registered
        );
        let problems: Vec<String> = self
            .logged
            .values()
            .flatten()
            .map(|p| p.to_string())
            .collect();
        if problems.is_empty() {
            ("passing", summary)
        } else {
            (
                "warning",
                format!(
                    "{summary}; {} settings could not be used: {}",
                    problems.len(),
                    problems.join("; ")
                ),
            )
        }
    }

    /// Update the self check; register it when the agent does not know it. Returns whether
    /// the agent had lost it (it restarted with an empty state: resync).
    async fn report(&mut self) -> bool {
        let (status, note) = self.self_status();
        let check = SelfCheck {
            id: SELF_CHECK_ID,
            name: SELF_CHECK_NAME.into(),
            notes: "Updated by consulctl-host registrar; critical when it stops, cannot reach \
                    Docker, or cannot reach this agent"
                .into(),
            ttl: SELF_CHECK_TTL,
        };
        match check.report(&self.consul, status, &note).await {
            Reported::Updated => {
                let was_down = std::mem::take(&mut self.agent_down);
                if was_down {
                    log::info("the Consul agent answers again");
                }
                was_down
            }
            Reported::Registered => {
                self.agent_down = false;
                true
            }
            Reported::Failed(e) => {
                if !self.agent_down {
                    log::error(&e);
                }
                self.agent_down = true;
                false
            }
        }
    }

    /// Containers as if just read from Docker (tests of the loop without a Docker daemon).
    #[doc(hidden)]
    pub fn set_containers(&mut self, containers: Vec<Container>) {
        self.containers = containers.into_iter().map(|c| (c.id.clone(), c)).collect();
    }

    /// One pass against the agent with the known containers (no Docker read): the actions
    /// taken, or why the agent could not be read.
    #[doc(hidden)]
    pub async fn pass_now(&mut self) -> Result<Vec<Action>, String> {
        self.pass(false).await.map(|d| d.actions)
    }

    /// One full read and pass without changing anything: what would be registered.
    pub async fn dry_run(&mut self) -> Result<DryRun, String> {
        self.read_all().await?;
        match self.pass(true).await {
            Ok(d) => Ok(d),
            Err(_) => {
                // Without an agent, still show what would be registered.
                let (desired, problems) = self.desired();
                Ok(DryRun {
                    desired,
                    problems: problems.into_iter().flat_map(|(_, p)| p).collect(),
                    actions: Vec::new(),
                })
            }
        }
    }

    /// Run until SIGTERM/SIGINT.
    pub async fn run(mut self) -> anyhow::Result<()> {
        log::info(&format!(
            "consulctl registrar {} starting: node {}, {:?}, networks {:?}, resync every {:?}, drain {:?}",
            env!("CARGO_PKG_VERSION"),
            self.config.settings.node,
            self.config.settings.mode,
            self.config.networks,
            self.config.resync,
            self.config.drain
        ));
        let (tx, mut rx) = mpsc::channel::<Signal>(4096);
        let socket = self.config.docker_socket.clone();
        tokio::spawn(events_task(socket, tx));
        let mut resync = tokio::time::interval(self.config.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        self.resync("start").await;
        loop {
            tokio::select! {
                signal = rx.recv() => {
                    let Some(signal) = signal else { break };
                    let mut dirty = BTreeSet::new();
                    let mut full = false;
                    let handle = |s: Signal, dirty: &mut BTreeSet<String>, full: &mut bool| match s {
                        Signal::StreamUp => *full = true,
                        Signal::Container(id, _action) => { dirty.insert(id); }
                        Signal::StreamDown(e) => log::warn(&format!("{e}; reconnecting (a full resync follows)")),
                    };
                    handle(signal, &mut dirty, &mut full);
                    // Coalesce a burst into one pass.
                    let deadline = tokio::time::Instant::now() + COALESCE;
                    while let Ok(Some(s)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                        handle(s, &mut dirty, &mut full);
                    }
                    if full {
                        self.resync("event stream connected").await;
                    } else if !dirty.is_empty() {
                        match self.read_some(&dirty).await {
                            Ok(()) => { let _ = self.pass(false).await; }
                            Err(e) => { log::error(&e); self.docker = None; }
                        }
                    }
                }
                _ = resync.tick() => self.resync("period").await,
                _ = heartbeat.tick() => {
                    if self.report().await {
                        log::info("the agent lost or never had this daemon's check: full resync");
                        self.resync("agent restarted").await;
                    } else if !self.draining.is_empty() {
                        let _ = self.pass(false).await;
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        // Containers keep running while the daemon is away: leave their registrations, say
        // that the daemon stopped. The next start resyncs.
        let _ = self
            .consul
            .call(agent::check_fail(
                SELF_CHECK_ID,
                Some("stopped; registrations left in place until it runs again"),
            ))
            .await;
        log::info("stopped; registrations left in place");
        Ok(())
    }
}

/// Read Docker's event stream forever, reconnecting with a backoff (1 s doubling to 30 s).
async fn events_task(socket: String, tx: mpsc::Sender<Signal>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let result = async {
            let docker = Docker::connect(&socket).await?;
            // The stream starts a second before the resync it triggers: Docker replays what
            // happened since then, so no event can fall between the two.
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64 - 1)
                .unwrap_or(0);
            let mut stream = docker.events(since)?;
            if tx.send(Signal::StreamUp).await.is_err() {
                return Ok(());
            }
            while let Some(item) = stream.next().await {
                let event = item?;
                backoff = Duration::from_secs(1);
                if tx
                    .send(Signal::Container(event.id, event.action))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Err::<(), String>("the event stream ended".into())
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                if tx.send(Signal::StreamDown(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
