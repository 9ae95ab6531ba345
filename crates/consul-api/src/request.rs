//! Requests, responses, query options and percent-encoding.

use std::fmt;
use std::time::Duration;

/// The HTTP methods Consul's API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    /// `GET`, `PUT`, `POST` or `DELETE` (any case).
    pub fn parse(s: &str) -> Option<Method> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Some(Method::Get),
            "PUT" => Some(Method::Put),
            "POST" => Some(Method::Post),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request to Consul's API. `path` starts with `/v1/` and includes the query string,
/// already percent-encoded. The ACL token is not part of it: transports add it.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// The `wait` of a blocking query, so that a transport can keep its read timeout above it.
    pub wait: Option<Duration>,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            body: None,
            wait: None,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Request::new(Method::Get, path)
    }

    pub fn put(path: impl Into<String>) -> Self {
        Request::new(Method::Put, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Request::new(Method::Post, path)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Request::new(Method::Delete, path)
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// A JSON body.
    pub fn with_json<B: serde::Serialize + ?Sized>(self, body: &B) -> Self {
        let bytes = serde_json::to_vec(body).expect("a request body serializes to JSON");
        self.with_body(bytes)
    }

    /// Apply query options (index, wait, stale, filter, ...) to the query string.
    pub fn with_options(mut self, options: &QueryOptions) -> Self {
        let mut params = Vec::new();
        options.push_params(&mut params);
        for (k, v) in params {
            push_param(&mut self.path, k, v.as_deref());
        }
        if options.index.is_some() {
            self.wait = Some(options.wait.unwrap_or(DEFAULT_WAIT));
        }
        self
    }

    /// `METHOD path`, as in logs and in [`crate::testing::FakeTransport`].
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The body as UTF-8 text (lossy), for tests and logs of non-secret bodies.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }
}

/// The body is left out: it may hold a gossip key, a token's SecretID or a KV value.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .field("wait", &self.wait)
            .finish()
    }
}

/// Consul waits 5 minutes on a blocking query that names no `wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// Consul's answer to one [`Request`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `X-Consul-Index`.
    pub index: Option<u64>,
    /// `X-Consul-KnownLeader`.
    pub known_leader: Option<bool>,
    /// `X-Consul-LastContact`, in milliseconds.
    pub last_contact_ms: Option<u64>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            body: body.into(),
            ..Response::default()
        }
    }

    /// Record a response header when it is one of Consul's query meta headers
    /// (`X-Consul-Index`, `X-Consul-KnownLeader`, `X-Consul-LastContact`; any case). Other
    /// headers and unparsable values are ignored.
    pub fn set_header(&mut self, name: &str, value: &str) {
        let value = value.trim();
        if name.eq_ignore_ascii_case("X-Consul-Index") {
            self.index = value.parse().ok();
        } else if name.eq_ignore_ascii_case("X-Consul-KnownLeader") {
            self.known_leader = value.parse().ok();
        } else if name.eq_ignore_ascii_case("X-Consul-LastContact") {
            self.last_contact_ms = value.parse().ok();
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The query meta of this answer.
    pub fn meta(&self) -> QueryMeta {
        QueryMeta {
            last_index: self.index.unwrap_or(0),
            known_leader: self.known_leader,
            last_contact: self.last_contact_ms.map(Duration::from_millis),
        }
    }

    /// The first 200 characters of the body, for error messages.
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        let mut out: String = text.chars().take(200).collect();
        if text.chars().count() > 200 {
            out.push_str("...");
        }
        out
    }
}

/// The body is left out: it may hold a token's SecretID, gossip keys or KV values.
impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("index", &self.index)
            .field("known_leader", &self.known_leader)
            .field("last_contact_ms", &self.last_contact_ms)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Options of a read (GET) request. `index` makes it a blocking query that returns when the
/// index passes it or after `wait` (Consul's default 5 minutes, at most 10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    pub index: Option<u64>,
    pub wait: Option<Duration>,
    /// Any server may answer, possibly out of date (`?stale`).
    pub stale: bool,
    /// The leader answers after confirming it still leads (`?consistent`).
    pub consistent: bool,
    /// A filter expression (`?filter=`).
    pub filter: Option<String>,
    /// Only services with these tags (`?tag=`, repeated).
    pub tag: Vec<String>,
    /// Only entries whose checks pass (`?passing`, health endpoints).
    pub passing: bool,
    /// Datacenter (`?dc=`); the agent's own when None.
    pub dc: Option<String>,
    /// Sort by round trip time from this node (`?near=`, `_agent` for the agent's node).
    pub near: Option<String>,
}

