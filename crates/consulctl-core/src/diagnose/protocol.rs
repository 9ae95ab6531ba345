//! `protocol-version`: a node refused for speaking a raft/serf protocol the others do not.

use super::*;

/// Log lines that show one thing: (host, line).
pub(super) type Sightings<'o> = Vec<(&'o str, &'o str)>;

/// `Node 'X' protocol version (N) is incompatible` (or `delegate protocol version`): (X, N).
pub(super) fn protocol_node(line: &str) -> Option<(&str, &str)> {
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

impl<'a> Cx<'a> {
    /// Also returns the refused nodes (as named in the findings).
    pub(super) fn protocol_version(&self) -> (Vec<Finding>, BTreeSet<String>) {
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
                let mut d = Draft::new(FindingCode::ProtocolVersion);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

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
}
