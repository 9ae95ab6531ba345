//! Raft quorum arithmetic (pure): what removing servers, or taking one down for a while, does
//! to the voter set Consul reports; and raft addresses `IP:port` / `[IPv6]:port`.
//!
//! A raft server is matched to its serf member by node name, else by IP (so a member `Addr`
//! `fd00::2` is the raft server `[fd00::2]:8300`). A voter counts as alive when its member's
//! status is 1 (alive); a voter without member counts as not alive.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::agent::Member;
use crate::operator::RaftServer;

/// Consul's server RPC (raft) port.
pub const RAFT_PORT: u16 = 8300;

/// Votes a voter set of `voters` needs: `voters / 2 + 1`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// How many of `voters` may fail with the rest keeping a quorum (0 for 0 voters).
pub fn failure_tolerance(voters: usize) -> usize {
    voters.saturating_sub(quorum(voters))
}

/// `IP:8300`, `[IPv6]:8300`: a server's raft address for its bind IP.
pub fn raft_addr(ip: IpAddr) -> String {
    SocketAddr::new(ip, RAFT_PORT).to_string()
}

/// The IP of a raft or serf address: `IP:port`, `[IPv6]:port`, a bare IP or `[IPv6]`.
pub fn parse_addr_ip(addr: &str) -> Option<IpAddr> {
    let addr = addr.trim();
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    addr.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The member for a raft server: same node name, else same IP.
pub fn member_of<'a>(members: &'a [Member], server: &RaftServer) -> Option<&'a Member> {
    members.iter().find(|m| m.name == server.node).or_else(|| {
        let ip = parse_addr_ip(&server.address)?;
        members.iter().find(|m| parse_addr_ip(&m.addr) == Some(ip))
    })
}

/// The raft entry of a server: same node name, else a raft address with the IP `ip` (the
/// server's bind IP; `[fd00::1]:8300` matches `fd00::1`).
pub fn find_server<'a>(
    raft: &'a [RaftServer],
    node: &str,
    ip: Option<IpAddr>,
) -> Option<&'a RaftServer> {
    raft.iter().find(|s| s.node == node).or_else(|| {
        let ip = ip?;
        raft.iter().find(|s| parse_addr_ip(&s.address) == Some(ip))
    })
}

