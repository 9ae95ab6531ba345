//! Leadership and membership: `no-leader`, `stale-peers`, `missing-peers`,
//! `unknown-members` and `not-member`.

use super::*;

/// Log lines that show the agent has (again) a leader after a "No cluster leader".
pub(super) const LEADER_FOUND: [&str; 4] = [
    "New leader elected",
    "cluster leadership acquired",
    "entering leader state",
    "Synced node info",
];

/// The latest "No cluster leader" when no leader showed up after it.
pub(super) fn current_no_leader(log: &[String]) -> Option<&str> {
    let missing = log.iter().rposition(|l| l.contains("No cluster leader"))?;
    let found = log
        .iter()
        .rposition(|l| LEADER_FOUND.iter().any(|m| l.contains(m)));
    (!matches!(found, Some(found) if found > missing)).then(|| log[missing].as_str())
}

impl<'a> Cx<'a> {
    pub(super) fn no_leader(&self, explained: &BTreeSet<String>) -> Option<Finding> {
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
        let mut d = Draft::new(FindingCode::NoLeader);
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

    pub(super) fn stale_peers(&self) -> Option<Finding> {
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
        let mut d = Draft::new(FindingCode::StalePeers);
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

    pub(super) fn missing_peers(&self, explained: &BTreeSet<String>) -> Option<Finding> {
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
        let mut d = Draft::new(FindingCode::MissingPeers);
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

    pub(super) fn unknown_members(&self, named: &BTreeSet<String>) -> Option<Finding> {
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
        let mut d = Draft::new(FindingCode::UnknownMembers);
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

    pub(super) fn not_member(&self, explained: &BTreeSet<String>) -> Option<Finding> {
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
        let mut d = Draft::new(FindingCode::NotMember);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

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
}
