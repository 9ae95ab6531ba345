//! Diagnose (pure): what `doctor` read on every host -> findings, each with the hosts, the
//! evidence (a log line or an API answer), the cause in plain words and the consulctl command
//! that fixes it. No SSH here: `doctor.rs` gathers [`Observation`]s, this module judges them,
//! and the unit tests feed it real Consul log lines and API answers from fixture files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::Role;
use crate::view::{Member, RaftServer};

/// What the inventory says the cluster should be.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The inventory file, as the user gave it (for the fix commands: `-i <inventory>`).
    pub inventory: String,
    pub datacenter: String,
    /// Every inventory host: name, role, SSH address, resolved bind address (None when it could
    /// not be resolved).
    pub hosts: Vec<ExpectedHost>,
    /// sha256 (hex, lowercase) of the inventory's gossip key (the base64 text), None when the
    /// inventory configures no encryption.
    pub encrypt_fingerprint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ExpectedHost {
    pub name: String,
    pub role: Role,
    pub address: String,
    pub bind: Option<IpAddr>,
}

/// Everything `doctor` read on one host.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Inventory name.
    pub host: String,
    /// SSH failed: the error. Nothing else was read.
    pub unreachable: Option<String>,
    /// Not read on purpose: the host already failed earlier in the run that asks (the reason,
    /// e.g. "validate: ..."). That failure is reported already; no finding names this host.
    pub skipped: Option<String>,
    /// Whether consul is installed on the host at all (its binary, or a running agent); None
    /// when unknown. A host without it gets one `no-agent` finding and nothing about its
    /// agent's state or data dir (there is no agent whose state could be wrong).
    pub installed: Option<bool>,
    /// A `consul agent` process runs.
    pub agent_pid: Option<u32>,
    /// The init system's view: systemd `ActiveState` (`active`, `failed`, `activating`, ...)
    /// or the supervisord program state (`RUNNING`, `BACKOFF`, `FATAL`, `STOPPED`, ...).
    pub init_state: Option<String>,
    /// systemd `NRestarts` of the unit (None under supervisord or when unknown).
    pub restarts: Option<u32>,
    /// Contents of `<data_dir>/node-id` (trimmed), None when the file is missing.
    pub node_id: Option<String>,
    /// sha256 (hex) of every key in `<data_dir>/serf/local.keyring`, in file order; None when
    /// the file is missing. The keys themselves never leave the host.
    pub keyring: Option<Vec<String>>,
    /// The data dir exists and the agent's user can write it (None: unknown).
    pub data_dir_writable: Option<bool>,
    /// Addresses on the host's interfaces (not loopback).
    pub addresses: Vec<IpAddr>,
    /// Host clock minus control-host clock in milliseconds (round-trip corrected).
    pub clock_offset_ms: Option<i64>,
    /// TCP/UDP listeners on Consul's ports (8300, 8301, 8302, 8500, 8600 and the configured
    /// HTTP port) held by a process that is not consul: (port, process name).
    pub foreign_listeners: Vec<(u16, String)>,
    /// What the local agent answered over HTTP; None when it did not answer.
    pub api: Option<AgentApi>,
    /// The agent's recent log lines, oldest first (journalctl for systemd, the supervisord
    /// log files for supervisord).
    pub log: Vec<String>,
}

/// The local agent's answers.
#[derive(Debug, Clone, Default)]
pub struct AgentApi {
    /// `/v1/agent/self` `.Config.NodeName`, `.Config.Datacenter`, `.Config.NodeID`.
    pub node_name: Option<String>,
    pub datacenter: Option<String>,
    pub node_id: Option<String>,
    /// `/v1/status/leader`: `IP:8300`, None when empty (no leader).
    pub leader: Option<String>,
    /// `/v1/operator/raft/configuration?stale` servers; empty when unavailable.
    pub raft: Vec<RaftServer>,
    /// `/v1/agent/members` (LAN).
    pub members: Vec<Member>,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier: `protocol-version`, `node-id-conflict`, `gossip-key`,
    /// `encryption-mismatch`, `bind-address`, `agent-down`, `crash-loop`, `port-in-use`,
    /// `data-dir`, `no-leader`, `stale-peers`, `missing-peers`, `unknown-members`,
    /// `datacenter-mismatch`, `clock-skew`, `unreachable`, `sudo-password`, `no-agent`,
    /// `not-member`.
    pub code: String,
    /// Inventory host names concerned (sorted, no duplicates); may name a node the inventory
    /// does not know when that is what Consul reports.
    pub hosts: Vec<String>,
    /// The log lines or API answers that show it (verbatim, each trimmed to 300 chars).
    pub evidence: Vec<String>,
    /// The cause in plain words.
    pub cause: String,
    /// The exact consulctl command(s) that fix it, or what to do by hand when no command does.
    pub fix: Vec<String>,
}

/// Finding codes, most severe first: [`diagnose`] returns its findings in this order.
pub const SEVERITY: [&str; 19] = [
    "no-leader",
    "protocol-version",
    "node-id-conflict",
    "gossip-key",
    "encryption-mismatch",
    "datacenter-mismatch",
    "bind-address",
    "port-in-use",
    "data-dir",
    "crash-loop",
    "agent-down",
    "no-agent",
    "stale-peers",
    "missing-peers",
    "unknown-members",
    "not-member",
    "clock-skew",
    "unreachable",
    "sudo-password",
];

/// Codes about what is wrong on the hosts they name: a host one of them names is explained, and
/// the cluster-level symptoms it causes (not a member, missing from raft) are not reported again.
/// (`protocol-version` also names the hosts that log it: only its refused node is explained.)
const HOST_CAUSES: [&str; 12] = [
    "node-id-conflict",
    "gossip-key",
    "encryption-mismatch",
    "datacenter-mismatch",
    "bind-address",
    "port-in-use",
    "data-dir",
    "crash-loop",
    "agent-down",
    "no-agent",
    "unreachable",
    "sudo-password",
];

/// Log lines kept as evidence per host and finding (the latest distinct ones).
const LINES_PER_HOST: usize = 3;
/// Longest evidence entry, in characters.
const EVIDENCE_CHARS: usize = 300;
/// Clock offsets further than this from the hosts' median are reported.
const CLOCK_SKEW_MS: i64 = 5000;
/// systemd restarts from which an agent counts as crash-looping.
const CRASH_LOOP_RESTARTS: u32 = 3;

/// Consul's warning when a `serf/local.keyring` left in the data dir wins over `encrypt`.
const KEYRING_OVERRIDE: &str = "keyring doesn't include key provided with -encrypt";
/// What Consul prints when it cannot pick or bind its address.
const BIND_ERRORS: [&str; 4] = [
    "Multiple private IP",
    "Multiple public IPv6",
    "bind: cannot assign requested address",
    "Failed to get advertise address",
];
/// Log lines that show the agent has (again) a leader after a "No cluster leader".
const LEADER_FOUND: [&str; 4] = [
    "New leader elected",
    "cluster leadership acquired",
    "entering leader state",
    "Synced node info",
];
/// The banner of a successful start: startup errors before it are history.
const AGENT_RUNNING: &str = "Consul agent running!";
/// Log levels as Consul prints them (hclog pads them, the Go logger of Consul <= 1.6 does not).
const LEVELS: [&str; 6] = ["[TRACE]", "[DEBUG]", "[INFO]", "[WARN]", "[ERROR]", "[ERR]"];
/// `==> ` lines of `consul agent` that are not errors.
const UI_INFO: [&str; 14] = [
    "Starting Consul agent",
    "Consul agent running",
    "Log data will now stream",
    "Caught signal",
    "Gracefully shutting down",
    "Graceful leave complete",
    "Reloading configuration",
    "Joining cluster",
    "Join completed",
    "Found address",
    "Loaded configuration",
    "WARNING",
    "Newer Consul version",
    "Attempting",
];

/// Judge the observations. Empty = healthy.
pub fn diagnose(expected: &Expected, obs: &[Observation]) -> Vec<Finding> {
    let cx = Cx {
        exp: expected,
        all: obs,
    };
    let mut out: Vec<Finding> = Vec::new();
    out.extend(cx.unreachable());
    let (refusals, refused) = cx.protocol_version();
    out.extend(refusals);
    out.extend(cx.node_id_conflicts());
    let (mismatch, mismatched) = cx.encryption_mismatch();
    out.extend(mismatch);
    out.extend(cx.gossip_key(&mismatched));
    out.extend(cx.datacenter_mismatch());
    for o in cx.reachable() {
        out.extend(cx.bind_address(o));
        out.extend(cx.port_in_use(o));
        out.extend(cx.data_dir(o));
    }
    for o in cx.reachable() {
        let down = cx.crash_loop_or_down(o, &out);
        out.extend(down);
    }
    out.extend(cx.no_agent());
    let mut explained = hosts_with(&out, &HOST_CAUSES);
    explained.extend(refused);
    // Hosts not read because they already failed: their failure is reported where it happened.
    explained.extend(
        obs.iter()
            .filter(|o| o.skipped.is_some())
            .map(|o| o.host.clone()),
    );
    out.extend(cx.no_leader(&explained));
    out.extend(cx.stale_peers());
    out.extend(cx.missing_peers(&explained));
    let named: BTreeSet<String> = out
        .iter()
        .filter(|f| f.code != "no-leader")
        .flat_map(|f| f.hosts.iter().cloned())
        .collect();
    out.extend(cx.unknown_members(&named));
    out.extend(cx.not_member(&explained));
    out.extend(cx.clock_skew());
    out.sort_by(|a, b| {
        rank(&a.code)
            .cmp(&rank(&b.code))
            .then_with(|| a.hosts.cmp(&b.hosts))
    });
    out
}

/// A readable report: per finding a `PROBLEM <code>: <hosts>` line, then its cause, evidence
/// and fixes, indented; findings are separated by a blank line. Empty for no findings.
pub fn to_text(findings: &[Finding]) -> String {
    let mut s = String::new();
    for (i, f) in findings.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        if f.hosts.is_empty() {
            let _ = writeln!(s, "PROBLEM {}", f.code);
        } else {
            let _ = writeln!(s, "PROBLEM {}: {}", f.code, f.hosts.join(", "));
        }
        let _ = writeln!(s, "    cause: {}", f.cause);
        for e in &f.evidence {
            let _ = writeln!(s, "    evidence: {e}");
        }
        for x in &f.fix {
            let _ = writeln!(s, "    fix: {x}");
        }
    }
    s
}

fn rank(code: &str) -> usize {
    SEVERITY
        .iter()
        .position(|c| *c == code)
        .unwrap_or(SEVERITY.len())
}

/// Hosts named by findings with one of `codes`.
fn hosts_with(findings: &[Finding], codes: &[&str]) -> BTreeSet<String> {
    findings
        .iter()
        .filter(|f| codes.contains(&f.code.as_str()))
        .flat_map(|f| f.hosts.iter().cloned())
        .collect()
}

// --- one finding under construction -------------------------------------------------------

struct Draft {
    code: &'static str,
    hosts: BTreeSet<String>,
    /// API answers and file facts, each already prefixed with its host.
    facts: Vec<String>,
    /// (host, log line); trimmed to the latest distinct lines per host at the end.
    logs: Vec<(String, String)>,
    cause: String,
    fix: Vec<String>,
}

impl Draft {
    fn new(code: &'static str) -> Self {
        Draft {
            code,
            hosts: BTreeSet::new(),
            facts: Vec::new(),
            logs: Vec::new(),
            cause: String::new(),
            fix: Vec::new(),
        }
    }

    fn host(&mut self, name: &str) {
        if !name.is_empty() {
            self.hosts.insert(name.to_string());
        }
    }

    /// A fact read on `host` (an API answer, a file on the host).
    fn fact(&mut self, host: &str, text: &str) {
        self.note(&format!("{host}: {text}"));
    }

    /// A fact about the whole cluster.
    fn note(&mut self, text: &str) {
        let text = clip(text);
        if !self.facts.contains(&text) {
            self.facts.push(text);
        }
    }

    fn log(&mut self, host: &str, line: &str) {
        self.logs.push((host.to_string(), line.to_string()));
    }

    fn fix(&mut self, fix: String) {
        if !self.fix.contains(&fix) {
            self.fix.push(fix);
        }
    }

    fn has_evidence(&self) -> bool {
        !self.facts.is_empty() || !self.logs.is_empty()
    }

    /// The finding, or None when it names no host.
    fn done(self) -> Option<Finding> {
        (!self.hosts.is_empty()).then(|| self.finish())
    }

