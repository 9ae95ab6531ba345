//! `node-id-conflict`: hosts that claim the same node ID, from the node-id files or from
//! Consul's refusals.

use super::*;

/// Hosts that claim the same node ID, found in the node-id files or in Consul's refusals.
#[derive(Default)]
pub(super) struct Conflict {
    pub(super) names: BTreeSet<String>,
    /// Lowercase node IDs.
    pub(super) ids: BTreeSet<String>,
    pub(super) facts: Vec<(String, String)>,
    /// (order found, host, line)
    pub(super) logs: Vec<(usize, String, String)>,
    /// Hosts Consul refused (the copies that cannot join).
    pub(super) refused: BTreeSet<String>,
}

impl Conflict {
    pub(super) fn overlaps(&self, other: &Conflict) -> bool {
        !self.names.is_disjoint(&other.names) || !self.ids.is_disjoint(&other.ids)
    }

    pub(super) fn absorb(&mut self, other: Conflict) {
        self.names.extend(other.names);
        self.ids.extend(other.ids);
        self.facts.extend(other.facts);
        self.logs.extend(other.logs);
        self.refused.extend(other.refused);
    }
}

/// Merge conflicts that share a host or a node ID, transitively, keeping the order in which
/// their evidence was found.
pub(super) fn merge_conflicts(list: Vec<Conflict>) -> Vec<Conflict> {
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

/// `Member 'A' has conflicting node ID 'ID' with this agent's ID` -> (A, ID, None);
/// `... with member 'B'` -> (A, ID, Some(B)).
pub(super) fn id_conflict(line: &str) -> Option<(&str, &str, Option<&str>)> {
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

impl<'a> Cx<'a> {
    pub(super) fn node_id_conflicts(&self) -> Vec<Finding> {
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
    pub(super) fn conflict_resolved(&self, c: &Conflict) -> bool {
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
    pub(super) fn seen_alive(&self, host: &str) -> bool {
        let Some(h) = self.expected_host(host) else {
            return false;
        };
        self.reachable()
            .filter(|o| o.host != host)
            .filter_map(|o| o.api.as_ref())
            .any(|a| self.member_status(&a.members, h) == Some(1))
    }

    pub(super) fn conflict_finding(&self, mut c: Conflict) -> Finding {
        let mut d = Draft::new(FindingCode::NodeIdConflict);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

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
}
