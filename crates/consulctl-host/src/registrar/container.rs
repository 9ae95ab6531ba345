//! What the registrar needs to know of a container, read from Docker's inspect JSON
//! (`GET /containers/{id}/json`, the same document `docker inspect` prints one of).
//!
//! Reading the JSON (rather than a client library's types) keeps the conventions testable
//! from fixture files captured with `docker inspect`, and makes the daemon indifferent to the
//! Engine API version: every field read here exists from API 1.24 to 1.49.

use std::collections::BTreeMap;
use std::fmt;

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
        &self.id[..self.id.len().min(12)]
    }

    /// Read a container from Docker's inspect JSON. Fails only when the document is not a
    /// container (no `Id`); missing optional parts read as empty.
    pub fn from_inspect(v: &serde_json::Value) -> Result<Container, String> {
        todo!("container::from_inspect {v}")
    }

    /// The registrator-style settings of the container: its environment's `SERVICE_*`
    /// entries overridden by its labels of the same name (labels win).
    pub fn service_settings(&self) -> BTreeMap<String, String> {
        todo!()
    }
}
