//! registrator's conventions: a container's `SERVICE_*` settings (environment and labels,
//! labels win) become the Consul services that stand for it.
//!
//! Pure: a [`Container`] and the registrar's [`Settings`] in, [`DesiredService`]s and
//! [`Problem`]s out. A problem never stops the rest: a bad check interval drops that check,
//! an invalid meta key drops that key, and the service is registered with what is valid.

use std::fmt;

use consul_api::agent::ServiceRegistration;
use sha2::{Digest, Sha256};

use super::checks::{docker_health, setting_checks, Target};
use super::container::{Container, Proto, RunState};
use super::keys::Keys;
use super::meta;
use super::ports::{self, Candidate};

/// Service meta key that marks a registration as this daemon's.
pub const META_MANAGED_BY: &str = consul_api::meta::MANAGED_BY;
/// Its value.
pub const MANAGED_BY: &str = consul_api::meta::REGISTRAR;
/// Service meta key: the node (registrar identity) that registered it.
pub const META_NODE: &str = consul_api::meta::REGISTRAR_NODE;
/// Service meta keys naming the backing container.
pub const META_CONTAINER: &str = consul_api::meta::CONTAINER;
pub const META_CONTAINER_ID: &str = consul_api::meta::CONTAINER_ID;
/// Service meta key: hash of the registration (everything but this key), so that an unchanged
/// registration is not sent again.
pub const META_HASH: &str = consul_api::meta::REGISTRAR_HASH;

/// How a container's address and port are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressMode {
    /// The host's address and the published host port (`-p`/`-P`); ports that are not
    /// published are not registered.
    Published { host_ip: String },
    /// The container's address on a Docker network and the exposed (container) port. With
    /// `network` unset the container must be on exactly one network with an address.
    Internal { network: Option<String> },
}

/// What the registrar is told by its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The registrar's identity, first part of service IDs (`<node>:<container>:<port>`):
    /// the Consul node name.
    pub node: String,
    pub mode: AddressMode,
    /// Only containers with a service name (`SERVICE_NAME` or `SERVICE_<port>_NAME`) are
    /// registered (registrator's `-explicit`).
    pub explicit: bool,
    /// Script checks (`SERVICE_CHECK_SCRIPT`) are registered only when the agent allows them
    /// (`enable_local_script_checks`); otherwise they are a problem and dropped.
    pub script_checks: bool,
    /// Interval of HTTP/TCP/script checks that set none (registrator: `10s`).
    pub default_interval: String,
    /// TTL of the check that mirrors Docker's HEALTHCHECK state (the daemon refreshes it
    /// well within it).
    pub health_ttl: String,
}

/// A setting of one container that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The container's name.
    pub container: String,
    /// The setting: `SERVICE_CHECK_INTERVAL`, `SERVICE_80_CHECK_FOO`, ...
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "container {}: {}: {}",
            self.container, self.key, self.message
        )
    }
}

/// The status a TTL check should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlStatus {
    pub check_id: String,
    /// `passing`, `warning` or `critical`.
    pub status: String,
    pub note: String,
}

/// One service the registrar wants on the agent for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    /// With explicit check IDs and the owner meta (`managed-by`, `registrar-node`,
    /// `container`, `container-id`, `registrar-hash`).
    pub registration: ServiceRegistration,
    /// `Some(reason)`: the service should be in maintenance (the container is paused).
    pub maintenance: Option<String>,
    /// The mirrored Docker HEALTHCHECK state, when the container has one.
    pub ttl: Vec<TtlStatus>,
}

/// The services a container stands for, and what of its settings could not be used.
/// A container that is ignored (`SERVICE_IGNORE`, not running or paused, no usable port, not
/// explicit in explicit mode) gives no service.
pub fn services_for(c: &Container, s: &Settings) -> (Vec<DesiredService>, Vec<Problem>) {
    let maintenance = match &c.state {
        RunState::Running => None,
        RunState::Paused => Some(format!("container {} is paused", c.name)),
        RunState::Other(_) => return (Vec::new(), Vec::new()),
    };
    let (keys, key_problems) = Keys::parse(&c.service_settings());
    if keys.global("IGNORE").is_some() {
        return (Vec::new(), Vec::new());
    }
    let mut problems = Problems::new(c);
    for p in key_problems {
        problems.push(p.key, p.message);
    }
    problems.unknown_ports(c, &keys);

    let Some((address, ports)) = ports::choose(c, s, &keys, &mut problems) else {
        return (Vec::new(), problems.done());
    };
    let ports: Vec<Candidate> = ports
        .into_iter()
        .filter(|p| keys.port_only(p.port.number, "IGNORE").is_none())
        .filter(|p| !s.explicit || keys.get(p.port.number, "NAME").is_some())
        .collect();
    let several = ports.len() > 1;

    let mut services: Vec<DesiredService> = Vec::new();
    for p in &ports {
        let service = service(c, s, &keys, &address, p, several, &mut problems);
        let service = service.with_maintenance(maintenance.clone());
        if services
            .iter()
            .any(|d| d.registration.id == service.registration.id)
        {
            let key = id_key(&keys, p.port.number);
            problems.push(
                key,
                format!(
                    "service ID {} is used by another port of the container: port {} is not \
                     registered",
                    service.registration.id, p.port
                ),
            );
            continue;
        }
        services.push(service);
    }
    services.sort_by(|a, b| a.registration.id.cmp(&b.registration.id));
    (services, problems.done())
}

