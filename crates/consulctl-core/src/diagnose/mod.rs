//! Diagnose (pure): what `doctor` read on every host -> findings, each with the hosts, the
//! evidence (a log line or an API answer), the cause in plain words and the consulctl command
//! that fixes it. No SSH here: `doctor.rs` gathers [`Observation`]s, this module judges them,
//! and the unit tests feed it real Consul log lines and API answers from fixture files.
//!
//! Layout: the types and [`diagnose`] (which runs the rules in order) here; one file per rule
//! family (`reachability`, `protocol`, `node_id`, `encryption`, `datacenter`, `agent`, `raft`,
//! `clock`, `registrar`, `lb`, `external`), each adding its methods to the judge `Cx`; `cx` (lookups and fix commands shared by
//! the rules) and `draft` (a finding under construction). The submodules share the imports
//! below through `use super::*`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::Role;
use crate::view::{HealthCheck, Member, RaftServer};

mod agent;
mod clock;
mod code;
mod cx;
mod datacenter;
mod draft;
mod encryption;
mod external;
mod lb;
mod node_id;
mod protocol;
mod raft;
mod reachability;
mod registrar;
pub use registrar::REGISTRAR_CHECK;
/// The checks consulctl-host's daemons keep on their agents (what doctor reads of
/// `/v1/agent/checks`).
pub const DAEMON_CHECKS: [&str; 2] = [REGISTRAR_CHECK, crate::lb::LB_CHECK];
#[cfg(test)]
mod test_support;

pub use code::FindingCode;

use agent::*;
use cx::*;
use draft::*;

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
    /// The inventory runs the Docker registrar on this host.
    pub registrar: bool,
    /// The inventory runs the LB sync daemon on this host.
    pub lb: bool,
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
    /// The self checks of consulctl-host's daemons on this agent (`/v1/agent/checks`, the IDs
    /// of [`DAEMON_CHECKS`]), by CheckID; a daemon's is missing when the agent has none (or
    /// the checks were not read).
    pub daemon_checks: std::collections::BTreeMap<String, HealthCheck>,
    /// Every check of the datacenter (`/v1/health/state/any`), read through servers only
    /// (empty elsewhere): the checks of nodes without an agent are judged from it.
    pub all_checks: Vec<HealthCheck>,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier: `protocol-version`, `node-id-conflict`, `gossip-key`,
    /// `encryption-mismatch`, `bind-address`, `agent-down`, `crash-loop`, `port-in-use`,
    /// `data-dir`, `no-leader`, `stale-peers`, `missing-peers`, `unknown-members`,
    /// `datacenter-mismatch`, `clock-skew`, `unreachable`, `sudo-password`, `no-agent`,
    /// `not-member`, `registrar-down`, `lb-down`, `lb-failing`, `registrar-settings`,
    /// `external-check-never-run`.
    pub code: FindingCode,
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
pub const SEVERITY: [FindingCode; 24] = FindingCode::ALL;

/// Codes about what is wrong on the hosts they name: a host one of them names is explained, and
/// the cluster-level symptoms it causes (not a member, missing from raft) are not reported again.
/// (`protocol-version` also names the hosts that log it: only its refused node is explained.)
const HOST_CAUSES: [FindingCode; 12] = [
    FindingCode::NodeIdConflict,
    FindingCode::GossipKey,
    FindingCode::EncryptionMismatch,
    FindingCode::DatacenterMismatch,
    FindingCode::BindAddress,
    FindingCode::PortInUse,
    FindingCode::DataDir,
    FindingCode::CrashLoop,
    FindingCode::AgentDown,
    FindingCode::NoAgent,
    FindingCode::Unreachable,
    FindingCode::SudoPassword,
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
        .filter(|f| f.code != FindingCode::NoLeader)
        .flat_map(|f| f.hosts.iter().cloned())
        .collect();
    out.extend(cx.unknown_members(&named));
    out.extend(cx.not_member(&explained));
    out.extend(cx.clock_skew());
    out.extend(cx.registrar(&explained));
    out.extend(cx.lb(&explained));
    out.extend(cx.external_checks());
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

fn rank(code: &FindingCode) -> usize {
    SEVERITY
        .iter()
        .position(|c| c == code)
        .unwrap_or(SEVERITY.len())
}

/// Hosts named by findings with one of `codes`.
fn hosts_with(findings: &[Finding], codes: &[FindingCode]) -> BTreeSet<String> {
    findings
        .iter()
        .filter(|f| codes.contains(&f.code))
        .flat_map(|f| f.hosts.iter().cloned())
        .collect()
}

struct Cx<'a> {
    exp: &'a Expected,
    all: &'a [Observation],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

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
    fn text_report() {
        let findings = vec![
            Finding {
                code: FindingCode::AgentDown,
                hosts: vec!["client1".into()],
                evidence: vec!["client1: no consul agent process runs (init state: failed)".into()],
                cause: "the consul agent is not running".into(),
                fix: vec!["consulctl apply -i prod.toml".into()],
            },
            Finding {
                code: FindingCode::ClockSkew,
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
}
