//! Addresses: IPs, CIDRs, client_addr, host names and domains, jump hosts, URLs.

use super::*;

pub(in crate::inventory) fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A DNS domain such as `consul` or `consul.example.` (one trailing dot allowed).
pub(in crate::inventory) fn is_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// An SSH address: `Ok(Some(ip))`, `Ok(None)` for a DNS name, or why it is neither.
pub(in crate::inventory) fn classify_address(s: &str) -> Result<Option<IpAddr>, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let ip_like =
        s.contains(':') || (s.contains('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if ip_like {
        let hint = if s.contains(':') && s.contains('.') {
            " (give the SSH port as ssh.port, not in the address)"
        } else {
            ""
        };
        return Err(format!("not a valid IP address{hint}"));
    }
    if s.contains('@') {
        return Err("expected an IP address or a DNS name (give the user as ssh.user)".into());
    }
    if is_domain(s) {
        Ok(None)
    } else {
        Err("expected an IP address or a DNS name (letters, digits, \"-\" and dots)".into())
    }
}

/// `[user@]host[:port]`, several separated by commas.
pub(in crate::inventory) fn valid_jump(s: &str) -> bool {
    !s.is_empty()
        && s.split(',').all(|hop| {
            let host_port = match hop.rsplit_once('@') {
                Some((user, rest)) if !user.is_empty() => rest,
                Some(_) => return false,
                None => hop,
            };
            let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
                // [v6]:port
                match inner.split_once(']') {
                    Some((h, rest)) => (h, rest.strip_prefix(':')),
                    None => return false,
                }
            } else if host_port.matches(':').count() == 1 {
                let (h, p) = host_port.split_once(':').unwrap_or((host_port, ""));
                (h, Some(p))
            } else {
                (host_port, None)
            };
            !host.is_empty()
                && !host.chars().any(|c| c.is_whitespace() || c == '/')
                && port.map_or(true, |p| p.parse::<u16>().is_ok_and(|p| p > 0))
        })
}

pub(in crate::inventory) fn valid_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

impl Ctx<'_> {
    pub(in crate::inventory) fn client_addr(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
    ) -> Option<String> {
        let s = self.string(key, v)?;
        // A go-sockaddr template such as `{{ GetPrivateIP }}` is Consul's to check.
        let ok = s.contains("{{")
            || (!s.trim().is_empty() && s.split_whitespace().all(|t| t.parse::<IpAddr>().is_ok()));
        if ok {
            Some(s)
        } else {
            self.bad(
                key,
                v.as_ref()?,
                "expected an IP address (several separated by spaces), such as \"127.0.0.1\", \
                 or a go-sockaddr template",
            );
            None
        }
    }

    pub(in crate::inventory) fn cidr(&mut self, key: &KeyPath, v: &raw::V) -> Option<Src<IpNet>> {
        let s = self.string(key, v)?;
        match s.trim().parse::<IpNet>() {
            Ok(net) => Some((net.trunc(), key.clone())),
            Err(_) => {
                let hint = if s.trim().parse::<IpAddr>().is_ok() {
                    " (add the prefix length)"
                } else {
                    ""
                };
                self.bad(
                    key,
                    v.as_ref()?,
                    format!(
                        "expected a network in CIDR notation such as \"192.168.30.0/24\"{hint}"
                    ),
                );
                None
            }
        }
    }

    pub(in crate::inventory) fn ip(&mut self, key: &KeyPath, v: &raw::V) -> Option<IpAddr> {
        let s = self.string(key, v)?;
        match s.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                self.bad(
                    key,
                    v.as_ref()?,
                    "expected the host's own address (not an unspecified or multicast address)",
                );
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                self.bad(
                    key,
                    v.as_ref()?,
                    "expected an IP address such as \"192.168.30.11\"",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::test_support::*;

    #[test]
    fn malformed_ip_address_is_rejected() {
        let text = hosts_doc(&THREE.replace("10.0.0.2", "10.0.0.256"));
        only(
            &text,
            "hosts[1].address",
            3,
            "hosts[1].address = \"10.0.0.256\": not a valid IP address",
        );
        let text = hosts_doc(&THREE.replace("10.0.0.2", "10.0.0.2:22"));
        only(
            &text,
            "hosts[1].address",
            3,
            "give the SSH port as ssh.port",
        );
    }

    #[test]
    fn malformed_bind_addr_is_rejected() {
        let text = hosts_doc(&s2_with("bind_addr = \"10.0.0.x\""));
        only(
            &text,
            "hosts[1].bind_addr",
            3,
            "hosts[1].bind_addr = \"10.0.0.x\": expected an IP address",
        );
        // With a DNS address too: no "no way to find the bind address" on top of it.
        let text = hosts_doc(
            &s2_with("bind_addr = \"0.0.0.0\"").replace("\"10.0.0.2\"", "\"s2.example\""),
        );
        only(
            &text,
            "hosts[1].bind_addr",
            3,
            "hosts[1].bind_addr = \"0.0.0.0\": expected the host's own address",
        );
    }

    #[test]
    fn malformed_bind_cidr_is_rejected() {
        for bad in ["192.168.30.0/33", "192.168.30.0", "lan"] {
            let text = custom(
                &format!("bind_cidr = \"{bad}\"\n"),
                "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
            );
            only(
                &text,
                "cluster.bind_cidr",
                8,
                "expected a network in CIDR notation",
            );
        }
    }
}
