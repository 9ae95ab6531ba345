//! Version-aware agent config, systemd unit and supervisord program for one host.
//!
//! The agent config is built as an ordered JSON object in Rust ([`agent_config`]), deep-merged
//! with the host's `extra_config` (extra wins), checked against what the target Consul version
//! accepts ([`Features`]), then written as HCL by the `consul.hcl.tera` template through the
//! `hcl` filter (see [`crate::templates::hcl_body`]). The rendered text is parsed again with
//! hcl-rs; a template override that produces broken HCL is an error, not a file on a host.
//!
//! Version rules (see docs/DESIGN.md), and what happens to the user's `extra_config`:
//!
//! | key | < 1.9 | >= 1.9 |
//! |---|---|---|
//! | UI on servers | `ui = true` | `ui_config { enabled = true }` |
//! | extra `ui_config` | error (1.8 rejects the key) | merged |
//! | extra `ui = B` | merged | translated to `ui_config { enabled = B }` (same meaning, `ui` is deprecated); error if `ui_config.enabled` says otherwise |
//! | extra `raft_protocol` | merged | error: removed, only protocol 3 exists |
//!
//! Keys newer than the target version are errors too, rather than a failed `consul validate`
//! on the host: `tls` (1.12), `ports.grpc_tls` (1.14), `acl.tokens.initial_management` (1.11).
//!
//! `tls = "auto"` ([`auto_tls_config`], [`tls_files`]) uses [`tls_config`] and [`grpc_port`]
//! for the per-version keys; ACLs are not configured from the inventory yet ([`acl_config`]
//! holds their mapping so that work plugs in with [`deep_merge`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::desired::{DesiredFile, FileKind};
use crate::model::{Cluster, Host, Init, Role, Secret};
use crate::templates::{self, Templates};
use crate::version::Version;

pub struct HostContext<'a> {
    pub cluster: &'a Cluster,
    pub host: &'a Host,
    /// The resolved bind address (fixed, or picked from the CIDR using facts).
    pub bind_addr: IpAddr,
    /// Bind addresses of all servers in the inventory (for `retry_join`), inventory order.
    pub retry_join: Vec<IpAddr>,
    /// Resolved supervisord program file path (only used when host.init is supervisord).
    pub supervisor_program: PathBuf,
}

/// File name of the agent config inside `paths.config_dir`.
pub const AGENT_CONFIG_FILE: &str = "consul.hcl";
/// The user the agent runs as (systemd `User=`/`Group=`, supervisord `user=`).
/// Who owns the agent's config files on a host: its user (and the group of that name), or
/// nobody in particular (root's files, unchecked) when the agent runs as root.
pub fn agent_owner(host: &Host) -> Option<String> {
    (host.user != "root").then(|| host.user.clone())
}
/// `retry_interval`: Consul's default of 30s makes an agent that starts before the servers
/// wait 30s between attempts. 5s costs nothing.
pub const RETRY_INTERVAL: &str = "5s";

/// What the agent config of a Consul version may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Features {
    /// `ui_config { enabled = ... }` (1.9+); before that only `ui = true`.
    pub ui_config: bool,
    /// `tls { defaults {} internal_rpc {} https {} grpc {} }` (1.12+); before that top-level
    /// `verify_*`, `ca_file`, `cert_file`, `key_file`.
    pub tls_block: bool,
    /// `ports.grpc_tls` (1.14+); before that `ports.grpc` served TLS when TLS was configured.
    pub grpc_tls: bool,
    /// `acl.tokens.initial_management` (1.11+); before that `acl.tokens.master`.
    pub acl_initial_management: bool,
    /// `raft_protocol` may be set (before 1.9; from 1.9 only protocol 3 exists).
    pub raft_protocol_allowed: bool,
}

impl Features {
    pub fn for_version(v: &Version) -> Features {
        Features {
            ui_config: v.at_least(1, 9),
            tls_block: v.at_least(1, 12),
            grpc_tls: v.at_least(1, 14),
            acl_initial_management: v.at_least(1, 11),
            raft_protocol_allowed: !v.at_least(1, 9),
        }
    }
}

/// The files consulctl manages on this host: the agent config, then the systemd unit or the
/// supervisord program (by `host.init`).
pub fn render_host(t: &Templates, ctx: &HostContext) -> anyhow::Result<Vec<DesiredFile>> {
    let host = ctx.host;
    let version = ctx.cluster.consul.version;
    let config = agent_config(ctx)?;
    let config_path = host.paths.config_dir.join(AGENT_CONFIG_FILE);

    let mut c = tera::Context::new();
    c.insert("config", &config);
    c.insert("version", &version.to_string());
    c.insert("role", host.role.as_str());
    let text = t
        .render(templates::AGENT_CONFIG, &c)
        .with_context(|| format!("host {}: agent config", host.name))?;
    if let Err(e) = hcl::parse(&text) {
        bail!(
            "host {}: the rendered {} is not valid HCL (template {}): {e}",
            host.name,
            config_path.display(),
            t.describe(templates::AGENT_CONFIG)
        );
    }
    let mut files = vec![DesiredFile {
        path: config_path.clone(),
        content: text,
        mode: 0o640,
        kind: FileKind::AgentConfig,
        secret: holds_secrets(&config),
        owner: agent_owner(host),
    }];

    let binary = unit_safe_path(host, "paths.binary", &host.paths.binary)?;
    let config_dir = unit_safe_path(host, "paths.config_dir", &host.paths.config_dir)?;
    let mut c = tera::Context::new();
    c.insert("binary", binary);
    c.insert("config_dir", config_dir);
    c.insert("user", &host.user);
    c.insert("group", &host.user);
    match host.init {
        Init::Systemd => {
            c.insert(
                "config_file",
                unit_safe_path(host, "paths.config_dir", &config_path)?,
            );
            let text = t
                .render(templates::SYSTEMD_UNIT, &c)
                .with_context(|| format!("host {}: systemd unit", host.name))?;
            files.push(DesiredFile {
                path: host.paths.systemd_unit.clone(),
                content: text,
                mode: 0o644,
                kind: FileKind::SystemdUnit,
                secret: false,
                owner: None,
            });
        }
        Init::Supervisord => {
            c.insert(
                "log_dir",
                unit_safe_path(host, "paths.log_dir", &host.paths.log_dir)?,
            );
            let text = t
                .render(templates::SUPERVISOR_PROGRAM, &c)
                .with_context(|| format!("host {}: supervisord program", host.name))?;
            files.push(DesiredFile {
                path: ctx.supervisor_program.clone(),
                content: text,
                mode: 0o644,
                kind: FileKind::SupervisorProgram,
                secret: false,
                owner: None,
            });
        }
    }
    if ctx.cluster.tls_auto {
        files.extend(tls_files(ctx)?);
    }
    Ok(files)
}