/// The hash stored in [`META_HASH`]: SHA-256 (hex, first 16 digits) of the registration's
/// JSON with that key absent.
pub fn registration_hash(r: &ServiceRegistration) -> String {
    let mut r = r.clone();
    r.meta.remove(META_HASH);
    // Serializing plain structs and BTreeMaps cannot fail.
    let json = serde_json::to_vec(&r).unwrap_or_default();
    let mut digest = hex::encode(Sha256::digest(&json));
    digest.truncate(16);
    digest
}

impl DesiredService {
    fn with_maintenance(mut self, maintenance: Option<String>) -> Self {
        self.maintenance = maintenance;
        self
    }
}

/// Problems of one container; the same one (the same global setting, for several ports) is
/// kept once.
pub(super) struct Problems {
    container: String,
    list: Vec<Problem>,
}

impl Problems {
    fn new(c: &Container) -> Self {
        Problems {
            container: c.name.clone(),
            list: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let problem = Problem {
            container: self.container.clone(),
            key: key.into(),
            message: message.into(),
        };
        if !self.list.contains(&problem) {
            self.list.push(problem);
        }
    }

    /// `SERVICE_<port>_*` keys naming a port the container does not have.
    fn unknown_ports(&mut self, c: &Container, keys: &Keys) {
        let has = |n: u16| {
            c.exposed.iter().any(|p| p.number == n)
                || c.published.iter().any(|p| p.port.number == n)
        };
        for (port, settings) in &keys.per_port {
            if has(*port) {
                continue;
            }
            for setting in settings.values() {
                self.push(
                    setting.key.clone(),
                    format!("the container has no port {port} (exposed or published): not used"),
                );
            }
        }
    }

    fn done(self) -> Vec<Problem> {
        self.list
    }
}

/// The key a service's ID came from, for problems.
fn id_key(keys: &Keys, port: u16) -> String {
    keys.get(port, "ID")
        .map_or_else(|| "SERVICE_ID".to_string(), |s| s.key.clone())
}

/// The service of one port.
fn service(
    c: &Container,
    s: &Settings,
    keys: &Keys,
    address: &str,
    p: &Candidate,
    several: bool,
    problems: &mut Problems,
) -> DesiredService {
    let number = p.port.number;
    let name = match keys.port_only(number, "NAME") {
        Some(name) => name.value.clone(),
        None => {
            let base = match keys.global("NAME") {
                Some(name) => name.value.clone(),
                None => image_base_name(&c.image).unwrap_or_else(|| c.name.clone()),
            };
            if several {
                format!("{base}-{number}")
            } else {
                base
            }
        }
    };
    let id = match (keys.port_only(number, "ID"), keys.global("ID")) {
        (Some(id), _) => id.value.clone(),
        (None, Some(id)) if several => match p.port.proto {
            Proto::Tcp => format!("{}-{number}", id.value),
            other => format!("{}-{number}-{}", id.value, other.as_str()),
        },
        (None, Some(id)) => id.value.clone(),
        (None, None) => match p.port.proto {
            Proto::Tcp => format!("{}:{}:{number}", s.node, c.name),
            other => format!("{}:{}:{number}:{}", s.node, c.name, other.as_str()),
        },
    };
    let tags = keys
        .get(number, "TAGS")
        .map(|t| split_tags(&t.value))
        .unwrap_or_default();

    let mut meta = meta::user_meta(keys, number, problems);
    meta.insert(META_MANAGED_BY.into(), MANAGED_BY.into());
    meta.insert(META_NODE.into(), s.node.clone());
    meta.insert(META_CONTAINER.into(), c.name.clone());
    meta.insert(META_CONTAINER_ID.into(), c.short_id().into());

    let target = Target {
        service_id: &id,
        service_name: &name,
        container_port: number,
        address,
        port: p.registered_port,
    };
    let (mut checks, check_problems) = setting_checks(keys, &target, s);
    for (key, message) in check_problems {
        problems.push(key, message);
    }
    let mut ttl = Vec::new();
    if let Some((check, status)) = docker_health(c, &id, s) {
        checks.push(check);
        ttl.push(status);
    }

    let mut registration = ServiceRegistration {
        id,
        name,
        tags,
        address: address.to_string(),
        port: Some(p.registered_port),
        meta,
        checks,
        ..ServiceRegistration::default()
    };
    let hash = registration_hash(&registration);
    registration.meta.insert(META_HASH.into(), hash);
    DesiredService {
        registration,
        maintenance: None,
        ttl,
    }
}

/// `SERVICE_TAGS`: comma-separated, trimmed, without empties and duplicates, in order.
fn split_tags(s: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    tags
}

/// The image's name without registry, path, tag and digest (`registry:5000/team/app:1.2` ->
/// `app`); `None` for an image ID (`sha256:...`) or an empty name.
pub fn image_base_name(image: &str) -> Option<String> {
    if image.starts_with("sha256:") {
        return None;
    }
    let without_digest = image.split('@').next().unwrap_or("");
    let last = without_digest.rsplit('/').next().unwrap_or("");
    let base = last.split(':').next().unwrap_or("");
    (!base.is_empty()).then(|| base.to_string())
}
