//! The judge's view of the cluster: observations and inventory hosts looked up by name or
//! address, member states, and the fix commands findings print.

use super::*;

pub(super) fn host_ip(h: &ExpectedHost) -> Option<IpAddr> {
    h.bind.or_else(|| strip_port(&h.address).parse().ok())
}

pub(super) fn status_word(status: u8) -> &'static str {
    match status {
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "unknown",
    }
}

/// `host`, `IP`, `IP:port`, `[v6]:port` -> the host or IP.
pub(super) fn strip_port(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => addr,
    }
}

/// A word for a shell command line, quoted when it needs to be.
pub(super) fn sh(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl<'a> Cx<'a> {
    pub(super) fn reachable(&self) -> impl Iterator<Item = &'a Observation> + 'a {
        self.all
            .iter()
            .filter(|o| o.unreachable.is_none() && o.skipped.is_none())
    }

    pub(super) fn observation(&self, host: &str) -> Option<&'a Observation> {
        self.reachable().find(|o| o.host == host)
    }

    pub(super) fn expected_host(&self, name: &str) -> Option<&'a ExpectedHost> {
        self.exp.hosts.iter().find(|h| h.name == name)
    }

    pub(super) fn servers(&self) -> impl Iterator<Item = &'a ExpectedHost> + 'a {
        self.exp.hosts.iter().filter(|h| h.role == Role::Server)
    }

    pub(super) fn is_server(&self, host: &str) -> bool {
        self.expected_host(host)
            .is_some_and(|h| h.role == Role::Server)
    }

    pub(super) fn recover(&self, host: &str) -> String {
        format!(
            "consulctl recover {} -i {}",
            sh(host),
            sh(&self.exp.inventory)
        )
    }

    pub(super) fn recover_quorum(&self) -> String {
        format!("consulctl recover quorum -i {}", sh(&self.exp.inventory))
    }

    pub(super) fn apply(&self) -> String {
        format!("consulctl apply -i {}", sh(&self.exp.inventory))
    }

    /// The inventory host a node name or address that Consul reports stands for: by name, by
    /// SSH or bind address, or by an interface address that only one host has.
    pub(super) fn inventory_host(&self, reported: &str) -> Option<&'a ExpectedHost> {
        let reported = reported.trim();
        if reported.is_empty() {
            return None;
        }
        let hosts: &'a [ExpectedHost] = &self.exp.hosts;
        if let Some(h) = hosts.iter().find(|h| h.name.eq_ignore_ascii_case(reported)) {
            return Some(h);
        }
        let addr = strip_port(reported);
        let ip = addr.parse::<IpAddr>().ok();
        let same = |h: &&ExpectedHost| {
            strip_port(&h.address).eq_ignore_ascii_case(addr)
                || (ip.is_some() && (h.bind == ip || host_ip(h) == ip))
        };
        if let Some(h) = hosts.iter().find(same) {
            return Some(h);
        }
        let ip = ip?;
        let mut owners = self.all.iter().filter(|o| o.addresses.contains(&ip));
        let owner = owners.next()?;
        if owners.next().is_some() {
            return None;
        }
        self.expected_host(&owner.host)
    }

    /// The inventory name of a node Consul reports, else Consul's own name for it.
    pub(super) fn name_of(&self, reported: &str) -> String {
        match self.inventory_host(reported) {
            Some(h) => h.name.clone(),
            None => reported.trim().to_string(),
        }
    }

    pub(super) fn member_is(&self, m: &Member, h: &ExpectedHost) -> bool {
        m.name.eq_ignore_ascii_case(&h.name)
            || strip_port(&m.addr)
                .parse::<IpAddr>()
                .is_ok_and(|ip| Some(ip) == host_ip(h))
    }

    /// `h`'s status in a member list: alive or leaving when any matching entry is.
    pub(super) fn member_status(&self, members: &[Member], h: &ExpectedHost) -> Option<u8> {
        members
            .iter()
            .filter(|m| self.member_is(m, h))
            .map(|m| m.status)
            .min_by_key(|s| match s {
                1 | 2 => 0,
                _ => 1,
            })
    }

    /// The other agents' member lists were read and none lists `host` as alive.
    pub(super) fn seen_not_alive(&self, host: &str) -> bool {
        let Some(h) = self.expected_host(host) else {
            return false;
        };
        let mut views = self
            .reachable()
            .filter(|o| o.host != host)
            .filter_map(|o| o.api.as_ref())
            .filter(|a| !a.members.is_empty())
            .peekable();
        if views.peek().is_none() {
            return false;
        }
        !views.any(|a| self.member_status(&a.members, h) == Some(1))
    }
}

/// The other end of a gossip error: `from=IP:port` (memberlist) or `Failed to join IP:` (a
/// join), without the port.
pub(super) fn remote_addr(line: &str) -> Option<&str> {
    let token = if let Some(i) = line.find("from=") {
        line[i + "from=".len()..]
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()?
    } else {
        let i = line.find("Failed to join ")?;
        line[i + "Failed to join ".len()..].split(": ").next()?
    };
    let host = strip_port(token.trim());
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

    #[test]
    fn maps_names_and_addresses_to_inventory_hosts() {
        let mut exp = expected();
        exp.hosts.push(ExpectedHost {
            name: "v6".into(),
            role: Role::Client,
            address: "v6.example.net".into(),
            bind: Some(ip("fd00::5")),
            registrar: false,
            lb: false,
        });
        let mut obs = healthy();
        at(&mut obs, "client1")
            .addresses
            .extend([ip("10.0.2.99"), ip("172.17.0.1")]);
        at(&mut obs, "client2").addresses.push(ip("172.17.0.1"));
        let cx = Cx {
            exp: &exp,
            all: &obs,
        };
        let name = |s: &str| cx.inventory_host(s).map(|h| h.name.as_str());
        assert_eq!(name("client2"), Some("client2"));
        assert_eq!(name("CLIENT2"), Some("client2"));
        assert_eq!(name("192.168.14.72"), Some("client2"));
        assert_eq!(name("192.168.14.72:8301"), Some("client2"));
        assert_eq!(name("[fd00::5]:8301"), Some("v6"));
        assert_eq!(name("fd00::5"), Some("v6"));
        assert_eq!(name("v6.example.net"), Some("v6"));
        // An interface address only client1 has, and one several hosts have (docker0).
        assert_eq!(name("10.0.2.99"), Some("client1"));
        assert_eq!(name("172.17.0.1"), None);
        assert_eq!(name("10.9.9.9"), None);
        assert_eq!(name(""), None);
        assert_eq!(cx.name_of("10.9.9.9"), "10.9.9.9");
        assert_eq!(cx.name_of("192.168.14.61:8300"), "server1");
    }

    #[test]
    fn fix_commands_quote_odd_inventory_paths() {
        let mut exp = expected();
        exp.inventory = "my inventories/prod.toml".into();
        let mut obs = healthy();
        at(&mut obs, "client2").clock_offset_ms = None;
        stop(&mut obs, "client2", "inactive", 0, "");
        let findings = diagnose(&exp, &obs);
        assert_eq!(
            one(&findings, "agent-down").fix,
            ["consulctl apply -i 'my inventories/prod.toml'"]
        );
    }
}
