//! Consul's view of the cluster (leader, raft configuration, members) and [`check`], which
//! compares it with the inventory. Pure: the CLI reads the view through a host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Cluster, Host};

/// Consul's view of the cluster, as one agent sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterView {
    /// The host whose agent answered.
    pub via: String,
    /// `IP:8300` of the leader, None when there is no leader.
    pub leader: Option<String>,
    pub raft: Vec<RaftServer>,
    pub members: Vec<Member>,
}

pub use consul_api::{HealthCheck, Member, RaftServer};

/// The base URL of a host's agent API as consulctl's scripts use it: the first address of
/// `client_addr` (loopback when it listens on all addresses), and `ports.http` from extra
/// config or 8500; `https://...:8501` (with the CA, see [`consul_env`]) where consulctl
/// made the certificates (`tls = "auto"` servers).
pub fn http_addr(host: &Host, bind: IpAddr) -> String {
    let (scheme, key, default) = if host.api_tls {
        ("https", "https", crate::agent_config::HTTPS_PORT as i64)
    } else {
        ("http", "http", 8500)
    };
    let port = host
        .extra_config
        .get("ports")
        .and_then(|p| p.get(key))
        .and_then(|p| p.as_i64())
        .filter(|p| *p > 0)
        .unwrap_or(default);
    let tokens: Vec<&str> = host.client_addr.split_whitespace().collect();
    let ip: IpAddr = if tokens
        .iter()
        .any(|t| *t == "127.0.0.1" || *t == "0.0.0.0" || *t == "::")
    {
        IpAddr::from([127, 0, 0, 1])
    } else {
        tokens.iter().find_map(|t| t.parse().ok()).unwrap_or(bind)
    };
    match ip {
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}"),
    }
}

/// Compare Consul's view with the inventory. Empty = healthy.
/// `bind` maps host names to their resolved bind addresses.
pub fn check(
    cluster: &Cluster,
    bind: &BTreeMap<String, IpAddr>,
    view: &ClusterView,
) -> Vec<String> {
    check_except(cluster, bind, view, &BTreeSet::new())
}

/// [`check`] without the hosts in `skip` (hosts that already failed this run: they are failures
/// whatever Consul says, so nothing is asked or waited for about them): they need not be
/// members, alive or raft peers, and a raft peer of theirs is not an unknown one. The cluster
/// still needs a leader.
pub fn check_except(
    cluster: &Cluster,
    bind: &BTreeMap<String, IpAddr>,
    view: &ClusterView,
    skip: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if view.leader.is_none() {
        problems.push("no leader elected".to_string());
    }
    let want: BTreeSet<String> = cluster
        .servers()
        .filter_map(|h| bind.get(&h.name).map(|ip| raft_addr(*ip)))
        .collect();
    let have: BTreeSet<String> = view.raft.iter().map(|s| s.address.clone()).collect();
    if view.leader.is_some() {
        let missing: Vec<String> = cluster
            .servers()
            .filter(|h| !skip.contains(&h.name))
            .filter(|h| {
                bind.get(&h.name)
                    .map(|ip| !have.contains(&raft_addr(*ip)))
                    .unwrap_or(true)
            })
            .map(|h| h.name.clone())
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "servers not in the raft configuration: {}",
                missing.join(", ")
            ));
        }
        let extra: Vec<String> = view
            .raft
            .iter()
            .filter(|s| !want.contains(&s.address) && !skip.contains(&s.node))
            .map(|s| format!("{} ({})", s.node, s.address))
            .collect();
        if !extra.is_empty() {
            problems.push(format!(
                "raft peers the inventory does not list: {}",
                extra.join(", ")
            ));
        }
        let nonvoters: Vec<&str> = view
            .raft
            .iter()
            .filter(|s| !s.voter && !skip.contains(&s.node))
            .map(|s| s.node.as_str())
            .collect();
        if !nonvoters.is_empty() {
            problems.push(format!(
                "servers that are not voters yet: {}",
                nonvoters.join(", ")
            ));
        }
    }
    let mut not_members = Vec::new();
    let mut not_alive = Vec::new();
    for host in cluster.hosts.iter().filter(|h| !skip.contains(&h.name)) {
        match view.members.iter().find(|m| m.name == host.name) {
            None => not_members.push(host.name.clone()),
            Some(m) if m.status != 1 => {
                not_alive.push(format!("{} ({})", host.name, m.status_word()))
            }
            Some(_) => {}
        }
    }
    if !not_members.is_empty() {
        problems.push(format!(
            "hosts that are not members: {}",
            not_members.join(", ")
        ));
    }
    if !not_alive.is_empty() {
        problems.push(format!(
            "members that are not alive: {}",
            not_alive.join(", ")
        ));
    }
    problems
}

pub fn raft_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:8300"),
        IpAddr::V4(v4) => format!("{v4}:8300"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_already_failed_are_not_waited_for() {
        let text = "[cluster]\ndatacenter = \"dc1\"\n[consul]\nversion = \"1.8.7\"\nsource = { package = \"auto\" }\n\
[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
[[hosts]]\nname = \"s2\"\naddress = \"10.0.0.2\"\nrole = \"server\"\n\
[[hosts]]\nname = \"s3\"\naddress = \"10.0.0.3\"\nrole = \"server\"\n\
[[hosts]]\nname = \"c1\"\naddress = \"10.0.0.4\"\nrole = \"client\"\n\
[[hosts]]\nname = \"c2\"\naddress = \"10.0.0.5\"\nrole = \"client\"\n";
        let cluster =
            crate::inventory::parse(std::path::Path::new("inv.toml"), text).expect("inventory");
        let bind: BTreeMap<String, IpAddr> = cluster
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.address.parse().unwrap()))
            .collect();
        let peer = |n: &str, a: &str, voter: bool| RaftServer {
            node: n.into(),
            address: format!("{a}:8300"),
            leader: n == "s1",
            voter,
            ..Default::default()
        };
        let member = |n: &str, a: &str, status: u8| Member {
            name: n.into(),
            addr: a.into(),
            status,
            tags: BTreeMap::new(),
            ..Default::default()
        };
        // s3 was running (failed later in this run, e.g. its lock) and is a non-voter; c2
        // failed validation and never joined.
        let view = ClusterView {
            via: "s1".into(),
            leader: Some("10.0.0.1:8300".into()),
            raft: vec![
                peer("s1", "10.0.0.1", true),
                peer("s2", "10.0.0.2", true),
                peer("s3", "10.0.0.3", false),
            ],
            members: vec![
                member("s1", "10.0.0.1", 1),
                member("s2", "10.0.0.2", 1),
                member("s3", "10.0.0.3", 4),
                member("c1", "10.0.0.4", 1),
            ],
        };
        let all = check(&cluster, &bind, &view);
        assert_eq!(
            all,
            [
                "servers that are not voters yet: s3",
                "hosts that are not members: c2",
                "members that are not alive: s3 (failed)"
            ]
        );
        let skip: BTreeSet<String> = ["s3".to_string(), "c2".to_string()].into();
        assert!(check_except(&cluster, &bind, &view, &skip).is_empty());
        // A host that did not fail is still waited for, and a leader is still needed.
        let mut no_leader = view.clone();
        no_leader.leader = None;
        no_leader.members.retain(|m| m.name != "c1");
        assert_eq!(
            check_except(&cluster, &bind, &no_leader, &skip),
            ["no leader elected", "hosts that are not members: c1"]
        );
    }
}
