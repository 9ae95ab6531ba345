//! Consul's API over HTTP(S) (feature `http`): ureq, run in tokio's blocking pool.
//!
//! The requests of a batch are sent one after the other on one blocking task. The ACL token
//! goes in the `X-Consul-Token` header; it is never part of a URL, an error or `Debug` output.
//! A private CA and a client certificate (for servers with `verify_incoming`) are PEM.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::client::{BoxFuture, Transport};
use crate::error::TransportError;
use crate::request::{Method, Request, Response};

/// The most a response body may hold.
const MAX_BODY: u64 = 64 << 20;

/// A configuration that cannot be used: a missing file, unusable PEM, a bad address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where and how to reach an agent's HTTP API.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Base URL, `http://127.0.0.1:8500`, `https://[fd00::1]:8501` (no trailing `/`).
    pub address: String,
    pub token: Option<String>,
    /// CA certificate(s) to trust instead of the public roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and its key, for agents with `verify_incoming`.
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    /// Time limit of a request (a blocking query gets its wait on top).
    pub timeout: Duration,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |o: bool| if o { "<set>" } else { "<none>" };
        f.debug_struct("HttpConfig")
            .field("address", &self.address)
            .field("token", &set(self.token.is_some()))
            .field("ca_pem", &set(self.ca_pem.is_some()))
            .field("client_cert_pem", &set(self.client_cert_pem.is_some()))
            .field("client_key_pem", &set(self.client_key_pem.is_some()))
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError(format!("{what} {}: {e}", path.display())))
}

/// Go's `strconv.ParseBool`, as Consul reads `CONSUL_HTTP_SSL`.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl HttpConfig {
    /// `address` with or without scheme (`10.0.0.1:8500` means `http://10.0.0.1:8500`);
    /// 20 s timeout, no token, public CA roots.
    pub fn new(address: &str) -> Self {
        HttpConfig {
            address: normalize(address, false),
            token: None,
            ca_pem: None,
            client_cert_pem: None,
            client_key_pem: None,
            timeout: Duration::from_secs(20),
        }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    pub fn with_ca_file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let pem = read(path.as_ref(), "CA file")?;
        Ok(self.with_ca_pem(pem))
    }

    pub fn with_client_cert_pem(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_cert_pem = Some(cert.into());
        self.client_key_pem = Some(key.into());
        self
    }

    pub fn with_client_cert_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        let c = read(cert.as_ref(), "client certificate")?;
        let k = read(key.as_ref(), "client key")?;
        Ok(self.with_client_cert_pem(c, k))
    }

    /// From the variables Consul's own CLI reads: `CONSUL_HTTP_ADDR` (default
    /// `127.0.0.1:8500`; without scheme, `https` when `CONSUL_HTTP_SSL` is true),
    /// `CONSUL_HTTP_TOKEN`, else the content of `CONSUL_HTTP_TOKEN_FILE`, `CONSUL_CACERT`,
    /// `CONSUL_CLIENT_CERT` and `CONSUL_CLIENT_KEY` (files). Empty values count as unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`HttpConfig::from_env`] with the variables from `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let ssl = match var("CONSUL_HTTP_SSL") {
            Some(v) => parse_bool(&v)
                .ok_or_else(|| ConfigError(format!("CONSUL_HTTP_SSL={v:?} is not a boolean")))?,
            None => false,
        };
        let addr = var("CONSUL_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:8500".into());
        if addr.starts_with("unix://") {
            return Err(ConfigError(format!(
                "CONSUL_HTTP_ADDR={addr}: unix sockets are not supported"
            )));
        }
        let mut c = HttpConfig::new("");
        c.address = normalize(&addr, ssl);
        c.token = match (var("CONSUL_HTTP_TOKEN"), var("CONSUL_HTTP_TOKEN_FILE")) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(file)) => {
                let bytes = read(&PathBuf::from(&file), "CONSUL_HTTP_TOKEN_FILE")?;
                let t = String::from_utf8_lossy(&bytes).trim().to_string();
                if t.is_empty() {
                    return Err(ConfigError(format!("CONSUL_HTTP_TOKEN_FILE {file}: empty")));
                }
                Some(t)
            }
            (None, None) => None,
        };
        if let Some(ca) = var("CONSUL_CACERT") {
            c = c.with_ca_file(ca)?;
        }
        match (var("CONSUL_CLIENT_CERT"), var("CONSUL_CLIENT_KEY")) {
            (Some(cert), Some(key)) => c = c.with_client_cert_files(cert, key)?,
            (None, None) => {}
            _ => {
                return Err(ConfigError(
                    "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together".into(),
                ))
            }
        }
        Ok(c)
    }
}

