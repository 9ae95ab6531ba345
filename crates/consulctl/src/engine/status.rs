//! The cluster's status: Consul's own view (members, leader, raft peers) and each host's agent;
//! shown by `status` and after `lab up`.
//! Exit 0 when the cluster matches the inventory, 1 otherwise.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::{Output, Settings};
use crate::engine::context::{self, HostRun};
use crate::engine::progress::Progress;
use crate::engine::verify::{self, ClusterView};
use consulctl_core::error::Error;
use consulctl_core::model::Role;

#[derive(Debug, Serialize)]
pub struct HostState {
    pub name: String,
    pub role: Role,
    pub init: &'static str,
    pub reachable: bool,
    pub agent_running: bool,
    pub pid: Option<u32>,
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub datacenter: String,
    pub healthy: bool,
    pub problems: Vec<String>,
    pub leader: Option<String>,
    pub raft_peers: Vec<verify::RaftServer>,
    pub members: Vec<verify::Member>,
    /// The WAN pool (servers of every datacenter joined over WAN; `dc` in their tags), read
    /// through the server that answered; empty when it has none or did not answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wan_members: Vec<verify::Member>,
    pub hosts: Vec<HostState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// Connect to the hosts of `settings`, read Consul's view through the first agent that
/// answers and each host's agent state, print it as `output` asks. Exit 1 when unhealthy.
pub async fn show(
    settings: impl Into<Settings>,
    output: Output,
    debug_log: Option<&Path>,
) -> Result<(), Error> {
    let p = context::prepare(settings, "status", debug_log).await?;
    let mut runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new_pub).collect();
    let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
    context::connect(&mut runs, &p, &progress).await;
    context::gather_facts(&mut runs, &p, &progress).await;
    let binds = context::bind_addrs(&p.cluster, &runs);
    let agents = agents(&runs, &binds);
    let (view, read_error) = read_cluster_view(&agents, |host| {
        progress.set(host, "reading cluster state");
    })
    .await;
    let wan_members = match &view {
        Some(v) => read_wan(&agents, &v.via).await,
        None => vec![],
    };
    for r in &runs {
        progress.finish(&r.host.name, "");
    }
    progress.clear();
    let hosts: Vec<HostState> = runs
        .iter()
        .map(|r| {
            let f = r.facts.as_ref();
            HostState {
                name: r.host.name.clone(),
                role: r.host.role,
                init: r.host.init.as_str(),
                reachable: r.conn.is_some(),
                agent_running: f.map(|f| f.agent_running(r.host.init)).unwrap_or(false),
                pid: f.and_then(|f| f.consul_pid),
                version: f
                    .and_then(|f| f.consul.as_ref())
                    .and_then(|c| c.version)
                    .map(|v| v.to_string()),
                error: r.failed.as_ref().map(|(ph, e)| format!("{ph}: {e}")),
            }
        })
        .collect();
    let problems = match &view {
        Some(v) => {
            let mut problems = verify::check(&p.cluster, &binds, v);
            problems.extend(wan_problem(&p.cluster, &wan_members));
            problems
        }
        None => vec![format!(
            "no agent answered{}",
            read_error.map(|e| format!(" ({e})")).unwrap_or_default()
        )],
    };
    let status = Status {
        datacenter: p.cluster.datacenter.clone(),
        healthy: problems.is_empty(),
        problems,
        leader: view.as_ref().and_then(|v| v.leader.clone()),
        raft_peers: view.as_ref().map(|v| v.raft.clone()).unwrap_or_default(),
        members: view.as_ref().map(|v| v.members.clone()).unwrap_or_default(),
        wan_members,
        hosts,
        via: view.as_ref().map(|v| v.via.clone()),
    };
    context::disconnect(&mut runs, None).await;
    crate::engine::output::print(output, &status);
    if status.healthy {
        Ok(())
    } else {
        Err(Error::Runtime(anyhow!(
            "cluster not healthy: {}",
            status.problems.join("; ")
        )))
    }
}

/// The agents `status` reads Consul through: connected hosts with a known bind address whose
/// agent runs, servers first (they know the raft configuration).
pub fn agents(runs: &[HostRun], binds: &BTreeMap<String, IpAddr>) -> Vec<verify::Agent> {
    let mut order: Vec<&HostRun> = runs
        .iter()
        .filter(|r| r.host.role == Role::Server)
        .collect();
    order.extend(runs.iter().filter(|r| r.host.role == Role::Client));
    order
        .into_iter()
        .filter(|r| {
            r.facts
                .as_ref()
                .is_some_and(|f| f.agent_running(r.host.init))
        })
        .filter_map(|r| {
            let conn = r.conn.as_ref()?;
            let bind = binds.get(&r.host.name)?;
            Some(verify::agent(conn, &r.host, Some(*bind)))
        })
        .collect()
}