/// The agent config of one host as an ordered object: generated keys first (in a fixed order),
/// then `extra_config` merged over them by [`deep_merge`] after the version checks and the
/// `ui` translation described in the module docs.
pub fn agent_config(ctx: &HostContext) -> anyhow::Result<Map<String, Value>> {
    let cluster = ctx.cluster;
    let host = ctx.host;
    let version = cluster.consul.version;
    let features = Features::for_version(&version);

    let mut c = Map::new();
    c.insert("datacenter".into(), json!(cluster.datacenter));
    c.insert("domain".into(), json!(cluster.domain));
    c.insert("node_name".into(), json!(host.name));
    c.insert(
        "data_dir".into(),
        json!(path_str(host, "paths.data_dir", &host.paths.data_dir)?),
    );
    c.insert("bind_addr".into(), json!(ctx.bind_addr.to_string()));
    c.insert("advertise_addr".into(), json!(ctx.bind_addr.to_string()));
    c.insert("client_addr".into(), json!(host.client_addr));
    c.insert("log_level".into(), json!(host.log_level));
    match host.role {
        Role::Server => {
            c.insert("server".into(), json!(true));
            c.insert("bootstrap_expect".into(), json!(cluster.servers().count()));
            // Other datacenters: servers join them over WAN (8302) and retry until they answer.
            if !cluster.retry_join_wan.is_empty() {
                c.insert("retry_join_wan".into(), json!(cluster.retry_join_wan));
            }
            if features.ui_config {
                c.insert("ui_config".into(), json!({ "enabled": true }));
            } else {
                c.insert("ui".into(), json!(true));
            }
        }
        Role::Client => {
            c.insert("server".into(), json!(false));
        }
    }
    if let Some(key) = &cluster.encrypt {
        c.insert("encrypt".into(), json!(key.expose()));
    }
    // Servers are in the list too, themselves included: with `Type=notify` Consul only says
    // READY once a join succeeded, and joining itself lets the first server start alone.
    let join: Vec<String> = ctx.retry_join.iter().map(|ip| ip.to_string()).collect();
    c.insert("retry_join".into(), json!(join));
    c.insert("retry_interval".into(), json!(RETRY_INTERVAL));

    // Script checks (the seed's `check_udp.sh`) only run with local script checks enabled.
    if host.services.iter().any(|s| s.has_script_check()) {
        c.insert("enable_local_script_checks".into(), json!(true));
    }

    if cluster.tls_auto {
        deep_merge(&mut c, &auto_tls_config(&features, host));
    }
    if cluster.acl {
        // Default deny; the node's own token (created by consulctl after the bootstrap, see
        // `acl.rs`) is the agent token and the default one (DNS and local reads of the
        // catalog; no KV, no writes beyond this node and its declared services).
        let token = cluster
            .acl_tokens
            .agents
            .get(&host.name)
            .map(|t| t.secret.clone());
        if token.is_none() {
            anyhow::bail!("host {}: no ACL agent token in the secrets file", host.name);
        }
        deep_merge(
            &mut c,
            &acl_config(
                &features,
                &AclSettings {
                    enabled: true,
                    default_policy: "deny".into(),
                    enable_token_persistence: false,
                    initial_management_token: None,
                    agent_token: token.clone(),
                    default_token: token,
                },
            ),
        );
    }

    let extra = check_extra(host, &version, &features, &host.extra_config)?;
    deep_merge(&mut c, &extra);
    Ok(c)
}

/// Directory of the TLS files on a host (`tls = "auto"`).
pub fn tls_dir(host: &Host) -> PathBuf {
    host.paths.config_dir.join("tls")
}

/// The agent config of `tls = "auto"`: RPC verified both ways with `verify_server_hostname`
/// on servers, HTTPS on 8501 without client certificates, clients without a certificate of
/// their own (`auto_encrypt { tls = true }`, signed by the servers' Connect CA, which is why
/// servers get `connect { enabled = true }` and `auto_encrypt { allow_tls = true }`).
/// From 1.14 the gRPC TLS port (8503) too. The HTTP port (8500) stays as it is.
pub fn auto_tls_config(f: &Features, host: &Host) -> Map<String, Value> {
    let dir = tls_dir(host);
    let server = host.role == Role::Server;
    let settings = TlsSettings {
        ca_file: dir.join(TLS_CA_FILE),
        cert_file: dir.join(TLS_CERT_FILE),
        key_file: dir.join(TLS_KEY_FILE),
        verify_incoming_rpc: server,
        verify_incoming_https: false,
        verify_outgoing: true,
        verify_server_hostname: true,
    };
    let mut out = tls_config(f, &settings);
    if !server {
        // Clients have no certificate files: auto_encrypt gives them theirs.
        let holder = match out.get_mut("tls").and_then(|t| t.get_mut("defaults")) {
            Some(Value::Object(d)) => d,
            _ => &mut out,
        };
        holder.remove("cert_file");
        holder.remove("key_file");
    }
    let mut ports = json!({ "https": HTTPS_PORT });
    if f.grpc_tls {
        deep_merge(
            ports.as_object_mut().expect("object"),
            grpc_port(f, GRPC_TLS_PORT, true)["ports"]
                .as_object()
                .expect("object"),
        );
    }
    out.insert("ports".into(), ports);
    if server {
        out.insert("connect".into(), json!({ "enabled": true }));
        out.insert("auto_encrypt".into(), json!({ "allow_tls": true }));
    } else {
        out.insert("auto_encrypt".into(), json!({ "tls": true }));
    }
    out
}

