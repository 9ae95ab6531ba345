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
#[command(after_help = examples(&[
    "consulctl apply -i inventory/prod.toml",
    "consulctl plan -i inventory/prod.toml --limit role:client",
    "consulctl status -o json",
]))]
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
    #[command(after_help = examples(&[
        "consulctl apply -i inventory/prod.toml",
        "consulctl apply -i inventory/prod.toml --limit role:client",
        "consulctl apply -i inventory/prod.toml --limit tag:docker -c 8 --verify-timeout 300 -o json",
    ]))]
    Apply(ApplyArgs),
    /// Dry run: connect, gather facts, print the actions and diffs; change nothing.
    #[command(after_help = examples(&[
        "consulctl plan -i inventory/prod.toml",
        "consulctl plan -i inventory/prod.toml --limit server1,client3 -o json",
        "consulctl plan --templates templates/ --limit role:server",
    ]))]
    Plan(PlanArgs),
    /// Show members, leader, raft peers and per-host agent state.
    #[command(after_help = examples(&[
        "consulctl status -i inventory/prod.toml",
        "consulctl status -i inventory/prod.toml -o json",
    ]))]
    Status(StatusArgs),
    /// Run a playbook (TOML steps over built-in tasks and plain commands) on the inventory.
    #[command(after_help = examples(&[
        "consulctl run playbooks/prepare-hosts.toml -i inventory/prod.toml",
        "consulctl run playbooks/prepare-hosts.toml -i inventory/prod.toml --limit role:client -o json",
    ]))]
    Run(RunArgs),
    /// Rolling restart: servers one at a time (followers first, the leader last), then clients
    /// in batches, gated on Consul's health (leader, voters, alive members, autopilot).
    #[command(after_help = examples(&[
        "consulctl restart -i inventory/prod.toml",
        "consulctl restart -i inventory/prod.toml --limit role:client --batch 2",
        "consulctl restart -i inventory/prod.toml --batch 10% --step-timeout 300",
    ]))]
    Restart(RestartArgs),
    /// What Consul's catalog holds per service, with check status, beside what the inventory
    /// declares. Exit 1 when a declared service is missing from the catalog.
    #[command(after_help = examples(&[
        "consulctl services -i inventory/prod.toml",
        "consulctl services -i inventory/prod.toml -o json",
    ]))]
    Services(ServicesArgs),
    /// Find why nodes cannot join or the cluster is unhealthy: agent state, Consul's view and
    /// recent log on every host; per problem the evidence, the cause and the fixing command.
    /// Exit 0 when healthy, 1 when problems were found.
    #[command(after_help = examples(&[
        "consulctl doctor -i inventory/prod.toml",
        "consulctl doctor -i inventory/prod.toml --limit server3 --since 60",
        "consulctl doctor -i inventory/prod.toml -o json",
    ]))]
    Doctor(DoctorArgs),
    /// Repair: `recover NODE` restarts a node with a fresh data dir (the old one moved aside);
    /// `recover quorum` restores a leader when most servers are gone for good (peers.json).
    #[command(after_help = examples(&[
        "consulctl recover server2 -i inventory/prod.toml",
        "consulctl recover client7 -i inventory/prod.toml --keep 1",
        "consulctl recover quorum -i inventory/prod.toml --timeout 300",
    ]))]
    Recover(RecoverArgs),
    /// Gossip encryption keys: `keys rotate` installs a new key on every member, switches to
    /// it and removes the old one, every member alive throughout.
    #[command(after_help = examples(&[
        "consulctl keys rotate -i inventory/prod.toml",
        "consulctl keys rotate -i inventory/prod.toml --timeout 120 -o json",
    ]))]
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Certificates of `tls = "auto"`: `tls renew` reissues server certificates that expire
    /// within a window and rolls them out with `consul reload` (no restart).
    #[command(after_help = examples(&[
        "consulctl tls renew -i inventory/prod.toml",
        "consulctl tls renew -i inventory/prod.toml --within 60",
    ]))]
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Operate on single nodes: `node remove` takes hosts out of the cluster for good.
    #[command(after_help = examples(&[
        "consulctl node remove client7 -i inventory/prod.toml",
        "consulctl node remove server3 -i inventory/prod.toml --update-inventory",
    ]))]
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Break the host locks of a consulctl run that is gone (killed on another machine, or that
    /// machine is down): removes `/var/lib/consulctl/lock` on the selected hosts, naming its
    /// holder. A lock whose process still runs on this machine is refused.
    #[command(after_help = examples(&[
        "consulctl unlock -i inventory/prod.toml",
        "consulctl unlock -i inventory/prod.toml --limit client3",
    ]))]
    Unlock(UnlockArgs),
    /// Local lab hosts (Docker containers with sshd) to try consulctl on.
    #[command(after_help = examples(&[
        "consulctl lab up",
        "consulctl lab up --clients 2 --docker-hosts client1 --lb-hosts client2",
        "consulctl lab down",
    ]))]
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Query Consul's catalog: services (tags, instance counts), one service's instances
    /// (node, address, port, tags, health), nodes; this datacenter or another (`--dc`).
    #[command(after_help = examples(&[
        "consulctl catalog services -i inventory/prod.toml",
        "consulctl catalog service web --tag http --health passing",
        "consulctl catalog nodes --dc dc2",
    ]))]
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Register or deregister a service by hand: on a host's agent (kept across agent
    /// restarts), or with `--external NODE` in the catalog for a node without an agent.
    #[command(after_help = examples(&[
        "consulctl service register web --on client1 --port 8080 --check-http http://127.0.0.1:8080/health",
        "consulctl service register redis-master --external redis-master --address 10.0.0.5 --port 6379",
        "consulctl service deregister web --on client1",
    ]))]
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Maintenance mode of a node or of one service instance: `on` takes it out of DNS and
    /// healthy service queries (with a reason), `off` brings it back.
    #[command(after_help = examples(&[
        "consulctl maint on --on client3 --reason \"kernel upgrade\"",
        "consulctl maint off --on client3",
        "consulctl maint on --on client1,client2 --service web",
    ]))]
    Maint(MaintArgs),
    /// `consul reload` on the chosen agents: they re-read their configuration, no restart.
    #[command(after_help = examples(&[
        "consulctl reload -i inventory/prod.toml",
        "consulctl reload -i inventory/prod.toml --limit role:server",
    ]))]
    Reload(ReloadArgs),
    /// Remove a failed node from the member list (`--prune`: forget it at once). Refused for a
    /// node that is alive.
    #[command(after_help = examples(&[
        "consulctl force-leave client9 -i inventory/prod.toml",
        "consulctl force-leave client9 -i inventory/prod.toml --prune",
    ]))]
    ForceLeave(ForceLeaveArgs),
    /// Inventory tools that need no host: check, JSON Schema, import from Ansible.
    #[command(after_help = examples(&[
        "consulctl inventory check -i inventory/prod.toml",
        "consulctl inventory schema > consulctl.schema.json",
        "consulctl inventory import ansible hosts.ini --out consulctl.toml",
    ]))]
    Inventory {
        #[command(subcommand)]
        command: InventoryCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = examples(&[
        "consulctl completions bash > /etc/bash_completion.d/consulctl",
        "consulctl completions zsh > /usr/local/share/zsh/site-functions/_consulctl",
        "consulctl completions fish > ~/.config/fish/completions/consulctl.fish",
    ]))]
    Completions(CompletionsArgs),
    /// Write the man pages: one per command, into a directory.
    #[command(after_help = examples(&[
        "consulctl man --dir /usr/local/share/man/man1",
        "consulctl man --dir man",
    ]))]
    Man(ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Services with their tags and instance counts (passing / warning / critical).
    #[command(after_help = examples(&[
        "consulctl catalog services -i inventory/prod.toml",
        "consulctl catalog services --tag http --health critical",
        "consulctl catalog services --dc dc2 -o json",
    ]))]
    Services(CatalogServicesArgs),
    /// One service's instances: node, address, port, tags, health.
    #[command(after_help = examples(&[
        "consulctl catalog service web --tag http --health passing",
        "consulctl catalog service redis -i inventory/prod.toml --dc dc2 -o json",
    ]))]
    Service(CatalogServiceArgs),
    /// Nodes of the catalog with their address and health.
    #[command(after_help = examples(&[
        "consulctl catalog nodes -i inventory/prod.toml",
        "consulctl catalog nodes --health critical -o json",
    ]))]
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
    #[command(after_help = examples(&[
        "consulctl service register web --on client1 --port 8080 --tag http --check-http http://127.0.0.1:8080/health",
        "consulctl service register redis-master --external redis-master --address 10.0.0.5 --port 6379",
        "consulctl service register batch --on client2 --check-ttl 30s --meta team=data",
    ]))]
    Register(ServiceRegisterArgs),
    /// Deregister a service instance from a host's agent or from an external node.
    #[command(after_help = examples(&[
        "consulctl service deregister web --on client1",
        "consulctl service deregister redis-master --external redis-master",
    ]))]
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
    #[command(after_help = examples(&[
        "consulctl inventory check",
        "consulctl inventory check -i inventory/prod.toml -o json",
    ]))]
    Check(InventoryCheckArgs),
    /// Print the JSON Schema of the inventory (for TOML editors: taplo, Even Better TOML).
    #[command(after_help = examples(&[
        "consulctl inventory schema > consulctl.schema.json",
        "consulctl inventory schema",
    ]))]
    Schema,
    /// Convert another tool's inventory into a consulctl inventory (printed, or `--out`).
    #[command(after_help = examples(&[
        "consulctl inventory import ansible hosts.ini",
        "consulctl inventory import ansible hosts.yml --out consulctl.toml",
    ]))]
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
    #[command(after_help = examples(&[
        "consulctl inventory import ansible hosts.ini",
        "consulctl inventory import ansible hosts.yml --servers-group consul_server --clients-group consul_agent --out consulctl.toml",
    ]))]
    Ansible(InventoryImportAnsibleArgs),
}