/// How long one agent may take to answer `status`.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Consul's view through the first of `agents` that answers (`reading` is told each host
/// before it is asked); else why the last one asked did not answer.
pub async fn read_cluster_view(
    agents: &[verify::Agent],
    mut reading: impl FnMut(&str),
) -> (Option<ClusterView>, Option<String>) {
    let got = verify::first_answer(agents, Some(READ_TIMEOUT), |a| {
        reading(&a.host);
        verify::read_view_with(&a.client, &a.host)
    })
    .await;
    (
        got.answer.map(|(_, v)| v),
        got.errors.last().map(verify::NoAnswer::short),
    )
}

/// The WAN pool through the agent `via` (a server: clients have no WAN pool).
async fn read_wan(agents: &[verify::Agent], via: &str) -> Vec<verify::Member> {
    let Some(a) = agents.iter().find(|a| a.host == via) else {
        return vec![];
    };
    match tokio::time::timeout(
        READ_TIMEOUT,
        a.client.call(consul_api::agent::members(true)),
    )
    .await
    {
        Ok(Ok(mut m)) => {
            m.sort_by(|a, b| (a.tags.get("dc"), &a.name).cmp(&(b.tags.get("dc"), &b.name)));
            m
        }
        Ok(Err(e)) => {
            tracing::debug!(via, error = %e, "reading the WAN pool");
            vec![]
        }
        Err(_) => vec![],
    }
}

/// With `retry_join_wan` in the inventory, the WAN pool must hold an alive server of another
/// datacenter: else the datacenters are not joined.
pub fn wan_problem(
    cluster: &consulctl_core::model::Cluster,
    wan: &[verify::Member],
) -> Option<String> {
    if cluster.retry_join_wan.is_empty() {
        return None;
    }
    let other = wan
        .iter()
        .any(|m| m.is_alive() && m.tags.get("dc").is_some_and(|dc| *dc != cluster.datacenter));
    (!other).then(|| {
        format!(
            "no alive server of another datacenter in the WAN pool (retry_join_wan = {}): \
             check port 8302 (TCP and UDP) between the datacenters' servers",
            cluster.retry_join_wan.join(", ")
        )
    })
}

pub fn to_text(s: &Status) -> String {
    let mut out = String::new();
    let leader_node = s
        .raft_peers
        .iter()
        .find(|p| Some(&p.address) == s.leader.as_ref())
        .map(|p| format!(" ({})", p.node))
        .unwrap_or_default();
    out.push_str(&format!(
        "datacenter {}: leader {}{}\n",
        s.datacenter,
        s.leader.as_deref().unwrap_or("NONE"),
        leader_node
    ));
    if let Some(via) = &s.via {
        out.push_str(&format!("(as seen by {via})\n"));
    }
    out.push_str("\nMembers:\n");
    let w = s
        .members
        .iter()
        .chain(&s.wan_members)
        .map(|m| m.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    // One line of a member table: name, address, status, and the last column.
    let member_row = |name: &str, addr: &str, status: &str, last: &str| {
        format!("  {name:<w$}  {addr:<22} {status:<8} {last}\n")
    };
    out.push_str(&member_row("NODE", "ADDRESS", "STATUS", "TYPE"));
    for m in &s.members {
        out.push_str(&member_row(&m.name, &m.addr, m.status_word(), m.role()));
    }
    if !s.wan_members.is_empty() {
        out.push_str("\nWAN pool:\n");
        out.push_str(&member_row("NODE", "ADDRESS", "STATUS", "DATACENTER"));
        for m in &s.wan_members {
            let dc = m.tags.get("dc").map(String::as_str).unwrap_or("-");
            out.push_str(&member_row(&m.name, &m.addr, m.status_word(), dc));
        }
    }
    out.push_str("\nRaft peers:\n");
    out.push_str(&format!(
        "  {:<w$}  {:<22} {:<9} {}\n",
        "NODE", "ADDRESS", "STATE", "VOTER"
    ));
    for p in &s.raft_peers {
        let state = if p.leader { "leader" } else { "follower" };
        out.push_str(&format!(
            "  {:<w$}  {:<22} {:<9} {}\n",
            p.node, p.address, state, p.voter
        ));
    }
    out.push_str("\nHosts:\n");
    let hw = s
        .hosts
        .iter()
        .map(|h| h.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "  {:<hw$}  {:<7} {:<12} {:<8} {:<8} {}\n",
        "HOST", "ROLE", "INIT", "AGENT", "PID", "VERSION"
    ));
    for h in &s.hosts {
        let agent = if !h.reachable {
            "unreachable"
        } else if h.agent_running {
            "running"
        } else {
            "stopped"
        };
        out.push_str(&format!(
            "  {:<hw$}  {:<7} {:<12} {:<8} {:<8} {}\n",
            h.name,
            h.role.as_str(),
            h.init,
            agent,
            h.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            h.version.as_deref().unwrap_or("-")
        ));
        if let Some(e) = &h.error {
            out.push_str(&format!("    {e}\n"));
        }
    }
    if s.healthy {
        out.push_str(&format!(
            "\nhealthy: {} alive members, {} voters\n",
            s.members.iter().filter(|m| m.status == 1).count(),
            s.raft_peers.iter().filter(|p| p.voter).count()
        ));
    } else {
        out.push_str("\nNOT healthy:\n");
        for p in &s.problems {
            out.push_str(&format!("  - {p}\n"));
        }
    }
    out
}

