//! The resolved model: what `inventory` produces after parsing and validation.
//! Every later stage (facts, plan, execute, verify) works from these types only,
//! never from raw TOML.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Serialize;

use crate::version::Version;

/// A whole cluster as the inventory describes it, validated and with every
/// default and override resolved per host.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    /// The inventory file this came from.
    pub inventory_path: PathBuf,
    /// Cluster name (defaults to the datacenter). Used for state dirs and locks.
    pub name: String,
    pub datacenter: String,
    pub domain: String,
    pub consul: ConsulSpec,
    /// Gossip encryption key (base64): given in the inventory, or (`encrypt = "auto"`) read
    /// from the secrets file beside the inventory by `inventory::load`, or generated there in
    /// memory and written by `inventory::persist_secrets`.
    pub encrypt: Option<Secret>,
    /// `encrypt = "auto"`: the key lives in the secrets file (`secrets.rs`), not the inventory.
    pub encrypt_auto: bool,
    /// `tls = "auto"`: consulctl's own CA and per-server certificates (`tls.rs`), stored under
    /// `state_dir()/tls`; HTTPS on 8501, auto_encrypt for clients.
    pub tls_auto: bool,
    /// `acl = true`: default policy deny, bootstrapped once by consulctl through the API; the
    /// management token and each node's agent token live in the secrets file (`acl.rs`).
    pub acl: bool,
    /// The ACL tokens of `acl = true` (from the secrets file, or generated in memory by
    /// `inventory::load` and written by `inventory::persist_secrets`; empty otherwise).
    pub acl_tokens: AclTokens,
    /// The `consulctl-host` binary on the control machine that hosts with a registrar get
    /// (`[registrar] binary`, default: next to the running consulctl). None when no host has
    /// a registrar.
    pub registrar_binary: Option<PathBuf>,
    /// `[cluster] retry_join_wan`: servers of other datacenters that this datacenter's servers
    /// join over WAN (gossip on port 8302); empty for a single datacenter.
    pub retry_join_wan: Vec<String>,
    pub hosts: Vec<Host>,
    /// Non-fatal findings (e.g. an even number of servers).
    pub warnings: Vec<String>,
}

impl Cluster {
    pub fn servers(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Server)
    }

    pub fn clients(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Client)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Directory for this inventory's local state: logs, download cache, locks, backups.
    /// `<inventory dir>/.consulctl/<cluster name>`; git-ignored.
    pub fn state_dir(&self) -> PathBuf {
        let dir = self
            .inventory_path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("."));
        dir.join(".consulctl").join(&self.name)
    }
}

/// ACL tokens consulctl keeps in the secrets file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AclTokens {
    /// The management token from `PUT /v1/acl/bootstrap` (None until bootstrapped).
    pub management: Option<Secret>,
    /// Per node: the agent token (accessor ID, secret ID), generated before the agent first
    /// starts so that its config never changes; created in Consul after bootstrap.
    pub agents: std::collections::BTreeMap<String, AgentToken>,
    /// Per node with a registrar: its token (policy `consulctl-registrar-<node>`), generated
    /// like the agent tokens and created in Consul after the bootstrap.
    pub registrars: std::collections::BTreeMap<String, AgentToken>,
    /// Per node with an LB sync daemon: its token (policy `consulctl-lb-<node>`), generated
    /// like the agent tokens and created in Consul after the bootstrap.
    pub lbs: std::collections::BTreeMap<String, AgentToken>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentToken {
    pub accessor: String,
    pub secret: Secret,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsulSpec {
    pub version: Version,
    pub source: InstallSource,
}

/// Where the Consul binary comes from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InstallSource {
    /// A file on the control host: a raw binary, a HashiCorp release `.zip`, or a `.deb`.
    /// Resolved to an absolute path; existence checked at validation.
    File { path: PathBuf },
    /// Downloaded once on the control host into the cache, verified against sha256.
    Url { url: String, sha256: String },
    /// The host's package manager with the HashiCorp repository (apt or yum/dnf).
    Package { manager: PackageManager },
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PackageManager {
    /// Chosen per host from facts (apt on Debian-like, dnf/yum on RHEL-like).
    Auto,
    Apt,
    Yum,
    Dnf,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Server,
    Client,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    Systemd,
    Supervisord,
}

impl Init {
    pub fn as_str(self) -> &'static str {
        match self {
            Init::Systemd => "systemd",
            Init::Supervisord => "supervisord",
        }
    }
}

