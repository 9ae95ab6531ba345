//! Command-line arguments. Raw arguments only: `lib::run` turns them into
//! validated inputs before any host is touched.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod settings;
pub use settings::{RolloutSettings, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "consulctl",
    version,
    about = "Roll out and operate HashiCorp Consul clusters over SSH from one TOML inventory"
)]
pub struct Cli {
    /// Write the debug log here instead of `<inventory dir>/.consulctl/<cluster>/logs/`.
    #[arg(long, global = true, value_name = "FILE", env = "CONSULCTL_DEBUG_LOG")]
    pub debug_log: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Roll out the inventory: install, configure, start, verify.
    Apply(ApplyArgs),
    /// Dry run: connect, gather facts, print the actions and diffs; change nothing.
    Plan(PlanArgs),
    /// Show members, leader, raft peers and per-host agent state.
    Status(StatusArgs),
    /// Run a playbook (TOML steps over built-in tasks and plain commands) on the inventory.
    Run(RunArgs),
    /// Rolling restart: servers one at a time (followers first, the leader last), then clients
    /// in batches, gated on Consul's health (leader, voters, alive members, autopilot).
    Restart(RestartArgs),
    /// What Consul's catalog holds per service, with check status, beside what the inventory
    /// declares. Exit 1 when a declared service is missing from the catalog.
    Services(ServicesArgs),
    /// Find why nodes cannot join or the cluster is unhealthy: agent state, Consul's view and
    /// recent log on every host; per problem the evidence, the cause and the fixing command.
    /// Exit 0 when healthy, 1 when problems were found.
    Doctor(DoctorArgs),
    /// Repair: `recover NODE` restarts a node with a fresh data dir (the old one moved aside);
    /// `recover quorum` restores a leader when most servers are gone for good (peers.json).
    Recover(RecoverArgs),
    /// Gossip encryption keys: `keys rotate` installs a new key on every member, switches to
    /// it and removes the old one, every member alive throughout.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Certificates of `tls = "auto"`: `tls renew` reissues server certificates that expire
    /// within a window and rolls them out with `consul reload` (no restart).
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Operate on single nodes: `node remove` takes hosts out of the cluster for good.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Break the host locks of a consulctl run that is gone (killed on another machine, or that
    /// machine is down): removes `/var/lib/consulctl/lock` on the selected hosts, naming its
    /// holder. A lock whose process still runs on this machine is refused.
    Unlock(UnlockArgs),
    /// Local lab hosts (Docker containers with sshd) to try consulctl on.
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Query Consul's catalog: services (tags, instance counts), one service's instances
    /// (node, address, port, tags, health), nodes; this datacenter or another (`--dc`).
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Register or deregister a service by hand: on a host's agent (kept across agent
    /// restarts), or with `--external NODE` in the catalog for a node without an agent.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Maintenance mode of a node or of one service instance: `on` takes it out of DNS and
    /// healthy service queries (with a reason), `off` brings it back.
    Maint(MaintArgs),
    /// `consul reload` on the chosen agents: they re-read their configuration, no restart.
    Reload(ReloadArgs),
    /// Remove a failed node from the member list (`--prune`: forget it at once). Refused for a
    /// node that is alive.
    ForceLeave(ForceLeaveArgs),
    /// Inventory tools that need no host: check, JSON Schema, import from Ansible.
    Inventory {
        #[command(subcommand)]
        command: InventoryCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Write the man pages: one per command, into a directory.
    Man(ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Services with their tags and instance counts (passing / warning / critical).
    Services(CatalogServicesArgs),
    /// One service's instances: node, address, port, tags, health.
    Service(CatalogServiceArgs),
    /// Nodes of the catalog with their address and health.
    Nodes(CatalogNodesArgs),
}

/// Which datacenter a query asks (`?dc=`); the agent's own by default.
#[derive(Debug, Args, Clone)]
pub struct DcArgs {
    /// Ask this datacenter's servers (over WAN) instead of the local ones.
    #[arg(long, value_name = "DC")]
    pub dc: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HealthFilter {
    Passing,
    Warning,
    Critical,
}

impl HealthFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthFilter::Passing => "passing",
            HealthFilter::Warning => "warning",
            HealthFilter::Critical => "critical",
        }
    }
}

#[derive(Debug, Args)]
pub struct CatalogServicesArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[command(flatten)]
    pub dc: DcArgs,

