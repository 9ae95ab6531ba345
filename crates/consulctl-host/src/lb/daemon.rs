//! The sync loop: one blocking query on the whole catalog, bursts coalesced, one render and
//! one sync per settled change, a self check and a KV record of what is served.
//!
//! - Watching: [`consul_api::catalog::node_dump`] (`/v1/internal/ui/nodes`) through the local
//!   agent with Consul's blocking-query rules ([`Watch`]: index, wait, reset when the index
//!   goes backwards, calls at least 250 ms apart, backoff after errors). One connection to the
//!   agent, whatever the number of services.
//! - Coalescing: a change is rendered `min_wait` after the last change of a burst, and never
//!   later than `max_wait` after its first; reloads are at least `max_wait` apart. With the
//!   default `min_wait` of 0 an isolated change goes out at once; a burst (answers come at most
//!   every 250 ms, so a shorter `min_wait` cannot see a pause inside one) is reloaded once at
//!   its start and at most once per `max_wait` after that ([`render_at`]). A change HAProxy
//!   takes through its runtime API (servers only) is no reload and holds nothing back.
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
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::Config;
use super::render::{render_with, routed_instances, templates, Rendered, Route};
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

/// Consul's default `kv_max_value_size`: a larger KV value is refused (HTTP 413).
pub const KV_VALUE_LIMIT: usize = 512 * 1024;

/// The record as compact JSON, at most `limit` bytes when that can be done: when the lists of
/// routed instances make it larger, every route lists none and says how many it has
/// (`instances_omitted`). Returns whether they were left out.
pub fn record_body(record: &Record, limit: usize) -> (Vec<u8>, bool) {
    let body = serde_json::to_vec(record).unwrap_or_default();
    if body.len() <= limit {
        return (body, false);
    }
    // Built without copying the instances (at 10,000 of them, a copy is megabytes).
    let short = Record {
        node: record.node.clone(),
        kind: record.kind.clone(),
        updated: record.updated.clone(),
        serving: record.serving.as_ref().map(|s| Serving {
            generation: s.generation.clone(),
            since: s.since.clone(),
            services: s
                .services
                .iter()
                .map(|(name, routes)| {
                    let routes = routes
                        .iter()
                        .map(|r| Route {
                            protocol: r.protocol,
                            listen: r.listen,
                            instances: Vec::new(),
                            instances_omitted: Some(r.instances.len()),
                        })
                        .collect();
                    (name.clone(), routes)
                })
                .collect(),
        }),
        error: record.error.clone(),
        problems: record.problems.clone(),
    };
    (serde_json::to_vec(&short).unwrap_or_default(), true)
}

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

/// What the watch saw last and the loop has not taken yet. Only the newest catalog is kept:
/// while a sync runs (a large nginx test can take half a second) the answers that come meanwhile
/// replace each other instead of queueing, so the daemon holds at most one catalog beyond the
/// one it renders. An error does not replace data it came after: both are taken, data first.
#[derive(Default)]
struct Latest {
    slot: std::sync::Mutex<Pending>,
    ready: Notify,
}

type Pending = (Option<(Vec<NodeDump>, Option<bool>)>, Option<String>);

impl Latest {
    fn put(&self, update: Update) {
        {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match update {
                Update::Data(dump, leader) => *slot = (Some((dump, leader)), None),
                Update::Error(e) => slot.1 = Some(e),
            }
        }
        self.ready.notify_one();
    }