/// How the agent's bind address is found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BindAddr {
    /// Given in the inventory.
    Fixed(IpAddr),
    /// The host's (single) address inside this network, found from facts
    /// (the seed's `get_name_ip`).
    Cidr(IpNet),
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// Consul node name; also the name used for `--limit` and in reports.
    pub name: String,
    /// SSH address (hostname or IP).
    pub address: String,
    pub role: Role,
    pub tags: Vec<String>,
    pub init: Init,
    pub bind: BindAddr,
    /// `client_addr` for the agent (HTTP/DNS listen address); defaults to `127.0.0.1`.
    pub client_addr: String,
    pub log_level: String,
    /// The system user the agent runs as (`[consul] user`, default `consul`, created when
    /// missing; `root` as in the seed's supervisord layout). It and its group own the data dir,
    /// the config dir and the agent's config files (0640).
    pub user: String,
    /// consulctl talks to this agent over HTTPS with the CA of `tls = "auto"` (servers of a
    /// `tls = "auto"` cluster; clients' HTTPS certificates come from auto_encrypt).
    pub api_tls: bool,
    pub ssh: SshTarget,
    pub paths: Paths,
    /// Extra agent config keys, merged cluster -> role -> host (later wins, tables merge deeply).
    pub extra_config: serde_json::Map<String, serde_json::Value>,
    /// DNS on the host (`[dns]`, `[servers.dns]`/`[clients.dns]`, host `dns`; per key, later
    /// wins). None: consulctl leaves the host's DNS alone.
    pub dns: Option<DnsSpec>,
    /// Services attached to this host (`[[services]]` whose `on` selector matches it), in
    /// inventory order.
    pub services: Vec<ServiceSpec>,
    /// Host preparation before install (`[prepare]`, role `prepare`, host `prepare`; per key,
    /// later wins).
    pub prepare: PrepareSpec,
    /// The Docker registrar (`consulctl-host registrar`) next to the agent: `[registrar]`
    /// whose `on` selects the host, role and host `registrar` tables key by key. None: no
    /// registrar on this host.
    pub registrar: Option<RegistrarSpec>,
    /// The load balancer sync daemon (`consulctl-host lb`): `[lb]` whose `on` selects the
    /// host (default: hosts tagged `lb`), role and host `lb` tables key by key. None: no LB
    /// daemon on this host.
    pub lb: Option<LbSpec>,
}

/// The Docker registrar of one host, resolved (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrarSpec {
    pub mode: RegistrarMode,
    /// Published mode: the address registered. An IP address, `{{ bind_addr }}` or
    /// `{{ address }}` (filled in per host when rendering); None: the host's bind address.
    pub host_ip: Option<String>,
    /// Internal mode: the Docker network whose container address is registered.
    pub network: Option<String>,
    /// Only containers attached to one of these networks (empty: all).
    pub networks: Vec<String>,
    /// Only containers that name their service.
    pub explicit: bool,
    /// Go duration of the full resync period (at least 1s).
    pub resync: String,
    /// Go duration; above zero: a gone container's services go into maintenance first.
    pub drain: String,
    /// Path of the Docker Engine API socket on the host.
    pub docker_socket: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrarMode {
    /// The host address and the published host port.
    Published,
    /// The container's address on a Docker network and the container port.
    Internal,
}