impl QueryOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stale() -> Self {
        QueryOptions {
            stale: true,
            ..Self::default()
        }
    }

    /// A blocking query on `index`, waiting up to `wait`.
    pub fn blocking(index: u64, wait: Duration) -> Self {
        QueryOptions {
            index: Some(index),
            wait: Some(wait),
            ..Self::default()
        }
    }

    fn push_params(&self, out: &mut Vec<(&'static str, Option<String>)>) {
        if let Some(dc) = &self.dc {
            out.push(("dc", Some(dc.clone())));
        }
        if let Some(index) = self.index {
            out.push(("index", Some(index.to_string())));
        }
        if let Some(wait) = self.wait {
            out.push(("wait", Some(format_wait(wait))));
        }
        if self.stale {
            out.push(("stale", None));
        }
        if self.consistent {
            out.push(("consistent", None));
        }
        if self.passing {
            out.push(("passing", None));
        }
        for tag in &self.tag {
            out.push(("tag", Some(tag.clone())));
        }
        if let Some(near) = &self.near {
            out.push(("near", Some(near.clone())));
        }
        if let Some(filter) = &self.filter {
            out.push(("filter", Some(filter.clone())));
        }
    }
}

/// `10s`, `1500ms`: whole seconds when exact, else milliseconds (at least 1ms).
pub(crate) fn format_wait(wait: Duration) -> String {
    if wait.subsec_nanos() == 0 {
        format!("{}s", wait.as_secs())
    } else {
        format!("{}ms", wait.as_millis().max(1))
    }
}

/// What Consul says about a read: its index, whether the cluster has a leader, and how long
/// ago the answering server heard from the leader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryMeta {
    /// `X-Consul-Index`, 0 when absent.
    pub last_index: u64,
    pub known_leader: Option<bool>,
    pub last_contact: Option<Duration>,
}

/// Percent-encode a path segment or query value: everything but `A-Z a-z 0-9 - . _ ~`.
pub fn encode_component(s: &str) -> String {
    encode(s, false)
}

/// Percent-encode a path that may hold `/` (KV keys): as [`encode_component`], `/` kept.
pub fn encode_path(s: &str) -> String {
    encode(s, true)
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn push_param(path: &mut String, key: &str, value: Option<&str>) {
    path.push(if path.contains('?') { '&' } else { '?' });
    path.push_str(&encode_component(key));
    if let Some(v) = value {
        path.push('=');
        path.push_str(&encode_component(v));
    }
}

/// Builds a request path: fixed parts as given, segments and values percent-encoded.
///
/// ```
/// use consul_api::PathBuilder;
/// let p = PathBuilder::new("/v1/health/service")
///     .segment("web api")
///     .flag("passing")
///     .param("tag", "a&b")
///     .build();
/// assert_eq!(p, "/v1/health/service/web%20api?passing&tag=a%26b");
/// ```
#[derive(Debug, Clone)]
pub struct PathBuilder {
    path: String,
    query: Vec<(String, Option<String>)>,
}

impl PathBuilder {
    /// `base` is used as is (it is a literal such as `/v1/agent/members`).
    pub fn new(base: &str) -> Self {
        PathBuilder {
            path: base.to_string(),
            query: Vec::new(),
        }
    }

    /// Append `/segment`, percent-encoded (a `/` in it is encoded too).
    pub fn segment(mut self, segment: &str) -> Self {
        self.path.push('/');
        self.path.push_str(&encode_component(segment));
        self
    }

    /// Append `/path`, percent-encoded except for `/` (KV keys).
    pub fn path(mut self, path: &str) -> Self {
        self.path.push('/');
        self.path
            .push_str(&encode_path(path.trim_start_matches('/')));
        self
    }

    pub fn param(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.query.push((key.to_string(), Some(value.to_string())));
        self
    }

    pub fn param_opt(self, key: &str, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(v) => self.param(key, v),
            None => self,
        }
    }

    /// A parameter without value (`?stale`, `?prune`).
    pub fn flag(mut self, key: &str) -> Self {
        self.query.push((key.to_string(), None));
        self
    }

    pub fn flag_if(self, key: &str, on: bool) -> Self {
        if on {
            self.flag(key)
        } else {
            self
        }
    }

    pub fn build(self) -> String {
        let mut path = self.path;
        for (k, v) in &self.query {
            push_param(&mut path, k, v.as_deref());
        }
        path
    }
}

