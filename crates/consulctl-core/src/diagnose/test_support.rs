//! Helpers shared by the diagnose tests: a healthy lab cluster, fixture log files and
//! assertions on findings.

use super::*;

pub(super) const HEALTHY_SERVER: &str =
    include_str!("../../tests/fixtures/doctor/healthy-server.log");
pub(super) const HEALTHY_CLIENT: &str =
    include_str!("../../tests/fixtures/doctor/healthy-client.log");
pub(super) const PROTOCOL_VERSION: &str =
    include_str!("../../tests/fixtures/doctor/protocol-version.log");
pub(super) const CONFLICT_CLIENT: &str =
    include_str!("../../tests/fixtures/doctor/node-id-conflict-client.log");
pub(super) const CONFLICT_SERVER: &str =
    include_str!("../../tests/fixtures/doctor/node-id-conflict-server.log");
pub(super) const CONFLICT_SERVER_JOIN: &str =
    include_str!("../../tests/fixtures/doctor/node-id-conflict-server-join.log");
pub(super) const KEYRING_STALE: &str =
    include_str!("../../tests/fixtures/doctor/keyring-stale.log");
pub(super) const NO_INSTALLED_KEYS: &str =
    include_str!("../../tests/fixtures/doctor/no-installed-keys.log");
pub(super) const MULTIPLE_IPV4: &str =
    include_str!("../../tests/fixtures/doctor/multiple-private-ipv4.log");
pub(super) const ADDRESS_IN_USE: &str =
    include_str!("../../tests/fixtures/doctor/address-in-use.log");
pub(super) const DATA_DIR: &str =
    include_str!("../../tests/fixtures/doctor/data-dir-permission.log");
pub(super) const WRONG_DC: &str =
    include_str!("../../tests/fixtures/doctor/datacenter-mismatch.log");

/// sha256 of the inventory's gossip key, and of another key.
pub(super) const FP: &str = "5b1e6a3cf1d0a9b8e7c6d5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4";
pub(super) const OTHER_FP: &str =
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A fixture's log lines: its `#` comment lines and blank lines left out.
pub(super) fn log(fixture: &str) -> Vec<String> {
    fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn host(name: &str, role: Role, address: &str) -> ExpectedHost {
    ExpectedHost {
        name: name.into(),
        role,
        address: address.into(),
        bind: Some(ip(address)),
        registrar: false,
        lb: false,
    }
}

pub(super) fn expected() -> Expected {
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

pub(super) fn member(name: &str, addr: &str, status: u8) -> Member {
    Member {
        name: name.into(),
        addr: addr.into(),
        status,
        tags: BTreeMap::new(),
        ..Default::default()
    }
}

pub(super) fn peer(node: &str, address: &str, leader: bool) -> RaftServer {
    RaftServer {
        node: node.into(),
        address: address.into(),
        leader,
        voter: true,
        ..Default::default()
    }
}

/// A healthy cluster of 3 servers and 2 clients, as doctor reads it.
pub(super) fn healthy() -> Vec<Observation> {
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
                    daemon_checks: Default::default(),
                    all_checks: vec![],
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

pub(super) fn at<'a>(obs: &'a mut [Observation], host: &str) -> &'a mut Observation {
    obs.iter_mut().find(|o| o.host == host).unwrap()
}

pub(super) fn api<'a>(obs: &'a mut [Observation], host: &str) -> &'a mut AgentApi {
    at(obs, host).api.as_mut().unwrap()
}

/// `host` stopped: no process, no API answer, the given log.
pub(super) fn stop(obs: &mut [Observation], host: &str, state: &str, restarts: u32, fixture: &str) {
    let o = at(obs, host);
    o.agent_pid = None;
    o.api = None;
    o.init_state = Some(state.into());
    o.restarts = Some(restarts);
    o.log = log(fixture);
}

/// Drop `host` from every member list but its own.
pub(super) fn forget(obs: &mut [Observation], host: &str) {
    for o in obs.iter_mut().filter(|o| o.host != host) {
        if let Some(api) = o.api.as_mut() {
            api.members.retain(|m| m.name != host);
        }
    }
}

pub(super) fn codes(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.code.as_str()).collect()
}

/// The one finding with `code`.
pub(super) fn one<'a>(findings: &'a [Finding], code: &str) -> &'a Finding {
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

pub(super) fn evidence_has(f: &Finding, text: &str) -> bool {
    f.evidence.iter().any(|e| e.contains(text))
}

/// A check of one of consulctl-host's daemons.
pub(super) fn daemon_check(id: &str, status: &str, output: &str) -> HealthCheck {
    HealthCheck {
        check_id: id.into(),
        status: status.into(),
        output: output.into(),
        ..Default::default()
    }
}

/// `expected()` with `enable` applied to client1 (it runs a daemon), `healthy()` with `check`
/// (if any) on client1's agent.
pub(super) fn with_daemon(
    enable: impl Fn(&mut ExpectedHost),
    check: Option<HealthCheck>,
) -> (Expected, Vec<Observation>) {
    let mut exp = expected();
    enable(&mut exp.hosts[3]);
    let mut obs = healthy();
    if let Some(c) = check {
        obs[3]
            .api
            .as_mut()
            .unwrap()
            .daemon_checks
            .insert(c.check_id.clone(), c);
    }
    (exp, obs)
}
