//! The sync daemon's configuration file (TOML; `consulctl apply` writes it from the
//! inventory's `[lb]` section, templates inlined). Every key is documented in `docs/lb.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::registrar::duration::parse_duration;

/// What the daemon drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Haproxy,
    /// User templates only.
    None,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
            Kind::None => "none",
        }
    }
}

/// How an upstream spreads requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    LeastConn,
    RoundRobin,
    IpHash,
    Random,
}

impl Method {
    fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "least_conn" | "leastconn" => Method::LeastConn,
            "round_robin" | "roundrobin" => Method::RoundRobin,
            "ip_hash" | "source" => Method::IpHash,
            "random" => Method::Random,
            _ => return None,
        })
    }
}

/// Balancing and failure parameters, shared by every service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub method: Method,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub weight: u32,
    pub keepalive: u32,
    pub maxconn: u32,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nginx {
    pub http_conf: PathBuf,
    pub stream_conf: PathBuf,
    pub stream_block: bool,
    pub test: Vec<String>,
    pub reload: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Haproxy {
    pub config: PathBuf,
    pub test: Vec<String>,
    pub reload: Vec<String>,
    pub stats_socket: String,
}

/// A user template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub text: String,
    pub destination: PathBuf,
    /// Run on the staged file before it replaces the live one; `{staged}` is its path.
    pub validate: Vec<String>,
    pub reload: Vec<String>,
}

/// The configuration, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node: String,
    pub kind: Kind,
    pub tag: String,
    pub status_port: u16,
    pub min_wait: Duration,
    pub max_wait: Duration,
    pub publish: bool,
    pub state_dir: PathBuf,
    pub balance: Balance,
    pub ports: BTreeMap<String, u16>,
    pub nginx: Nginx,
    pub haproxy: Haproxy,
    pub templates: Vec<Template>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    node: String,
    #[serde(default = "d_kind")]
    kind: String,
    #[serde(default = "d_tag")]
    tag: String,
    #[serde(default = "d_status_port")]
    status_port: u16,
    #[serde(default = "d_min_wait")]
    min_wait: String,
    #[serde(default = "d_max_wait")]
    max_wait: String,
    #[serde(default = "d_true")]
    publish: bool,
    #[serde(default = "d_state_dir")]
    state_dir: PathBuf,
    #[serde(default)]
    balance: RawBalance,
    #[serde(default)]
    ports: BTreeMap<String, i64>,
    #[serde(default)]
    nginx: RawNginx,
    #[serde(default)]
    haproxy: RawHaproxy,
    #[serde(default)]
    template: Vec<RawTemplate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBalance {
    method: String,
    max_fails: u32,
    fail_timeout: String,
    weight: u32,
    keepalive: u32,
    maxconn: u32,
    retries: u32,
}