    /// Only services that have this tag.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Only services with at least one instance in this state.
    #[arg(long, value_enum)]
    pub health: Option<HealthFilter>,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct CatalogServiceArgs {
    /// The service name.
    #[arg(value_name = "SERVICE")]
    pub name: String,

    #[command(flatten)]
    pub inv: InventoryArgs,

    #[command(flatten)]
    pub dc: DcArgs,

    /// Only instances with this tag.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Only instances in this state.
    #[arg(long, value_enum)]
    pub health: Option<HealthFilter>,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct CatalogNodesArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[command(flatten)]
    pub dc: DcArgs,

    /// Only nodes in this state (the worst of their node checks).
    #[arg(long, value_enum)]
    pub health: Option<HealthFilter>,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register a service on a host's agent (`--on HOST`; Consul keeps it across agent
    /// restarts) or in the catalog for a node without an agent (`--external NODE --address`).
    Register(ServiceRegisterArgs),
    /// Deregister a service instance from a host's agent or from an external node.
    Deregister(ServiceDeregisterArgs),
}

#[derive(Debug, Args)]
pub struct ServiceRegisterArgs {
    /// The service name.
    #[arg(value_name = "NAME")]
    pub name: String,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The inventory host whose agent registers (and health-checks) the service.
    #[arg(
        long,
        value_name = "HOST",
        conflicts_with = "external",
        required_unless_present = "external"
    )]
    pub on: Option<String>,

    /// A node without an agent: the service goes into the catalog directly (the node is
    /// created with `--address`). Consul runs no checks for it.
    #[arg(long, value_name = "NODE", requires = "address")]
    pub external: Option<String>,

    /// The service address (for `--external`, also the node's address).
    #[arg(long, value_name = "ADDR")]
    pub address: Option<String>,

    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// The instance ID (default: the name).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// A tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Metadata `KEY=VALUE` (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,

    /// An HTTP check of this URL.
    #[arg(long, value_name = "URL", conflicts_with_all = ["check_tcp", "check_ttl"])]
    pub check_http: Option<String>,

    /// A TCP check of this `host:port`.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "check_ttl")]
    pub check_tcp: Option<String>,

    /// A TTL check (something must report to it within the TTL), e.g. `30s`.
    #[arg(long, value_name = "DURATION")]
    pub check_ttl: Option<String>,

    /// How often the check runs.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub check_interval: String,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ServiceDeregisterArgs {
    /// The instance ID (the name when it was registered without `--id`).
    #[arg(value_name = "ID")]
    pub id: String,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The inventory host whose agent holds the instance.
    #[arg(
        long,
        value_name = "HOST",
        conflicts_with = "external",
        required_unless_present = "external"
    )]
    pub on: Option<String>,

    /// The external node that holds the instance (catalog deregistration).
    #[arg(long, value_name = "NODE")]
    pub external: Option<String>,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct MaintArgs {
    /// `on` or `off`.
    #[arg(value_enum)]
    pub state: OnOff,

    /// The inventory hosts (comma-separated or repeatable) whose node, or whose service
    /// instance (`--service`), goes into or out of maintenance.
    #[arg(
        long = "on",
        required = true,
        value_name = "HOST,...",
        value_delimiter = ','
    )]
    pub hosts: Vec<String>,

    /// Only this service instance (its ID) on those hosts, not the whole node.
    #[arg(long, value_name = "ID")]
    pub service: Option<String>,

    /// Why (shown in Consul as the maintenance check's notes).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ForceLeaveArgs {
    /// The Consul node name of the failed member.
    #[arg(value_name = "NODE")]
    pub node: String,

    /// Remove it from the member list at once instead of leaving it `left` for 72 hours.
    #[arg(long)]
    pub prune: bool,

    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Validate an inventory (every problem with file:line:col); no SSH, no host touched.
    /// Exit 0 when valid, 2 otherwise.
    Check(InventoryCheckArgs),
    /// Print the JSON Schema of the inventory (for TOML editors: taplo, Even Better TOML).
    Schema,
    /// Convert another tool's inventory into a consulctl inventory (printed, or `--out`).
    Import {
        #[command(subcommand)]
        command: InventoryImportCommand,
    },
}

#[derive(Debug, Args)]
pub struct InventoryCheckArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum InventoryImportCommand {
    /// An Ansible inventory (INI or YAML): its server and client groups become hosts with
    /// `ansible_host`, `ansible_user` and `ansible_port`.
    Ansible(InventoryImportAnsibleArgs),
}

#[derive(Debug, Args)]
pub struct InventoryImportAnsibleArgs {
    /// The Ansible inventory file (INI or YAML, told apart by content).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The group whose hosts are Consul servers.
    #[arg(long, default_value = "consul_servers", value_name = "GROUP")]
    pub servers_group: String,