    fn finish(self) -> Finding {
        let Draft {
            code,
            hosts,
            facts,
            logs,
            cause,
            fix,
        } = self;
        let mut evidence = facts;
        let mut order: Vec<&str> = Vec::new();
        for (h, _) in &logs {
            if !order.contains(&h.as_str()) {
                order.push(h);
            }
        }
        for host in order {
            // The latest distinct lines (timestamps and ephemeral ports aside), oldest first.
            let mut keys = BTreeSet::new();
            let mut kept: Vec<&str> = Vec::new();
            for (_, line) in logs.iter().rev().filter(|(h, _)| h == host) {
                if kept.len() == LINES_PER_HOST {
                    break;
                }
                if keys.insert(dedup_key(line)) {
                    kept.push(line);
                }
            }
            for line in kept.into_iter().rev() {
                let e = clip(&format!("{host}: {}", line.trim()));
                if !evidence.contains(&e) {
                    evidence.push(e);
                }
            }
        }
        Finding {
            code: code.to_string(),
            hosts: hosts.into_iter().collect(),
            evidence,
            cause,
            fix,
        }
    }
}

// --- the judge ------------------------------------------------------------------------------

struct Cx<'a> {
    exp: &'a Expected,
    all: &'a [Observation],
}

/// Hosts that claim the same node ID, found in the node-id files or in Consul's refusals.
#[derive(Default)]
struct Conflict {
    names: BTreeSet<String>,
    /// Lowercase node IDs.
    ids: BTreeSet<String>,
    facts: Vec<(String, String)>,
    /// (order found, host, line)
    logs: Vec<(usize, String, String)>,
    /// Hosts Consul refused (the copies that cannot join).
    refused: BTreeSet<String>,
}

impl Conflict {
    fn overlaps(&self, other: &Conflict) -> bool {
        !self.names.is_disjoint(&other.names) || !self.ids.is_disjoint(&other.ids)
    }

    fn absorb(&mut self, other: Conflict) {
        self.names.extend(other.names);
        self.ids.extend(other.ids);
        self.facts.extend(other.facts);
        self.logs.extend(other.logs);
        self.refused.extend(other.refused);
    }
}

/// Merge conflicts that share a host or a node ID, transitively, keeping the order in which
/// their evidence was found.
fn merge_conflicts(list: Vec<Conflict>) -> Vec<Conflict> {
    let mut out: Vec<Conflict> = Vec::new();
    for mut c in list {
        while let Some(i) = out.iter().position(|o| o.overlaps(&c)) {
            let mut earlier = out.remove(i);
            earlier.absorb(c);
            c = earlier;
        }
        out.push(c);
    }
    out
}

/// Log lines that show one thing: (host, line).
type Sightings<'o> = Vec<(&'o str, &'o str)>;

/// One line that shows a host cannot decrypt gossip: (reporter, remote as named, line).
type Undecryptable<'a> = (&'a str, Option<String>, &'a str);

impl<'a> Cx<'a> {
    fn reachable(&self) -> impl Iterator<Item = &'a Observation> + 'a {
        self.all
            .iter()
            .filter(|o| o.unreachable.is_none() && o.skipped.is_none())
    }

