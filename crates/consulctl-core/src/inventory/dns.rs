//! The `dns` and `prepare` tables at every layer, their values, and how the layers merge.

use super::*;

/// One layer's `dns` table: the keys it gives.
#[derive(Debug, Default, Clone)]
pub(super) struct DnsLayer {
    pub(super) nameservers: Option<Src<Vec<IpAddr>>>,
    pub(super) search: Option<Vec<String>>,
    pub(super) options: Option<Vec<String>>,
    pub(super) forward: Option<Src<DnsForward>>,
    pub(super) resolv_conf: Option<PathBuf>,
}

/// One layer's `prepare` table: the keys it gives.
#[derive(Debug, Default, Clone)]
pub(super) struct PrepareLayer {
    pub(super) disable_services: Option<Vec<String>>,
    pub(super) packages: Option<Vec<String>>,
}

pub(super) const DNS_FORWARDS: &[(&str, DnsForward)] = &[
    ("auto", DnsForward::Auto),
    ("dnsmasq", DnsForward::Dnsmasq),
    ("resolved", DnsForward::Resolved),
    ("none", DnsForward::None),
];

/// The resolv.conf options glibc knows (resolv.conf(5)), with the range of `N` for those
/// written `name:N` (glibc's RES_MAXNDOTS, RES_MAXRETRANS, RES_MAXRETRY).
pub(super) const RESOLV_OPTIONS: &[(&str, Option<(u32, u32)>)] = &[
    ("ndots", Some((0, 15))),
    ("timeout", Some((1, 30))),
    ("attempts", Some((1, 5))),
    ("rotate", None),
    ("no-check-names", None),
    ("inet6", None),
    ("edns0", None),
    ("single-request", None),
    ("single-request-reopen", None),
    ("no-tld-query", None),
    ("use-vc", None),
    ("no-reload", None),
    ("trust-ad", None),
    ("no-aaaa", None),
];

/// glibc reads at most this many `nameserver` lines (MAXNS).
pub(super) const MAX_NAMESERVERS: usize = 3;
/// glibc's limit on `search` domains (MAXDNSRCH).
pub(super) const MAX_SEARCH: usize = 6;

/// Services consulctl itself relies on on the hosts: `prepare.disable_services` refuses them.
pub(super) const NEEDED_UNITS: &[&str] = &["consul", "ssh", "sshd", "supervisord", "supervisor"];

pub(super) fn resolve_dns(layers: &[&Layer; 3]) -> Option<DnsSpec> {
    let tables: Vec<&DnsLayer> = layers.iter().filter_map(|l| l.dns.as_ref()).collect();
    if tables.is_empty() {
        return None;
    }
    Some(DnsSpec {
        nameservers: tables
            .iter()
            .find_map(|d| d.nameservers.clone())
            .map(|(v, _)| v)
            .unwrap_or_default(),
        search: tables
            .iter()
            .find_map(|d| d.search.clone())
            .unwrap_or_default(),
        options: tables
            .iter()
            .find_map(|d| d.options.clone())
            .unwrap_or_default(),
        forward: tables
            .iter()
            .find_map(|d| d.forward.clone())
            .map_or(DnsForward::Auto, |(f, _)| f),
        resolv_conf: tables
            .iter()
            .find_map(|d| d.resolv_conf.clone())
            .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf")),
    })
}

pub(super) fn resolve_prepare(layers: &[&Layer; 3]) -> PrepareSpec {
    PrepareSpec {
        disable_services: layers
            .iter()
            .find_map(|l| l.prepare.disable_services.clone())
            .unwrap_or_default(),
        packages: layers
            .iter()
            .find_map(|l| l.prepare.packages.clone())
            .unwrap_or_default(),
    }
}