impl RegistrarMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrarMode::Published => "published",
            RegistrarMode::Internal => "internal",
        }
    }
}

impl RegistrarSpec {
    /// Every default: published mode on the bind address, every container, 30s resync, no drain.
    pub fn defaults() -> RegistrarSpec {
        RegistrarSpec {
            mode: RegistrarMode::Published,
            host_ip: None,
            network: None,
            networks: Vec::new(),
            explicit: false,
            resync: "30s".into(),
            drain: "0s".into(),
            docker_socket: "/var/run/docker.sock".into(),
        }
    }
}

/// The LB sync daemon of one host, resolved (defaults filled in, reload commands chosen by
/// the host's init system). Written to `/etc/consulctl/lb.toml` as the daemon reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LbSpec {
    pub kind: LbKind,
    /// Only services carrying this tag are load balanced.
    pub tag: String,
    /// 127.0.0.1 port of the daemon's status server.
    pub status_port: u16,
    /// Go durations: quiet time after a change, and the longest wait after the first change.
    pub min_wait: String,
    pub max_wait: String,
    /// Write what is served to Consul KV `consulctl/lb/<node>`.
    pub publish: bool,
    pub balance: LbBalance,
    /// LB listen port per service name (others: the port their instances use).
    pub ports: std::collections::BTreeMap<String, u16>,
    pub nginx: LbNginx,
    pub haproxy: LbHaproxy,
    /// User Tera templates, their text read from the inventory's files.
    pub templates: Vec<LbTemplate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbKind {
    Nginx,
    Haproxy,
    /// User templates only.
    None,
}

impl LbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LbKind::Nginx => "nginx",
            LbKind::Haproxy => "haproxy",
            LbKind::None => "none",
        }
    }
}

/// `[lb.balance]`: how upstream servers are balanced (the method in nginx's words; the daemon
/// maps it for HAProxy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LbBalance {
    /// `least_conn`, `round_robin`, `ip_hash` or `random`.
    pub method: String,
    pub max_fails: u32,
    /// Go duration.
    pub fail_timeout: String,
    pub weight: u32,
    pub keepalive: u32,
    pub maxconn: u32,
    pub retries: u32,
}

/// `[lb.nginx]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LbNginx {
    pub http_conf: PathBuf,
    pub stream_conf: PathBuf,
    pub stream_block: bool,
    pub test: Vec<String>,
    pub reload: Vec<String>,
}

/// `[lb.haproxy]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LbHaproxy {
    pub config: PathBuf,
    pub test: Vec<String>,
    pub reload: Vec<String>,
}

/// One `[[lb.templates]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LbTemplate {
    pub name: String,
    /// The Tera file on the control machine (resolved against the inventory's directory).
    pub source: PathBuf,
    /// Its text, read when the inventory is loaded.
    pub text: String,
    pub destination: PathBuf,
    /// argv; `{staged}` stands for the staged file.
    pub validate: Option<Vec<String>>,
    pub reload: Option<Vec<String>>,
}

impl LbSpec {
    /// Every default for a host with this init system: nginx, tag `upyun`, status port 18900,
    /// 0s/1s coalescing, published to KV.
    pub fn defaults(init: Init) -> LbSpec {
        LbSpec {
            kind: LbKind::Nginx,
            tag: "upyun".into(),
            status_port: 18900,
            min_wait: "0s".into(),
            max_wait: "1s".into(),
            publish: true,
            balance: LbBalance::defaults(),
            ports: Default::default(),
            nginx: LbNginx::defaults(init),
            haproxy: LbHaproxy::defaults(init),
            templates: Vec::new(),
        }
    }
}