    /// The group whose hosts are Consul clients.
    #[arg(long, default_value = "consul_clients", value_name = "GROUP")]
    pub clients_group: String,

    /// Write the TOML here instead of stdout (refuses to overwrite an existing file).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write `consulctl.1`, `consulctl-apply.1`, ... into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "man")]
    pub dir: PathBuf,
}

/// The inventory and how far to trust the hosts' SSH keys: flattened into every command that
/// works on an inventory's hosts.
#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    /// The inventory file (TOML).
    #[arg(short = 'i', long = "inventory", value_name = "FILE")]
    pub inventory: PathBuf,

    /// Add unknown SSH host keys to the known_hosts file instead of refusing them.
    /// A changed key is always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

#[derive(Debug, Args, Clone)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Only these hosts: comma-separated host names, `tag:NAME`, `role:server`, `role:client`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub limit: Option<String>,

    /// How many hosts to work on at once (the default takes a few dozen hosts in one wave).
    #[arg(short = 'c', long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// A directory whose templates override the embedded ones (same file names).
    #[arg(long, value_name = "DIR", env = "CONSULCTL_TEMPLATES")]
    pub templates: Option<PathBuf>,

    /// Allow installing an older Consul than the one a host runs (refused by default).
    #[arg(long)]
    pub allow_downgrade: bool,
}

impl InventoryArgs {
    /// All hosts of `inventory` with the defaults (for commands that run a rollout themselves).
    pub fn all_hosts(inventory: &std::path::Path, accept_new_host_keys: bool) -> InventoryArgs {
        InventoryArgs {
            cluster: ClusterArgs {
                inventory: inventory.to_path_buf(),
                accept_new_host_keys,
            },
            limit: None,
            concurrency: 64,
            templates: None,
            allow_downgrade: false,
        }
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// How long the verify phase waits for a healthy cluster, in seconds.
    #[arg(long, default_value_t = 90, value_name = "SECS")]
    pub verify_timeout: u64,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The playbook file (TOML): `name`, then `[[steps]]` with `title`, `task`, `hosts`,
    /// `serial`, and for `task = "command"` a `command = ["program", "arg", ...]`.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,

    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// How long a verify step waits for a healthy cluster, in seconds.
    #[arg(long, default_value_t = 90, value_name = "SECS")]
    pub verify_timeout: u64,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// Clients restarted at once: a number (`3`) or a percentage of the selected clients
    /// (`25%`, rounded down); at least 1.
    #[arg(long, default_value = "25%", value_name = "N|PCT%")]
    pub batch: String,

    /// The longest each step may wait, in seconds: for a healthy cluster before it, for the
    /// agent to come back, for the cluster to be healthy with it back.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub step_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// How many of the agent's most recent log lines to read per host.
    #[arg(long, default_value_t = 300, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub log_lines: u32,

    /// Only log lines of the last MINUTES count as evidence (older ones describe problems that
    /// may be long fixed).
    #[arg(long, default_value_t = 10, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub since: u32,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// A host name from the inventory, or `quorum` to restore a leader from the surviving
    /// servers after most of them are gone for good.
    #[arg(value_name = "NODE|quorum")]
    pub target: String,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Go on when a server's recovery would leave the cluster below quorum while it is down,
    /// or when `recover quorum` finds a leader (with a warning).
    #[arg(long)]
    pub force: bool,

    /// How many moved-aside data dirs (`<data_dir>.stale-<UTC>`) to keep per host; older ones
    /// are deleted, the newest never.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub keep: u32,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// How long to wait for the node (or, for `quorum`, a leader) to come back, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Take hosts out of the cluster: snapshot (servers), `consul leave`, wait for `left`,
    /// stop and disable the agent, move config and data dirs aside (nothing is deleted).
    Remove(NodeRemoveArgs),
}

#[derive(Debug, Args)]
pub struct NodeRemoveArgs {
    /// Host names from the inventory.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Go on when the quorum check refuses (with a warning), and force-leave hosts that SSH
    /// cannot reach or whose agent is not running, from a live server.
    #[arg(long)]
    pub force: bool,

    /// Remove the hosts' `[[hosts]]` entries from the inventory (comments and layout kept).
    #[arg(long)]
    pub update_inventory: bool,