    fn observation(&self, host: &str) -> Option<&'a Observation> {
        self.reachable().find(|o| o.host == host)
    }

    fn expected_host(&self, name: &str) -> Option<&'a ExpectedHost> {
        self.exp.hosts.iter().find(|h| h.name == name)
    }

    fn servers(&self) -> impl Iterator<Item = &'a ExpectedHost> + 'a {
        self.exp.hosts.iter().filter(|h| h.role == Role::Server)
    }

    fn is_server(&self, host: &str) -> bool {
        self.expected_host(host)
            .is_some_and(|h| h.role == Role::Server)
    }

    fn recover(&self, host: &str) -> String {
        format!(
            "consulctl recover {} -i {}",
            sh(host),
            sh(&self.exp.inventory)
        )
    }

    fn recover_quorum(&self) -> String {
        format!("consulctl recover quorum -i {}", sh(&self.exp.inventory))
    }

    fn apply(&self) -> String {
        format!("consulctl apply -i {}", sh(&self.exp.inventory))
    }

    /// The inventory host a node name or address that Consul reports stands for: by name, by
    /// SSH or bind address, or by an interface address that only one host has.
    fn inventory_host(&self, reported: &str) -> Option<&'a ExpectedHost> {
        let reported = reported.trim();
        if reported.is_empty() {
            return None;
        }
        let hosts: &'a [ExpectedHost] = &self.exp.hosts;
        if let Some(h) = hosts.iter().find(|h| h.name.eq_ignore_ascii_case(reported)) {
            return Some(h);
        }
        let addr = strip_port(reported);
        let ip = addr.parse::<IpAddr>().ok();
        let same = |h: &&ExpectedHost| {
            strip_port(&h.address).eq_ignore_ascii_case(addr)
                || (ip.is_some() && (h.bind == ip || host_ip(h) == ip))
        };
        if let Some(h) = hosts.iter().find(same) {
            return Some(h);
        }
        let ip = ip?;
        let mut owners = self.all.iter().filter(|o| o.addresses.contains(&ip));
        let owner = owners.next()?;
        if owners.next().is_some() {
            return None;
        }
        self.expected_host(&owner.host)
    }

    /// The inventory name of a node Consul reports, else Consul's own name for it.
    fn name_of(&self, reported: &str) -> String {
        match self.inventory_host(reported) {
            Some(h) => h.name.clone(),
            None => reported.trim().to_string(),
        }
    }

    fn member_is(&self, m: &Member, h: &ExpectedHost) -> bool {
        m.name.eq_ignore_ascii_case(&h.name)
            || strip_port(&m.addr)
                .parse::<IpAddr>()
                .is_ok_and(|ip| Some(ip) == host_ip(h))
    }

    /// `h`'s status in a member list: alive or leaving when any matching entry is.
    fn member_status(&self, members: &[Member], h: &ExpectedHost) -> Option<u8> {
        members
            .iter()
            .filter(|m| self.member_is(m, h))
            .map(|m| m.status)
            .min_by_key(|s| match s {
                1 | 2 => 0,
                _ => 1,
            })
    }

    /// The other agents' member lists were read and none lists `host` as alive.
    fn seen_not_alive(&self, host: &str) -> bool {
        let Some(h) = self.expected_host(host) else {
            return false;
        };
        let mut views = self
            .reachable()
            .filter(|o| o.host != host)
            .filter_map(|o| o.api.as_ref())
            .filter(|a| !a.members.is_empty())
            .peekable();
        if views.peek().is_none() {
            return false;
        }
        !views.any(|a| self.member_status(&a.members, h) == Some(1))
    }

    // --- findings, in the order diagnose() asks for them --------------------------------------

    /// `unreachable` for hosts SSH did not reach or log in to, `sudo-password` for hosts where
    /// SSH works but the non-root SSH user's `sudo -n` wants a password.
    fn unreachable(&self) -> Vec<Finding> {
        let mut down = Draft::new("unreachable");
        let mut sudo = Draft::new("sudo-password");
        for o in self.all.iter().filter(|o| o.skipped.is_none()) {
            let Some(err) = &o.unreachable else { continue };
            let addr = self
                .expected_host(&o.host)
                .map(|h| format!(" ({})", h.address))
                .unwrap_or_default();
            match ssh_failure(err) {
                SshFailure::SudoPassword => {
                    sudo.host(&o.host);
                    sudo.fact(&o.host, &format!("sudo failed: {}", one_line(err)));
                    sudo.fix(format!(
                        "give the inventory's SSH user of {} passwordless sudo (`USER ALL=(ALL) \
                         NOPASSWD: ALL` in /etc/sudoers.d/) or connect as root (ssh.user), then \
                         run doctor again",
                        o.host
                    ));
                }
                SshFailure::LoginRefused => {
                    down.host(&o.host);
                    down.fact(&o.host, &format!("SSH failed: {}", one_line(err)));
                    down.fix(format!(
                        "{}{addr} answers but refused the SSH login: check the inventory's ssh \
                         user, identity_file and known_hosts for it, then run doctor again",
                        o.host
                    ));
                }
                SshFailure::NoAnswer => {
                    down.host(&o.host);
                    down.fact(&o.host, &format!("SSH failed: {}", one_line(err)));
                    down.fix(format!(
                        "{}{addr} did not answer over SSH: check that the host is up, reachable \
                         from here at that address and runs sshd, then run doctor again",
                        o.host
                    ));
                }
            }
        }
        down.cause =
            "doctor could not log in to these hosts over SSH, so nothing was checked on them"
                .into();
        sudo.cause = "SSH works, but the SSH user's `sudo -n` asks for a password, so nothing \
                      was checked on these hosts (consulctl runs its commands as root through \
                      `sudo -n`)"
            .into();
        down.done().into_iter().chain(sudo.done()).collect()
    }

    /// Hosts where consul is not installed at all.
    fn no_agent(&self) -> Option<Finding> {
        let mut d = Draft::new("no-agent");
        for o in self.reachable().filter(|o| o.installed == Some(false)) {
            d.host(&o.host);
            d.fact(
                &o.host,
                "no consul binary at the inventory's path and no consul agent running",
            );
        }
        d.cause = "consul is not installed on these hosts: they were never rolled out (or the \
                   rollout failed before installing it), or it was removed"
            .into();
        d.fix(self.apply());
        d.done()
    }

    /// Also returns the refused nodes (as named in the findings).
    fn protocol_version(&self) -> (Vec<Finding>, BTreeSet<String>) {
        // The refused node as Consul names it -> (its version, [(log host, line)]).
        let mut refused: BTreeMap<String, (String, Sightings<'_>)> = BTreeMap::new();
        for o in self.reachable() {
            for line in &o.log {
                if let Some((node, version)) = protocol_node(line) {
                    let e = refused
                        .entry(node.to_string())
                        .or_insert_with(|| (version.to_string(), Vec::new()));
                    e.1.push((&o.host, line));
                }
            }
        }
        let names = refused.keys().map(|node| self.name_of(node)).collect();
        let findings = refused
            .into_iter()
            .map(|(node, (version, lines))| {
                let mut d = Draft::new("protocol-version");
                d.host(&self.name_of(&node));
                for (host, line) in lines {
                    d.host(host);
                    d.log(host, line);
                }
                d.cause = format!(
                    "the agents refuse to merge gossip state that holds node '{node}': it \
                     claims memberlist protocol version {version}, which no agent of this cluster \
                     speaks. It is a stale member entry or an agent of an incompatible Consul \
                     version, and every push/pull that carries it fails"
                );
                match self.inventory_host(&node) {
                    Some(h) => {
                        d.fix(self.recover(&h.name));
                        if !h.name.eq_ignore_ascii_case(&node) {
                            d.fix(format!(
                                "if `consul members` still lists '{node}' afterwards, remove that \
                                 entry by hand on any server: `consul force-leave -prune {}`",
                                sh(&node)
                            ));
                        }
                    }
                    None => d.fix(format!(
                        "'{node}' is not in the inventory: stop the consul agent on it, then \
                         remove its entry by hand on any server: `consul force-leave -prune {}`",
                        sh(&node)
                    )),
                }
                d.finish()
            })
            .collect();
        (findings, names)
    }

    fn node_id_conflicts(&self) -> Vec<Finding> {
        let mut list = Vec::new();
        // The same node-id file on several hosts: the strongest evidence.
        let mut by_id: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for o in self.reachable() {
            let id = o
                .node_id
                .as_deref()
                .or_else(|| o.api.as_ref().and_then(|a| a.node_id.as_deref()));
            if let Some(id) = id.map(str::trim).filter(|id| !id.is_empty()) {
                by_id
                    .entry(id.to_ascii_lowercase())
                    .or_default()
                    .push(&o.host);
            }
        }
        for (id, hosts) in by_id.into_iter().filter(|(_, hosts)| hosts.len() > 1) {
            let mut c = Conflict::default();
            for host in &hosts {
                let others: Vec<&str> = hosts.iter().filter(|h| *h != host).copied().collect();
                c.names.insert(host.to_string());
                c.facts.push((
                    host.to_string(),
                    format!("node ID {id}, the same as on {}", others.join(", ")),
                ));
            }
            c.ids.insert(id);
            list.push(c);
        }
        // Consul's refusals.
        let mut seq = 0;
        for o in self.reachable() {
            for line in &o.log {
                let Some((member, id, other)) = id_conflict(line) else {
                    continue;
                };
                let mut c = Conflict::default();
                let member = self.name_of(member);
                match other {
                    // Logged by the agent that cannot join: it holds the copy.
                    None => {
                        c.refused.insert(o.host.clone());
                        c.names.insert(o.host.clone());
                    }
                    // Logged by an agent that refuses `member`, a newcomer with a known ID.
                    Some(other) => {
                        c.refused.insert(member.clone());
                        c.names.insert(self.name_of(other));
                    }
                }
                c.names.insert(member);
                c.ids.insert(id.to_ascii_lowercase());
                c.logs.push((seq, o.host.clone(), line.clone()));
                seq += 1;
                list.push(c);
            }
        }
        merge_conflicts(list)
            .into_iter()
            .filter(|c| !self.conflict_resolved(c))
            .map(|c| self.conflict_finding(c))
            .collect()
    }

    /// A conflict known only from log lines that no longer holds: every node it names is an
    /// inventory host whose agent runs, is an alive member in the other agents' view, and the
    /// node-id files now differ (e.g. after `consulctl recover`). The lines stay in the log for
    /// a while; the present state wins.
    fn conflict_resolved(&self, c: &Conflict) -> bool {
        if !c.facts.is_empty() {
            return false;
        }
        let mut ids = BTreeSet::new();
        for name in &c.names {
            let Some(o) = self.observation(name) else {
                return false;
            };
            let Some(id) = o.node_id.as_deref() else {
                return false;
            };
            if o.agent_pid.is_none() || self.seen_not_alive(name) || !self.seen_alive(name) {
                return false;
            }
            ids.insert(id.to_ascii_lowercase());
        }
        ids.len() == c.names.len()
    }

    /// Some other agent's member list shows `host` alive.
    fn seen_alive(&self, host: &str) -> bool {
        let Some(h) = self.expected_host(host) else {
            return false;
        };
        self.reachable()
            .filter(|o| o.host != host)
            .filter_map(|o| o.api.as_ref())
            .any(|a| self.member_status(&a.members, h) == Some(1))
    }

    fn conflict_finding(&self, mut c: Conflict) -> Finding {
        let mut d = Draft::new("node-id-conflict");
        for name in &c.names {
            d.host(name);
        }
        for (host, fact) in &c.facts {
            d.fact(host, fact);
        }
        c.logs.sort_by_key(|(seq, _, _)| *seq);
        for (_, host, line) in &c.logs {
            d.log(host, line);
        }
        // Which copy to reset cannot be known for sure: the ones Consul refuses or that are not
        // alive members, else all but the first in inventory order.
        let group: Vec<&str> = self
            .exp
            .hosts
            .iter()
            .filter(|h| c.names.contains(&h.name))
            .map(|h| h.name.as_str())
            .collect();
        let mut reset: Vec<&str> = group
            .iter()
            .copied()
            .filter(|h| c.refused.contains(*h) || self.seen_not_alive(h))
            .collect();
        if reset.is_empty() || reset.len() == group.len() {
            reset = group.iter().skip(1).copied().collect();
        }
        let names = c.names.iter().map(String::as_str).collect::<Vec<_>>();
        d.cause = format!(
            "{} share one node ID: the data dir's node-id file was copied along (a cloned VM or \
             disk image), and Consul refuses a second member with an ID it already knows. A fresh \
             data dir gives the copy a new ID",
            names.join(" and ")
        );
        for host in reset {
            d.fix(self.recover(host));
        }
        for name in c.names.iter().filter(|n| self.expected_host(n).is_none()) {
            d.fix(format!(
                "'{name}' is not in the inventory: on it, stop the consul agent, delete \
                 <data_dir>/node-id and start it again (or keep it out of this cluster)"
            ));
        }
        d.finish()
    }

    /// Encryption on one side only. Also returns the hosts on the wrong side, whose
    /// undecryptable messages are this problem and not a wrong key.
    fn encryption_mismatch(&self) -> (Option<Finding>, BTreeSet<String>) {
        let want = self.exp.encrypt_fingerprint.is_some();
        let mut d = Draft::new("encryption-mismatch");
        let mut wrong: BTreeSet<String> = BTreeSet::new();
        for o in self.reachable() {
            match (&o.keyring, want) {
                (Some(keys), false) => {
                    wrong.insert(o.host.clone());
                    d.fact(
                        &o.host,
                        &format!(
                            "serf/local.keyring holds {} key(s), but the inventory configures no \
                             gossip encryption",
                            keys.len()
                        ),
                    );
                }
                (None, true) if o.agent_pid.is_some() => {
                    wrong.insert(o.host.clone());
                    d.fact(
                        &o.host,
                        "the agent runs without serf/local.keyring, but the inventory sets a \
                         gossip key",
                    );
                }
                _ => {}
            }
            for line in &o.log {
                let Some(local_encrypts) = encryption_side(line) else {
                    continue;
                };
                // The wrong side is the one that does not do what the inventory says.
                let culprit = if local_encrypts == want {
                    remote_addr(line).map(|r| self.name_of(r))
                } else {
                    Some(o.host.clone())
                };
                match culprit {
                    Some(c) => {
                        wrong.insert(c);
                    }
                    None => d.host(&o.host),
                }
                d.log(&o.host, line);
            }
        }
        for w in &wrong {
            d.host(w);
        }
        if want {
            d.cause = "the inventory sets a gossip encryption key, but these agents gossip in \
                       plain text (no key in their config, no serf/local.keyring): encrypted and \
                       plain agents cannot talk to each other"
                .into();
            if wrong.iter().any(|w| self.expected_host(w).is_some()) || wrong.is_empty() {
                d.fix(self.apply());
            }
        } else {
            d.cause = "the inventory configures no gossip encryption, but these agents encrypt: \
                       a serf/local.keyring left in their data dir turns encryption on. Encrypted \
                       and plain agents cannot talk to each other"
                .into();
            for w in wrong.iter().filter(|w| self.expected_host(w).is_some()) {
                d.fix(self.recover(w));
            }
            if wrong.is_empty() {
                d.fix(
                    "find the agents with a <data_dir>/serf/local.keyring and recover each of them \
                     with `consulctl recover HOST`"
                        .into(),
                );
            }
        }
        for w in wrong.iter().filter(|w| self.expected_host(w).is_none()) {
            d.fix(format!(
                "'{w}' is not in the inventory: configure it like the inventory's agents, or keep \
                 it out of this cluster"
            ));
        }
        (d.done(), wrong)
    }

    fn gossip_key(&self, mismatched: &BTreeSet<String>) -> Option<Finding> {
        let mut d = Draft::new("gossip-key");
        let mut culprits: BTreeSet<String> = BTreeSet::new();
        let (mut stale_file, mut foreign_key) = (false, false);
        let fp = self.exp.encrypt_fingerprint.as_deref();
        for o in self.reachable() {
            let holds_key = match (fp, &o.keyring) {
                (Some(fp), Some(keys)) => {
                    Some(keys.iter().any(|k| k.trim().eq_ignore_ascii_case(fp)))
                }
                _ => None,
            };
            if holds_key == Some(false) {
                foreign_key = true;
                culprits.insert(o.host.clone());
                let n = o.keyring.as_ref().map_or(0, Vec::len);
                d.fact(
                    &o.host,
                    &format!(
                        "serf/local.keyring holds {n} key(s), none is the inventory's encrypt key"
                    ),
                );
            }
            // A warning from before the keyring got the key is history. The warning is the
            // evidence to keep (as a fact), however many errors follow it.
            if holds_key != Some(true) {
                if let Some(line) = o.log.iter().rev().find(|l| l.contains(KEYRING_OVERRIDE)) {
                    stale_file = true;
                    culprits.insert(o.host.clone());
                    d.fact(&o.host, line.trim());
                }
            }
        }
        let mut reports: Vec<Undecryptable<'a>> = Vec::new();
        for o in self.reachable().filter(|o| !mismatched.contains(&o.host)) {
            for line in o
                .log
                .iter()
                .filter(|l| contains_ci(l, "no installed keys could decrypt"))
            {
                let remote = remote_addr(line).map(|r| self.name_of(r));
                if remote.as_ref().is_some_and(|r| mismatched.contains(r)) {
                    continue;
                }
                reports.push((&o.host, remote, line));
            }
        }
        if culprits.is_empty() {
            culprits = odd_one_out(&reports);
        }
        if culprits.is_empty() && reports.is_empty() {
            return None;
        }
        // The culprits' own lines first, then what at most two other hosts saw.
        let mut others: Vec<&str> = Vec::new();
        for (reporter, _, line) in reports.iter().filter(|r| culprits.contains(r.0)) {
            d.log(reporter, line);
        }
        for (reporter, _, line) in reports.iter().filter(|r| !culprits.contains(r.0)) {
            if !others.contains(reporter) {
                if others.len() == 2 {
                    continue;
                }
                others.push(reporter);
            }
            d.log(reporter, line);
        }
        if culprits.is_empty() {
            for (reporter, remote, _) in &reports {
                d.host(reporter);
                if let Some(r) = remote {
                    d.host(r);
                }
            }
            d.cause = "agents use different gossip encryption keys and cannot decrypt each \
                       other's messages; these logs alone do not tell which side holds the wrong \
                       key"
            .into();
            d.fix(
                "run `consul keyring -list` on a server to see which nodes lack the inventory's key"
                    .into(),
            );
            d.fix(format!(
                "recover each of them: {} (a fresh data dir rebuilds serf/local.keyring from the \
                 configured key)",
                self.recover("HOST")
            ));
            return d.done();
        }
        let names = culprits
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        d.cause = if stale_file {
            format!(
                "a serf/local.keyring left in the data dir of {names} does not hold the configured \
                 key, and Consul uses that file over the `encrypt` setting (it only warns): these \
                 agents gossip with an old key the others do not have"
            )
        } else if foreign_key {
            format!(
                "the serf/local.keyring of {names} does not hold the inventory's gossip key: these \
                 agents encrypt gossip with a key the others do not have"
            )
        } else {
            format!(
                "most agents cannot decrypt the gossip of {names}: it uses another gossip key than \
                 the rest of the cluster"
            )
        };
        for c in &culprits {
            d.host(c);
            if self.expected_host(c).is_some() {
                d.fix(self.recover(c));
            } else {
                d.fix(format!(
                    "'{c}' is not in the inventory: give it the cluster's gossip key or stop \
                     its agent"
                ));
            }
        }
        d.done()
    }

    fn datacenter_mismatch(&self) -> Option<Finding> {
        let want = self.exp.datacenter.as_str();
        let mut d = Draft::new("datacenter-mismatch");
        let mut wrong: BTreeSet<String> = BTreeSet::new();
        for o in self.reachable() {
            let dc = o.api.as_ref().and_then(|a| a.datacenter.as_deref());
            if let Some(dc) = dc.filter(|dc| !want.is_empty() && !dc.eq_ignore_ascii_case(want)) {
                wrong.insert(o.host.clone());
                d.fact(
                    &o.host,
                    &format!("agent reports datacenter {dc}, inventory says {want}"),
                );
            }
            for line in &o.log {
                let Some((member, dc)) = wrong_dc(line) else {
                    continue;
                };
                // The refused member's datacenter is the inventory's: the logging agent is wrong.
                wrong.insert(if dc.eq_ignore_ascii_case(want) {
                    o.host.clone()
                } else {
                    self.name_of(member)
                });
                d.log(&o.host, line);
            }
        }
        if wrong.is_empty() {
            return None;
        }
        d.cause = format!(
            "these agents run in another datacenter than the inventory's '{want}': agents of \
             different datacenters refuse each other on the LAN"
        );
        if wrong.iter().any(|w| self.expected_host(w).is_some()) {
            d.fix(self.apply());
        }
        for w in &wrong {
            d.host(w);
            if self.is_server(w) {
                // A server's raft data belongs to the datacenter it was created in.
                d.fix(self.recover(w));
            } else if self.expected_host(w).is_none() {
                d.fix(format!(
                    "'{w}' is not in the inventory: it belongs to another datacenter; remove this \
                     cluster's addresses from its retry_join"
                ));
            }
        }
        d.done()
    }

    fn bind_address(&self, o: &Observation) -> Option<Finding> {
        let mut d = Draft::new("bind-address");
        let addrs = o
            .addresses
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let bind = self
            .expected_host(&o.host)
            .and_then(|h| h.bind)
            .filter(|ip| !ip.is_unspecified());
        if let Some(ip) = bind.filter(|ip| !o.addresses.is_empty() && !o.addresses.contains(ip)) {
            let text = format!(
                "the inventory's bind address {ip} is on none of the host's interfaces ({addrs})"
            );
            d.fact(&o.host, &text);
        }
        let several = d.facts.is_empty()
            && startup_lines(o)
                .iter()
                .any(|l| l.contains("Multiple private IP") || l.contains("Multiple public IPv6"));
        for line in startup_lines(o)
            .iter()
            .filter(|l| BIND_ERRORS.iter().any(|m| l.contains(m)))
        {
            d.log(&o.host, line);
        }
        if !d.has_evidence() {
            return None;
        }
        d.host(&o.host);
        d.cause = if several {
            format!(
                "{} has several private addresses and its agent config names none, so Consul \
                 cannot choose which one to bind and advertise",
                o.host
            )
        } else {
            format!(
                "the agent on {} is set to bind an address the host does not have (the host's \
                 address changed, or the inventory is wrong)",
                o.host
            )
        };
        let has = if addrs.is_empty() {
            String::new()
        } else {
            format!(" (the host has: {addrs})")
        };
        d.fix(format!(
            "set bind_addr (or a bind_cidr) for {} in the inventory to the address the other \
             agents reach it on{has}",
            o.host
        ));
        d.fix(self.apply());
        d.done()
    }

    fn port_in_use(&self, o: &Observation) -> Option<Finding> {
        let mut d = Draft::new("port-in-use");
        for (port, process) in &o.foreign_listeners {
            d.fact(&o.host, &format!("port {port} is held by {process}"));
        }
        let lines: Vec<&String> = startup_lines(o)
            .iter()
            .filter(|l| l.contains("address already in use"))
            .collect();
        for line in &lines {
            d.log(&o.host, line);
        }
        if !d.has_evidence() {
            return None;
        }
        d.host(&o.host);
        if o.foreign_listeners.is_empty() {
            let ports: BTreeSet<u16> = lines.iter().filter_map(|l| listen_port(l)).collect();
            let ports = ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let which = if ports.is_empty() {
                "one of Consul's ports".to_string()
            } else {
                format!("port {ports}")
            };
            d.cause = format!(
                "{which} was taken when the agent started: by another program, or by a second \
                 consul process the init system does not know about"
            );
            d.fix(format!(
                "on {}, find what holds {which} (`ss -ltnup`) and stop it",
                o.host
            ));
        } else {
            let held = o
                .foreign_listeners
                .iter()
                .map(|(port, process)| format!("{process} on port {port}"))
                .collect::<Vec<_>>()
                .join(", ");
            d.cause = format!(
                "other programs listen on Consul's ports ({held}), so the agent cannot bind them"
            );
            for (port, process) in &o.foreign_listeners {
                d.fix(format!(
                    "on {}, stop {process} or move it off port {port}",
                    o.host
                ));
            }
        }
        d.fix(self.apply());
        d.done()
    }

    fn data_dir(&self, o: &Observation) -> Option<Finding> {
        if o.installed == Some(false) {
            // No agent: a missing data dir is what a host looks like before its first apply.
            return None;
        }
        let mut d = Draft::new("data-dir");
        if o.data_dir_writable == Some(false) {
            d.fact(
                &o.host,
                "the data dir is missing or the agent's user cannot write it",
            );
        }
        for line in startup_lines(o).iter().filter(|l| data_dir_error(l)) {
            d.log(&o.host, line);
        }
        if !d.has_evidence() {
            return None;
        }
        d.host(&o.host);
        d.cause = "the agent cannot write its data dir (wrong owner or mode, a read-only or full \
                   file system); Consul keeps its node ID, raft data and keyring there"
            .into();
        d.fix(format!(
            "on {}, make the data dir exist and belong to the agent's user (e.g. `chown -R consul: \
             <data_dir>`), remount its file system read-write or free space",
            o.host
        ));
        d.fix(self.apply());
        d.done()
    }

    /// `crash-loop` when the init system keeps restarting the agent, else `agent-down` when no
    /// agent runs. `so_far`: the findings that may already tell why.
    fn crash_loop_or_down(&self, o: &Observation, so_far: &[Finding]) -> Option<Finding> {
        if o.installed == Some(false) {
            return None; // `no-agent` says it
        }
        let looping = is_looping(o);
        if !looping && o.agent_pid.is_some() {
            return None;
        }
        let mut d = Draft::new(if looping { "crash-loop" } else { "agent-down" });
        d.host(&o.host);
        let state = o
            .init_state
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown");
        match (looping, o.restarts) {
            (true, Some(n)) => d.fact(
                &o.host,
                &format!("systemd restarted the agent {n} times; unit state: {state}"),
            ),
            (true, None) => d.fact(&o.host, &format!("supervisord state: {state}")),
            (false, _) => d.fact(
                &o.host,
                &format!("no consul agent process runs (init state: {state})"),
            ),
        }
        let last = last_error(&o.log);
        if let Some(line) = last {
            d.log(&o.host, line);
        }
        let specific: Vec<&str> = so_far
            .iter()
            .filter(|f| ["bind-address", "port-in-use", "data-dir"].contains(&f.code.as_str()))
            .filter(|f| f.hosts.contains(&o.host))
            .map(|f| f.code.as_str())
            .collect();
        let what = if looping {
            "the agent exits soon after each start and the init system keeps restarting it"
        } else {
            "the consul agent is not running"
        };
        d.cause = match (specific.is_empty(), last.is_some()) {
            (false, _) => format!(
                "{what}; the {} finding for {} tells why",
                specific.join(" and "),
                o.host
            ),
            (true, true) => format!("{what}; its last error is quoted below"),
            (true, false) => format!("{what}; its log shows no error"),
        };
        if !specific.is_empty() {
            d.fix(format!(
                "fix the {} problem of {} first (see that finding)",
                specific.join(" and "),
                o.host
            ));
        } else if looping {
            d.fix(format!(
                "read the agent's log on {} (`journalctl -u consul -n 200`, or the supervisord log \
                 files) and fix the error it reports",
                o.host
            ));
        }
        d.fix(self.apply());
        d.done()
    }

    fn no_leader(&self, explained: &BTreeSet<String>) -> Option<Finding> {
        let servers: Vec<&ExpectedHost> = self.servers().collect();
        let mut without: Vec<(&str, Option<&str>)> = Vec::new();
        let mut silent: Vec<(&str, &str)> = Vec::new();
        let mut led = false;
        for h in &servers {
            let Some(o) = self.observation(&h.name) else {
                continue;
            };
            match &o.api {
                Some(api) if api.leader.is_some() => led = true,
                Some(_) => without.push((&h.name, current_no_leader(&o.log))),
                None => silent.extend(current_no_leader(&o.log).map(|l| (h.name.as_str(), l))),
            }
        }
        if led {
            // The cluster has a leader: the servers without one are cut off, and what cuts them
            // off is reported for them already when it is known.
            without.retain(|(h, _)| !explained.contains(*h));
            silent.clear();
        }
        if without.is_empty() && silent.is_empty() {
            return None;
        }
        let mut d = Draft::new("no-leader");
        for (host, line) in &without {
            d.host(host);
            d.fact(host, "answers, but /v1/status/leader is empty");
            if let Some(line) = line {
                d.log(host, line);
            }
        }
        for (host, line) in &silent {
            d.host(host);
            d.log(host, line);
        }
        let up = servers
            .iter()
            .filter(|h| {
                self.observation(&h.name)
                    .is_some_and(|o| o.agent_pid.is_some() && o.api.is_some())
            })
            .count();
        let n = servers.len();
        let quorum = n / 2 + 1;
        d.note(&format!(
            "{up} of the inventory's {n} servers run and answer; a leader needs {quorum}"
        ));
        if led {
            d.cause = "these servers have no leader while the other servers follow one: they are \
                       not part of the cluster's raft (they never joined, or they are cut off)"
                .into();
            for (host, _) in &without {
                d.fix(self.recover(host));
            }
        } else if up < quorum {
            d.cause = format!(
                "the servers have no raft leader: only {up} of the inventory's {n} servers run and \
                 answer, and electing a leader needs {quorum}"
            );
            d.fix("start the stopped servers again if they can run (see their findings)".into());
            d.fix(format!(
                "if they are gone for good: {}",
                self.recover_quorum()
            ));
        } else {
            d.cause = format!(
                "the servers have no raft leader although {up} of {n} servers run and answer (a \
                 leader needs {quorum}): an election is under way, or the servers cannot reach \
                 each other or disagree about the raft peers"
            );
            d.fix("wait a minute and run doctor again: an election takes seconds".into());
            d.fix(format!(
                "if there is still no leader, fix the servers' other findings; as a last resort {} \
                 rewrites the raft peer set from the inventory",
                self.recover_quorum()
            ));
        }
        d.done()
    }

    fn stale_peers(&self) -> Option<Finding> {
        let ips: BTreeSet<IpAddr> = self.servers().filter_map(host_ip).collect();
        let names: BTreeSet<String> = self
            .servers()
            .map(|h| h.name.to_ascii_lowercase())
            .collect();
        // (node, address) -> (read on, voter)
        let mut stale: BTreeMap<(&str, &str), (&str, bool)> = BTreeMap::new();
        for o in self.reachable() {
            for r in o.api.iter().flat_map(|a| &a.raft) {
                let ip = strip_port(&r.address).parse::<IpAddr>().ok();
                if ip.is_some_and(|ip| ips.contains(&ip))
                    || names.contains(&r.node.to_ascii_lowercase())
                {
                    continue;
                }
                stale
                    .entry((&r.node, &r.address))
                    .or_insert((&o.host, r.voter));
            }
        }
        if stale.is_empty() {
            return None;
        }
        let mut d = Draft::new("stale-peers");
        for ((node, address), (read_on, voter)) in &stale {
            let name = match self
                .inventory_host(node)
                .or_else(|| self.inventory_host(address))
            {
                Some(h) => h.name.clone(),
                None if node.is_empty() || *node == "(unknown)" => address.to_string(),
                None => node.to_string(),
            };
            d.host(&name);
            let kind = if *voter { "voter" } else { "non-voter" };
            let text = format!(
                "raft configuration lists {kind} '{node}' at {address}, not an inventory server"
            );
            d.fact(read_on, &text);
            d.fix(format!(
                "by hand on any server: `consul operator raft remove-peer -address={address}`"
            ));
        }
        d.fix(format!(
            "when there is no leader instead: {} (rewrites the raft peer set from the inventory; \
             `consulctl node remove` only takes inventory hosts)",
            self.recover_quorum()
        ));
        d.cause = "the raft configuration still lists servers that are not in the inventory \
                   (replaced or removed servers that never left): they count toward the quorum, so \
                   fewer failures take the leader away"
            .into();
        d.done()
    }

    fn missing_peers(&self, explained: &BTreeSet<String>) -> Option<Finding> {
        let leader = self
            .reachable()
            .filter_map(|o| o.api.as_ref())
            .find_map(|a| a.leader.as_deref())?;
        let leader_ip = strip_port(leader).parse::<IpAddr>().ok();
        // The raft configuration as the leader tells it, else as any server does.
        let views: Vec<(&Observation, &AgentApi)> = self
            .reachable()
            .filter(|o| self.is_server(&o.host))
            .filter_map(|o| o.api.as_ref().map(|a| (o, a)))
            .filter(|(_, a)| !a.raft.is_empty())
            .collect();
        let is_leader = |o: &Observation| {
            leader_ip.is_some() && self.expected_host(&o.host).and_then(host_ip) == leader_ip
        };
        let (read_on, api) = views
            .iter()
            .find(|(o, _)| is_leader(o))
            .or(views.first())
            .copied()?;
        let absent: Vec<&ExpectedHost> = self
            .servers()
            .filter(|h| !explained.contains(&h.name))
            .filter(|h| {
                !api.raft.iter().any(|r| {
                    r.node.eq_ignore_ascii_case(&h.name)
                        || strip_port(&r.address)
                            .parse::<IpAddr>()
                            .ok()
                            .is_some_and(|ip| Some(ip) == host_ip(h))
                })
            })
            .collect();
        if absent.is_empty() {
            return None;
        }
        let mut d = Draft::new("missing-peers");
        let peers = api
            .raft
            .iter()
            .map(|r| format!("{} {}", r.node, r.address))
            .collect::<Vec<_>>()
            .join(", ");
        let names = absent
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        d.fact(
            &read_on.host,
            &format!("raft configuration (leader {leader}) holds {peers}; not {names}"),
        );
        for h in &absent {
            d.host(&h.name);
            d.fix(self.recover(&h.name));
        }
        d.cause = "inventory servers are missing from the raft configuration while a leader \
                   exists: they hold no copy of the data and do not count toward the quorum. A \
                   fresh data dir makes a server join again, and the leader adds it"
            .into();
        d.done()
    }

    fn unknown_members(&self, named: &BTreeSet<String>) -> Option<Finding> {
        // name -> (address, status, seen by)
        let mut unknown: BTreeMap<&str, (&str, &'static str, Vec<&str>)> = BTreeMap::new();
        for o in self.reachable() {
            for m in o.api.iter().flat_map(|a| &a.members) {
                if !matches!(m.status, 1 | 4)
                    || named.contains(&m.name)
                    || self.inventory_host(&m.name).is_some()
                    || self.inventory_host(&m.addr).is_some()
                {
                    continue;
                }
                let e = unknown
                    .entry(&m.name)
                    .or_insert((&m.addr, m.status_word(), Vec::new()));
                e.2.push(&o.host);
            }
        }
        if unknown.is_empty() {
            return None;
        }
        let mut d = Draft::new("unknown-members");
        for (name, (addr, status, seen_by)) in &unknown {
            d.host(name);
            let also = match seen_by.len() {
                1 => String::new(),
                n => format!(" (and {} more agents)", n - 1),
            };
            d.fact(
                seen_by[0],
                &format!("member list has '{name}' at {addr}, {status}{also}"),
            );
            d.fix(format!(
                "add {name} to the inventory if it belongs to this cluster; else, by hand on any \
                 server: `consul force-leave -prune {}` (stop its agent first, or it rejoins)",
                sh(name)
            ));
        }
        d.cause = "the cluster has members the inventory does not know: agents set up outside \
                   consulctl, or nodes that were replaced or renamed and never left"
            .into();
        d.done()
    }

    fn not_member(&self, explained: &BTreeSet<String>) -> Option<Finding> {
        let views: Vec<(&str, &[Member])> = self
            .reachable()
            .filter(|o| self.is_server(&o.host))
            .filter_map(|o| {
                o.api
                    .as_ref()
                    .map(|a| (o.host.as_str(), a.members.as_slice()))
            })
            .filter(|(_, members)| !members.is_empty())
            .collect();
        let mut d = Draft::new("not-member");
        for h in &self.exp.hosts {
            let Some(o) = self.observation(&h.name) else {
                continue;
            };
            if o.agent_pid.is_none() || explained.contains(&h.name) {
                continue;
            }
            let seen: Vec<(&str, Option<u8>)> = views
                .iter()
                .filter(|(server, _)| *server != h.name)
                .map(|(server, members)| (*server, self.member_status(members, h)))
                .collect();
            if seen.is_empty() || seen.iter().any(|(_, status)| matches!(status, Some(1 | 2))) {
                continue;
            }
            d.host(&h.name);
            for (server, status) in seen {
                let text = match status {
                    None => format!("member list has no {}", h.name),
                    Some(s) => format!("member list has {} as {}", h.name, status_word(s)),
                };
                d.fact(server, &text);
            }
            d.fix(self.apply());
            d.fix(self.recover(&h.name));
        }
        d.cause = "the agent runs, but the servers do not list it as a live member: it never \
                   joined, or it was dropped. `apply` rewrites its join addresses and restarts it; \
                   if it still does not join, `recover` restarts it with a fresh data dir"
            .into();
        d.done()
    }

    fn clock_skew(&self) -> Option<Finding> {
        let offsets: Vec<(&str, i64)> = self
            .reachable()
            .filter_map(|o| o.clock_offset_ms.map(|ms| (o.host.as_str(), ms)))
            .collect();
        if offsets.len() < 2 {
            return None;
        }
        let mut sorted: Vec<i64> = offsets.iter().map(|(_, ms)| *ms).collect();
        sorted.sort_unstable();
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 0 {
            (sorted[mid - 1] + sorted[mid]) / 2
        } else {
            sorted[mid]
        };
        let mut d = Draft::new("clock-skew");
        for (host, ms) in offsets {
            let diff = ms - median;
            if diff.abs() <= CLOCK_SKEW_MS {
                continue;
            }
            d.host(host);
            let side = if diff > 0 { "ahead of" } else { "behind" };
            d.fact(
                host,
                &format!(
                    "clock is {:.1} s {side} the median of the hosts",
                    diff.abs() as f64 / 1000.0
                ),
            );
            d.fix(format!(
                "sync the clock of {host}: enable NTP (`timedatectl set-ntp true`, or chrony/ntpd)"
            ));
        }
        d.cause = format!(
            "host clocks differ by more than {} s: TLS certificate checks, ACL token expiry and \
             the logs' timeline need agreeing clocks",
            CLOCK_SKEW_MS / 1000
        );
        d.done()
    }
}

// --- small helpers --------------------------------------------------------------------------

/// A gossip-key culprit from who cannot decrypt whom: a host most reporters cannot decrypt
/// (at least two), or the only reporter when it cannot decrypt several hosts.
fn odd_one_out(reports: &[Undecryptable<'_>]) -> BTreeSet<String> {
    let reporters: BTreeSet<&str> = reports.iter().map(|r| r.0).collect();
    let mut by_remote: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (reporter, remote, _) in reports {
        if let Some(remote) = remote {
            by_remote.entry(remote).or_default().insert(reporter);
        }
    }
    let mut out: BTreeSet<String> = by_remote
        .iter()
        .filter(|(_, seen_by)| seen_by.len() >= 2 && seen_by.len() * 2 > reporters.len())
        .map(|(remote, _)| remote.to_string())
        .collect();
    if out.is_empty() && reporters.len() == 1 && by_remote.len() >= 2 {
        out.extend(reporters.iter().map(|r| r.to_string()));
    }
    out
}

fn host_ip(h: &ExpectedHost) -> Option<IpAddr> {
    h.bind.or_else(|| strip_port(&h.address).parse().ok())
}

fn status_word(status: u8) -> &'static str {
    match status {
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "unknown",
    }
}

/// The init system keeps restarting the agent.
/// What kind of SSH failure an error (as consulctl reports it) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SshFailure {
    /// Logged in, but `sudo -n` wants a password.
    SudoPassword,
    /// The host answered and refused the login (user, key, host key).
    LoginRefused,
    /// No answer: down, unreachable, sshd not running, a timeout.
    NoAnswer,
}