impl LbBalance {
    pub fn defaults() -> LbBalance {
        LbBalance {
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

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

impl LbNginx {
    pub fn defaults(init: Init) -> LbNginx {
        LbNginx {
            http_conf: "/etc/nginx/conf.d/consulctl-http.conf".into(),
            stream_conf: "/etc/nginx/modules-enabled/99-consulctl-stream.conf".into(),
            stream_block: true,
            test: argv(&["nginx", "-t"]),
            reload: match init {
                Init::Systemd => argv(&["systemctl", "reload", "nginx"]),
                Init::Supervisord => argv(&["nginx", "-s", "reload"]),
            },
        }
    }
}

impl LbHaproxy {
    pub const CONFIG: &'static str = "/etc/haproxy/haproxy.cfg";
    /// The master's PID file of the supervisord program `haproxy` (`-p`).
    pub const PIDFILE: &'static str = "/run/haproxy.pid";

    pub fn defaults(init: Init) -> LbHaproxy {
        LbHaproxy {
            config: Self::CONFIG.into(),
            test: argv(&["haproxy", "-c", "-f", Self::CONFIG]),
            reload: match init {
                Init::Systemd => argv(&["systemctl", "reload", "haproxy"]),
                // USR2 to the master (a reload in master-worker mode): pkill reads the PID
                // file; `supervisorctl signal` would cost a Python start-up (~300 ms) per reload.
                Init::Supervisord => argv(&["pkill", "-USR2", "-F", Self::PIDFILE]),
            },
        }
    }
}

/// How a host resolves names, and how the cluster's domain reaches the local agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsSpec {
    /// Upstream nameservers (resolv.conf `nameserver`, or dnsmasq/resolved upstreams when
    /// forwarding is on). More than 3 is a warning when they go into resolv.conf.
    pub nameservers: Vec<IpAddr>,
    /// `search` domains.
    pub search: Vec<String>,
    /// resolv.conf `options` (e.g. `timeout:1`, `attempts:1`, `single-request-reopen`, `rotate`).
    pub options: Vec<String>,
    /// How `<domain>` queries reach the agent's DNS port.
    pub forward: DnsForward,
    /// The file to manage (default `/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsForward {
    /// systemd-resolved when it manages resolv.conf on the host, else dnsmasq.
    Auto,
    /// dnsmasq on 127.0.0.1:53: `server=/<domain>/127.0.0.1#<dns port>`, upstreams from
    /// `nameservers`; resolv.conf points at 127.0.0.1.
    Dnsmasq,
    /// A systemd-resolved drop-in: `DNS=127.0.0.1:<dns port>`, `Domains=~<domain>`.
    Resolved,
    /// No forwarding: resolv.conf gets the nameservers as given.
    None,
}

impl DnsForward {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsForward::Auto => "auto",
            DnsForward::Dnsmasq => "dnsmasq",
            DnsForward::Resolved => "resolved",
            DnsForward::None => "none",
        }
    }
}

/// A service definition (`[[services]]`), written as one managed HCL file in the config dir.
/// String values may hold the placeholders `{{ bind_addr }}`, `{{ node_name }}` and
/// `{{ address }}` (the SSH address), filled in per host when rendering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    /// Defaults to `name`.
    pub id: Option<String>,
    pub port: Option<u16>,
    pub address: Option<String>,
    pub tags: Vec<String>,
    pub meta: std::collections::BTreeMap<String, String>,
    pub checks: Vec<CheckSpec>,
}

