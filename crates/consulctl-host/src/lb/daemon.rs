//! The sync loop: one blocking query on the whole catalog, bursts coalesced, one render and
//! one sync per settled change, a self check and a KV record of what is served.
//!
//! - Watching: [`consul_api::catalog::node_dump`] (`/v1/internal/ui/nodes`) through the local
//!   agent with Consul's blocking-query rules ([`Watch`]: index, wait, reset when the index
//!   goes backwards, calls at least 250 ms apart, backoff after errors). One connection to the
//!   agent, whatever the number of services.
//! - Coalescing: a change is rendered `min_wait` after the last change of a burst, and never
//!   later than `max_wait` after its first.
//! - Keeping the last known data: an error, a leaderless cluster or an answer that cannot be
//!   the catalog (empty, or without this node) changes nothing on disk; the check says so.
//! - Reporting: the check `consulctl-lb` (passing / warning / critical with the failed step's
//!   message) and the KV key `consulctl/lb/<node>` (what is served, the last error).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use consul_api::catalog::{self, NodeDump};
use consul_api::{kv, Client, QueryOptions, Watch};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::Config;
use super::render::{render_with, templates, Rendered, Route};
use super::sync::{Outcome, Syncer, System};
use super::view::{build, trustworthy};
use crate::log;
use crate::selfcheck::{Reported, SelfCheck};

/// The check that reports the daemon's own state.
pub const SELF_CHECK_ID: &str = "consulctl-lb";
/// Where the daemon records what it serves.
pub const KV_PREFIX: &str = "consulctl/lb/";
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A failed sync is tried again this often even when the catalog does not change (the
/// cause may be outside: nginx stopped, a port in use).
const RETRY: Duration = Duration::from_secs(30);
/// Blocking queries at least this far apart.
const MIN_INTERVAL: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(300);

/// What is served (published as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Serving {
    pub generation: String,
    pub since: String,
    pub services: BTreeMap<String, Vec<Route>>,
}

/// The KV record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub node: String,
    pub kind: String,
    pub updated: String,
    pub serving: Option<Serving>,
    pub error: Option<String>,
    pub problems: Vec<String>,
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    log::timestamp(secs)
}

/// What a watch task sends.
enum Update {
    Data(Vec<NodeDump>, Option<bool>),
    Error(String),
}

pub struct Daemon {
    config: Config,
    consul: Client,
    syncer: Arc<Syncer>,
    /// The last answer that could be trusted.
    data: Option<Arc<Vec<NodeDump>>>,
    /// Why the latest answer was not used (Consul unreachable, leaderless, ...).
    consul_problem: Option<String>,
    serving: Option<Serving>,
    /// The last attempt's failure.
    error: Option<String>,
    problems: Vec<String>,
    /// The generation of the last attempt, to log changes once.
    last_generation: Option<String>,
    /// The generation that failed last and when: not tried again before `RETRY` unless
    /// something changes it (its own check's updates change the catalog too).
    failed: Option<(String, Instant)>,
    published: Option<Record>,
    check: SelfCheck,
    /// The user templates, parsed once (the configuration was checked with them).
    templates: tera::Tera,
}

impl Daemon {
    pub fn new(config: Config, consul: Client, system: Box<dyn System>) -> Self {
        let check = SelfCheck {
            id: SELF_CHECK_ID,
            name: format!("consulctl LB sync ({})", config.kind.as_str()),
            notes: "Updated by consulctl-host lb: critical when a rendered configuration fails \
                    validation or its reload (the last good one keeps serving), or when the \
                    daemon stops"
                .into(),
            ttl: "30s",
        };
        Daemon {
            templates: templates(&config).unwrap_or_default(),
            syncer: Arc::new(Syncer::new(config.clone(), system)),
            config,
            consul,
            data: None,
            consul_problem: None,
            serving: None,
            error: None,
            problems: vec![],
            last_generation: None,
            failed: None,
            published: None,
            check,
        }
    }

    /// Take an answer: keep it when it can be trusted; says whether it was taken.
    fn take(&mut self, dump: Vec<NodeDump>, known_leader: Option<bool>) -> bool {
        if known_leader == Some(false) {
            self.consul_problem =
                Some("the cluster has no leader: keeping the last known instances".into());
            return false;
        }
        match trustworthy(&dump, &self.config.node) {
            Ok(()) => {
                if self.consul_problem.take().is_some() {
                    log::info("the catalog answers again");
                }
                self.data = Some(Arc::new(dump));
                true
            }
            Err(e) => {
                if self.consul_problem.as_deref() != Some(&e) {
                    log::warn(&e);
                }
                self.consul_problem = Some(e);
                false
            }
        }
    }

