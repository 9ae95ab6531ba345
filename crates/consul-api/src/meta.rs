//! Service meta keys consulctl's host daemons write on what they register, so that the CLI
//! (`services`, `doctor`) and the daemons agree on who owns a registration and what backs it.
//! Consul's rule for meta keys holds for all: letters, digits, `_`, `-`, not `consul-`.

/// Marks a registration as a daemon's: the value names the daemon.
pub const MANAGED_BY: &str = "managed-by";
/// [`MANAGED_BY`]'s value for the Docker registrar.
pub const REGISTRAR: &str = "consulctl-registrar";
/// The node whose registrar registered it.
pub const REGISTRAR_NODE: &str = "registrar-node";
/// The backing container's name and short ID.
pub const CONTAINER: &str = "container";
pub const CONTAINER_ID: &str = "container-id";
/// Hash of the registration (without this key): unchanged registrations are not sent again.
pub const REGISTRAR_HASH: &str = "registrar-hash";

/// [`MANAGED_BY`]'s value for what an operator registered with `consulctl service register`.
pub const CLI: &str = "consulctl";
/// Node meta of a node without an agent, registered in the catalog directly: the convention
/// consul-esm (the checker for such nodes) looks for.
pub const EXTERNAL_NODE: &str = "external-node";