impl Default for RawBalance {
    fn default() -> Self {
        RawBalance {
            method: "least_conn".into(),
            max_fails: 3,
            fail_timeout: "60s".into(),
            weight: 1,
            keepalive: 32,
            maxconn: 100,
            retries: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNginx {
    http_conf: PathBuf,
    stream_conf: PathBuf,
    stream_block: bool,
    test: Vec<String>,
    reload: Vec<String>,
}

impl Default for RawNginx {
    fn default() -> Self {
        RawNginx {
            http_conf: "/etc/nginx/conf.d/consulctl-http.conf".into(),
            stream_conf: "/etc/nginx/modules-enabled/99-consulctl-stream.conf".into(),
            stream_block: true,
            test: argv(&["nginx", "-t"]),
            reload: argv(&["nginx", "-s", "reload"]),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHaproxy {
    config: PathBuf,
    test: Vec<String>,
    reload: Vec<String>,
    stats_socket: String,
}

impl Default for RawHaproxy {
    fn default() -> Self {
        RawHaproxy {
            config: "/etc/haproxy/haproxy.cfg".into(),
            test: argv(&["haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"]),
            reload: argv(&["systemctl", "reload", "haproxy"]),
            stats_socket: "/run/haproxy-admin.sock".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    text: String,
    destination: PathBuf,
    #[serde(default)]
    validate: Vec<String>,
    #[serde(default)]
    reload: Vec<String>,
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}
fn d_kind() -> String {
    "nginx".into()
}
fn d_tag() -> String {
    "upyun".into()
}
fn d_status_port() -> u16 {
    18900
}
fn d_min_wait() -> String {
    "0s".into()
}
fn d_max_wait() -> String {
    "1s".into()
}
fn d_true() -> bool {
    true
}
fn d_state_dir() -> PathBuf {
    "/var/lib/consulctl/lb".into()
}

/// A path the daemon writes: absolute, with a file name.
fn check_path(key: &str, p: &Path) -> Result<(), String> {
    if !p.is_absolute() || p.file_name().is_none() {
        return Err(format!(
            "{key} = {:?}: must be an absolute file path",
            p.display()
        ));
    }
    Ok(())
}

/// A service name a port is set for: what Consul accepts (letters, digits, `-`, `_`, `.`).
pub fn is_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Config {
    /// Read and check the file; the error names the file and the key.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse and check the text of a configuration file.
    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if raw.node.trim().is_empty() {
            return Err("node: must not be empty (the Consul node name)".into());
        }
        let kind = match raw.kind.as_str() {
            "nginx" => Kind::Nginx,
            "haproxy" => Kind::Haproxy,
            "none" => Kind::None,
            other => {
                return Err(format!(
                    "kind = {other:?}: allowed are \"nginx\", \"haproxy\" and \"none\""
                ))
            }
        };
        if !is_service_name(&raw.tag) {
            return Err(format!(
                "tag = {:?}: a tag of letters, digits, '-', '_' or '.'",
                raw.tag
            ));
        }
        if raw.status_port == 0 {
            return Err("status_port = 0: a port 1-65535 on 127.0.0.1".into());
        }
        let min_wait = parse_duration(&raw.min_wait).map_err(|e| format!("min_wait: {e}"))?;
        let max_wait = parse_duration(&raw.max_wait).map_err(|e| format!("max_wait: {e}"))?;
        if max_wait < min_wait {
            return Err(format!(
                "max_wait = {:?} is shorter than min_wait = {:?}",
                raw.max_wait, raw.min_wait
            ));
        }
        let b = raw.balance;
        let method = Method::parse(&b.method).ok_or_else(|| {
            format!(
                "balance.method = {:?}: allowed are \"least_conn\", \"round_robin\", \"ip_hash\" \
                 and \"random\"",
                b.method
            )
        })?;
        let fail_timeout =
            parse_duration(&b.fail_timeout).map_err(|e| format!("balance.fail_timeout: {e}"))?;
        if b.weight == 0 {
            return Err("balance.weight = 0: at least 1".into());
        }
        let mut ports = BTreeMap::new();
        for (name, port) in raw.ports {
            if !is_service_name(&name) {
                return Err(format!("ports.{name}: not a service name"));
            }
            let p = u16::try_from(port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("ports.{name} = {port}: a port 1-65535"))?;
            ports.insert(name, p);
        }
        check_path("nginx.http_conf", &raw.nginx.http_conf)?;
        check_path("nginx.stream_conf", &raw.nginx.stream_conf)?;
        check_path("haproxy.config", &raw.haproxy.config)?;
        for (key, a) in [
            ("nginx.test", &raw.nginx.test),
            ("nginx.reload", &raw.nginx.reload),
            ("haproxy.test", &raw.haproxy.test),
            ("haproxy.reload", &raw.haproxy.reload),
        ] {
            if a.is_empty() || a[0].is_empty() {
                return Err(format!("{key}: a command (argv), e.g. [\"nginx\", \"-t\"]"));
            }
        }
        let mut templates = Vec::new();
        let mut destinations = std::collections::BTreeSet::new();
        for (i, t) in raw.template.into_iter().enumerate() {
            let key = format!("template[{i}] ({})", t.name);
            check_path(&format!("{key}.destination"), &t.destination)?;
            if !destinations.insert(t.destination.clone()) {
                return Err(format!(
                    "{key}.destination = {:?}: another template writes it",
                    t.destination.display()
                ));
            }
            let builtin = match kind {
                Kind::Nginx => vec![&raw.nginx.http_conf, &raw.nginx.stream_conf],
                Kind::Haproxy => vec![&raw.haproxy.config],
                Kind::None => vec![],
            };
            if builtin.contains(&&t.destination) {
                return Err(format!(
                    "{key}.destination = {:?}: the built-in {} output writes it",
                    t.destination.display(),
                    kind.as_str()
                ));
            }
            if let Err(e) = tera::Tera::default().add_raw_template(&t.name, &t.text) {
                return Err(format!(
                    "{key}.text: not a valid template: {}",
                    error_chain(&e)
                ));
            }
            templates.push(Template {
                name: t.name,
                text: t.text,
                destination: t.destination,
                validate: t.validate,
                reload: t.reload,
            });
        }
        Ok(Config {
            node: raw.node,
            kind,
            tag: raw.tag,
            status_port: raw.status_port,
            min_wait,
            max_wait,
            publish: raw.publish,
            state_dir: raw.state_dir,
            balance: Balance {
                method,
                max_fails: b.max_fails,
                fail_timeout,
                weight: b.weight,
                keepalive: b.keepalive,
                maxconn: b.maxconn,
                retries: b.retries,
            },
            ports,
            nginx: Nginx {
                http_conf: raw.nginx.http_conf,
                stream_conf: raw.nginx.stream_conf,
                stream_block: raw.nginx.stream_block,
                test: raw.nginx.test,
                reload: raw.nginx.reload,
            },
            haproxy: Haproxy {
                config: raw.haproxy.config,
                test: raw.haproxy.test,
                reload: raw.haproxy.reload,
                stats_socket: raw.haproxy.stats_socket,
            },
            templates,
        })
    }
}

/// An error with its sources, on one line (Tera puts the useful part in the source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_reproduce_the_seed_layout() {
        let c = Config::parse("node = \"lb1\"\n").unwrap();
        assert_eq!(c.kind, Kind::Nginx);
        assert_eq!(c.tag, "upyun");
        assert_eq!(c.balance.method, Method::LeastConn);
        assert_eq!(
            (
                c.balance.max_fails,
                c.balance.fail_timeout,
                c.balance.weight
            ),
            (3, Duration::from_secs(60), 1)
        );
        assert_eq!(
            (c.min_wait, c.max_wait),
            (Duration::ZERO, Duration::from_secs(1))
        );
        assert_eq!(
            c.nginx.http_conf,
            PathBuf::from("/etc/nginx/conf.d/consulctl-http.conf")
        );
        assert!(c.templates.is_empty());
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let cases = [
            ("kind = \"envoy\"", "kind = \"envoy\": allowed are"),
            ("min_wait = \"2s\"", "max_wait = \"1s\" is shorter"),
            ("max_wait = \"soon\"", "max_wait: \"soon\" is not a Go duration"),
            ("[balance]\nmethod = \"fastest\"", "balance.method = \"fastest\""),
            ("[balance]\nweight = 0", "balance.weight = 0"),
            ("[ports]\nweb = 70000", "ports.web = 70000: a port"),
            ("[ports]\n\"a b\" = 80", "ports.a b: not a service name"),
            ("[nginx]\nhttp_conf = \"http.conf\"", "nginx.http_conf = \"http.conf\": must be an absolute"),
            ("[nginx]\nreload = []", "nginx.reload: a command"),
            ("tag = \"a b\"", "tag = \"a b\""),
            ("tagz = \"x\"", "unknown field `tagz`"),
            (
                "[[template]]\nname = \"t\"\ntext = \"{% if %}\"\ndestination = \"/etc/x.conf\"",
                "template[0] (t).text: not a valid template",
            ),
            (
                "[[template]]\nname = \"t\"\ntext = \"x\"\ndestination = \"/etc/nginx/conf.d/consulctl-http.conf\"",
                "the built-in nginx output writes it",
            ),
        ];
        for (extra, want) in cases {
            let text = format!("node = \"lb1\"\n{extra}\n");
            let err = Config::parse(&text).unwrap_err();
            assert!(err.contains(want), "{extra:?}: {err}");
        }
    }
}