fn alive(members: &[Member], server: &RaftServer) -> bool {
    member_of(members, server).is_some_and(Member::is_alive)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What removing some servers does to the raft voter set, as Consul reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumCheck {
    /// The servers to remove, as named on the command line.
    pub removing: Vec<String>,
    /// Voters in the raft configuration now.
    pub voters: usize,
    /// How many of them the removal takes out.
    pub removed_voters: usize,
    /// Voters left after the removal.
    pub remaining: usize,
    /// Of those, how many are alive members (serf status 1).
    pub alive_remaining: usize,
    /// Votes the remaining voter set needs: `remaining / 2 + 1`.
    pub quorum: usize,
}

impl QuorumCheck {
    /// Why the removal must not go ahead; None when it is safe.
    pub fn problem(&self) -> Option<String> {
        if self.removed_voters == 0 {
            return None;
        }
        let names = self.removing.join(", ");
        if self.remaining == 0 {
            return Some(format!(
                "removing {names} would remove the last server: none of the {} voter{} would remain",
                self.voters,
                plural(self.voters)
            ));
        }
        if self.alive_remaining < self.quorum {
            return Some(format!(
                "removing {names} would leave {} alive voter{} of {}; quorum of the remaining {} needs {}",
                self.alive_remaining,
                plural(self.alive_remaining),
                self.remaining,
                self.remaining,
                self.quorum
            ));
        }
        None
    }
}

/// Quorum after removing the servers named `removing`, matched against the raft
/// configuration by node name or by the IP of their raft address (`remove_ips`, e.g. the bind
/// IPs of the hosts being removed). Only voters count.
pub fn quorum_after_removal(
    raft: &[RaftServer],
    members: &[Member],
    removing: &[String],
    remove_ips: &BTreeSet<IpAddr>,
) -> QuorumCheck {
    let is_removed = |s: &RaftServer| {
        removing.contains(&s.node)
            || parse_addr_ip(&s.address).is_some_and(|ip| remove_ips.contains(&ip))
    };
    let voters: Vec<&RaftServer> = raft.iter().filter(|s| s.voter).collect();
    let remaining: Vec<&RaftServer> = voters.iter().copied().filter(|s| !is_removed(s)).collect();
    let alive_remaining = remaining.iter().filter(|s| alive(members, s)).count();
    QuorumCheck {
        removing: removing.to_vec(),
        voters: voters.len(),
        removed_voters: voters.len() - remaining.len(),
        remaining: remaining.len(),
        alive_remaining,
        quorum: quorum(remaining.len()),
    }
}

/// Whether taking the server `target` (node name, or raft address IP `target_ip`) down for a
/// while keeps a quorum: the other voters that are alive members must be at least the quorum
/// of the whole voter set. Some(problem) when not; None also when `target` is not a voter.
pub fn quorum_while_down(
    raft: &[RaftServer],
    members: &[Member],
    target: &str,
    target_ip: Option<IpAddr>,
) -> Option<String> {
    let voters: Vec<&RaftServer> = raft.iter().filter(|s| s.voter).collect();
    let is_target = |s: &RaftServer| {
        s.node == target || target_ip.is_some_and(|ip| parse_addr_ip(&s.address) == Some(ip))
    };
    if !voters.iter().any(|s| is_target(s)) {
        return None;
    }
    let alive_others = voters
        .iter()
        .filter(|s| !is_target(s) && alive(members, s))
        .count();
    let need = quorum(voters.len());
    if alive_others < need {
        Some(format!(
            "while {target} is down, {alive_others} of the {} voters would be alive; the quorum needs {need}",
            voters.len()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(node: &str, ip: &str, voter: bool) -> RaftServer {
        let ip: IpAddr = ip.parse().unwrap();
        RaftServer {
            node: node.into(),
            address: raft_addr(ip),
            voter,
            ..RaftServer::default()
        }
    }

    fn member(name: &str, ip: &str, status: u8) -> Member {
        Member {
            name: name.into(),
            addr: ip.into(),
            port: 8301,
            status,
            tags: [("role".to_string(), "consul".to_string())].into(),
        }
    }

    /// `n` voters server1..n at 10.0.0.1..n; `dead` are failed members.
    fn cluster(n: usize, dead: &[usize]) -> (Vec<RaftServer>, Vec<Member>) {
        let raft = (1..=n)
            .map(|i| server(&format!("server{i}"), &format!("10.0.0.{i}"), true))
            .collect();
        let members = (1..=n)
            .map(|i| {
                let status = if dead.contains(&i) { 4 } else { 1 };
                member(&format!("server{i}"), &format!("10.0.0.{i}"), status)
            })
            .collect();
        (raft, members)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn check(n: usize, dead: &[usize], remove: &[&str]) -> QuorumCheck {
        let (raft, members) = cluster(n, dead);
        quorum_after_removal(&raft, &members, &names(remove), &BTreeSet::new())
    }

    #[test]
    fn arithmetic() {
        let q: Vec<_> = (0..=7).map(quorum).collect();
        assert_eq!(q, [1, 1, 2, 2, 3, 3, 4, 4]);
        let t: Vec<_> = (0..=7).map(failure_tolerance).collect();
        assert_eq!(t, [0, 0, 0, 1, 1, 2, 2, 3]);
    }

    #[test]
    fn five_to_three_healthy_is_fine() {
        let c = check(5, &[], &["server4", "server5"]);
        assert_eq!(
            (c.voters, c.remaining, c.alive_remaining, c.quorum),
            (5, 3, 3, 2)
        );
        assert_eq!(c.problem(), None);
    }

    #[test]
    fn removing_two_of_five_with_two_dead_names_the_numbers() {
        // 5 voters, server1 and server4 dead: removing server2 and server3 leaves 1 alive of 3.
        let c = check(5, &[1, 4], &["server2", "server3"]);
        assert_eq!(
            c.problem().unwrap(),
            "removing server2, server3 would leave 1 alive voter of 3; quorum of the remaining 3 needs 2"
        );
    }

    #[test]
    fn one_dead_of_three_refuses_removing_a_live_one() {
        let c = check(3, &[1], &["server2"]);
        assert_eq!((c.remaining, c.alive_remaining, c.quorum), (2, 1, 2));
        assert_eq!(
            c.problem().unwrap(),
            "removing server2 would leave 1 alive voter of 2; quorum of the remaining 2 needs 2"
        );
    }

    #[test]
    fn removing_the_dead_one_of_three_is_fine() {
        let c = check(3, &[3], &["server3"]);
        assert_eq!((c.remaining, c.alive_remaining, c.quorum), (2, 2, 2));
        assert_eq!(c.problem(), None);
    }

    #[test]
    fn three_to_one_healthy_keeps_a_quorum_of_one() {
        // 3 -> 1: one alive voter, quorum of 1 is 1: allowed (the cluster keeps a leader).
        let c = check(3, &[], &["server2", "server3"]);
        assert_eq!((c.remaining, c.alive_remaining, c.quorum), (1, 1, 1));
        assert_eq!(c.problem(), None);
    }

    #[test]
    fn the_last_server_is_refused() {
        let c = check(1, &[], &["server1"]);
        assert_eq!(
            c.problem().unwrap(),
            "removing server1 would remove the last server: none of the 1 voter would remain"
        );
        let c = check(3, &[], &["server1", "server2", "server3"]);
        assert!(c.problem().unwrap().contains("the last server"), "{c:?}");
    }

    #[test]
    fn non_voters_do_not_count_and_unknown_members_are_not_alive() {
        let (mut raft, mut members) = cluster(3, &[]);
        raft.push(server("server4", "10.0.0.4", false));
        members.retain(|m| m.name != "server3"); // no member record: not alive
        let c = quorum_after_removal(&raft, &members, &names(&["server4"]), &BTreeSet::new());
        assert_eq!(c.removed_voters, 0);
        assert_eq!(c.problem(), None, "removing a non-voter never hurts");
        let c = quorum_after_removal(&raft, &members, &names(&["server2"]), &BTreeSet::new());
        assert_eq!(
            (c.voters, c.remaining, c.alive_remaining, c.quorum),
            (3, 2, 1, 2)
        );
        assert!(c.problem().is_some());
    }

    #[test]
    fn matched_by_raft_address_and_member_address_when_names_differ() {
        let raft = vec![
            server("a", "10.0.0.1", true),
            server("b", "10.0.0.2", true),
            server("c", "10.0.0.3", true),
        ];
        // Members carry other names (e.g. node_name overridden) but the same IPs.
        let members = vec![
            member("x", "10.0.0.1", 1),
            member("y", "10.0.0.2", 4),
            member("z", "10.0.0.3", 1),
        ];
        let ips: BTreeSet<IpAddr> = ["10.0.0.3".parse().unwrap()].into();
        let c = quorum_after_removal(&raft, &members, &names(&["server3"]), &ips);
        assert_eq!(
            (c.removed_voters, c.remaining, c.alive_remaining),
            (1, 2, 1)
        );
        assert!(c.problem().is_some());
    }

    #[test]
    fn ipv6_members_match_bracketed_raft_addresses() {
        let raft = vec![
            server("a", "fd00::1", true),
            server("b", "fd00::2", true),
            server("c", "fd00::3", true),
        ];
        assert_eq!(raft[1].address, "[fd00::2]:8300");
        let members = vec![
            member("x", "fd00::1", 1),
            member("y", "fd00::2", 1),
            member("z", "fd00::3", 4),
        ];
        assert_eq!(member_of(&members, &raft[1]).unwrap().name, "y");
        let ips: BTreeSet<IpAddr> = ["fd00::1".parse().unwrap()].into();
        let c = quorum_after_removal(&raft, &members, &names(&["server1"]), &ips);
        // b alive, c failed: 1 alive of 2 remaining, quorum 2.
        assert_eq!(
            (c.removed_voters, c.remaining, c.alive_remaining, c.quorum),
            (1, 2, 1, 2)
        );
        assert!(c.problem().is_some());
        let c = quorum_after_removal(&raft, &members, &names(&["c"]), &BTreeSet::new());
        assert_eq!((c.alive_remaining, c.problem()), (2, None));
    }

    #[test]
    fn a_leaving_member_is_not_alive() {
        let (raft, mut members) = cluster(3, &[]);
        members[0].status = 2;
        let c = quorum_after_removal(&raft, &members, &names(&["server2"]), &BTreeSet::new());
        assert_eq!(c.alive_remaining, 1);
    }

    #[test]
    fn servers_are_found_by_name_else_by_ip() {
        let raft = vec![
            server("a", "fd00::1", true),
            server("b", "fd00::2", true),
            server("c", "10.0.0.3", true),
        ];
        assert_eq!(
            find_server(&raft, "b", None).unwrap().address,
            "[fd00::2]:8300"
        );
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(find_server(&raft, "server1", Some(v6)).unwrap().node, "a");
        let v4: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(find_server(&raft, "server3", Some(v4)).unwrap().node, "c");
        assert_eq!(find_server(&raft, "server9", None), None);
        let other: IpAddr = "fd00::9".parse().unwrap();
        assert_eq!(find_server(&raft, "server9", Some(other)), None);
    }

    #[test]
    fn raft_addresses_parse_and_format() {
        let v6: IpAddr = "fd00::2".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(raft_addr(v6), "[fd00::2]:8300");
        assert_eq!(raft_addr(v4), "10.0.0.1:8300");
        assert_eq!(parse_addr_ip("[fd00::2]:8300"), Some(v6));
        assert_eq!(parse_addr_ip("fd00::2"), Some(v6));
        assert_eq!(parse_addr_ip("[fd00::2]"), Some(v6));
        assert_eq!(parse_addr_ip("10.0.0.1:8300"), Some(v4));
        assert_eq!(parse_addr_ip("10.0.0.1"), Some(v4));
        assert_eq!(parse_addr_ip("server1:8300"), None);
        assert_eq!(parse_addr_ip(""), None);
    }

    #[test]
    fn recovering_one_of_three_healthy_servers_keeps_quorum() {
        let (raft, members) = cluster(3, &[]);
        let ip = "10.0.0.3".parse().ok();
        assert_eq!(quorum_while_down(&raft, &members, "server3", ip), None);
    }

    #[test]
    fn recovering_a_server_while_another_is_failed_is_refused() {
        let (raft, members) = cluster(3, &[2]);
        let p = quorum_while_down(&raft, &members, "server3", "10.0.0.3".parse().ok()).unwrap();
        assert_eq!(
            p,
            "while server3 is down, 1 of the 3 voters would be alive; the quorum needs 2"
        );
    }

    #[test]
    fn a_server_that_is_not_a_voter_needs_no_quorum_check() {
        let (raft, members) = cluster(1, &[]);
        assert_eq!(
            quorum_while_down(&raft, &members, "server2", "10.0.0.2".parse().ok()),
            None
        );
    }

    #[test]
    fn the_only_server_cannot_be_taken_down_without_force() {
        let (raft, members) = cluster(1, &[]);
        assert!(quorum_while_down(&raft, &members, "server1", None).is_some());
    }

    #[test]
    fn taking_down_an_ipv6_server_matches_by_address() {
        let raft = vec![
            server("a", "fd00::1", true),
            server("b", "fd00::2", true),
            server("c", "fd00::3", true),
        ];
        let members = vec![
            member("x", "fd00::1", 1),
            member("y", "fd00::2", 1),
            member("z", "fd00::3", 1),
        ];
        // The target is named differently in the inventory; its IP finds it.
        assert_eq!(
            quorum_while_down(&raft, &members, "server3", "fd00::3".parse().ok()),
            None
        );
        let members = vec![
            member("x", "fd00::1", 1),
            member("y", "fd00::2", 4),
            member("z", "fd00::3", 1),
        ];
        let p = quorum_while_down(&raft, &members, "server3", "fd00::3".parse().ok()).unwrap();
        assert!(p.contains("1 of the 3 voters would be alive"), "{p}");
    }
}