/// A nameserver: an IP address (not unspecified or multicast).
pub(super) fn nameserver(s: &str) -> Result<IpAddr, String> {
    match s.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
            Err("expected a nameserver's address (not an unspecified or multicast address)".into())
        }
        Ok(ip) => Ok(ip),
        Err(_) => Err(
            "expected an IP address such as \"10.0.0.2\" (resolv.conf takes addresses, not names)"
                .into(),
        ),
    }
}

/// A resolv.conf option: `(name, as written)`.
pub(super) fn resolv_option(s: &str) -> Result<(String, String), String> {
    let (name, arg) = match s.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let Some((_, range)) = RESOLV_OPTIONS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = RESOLV_OPTIONS.iter().map(|(n, _)| *n).collect();
        let mut m = String::from("unknown resolv.conf option");
        if let Some(n) = suggest(name, &names) {
            m.push_str(&format!("; did you mean \"{n}\"?"));
        }
        let allowed: Vec<String> = RESOLV_OPTIONS
            .iter()
            .map(|(n, r)| match r {
                Some((lo, hi)) => format!("\"{n}:N\" (N {lo}-{hi})"),
                None => format!("\"{n}\""),
            })
            .collect();
        m.push_str(&format!(" (allowed: {})", allowed.join(", ")));
        return Err(m);
    };
    match (range, arg) {
        (Some((lo, hi)), Some(a)) => match a.parse::<u32>() {
            Ok(n) if (*lo..=*hi).contains(&n) && !a.starts_with('+') => {
                Ok((name.to_owned(), s.to_owned()))
            }
            _ => Err(format!(
                "expected {name}:N with N a whole number from {lo} to {hi} (glibc's limits)"
            )),
        },
        (Some((lo, hi)), None) => Err(format!(
            "\"{name}\" takes a number: {name}:N with N from {lo} to {hi}"
        )),
        (None, Some(_)) => Err(format!("\"{name}\" takes no value; write \"{name}\"")),
        (None, None) => Ok((name.to_owned(), s.to_owned())),
    }
}

/// A systemd unit name to disable (`cups`, `rpcbind.socket`); not one consulctl needs.
pub(super) fn unit_name(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | ':' | '-'));
    if !valid {
        return Err(
            "expected a systemd unit name: letters, digits, \"@\", \".\", \"_\", \":\" and \"-\""
                .into(),
        );
    }
    let base = s.strip_suffix(".service").unwrap_or(s);
    if NEEDED_UNITS.contains(&base) {
        return Err(format!(
            "consulctl needs this service (one of {}): disabling it would stop the agent or \
             consulctl's own access",
            quoted_list(NEEDED_UNITS)
        ));
    }
    Ok(s.to_owned())
}

/// A package name as apt and yum/dnf take it: `[A-Za-z0-9][A-Za-z0-9+._-]*` (RPM names may
/// hold capitals and `_`: `NetworkManager`), no version.
pub(super) fn package_name(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-' | '_'));
    if valid {
        Ok(s.to_owned())
    } else {
        Err(
            "expected a package name: letters, digits, \"+\", \".\", \"_\" and \"-\", \
             starting with a letter or digit (no version)"
                .into(),
        )
    }
}