fn ssh_failure(err: &str) -> SshFailure {
    if err.contains("sudo -n` without a password") || err.contains("a password is required") {
        SshFailure::SudoPassword
    } else if [
        "Permission denied",
        "Host key verification failed",
        "HOST IDENTIFICATION",
    ]
    .iter()
    .any(|p| err.contains(p))
    {
        SshFailure::LoginRefused
    } else {
        SshFailure::NoAnswer
    }
}

fn is_looping(o: &Observation) -> bool {
    let state = o.init_state.as_deref().unwrap_or("");
    let restarts = o.restarts.unwrap_or(0);
    restarts >= CRASH_LOOP_RESTARTS
        || state.eq_ignore_ascii_case("BACKOFF")
        || state.eq_ignore_ascii_case("FATAL")
        || (state == "activating" && restarts > 0)
}

/// The log lines that can tell why the agent does not start: all of them while it is down or
/// restarting, else those after its last successful start.
fn startup_lines(o: &Observation) -> &[String] {
    if o.agent_pid.is_none() || is_looping(o) {
        return &o.log;
    }
    match o.log.iter().rposition(|l| l.contains(AGENT_RUNNING)) {
        Some(i) => &o.log[i + 1..],
        None => &o.log,
    }
}

/// An error line: Consul's `[ERR]`/`[ERROR]` lines, `==> ` lines of `consul agent` that are
/// not progress messages, and other lines (systemd, stderr) that say `Error`.
fn is_error_line(line: &str) -> bool {
    if line.contains("[ERR") {
        return true;
    }
    if LEVELS.iter().any(|l| line.contains(l)) {
        return false;
    }
    match line.trim_start().strip_prefix("==> ") {
        Some(msg) => !UI_INFO.iter().any(|i| msg.starts_with(i)),
        None => line.contains("Error"),
    }
}