    /// The pending updates, oldest first.
    fn take(&self) -> Vec<Update> {
        let (data, error) =
            std::mem::take(&mut *self.slot.lock().unwrap_or_else(|e| e.into_inner()));
        data.map(|(d, l)| Update::Data(d, l))
            .into_iter()
            .chain(error.map(Update::Error))
            .collect()
    }
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
    /// What identifies the record last written (see [`Daemon::record_key`]): the record
    /// itself (every routed instance) is not kept twice.
    published: Option<String>,
    /// The record had to leave its instance lists out (logged once).
    record_too_large_logged: bool,
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
            record_too_large_logged: false,
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
        let started = std::time::Instant::now();
        let rendered = self.render_current()?;
        let render_time = started.elapsed();
        let rendered = match rendered {
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
        let generation = rendered.generation.clone();
        let sync_started = std::time::Instant::now();
        // The render goes to the sync thread and comes back (large configurations are not
        // copied).
        let (outcome, mut rendered) = match tokio::task::spawn_blocking(move || {
            let o = syncer.sync(&rendered);
            (o, rendered)
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                let e = format!("sync: the sync task failed: {e}");
                log::error(&format!("{e}; the last good files stay in place"));
                self.error = Some(e.clone());
                self.failed = Some((generation, Instant::now()));
                return Some(Outcome::Failed {
                    step: "sync".into(),
                    message: e,
                });
            }
        };
        match &outcome {
            Outcome::Unchanged | Outcome::Applied { .. } => {
                if let Outcome::Applied {
                    changed,
                    steps,
                    runtime_refused,
                } = &outcome
                {
                    if let Some(why) = runtime_refused {
                        log::warn(&format!(
                            "HAProxy's runtime API did not take the change ({why}): reloaded"
                        ));
                    }
                    let files: Vec<String> =
                        changed.iter().map(|p| p.display().to_string()).collect();
                    let how = if steps.iter().any(|(s, _)| *s == "runtime") {
                        "; through the runtime API, no reload"
                    } else {
                        ""
                    };
                    log::info(&format!(
                        "generation {} served ({}{how}): {} services, {} instances; \
                         render {:.1} ms, sync {:.0} ms ({})",
                        rendered.generation,
                        if files.is_empty() {
                            "reloaded".to_string()
                        } else {
                            files.join(", ")
                        },
                        rendered.routes.len(),
                        routed_instances(&rendered.routes),
                        render_time.as_secs_f64() * 1000.0,
                        sync_started.elapsed().as_secs_f64() * 1000.0,
                        steps
                            .iter()
                            .map(|(step, ms)| format!("{step} {ms}"))
                            .collect::<Vec<_>>()
                            .join(", ")
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
                // The same generation serves the same routes: kept as they are. A new one
                // takes the render's (moved, not copied).
                if !matches!(&self.serving, Some(s) if s.generation == rendered.generation) {
                    self.serving = Some(Serving {
                        generation: rendered.generation.clone(),
                        since: now(),
                        services: std::mem::take(&mut rendered.routes),
                    });
                }
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
        drop(rendered);
        crate::memory::trim();
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
                routed_instances(&s.services)
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

    /// What the record depends on. The routes are not in it: they are fixed by the
    /// generation (a hash of the files rendered from the same listeners).
    fn record_key(&self) -> String {
        serde_json::json!([
            self.config.node,
            self.config.kind.as_str(),
            self.serving.as_ref().map(|s| (&s.generation, &s.since)),
            self.error,
            self.problems
        ])
        .to_string()
    }

    /// The record, holding what is served for a moment (not a copy of it: at 10,000
    /// instances that is megabytes); [`Daemon::put_back`] returns it.
    fn record(&mut self) -> Record {
        Record {
            node: self.config.node.clone(),
            kind: self.config.kind.as_str().into(),
            updated: String::new(),
            serving: self.serving.take(),
            error: self.error.clone(),
            problems: self.problems.clone(),
        }
    }

    fn put_back(&mut self, record: Record) {
        self.serving = record.serving;
    }

    /// Update the KV record when it changed, and the check. Returns whether the agent had
    /// lost the check.
    async fn report(&mut self) -> bool {
        // The record first: when the check says passing, what it serves can be read.
        if self.config.publish {
            let record_key = self.record_key();
            if self.published.as_ref() != Some(&record_key) {
                let mut stamped = self.record();
                stamped.updated = now();
                let (body, omitted) = record_body(&stamped, KV_VALUE_LIMIT);
                self.put_back(stamped);
                if omitted && !self.record_too_large_logged {
                    self.record_too_large_logged = true;
                    log::warn(&format!(
                        "the record of what is served would be larger than a Consul KV value \
                         ({} KiB): it lists no instances, only how many each route has",
                        KV_VALUE_LIMIT / 1024
                    ));
                }
                let key = format!("{KV_PREFIX}{}", self.config.node);
                match self.consul.call(kv::put(&key, body)).await {
                    Ok(_) => self.published = Some(record_key),
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
        let latest = Arc::new(Latest::default());
        let watcher = tokio::spawn(watch_task(self.consul.clone(), latest.clone()));
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // A burst: when it started and when its last change came.
        let mut burst: Option<(Instant, Instant)> = None;
        let mut last_attempt = Instant::now();
        // When the last render that reloaded started (none yet: the first answer renders at
        // once).
        let mut last_render: Option<Instant> = None;
        loop {
            let deadline = burst.map(|(first, last)| {
                render_at(
                    first,
                    last,
                    last_render,
                    self.config.min_wait,
                    self.config.max_wait,
                )
            });
            tokio::select! {
                _ = latest.ready.notified() => {
                    for update in latest.take() {
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
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                    burst = None;
                    last_attempt = Instant::now();
                    // Only a render that reloaded counts: one that changed nothing (a
                    // registration whose check is not passing yet) must not delay the next.
                    if let Some(Outcome::Applied { steps, .. }) = self.sync(false).await {
                        // A change HAProxy took at run time is not a reload.
                        if !steps.iter().any(|(s, _)| *s == "runtime") {
                            last_render = Some(last_attempt);
                        }
                    }
                    self.report().await;
                }
                _ = heartbeat.tick() => {
                    if self.syncer.waiting_deletions() > 0 {
                        let syncer = self.syncer.clone();
                        let _ = tokio::task::spawn_blocking(move || syncer.delete_waiting()).await;
                    }
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
        watcher.abort();
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

/// When to render a burst whose first change came at `first` and whose latest at `last`:
/// `min_wait` after the latest, at most `max_wait` after the first, and not before `max_wait`
/// after the previous render that reloaded (a burst longer than the query spacing would
/// otherwise be rendered, and reloaded, once per answer). Never later than `first +
/// max_wait`: the previous render started before `first`.
pub fn render_at(
    first: Instant,
    last: Instant,
    last_render: Option<Instant>,
    min_wait: Duration,
    max_wait: Duration,
) -> Instant {
    let settled = (last + min_wait).min(first + max_wait);
    match last_render {
        Some(previous) => settled.max(previous + max_wait),
        None => settled,
    }
}

/// One blocking query on the whole catalog, forever.
async fn watch_task(consul: Client, latest: Arc<Latest>) {
    let mut watch = Watch::new(MIN_INTERVAL, MAX_WAIT);
    let base = QueryOptions::default();
    loop {
        let update = match watch.wait_change(&consul, &base, catalog::node_dump).await {
            Ok((dump, meta)) => Update::Data(dump, meta.known_leader),
            Err(e) => Update::Error(e.to_string()),
        };
        latest.put(update);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn dump(node: &str) -> Vec<NodeDump> {
        vec![NodeDump {
            node: node.into(),
            ..NodeDump::default()
        }]
    }

    fn nodes(updates: &[Update]) -> Vec<String> {
        updates
            .iter()
            .map(|u| match u {
                Update::Data(d, _) => format!("data {}", d[0].node),
                Update::Error(e) => format!("error {e}"),
            })
            .collect()
    }

    #[test]
    fn only_the_newest_catalog_waits_and_an_error_does_not_hide_it() {
        let latest = Latest::default();
        assert!(latest.take().is_empty());
        latest.put(Update::Data(dump("a"), None));
        latest.put(Update::Data(dump("b"), None));
        latest.put(Update::Error("timeout".into()));
        assert_eq!(nodes(&latest.take()), ["data b", "error timeout"]);
        assert!(latest.take().is_empty());
        latest.put(Update::Error("refused".into()));
        latest.put(Update::Data(dump("c"), Some(true)));
        assert_eq!(nodes(&latest.take()), ["data c"]);
    }

    #[test]
    fn an_isolated_change_is_rendered_after_min_wait() {
        let t = Instant::now();
        assert_eq!(render_at(t, t, None, MIN, MAX), t + MIN);
        // Long after the previous render: min_wait too.
        assert_eq!(
            render_at(t + ms(5000), t + ms(5000), Some(t), MIN, MAX),
            t + ms(5100)
        );
    }

    #[test]
    fn a_long_burst_is_rendered_at_most_max_wait_after_its_first_change() {
        let t = Instant::now();
        assert_eq!(render_at(t, t + ms(950), None, MIN, MAX), t + MAX);
    }

    /// Renders (each one reloading) of answers that come every 250 ms (the query spacing)
    /// for a second, with `min_wait`.
    fn burst_renders(min_wait: Duration) -> Vec<Duration> {
        let t = Instant::now();
        let answers: Vec<Instant> = (0..=4).map(|i| t + ms(250 * i)).collect();
        let mut renders = vec![];
        let mut burst: Option<(Instant, Instant)> = None;
        let mut last_render = None;
        let mut i = 0;
        let mut now = t;
        while now < t + ms(5000) {
            if i < answers.len() && answers[i] <= now {
                burst = Some(burst.map_or((now, now), |(f, _)| (f, now)));
                i += 1;
            }
            if let Some((first, last)) = burst {
                if render_at(first, last, last_render, min_wait, MAX) <= now {
                    renders.push(now - t);
                    last_render = Some(now);
                    burst = None;
                }
            }
            now += ms(10);
        }
        renders
    }

    #[test]
    fn a_burst_of_one_second_is_reloaded_at_its_start_and_once_after() {
        assert_eq!(burst_renders(Duration::ZERO), vec![ms(0), ms(1000)]);
        assert_eq!(burst_renders(MIN), vec![ms(100), ms(1100)]);
    }

    fn record(instances: usize) -> Record {
        use crate::lb::render::{Proto, Route, RoutedInstance};
        let route = Route {
            protocol: Proto::Http,
            listen: 8080,
            instances: (0..instances)
                .map(|i| RoutedInstance {
                    node: format!("node{i}"),
                    id: format!("web-{i}"),
                    address: format!("10.0.{}.{}", i / 250, i % 250),
                    port: 8080,
                })
                .collect(),
            instances_omitted: None,
        };
        Record {
            node: "lb1".into(),
            kind: "nginx".into(),
            updated: "2026-12-03T10:00:00Z".into(),
            serving: Some(Serving {
                generation: "abc".into(),
                since: "2026-12-03T10:00:00Z".into(),
                services: [("web".to_string(), vec![route])].into(),
            }),
            error: None,
            problems: vec![],
        }
    }

    #[test]
    fn a_record_too_large_for_consul_kv_lists_no_instances_but_their_number() {
        let (body, omitted) = record_body(&record(3), KV_VALUE_LIMIT);
        assert!(!omitted);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["serving"]["services"]["web"][0]["instances"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(v["serving"]["services"]["web"][0]
            .get("instances_omitted")
            .is_none());

        let (body, omitted) = record_body(&record(10_000), KV_VALUE_LIMIT);
        assert!(omitted);
        assert!(body.len() <= KV_VALUE_LIMIT, "{} bytes", body.len());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let route = &v["serving"]["services"]["web"][0];
        assert_eq!(route["instances"].as_array().unwrap().len(), 0);
        assert_eq!(route["instances_omitted"], 10_000);
        assert_eq!(route["listen"], 8080);
    }
}