    /// Render the current data.
    pub fn render_current(&self) -> Option<Result<Rendered, String>> {
        let data = self.data.as_ref()?;
        let view = build(data, &self.config);
        Some(render_with(&view, &self.config, &self.templates))
    }

    /// Read the catalog once (no blocking).
    pub async fn read_once(&mut self) -> Result<(), String> {
        let (dump, meta) = self
            .consul
            .call_with_meta(catalog::node_dump())
            .await
            .map_err(|e| format!("cannot read the catalog: {e}"))?;
        if self.take(dump, meta.known_leader) {
            Ok(())
        } else {
            Err(self.consul_problem.clone().unwrap_or_default())
        }
    }

    /// Render and sync what the data says now; a render equal to the one that failed last
    /// is tried again only after `RETRY` (or when `force`).
    pub async fn sync_now(&mut self) -> Option<Outcome> {
        self.sync(true).await
    }

    async fn sync(&mut self, force: bool) -> Option<Outcome> {
        let rendered = match self.render_current()? {
            Ok(r) => r,
            Err(e) => {
                if self.error.as_deref() != Some(&e) {
                    log::error(&format!("render: {e}; the last good files stay"));
                }
                self.error = Some(format!("render: {e}"));
                return Some(Outcome::Failed {
                    step: "render".into(),
                    message: e,
                });
            }
        };
        for p in &rendered.problems {
            if !self.problems.contains(p) {
                log::warn(p);
            }
        }
        self.problems = rendered.problems.clone();
        if let Some((g, at)) = &self.failed {
            if !force && *g == rendered.generation && at.elapsed() < RETRY {
                return None;
            }
        }
        let syncer = self.syncer.clone();
        let r = rendered.clone();
        let outcome = tokio::task::spawn_blocking(move || syncer.sync(&r))
            .await
            .unwrap_or_else(|e| Outcome::Failed {
                step: "sync".into(),
                message: format!("the sync task failed: {e}"),
            });
        match &outcome {
            Outcome::Unchanged | Outcome::Applied { .. } => {
                if let Outcome::Applied { changed } = &outcome {
                    let files: Vec<String> =
                        changed.iter().map(|p| p.display().to_string()).collect();
                    log::info(&format!(
                        "generation {} served ({}): {} services",
                        rendered.generation,
                        if files.is_empty() {
                            "reloaded".to_string()
                        } else {
                            files.join(", ")
                        },
                        rendered.routes.len()
                    ));
                } else if self.last_generation.as_deref() != Some(&rendered.generation) {
                    log::info(&format!(
                        "generation {} already served",
                        rendered.generation
                    ));
                }
                if self.error.take().is_some() {
                    log::info("recovered: the last attempt's failure is gone");
                }
                self.failed = None;
                let since = match &self.serving {
                    Some(s) if s.generation == rendered.generation => s.since.clone(),
                    _ => now(),
                };
                self.serving = Some(Serving {
                    generation: rendered.generation.clone(),
                    since,
                    services: rendered.routes.clone(),
                });
            }
            Outcome::Failed { step, message } => {
                let e = format!("{step}: {message}");
                if self.error.as_deref() != Some(&e) {
                    log::error(&format!("{e}; the last good files stay in place"));
                }
                self.error = Some(e);
                self.failed = Some((rendered.generation.clone(), Instant::now()));
            }
        }
        self.last_generation = Some(rendered.generation.clone());
        Some(outcome)
    }

    /// The check's status and note.
    fn status(&self) -> (&'static str, String) {
        let kind = self.config.kind.as_str();
        if let Some(e) = &self.error {
            return (
                "critical",
                format!("{e} (the last good configuration keeps serving)"),
            );
        }
        let serving = match &self.serving {
            Some(s) => format!(
                "{kind} serves generation {}: {} services, {} instances",
                s.generation,
                s.services.len(),
                s.services
                    .values()
                    .flatten()
                    .map(|r| r.instances.len())
                    .sum::<usize>()
            ),
            None => format!("{kind}: nothing rendered yet"),
        };
        let mut notes = Vec::new();
        if let Some(p) = &self.consul_problem {
            notes.push(p.clone());
        }
        notes.extend(self.problems.iter().cloned());
        if notes.is_empty() && self.serving.is_some() {
            ("passing", serving)
        } else {
            ("warning", format!("{serving}; {}", notes.join("; ")))
        }
    }