impl Ctx<'_> {
    pub(super) fn dns_layer(&mut self, key: &KeyPath, r: Option<&raw::Dns>) -> Option<DnsLayer> {
        let r = r?;
        let nameservers = self
            .list(
                &key.k("nameservers"),
                &r.nameservers,
                "[\"10.0.0.2\", \"10.0.0.3\"]",
                nameserver,
                |a, b| a == b,
            )
            .map(|v| (v, key.k("nameservers")));
        let mut search = self.list(
            &key.k("search"),
            &r.search,
            "[\"example.com\"]",
            |s| {
                if is_domain(s) {
                    Ok(s.to_owned())
                } else {
                    Err(
                        "expected a DNS domain such as \"example.com\": labels of letters, \
                         digits and \"-\" separated by dots"
                            .into(),
                    )
                }
            },
            |a, b| {
                a.trim_end_matches('.')
                    .eq_ignore_ascii_case(b.trim_end_matches('.'))
            },
        );
        if search.as_ref().is_some_and(|s| s.len() > MAX_SEARCH) {
            let n = search.as_ref().map_or(0, Vec::len);
            self.diag(
                &key.k("search"),
                format!("{n} search domains; at most {MAX_SEARCH} are allowed (glibc's limit)"),
            );
            search = None;
        }
        let options = self
            .list(
                &key.k("options"),
                &r.options,
                "[\"timeout:1\", \"attempts:1\", \"rotate\"]",
                resolv_option,
                |a, b| a.0 == b.0,
            )
            .map(|v| v.into_iter().map(|(_, full)| full).collect());
        Some(DnsLayer {
            nameservers,
            search,
            options,
            forward: self
                .choice(&key.k("forward"), &r.forward, DNS_FORWARDS)
                .map(|f| (f, key.k("forward"))),
            resolv_conf: self
                .remote_path(&key.k("resolv_conf"), &r.resolv_conf)
                .map(|(p, _)| p),
        })
    }

    pub(super) fn prepare_layer(
        &mut self,
        key: &KeyPath,
        r: Option<&raw::Prepare>,
    ) -> PrepareLayer {
        let Some(r) = r else {
            return PrepareLayer::default();
        };
        PrepareLayer {
            disable_services: self.list(
                &key.k("disable_services"),
                &r.disable_services,
                "[\"cups\", \"rpcbind\"]",
                unit_name,
                |a, b| a == b,
            ),
            packages: self.list(
                &key.k("packages"),
                &r.packages,
                "[\"dnsmasq\"]",
                package_name,
                |a, b| a == b,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::test_support::*;

    #[test]
    fn dns_table_gives_defaults() {
        let c = ok(&doc("[dns]\n"));
        for h in &c.hosts {
            assert_eq!(
                h.dns,
                Some(DnsSpec {
                    nameservers: vec![],
                    search: vec![],
                    options: vec![],
                    forward: DnsForward::Auto,
                    resolv_conf: "/etc/resolv.conf".into(),
                })
            );
        }
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn dns_keys_layer_host_over_role_over_cluster() {
        let text = format!(
            "{}{HEAD}[dns]\nnameservers = [\"10.0.0.53\"]\nsearch = [\"example.com\"]\n\
             options = [\"timeout:1\"]\n[servers.dns]\nforward = \"none\"\n\
             search = [\"srv.example.com\"]\n",
            s2_with("dns = { search = [\"s2.example.com\"], resolv_conf = \"/run/resolv.conf\" }")
        );
        let c = ok(&text);
        let s1 = c.host("s1").unwrap().dns.clone().unwrap();
        assert_eq!(s1.nameservers, ["10.0.0.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(s1.search, ["srv.example.com"]);
        assert_eq!(s1.options, ["timeout:1"]);
        assert_eq!(s1.forward, DnsForward::None);
        assert_eq!(s1.resolv_conf, PathBuf::from("/etc/resolv.conf"));
        let s2 = c.host("s2").unwrap().dns.clone().unwrap();
        assert_eq!(s2.search, ["s2.example.com"]);
        assert_eq!(s2.forward, DnsForward::None);
        assert_eq!(s2.nameservers, s1.nameservers);
        assert_eq!(s2.resolv_conf, PathBuf::from("/run/resolv.conf"));
    }

    #[test]
    fn dns_only_for_hosts_with_a_dns_table() {
        let c = ok(&with_client("[clients.dns]\nforward = \"resolved\"\n"));
        assert_eq!(c.host("s1").unwrap().dns, None);
        assert_eq!(
            c.host("c1").unwrap().dns.as_ref().map(|d| d.forward),
            Some(DnsForward::Resolved)
        );
        let c = ok(&hosts_doc(&s2_with("dns = {}")));
        assert_eq!(c.host("s1").unwrap().dns, None);
        assert!(c.host("s2").unwrap().dns.is_some());
    }

    #[test]
    fn bad_nameserver_is_rejected() {
        let d = only(
            &doc("[dns]\nnameservers = [\"10.0.0.2\", \"ns1.example\"]\n"),
            "dns.nameservers[1]",
            13,
            "dns.nameservers[1] = \"ns1.example\": expected an IP address",
        );
        assert_eq!(d.column, Some(28));
        only(
            &doc("[dns]\nnameservers = [\"0.0.0.0\"]\n"),
            "dns.nameservers[0]",
            13,
            "not an unspecified or multicast address",
        );
        only(
            &doc("[dns]\nnameservers = [\"10.0.0.2\", \"10.0.0.2\"]\n"),
            "dns.nameservers[1]",
            13,
            "given twice (also dns.nameservers[0])",
        );
        only(
            &doc("[dns]\nnameservers = \"10.0.0.2\"\n"),
            "dns.nameservers",
            13,
            "expected an array of strings such as [\"10.0.0.2\", \"10.0.0.3\"]",
        );
    }

    #[test]
    fn unknown_resolv_conf_option_is_rejected() {
        let d = only(
            &doc("[dns]\noptions = [\"rotate\", \"timout:1\"]\n"),
            "dns.options[1]",
            13,
            "dns.options[1] = \"timout:1\": unknown resolv.conf option; did you mean \"timeout\"?",
        );
        for allowed in [
            "\"ndots:N\" (N 0-15)",
            "\"single-request-reopen\"",
            "\"no-aaaa\"",
        ] {
            assert!(d.message.contains(allowed), "{allowed} not in {d}");
        }
    }

    #[test]
    fn resolv_conf_option_values_are_checked() {
        for (bad, needle) in [
            (
                "attempts:9",
                "expected attempts:N with N a whole number from 1 to 5",
            ),
            ("ndots:16", "from 0 to 15"),
            ("timeout:x", "from 1 to 30"),
            ("timeout", "\"timeout\" takes a number"),
            ("rotate:1", "\"rotate\" takes no value"),
        ] {
            only(
                &doc(&format!("[dns]\noptions = [\"{bad}\"]\n")),
                "dns.options[0]",
                13,
                needle,
            );
        }
        only(
            &doc("[dns]\noptions = [\"timeout:1\", \"timeout:2\"]\n"),
            "dns.options[1]",
            13,
            "given twice (also dns.options[0])",
        );
        let c = ok(&doc(
            "[dns]\noptions = [\"ndots:0\", \"timeout:30\", \"attempts:5\", \"edns0\", \"trust-ad\"]\n",
        ));
        assert_eq!(c.hosts[0].dns.as_ref().unwrap().options.len(), 5);
    }

    #[test]
    fn bad_search_domain_is_rejected() {
        only(
            &doc("[dns]\nsearch = [\"example.com\", \"exa mple.com\"]\n"),
            "dns.search[1]",
            13,
            "dns.search[1] = \"exa mple.com\": expected a DNS domain",
        );
        let seven: Vec<String> = (1..=7).map(|i| format!("\"d{i}.example\"")).collect();
        only(
            &doc(&format!("[dns]\nsearch = [{}]\n", seven.join(", "))),
            "dns.search",
            13,
            "7 search domains; at most 6 are allowed (glibc's limit)",
        );
    }

    #[test]
    fn bad_forward_is_rejected() {
        only(
            &hosts_doc(&s2_with("dns = { forward = \"systemd\" }")),
            "hosts[1].dns.forward",
            3,
            "hosts[1].dns.forward = \"systemd\": expected one of \"auto\", \"dnsmasq\", \
             \"resolved\", \"none\"",
        );
    }

    #[test]
    fn relative_resolv_conf_is_rejected() {
        only(
            &doc("[servers.dns]\nresolv_conf = \"etc/resolv.conf\"\n"),
            "servers.dns.resolv_conf",
            13,
            "servers.dns.resolv_conf = \"etc/resolv.conf\": expected an absolute path",
        );
    }

    #[test]
    fn unknown_dns_key_is_rejected() {
        only(
            &doc("[dns]\nnameserver = [\"10.0.0.2\"]\n"),
            "dns.nameserver",
            13,
            "unknown key; did you mean \"nameservers\"?",
        );
    }

    #[test]
    fn more_than_three_nameservers_with_forward_none_is_a_warning() {
        let four = "nameservers = [\"10.0.0.2\", \"10.0.0.3\", \"10.0.0.4\", \"10.0.0.5\"]\n";
        let c = ok(&with_client(&format!(
            "[dns]\n{four}[servers.dns]\nforward = \"none\"\n"
        )));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(
            w.contains(
                "dns.nameservers (line 14): 4 nameservers with forward = \"none\" for s1, s2, s3: \
                 glibc uses only the first 3"
            ),
            "{w}"
        );
        // Forwarded through dnsmasq or resolved, they are upstreams: no limit.
        let c = ok(&doc(&format!("[dns]\n{four}forward = \"dnsmasq\"\n")));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.hosts[0].dns.as_ref().unwrap().nameservers.len(), 4);
    }

    #[test]
    fn forwarding_to_a_disabled_dns_port_is_a_warning() {
        let c = ok(&with_client(
            "[dns]\n[clients]\nconfig = { ports = { dns = -1 } }\n",
        ));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("DNS port on c1, but their config sets ports.dns = -1"),
            "{:?}",
            c.warnings
        );
        let c = ok(&with_client(
            "[dns]\n[clients]\nconfig = { ports = { dns = -1 } }\ndns = { forward = \"none\" }\n",
        ));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn prepare_lists_layer_whole() {
        let text = format!(
            "{}{HEAD}[prepare]\ndisable_services = [\"cups\", \"rpcbind\"]\n\
             packages = [\"dnsmasq\"]\n[servers.prepare]\npackages = [\"bind-utils\", \"g++\"]\n",
            s2_with("prepare = { disable_services = [\"avahi-daemon.socket\"] }")
        );
        let c = ok(&text);
        let s1 = &c.host("s1").unwrap().prepare;
        assert_eq!(s1.disable_services, ["cups", "rpcbind"]);
        assert_eq!(s1.packages, ["bind-utils", "g++"]);
        let s2 = &c.host("s2").unwrap().prepare;
        assert_eq!(s2.disable_services, ["avahi-daemon.socket"]);
        assert_eq!(s2.packages, ["bind-utils", "g++"]);
    }

    #[test]
    fn bad_package_name_is_rejected() {
        for bad in ["-x", "dnsmasq=2.80", ""] {
            only(
                &doc(&format!("[prepare]\npackages = [\"dnsmasq\", \"{bad}\"]\n")),
                "prepare.packages[1]",
                13,
                &format!("prepare.packages[1] = \"{bad}\": expected a package name"),
            );
        }
        only(
            &doc("[prepare]\npackages = [\"dnsmasq\", \"dnsmasq\"]\n"),
            "prepare.packages[1]",
            13,
            "given twice",
        );
    }

    #[test]
    fn bad_unit_name_is_rejected() {
        only(
            &doc("[clients.prepare]\ndisable_services = [\"cups service\"]\n"),
            "clients.prepare.disable_services[0]",
            13,
            "clients.prepare.disable_services[0] = \"cups service\": expected a systemd unit name",
        );
        for needed in ["sshd", "consul.service", "supervisord"] {
            only(
                &doc(&format!("[prepare]\ndisable_services = [\"{needed}\"]\n")),
                "prepare.disable_services[0]",
                13,
                "consulctl needs this service",
            );
        }
        let c = ok(&doc(
            "[prepare]\ndisable_services = [\"getty@tty1\", \"rpcbind.socket\", \"sys-kernel-debug.mount\"]\n",
        ));
        assert_eq!(c.hosts[0].prepare.disable_services.len(), 3);
    }
}