#[derive(Debug, Args)]
pub struct InventoryImportAnsibleArgs {
    /// The Ansible inventory file (INI or YAML: by extension, else by content).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The group whose hosts are Consul servers (with its children).
    #[arg(long, default_value = "consul_servers", value_name = "GROUP")]
    pub servers_group: String,

    /// The group whose hosts are Consul clients (with its children) [default: consul_clients,
    /// when the Ansible inventory has it; without it, servers only].
    #[arg(long, value_name = "GROUP")]
    pub clients_group: Option<String>,

    /// A consulctl inventory whose settings are kept: every table but its [[hosts]], which
    /// are replaced by the imported ones. Without it: defaults to review.
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,

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
    /// The inventory file (TOML). Without -i: the file CONSULCTL_INVENTORY names, else
    /// consulctl.toml in the current directory.
    #[arg(
        short = 'i',
        long = "inventory",
        value_name = "FILE",
        env = settings::INVENTORY_ENV,
        default_value = settings::DEFAULT_INVENTORY
    )]
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
    #[command(after_help = examples(&[
        "consulctl node remove client7 -i inventory/prod.toml",
        "consulctl node remove server3 -i inventory/prod.toml --update-inventory",
        "consulctl node remove client8 client9 -i inventory/prod.toml --force --remove-binary",
    ]))]
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
    #[command(after_help = examples(&[
        "consulctl keys rotate -i inventory/prod.toml",
        "consulctl keys rotate -i inventory/prod.toml --timeout 120 -o json",
    ]))]
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
    #[command(after_help = examples(&[
        "consulctl tls renew -i inventory/prod.toml",
        "consulctl tls renew -i inventory/prod.toml --within 60 -o json",
    ]))]
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
    #[command(after_help = examples(&[
        "consulctl lab up",
        "consulctl lab up --name dev --servers 1 --clients 1 --init systemd --no-apply",
        "consulctl lab up --docker-hosts client1 --lb-hosts client2",
    ]))]
    Up(LabUpArgs),
    /// Remove the lab's containers and network.
    #[command(after_help = examples(&[
        "consulctl lab down",
        "consulctl lab down --name dev",
    ]))]
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