fn normalize(address: &str, ssl: bool) -> String {
    let a = address.trim().trim_end_matches('/');
    if a.contains("://") {
        a.to_string()
    } else if ssl {
        format!("https://{a}")
    } else {
        format!("http://{a}")
    }
}

pub use crate::request::request_timeout;

struct Inner {
    agent: ureq::Agent,
    address: String,
    token: Option<String>,
    timeout: Duration,
}

/// A [`Transport`] to one agent over HTTP(S).
#[derive(Clone)]
pub struct HttpTransport {
    inner: Arc<Inner>,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("address", &self.inner.address)
            .field("token", &self.inner.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl HttpTransport {
    pub fn new(config: HttpConfig) -> Result<Self, ConfigError> {
        if !(config.address.starts_with("http://") || config.address.starts_with("https://")) {
            return Err(ConfigError(format!(
                "{}: the address must be http:// or https://",
                config.address
            )));
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(config.timeout.min(Duration::from_secs(10)))
            .redirects(0);
        if config.ca_pem.is_some() || config.client_cert_pem.is_some() {
            builder = builder.tls_config(Arc::new(tls_config(&config)?));
        }
        Ok(HttpTransport {
            inner: Arc::new(Inner {
                agent: builder.build(),
                address: config.address,
                token: config.token,
                timeout: config.timeout,
            }),
        })
    }

    /// [`HttpConfig::from_env`] then [`HttpTransport::new`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(HttpConfig::from_env()?)
    }
}

fn tls_config(config: &HttpConfig) -> Result<rustls::ClientConfig, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let certs = |pem: &[u8], what: &str| -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError(format!("{what}: {e}")))?;
        if certs.is_empty() {
            return Err(ConfigError(format!("{what}: no PEM certificate in it")));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_pem {
        Some(pem) => {
            for cert in certs(pem, "CA")? {
                roots
                    .add(cert)
                    .map_err(|e| ConfigError(format!("CA: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    match (&config.client_cert_pem, &config.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| ConfigError(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ConfigError(format!("client certificate: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(ConfigError(
            "a client certificate needs its key and a key its certificate".into(),
        )),
    }
}

fn is_timeout(e: &ureq::Transport) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            );
        }
        source = s.source();
    }
    false
}

impl Inner {
    fn send_one(&self, r: &Request) -> Result<Response, TransportError> {
        let url = format!("{}{}", self.address, r.path);
        let timeout = request_timeout(self.timeout, r.wait);
        let mut req = self.agent.request(r.method.as_str(), &url).timeout(timeout);
        if let Some(token) = &self.token {
            req = req.set("X-Consul-Token", token);
        }
        let result = match (&r.body, r.method) {
            (Some(body), _) => req.send_bytes(body),
            (None, Method::Put | Method::Post) => req.send_bytes(&[]),
            (None, _) => req.call(),
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(ureq::Error::Status(_, resp)) => resp,
            Err(ureq::Error::Transport(t)) => {
                let msg = format!("{} {}: {t}", r.method, url);
                return Err(if is_timeout(&t) {
                    TransportError::timeout(msg)
                } else {
                    TransportError::new(msg)
                });
            }
        };
        let mut out = Response::new(resp.status(), Vec::new());
        for name in [
            "X-Consul-Index",
            "X-Consul-KnownLeader",
            "X-Consul-LastContact",
        ] {
            if let Some(v) = resp.header(name) {
                out.set_header(name, v);
            }
        }
        resp.into_reader()
            .take(MAX_BODY)
            .read_to_end(&mut out.body)
            .map_err(|e| {
                let msg = format!("{} {}: reading the answer: {e}", r.method, url);
                match e.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        TransportError::timeout(msg)
                    }
                    _ => TransportError::new(msg),
                }
            })?;
        Ok(out)
    }
}