/// File names inside [`tls_dir`].
pub const TLS_CA_FILE: &str = "ca.pem";
pub const TLS_CERT_FILE: &str = "server.pem";
pub const TLS_KEY_FILE: &str = "server-key.pem";
/// The HTTPS API port of `tls = "auto"`.
pub const HTTPS_PORT: u16 = 8501;
/// The gRPC TLS port from 1.14 (`ports.grpc_tls`).
pub const GRPC_TLS_PORT: u16 = 8503;

/// The TLS files of `tls = "auto"` for one host: the CA everywhere, the server certificate
/// and key (a secret: never diffed or logged) only on servers.
fn tls_files(ctx: &HostContext) -> anyhow::Result<Vec<DesiredFile>> {
    let host = ctx.host;
    let material = crate::pki::for_host(ctx.cluster, host, ctx.bind_addr)
        .with_context(|| format!("host {}: TLS certificates", host.name))?;
    let dir = tls_dir(host);
    let mut files = vec![DesiredFile {
        path: dir.join(TLS_CA_FILE),
        content: material.ca_pem,
        mode: 0o644,
        kind: FileKind::TlsFile,
        secret: false,
        owner: agent_owner(host),
    }];
    if let Some(server) = material.server {
        files.push(DesiredFile {
            path: dir.join(TLS_CERT_FILE),
            content: server.cert_pem,
            mode: 0o644,
            kind: FileKind::TlsFile,
            secret: false,
            owner: agent_owner(host),
        });
        files.push(DesiredFile {
            path: dir.join(TLS_KEY_FILE),
            content: server.key_pem.expose().to_string(),
            mode: 0o640,
            kind: FileKind::TlsFile,
            secret: true,
            owner: agent_owner(host),
        });
    }
    Ok(files)
}

/// Merges `overlay` into `base`: overlay values win; where both hold an object they merge key
/// by key (recursively); anything else (lists included) is replaced. New keys are appended in
/// the overlay's order, replaced ones keep their place.
pub fn deep_merge(base: &mut Map<String, Value>, overlay: &Map<String, Value>) {
    for (key, value) in overlay {
        match (base.get_mut(key), value) {
            (Some(Value::Object(b)), Value::Object(o)) => deep_merge(b, o),
            (Some(slot), _) => *slot = value.clone(),
            (None, _) => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Checks the user's extra config against the target version and translates `ui` for 1.9+.
fn check_extra(
    host: &Host,
    version: &Version,
    features: &Features,
    extra: &Map<String, Value>,
) -> anyhow::Result<Map<String, Value>> {
    let err = |key: &str, why: String| {
        anyhow!(
            "host {}: extra config key `{key}` {why} (cluster Consul version {version})",
            host.name
        )
    };
    if extra.contains_key("raft_protocol") && !features.raft_protocol_allowed {
        return Err(err(
            "raft_protocol",
            "was removed in Consul 1.9, which only speaks raft protocol 3; remove it".into(),
        ));
    }
    if extra.contains_key("ui_config") && !features.ui_config {
        return Err(err(
            "ui_config",
            "needs Consul 1.9 or later (1.8 rejects it: \"invalid config key ui_config\"); \
             use `ui = true` instead"
                .into(),
        ));
    }
    if extra.contains_key("tls") && !features.tls_block {
        return Err(err(
            "tls",
            "needs Consul 1.12 or later; use the top-level `verify_incoming`, \
             `verify_outgoing`, `verify_server_hostname`, `ca_file`, `cert_file`, `key_file`"
                .into(),
        ));
    }
    if get_path(extra, &["ports", "grpc_tls"]).is_some() && !features.grpc_tls {
        return Err(err(
            "ports.grpc_tls",
            "needs Consul 1.14 or later; use `ports.grpc`".into(),
        ));
    }
    if get_path(extra, &["acl", "tokens", "initial_management"]).is_some()
        && !features.acl_initial_management
    {
        return Err(err(
            "acl.tokens.initial_management",
            "needs Consul 1.11 or later; use `acl.tokens.master`".into(),
        ));
    }

    if !(features.ui_config && extra.contains_key("ui")) {
        return Ok(extra.clone());
    }
    // 1.9+: `ui = B` means `ui_config { enabled = B }`; rewrite it in place.
    let enabled = match &extra["ui"] {
        Value::Bool(b) => *b,
        other => return Err(err("ui", format!("must be true or false, not {other}"))),
    };
    if let Some(given) = get_path(extra, &["ui_config", "enabled"]) {
        if given != &Value::Bool(enabled) {
            return Err(err(
                "ui",
                format!(
                    "= {enabled} contradicts `ui_config.enabled = {given}`; `ui` is deprecated \
                     since 1.9: keep only `ui_config.enabled`"
                ),
            ));
        }
    }
    let mut out = Map::new();
    for (key, value) in extra {
        match key.as_str() {
            "ui" => {
                let mut ui_config = json!({ "enabled": enabled });
                if let Some(Value::Object(given)) = extra.get("ui_config") {
                    deep_merge(ui_config.as_object_mut().expect("object"), given);
                }
                out.insert("ui_config".into(), ui_config);
            }
            "ui_config" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(out)
}

fn get_path<'a>(map: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = map.get(*first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        get_path(v.as_object()?, rest)
    }
}

/// Does this config hold a secret (gossip key, ACL tokens)? Then the file is `secret`.
fn holds_secrets(config: &Map<String, Value>) -> bool {
    fn tokens(map: &Map<String, Value>) -> bool {
        map.iter().any(|(k, v)| {
            k == "token"
                || k.ends_with("_token")
                || k == "tokens"
                || matches!(v, Value::Object(m) if tokens(m))
        })
    }
    config.contains_key("encrypt") || tokens(config)
}

fn path_str<'a>(host: &Host, key: &str, path: &'a Path) -> anyhow::Result<&'a str> {
    path.to_str().ok_or_else(|| {
        anyhow!(
            "host {}: {key} {} is not valid UTF-8",
            host.name,
            path.display()
        )
    })
}

/// A path written into a systemd unit or supervisord program, where spaces, quotes, `%`
/// (specifiers, interpolation) and `$` (variables) would change its meaning.
fn unit_safe_path<'a>(host: &Host, key: &str, path: &'a Path) -> anyhow::Result<&'a str> {
    let s = path_str(host, key, path)?;
    let ok = s.starts_with('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@:,=".contains(c));
    if !ok {
        bail!(
            "host {}: {key} {s:?} cannot be written into the systemd unit or supervisord \
             program: it must be an absolute path of letters, digits and / . _ - + @ : , =",
            host.name
        );
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// TLS / ACL / gRPC mappings (not configured from the inventory yet).

/// Agent TLS, independent of the Consul version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Require client certificates on the server RPC port (8300).
    pub verify_incoming_rpc: bool,
    /// Require client certificates on the HTTPS API.
    pub verify_incoming_https: bool,
    pub verify_outgoing: bool,
    pub verify_server_hostname: bool,
}

/// The config keys for `tls`, to [`deep_merge`] into the agent config:
/// from 1.12 a `tls { defaults {} internal_rpc {} https {} }` block, before that the
/// top-level keys (`verify_incoming` when RPC and HTTPS agree, else `verify_incoming_rpc` and
/// `verify_incoming_https`).
pub fn tls_config(f: &Features, tls: &TlsSettings) -> Map<String, Value> {
    let file = |p: &Path| json!(p.to_string_lossy());
    let mut out = Map::new();
    if f.tls_block {
        out.insert(
            "tls".into(),
            json!({
                "defaults": {
                    "ca_file": file(&tls.ca_file),
                    "cert_file": file(&tls.cert_file),
                    "key_file": file(&tls.key_file),
                    "verify_outgoing": tls.verify_outgoing,
                },
                "internal_rpc": {
                    "verify_incoming": tls.verify_incoming_rpc,
                    "verify_server_hostname": tls.verify_server_hostname,
                },
                "https": {
                    "verify_incoming": tls.verify_incoming_https,
                },
            }),
        );
    } else {
        out.insert("ca_file".into(), file(&tls.ca_file));
        out.insert("cert_file".into(), file(&tls.cert_file));
        out.insert("key_file".into(), file(&tls.key_file));
        if tls.verify_incoming_rpc == tls.verify_incoming_https {
            out.insert("verify_incoming".into(), json!(tls.verify_incoming_rpc));
        } else {
            out.insert("verify_incoming_rpc".into(), json!(tls.verify_incoming_rpc));
            out.insert(
                "verify_incoming_https".into(),
                json!(tls.verify_incoming_https),
            );
        }
        out.insert("verify_outgoing".into(), json!(tls.verify_outgoing));
        out.insert(
            "verify_server_hostname".into(),
            json!(tls.verify_server_hostname),
        );
    }
    out
}

/// Agent ACLs, independent of the Consul version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclSettings {
    pub enabled: bool,
    /// `allow` or `deny`.
    pub default_policy: String,
    pub enable_token_persistence: bool,
    /// The bootstrap management token (servers only).
    pub initial_management_token: Option<Secret>,
    /// The agent's own token.
    pub agent_token: Option<Secret>,
    /// The token of requests that carry none (DNS, local API calls without a token).
    pub default_token: Option<Secret>,
}

