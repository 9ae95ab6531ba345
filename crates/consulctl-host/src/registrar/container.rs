//! What the registrar needs to know of a container, read from Docker's inspect JSON
//! (`GET /containers/{id}/json`, the same document `docker inspect` prints one of).
//!
//! Reading the JSON (rather than a client library's types) keeps the conventions testable
//! from fixture files captured with `docker inspect`, and makes the daemon indifferent to the
//! Engine API version: every field read here exists from API 1.24 to 1.49.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// A transport protocol of a container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// A container port: `80/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub number: u16,
    pub proto: Proto,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.proto.as_str())
    }
}

/// A container port published on the host (`-p` / `-P`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    pub port: Port,
    /// The host address Docker bound (`0.0.0.0`, `::`, or a chosen one).
    pub host_ip: String,
    pub host_port: u16,
}

/// The container's run state, as far as registration cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
    /// `created`, `restarting`, `exited`, `dead`, `removing`: not serving.
    Other(String),
}

/// Docker's HEALTHCHECK status of a container that has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

/// A container as the registrar sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The full 64-hex-digit ID.
    pub id: String,
    /// The name without Docker's leading `/`.
    pub name: String,
    /// `Config.Image` as the container was started (`registry:5000/team/app:1.2`).
    pub image: String,
    /// `Config.Env`, `KEY=VALUE` split at the first `=` (a later duplicate wins).
    pub env: BTreeMap<String, String>,
    /// `Config.Labels`.
    pub labels: BTreeMap<String, String>,
    pub state: RunState,
    /// `State.Health.Status`; `None` when the image has no HEALTHCHECK.
    pub health: Option<Health>,
    /// The last health probe's output (for the mirrored check's note), when there is one.
    pub health_output: Option<String>,
    /// `HostConfig.NetworkMode`: `bridge`, `host`, `none`, `container:<id>`, a network name.
    pub network_mode: String,
    /// `NetworkSettings.Networks`: network name -> IPv4 address (empty when it has none, e.g.
    /// a stopped container or an IPv6-only network).
    pub networks: BTreeMap<String, String>,
    /// `Config.ExposedPorts`, sorted.
    pub exposed: Vec<Port>,
    /// `NetworkSettings.Ports` entries that have host bindings, sorted.
    pub published: Vec<Published>,
}

impl Container {
    /// The 12-character short ID Docker prints.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    /// Read a container from Docker's inspect JSON. Fails only when the document is not a
    /// container (no `Id`); missing optional parts read as empty.
    pub fn from_inspect(v: &serde_json::Value) -> Result<Container, String> {
        let id = match v.get("Id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => return Err("not a container: its inspect JSON has no Id".into()),
        };
        let config = &v["Config"];
        let state = &v["State"];
        let name = str_at(v, "Name").trim_start_matches('/').to_string();
        let (health, health_output) = read_health(&state["Health"]);
        Ok(Container {
            id,
            name,
            image: str_at(config, "Image").to_string(),
            env: read_env(&config["Env"]),
            labels: read_labels(&config["Labels"]),
            state: read_state(state),
            health,
            health_output,
            network_mode: str_at(&v["HostConfig"], "NetworkMode").to_string(),
            networks: read_networks(&v["NetworkSettings"]["Networks"]),
            exposed: read_exposed(&config["ExposedPorts"]),
            published: read_published(&v["NetworkSettings"]["Ports"]),
        })
    }

    /// The registrator-style settings of the container: its environment's `SERVICE_*`
    /// entries overridden by its labels of the same name (labels win).
    pub fn service_settings(&self) -> BTreeMap<String, String> {
        let service = |(k, v): (&String, &String)| {
            k.starts_with(SETTING_PREFIX)
                .then(|| (k.clone(), v.clone()))
        };
        let mut settings: BTreeMap<String, String> = self.env.iter().filter_map(service).collect();
        settings.extend(self.labels.iter().filter_map(service));
        settings
    }
}

/// The prefix of registrator's settings.
const SETTING_PREFIX: &str = "SERVICE_";

/// At most this many characters of a health probe's output are kept.
const HEALTH_OUTPUT_MAX: usize = 200;

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn read_env(v: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for entry in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        if !key.is_empty() {
            env.insert(key.to_string(), value.to_string());
        }
    }
    env
}

fn read_labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

fn read_state(state: &Value) -> RunState {
    let flag = |key| state.get(key).and_then(Value::as_bool).unwrap_or(false);
    match str_at(state, "Status") {
        "running" => RunState::Running,
        "paused" => RunState::Paused,
        // Engines older than API 1.21 have no Status: the flags tell.
        "" if flag("Paused") => RunState::Paused,
        "" if flag("Running") && !flag("Restarting") => RunState::Running,
        "" if flag("Restarting") => RunState::Other("restarting".into()),
        "" => RunState::Other("unknown".into()),
        other => RunState::Other(other.to_string()),
    }
}

fn read_health(health: &Value) -> (Option<Health>, Option<String>) {
    let status = match str_at(health, "Status") {
        "starting" => Health::Starting,
        "healthy" => Health::Healthy,
        "unhealthy" => Health::Unhealthy,
        _ => return (None, None),
    };
    let output = health
        .get("Log")
        .and_then(Value::as_array)
        .and_then(|log| log.last())
        .map(|last| str_at(last, "Output").trim())
        .filter(|out| !out.is_empty())
        .map(|out| out.chars().take(HEALTH_OUTPUT_MAX).collect());
    (Some(status), output)
}

fn read_networks(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(name, net)| (name.clone(), str_at(net, "IPAddress").to_string()))
        .collect()
}

/// `80/tcp` (a bare `80` is TCP, as Docker reads it); `None` for anything else.
fn parse_port(s: &str) -> Option<Port> {
    let (number, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        _ => return None,
    };
    let number = parse_port_number(number)?;
    Some(Port { number, proto })
}

/// A port number 1-65535.
fn parse_port_number(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|&n| n != 0)
}

fn read_exposed(v: &Value) -> Vec<Port> {
    let mut ports: Vec<Port> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| parse_port(k))
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

fn read_published(v: &Value) -> Vec<Published> {
    // One binding per (container port, host port): Docker lists `0.0.0.0` and `::` for the
    // same port; IPv4 is preferred.
    let mut by_port: BTreeMap<(Port, u16), String> = BTreeMap::new();
    for (key, bindings) in v.as_object().into_iter().flatten() {
        let Some(port) = parse_port(key) else {
            continue;
        };
        for binding in bindings.as_array().into_iter().flatten() {
            let Some(host_port) = parse_port_number(str_at(binding, "HostPort")) else {
                continue;
            };
            let host_ip = str_at(binding, "HostIp").to_string();
            match by_port.get(&(port, host_port)) {
                Some(kept) if is_ipv4(kept) || !is_ipv4(&host_ip) => {}
                _ => {
                    by_port.insert((port, host_port), host_ip);
                }
            }
        }
    }
    by_port
        .into_iter()
        .map(|((port, host_port), host_ip)| Published {
            port,
            host_ip,
            host_port,
        })
        .collect()
}

/// An IPv4 address (or Docker's empty "all addresses", which it binds on IPv4 too).
fn is_ipv4(ip: &str) -> bool {
    !ip.contains(':')
}