impl crate::engine::output::Report for Status {
    fn to_text(&self) -> String {
        to_text(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_api::testing::FakeTransport;
    use consul_api::Client;

    #[test]
    fn wan_join_is_a_problem_until_another_datacenter_is_in_the_pool() {
        let mut cluster = consulctl_core::inventory::parse(
            Path::new("dc1.toml"),
            "[cluster]\ndatacenter = \"dc1\"\nretry_join_wan = [\"10.1.0.10\"]\n\
             [consul]\nversion = \"1.8.7\"\nsource = { package = \"auto\" }\n\
             [[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n",
        )
        .unwrap();
        let member = |name: &str, dc: &str, status: u8| verify::Member {
            name: name.into(),
            status,
            tags: [("dc".to_string(), dc.to_string())].into(),
            ..Default::default()
        };
        let own = member("s1.dc1", "dc1", 1);
        let p = wan_problem(&cluster, std::slice::from_ref(&own)).unwrap();
        assert!(p.contains("retry_join_wan = 10.1.0.10"), "{p}");
        assert!(wan_problem(&cluster, &[own.clone(), member("s2.dc2", "dc2", 4)]).is_some());
        assert!(wan_problem(&cluster, &[own.clone(), member("s2.dc2", "dc2", 1)]).is_none());
        cluster.retry_join_wan.clear();
        assert!(wan_problem(&cluster, &[own]).is_none());
    }

    #[tokio::test]
    async fn the_view_comes_from_the_first_agent_that_answers() {
        let down = FakeTransport::new().fail_all("ssh server1: connection refused");
        let up = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.2:8300\"")
            .on(
                "GET",
                "/v1/operator/raft/configuration",
                200,
                r#"{"Servers":[{"ID":"b","Node":"server2","Address":"10.0.0.2:8300","Leader":true,"Voter":true}]}"#,
            )
            .on(
                "GET",
                "/v1/agent/members",
                200,
                r#"[{"Name":"server2","Addr":"10.0.0.2","Port":8301,"Status":1,"Tags":{"role":"consul"}}]"#,
            );
        let agents = [
            verify::Agent::new("server1", Client::new(down)),
            verify::Agent::new("server2", Client::new(up)),
        ];
        let mut asked = Vec::new();
        let (view, err) = read_cluster_view(&agents, |h| asked.push(h.to_string())).await;
        let view = view.unwrap();
        assert_eq!(view.via, "server2");
        assert_eq!(view.leader.as_deref(), Some("10.0.0.2:8300"));
        assert_eq!(view.raft[0].node, "server2");
        assert_eq!(view.members[0].role(), "server");
        assert_eq!(asked, ["server1", "server2"]);
        assert_eq!(
            err.as_deref(),
            Some("server1: reading the leader: ssh server1: connection refused")
        );

        let (view, err) = read_cluster_view(&agents[..1], |_| {}).await;
        assert!(view.is_none());
        assert!(err.unwrap().starts_with("server1: "));
        assert_eq!(read_cluster_view(&[], |_| {}).await.1, None);
    }
}