/// The `acl { ... }` block: the management token is `tokens.initial_management` from 1.11,
/// `tokens.master` before.
pub fn acl_config(f: &Features, acl: &AclSettings) -> Map<String, Value> {
    let mut tokens = Map::new();
    if let Some(t) = &acl.initial_management_token {
        let key = if f.acl_initial_management {
            "initial_management"
        } else {
            "master"
        };
        tokens.insert(key.into(), json!(t.expose()));
    }
    if let Some(t) = &acl.agent_token {
        tokens.insert("agent".into(), json!(t.expose()));
    }
    if let Some(t) = &acl.default_token {
        tokens.insert("default".into(), json!(t.expose()));
    }
    let mut block = Map::new();
    block.insert("enabled".into(), json!(acl.enabled));
    block.insert("default_policy".into(), json!(acl.default_policy));
    block.insert(
        "enable_token_persistence".into(),
        json!(acl.enable_token_persistence),
    );
    if !tokens.is_empty() {
        block.insert("tokens".into(), Value::Object(tokens));
    }
    let mut out = Map::new();
    out.insert("acl".into(), Value::Object(block));
    out
}

/// The gRPC port (`ports { ... }`): with TLS it is `grpc_tls` from 1.14; before 1.14, and
/// without TLS, `grpc` (which served TLS when TLS was configured).
pub fn grpc_port(f: &Features, port: u16, tls: bool) -> Map<String, Value> {
    let key = if tls && f.grpc_tls {
        "grpc_tls"
    } else {
        "grpc"
    };
    let mut ports = Map::new();
    ports.insert(key.into(), json!(port));
    let mut out = Map::new();
    out.insert("ports".into(), Value::Object(ports));
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{BindAddr, ConsulSpec, InstallSource, PackageManager, Paths, SshTarget};

    const VERSIONS: &[&str] = &["1.8.7", "1.9.17", "1.12.9", "1.14.11", "1.21.0"];
    const TEST_KEY: &str = "Y29uc3VsY3RsLWdvbGRlbi10ZXN0LWtleS0zMmJ5dGU=";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 168, 30, last))
    }

    fn host(name: &str, last: u8, role: Role, init: Init) -> Host {
        let (paths, extra) = match role {
            Role::Server => (
                Paths::vendor_default(),
                obj(json!({
                    "leave_on_terminate": true,
                    "rejoin_after_leave": true,
                    "enable_local_script_checks": true,
                    "dns_config": { "enable_truncate": true, "only_passing": true },
                    "performance": { "raft_multiplier": 1 },
                })),
            ),
            // The seed's supervisord layout.
            Role::Client => (
                Paths {
                    binary: "/usr/local/consul/consul".into(),
                    config_dir: "/usr/local/consul/conf".into(),
                    data_dir: "/disk/ssd1/consul/data".into(),
                    log_dir: "/disk/ssd1/logs/supervisor".into(),
                    systemd_unit: "/etc/systemd/system/consul.service".into(),
                    supervisor_program: None,
                },
                obj(json!({
                    "enable_local_script_checks": true,
                    "dns_config": { "enable_truncate": true, "only_passing": true },
                    "ports": { "dns": -1 },
                })),
            ),
        };
        Host {
            name: name.into(),
            address: ip(last).to_string(),
            role,
            tags: vec![],
            init,
            bind: BindAddr::Fixed(ip(last)),
            client_addr: "127.0.0.1".into(),
            log_level: "info".into(),
            user: "consul".into(),
            api_tls: false,
            ssh: SshTarget::default(),
            paths,
            extra_config: extra,
            dns: None,
            services: vec![],
            prepare: Default::default(),
            registrar: None,
            lb: None,
        }
    }

    /// Three servers (systemd) and two clients (supervisord, systemd), seed-like.
    fn cluster(version: &str) -> Cluster {
        Cluster {
            inventory_path: "/srv/inventory/upyun.toml".into(),
            name: "upyun".into(),
            datacenter: "upyun".into(),
            domain: "consul".into(),
            consul: ConsulSpec {
                version: version.parse().unwrap(),
                source: InstallSource::Package {
                    manager: PackageManager::Auto,
                },
            },
            encrypt: Some(Secret::new(TEST_KEY)),
            encrypt_auto: false,
            tls_auto: false,
            acl: false,
            acl_tokens: Default::default(),
            registrar_binary: None,
            retry_join_wan: vec![],
            hosts: vec![
                host("consul-server-1", 11, Role::Server, Init::Systemd),
                host("consul-server-2", 12, Role::Server, Init::Systemd),
                host("consul-server-3", 13, Role::Server, Init::Systemd),
                host("app-1", 21, Role::Client, Init::Supervisord),
                host("app-2", 22, Role::Client, Init::Systemd),
            ],
            warnings: vec![],
        }
    }

    fn ctx<'a>(cluster: &'a Cluster, name: &str) -> HostContext<'a> {
        let host = cluster.host(name).unwrap();
        let BindAddr::Fixed(bind_addr) = host.bind else {
            panic!("test hosts have fixed addresses")
        };
        HostContext {
            cluster,
            host,
            bind_addr,
            retry_join: cluster
                .servers()
                .map(|h| match h.bind {
                    BindAddr::Fixed(a) => a,
                    BindAddr::Cidr(_) => unreachable!(),
                })
                .collect(),
            supervisor_program: "/etc/supervisord.d/consul.ini".into(),
        }
    }

    fn render(cluster: &Cluster, name: &str) -> anyhow::Result<Vec<DesiredFile>> {
        render_host(&Templates::load(None).unwrap(), &ctx(cluster, name))
    }

    fn show(files: &[DesiredFile]) -> String {
        let mut out = String::new();
        for f in files {
            out.push_str(&format!(
                "==> {} ({:?}, mode {:o}, secret: {})\n{}\n",
                f.path.display(),
                f.kind,
                f.mode,
                f.secret,
                f.content
            ));
        }
        out
    }

    #[test]
    fn golden_per_version() {
        for v in VERSIONS {
            let c = cluster(v);
            for (name, label) in [
                ("consul-server-1", "server_systemd"),
                ("app-1", "client_supervisord"),
            ] {
                let files = render(&c, name).unwrap();
                insta::assert_snapshot!(format!("{label}_{v}"), show(&files));
            }
        }
        // The other two combinations once.
        let mut c = cluster("1.8.7");
        c.hosts[0].init = Init::Supervisord;
        insta::assert_snapshot!(
            "server_supervisord_1.8.7",
            show(&render(&c, "consul-server-1").unwrap())
        );
        insta::assert_snapshot!("client_systemd_1.8.7", show(&render(&c, "app-2").unwrap()));
    }

    #[test]
    fn rendered_hcl_reads_back_as_the_built_config() {
        for v in VERSIONS {
            let c = cluster(v);
            for h in &c.hosts {
                let ctx = ctx(&c, &h.name);
                let files = render_host(&Templates::load(None).unwrap(), &ctx).unwrap();
                let back: Value = hcl::from_str(&files[0].content).unwrap();
                assert_eq!(
                    back,
                    Value::Object(agent_config(&ctx).unwrap()),
                    "{v} {}",
                    h.name
                );
            }
        }
    }

    #[test]
    fn features_per_version() {
        let f = |v: &str| Features::for_version(&v.parse().unwrap());
        let f18 = f("1.8.7");
        assert!(!f18.ui_config && !f18.tls_block && !f18.grpc_tls);
        assert!(!f18.acl_initial_management && f18.raft_protocol_allowed);
        let f19 = f("1.9.0");
        assert!(f19.ui_config && !f19.raft_protocol_allowed && !f19.acl_initial_management);
        assert!(f("1.11.0").acl_initial_management && !f("1.11.0").tls_block);
        assert!(f("1.12.0").tls_block && !f("1.12.0").grpc_tls);
        let f121 = f("1.21.0");
        assert!(f121.ui_config && f121.tls_block && f121.grpc_tls && f121.acl_initial_management);
        assert!(!f121.raft_protocol_allowed);
    }

    #[test]
    fn extra_config_wins_and_tables_merge_deeply() {
        let mut base = obj(json!({
            "a": 1,
            "ports": { "http": 8500, "dns": 8600 },
            "list": [1, 2],
            "keep": "x",
        }));
        deep_merge(
            &mut base,
            &obj(json!({
                "ports": { "dns": -1, "grpc": 8502 },
                "list": [3],
                "a": { "nested": true },
                "new": "y",
            })),
        );
        assert_eq!(
            serde_json::to_string(&base).unwrap(),
            r#"{"a":{"nested":true},"ports":{"http":8500,"dns":-1,"grpc":8502},"list":[3],"keep":"x","new":"y"}"#
        );

        // Extra overrides generated keys in place and merges into generated blocks.
        let mut c = cluster("1.21.0");
        c.hosts[0].extra_config = obj(json!({
            "retry_interval": "15s",
            "ui_config": { "content_path": "/consul-ui/" },
            "log_level": "debug",
        }));
        let config = agent_config(&ctx(&c, "consul-server-1")).unwrap();
        assert_eq!(config["retry_interval"], "15s");
        assert_eq!(config["log_level"], "debug");
        assert_eq!(
            config["ui_config"],
            json!({ "enabled": true, "content_path": "/consul-ui/" })
        );
        let keys: Vec<&str> = config.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.last(), Some(&"retry_interval"));
    }

    #[test]
    fn retry_join_lists_every_server_bind_address_in_order() {
        let c = cluster("1.8.7");
        for name in ["consul-server-2", "app-1"] {
            let config = agent_config(&ctx(&c, name)).unwrap();
            assert_eq!(
                config["retry_join"],
                json!(["192.168.30.11", "192.168.30.12", "192.168.30.13"])
            );
            assert_eq!(config["retry_interval"], "5s");
        }
    }

    #[test]
    fn bootstrap_expect_counts_the_servers() {
        let mut c = cluster("1.12.9");
        let server = |c: &Cluster| agent_config(&ctx(c, "consul-server-1")).unwrap();
        assert_eq!(server(&c)["bootstrap_expect"], 3);
        assert_eq!(server(&c)["server"], true);
        let client = agent_config(&ctx(&c, "app-1")).unwrap();
        assert_eq!(client["server"], false);
        assert!(!client.contains_key("bootstrap_expect"));
        assert!(!client.contains_key("ui_config") && !client.contains_key("ui"));
        c.hosts
            .push(host("consul-server-4", 14, Role::Server, Init::Systemd));
        c.hosts
            .push(host("consul-server-5", 15, Role::Server, Init::Systemd));
        assert_eq!(server(&c)["bootstrap_expect"], 5);
    }

    #[test]
    fn secret_flag_follows_the_gossip_key() {
        let mut c = cluster("1.8.7");
        let files = render(&c, "app-2").unwrap();
        assert!(files[0].secret);
        assert!(files[0].content.contains(TEST_KEY));
        assert!(!files[1].secret);

        c.encrypt = None;
        let files = render(&c, "app-2").unwrap();
        assert!(!files[0].secret);
        assert!(!files[0].content.contains("encrypt"));
        assert_eq!(files[0].mode, 0o640);

        // A key given through extra config is a secret too, and so are ACL tokens.
        c.hosts[4].extra_config = obj(json!({ "encrypt": TEST_KEY }));
        assert!(render(&c, "app-2").unwrap()[0].secret);
        c.hosts[4].extra_config = obj(json!({ "acl": { "tokens": { "agent": "t" } } }));
        assert!(render(&c, "app-2").unwrap()[0].secret);
    }

    #[test]
    fn files_follow_the_init_system() {
        let c = cluster("1.8.7");
        let files = render(&c, "consul-server-1").unwrap();
        let summary: Vec<_> = files
            .iter()
            .map(|f| (f.path.display().to_string(), f.kind, f.mode))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "/etc/consul.d/consul.hcl".into(),
                    FileKind::AgentConfig,
                    0o640
                ),
                (
                    "/etc/systemd/system/consul.service".into(),
                    FileKind::SystemdUnit,
                    0o644
                ),
            ]
        );
        let files = render(&c, "app-1").unwrap();
        assert_eq!(
            files[0].path,
            Path::new("/usr/local/consul/conf/consul.hcl")
        );
        assert_eq!(files[1].path, Path::new("/etc/supervisord.d/consul.ini"));
        assert_eq!(files[1].kind, FileKind::SupervisorProgram);
        assert!(files[1].content.contains(
            "command=/usr/local/consul/consul agent -config-dir /usr/local/consul/conf\n"
        ));
        for f in &files {
            assert!(f
                .content
                .lines()
                .next()
                .unwrap()
                .contains("Managed by consulctl"));
        }
    }

    #[test]
    fn raft_protocol_is_refused_from_1_9() {
        let mut c = cluster("1.9.17");
        c.hosts[0].extra_config = obj(json!({ "raft_protocol": 3 }));
        let err = render(&c, "consul-server-1").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("consul-server-1"), "{msg}");
        assert!(msg.contains("raft_protocol"), "{msg}");
        assert!(msg.contains("removed in Consul 1.9"), "{msg}");

        let mut c = cluster("1.8.7");
        c.hosts[0].extra_config = obj(json!({ "raft_protocol": 3 }));
        let config = agent_config(&ctx(&c, "consul-server-1")).unwrap();
        assert_eq!(config["raft_protocol"], 3);
    }

    #[test]
    fn ui_keys_follow_the_version() {
        // 1.8 rejects ui_config: refuse it here.
        let mut c = cluster("1.8.7");
        c.hosts[3].extra_config = obj(json!({ "ui_config": { "enabled": true } }));
        let err = render(&c, "app-1").unwrap_err();
        assert!(err.to_string().contains("ui_config"), "{err}");
        assert!(err.to_string().contains("1.9"), "{err}");

        // 1.9+: `ui` is translated into `ui_config.enabled`.
        let mut c = cluster("1.21.0");
        c.hosts[3].extra_config = obj(json!({ "ui": true, "server_name": "x" }));
        let config = agent_config(&ctx(&c, "app-1")).unwrap();
        assert!(!config.contains_key("ui"));
        assert_eq!(config["ui_config"], json!({ "enabled": true }));
        c.hosts[0].extra_config = obj(json!({ "ui": false }));
        let config = agent_config(&ctx(&c, "consul-server-1")).unwrap();
        assert_eq!(config["ui_config"], json!({ "enabled": false }));
        assert!(!config.contains_key("ui"));
        // ... unless it contradicts ui_config.
        c.hosts[0].extra_config = obj(json!({ "ui": false, "ui_config": { "enabled": true } }));
        assert!(agent_config(&ctx(&c, "consul-server-1")).is_err());
    }

    #[test]
    fn keys_newer_than_the_version_are_refused() {
        let mut c = cluster("1.11.0");
        for (extra, key) in [
            (json!({ "tls": { "defaults": {} } }), "tls"),
            (json!({ "ports": { "grpc_tls": 8503 } }), "ports.grpc_tls"),
        ] {
            c.hosts[0].extra_config = obj(extra);
            let err = agent_config(&ctx(&c, "consul-server-1")).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let mut c = cluster("1.10.0");
        c.hosts[0].extra_config =
            obj(json!({ "acl": { "tokens": { "initial_management": "x" } } }));
        assert!(agent_config(&ctx(&c, "consul-server-1")).is_err());
    }

    #[test]
    fn paths_that_would_break_the_unit_are_refused() {
        let mut c = cluster("1.8.7");
        c.hosts[4].paths.binary = "/opt/my consul/consul".into();
        let err = render(&c, "app-2").unwrap_err();
        assert!(err.to_string().contains("paths.binary"), "{err}");
        c.hosts[3].paths.log_dir = "/var/log/%(here)s".into();
        let err = render(&c, "app-1").unwrap_err();
        assert!(err.to_string().contains("paths.log_dir"), "{err}");
    }

    #[test]
    fn overridden_unit_template_is_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(templates::SYSTEMD_UNIT),
            "# Managed by consulctl (site unit)\n[Service]\nExecStart={{ binary }} agent -config-dir={{ config_dir }}\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let c = cluster("1.8.7");
        let files = render_host(&t, &ctx(&c, "consul-server-1")).unwrap();
        assert_eq!(
            files[1].content,
            "# Managed by consulctl (site unit)\n[Service]\nExecStart=/usr/local/bin/consul agent -config-dir=/etc/consul.d\n"
        );
    }

    #[test]
    fn an_override_producing_broken_hcl_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(templates::AGENT_CONFIG),
            "{{ config | hcl }}\nports {\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let c = cluster("1.8.7");
        let err = render_host(&t, &ctx(&c, "consul-server-1")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("not valid HCL"), "{msg}");
        assert!(msg.contains("overridden by"), "{msg}");
    }

    #[test]
    fn golden_tls_acl_grpc_mapping_per_version() {
        let tls = TlsSettings {
            ca_file: "/etc/consul.d/tls/ca.pem".into(),
            cert_file: "/etc/consul.d/tls/server.pem".into(),
            key_file: "/etc/consul.d/tls/server-key.pem".into(),
            verify_incoming_rpc: true,
            verify_incoming_https: false,
            verify_outgoing: true,
            verify_server_hostname: true,
        };
        let tls_all = TlsSettings {
            verify_incoming_https: true,
            ..tls.clone()
        };
        let acl = AclSettings {
            enabled: true,
            default_policy: "deny".into(),
            enable_token_persistence: true,
            initial_management_token: Some(Secret::new("00000000-0000-0000-0000-000000000001")),
            default_token: None,
            agent_token: Some(Secret::new("00000000-0000-0000-0000-000000000002")),
        };
        for v in VERSIONS {
            let f = Features::for_version(&v.parse().unwrap());
            let hcl = |m: Map<String, Value>| {
                let text = templates::hcl_body(&m).unwrap();
                hcl::parse(&text).unwrap();
                text
            };
            let text = format!(
                "# features\n{f:#?}\n\n# tls (rpc verified, https not)\n{}\n\
                 # tls (both verified)\n{}\n# acl\n{}\n# grpc with tls\n{}\n# grpc without tls\n{}",
                hcl(tls_config(&f, &tls)),
                hcl(tls_config(&f, &tls_all)),
                hcl(acl_config(&f, &acl)),
                hcl(grpc_port(&f, 8503, true)),
                hcl(grpc_port(&f, 8502, false)),
            );
            insta::assert_snapshot!(format!("tls_acl_grpc_{v}"), text);
        }
    }

    /// A second datacenter: servers join its servers over WAN (`retry_join_wan`), clients
    /// never do (Consul refuses WAN settings on clients), on every version.
    #[test]
    fn golden_wan_join_per_version() {
        for v in VERSIONS {
            let mut c = cluster(v);
            c.retry_join_wan = vec!["10.1.0.10".into(), "consul-dc2.example:8302".into()];
            let server = render(&c, "consul-server-1").unwrap();
            let client = render(&c, "app-1").unwrap();
            assert!(
                !client[0].content.contains("retry_join_wan"),
                "{}",
                client[0].content
            );
            insta::assert_snapshot!(format!("wan_join_{v}"), server[0].content.clone());
        }
    }

    /// `tls = "auto"`: the agent config of a server and a client per version, and the files
    /// each gets (contents of the PEM files are random: only their names, kinds and modes).
    #[test]
    fn golden_tls_auto_per_version() {
        let tmp = tempfile::tempdir().unwrap();
        for v in VERSIONS {
            let mut c = cluster(v);
            c.tls_auto = true;
            c.inventory_path = tmp.path().join("prod.toml");
            let mut text = String::new();
            for name in ["consul-server-1", "app-1"] {
                let files = render(&c, name).unwrap();
                text.push_str(&format!("# {name}\n{}\n", files[0].content));
                for f in &files[1..] {
                    text.push_str(&format!(
                        "==> {} ({:?}, mode {:o}, secret: {})\n",
                        f.path.display(),
                        f.kind,
                        f.mode,
                        f.secret
                    ));
                }
                text.push('\n');
            }
            insta::assert_snapshot!(format!("tls_auto_{v}"), text);
        }
    }

    /// `encrypt`, `tls = "auto"` and `acl = true` together, per version: the agent config of a
    /// server and a client (fixed test tokens), the files each gets with owner and mode.
    #[test]
    fn golden_security_all_auto_per_version() {
        let tmp = tempfile::tempdir().unwrap();
        for v in VERSIONS {
            let mut c = cluster(v);
            c.tls_auto = true;
            c.acl = true;
            c.inventory_path = tmp.path().join("prod.toml");
            for (i, h) in c.hosts.iter().enumerate() {
                c.acl_tokens.agents.insert(
                    h.name.clone(),
                    crate::model::AgentToken {
                        accessor: format!("00000000-0000-4000-8000-00000000000{i}"),
                        secret: Secret::new(format!("11111111-1111-4111-8111-11111111111{i}")),
                    },
                );
            }
            let mut text = String::new();
            for name in ["consul-server-1", "app-1"] {
                let files = render(&c, name).unwrap();
                text.push_str(&format!("# {name}\n{}\n", files[0].content));
                for f in &files {
                    text.push_str(&format!(
                        "==> {} ({:?}, mode {:o}, owner {}, secret: {})\n",
                        f.path.display(),
                        f.kind,
                        f.mode,
                        f.owner.as_deref().unwrap_or("-"),
                        f.secret
                    ));
                }
                text.push('\n');
            }
            insta::assert_snapshot!(format!("security_all_auto_{v}"), text);
        }
    }

    #[test]
    fn tls_auto_files_per_role() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = cluster("1.8.7");
        c.tls_auto = true;
        c.inventory_path = tmp.path().join("prod.toml");
        // As a command that changes hosts does before rendering: files are written as made.
        crate::pki::persist(&crate::pki::dir(&c)).unwrap();
        let server = render(&c, "consul-server-1").unwrap();
        let tls: Vec<&DesiredFile> = server
            .iter()
            .filter(|f| f.kind == FileKind::TlsFile)
            .collect();
        let names: Vec<String> = tls.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "/etc/consul.d/tls/ca.pem",
                "/etc/consul.d/tls/server.pem",
                "/etc/consul.d/tls/server-key.pem"
            ]
        );
        assert_eq!(
            tls.iter().map(|f| (f.mode, f.secret)).collect::<Vec<_>>(),
            [(0o644, false), (0o644, false), (0o640, true)]
        );
        assert!(tls[2].content.contains("PRIVATE KEY"));
        let cert = crate::pki::parse(&tls[1].content).unwrap();
        assert!(cert.sans.dns.contains("server.upyun.consul"));
        assert!(cert.sans.dns.contains("consul-server-1"));
        assert!(cert.sans.ips.contains(&ip(11)));
        assert!(crate::pki::verifies(&tls[1].content, &tls[0].content).unwrap());
        // Local copies under the state dir.
        let dir = tmp.path().join(".consulctl/upyun/tls");
        for f in [
            "ca.pem",
            "ca-key.pem",
            "consul-server-1.pem",
            "consul-server-1-key.pem",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }

        // Clients: the CA only, and no certificate keys in their config.
        let client = render(&c, "app-1").unwrap();
        let tls: Vec<&DesiredFile> = client
            .iter()
            .filter(|f| f.kind == FileKind::TlsFile)
            .collect();
        assert_eq!(tls.len(), 1);
        assert!(tls[0].path.ends_with("tls/ca.pem"));
        let config = agent_config(&ctx(&c, "app-1")).unwrap();
        assert!(!config.contains_key("cert_file") && !config.contains_key("key_file"));
        assert_eq!(config["auto_encrypt"], json!({ "tls": true }));
        let config = agent_config(&ctx(&c, "consul-server-1")).unwrap();
        assert_eq!(config["auto_encrypt"], json!({ "allow_tls": true }));
        assert_eq!(config["ports"]["https"], json!(8501));

        // 1.12+: the same inside `tls.defaults`.
        let mut c = cluster("1.21.0");
        c.tls_auto = true;
        c.inventory_path = tmp.path().join("prod.toml");
        let config = agent_config(&ctx(&c, "app-1")).unwrap();
        let defaults = config["tls"]["defaults"].as_object().unwrap();
        assert!(!defaults.contains_key("cert_file") && !defaults.contains_key("key_file"));
        assert_eq!(config["tls"]["https"]["verify_incoming"], json!(false));
        let config = agent_config(&ctx(&c, "consul-server-1")).unwrap();
        assert_eq!(config["ports"], json!({ "https": 8501, "grpc_tls": 8503 }));
        assert_eq!(
            config["tls"]["internal_rpc"]["verify_incoming"],
            json!(true)
        );
    }

    #[test]
    fn mapping_keys_switch_at_the_right_versions() {
        let f = |v: &str| Features::for_version(&v.parse().unwrap());
        let acl = AclSettings {
            enabled: true,
            default_policy: "deny".into(),
            enable_token_persistence: false,
            initial_management_token: Some(Secret::new("t")),
            agent_token: None,
            default_token: None,
        };
        let tokens = |v: &str| acl_config(&f(v), &acl)["acl"]["tokens"].clone();
        assert_eq!(tokens("1.10.12"), json!({ "master": "t" }));
        assert_eq!(tokens("1.11.0"), json!({ "initial_management": "t" }));
        assert!(grpc_port(&f("1.13.9"), 8502, true)["ports"]
            .get("grpc")
            .is_some());
        assert!(grpc_port(&f("1.14.0"), 8503, true)["ports"]
            .get("grpc_tls")
            .is_some());
        let tls = TlsSettings {
            ca_file: "/ca".into(),
            cert_file: "/c".into(),
            key_file: "/k".into(),
            verify_incoming_rpc: true,
            verify_incoming_https: true,
            verify_outgoing: true,
            verify_server_hostname: true,
        };
        assert!(tls_config(&f("1.11.9"), &tls).contains_key("verify_incoming"));
        assert!(!tls_config(&f("1.11.9"), &tls).contains_key("tls"));
        let t = tls_config(&f("1.12.0"), &tls);
        assert_eq!(t.keys().collect::<Vec<_>>(), vec!["tls"]);
        assert_eq!(t["tls"]["internal_rpc"]["verify_server_hostname"], true);
    }
}