fn last_error(log: &[String]) -> Option<&str> {
    log.iter()
        .rev()
        .find(|l| is_error_line(l))
        .map(String::as_str)
}

/// The latest "No cluster leader" when no leader showed up after it.
fn current_no_leader(log: &[String]) -> Option<&str> {
    let missing = log.iter().rposition(|l| l.contains("No cluster leader"))?;
    let found = log
        .iter()
        .rposition(|l| LEADER_FOUND.iter().any(|m| l.contains(m)));
    (!matches!(found, Some(found) if found > missing)).then(|| log[missing].as_str())
}

/// `Node 'X' protocol version (N) is incompatible` (or `delegate protocol version`): (X, N).
fn protocol_node(line: &str) -> Option<(&str, &str)> {
    let mut rest = line;
    while let Some(i) = rest.find("Node '") {
        let after = &rest[i + "Node '".len()..];
        let (name, tail) = after.split_once('\'')?;
        let version = tail
            .strip_prefix(" protocol version (")
            .or_else(|| tail.strip_prefix(" delegate protocol version ("))
            .and_then(|t| t.split_once(") is incompatible"))
            .map(|(v, _)| v);
        if let Some(version) =
            version.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        {
            return Some((name, version));
        }
        rest = tail;
    }
    None
}

/// `Member 'A' has conflicting node ID 'ID' with this agent's ID` -> (A, ID, None);
/// `... with member 'B'` -> (A, ID, Some(B)).
fn id_conflict(line: &str) -> Option<(&str, &str, Option<&str>)> {
    const MARK: &str = "' has conflicting node ID '";
    let at = line.find(MARK)?;
    let member = &line[line[..at].rfind("Member '")? + "Member '".len()..at];
    let (id, rest) = line[at + MARK.len()..].split_once('\'')?;
    if rest.starts_with(" with this agent's ID") {
        return Some((member, id, None));
    }
    let other = rest.strip_prefix(" with member '")?.split('\'').next()?;
    Some((member, id, Some(other)))
}

/// `Member 'X' part of wrong datacenter 'Y'` -> (X, Y).
fn wrong_dc(line: &str) -> Option<(&str, &str)> {
    const MARK: &str = "' part of wrong datacenter '";
    let at = line.find(MARK)?;
    let member = &line[line[..at].rfind('\'')? + 1..at];
    let dc = line[at + MARK.len()..].split('\'').next()?;
    Some((member, dc))
}

/// memberlist's "Encryption is configured but remote state is not encrypted" -> Some(true) (this
/// agent encrypts, the remote does not); "Remote state is encrypted and encryption is not
/// configured" -> Some(false).
fn encryption_side(line: &str) -> Option<bool> {
    if contains_ci(
        line,
        "encryption is configured but remote state is not encrypted",
    ) {
        Some(true)
    } else if contains_ci(
        line,
        "remote state is encrypted and encryption is not configured",
    ) {
        Some(false)
    } else {
        None
    }
}

/// The other end of a gossip error: `from=IP:port` (memberlist) or `Failed to join IP:` (a
/// join), without the port.
fn remote_addr(line: &str) -> Option<&str> {
    let token = if let Some(i) = line.find("from=") {
        line[i + "from=".len()..]
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()?
    } else {
        let i = line.find("Failed to join ")?;
        line[i + "Failed to join ".len()..].split(": ").next()?
    };
    let host = strip_port(token.trim());
    (!host.is_empty()).then_some(host)
}

/// The port of Go's `listen tcp IP:PORT: bind: ...`.
fn listen_port(line: &str) -> Option<u16> {
    let i = line
        .find("listen tcp")
        .or_else(|| line.find("listen udp"))?;
    let addr = line[i..].split_whitespace().nth(2)?.trim_end_matches(':');
    addr.rsplit_once(':')?.1.parse().ok()
}

/// A write error about the data dir (node-id, raft, serf files).
fn data_dir_error(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "permission denied",
        "read-only file system",
        "no space left on device",
    ]
    .iter()
    .any(|e| l.contains(e))
        && [
            "data",
            "node-id",
            "node id",
            "raft",
            "serf",
            "checkpoint",
            "mkdir",
        ]
        .iter()
        .any(|w| l.contains(w))
}

/// `needle` must be lowercase.
fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

/// `host`, `IP`, `IP:port`, `[v6]:port` -> the host or IP.
fn strip_port(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => addr,
    }
}

