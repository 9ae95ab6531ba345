//! A scripted transport for tests, a manual clock, and a minimal executor.
//!
//! [`FakeTransport`] answers from a table of `METHOD path` entries and records every request
//! and batch it receives, so tests assert on what was sent:
//!
//! ```
//! use consul_api::{status, testing::{block_on, FakeTransport}, Client};
//! let fake = FakeTransport::new().on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"");
//! let client = Client::new(fake.clone());
//! let leader = block_on(client.call(status::leader())).unwrap();
//! assert_eq!(leader.as_deref(), Some("10.0.0.1:8300"));
//! assert_eq!(fake.sent(), ["GET /v1/status/leader"]);
//! ```
//!
//! Matching: an entry whose path equals the request's path (query string included) wins;
//! otherwise an entry without query string matches any query string on the same path.
//! Several answers for one entry are given in order, the last one repeated. Requests with no
//! entry get a 404 (or what [`FakeTransport::unknown`] / [`FakeTransport::unknown_error`] set).

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::client::{BoxFuture, Transport};
use crate::error::TransportError;
use crate::request::{Method, Request, Response};

#[derive(Debug, Clone)]
enum Answer {
    Respond(Response),
    Fail(TransportError),
}

#[derive(Debug)]
struct Entry {
    method: Method,
    path: String,
    answers: VecDeque<Answer>,
}

#[derive(Debug)]
struct State {
    entries: Vec<Entry>,
    requests: Vec<Request>,
    batches: Vec<usize>,
    fail_all: Option<TransportError>,
    unknown: Answer,
    name: String,
}

/// A [`crate::Transport`] answering from a table; clones share the table and the record.
#[derive(Debug, Clone)]
pub struct FakeTransport {
    state: Arc<Mutex<State>>,
}

impl Default for FakeTransport {
    fn default() -> Self {
        Self::new()
    }
}

fn method(m: &str) -> Method {
    Method::parse(m).unwrap_or_else(|| panic!("not an HTTP method Consul uses: {m:?}"))
}