    /// Also move the consul binary aside.
    #[arg(long)]
    pub remove_binary: bool,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// How long to wait for each remote step and for Consul to confirm a removal, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate the gossip key of `encrypt = "auto"`: install the new key on all members, use
    /// it, remove the old one (Consul keyring operations), rewrite the agent configs (no
    /// restart), then update the secrets file.
    Rotate(KeysRotateArgs),
}

#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// How long to wait for each keyring step to reach every member, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub timeout: u64,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Reissue the server certificates of `tls = "auto"` that expire within `--within` days
    /// (the old files are kept under `<state dir>/tls/retired/<UTC>/`), then roll them out:
    /// `consul reload` on the servers, no restart.
    Renew(TlsRenewArgs),
}

#[derive(Debug, Args)]
pub struct TlsRenewArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Reissue certificates that expire within this many days (0: only expired ones).
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub within: u32,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab images if missing, start the hosts, write the inventory, roll out Consul.
    Up(LabUpArgs),
    /// Remove the lab's containers and network.
    Down(LabDownArgs),
}

#[derive(Debug, Args)]
pub struct LabUpArgs {
    /// Lab name: container names, the Docker label `consulctl.lab=<name>`, the network.
    #[arg(long, default_value = "lab")]
    pub name: String,

    #[arg(long, default_value_t = 3)]
    pub servers: u32,

    #[arg(long, default_value_t = 2)]
    pub clients: u32,

    /// Init system of the hosts. `mixed` alternates so both paths run.
    #[arg(long, value_enum, default_value_t = LabInit::Mixed)]
    pub init: LabInit,

    /// Subnet of the lab network (default: a free /24 picked from 10.213.0.0/16).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<ipnet::Ipv4Net>,

    /// Where to write the inventory (default: `inventory/<name>.toml`).
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    /// Only start the hosts and write the inventory; do not run `apply`.
    #[arg(long)]
    pub no_apply: bool,

    #[command(flatten)]
    pub dns: LabDnsArgs,

    /// Hosts that are Docker hosts (e.g. `client1`; comma-separated or repeatable; default:
    /// none): the machine's Docker socket is mounted into their containers at
    /// /var/run/docker.sock and the inventory tags them `docker`. They see (and can change)
    /// every container of the machine, not only the lab's.
    #[arg(long = "docker-hosts", value_name = "HOST,...", value_delimiter = ',')]
    pub docker_hosts: Vec<String>,

    /// Hosts that are load balancers (e.g. `client2`; comma-separated or repeatable; default:
    /// none): the inventory tags them `lb`. Every lab host has Debian's nginx (with the stream
    /// module) and haproxy installed, not running; `apply` starts them where the inventory asks.
    #[arg(long = "lb-hosts", value_name = "HOST,...", value_delimiter = ',')]
    pub lb_hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LabDownArgs {
    #[arg(long, default_value = "lab")]
    pub name: String,
}

pub use consulctl_lab::LabInit;

/// `lab up` options for host DNS plumbing. Meant to be flattened into `LabUpArgs`
/// (`#[command(flatten)] pub dns: LabDnsArgs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct LabDnsArgs {
    /// Systemd hosts whose /etc/resolv.conf belongs to systemd-resolved, not Docker
    /// ("resolved mode"; e.g. `client1`; comma-separated or repeatable; default: none).
    ///
    /// Docker bind-mounts its own /etc/resolv.conf into every container, so that file cannot be
    /// renamed over, removed or made a symlink. A resolved-mode host runs with the extra
    /// capability SYS_ADMIN (and AppArmor unconfined). At every boot it unmounts Docker's file;
    /// at first boot it makes /etc/resolv.conf the symlink to
    /// ../run/systemd/resolve/stub-resolv.conf and enables and starts systemd-resolved. Docker's
    /// DNS server (127.0.0.11) becomes the DNS server of the host's uplink (eth0, domain `~.`),
    /// so container names resolve as on other lab hosts. Other systemd hosts keep Docker's
    /// resolv.conf, with systemd-resolved and dnsmasq installed but disabled; supervisord hosts
    /// have dnsmasq (not started) and no systemd-resolved.
    #[arg(
        long = "resolved-hosts",
        value_name = "HOST,...",
        value_delimiter = ','
    )]
    pub resolved_hosts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_hosts_flag_parses_lists() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            dns: LabDnsArgs,
        }
        let t = T::try_parse_from(["t"]).unwrap();
        assert!(t.dns.resolved_hosts.is_empty());
        let t = T::try_parse_from([
            "t",
            "--resolved-hosts",
            "client1,server1",
            "--resolved-hosts",
            "client3",
        ])
        .unwrap();
        assert_eq!(t.dns.resolved_hosts, ["client1", "server1", "client3"]);
    }
}