/// What makes two log lines the same message: the text from the level on, without the
/// timestamp, and `from=` without its (ephemeral) port.
fn dedup_key(line: &str) -> String {
    let line = line.trim();
    let body = LEVELS
        .iter()
        .filter_map(|l| line.find(l))
        .min()
        .map_or(line, |i| &line[i..]);
    match body.find("from=") {
        Some(i) => {
            let rest = &body[i + "from=".len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            format!(
                "{}from={}{}",
                &body[..i],
                strip_port(&rest[..end]),
                &rest[end..]
            )
        }
        None => body.to_string(),
    }
}

/// At most [`EVIDENCE_CHARS`] characters, `…` marking a cut.
fn clip(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(EVIDENCE_CHARS) {
        None => text.to_string(),
        Some(_) => {
            let cut = text
                .char_indices()
                .nth(EVIDENCE_CHARS - 1)
                .map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..cut])
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A word for a shell command line, quoted when it needs to be.
fn sh(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY_SERVER: &str = include_str!("../tests/fixtures/doctor/healthy-server.log");
    const HEALTHY_CLIENT: &str = include_str!("../tests/fixtures/doctor/healthy-client.log");
    const PROTOCOL_VERSION: &str = include_str!("../tests/fixtures/doctor/protocol-version.log");
    const CONFLICT_CLIENT: &str =
        include_str!("../tests/fixtures/doctor/node-id-conflict-client.log");
    const CONFLICT_SERVER: &str =
        include_str!("../tests/fixtures/doctor/node-id-conflict-server.log");
    const CONFLICT_SERVER_JOIN: &str =
        include_str!("../tests/fixtures/doctor/node-id-conflict-server-join.log");
    const KEYRING_STALE: &str = include_str!("../tests/fixtures/doctor/keyring-stale.log");
    const NO_INSTALLED_KEYS: &str = include_str!("../tests/fixtures/doctor/no-installed-keys.log");
    const MULTIPLE_IPV4: &str = include_str!("../tests/fixtures/doctor/multiple-private-ipv4.log");
    const ADDRESS_IN_USE: &str = include_str!("../tests/fixtures/doctor/address-in-use.log");
    const DATA_DIR: &str = include_str!("../tests/fixtures/doctor/data-dir-permission.log");
    const WRONG_DC: &str = include_str!("../tests/fixtures/doctor/datacenter-mismatch.log");

    /// sha256 of the inventory's gossip key, and of another key.
    const FP: &str = "5b1e6a3cf1d0a9b8e7c6d5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4";
    const OTHER_FP: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    /// A fixture's log lines: its `#` comment lines and blank lines left out.
    fn log(fixture: &str) -> Vec<String> {
        fixture
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host(name: &str, role: Role, address: &str) -> ExpectedHost {
        ExpectedHost {
            name: name.into(),
            role,
            address: address.into(),
            bind: Some(ip(address)),
        }
    }

    fn expected() -> Expected {
        Expected {
            inventory: "prod.toml".into(),
            datacenter: "dc1".into(),
            hosts: vec![
                host("server1", Role::Server, "192.168.14.61"),
                host("server2", Role::Server, "192.168.14.62"),
                host("server3", Role::Server, "192.168.14.63"),
                host("client1", Role::Client, "192.168.14.71"),
                host("client2", Role::Client, "192.168.14.72"),
            ],
            encrypt_fingerprint: Some(FP.into()),
        }
    }

    fn member(name: &str, addr: &str, status: u8) -> Member {
        Member {
            name: name.into(),
            addr: addr.into(),
            status,
            tags: BTreeMap::new(),
            ..Default::default()
        }
    }

    fn peer(node: &str, address: &str, leader: bool) -> RaftServer {
        RaftServer {
            node: node.into(),
            address: address.into(),
            leader,
            voter: true,
            ..Default::default()
        }
    }

    /// A healthy cluster of 3 servers and 2 clients, as doctor reads it.
    fn healthy() -> Vec<Observation> {
        let exp = expected();
        let members: Vec<Member> = exp
            .hosts
            .iter()
            .map(|h| member(&h.name, &h.address, 1))
            .collect();
        let raft = vec![
            peer("server1", "192.168.14.61:8300", true),
            peer("server2", "192.168.14.62:8300", false),
            peer("server3", "192.168.14.63:8300", false),
        ];
        let offsets = [12, -30, 5, 40, 0];
        exp.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let id = format!("4a6c8e0f-1b3d-4f5a-8c7e-9d0b2f4a6c8{i}");
                Observation {
                    host: h.name.clone(),
                    agent_pid: Some(4100 + i as u32),
                    init_state: Some("active".into()),
                    restarts: Some(0),
                    node_id: Some(id.clone()),
                    keyring: Some(vec![FP.into()]),
                    data_dir_writable: Some(true),
                    addresses: vec![ip(&h.address)],
                    clock_offset_ms: Some(offsets[i]),
                    api: Some(AgentApi {
                        node_name: Some(h.name.clone()),
                        datacenter: Some("dc1".into()),
                        node_id: Some(id),
                        leader: Some("192.168.14.61:8300".into()),
                        raft: raft.clone(),
                        members: members.clone(),
                    }),
                    log: log(if h.role == Role::Server {
                        HEALTHY_SERVER
                    } else {
                        HEALTHY_CLIENT
                    }),
                    ..Default::default()
                }
            })
            .collect()
    }

    fn at<'a>(obs: &'a mut [Observation], host: &str) -> &'a mut Observation {
        obs.iter_mut().find(|o| o.host == host).unwrap()
    }

    fn api<'a>(obs: &'a mut [Observation], host: &str) -> &'a mut AgentApi {
        at(obs, host).api.as_mut().unwrap()
    }

    /// `host` stopped: no process, no API answer, the given log.
    fn stop(obs: &mut [Observation], host: &str, state: &str, restarts: u32, fixture: &str) {
        let o = at(obs, host);
        o.agent_pid = None;
        o.api = None;
        o.init_state = Some(state.into());
        o.restarts = Some(restarts);
        o.log = log(fixture);
    }

    /// Drop `host` from every member list but its own.
    fn forget(obs: &mut [Observation], host: &str) {
        for o in obs.iter_mut().filter(|o| o.host != host) {
            if let Some(api) = o.api.as_mut() {
                api.members.retain(|m| m.name != host);
            }
        }
    }

    fn codes(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.code.as_str()).collect()
    }

    /// The one finding with `code`.
    fn one<'a>(findings: &'a [Finding], code: &str) -> &'a Finding {
        let mut it = findings.iter().filter(|f| f.code == code);
        let f = it
            .next()
            .unwrap_or_else(|| panic!("no {code} in {}", to_text(findings)));
        assert!(
            it.next().is_none(),
            "several {code} in {}",
            to_text(findings)
        );
        f
    }

    fn evidence_has(f: &Finding, text: &str) -> bool {
        f.evidence.iter().any(|e| e.contains(text))
    }

    #[test]
    fn healthy_cluster_has_no_findings() {
        let findings = diagnose(&expected(), &healthy());
        assert!(findings.is_empty(), "{}", to_text(&findings));
        assert_eq!(to_text(&findings), "");
    }

    #[test]
    fn fixtures_note_their_source_and_hold_log_lines() {
        for fixture in [
            HEALTHY_SERVER,
            HEALTHY_CLIENT,
            PROTOCOL_VERSION,
            CONFLICT_CLIENT,
            CONFLICT_SERVER,
            CONFLICT_SERVER_JOIN,
            KEYRING_STALE,
            NO_INSTALLED_KEYS,
            MULTIPLE_IPV4,
            ADDRESS_IN_USE,
            DATA_DIR,
            WRONG_DC,
        ] {
            assert!(fixture.starts_with("# "), "{fixture}");
            assert!(!log(fixture).is_empty());
        }
    }

    #[test]
    fn protocol_version_maps_the_ip_in_the_log_to_the_inventory_host() {
        let mut obs = healthy();
        at(&mut obs, "server1").log = log(PROTOCOL_VERSION);
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["protocol-version"],
            "{}",
            to_text(&findings)
        );
        let f = &findings[0];
        assert_eq!(f.hosts, ["client2", "server1"]);
        assert_eq!(f.fix[0], "consulctl recover client2 -i prod.toml");
        // The stale entry is named by the IP, not as the inventory host: say how to drop it.
        assert!(
            f.fix[1].contains("consul force-leave -prune 192.168.14.72"),
            "{:?}",
            f.fix
        );
        assert!(f.cause.contains("'192.168.14.72'") && f.cause.contains("version 0"));
        // The 1.8 lines differ only in time and port: the latest one is kept, plus the old format.
        assert_eq!(f.evidence.len(), 2, "{:?}", f.evidence);
        assert!(f.evidence[0].starts_with("server1: 2024-01-02T03:05:35.755Z [ERROR]"));
        assert!(f.evidence[0].contains(
            "memberlist: Failed push/pull merge: Node '192.168.14.72' protocol version (0) is incompatible"
        ));
        assert!(f.evidence[1]
            .starts_with("server1: 2019/01/02 03:04:05 [ERR] memberlist: Failed push/pull merge"));
    }

    #[test]
    fn protocol_version_of_a_node_outside_the_inventory_any_version() {
        let mut obs = healthy();
        at(&mut obs, "server2").log.extend([
            "2019/01/02 03:04:05 [ERR] memberlist: Failed push/pull merge: Node 'old-node' protocol version (2) is incompatible: [3, 5] from=10.9.9.9:40000".to_string(),
            "    2024-01-02T03:04:05.678Z [ERROR] agent.server.memberlist.lan: memberlist: Failed push/pull merge: Node 'client1' delegate protocol version (1) is incompatible: [2, 5] from=192.168.14.71:40001".to_string(),
        ]);
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["protocol-version", "protocol-version"]);
        let client1 = findings
            .iter()
            .find(|f| f.hosts.contains(&"client1".to_string()))
            .unwrap();
        assert_eq!(client1.hosts, ["client1", "server2"]);
        assert_eq!(client1.fix, ["consulctl recover client1 -i prod.toml"]);
        let old = findings
            .iter()
            .find(|f| f.hosts.contains(&"old-node".to_string()))
            .unwrap();
        assert_eq!(old.hosts, ["old-node", "server2"]);
        assert_eq!(old.fix.len(), 1);
        assert!(
            old.fix[0].contains("not in the inventory")
                && old.fix[0].contains("consul force-leave -prune old-node")
        );
    }

    #[test]
    fn protocol_version_explains_the_refused_node_not_the_logging_host() {
        let mut obs = healthy();
        at(&mut obs, "server1").log = log(PROTOCOL_VERSION);
        forget(&mut obs, "client2");
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.raft.retain(|r| r.node != "server1");
        }
        let findings = diagnose(&expected(), &obs);
        // client2 is no member because of the refusal; server1 only logs it.
        assert_eq!(
            codes(&findings),
            ["protocol-version", "missing-peers"],
            "{}",
            to_text(&findings)
        );
        assert_eq!(findings[1].hosts, ["server1"]);
    }

    #[test]
    fn node_id_files_and_refusals_about_the_same_nodes_are_one_finding() {
        let mut obs = healthy();
        let id = "4e1f9c2a-7b3d-2c5e-9a81-0f6d3b2c7e15";
        for h in ["client1", "client2"] {
            at(&mut obs, h).node_id = Some(id.into());
        }
        forget(&mut obs, "client2");
        let c2 = api(&mut obs, "client2");
        c2.leader = None;
        c2.members = vec![member("client2", "192.168.14.72", 1)];
        at(&mut obs, "client2").log = log(CONFLICT_CLIENT);
        at(&mut obs, "server1").log.extend(log(CONFLICT_SERVER));
        let findings = diagnose(&expected(), &obs);
        // client2 is no member either, but the conflict says why: no not-member finding.
        assert_eq!(
            codes(&findings),
            ["node-id-conflict"],
            "{}",
            to_text(&findings)
        );
        let f = &findings[0];
        assert_eq!(f.hosts, ["client1", "client2"]);
        assert_eq!(f.fix, ["consulctl recover client2 -i prod.toml"]);
        assert!(evidence_has(
            f,
            &format!("client1: node ID {id}, the same as on client2")
        ));
        assert!(evidence_has(
            f,
            "client2: * Failed to join 192.168.14.63: Member 'client1' has conflicting node ID"
        ));
        assert!(evidence_has(f, "server1: 2024-01-02T03:05:00.412Z [ERROR] agent.server.memberlist.lan: memberlist: Failed push/pull merge: Member 'client2' has conflicting node ID"));
    }

    #[test]
    fn node_id_conflict_lines_from_before_a_recovery_are_not_reported() {
        // The refusal is still in the log, but both nodes now have their own node ID and are
        // alive members: the conflict was fixed.
        let mut obs = healthy();
        let line = "2024-01-02T03:04:05.678Z [WARN]  agent: (LAN) couldn't join: number_of_nodes=0 \
                    error=\"1 error occurred: Failed to join 10.0.0.21: Member 'client1' has conflicting \
                    node ID '0b9d7d0e-3c56-4a5e-8f0f-111111111111' with this agent's ID\"";
        let c2 = obs.iter_mut().find(|o| o.host == "client2").unwrap();
        c2.log.push(line.to_string());
        let findings = diagnose(&expected(), &obs);
        assert!(
            !codes(&findings).contains(&"node-id-conflict"),
            "{findings:#?}"
        );
        // While client2 is not an alive member, the same line is a finding.
        let mut obs = healthy();
        let c2 = obs.iter_mut().find(|o| o.host == "client2").unwrap();
        c2.log.push(line.to_string());
        for o in obs.iter_mut() {
            if let Some(api) = o.api.as_mut() {
                for m in api.members.iter_mut().filter(|m| m.name == "client2") {
                    m.status = 3;
                }
            }
        }
        let findings = diagnose(&expected(), &obs);
        assert!(
            codes(&findings).contains(&"node-id-conflict"),
            "{findings:#?}"
        );
    }

    #[test]
    fn node_id_conflict_from_a_refused_server_join_alone() {
        let mut obs = healthy();
        forget(&mut obs, "server3");
        for o in obs.iter_mut() {
            o.api.as_mut().unwrap().raft.retain(|r| r.node != "server3");
        }
        let s3 = api(&mut obs, "server3");
        s3.leader = None;
        s3.members = vec![member("server3", "192.168.14.63", 1)];
        at(&mut obs, "server3").log = log(CONFLICT_SERVER_JOIN);
        let findings = diagnose(&expected(), &obs);
        // Neither no-leader, missing-peers nor not-member for server3: the conflict explains them.
        assert_eq!(
            codes(&findings),
            ["node-id-conflict"],
            "{}",
            to_text(&findings)
        );
        assert_eq!(findings[0].hosts, ["server1", "server3"]);
        assert_eq!(findings[0].fix, ["consulctl recover server3 -i prod.toml"]);
    }

    #[test]
    fn node_id_conflict_without_a_hint_recovers_all_but_the_first() {
        let mut obs = healthy();
        for h in ["server2", "client1", "client2"] {
            at(&mut obs, h).node_id = Some("B76FF298-ACCD-05FF-8C64-5D79D866DFA9".into());
        }
        let findings = diagnose(&expected(), &obs);
        let f = one(&findings, "node-id-conflict");
        assert_eq!(f.hosts, ["client1", "client2", "server2"]);
        assert_eq!(
            f.fix,
            [
                "consulctl recover client1 -i prod.toml",
                "consulctl recover client2 -i prod.toml"
            ]
        );
    }

    #[test]
    fn parses_node_id_conflicts_inside_longer_lines() {
        let join = r#"agent: (LAN) couldn't join: number_of_nodes=0 error="1 error occurred:\n\t* Failed to join 10.0.0.3: Member 'client2' has conflicting node ID '3b0c6a1e-9f2d-4c5b-8e7a-1d2f3a4b5c6d' with member 'client1'""#;
        assert_eq!(
            id_conflict(join),
            Some((
                "client2",
                "3b0c6a1e-9f2d-4c5b-8e7a-1d2f3a4b5c6d",
                Some("client1")
            ))
        );
        assert_eq!(remote_addr(join), Some("10.0.0.3"));
        let merge = "memberlist: Failed push/pull merge: Member 'web-1' has conflicting node ID 'abc' with this agent's ID from=10.0.0.9:4000";
        assert_eq!(id_conflict(merge), Some(("web-1", "abc", None)));
        assert_eq!(id_conflict("Member 'x' joined"), None);
    }

    #[test]
    fn stale_keyring_file_is_the_gossip_key_problem_of_its_host() {
        let mut obs = healthy();
        at(&mut obs, "client1").keyring = Some(vec![OTHER_FP.into()]);
        at(&mut obs, "client1").log = log(KEYRING_STALE);
        at(&mut obs, "server1").log.extend(log(NO_INSTALLED_KEYS));
        forget(&mut obs, "client1");
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["gossip-key"], "{}", to_text(&findings));
        let f = &findings[0];
        assert_eq!(f.hosts, ["client1"]);
        assert_eq!(f.fix, ["consulctl recover client1 -i prod.toml"]);
        assert!(evidence_has(
            f,
            "client1: serf/local.keyring holds 1 key(s), none is the inventory's encrypt key"
        ));
        assert!(evidence_has(f, "client1: 2024-01-02T03:04:05.001Z [WARN]  agent:  keyring doesn't include key provided with -encrypt, using keyring: keyring=LAN"));
        assert!(evidence_has(f, "server1: 2024-01-02T03:10:04.207Z [ERROR] agent.server.memberlist.lan: memberlist: Decrypt packet failed: No installed keys could decrypt the message from=192.168.14.71:8301"));
        assert!(f.cause.contains("serf/local.keyring"));
    }

    #[test]
    fn gossip_key_of_the_host_most_agents_cannot_decrypt() {
        let mut obs = healthy();
        // client1's keyring holds the inventory's key, but not as its primary key.
        at(&mut obs, "client1").keyring = Some(vec![OTHER_FP.into(), FP.into()]);
        at(&mut obs, "server1").log.extend(log(NO_INSTALLED_KEYS));
        for s in ["server2", "server3"] {
            at(&mut obs, s).log.push(
                "    2024-01-02T03:10:05.101Z [ERROR] agent.server.memberlist.lan: memberlist: Decrypt packet failed: no installed keys could decrypt the message from=192.168.14.71:8301".into(),
            );
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["gossip-key"], "{}", to_text(&findings));
        assert_eq!(findings[0].hosts, ["client1"]);
        assert_eq!(findings[0].fix, ["consulctl recover client1 -i prod.toml"]);
        // Lines of at most two of the reporting hosts.
        let reporters: BTreeSet<&str> = findings[0]
            .evidence
            .iter()
            .filter_map(|e| e.split(':').next())
            .collect();
        assert_eq!(reporters.len(), 2, "{:?}", findings[0].evidence);
    }

    #[test]
    fn gossip_key_between_two_hosts_names_both() {
        let mut obs = healthy();
        at(&mut obs, "server1").log.push(
            "    2024-01-02T03:10:01.201Z [ERROR] agent.server.memberlist.lan: memberlist: Decrypt packet failed: No installed keys could decrypt the message from=192.168.14.71:8301".into(),
        );
        let findings = diagnose(&expected(), &obs);
        let f = one(&findings, "gossip-key");
        assert_eq!(f.hosts, ["client1", "server1"]);
        assert!(f.fix[0].contains("consul keyring -list"), "{:?}", f.fix);
        assert!(f.fix[1].contains("consulctl recover HOST -i prod.toml"));
    }

    #[test]
    fn plain_text_agent_in_an_encrypted_cluster() {
        let mut obs = healthy();
        at(&mut obs, "client2").keyring = None;
        forget(&mut obs, "client2");
        at(&mut obs, "server1").log.push(
            "    2024-01-02T03:10:07.310Z [ERROR] agent.server.memberlist.lan: memberlist: failed to receive: Encryption is configured but remote state is not encrypted from=192.168.14.72:50310".into(),
        );
        // What the plain agent sends cannot be decrypted either: that is this problem too.
        at(&mut obs, "server2").log.push(
            "    2024-01-02T03:10:08.002Z [ERROR] agent.server.memberlist.lan: memberlist: Decrypt packet failed: No installed keys could decrypt the message from=192.168.14.72:8301".into(),
        );
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["encryption-mismatch"],
            "{}",
            to_text(&findings)
        );
        let f = &findings[0];
        assert_eq!(f.hosts, ["client2"]);
        assert_eq!(f.fix, ["consulctl apply -i prod.toml"]);
        assert!(evidence_has(
            f,
            "client2: the agent runs without serf/local.keyring"
        ));
        assert!(evidence_has(f, "server1: 2024-01-02T03:10:07.310Z"));
    }

    #[test]
    fn leftover_keyring_when_the_inventory_has_no_key() {
        let mut exp = expected();
        exp.encrypt_fingerprint = None;
        let mut obs = healthy();
        for o in obs.iter_mut() {
            o.keyring = None;
        }
        at(&mut obs, "server2").keyring = Some(vec![OTHER_FP.into()]);
        at(&mut obs, "client1").log.push(
            "    2024-01-02T03:10:09.412Z [WARN]  agent: (LAN) couldn't join: number_of_nodes=0 error=\"1 error occurred:".into(),
        );
        at(&mut obs, "client1").log.push(
            "\t* Failed to join 192.168.14.62:8301: Remote state is encrypted and encryption is not configured".into(),
        );
        let findings = diagnose(&exp, &obs);
        assert_eq!(
            codes(&findings),
            ["encryption-mismatch"],
            "{}",
            to_text(&findings)
        );
        assert_eq!(findings[0].hosts, ["server2"]);
        assert_eq!(findings[0].fix, ["consulctl recover server2 -i prod.toml"]);
        assert!(evidence_has(
            &findings[0],
            "client1: * Failed to join 192.168.14.62:8301: Remote state is encrypted"
        ));
    }

    #[test]
    fn datacenter_mismatch_from_the_api_and_the_log() {
        let mut obs = healthy();
        forget(&mut obs, "client2");
        let c2 = api(&mut obs, "client2");
        c2.datacenter = Some("dc2".into());
        c2.leader = None;
        at(&mut obs, "client2").log = log(WRONG_DC);
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["datacenter-mismatch"],
            "{}",
            to_text(&findings)
        );
        let f = &findings[0];
        // The servers are refused as "dc1", the inventory's datacenter: client2 is the odd one.
        assert_eq!(f.hosts, ["client2"]);
        assert_eq!(f.fix, ["consulctl apply -i prod.toml"]);
        assert_eq!(
            f.evidence[0],
            "client2: agent reports datacenter dc2, inventory says dc1"
        );
        assert!(evidence_has(
            f,
            "Member 'server3' part of wrong datacenter 'dc1'"
        ));
        assert_eq!(
            wrong_dc("* Failed to join 10.0.0.1: Member 'a b' part of wrong datacenter 'x'"),
            Some(("a b", "x"))
        );
    }

    #[test]
    fn crash_loop_on_several_private_addresses_is_not_also_agent_down() {
        let mut obs = healthy();
        stop(&mut obs, "client1", "activating", 7, MULTIPLE_IPV4);
        at(&mut obs, "client1").addresses = vec![ip("192.168.14.71"), ip("10.0.2.15")];
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["bind-address", "crash-loop"],
            "{}",
            to_text(&findings)
        );
        let bind = &findings[0];
        assert_eq!(bind.hosts, ["client1"]);
        assert!(bind.cause.contains("several private addresses"));
        assert!(bind.fix[0].contains("(the host has: 192.168.14.71, 10.0.2.15)"));
        assert_eq!(bind.fix[1], "consulctl apply -i prod.toml");
        // Both restarts printed the same error: one evidence line.
        assert_eq!(
            bind.evidence,
            ["client1: ==> Multiple private IPv4 addresses found. Please configure one with 'bind' and/or 'advertise'."]
        );
        let crash = &findings[1];
        assert_eq!(
            crash.evidence[0],
            "client1: systemd restarted the agent 7 times; unit state: activating"
        );
        assert!(crash.evidence[1].contains("==> Multiple private IPv4 addresses found"));
        assert!(crash.cause.contains("bind-address"));
    }

    #[test]
    fn bind_address_not_on_the_host() {
        let mut obs = healthy();
        at(&mut obs, "server3").addresses = vec![ip("10.1.1.5")];
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["bind-address"]);
        assert_eq!(
            findings[0].evidence,
            ["server3: the inventory's bind address 192.168.14.63 is on none of the host's interfaces (10.1.1.5)"]
        );
    }

    #[test]
    fn port_in_use_and_the_agent_down_it_causes() {
        let mut obs = healthy();
        stop(&mut obs, "server2", "failed", 1, ADDRESS_IN_USE);
        at(&mut obs, "server2").foreign_listeners = vec![(8300, "java".into())];
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.members
                .iter_mut()
                .filter(|m| m.name == "server2")
                .for_each(|m| m.status = 4);
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["port-in-use", "agent-down"],
            "{}",
            to_text(&findings)
        );
        let port = &findings[0];
        assert_eq!(port.evidence[0], "server2: port 8300 is held by java");
        assert!(port.evidence[1]
            .contains("listen tcp 192.168.14.62:8300: bind: address already in use"));
        assert_eq!(
            port.fix,
            [
                "on server2, stop java or move it off port 8300",
                "consulctl apply -i prod.toml"
            ]
        );
        let down = &findings[1];
        assert_eq!(down.hosts, ["server2"]);
        assert_eq!(
            down.evidence[0],
            "server2: no consul agent process runs (init state: failed)"
        );
        assert_eq!(
            down.evidence[1],
            "server2: ==> Error starting agent: Failed to start Consul server: Failed to start RPC layer: listen tcp 192.168.14.62:8300: bind: address already in use"
        );
        assert!(down.cause.contains("port-in-use"));
    }

    #[test]
    fn port_held_by_another_program_while_the_agent_runs() {
        let mut obs = healthy();
        at(&mut obs, "client1").foreign_listeners = vec![(8500, "nginx".into())];
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["port-in-use"]);
        assert_eq!(
            findings[0].evidence,
            ["client1: port 8500 is held by nginx"]
        );
        assert_eq!(
            listen_port("listen tcp 127.0.0.1:8500: bind: address already in use"),
            Some(8500)
        );
        assert_eq!(
            listen_port("listen udp [::1]:8600: bind: address already in use"),
            Some(8600)
        );
    }

    #[test]
    fn data_dir_not_writable() {
        let mut obs = healthy();
        stop(&mut obs, "client2", "failed", 2, DATA_DIR);
        at(&mut obs, "client2").data_dir_writable = Some(false);
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["data-dir", "agent-down"],
            "{}",
            to_text(&findings)
        );
        let f = &findings[0];
        assert_eq!(
            f.evidence[0],
            "client2: the data dir is missing or the agent's user cannot write it"
        );
        assert!(f.evidence[1].ends_with("open /opt/consul/data/node-id: permission denied"));
        assert!(data_dir_error("[ERROR] agent.server.raft: failed to append to logs: error=\"write /opt/consul/raft/raft.db: no space left on device\""));
        assert!(!data_dir_error(
            "[ERROR] agent: failed to read config /etc/consul.d/x.hcl: permission denied"
        ));
    }

    #[test]
    fn no_leader_without_a_quorum_of_servers() {
        let mut obs = healthy();
        for s in ["server2", "server3"] {
            stop(&mut obs, s, "failed", 0, "");
        }
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.leader = None;
        }
        at(&mut obs, "server1").log.push(
            "    2024-01-02T05:00:01.876Z [ERROR] agent.anti_entropy: failed to sync remote state: error=\"No cluster leader\"".into(),
        );
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["no-leader", "agent-down", "agent-down"],
            "{}",
            to_text(&findings)
        );
        let f = &findings[0];
        assert_eq!(f.hosts, ["server1"]);
        assert!(evidence_has(
            f,
            "server1: answers, but /v1/status/leader is empty"
        ));
        assert!(evidence_has(
            f,
            "server1: 2024-01-02T05:00:01.876Z [ERROR] agent.anti_entropy"
        ));
        assert!(evidence_has(
            f,
            "1 of the inventory's 3 servers run and answer; a leader needs 2"
        ));
        assert_eq!(
            f.fix[1],
            "if they are gone for good: consulctl recover quorum -i prod.toml"
        );
        assert_eq!(findings[1].hosts, ["server2"]);
        assert_eq!(findings[2].hosts, ["server3"]);
    }

    #[test]
    fn no_leader_with_a_quorum_says_wait() {
        let mut obs = healthy();
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.leader = None;
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["no-leader"]);
        let f = &findings[0];
        assert_eq!(f.hosts, ["server1", "server2", "server3"]);
        assert!(f.fix[0].starts_with("wait a minute"));
        // The healthy log's "No cluster leader" was followed by an election: not evidence.
        assert!(!evidence_has(f, "No cluster leader"));
    }

    #[test]
    fn stale_peer_outside_the_inventory() {
        let mut obs = healthy();
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.raft.push(peer("old-server", "192.168.14.50:8300", false));
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["stale-peers"]);
        let f = &findings[0];
        assert_eq!(f.hosts, ["old-server"]);
        assert_eq!(
            f.evidence,
            ["server1: raft configuration lists voter 'old-server' at 192.168.14.50:8300, not an inventory server"]
        );
        assert_eq!(
            f.fix[0],
            "by hand on any server: `consul operator raft remove-peer -address=192.168.14.50:8300`"
        );
        assert!(f.fix[1].contains("consulctl recover quorum -i prod.toml"));
    }

    #[test]
    fn missing_peer_while_a_leader_exists() {
        let mut obs = healthy();
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.raft.retain(|r| r.node != "server3");
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["missing-peers"]);
        assert_eq!(findings[0].hosts, ["server3"]);
        assert_eq!(findings[0].fix, ["consulctl recover server3 -i prod.toml"]);
        assert!(evidence_has(&findings[0], "server1: raft configuration (leader 192.168.14.61:8300) holds server1 192.168.14.61:8300, server2 192.168.14.62:8300; not server3"));
    }

    #[test]
    fn unknown_alive_or_failed_members() {
        let mut obs = healthy();
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.members.push(member("laptop", "10.9.9.9", 1));
            o.members.push(member("old-client", "10.9.9.8", 3));
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["unknown-members"]);
        assert_eq!(findings[0].hosts, ["laptop"]);
        assert_eq!(
            findings[0].evidence,
            ["server1: member list has 'laptop' at 10.9.9.9, alive (and 4 more agents)"]
        );
        assert!(findings[0].fix[0].contains("consul force-leave -prune laptop"));
    }

    #[test]
    fn running_agent_the_servers_do_not_list() {
        let mut obs = healthy();
        forget(&mut obs, "client1");
        for s in ["server1", "server2"] {
            api(&mut obs, s)
                .members
                .push(member("client1", "192.168.14.71", 4));
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["not-member"]);
        let f = &findings[0];
        assert_eq!(f.hosts, ["client1"]);
        assert_eq!(
            f.evidence,
            [
                "server1: member list has client1 as failed",
                "server2: member list has client1 as failed",
                "server3: member list has no client1",
            ]
        );
        assert_eq!(
            f.fix,
            [
                "consulctl apply -i prod.toml",
                "consulctl recover client1 -i prod.toml"
            ]
        );
    }

    #[test]
    fn clock_far_from_the_median() {
        let mut obs = healthy();
        at(&mut obs, "client2").clock_offset_ms = Some(9000);
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["clock-skew"]);
        assert_eq!(findings[0].hosts, ["client2"]);
        assert_eq!(
            findings[0].evidence,
            ["client2: clock is 9.0 s ahead of the median of the hosts"]
        );
    }

    #[test]
    fn unreachable_host_is_only_unreachable() {
        let mut obs = healthy();
        let o = at(&mut obs, "server3");
        *o = Observation {
            host: "server3".into(),
            unreachable: Some(
                "ssh: connect to host 192.168.14.63 port 22: No route to host\n".into(),
            ),
            ..Default::default()
        };
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["unreachable"]);
        assert_eq!(
            findings[0].evidence,
            ["server3: SSH failed: ssh: connect to host 192.168.14.63 port 22: No route to host"]
        );
        assert!(
            findings[0].fix[0].starts_with(
                "server3 (192.168.14.63) did not answer over SSH: check that the host is up"
            ),
            "{:?}",
            findings[0].fix
        );
    }

    #[test]
    fn findings_come_most_severe_first() {
        let mut obs = healthy();
        at(&mut obs, "server3").unreachable = Some("timeout".into());
        at(&mut obs, "client2").clock_offset_ms = Some(-60_000);
        at(&mut obs, "client1").foreign_listeners = vec![(8600, "dnsmasq".into())];
        at(&mut obs, "server2").log = log(PROTOCOL_VERSION);
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.leader = None;
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            [
                "no-leader",
                "protocol-version",
                "port-in-use",
                "clock-skew",
                "unreachable"
            ],
            "{}",
            to_text(&findings)
        );
        assert_eq!(findings[0].hosts, ["server1", "server2"]);
        let ranks: Vec<usize> = findings.iter().map(|f| rank(&f.code)).collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            SEVERITY.iter().collect::<BTreeSet<_>>().len(),
            SEVERITY.len()
        );
    }

    #[test]
    fn maps_names_and_addresses_to_inventory_hosts() {
        let mut exp = expected();
        exp.hosts.push(ExpectedHost {
            name: "v6".into(),
            role: Role::Client,
            address: "v6.example.net".into(),
            bind: Some(ip("fd00::5")),
        });
        let mut obs = healthy();
        at(&mut obs, "client1")
            .addresses
            .extend([ip("10.0.2.99"), ip("172.17.0.1")]);
        at(&mut obs, "client2").addresses.push(ip("172.17.0.1"));
        let cx = Cx {
            exp: &exp,
            all: &obs,
        };
        let name = |s: &str| cx.inventory_host(s).map(|h| h.name.as_str());
        assert_eq!(name("client2"), Some("client2"));
        assert_eq!(name("CLIENT2"), Some("client2"));
        assert_eq!(name("192.168.14.72"), Some("client2"));
        assert_eq!(name("192.168.14.72:8301"), Some("client2"));
        assert_eq!(name("[fd00::5]:8301"), Some("v6"));
        assert_eq!(name("fd00::5"), Some("v6"));
        assert_eq!(name("v6.example.net"), Some("v6"));
        // An interface address only client1 has, and one several hosts have (docker0).
        assert_eq!(name("10.0.2.99"), Some("client1"));
        assert_eq!(name("172.17.0.1"), None);
        assert_eq!(name("10.9.9.9"), None);
        assert_eq!(name(""), None);
        assert_eq!(cx.name_of("10.9.9.9"), "10.9.9.9");
        assert_eq!(cx.name_of("192.168.14.61:8300"), "server1");
    }

    #[test]
    fn parses_remote_addresses_and_protocol_lines() {
        assert_eq!(
            remote_addr("memberlist: Decrypt packet failed: x from=10.0.0.5:8301"),
            Some("10.0.0.5")
        );
        assert_eq!(
            remote_addr("failed to receive: x from=[fd00::7]:41000 extra"),
            Some("fd00::7")
        );
        assert_eq!(
            remote_addr("\t* Failed to join 172.19.0.2:8301: Remote state is encrypted"),
            Some("172.19.0.2")
        );
        assert_eq!(remote_addr("no address here"), None);
        assert_eq!(
            protocol_node("memberlist: Failed push/pull merge: Node '192.168.14.72' protocol version (0) is incompatible"),
            Some(("192.168.14.72", "0"))
        );
        assert_eq!(
            protocol_node(
                "Node 'a' joined; Node 'b' protocol version (12) is incompatible: [1, 5]"
            ),
            Some(("b", "12"))
        );
        assert_eq!(
            protocol_node("Node 'a' protocol version (x) is incompatible"),
            None
        );
        assert_eq!(strip_port("10.0.0.1:8300"), "10.0.0.1");
        assert_eq!(strip_port("[::1]:8300"), "::1");
        assert_eq!(strip_port("fd00::1"), "fd00::1");
        assert_eq!(strip_port("server1"), "server1");
    }

    #[test]
    fn evidence_is_clipped_deduplicated_and_capped_per_host() {
        let mut d = Draft::new("agent-down");
        d.host("h");
        for i in 1..=5 {
            d.log(
                "h",
                &format!("2024-01-02T03:04:0{i}.000Z [ERROR] agent: failure number {i}"),
            );
        }
        d.log(
            "h",
            "2024-01-02T03:05:00.000Z [ERROR] agent: failure number 5",
        );
        d.log("g", &"x".repeat(400));
        d.fact("h", "a fact");
        d.fact("h", "a fact");
        let f = d.finish();
        assert_eq!(
            f.evidence[..4],
            [
                "h: a fact",
                "h: 2024-01-02T03:04:03.000Z [ERROR] agent: failure number 3",
                "h: 2024-01-02T03:04:04.000Z [ERROR] agent: failure number 4",
                "h: 2024-01-02T03:05:00.000Z [ERROR] agent: failure number 5",
            ]
        );
        assert_eq!(f.evidence.len(), 5);
        assert_eq!(f.evidence[4].chars().count(), EVIDENCE_CHARS);
        assert!(f.evidence[4].starts_with("g: xxx") && f.evidence[4].ends_with('…'));
    }

    #[test]
    fn last_error_skips_progress_lines() {
        let lines = log(ADDRESS_IN_USE);
        assert!(last_error(&lines)
            .unwrap()
            .starts_with("==> Error starting agent:"));
        assert_eq!(
            last_error(&log(HEALTHY_CLIENT)).map(|l| l.contains("No known Consul servers")),
            Some(true)
        );
        assert!(!is_error_line("==> Starting Consul agent..."));
        assert!(!is_error_line("    2024-01-02T03:04:05.116Z [WARN]  agent: Join cluster failed, will retry: cluster=LAN retry_interval=30s error=<nil>"));
        assert!(is_error_line(
            "2019/01/02 03:04:05 [ERR] agent: failed to sync remote state: No cluster leader"
        ));
        assert!(is_error_line("==> Multiple private IPv4 addresses found. Please configure one with 'bind' and/or 'advertise'."));
    }

    #[test]
    fn text_report() {
        let findings = vec![
            Finding {
                code: "agent-down".into(),
                hosts: vec!["client1".into()],
                evidence: vec!["client1: no consul agent process runs (init state: failed)".into()],
                cause: "the consul agent is not running".into(),
                fix: vec!["consulctl apply -i prod.toml".into()],
            },
            Finding {
                code: "clock-skew".into(),
                hosts: vec!["a".into(), "b".into()],
                evidence: vec![],
                cause: "clocks".into(),
                fix: vec!["sync".into(), "again".into()],
            },
        ];
        assert_eq!(
            to_text(&findings),
            "PROBLEM agent-down: client1\n\
             \x20   cause: the consul agent is not running\n\
             \x20   evidence: client1: no consul agent process runs (init state: failed)\n\
             \x20   fix: consulctl apply -i prod.toml\n\
             \n\
             PROBLEM clock-skew: a, b\n\
             \x20   cause: clocks\n\
             \x20   fix: sync\n\
             \x20   fix: again\n"
        );
    }

    #[test]
    fn fix_commands_quote_odd_inventory_paths() {
        let mut exp = expected();
        exp.inventory = "my inventories/prod.toml".into();
        let mut obs = healthy();
        at(&mut obs, "client2").clock_offset_ms = None;
        stop(&mut obs, "client2", "inactive", 0, "");
        let findings = diagnose(&exp, &obs);
        assert_eq!(
            one(&findings, "agent-down").fix,
            ["consulctl apply -i 'my inventories/prod.toml'"]
        );
    }
}