impl FakeTransport {
    pub fn new() -> Self {
        FakeTransport {
            state: Arc::new(Mutex::new(State {
                entries: Vec::new(),
                requests: Vec::new(),
                batches: Vec::new(),
                fail_all: None,
                unknown: Answer::Respond(Response::new(404, "")),
                name: "fake".into(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(self, m: &str, path: &str, answer: Answer) -> Self {
        let m = method(m);
        {
            let mut s = self.lock();
            match s
                .entries
                .iter_mut()
                .find(|e| e.method == m && e.path == path)
            {
                Some(e) => e.answers.push_back(answer),
                None => s.entries.push(Entry {
                    method: m,
                    path: path.to_string(),
                    answers: VecDeque::from([answer]),
                }),
            }
        }
        self
    }

    /// What `describe` returns (default `fake`).
    pub fn named(self, name: &str) -> Self {
        self.lock().name = name.to_string();
        self
    }

    /// Answer `METHOD path` with `status` and `body`.
    pub fn on(self, method: &str, path: &str, status: u16, body: &str) -> Self {
        self.respond(method, path, Response::new(status, body))
    }

    /// As [`FakeTransport::on`], with an `X-Consul-Index`.
    pub fn on_indexed(self, method: &str, path: &str, status: u16, body: &str, index: u64) -> Self {
        let mut r = Response::new(status, body);
        r.index = Some(index);
        self.respond(method, path, r)
    }

    /// Answer `METHOD path` with 200 and `body` serialized as JSON.
    pub fn on_json(self, method: &str, path: &str, body: &serde_json::Value) -> Self {
        self.on(method, path, 200, &body.to_string())
    }

    /// Answer `METHOD path` with a full response (headers included).
    pub fn respond(self, method: &str, path: &str, response: Response) -> Self {
        self.push(method, path, Answer::Respond(response))
    }

    /// A batch holding `METHOD path` fails with a transport error.
    pub fn fail(self, method: &str, path: &str, message: &str) -> Self {
        self.push(method, path, Answer::Fail(TransportError::new(message)))
    }

    /// Every batch fails with a transport error (an unreachable host).
    pub fn fail_all(self, message: &str) -> Self {
        self.lock().fail_all = Some(TransportError::new(message));
        self
    }

    /// The answer to requests without entry (default: 404, empty body).
    pub fn unknown(self, status: u16, body: &str) -> Self {
        self.lock().unknown = Answer::Respond(Response::new(status, body));
        self
    }

    /// A batch holding a request without entry fails with a transport error.
    pub fn unknown_error(self, message: &str) -> Self {
        self.lock().unknown = Answer::Fail(TransportError::new(message));
        self
    }

    /// Entries from JSON: an object of `"METHOD /v1/path"` to an answer or a list of answers
    /// (given in order); an answer is `{"status": 200, "body": <JSON>, "index": 5}` where
    /// `status` defaults to 200, `body` is any JSON value (sent serialized; absent = empty
    /// body), `raw` a text body sent as is, `index`, `known_leader` and `last_contact_ms` the
    /// meta headers, and `{"error": "message"}` a transport error.
    pub fn from_json(text: &str) -> Result<Self, String> {
        FakeTransport::new().load_json(text)
    }

    /// [`FakeTransport::from_json`] on a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, String> {
        FakeTransport::new().load_file(path)
    }

    /// Add the entries of a JSON fixture file (format of [`FakeTransport::from_json`]).
    pub fn load_file(self, path: impl AsRef<Path>) -> Result<Self, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.load_json(&text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Add the entries of a JSON fixture (format of [`FakeTransport::from_json`]).
    pub fn load_json(mut self, text: &str) -> Result<Self, String> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (key, value) in map {
            let (m, path) = key
                .split_once(' ')
                .filter(|(m, p)| Method::parse(m).is_some() && p.starts_with('/'))
                .ok_or_else(|| format!("{key:?}: expected \"METHOD /v1/path\""))?;
            let answers = match value {
                serde_json::Value::Array(a) => a,
                v => vec![v],
            };
            for a in answers {
                let answer = answer_from_json(&a).map_err(|e| format!("{key}: {e}"))?;
                self = self.push(m, path.trim(), answer);
            }
        }
        Ok(self)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Every request received as `METHOD path`.
    pub fn sent(&self) -> Vec<String> {
        self.lock().requests.iter().map(Request::line).collect()
    }

    /// The size of every batch received, in order.
    pub fn batches(&self) -> Vec<usize> {
        self.lock().batches.clone()
    }

    /// How many requests `METHOD path` (query string included) were received.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let m = self::method(method);
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == m && r.path == path)
            .count()
    }

    /// Forget the requests received so far.
    pub fn clear_record(&self) {
        let mut s = self.lock();
        s.requests.clear();
        s.batches.clear();
    }
}

fn answer_from_json(v: &serde_json::Value) -> Result<Answer, String> {
    let obj = v.as_object().ok_or("an answer is a JSON object")?;
    if let Some(e) = obj.get("error") {
        let msg = e.as_str().ok_or("\"error\" is a string")?;
        return Ok(Answer::Fail(TransportError::new(msg)));
    }
    for k in obj.keys() {
        if ![
            "status",
            "body",
            "raw",
            "index",
            "known_leader",
            "last_contact_ms",
        ]
        .contains(&k.as_str())
        {
            return Err(format!("unknown answer field {k:?}"));
        }
    }
    let status = match obj.get("status") {
        Some(s) => s
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or("\"status\" is an HTTP status")?,
        None => 200,
    };
    let body = match (obj.get("raw"), obj.get("body")) {
        (Some(raw), _) => raw
            .as_str()
            .ok_or("\"raw\" is a string")?
            .as_bytes()
            .to_vec(),
        (None, Some(b)) => b.to_string().into_bytes(),
        (None, None) => Vec::new(),
    };
    let mut r = Response::new(status, body);
    r.index = obj.get("index").and_then(|v| v.as_u64());
    r.known_leader = obj.get("known_leader").and_then(|v| v.as_bool());
    r.last_contact_ms = obj.get("last_contact_ms").and_then(|v| v.as_u64());
    Ok(Answer::Respond(r))
}

impl State {
    fn answer(&mut self, r: &Request) -> Answer {
        let bare = r.path.split('?').next().unwrap_or(&r.path);
        let idx = self
            .entries
            .iter()
            .position(|e| e.method == r.method && e.path == r.path)
            .or_else(|| {
                self.entries
                    .iter()
                    .position(|e| e.method == r.method && !e.path.contains('?') && e.path == bare)
            });
        let Some(i) = idx else {
            return match &self.unknown {
                Answer::Respond(resp) if resp.status == 404 && resp.body.is_empty() => {
                    Answer::Respond(Response::new(
                        404,
                        format!("no fake answer for {}", r.line()),
                    ))
                }
                a => a.clone(),
            };
        };
        let answers = &mut self.entries[i].answers;
        if answers.len() > 1 {
            answers.pop_front().expect("non-empty")
        } else {
            answers[0].clone()
        }
    }
}

impl Transport for FakeTransport {
    fn send<'a>(
        &'a self,
        requests: Vec<Request>,
    ) -> BoxFuture<'a, Result<Vec<Response>, TransportError>> {
        let mut s = self.lock();
        s.batches.push(requests.len());
        let mut out = Ok(Vec::with_capacity(requests.len()));
        if let Some(e) = &s.fail_all {
            out = Err(e.clone());
        }
        for r in &requests {
            let answer = s.answer(r);
            match (&mut out, answer) {
                (Ok(v), Answer::Respond(resp)) => v.push(resp),
                (Ok(_), Answer::Fail(e)) => out = Err(e),
                (Err(_), _) => {}
            }
        }
        s.requests.extend(requests);
        Box::pin(std::future::ready(out))
    }

    fn describe(&self) -> String {
        self.lock().name.clone()
    }
}

/// A [`crate::poll::Clock`] for tests: sleeps advance it at once and are recorded, so a
/// [`crate::poll::wait_until_with`] that times out returns without waiting.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
    sleeps: Mutex<Vec<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    pub fn new() -> Self {
        ManualClock {
            now: Mutex::new(Instant::now()),
            sleeps: Mutex::new(Vec::new()),
        }
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The time the sleeps add up to.
    pub fn slept(&self) -> Duration {
        self.sleeps().iter().sum()
    }
}

impl crate::poll::Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) += d;
        self.sleeps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(d);
        Box::pin(std::future::ready(()))
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Run a future to completion on the current thread (for tests of code that does not sleep
/// on a runtime's timer, such as calls through a [`FakeTransport`]).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{status, Client};

    #[test]
    fn answers_in_order_then_repeats_the_last() {
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"\"")
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"");
        let c = Client::new(fake.clone());
        assert_eq!(block_on(c.call(status::leader())).unwrap(), None);
        for _ in 0..2 {
            assert_eq!(
                block_on(c.call(status::leader())).unwrap().as_deref(),
                Some("10.0.0.1:8300")
            );
        }
        assert_eq!(fake.count("GET", "/v1/status/leader"), 3);
    }

    #[test]
    fn an_entry_without_query_matches_any_query_but_an_exact_one_wins() {
        let fake = FakeTransport::new()
            .on("GET", "/v1/agent/members", 200, "[]")
            .on(
                "GET",
                "/v1/agent/members?wan=1",
                200,
                r#"[{"Name":"s1.dc1","Addr":"10.0.0.1","Status":1}]"#,
            );
        let c = Client::new(fake.clone());
        assert_eq!(
            block_on(c.call(crate::agent::members(true))).unwrap().len(),
            1
        );
        let lan = Request::get("/v1/agent/members?segment=x");
        let r = block_on(c.send(vec![lan])).unwrap();
        assert_eq!(r[0].body, b"[]");
    }

    #[test]
    fn unknown_requests_are_404_or_the_configured_error() {
        let fake = FakeTransport::new();
        let r = block_on(fake.send(vec![Request::get("/v1/x")])).unwrap();
        assert_eq!(
            (r[0].status, r[0].body.as_slice()),
            (404, &b"no fake answer for GET /v1/x"[..])
        );
        let fake = FakeTransport::new().unknown_error("ssh: host unreachable");
        let e = block_on(fake.send(vec![Request::get("/v1/x")])).unwrap_err();
        assert_eq!(e.message, "ssh: host unreachable");
        assert_eq!(fake.sent(), ["GET /v1/x"]);
    }

    #[test]
    fn fixtures_load_from_json() {
        let fake = FakeTransport::from_json(
            r#"{
              "GET /v1/status/leader": [{"body": ""}, {"body": "10.0.0.1:8300", "index": 3}],
              "GET /v1/status/peers": {"error": "timed out"},
              "PUT /v1/agent/leave": {"status": 500, "raw": "boom"}
            }"#,
        )
        .unwrap()
        .named("ssh server1");
        let c = Client::new(fake.clone());
        assert_eq!(c.describe(), "ssh server1");
        assert_eq!(block_on(c.call(status::leader())).unwrap(), None);
        let (leader, meta) = block_on(c.call_with_meta(status::leader())).unwrap();
        assert_eq!(
            (leader.as_deref(), meta.last_index),
            (Some("10.0.0.1:8300"), 3)
        );
        assert_eq!(
            block_on(c.call(status::peers())).unwrap_err().to_string(),
            "timed out"
        );
        assert_eq!(
            block_on(c.call(crate::agent::leave()))
                .unwrap_err()
                .to_string(),
            "PUT /v1/agent/leave: HTTP 500: boom"
        );
        let bad = FakeTransport::from_json(r#"{"FETCH /v1/x": {}}"#).unwrap_err();
        assert!(bad.contains("expected \"METHOD /v1/path\""), "{bad}");
        let bad = FakeTransport::from_json(r#"{"GET /v1/x": {"stauts": 200}}"#).unwrap_err();
        assert!(bad.contains("unknown answer field \"stauts\""), "{bad}");
    }

    #[test]
    fn a_manual_clock_times_a_wait_out_without_waiting() {
        let clock = ManualClock::new();
        let s = Duration::from_secs(1);
        let r: Result<(), crate::poll::Timeout<String>> =
            block_on(crate::poll::wait_until_with(&clock, "x", s * 3, s, || {
                std::future::ready(Ok(crate::poll::Progress::Pending("not yet".into())))
            }));
        assert_eq!(
            r.unwrap_err().to_string(),
            "timed out after 3s waiting for x: not yet"
        );
        assert_eq!(clock.sleeps(), [s, s, s]);
        assert_eq!(clock.slept(), s * 3);
    }

    #[test]
    fn fixture_files_load() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cluster-3-servers.json"
        );
        let fake = FakeTransport::from_file(dir).unwrap();
        let c = Client::new(fake);
        let raft = block_on(c.call(crate::operator::raft_configuration(true))).unwrap();
        assert_eq!(raft.servers.len(), 3);
        let e = FakeTransport::from_file("/nonexistent/x.json").unwrap_err();
        assert!(e.starts_with("/nonexistent/x.json: "), "{e}");
    }
}