/// The time limit of a request: the configured one, and for a blocking query its wait plus
/// Consul's jitter (wait/16) plus 5 s, if that is more.
pub fn request_timeout(base: Duration, wait: Option<Duration>) -> Duration {
    match wait {
        Some(w) => base.max(w + w / 16 + Duration::from_secs(5)),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("a b/c?d&e=f"), "a%20b%2Fc%3Fd%26e%3Df");
        assert_eq!(encode_component("Az09-._~"), "Az09-._~");
        assert_eq!(encode_component("ü"), "%C3%BC");
        assert_eq!(encode_path("a b/c"), "a%20b/c");
    }

    #[test]
    fn query_options_become_the_query_string() {
        let opts = QueryOptions {
            index: Some(42),
            wait: Some(Duration::from_secs(30)),
            stale: true,
            filter: Some("Service.Tags contains \"v1\"".into()),
            tag: vec!["a".into(), "b c".into()],
            passing: true,
            dc: Some("dc 2".into()),
            near: Some("_agent".into()),
            consistent: false,
        };
        let r = Request::get("/v1/health/service/web").with_options(&opts);
        assert_eq!(
            r.path,
            "/v1/health/service/web?dc=dc%202&index=42&wait=30s&stale&passing&tag=a&tag=b%20c\
             &near=_agent&filter=Service.Tags%20contains%20%22v1%22"
        );
        assert_eq!(r.wait, Some(Duration::from_secs(30)));
        let r = Request::get("/v1/operator/raft/configuration?stale").with_options(&QueryOptions {
            consistent: true,
            ..QueryOptions::default()
        });
        assert_eq!(r.path, "/v1/operator/raft/configuration?stale&consistent");
        assert_eq!(r.wait, None);
    }

    #[test]
    fn a_blocking_query_without_wait_uses_consuls_default_for_the_timeout() {
        let r = Request::get("/v1/catalog/services").with_options(&QueryOptions {
            index: Some(7),
            ..QueryOptions::default()
        });
        assert_eq!(r.path, "/v1/catalog/services?index=7");
        assert_eq!(r.wait, Some(DEFAULT_WAIT));
    }

    #[test]
    fn waits_are_formatted_for_consul() {
        assert_eq!(format_wait(Duration::from_secs(300)), "300s");
        assert_eq!(format_wait(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_wait(Duration::from_nanos(10)), "1ms");
    }

    #[test]
    fn meta_headers_are_parsed_case_insensitively() {
        let mut r = Response::new(200, "[]");
        r.set_header("x-consul-index", " 1234 ");
        r.set_header("X-Consul-KnownLeader", "true");
        r.set_header("X-Consul-LastContact", "15");
        r.set_header("Content-Type", "application/json");
        assert_eq!(
            r.meta(),
            QueryMeta {
                last_index: 1234,
                known_leader: Some(true),
                last_contact: Some(Duration::from_millis(15)),
            }
        );
    }

    #[test]
    fn debug_leaves_bodies_out() {
        let r = Request::put("/v1/operator/keyring").with_body("{\"Key\":\"c2VjcmV0\"}");
        let d = format!("{r:?}");
        assert!(!d.contains("c2VjcmV0"), "{d}");
        assert!(d.contains("body_len: Some(18)"), "{d}");
        let resp = Response::new(200, "{\"SecretID\":\"s3cr3t\"}");
        assert!(!format!("{resp:?}").contains("s3cr3t"));
    }

    #[test]
    fn long_bodies_are_cut_for_errors() {
        let r = Response::new(500, "x".repeat(500));
        assert_eq!(r.body_excerpt().len(), 203);
        assert_eq!(
            Response::new(500, " no leader \n").body_excerpt(),
            "no leader"
        );
    }

    #[test]
    fn methods_parse() {
        assert_eq!(Method::parse("delete"), Some(Method::Delete));
        assert_eq!(Method::parse("PATCH"), None);
        assert_eq!(Method::Post.to_string(), "POST");
    }
}
