//! Gossip encryption: `encryption-mismatch` (encrypted and plain-text agents) and `gossip-key`
//! (agents with different keys, or a stale keyring file).

use super::*;

/// Consul's warning when a `serf/local.keyring` left in the data dir wins over `encrypt`.
pub(super) const KEYRING_OVERRIDE: &str = "keyring doesn't include key provided with -encrypt";

/// One line that shows a host cannot decrypt gossip: (reporter, remote as named, line).
pub(super) type Undecryptable<'a> = (&'a str, Option<String>, &'a str);

/// A gossip-key culprit from who cannot decrypt whom: a host most reporters cannot decrypt
/// (at least two), or the only reporter when it cannot decrypt several hosts.
pub(super) fn odd_one_out(reports: &[Undecryptable<'_>]) -> BTreeSet<String> {
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

/// memberlist's "Encryption is configured but remote state is not encrypted" -> Some(true) (this
/// agent encrypts, the remote does not); "Remote state is encrypted and encryption is not
/// configured" -> Some(false).
pub(super) fn encryption_side(line: &str) -> Option<bool> {
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

/// `needle` must be lowercase.
pub(super) fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

impl<'a> Cx<'a> {
    /// Encryption on one side only. Also returns the hosts on the wrong side, whose
    /// undecryptable messages are this problem and not a wrong key.
    pub(super) fn encryption_mismatch(&self) -> (Option<Finding>, BTreeSet<String>) {
        let want = self.exp.encrypt_fingerprint.is_some();
        let mut d = Draft::new(FindingCode::EncryptionMismatch);
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

    pub(super) fn gossip_key(&self, mismatched: &BTreeSet<String>) -> Option<Finding> {
        let mut d = Draft::new(FindingCode::GossipKey);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

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
}