    fn record(&self) -> Record {
        Record {
            node: self.config.node.clone(),
            kind: self.config.kind.as_str().into(),
            updated: String::new(),
            serving: self.serving.clone(),
            error: self.error.clone(),
            problems: self.problems.clone(),
        }
    }

    /// Update the KV record when it changed, and the check. Returns whether the agent had
    /// lost the check.
    async fn report(&mut self) -> bool {
        // The record first: when the check says passing, what it serves can be read.
        if self.config.publish {
            let record = self.record();
            if self.published.as_ref() != Some(&record) {
                let mut stamped = record.clone();
                stamped.updated = now();
                let body = serde_json::to_vec_pretty(&stamped).unwrap_or_default();
                let key = format!("{KV_PREFIX}{}", self.config.node);
                match self.consul.call(kv::put(&key, body)).await {
                    Ok(_) => self.published = Some(record),
                    Err(e) => log::warn(&format!("cannot write {key}: {e} (tried again later)")),
                }
            }
        }
        let (status, note) = self.status();
        match self.check.report(&self.consul, status, &note).await {
            Reported::Updated => false,
            Reported::Registered => true,
            Reported::Failed(e) => {
                log::warn(&e);
                false
            }
        }
    }

    /// Run until SIGTERM or SIGINT.
    pub async fn run(mut self) -> anyhow::Result<()> {
        log::info(&format!(
            "consulctl-host lb {} on node {}: {} for services tagged {}, min_wait {:?}, max_wait {:?}",
            env!("CARGO_PKG_VERSION"),
            self.config.node,
            self.config.kind.as_str(),
            self.config.tag,
            self.config.min_wait,
            self.config.max_wait
        ));
        let (tx, mut rx) = mpsc::channel::<Update>(16);
        tokio::spawn(watch_task(self.consul.clone(), tx));
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // A burst: when it started and when its last change came.
        let mut burst: Option<(Instant, Instant)> = None;
        let mut last_attempt = Instant::now();
        loop {
            let deadline = burst.map(|(first, last)| {
                (last + self.config.min_wait).min(first + self.config.max_wait)
            });
            tokio::select! {
                update = rx.recv() => {
                    let Some(update) = update else { break };
                    match update {
                        Update::Data(dump, leader) => {
                            if self.take(dump, leader) {
                                let now = Instant::now();
                                burst = Some(match burst {
                                    Some((first, _)) => (first, now),
                                    None => (now, now),
                                });
                            }
                        }
                        Update::Error(e) => {
                            let e = format!("cannot read the catalog: {e}; keeping the last known instances");
                            if self.consul_problem.as_deref() != Some(&e) {
                                log::warn(&e);
                            }
                            self.consul_problem = Some(e);
                        }
                    }
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                    burst = None;
                    last_attempt = Instant::now();
                    self.sync(false).await;
                    self.report().await;
                }
                _ = heartbeat.tick() => {
                    if self.error.is_some() && last_attempt.elapsed() >= RETRY && burst.is_none() {
                        last_attempt = Instant::now();
                        self.sync_now().await;
                    }
                    if self.report().await {
                        log::info("registered this daemon's check with the agent");
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        let _ = self
            .consul
            .call(consul_api::agent::check_fail(
                SELF_CHECK_ID,
                Some("stopped; the load balancer keeps its last configuration"),
            ))
            .await;
        log::info("stopped; the load balancer keeps its last configuration");
        Ok(())
    }
}

/// One blocking query on the whole catalog, forever.
async fn watch_task(consul: Client, tx: mpsc::Sender<Update>) {
    let mut watch = Watch::new(MIN_INTERVAL, MAX_WAIT);
    let base = QueryOptions::default();
    loop {
        let update = match watch.wait_change(&consul, &base, catalog::node_dump).await {
            Ok((dump, meta)) => Update::Data(dump, meta.known_leader),
            Err(e) => Update::Error(e.to_string()),
        };
        if tx.send(update).await.is_err() {
            return;
        }
    }
}
