//! registrator's conventions: a container's `SERVICE_*` settings (environment and labels,
//! labels win) become the Consul services that stand for it.
//!
//! Pure: a [`Container`] and the registrar's [`Settings`] in, [`DesiredService`]s and
//! [`Problem`]s out. A problem never stops the rest: a bad check interval drops that check,
//! an invalid meta key drops that key, and the service is registered with what is valid.

use std::fmt;

use consul_api::agent::ServiceRegistration;

use super::container::Container;

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
    let _ = (c, s);
    todo!()
}

/// The hash stored in [`META_HASH`]: SHA-256 (hex, first 16 digits) of the registration's
/// JSON with that key absent.
pub fn registration_hash(r: &ServiceRegistration) -> String {
    let _ = r;
    todo!()
}
