//! `datacenter-mismatch`: an agent in another datacenter than the inventory's.

use super::*;

/// `Member 'X' part of wrong datacenter 'Y'` -> (X, Y).
pub(super) fn wrong_dc(line: &str) -> Option<(&str, &str)> {
    const MARK: &str = "' part of wrong datacenter '";
    let at = line.find(MARK)?;
    let member = &line[line[..at].rfind('\'')? + 1..at];
    let dc = line[at + MARK.len()..].split('\'').next()?;
    Some((member, dc))
}

impl<'a> Cx<'a> {
    pub(super) fn datacenter_mismatch(&self) -> Option<Finding> {
        let want = self.exp.datacenter.as_str();
        let mut d = Draft::new(FindingCode::DatacenterMismatch);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

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
}
