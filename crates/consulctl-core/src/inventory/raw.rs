//! Raw structs: the shape of the file. Leaves stay `toml::Value` and are checked by the
//! validators, so that a wrong type is a validation error with a good message.

use serde::Deserialize;

pub type V = Option<toml::Value>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inventory table")]
pub struct Inventory {
    pub cluster: Option<Cluster>,
    pub consul: Option<Consul>,
    pub ssh: Option<Ssh>,
    pub paths: Option<Paths>,
    pub config: V,
    pub dns: Option<Dns>,
    pub prepare: Option<Prepare>,
    pub servers: Option<Role>,
    pub clients: Option<Role>,
    pub hosts: Option<Vec<Host>>,
    pub services: Option<Vec<Service>>,
    pub registrar: Option<Registrar>,
    pub lb: Option<Lb>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([cluster])")]
pub struct Cluster {
    pub name: V,
    pub datacenter: V,
    pub domain: V,
    pub init: V,
    pub bind_cidr: V,
    pub client_addr: V,
    pub log_level: V,
    pub encrypt: V,
    pub tls: V,
    pub acl: V,
    pub retry_join_wan: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([consul])")]
pub struct Consul {
    pub version: V,
    pub source: Option<Source>,
    pub user: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"a table with one of "file", "url" or "package""#
)]
pub struct Source {
    pub file: V,
    pub url: V,
    pub sha256: V,
    pub package: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of SSH settings")]
pub struct Ssh {
    pub user: V,
    pub port: V,
    pub identity_file: V,
    pub known_hosts: V,
    pub config_file: V,
    pub jump: V,
    pub host_keys: V,
    pub connect_timeout: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of remote paths")]
pub struct Paths {
    pub binary: V,
    pub config_dir: V,
    pub data_dir: V,
    pub log_dir: V,
    pub systemd_unit: V,
    pub supervisor_program: V,
}

/// `[servers]` / `[clients]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of role-wide settings")]
pub struct Role {
    pub init: V,
    pub log_level: V,
    pub client_addr: V,
    pub bind_cidr: V,
    pub ssh: Option<Ssh>,
    pub paths: Option<Paths>,
    pub config: V,
    pub dns: Option<Dns>,
    pub prepare: Option<Prepare>,
    pub registrar: Option<Registrar>,
    pub lb: Option<Lb>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[hosts]])")]
pub struct Host {
    pub name: V,
    pub address: V,
    pub role: V,
    pub tags: V,
    pub bind_addr: V,
    pub init: V,
    pub log_level: V,
    pub client_addr: V,
    pub ssh: Option<Ssh>,
    pub paths: Option<Paths>,
    pub config: V,
    pub dns: Option<Dns>,
    pub prepare: Option<Prepare>,
    pub registrar: Option<Registrar>,
    pub lb: Option<Lb>,
}

/// `[dns]`, `[servers.dns]`/`[clients.dns]`, a host's `dns`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of DNS settings")]
pub struct Dns {
    pub nameservers: V,
    pub search: V,
    pub options: V,
    pub forward: V,
    pub resolv_conf: V,
}

/// `[prepare]`, `[servers.prepare]`/`[clients.prepare]`, a host's `prepare`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of host preparation settings"
)]
pub struct Prepare {
    pub disable_services: V,
    pub packages: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[services]])")]
pub struct Service {
    pub name: V,
    pub id: V,
    pub on: V,
    pub port: V,
    pub address: V,
    pub tags: V,
    pub meta: V,
    pub checks: Option<Vec<Check>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[services.checks]])")]
pub struct Check {
    pub name: V,
    pub tcp: V,
    pub http: V,
    pub args: V,
    pub interval: V,
    pub timeout: V,
    pub deregister_critical_service_after: V,
}

/// `[registrar]`, and `registrar = { ... }` in a role table or on a host (`on` and `binary`
/// only in `[registrar]`, `enabled` only in the others: checked by the validator).
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of Docker registrar settings"
)]
pub struct Registrar {
    pub on: V,
    pub mode: V,
    pub host_ip: V,
    pub network: V,
    pub networks: V,
    pub explicit: V,
    pub resync: V,
    pub drain: V,
    pub docker_socket: V,
    pub binary: V,
    pub enabled: V,
}

/// `[lb]`, and `lb = { ... }` in a role table or on a host (`on` and `binary` only in `[lb]`,
/// `enabled` only in the others: checked by the validator).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of LB sync daemon settings")]
pub struct Lb {
    pub on: V,
    pub binary: V,
    pub enabled: V,
    pub kind: V,
    pub tag: V,
    pub status_port: V,
    pub min_wait: V,
    pub max_wait: V,
    pub publish: V,
    pub balance: Option<LbBalance>,
    pub ports: V,
    pub nginx: Option<LbNginx>,
    pub haproxy: Option<LbHaproxy>,
    pub templates: Option<Vec<LbTemplate>>,
}

/// `[lb.balance]`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of balancing settings ([lb.balance])"
)]
pub struct LbBalance {
    pub method: V,
    pub max_fails: V,
    pub fail_timeout: V,
    pub weight: V,
    pub keepalive: V,
    pub maxconn: V,
    pub retries: V,
}

/// `[lb.nginx]`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of nginx settings ([lb.nginx])"
)]
pub struct LbNginx {
    pub http_conf: V,
    pub stream_conf: V,
    pub stream_block: V,
    pub test: V,
    pub reload: V,
}

/// `[lb.haproxy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of HAProxy settings ([lb.haproxy])"
)]
pub struct LbHaproxy {
    pub config: V,
    pub test: V,
    pub reload: V,
}

/// `[[lb.templates]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[lb.templates]])")]
pub struct LbTemplate {
    pub name: V,
    pub source: V,
    pub destination: V,
    pub validate: V,
    pub reload: V,
}