/// The "Examples:" section every command's `--help` ends with: each line a whole command
/// (`consulctl ...`), as typed. The man pages show the same lines ([`examples_of`]); a test
/// parses every one, so they cannot name a flag that does not exist.
fn examples(lines: &[&str]) -> clap::builder::StyledStr {
    use std::fmt::Write as _;
    let heading = clap::builder::styling::Style::new().bold().underline();
    let mut text = clap::builder::StyledStr::new();
    let _ = write!(text, "{heading}Examples:{heading:#}");
    for line in lines {
        let _ = write!(text, "\n  {line}");
    }
    text
}

/// The example lines of `cmd`'s help (its `after_help` from the line `Examples:` on), without
/// styling or indentation.
pub fn examples_of(cmd: &clap::Command) -> Vec<String> {
    let Some(after) = cmd.get_after_help() else {
        return vec![];
    };
    after
        .to_string()
        .lines()
        .skip_while(|l| l.trim() != "Examples:")
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An example as the shell would split it: on whitespace, double or single quotes
    /// holding spaces; a redirection or pipe (`>`, `|`) ends the command.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = vec![];
        let mut word = String::new();
        let mut quote = None;
        let mut in_word = false;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '"' | '\'') => {
                    quote = Some(c);
                    in_word = true;
                }
                (None, c) if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                (None, c) => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        assert!(quote.is_none(), "unbalanced quote in {line:?}");
        if in_word {
            words.push(word);
        }
        let end = words
            .iter()
            .position(|w| [">", ">>", "|", "&&", ";"].contains(&w.as_str()))
            .unwrap_or(words.len());
        words.truncate(end);
        words
    }

    #[test]
    fn shell_words_splits_quotes_and_stops_at_redirections() {
        assert_eq!(
            shell_words(r#"consulctl maint on --reason "kernel upgrade" --on 'a b'"#),
            [
                "consulctl",
                "maint",
                "on",
                "--reason",
                "kernel upgrade",
                "--on",
                "a b"
            ]
        );
        assert_eq!(
            shell_words("consulctl inventory schema > x.json"),
            ["consulctl", "inventory", "schema"]
        );
    }

    /// Every command and subcommand (but clap's `help`) ends its help with at least two
    /// examples, each a command line that parses and runs that very (sub)command.
    #[test]
    fn every_command_has_examples_that_parse() {
        use clap::CommandFactory as _;
        fn walk(cmd: &clap::Command, path: &mut Vec<String>, seen: &mut usize) {
            if cmd.get_name() == "help" && path.len() > 1 {
                return;
            }
            let name = path.join(" ");
            let examples = examples_of(cmd);
            assert!(
                examples.len() >= 2,
                "`{name} --help` has {} example(s), want at least 2: {examples:?}",
                examples.len()
            );
            let help = cmd.clone().render_help().to_string();
            assert!(
                help.trim_end().ends_with(examples.last().unwrap().as_str()),
                "`{name} --help` does not end with its examples:\n{help}"
            );
            for example in &examples {
                assert!(example.starts_with("consulctl "), "{name}: {example:?}");
                let words = shell_words(example);
                assert!(
                    words.starts_with(&path[..]),
                    "an example of `{name}` runs another command: {example:?}"
                );
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("an example of `{name}` does not parse: {example:?}\n{e}");
                }
                *seen += 1;
            }
            for sub in cmd.get_subcommands() {
                path.push(sub.get_name().to_string());
                walk(sub, path, seen);
                path.pop();
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut seen = 0;
        walk(&cmd, &mut vec!["consulctl".to_string()], &mut seen);
        assert!(seen > 60, "only {seen} examples");
    }

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