impl ServiceSpec {
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }

    /// Any script check: needs `enable_local_script_checks = true` on the agent.
    pub fn has_script_check(&self) -> bool {
        self.checks
            .iter()
            .any(|c| matches!(c.kind, CheckKind::Script(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckSpec {
    /// Check name (Consul defaults it when absent).
    pub name: Option<String>,
    pub kind: CheckKind,
    /// Go duration, e.g. `10s`.
    pub interval: String,
    pub timeout: Option<String>,
    pub deregister_critical_service_after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// `host:port`.
    Tcp(String),
    /// URL.
    Http(String),
    /// argv of a local script check.
    Script(Vec<String>),
}

/// What to do on a host before Consul is installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrepareSpec {
    /// System services to stop and disable (the seed's `cups`, `rpcbind`).
    pub disable_services: Vec<String>,
    /// Packages to install through the host's package manager when missing (e.g. `dnsmasq`).
    pub packages: Vec<String>,
}

impl Host {
    /// A host with every default the inventory would give it (vendor paths, SSH as ssh_config says,
    /// INFO logging, client_addr 127.0.0.1, no tags, no extra config).
    pub fn minimal(name: &str, address: &str, role: Role, init: Init, bind: BindAddr) -> Host {
        Host {
            name: name.into(),
            address: address.into(),
            role,
            tags: Vec::new(),
            init,
            bind,
            client_addr: "127.0.0.1".into(),
            log_level: "INFO".into(),
            user: "consul".into(),
            api_tls: false,
            ssh: SshTarget::default(),
            paths: Paths::vendor_default(),
            extra_config: Default::default(),
            dns: None,
            services: Vec::new(),
            prepare: PrepareSpec::default(),
            registrar: None,
            lb: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SshTarget {
    /// The SSH user; `None`: not given by the inventory, ssh_config decides (`User`, else the
    /// local user name).
    pub user: Option<String>,
    /// The SSH port; `None`: not given by the inventory, ssh_config decides (`Port`, else 22).
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    /// A known_hosts file to use instead of the user's default one.
    pub known_hosts: Option<PathBuf>,
    /// An ssh_config file to use instead of `~/.ssh/config` (`ssh -F`).
    pub config_file: Option<PathBuf>,
    /// ProxyJump value (`[user@]host[:port]`).
    pub jump: Option<String>,
    pub host_keys: HostKeyPolicy,
    pub connect_timeout_secs: u64,
}

impl Default for SshTarget {
    /// The inventory's defaults: user and port from ssh_config, strict host keys, 10 s connect
    /// timeout.
    fn default() -> Self {
        SshTarget {
            user: None,
            port: None,
            identity_file: None,
            known_hosts: None,
            config_file: None,
            jump: None,
            host_keys: HostKeyPolicy::Strict,
            connect_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// The host key must already be known; a mismatch or an unknown key stops that host.
    Strict,
    /// Unknown keys are added; a mismatch still stops the host.
    AcceptNew,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Paths {
    /// The consul binary, e.g. `/usr/local/bin/consul`.
    pub binary: PathBuf,
    /// Agent config directory (`-config-dir`), e.g. `/etc/consul.d`.
    pub config_dir: PathBuf,
    /// Agent data directory, e.g. `/opt/consul`.
    pub data_dir: PathBuf,
    /// Log directory (supervisord's stdout/stderr logs), e.g. `/var/log/consul`.
    pub log_dir: PathBuf,
    /// systemd unit path, e.g. `/etc/systemd/system/consul.service`.
    pub systemd_unit: PathBuf,
    /// supervisord program file; `None` means: found from facts
    /// (`/etc/supervisor/conf.d/consul.conf` on Debian, `/etc/supervisord.d/consul.ini` on RHEL).
    pub supervisor_program: Option<PathBuf>,
}

impl Paths {
    pub fn vendor_default() -> Self {
        Paths {
            binary: "/usr/local/bin/consul".into(),
            config_dir: "/etc/consul.d".into(),
            data_dir: "/opt/consul".into(),
            log_dir: "/var/log/consul".into(),
            systemd_unit: "/etc/systemd/system/consul.service".into(),
            supervisor_program: None,
        }
    }
}

/// A value that must never be printed: Debug and Display show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value is also remembered for [`crate::redact`], which hides it in everything
    /// consulctl prints or logs.
    pub fn new(s: impl Into<String>) -> Self {
        let s = s.into();
        crate::redact::remember(&s);
        Secret(s)
    }

    /// The real value: only for writing into files that go to hosts.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}