impl Transport for HttpTransport {
    fn send<'a>(
        &'a self,
        requests: Vec<Request>,
    ) -> BoxFuture<'a, Result<Vec<Response>, TransportError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let address = inner.address.clone();
            tokio::task::spawn_blocking(move || {
                requests.iter().map(|r| inner.send_one(r)).collect()
            })
            .await
            .map_err(|e| TransportError::new(format!("{address}: the request task failed: {e}")))?
        })
    }

    fn describe(&self) -> String {
        self.inner.address.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{agent, catalog, kv, status, Client, QueryOptions};
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    /// A tiny HTTP/1.1 server answering `answers` in order (one connection each), recording
    /// each request's head and body.
    fn serve(
        answers: Vec<String>,
    ) -> (String, Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let handle = std::thread::spawn(move || {
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                head.push_str(&String::from_utf8_lossy(&body));
                record.lock().unwrap().push(head);
                let mut stream = stream;
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (addr, seen, handle)
    }

    fn answer(status: &str, headers: &[(&str, &str)], body: &str) -> String {
        let mut s = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s + "\r\n" + body
    }

    fn header<'a>(request: &'a str, name: &str) -> Option<&'a str> {
        request.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[tokio::test]
    async fn sends_the_token_and_reads_the_index() {
        let (addr, seen, server) = serve(vec![
            answer(
                "200 OK",
                &[
                    ("X-Consul-Index", "1234"),
                    ("X-Consul-KnownLeader", "true"),
                    ("X-Consul-LastContact", "7"),
                ],
                r#"{"consul":[],"web":["v1"]}"#,
            ),
            answer("200 OK", &[], "\"10.0.0.1:8300\""),
            answer("500 Internal Server Error", &[], "No cluster leader"),
            answer("200 OK", &[], "true"),
        ]);
        let t = HttpTransport::new(HttpConfig::new(&addr).with_token("s3cr3t-token")).unwrap();
        assert_eq!(t.describe(), addr);
        assert!(!format!("{t:?}").contains("s3cr3t"));
        let client = Client::new(t);
        let opts = QueryOptions::blocking(1200, Duration::from_secs(2));
        let (services, meta) = client
            .call_with_meta(catalog::services().with_options(&opts))
            .await
            .unwrap();
        assert_eq!(services["web"], ["v1"]);
        assert_eq!((meta.last_index, meta.known_leader), (1234, Some(true)));
        assert_eq!(meta.last_contact, Some(Duration::from_millis(7)));
        // A batch: both in order, the failing one as a status error.
        let (leader, members) = client.call2(status::leader(), agent::members(false)).await;
        assert_eq!(leader.unwrap().as_deref(), Some("10.0.0.1:8300"));
        let e = members.unwrap_err();
        assert_eq!(
            e.to_string(),
            "GET /v1/agent/members: HTTP 500: No cluster leader"
        );
        assert!(client.call(kv::put("app/x", "v")).await.unwrap());
        server.join().unwrap();

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        assert!(
            seen[0].starts_with("GET /v1/catalog/services?index=1200&wait=2s HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        for r in seen.iter() {
            assert_eq!(header(r, "X-Consul-Token"), Some("s3cr3t-token"), "{r}");
        }
        assert!(seen[1].starts_with("GET /v1/status/leader "));
        assert!(seen[3].starts_with("PUT /v1/kv/app/x "));
        assert!(seen[3].ends_with("\r\nv"), "{}", seen[3]);
    }

    #[tokio::test]
    async fn no_token_no_header_and_errors_keep_the_token_out() {
        let (addr, seen, server) = serve(vec![answer("200 OK", &[], "[]")]);
        let client = Client::new(HttpTransport::new(HttpConfig::new(&addr)).unwrap());
        assert!(client.call(agent::members(true)).await.unwrap().is_empty());
        server.join().unwrap();
        assert_eq!(header(&seen.lock().unwrap()[0], "X-Consul-Token"), None);

        // Nothing listens there any more.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = HttpTransport::new(
            HttpConfig::new(&format!("127.0.0.1:{port}")).with_token("s3cr3t-token"),
        )
        .unwrap();
        let e = Client::new(t).call(status::leader()).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, crate::Error::Transport(_)), "{e:?}");
        assert!(
            msg.starts_with(&format!("GET http://127.0.0.1:{port}/v1/status/leader: ")),
            "{msg}"
        );
        assert!(
            !msg.contains("s3cr3t") && !format!("{e:?}").contains("s3cr3t"),
            "{msg}"
        );
    }

    #[test]
    fn blocking_queries_get_a_longer_timeout() {
        let base = Duration::from_secs(20);
        assert_eq!(request_timeout(base, None), base);
        assert_eq!(request_timeout(base, Some(Duration::from_secs(1))), base);
        assert_eq!(
            request_timeout(base, Some(Duration::from_secs(320))),
            Duration::from_secs(320 + 20 + 5)
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_from_the_environment() {
        let c = HttpConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(
            (c.address.as_str(), c.token.as_deref()),
            ("http://127.0.0.1:8500", None)
        );
        let c = HttpConfig::from_vars(vars(&[
            ("CONSUL_HTTP_ADDR", "10.0.0.1:8501"),
            ("CONSUL_HTTP_SSL", "true"),
            ("CONSUL_HTTP_TOKEN", "tok-s3cr3t"),
        ]))
        .unwrap();
        assert_eq!(
            (c.address.as_str(), c.token.as_deref()),
            ("https://10.0.0.1:8501", Some("tok-s3cr3t"))
        );
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t") && debug.contains("token: \"<set>\""),
            "{debug}"
        );
        let c = HttpConfig::from_vars(vars(&[("CONSUL_HTTP_ADDR", "https://[fd00::1]:8501/")]))
            .unwrap();
        assert_eq!(c.address, "https://[fd00::1]:8501");

        let dir = std::env::temp_dir().join(format!("consul-api-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, "from-file\n").unwrap();
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-ca.pem");
        let c = HttpConfig::from_vars(vars(&[
            ("CONSUL_HTTP_TOKEN_FILE", token_file.to_str().unwrap()),
            ("CONSUL_CACERT", ca),
            ("CONSUL_HTTP_TOKEN", ""),
        ]))
        .unwrap();
        assert_eq!(c.token.as_deref(), Some("from-file"));
        assert!(c
            .ca_pem
            .as_ref()
            .unwrap()
            .starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert!(HttpTransport::new(c).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();

        let e = HttpConfig::from_vars(vars(&[("CONSUL_HTTP_SSL", "yes")])).unwrap_err();
        assert_eq!(e.0, "CONSUL_HTTP_SSL=\"yes\" is not a boolean");
        let e = HttpConfig::from_vars(vars(&[("CONSUL_CLIENT_CERT", "/c.pem")])).unwrap_err();
        assert_eq!(e.0, "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together");
        let e =
            HttpConfig::from_vars(vars(&[("CONSUL_CACERT", "/nonexistent/ca.pem")])).unwrap_err();
        assert!(e.0.starts_with("CA file /nonexistent/ca.pem: "), "{e}");
        let e = HttpConfig::from_vars(vars(&[("CONSUL_HTTP_ADDR", "unix:///tmp/consul.sock")]))
            .unwrap_err();
        assert!(e.0.contains("unix sockets are not supported"), "{e}");
    }

    #[test]
    fn unusable_tls_material_is_refused() {
        let e =
            HttpTransport::new(HttpConfig::new("https://127.0.0.1:8501").with_ca_pem("not a pem"))
                .unwrap_err();
        assert_eq!(e.0, "CA: no PEM certificate in it");
        let ca = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/test-ca.pem"
        ))
        .unwrap();
        let e = HttpTransport::new(
            HttpConfig::new("https://127.0.0.1:8501")
                .with_client_cert_pem(ca.clone(), "no key here"),
        )
        .unwrap_err();
        assert!(e.0.starts_with("client key: "), "{e}");
        let e = HttpTransport::new(HttpConfig::new("ftp://x")).unwrap_err();
        assert!(e.0.contains("must be http:// or https://"), "{e}");
        let t =
            HttpTransport::new(HttpConfig::new("https://127.0.0.1:8501").with_ca_pem(ca)).unwrap();
        assert_eq!(t.describe(), "https://127.0.0.1:8501");
    }
}
