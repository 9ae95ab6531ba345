//! `[[hosts]]`: every host resolved from its own keys and its layers, and the checks across
//! hosts (unique names and addresses, server count, DNS).

use super::*;

impl Ctx<'_> {
    pub(super) fn hosts(
        &mut self,
        raw_hosts: Option<Vec<raw::Host>>,
        cluster: &Layer,
        servers: &Layer,
        clients: &Layer,
        version: Option<Version>,
    ) -> Option<Vec<Host>> {
        let kh = KeyPath::root().k("hosts");
        let Some(raw_hosts) = raw_hosts else {
            self.missing(
                &kh,
                "at least one [[hosts]] entry (with name, address and role)",
            );
            return None;
        };
        if raw_hosts.is_empty() {
            self.diag(
                &kh,
                "no hosts; expected at least one [[hosts]] entry (with name, address and role)",
            );
            return None;
        }

        let mut out = Vec::with_capacity(raw_hosts.len());
        let mut ok = true;
        let mut roles_known = true;
        let mut names: HashMap<String, KeyPath> = HashMap::new();
        let mut addresses: HashMap<String, KeyPath> = HashMap::new();
        // Fixed bind address -> (key it came from, whether it came from `address`).
        let mut binds: HashMap<IpAddr, (KeyPath, bool)> = HashMap::new();
        let mut reported: Vec<String> = Vec::new();
        // (host, where its dns.nameservers came from), for the checks across hosts.
        let mut dns_checks: Vec<(String, KeyPath)> = Vec::new();
        let no_role = Layer::default();

        for (i, h) in raw_hosts.iter().enumerate() {
            let k = kh.i(i);

            // name
            let name = match &h.name {
                None => {
                    self.missing(
                        &k.k("name"),
                        "the Consul node name: letters, digits, \"_\", \"-\" and \".\"",
                    );
                    None
                }
                Some(v) => self.string(&k.k("name"), &h.name).and_then(|s| {
                    if is_node_name(&s) {
                        Some(s)
                    } else {
                        self.bad(
                            &k.k("name"),
                            v,
                            "expected letters, digits, \"_\", \"-\" and \".\" only \
                             (it becomes the Consul node name)",
                        );
                        None
                    }
                }),
            };
            if let Some(n) = &name {
                let norm = n.to_ascii_lowercase();
                if let Some(first) = names.get(&norm).cloned() {
                    let line = self.line_of(&first.k("name"));
                    self.diag(
                        &k.k("name"),
                        format!(
                            "= {}: duplicate host name, already used by {first} ({line}); names \
                             must be unique (compared ignoring case, as Consul's DNS does)",
                            json_quote(n)
                        ),
                    );
                } else {
                    names.insert(norm, k.clone());
                }
            }

            // address
            let address = match &h.address {
                None => {
                    self.missing(
                        &k.k("address"),
                        "the SSH address of the host (an IP address or a DNS name)",
                    );
                    None
                }
                Some(v) => self.string(&k.k("address"), &h.address).and_then(|s| {
                    match classify_address(&s) {
                        Ok(ip) => Some((s, ip)),
                        Err(why) => {
                            self.bad(&k.k("address"), v, why);
                            None
                        }
                    }
                }),
            };
            let mut duplicate_address = false;
            if let Some((a, ip)) = &address {
                let norm = match ip {
                    Some(ip) => ip.to_string(),
                    None => a.trim_end_matches('.').to_ascii_lowercase(),
                };
                if let Some(first) = addresses.get(&norm).cloned() {
                    duplicate_address = true;
                    let line = self.line_of(&first.k("address"));
                    self.diag(
                        &k.k("address"),
                        format!(
                            "= {}: duplicate host address, already used by {first} ({line}); \
                             addresses must be unique",
                            json_quote(a)
                        ),
                    );
                } else {
                    addresses.insert(norm, k.clone());
                }
            }

            // role
            let role = match &h.role {
                None => {
                    self.missing(&k.k("role"), "expected one of \"server\", \"client\"");
                    None
                }
                Some(_) => self.choice(
                    &k.k("role"),
                    &h.role,
                    &[("server", Role::Server), ("client", Role::Client)],
                ),
            };
            if role.is_none() {
                roles_known = false;
            }

            let tags = self.tags(&k.k("tags"), &h.tags);
            let bind_addr = self.ip(&k.k("bind_addr"), &h.bind_addr);
            let own = self.layer(
                &LayerKeys {
                    scalars: k.clone(),
                    tables: k.clone(),
                },
                &h.init,
                &h.log_level,
                &h.client_addr,
                None,
                h.ssh.as_ref(),
                h.paths.as_ref(),
                &h.config,
                h.dns.as_ref(),
                h.prepare.as_ref(),
            );
            let role_layer = match role {
                Some(Role::Server) => servers,
                Some(Role::Client) => clients,
                None => &no_role,
            };
            let layers = [&own, role_layer, cluster];

            // bind address: bind_addr, else bind_cidr, else an IP `address`.
            let bind_cidr = role_layer.bind_cidr.clone().or(cluster.bind_cidr.clone());
            let bind = match (bind_addr, &bind_cidr, &address) {
                // An invalid bind_addr is already reported; nothing to add about it.
                (None, _, _) if h.bind_addr.is_some() => None,
                (Some(ip), Some((net, net_key)), _) if !net.contains(&ip) => {
                    let line = self.line_of(net_key);
                    self.diag(
                        &k.k("bind_addr"),
                        format!("= \"{ip}\": not inside {net_key} = \"{net}\" ({line})"),
                    );
                    None
                }
                (Some(ip), _, _) => Some((BindAddr::Fixed(ip), k.k("bind_addr"), false)),
                (None, Some((net, _)), _) => Some((BindAddr::Cidr(*net), k.clone(), false)),
                (None, None, Some((_, Some(ip)))) => {
                    Some((BindAddr::Fixed(*ip), k.k("address"), true))
                }
                (None, None, Some((a, None))) => {
                    self.diag(
                        &k.k("address"),
                        format!(
                            "= {}: no way to find the bind address: the address is a DNS name \
                             and no bind_cidr applies; set hosts[{i}].bind_addr or a bind_cidr \
                             in [cluster] or [{}]",
                            json_quote(a),
                            match role {
                                Some(Role::Client) => "clients",
                                _ => "servers",
                            }
                        ),
                    );
                    None
                }
                (None, None, None) => None,
            };
            if let Some((BindAddr::Fixed(ip), from, from_address)) = &bind {
                if let Some((first, first_from_address)) = binds.get(ip).cloned() {
                    // Two equal addresses are already reported as such.
                    if !(*from_address && first_from_address && duplicate_address) {
                        let line = self.line_of(&first);
                        self.diag(
                            from,
                            format!(
                                "= \"{ip}\": duplicate bind address, {first} ({line}) binds to it \
                                 too; every agent needs its own address"
                            ),
                        );
                    }
                } else {
                    binds.insert(*ip, (from.clone(), *from_address));
                }
            }

            let ssh = resolve_ssh(&layers);
            let paths = resolve_paths(&layers);
            self.check_resolved(&ssh, &paths, &layers, &mut reported);

            let mut extra_config = Map::new();
            for layer in layers.iter().rev() {
                merge_deep(&mut extra_config, &layer.config);
            }
            let dns = resolve_dns(&layers);
            let nameservers_key = layers
                .iter()
                .filter_map(|l| l.dns.as_ref())
                .find_map(|d| d.nameservers.as_ref())
                .map(|(_, key)| key.clone());

            let (Some(name), Some((address, _)), Some(role), Some((bind, _, _))) =
                (name, address, role, bind)
            else {
                ok = false;
                continue;
            };
            out.push(Host {
                name,
                address,
                role,
                tags,
                init: layers.iter().find_map(|l| l.init).unwrap_or(Init::Systemd),
                bind,
                client_addr: layers
                    .iter()
                    .find_map(|l| l.client_addr.clone())
                    .unwrap_or_else(|| "127.0.0.1".into()),
                log_level: layers
                    .iter()
                    .find_map(|l| l.log_level.clone())
                    .unwrap_or_else(|| "INFO".into()),
                user: "consul".into(),
                api_tls: false,
                ssh,
                paths: paths.0,
                extra_config,
                dns,
                services: Vec::new(),
                prepare: resolve_prepare(&layers),
                registrar: None,
                lb: None,
            });
            if let (Some(host), Some(key)) = (out.last(), nameservers_key) {
                dns_checks.push((host.name.clone(), key));
            }
        }
        self.check_dns(&out, &dns_checks);

        // Cluster shape.
        let servers_n = raw_hosts
            .iter()
            .filter(|h| matches!(&h.role, Some(toml::Value::String(r)) if r == "server"))
            .count();
        if servers_n == 0 && roles_known {
            self.diag(
                &kh,
                "no host has role = \"server\"; a cluster needs at least one server \
                 (3 or 5 to survive failures)",
            );
            return None;
        }
        if servers_n == 1 && raw_hosts.len() > 1 {
            self.warn(
                "1 server: the cluster does not survive its failure; use 3 or 5 servers \
                 for fault tolerance",
            );
        }
        if servers_n >= 2 && servers_n % 2 == 0 {
            let quorum = servers_n / 2 + 1;
            let tolerated = (servers_n - 1) / 2;
            self.warn(format!(
                "{servers_n} servers: an even number adds no fault tolerance: the quorum of \
                 {quorum} tolerates {tolerated} failed server{}, the same failures as {} servers \
                 ({} - 1); use {} or {} servers",
                if tolerated == 1 { "" } else { "s" },
                servers_n - 1,
                servers_n,
                servers_n - 1,
                servers_n + 1,
            ));
        }
        if servers_n > 7 {
            self.warn(format!(
                "{servers_n} servers: more than 7 servers slow down Raft replication without \
                 useful extra fault tolerance; HashiCorp recommends 3 or 5 (make the rest clients)"
            ));
        }
        if let Some(version) = version {
            if !version.at_least(1, 9) {
                let with_ui_config: Vec<&str> = out
                    .iter()
                    .filter(|h| h.extra_config.contains_key("ui_config"))
                    .map(|h| h.name.as_str())
                    .collect();
                if !with_ui_config.is_empty() {
                    self.warn(format!(
                        "Consul {version} does not know `ui_config` (added in 1.9), given in \
                         config for {}; `consul validate` will reject it: use `ui = true` instead",
                        with_ui_config.join(", ")
                    ));
                }
            }
        }
        if ok {
            Some(out)
        } else {
            None
        }
    }

    pub(super) fn tags(&mut self, key: &KeyPath, v: &raw::V) -> Vec<String> {
        let mut tags = Vec::new();
        match v {
            None => {}
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        toml::Value::String(s) if s.is_empty() => {
                            self.diag(&key.i(i), "= \"\": tags must not be empty");
                        }
                        toml::Value::String(s) if is_tag(s) => {
                            if !tags.contains(s) {
                                tags.push(s.clone());
                            }
                        }
                        other => {
                            self.bad(
                                &key.i(i),
                                other,
                                "expected a tag of letters, digits, \"_\", \"-\" and \".\"",
                            );
                        }
                    }
                }
            }
            Some(other) => {
                self.bad(
                    key,
                    other,
                    "expected an array of strings such as [\"rack1\", \"ssd\"]",
                );
            }
        }
        tags
    }

    /// Checks on a host's resolved settings; each problem is reported once per key it comes
    /// from, not once per host.
    pub(super) fn check_resolved(
        &mut self,
        ssh: &SshTarget,
        paths: &(Paths, Option<KeyPath>, Option<KeyPath>),
        layers: &[&Layer; 3],
        reported: &mut Vec<String>,
    ) {
        {
            if ssh.host_keys == HostKeyPolicy::Strict {
                if let Some((file, key)) = layers.iter().find_map(|l| l.ssh.known_hosts.clone()) {
                    let id = format!("known_hosts {key}");
                    if !file.exists() && !reported.contains(&id) {
                        reported.push(id);
                        let line = self.line_of(&key);
                        self.warn(format!(
                            "{key} ({line}): {} does not exist; with host_keys = \"strict\" every \
                             host will be refused until its key is in it (create it, set \
                             host_keys = \"accept-new\", or pass --accept-new-host-keys)",
                            file.display()
                        ));
                    }
                }
            }
        }
        let (p, data_key, config_key) = paths;
        if p.data_dir == p.config_dir {
            let key = data_key.clone().or(config_key.clone()).unwrap_or_default();
            let id = format!("data_dir {key}");
            if !reported.contains(&id) {
                reported.push(id);
                let other = config_key
                    .as_ref()
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| "the default config_dir".into());
                self.diag(
                    &key,
                    format!(
                        "= \"{}\": data_dir and config_dir must differ (config_dir comes from \
                         {other})",
                        p.data_dir.display()
                    ),
                );
            }
        }
    }

    /// Checks across hosts on the resolved DNS settings; `nameservers` pairs each host with
    /// where its `dns.nameservers` came from.
    pub(super) fn check_dns(&mut self, hosts: &[Host], nameservers: &[(String, KeyPath)]) {
        // More nameservers than glibc reads, going into resolv.conf as they are.
        let mut too_many: Vec<(KeyPath, usize, Vec<&str>)> = Vec::new();
        for (name, key) in nameservers {
            let Some(dns) = hosts
                .iter()
                .find(|h| h.name == *name)
                .and_then(|h| h.dns.as_ref())
            else {
                continue;
            };
            if dns.forward != DnsForward::None || dns.nameservers.len() <= MAX_NAMESERVERS {
                continue;
            }
            match too_many.iter_mut().find(|(k, _, _)| k == key) {
                Some((_, _, names)) => names.push(name),
                None => too_many.push((key.clone(), dns.nameservers.len(), vec![name])),
            }
        }
        for (key, n, names) in too_many {
            let line = self.line_of(&key);
            self.warn(format!(
                "{key} ({line}): {n} nameservers with forward = \"none\" for {}: glibc uses only \
                 the first {MAX_NAMESERVERS} in resolv.conf, the rest are ignored",
                names.join(", ")
            ));
        }

        // Forwarding the Consul domain to an agent whose DNS port is off.
        let dns_off: Vec<&str> = hosts
            .iter()
            .filter(|h| {
                h.dns
                    .as_ref()
                    .is_some_and(|d| d.forward != DnsForward::None)
                    && h.extra_config
                        .get("ports")
                        .and_then(|p| p.get("dns"))
                        .and_then(Json::as_i64)
                        .is_some_and(|p| p < 0)
            })
            .map(|h| h.name.as_str())
            .collect();
        if !dns_off.is_empty() {
            self.warn(format!(
                "dns.forward sends the Consul domain to the local agent's DNS port on {}, but \
                 their config sets ports.dns = -1 (DNS off): queries for the Consul domain will \
                 fail there; set forward = \"none\" for them or turn the DNS port on",
                dns_off.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::test_support::*;

    #[test]
    fn dns_address_with_bind_cidr_is_accepted() {
        let text = r#"[cluster]
datacenter = "dc1"
bind_cidr = "192.168.30.0/24"
[consul]
version = "1.8.7"
source = { package = "apt" }
[[hosts]]
name = "db1"
address = "db1.example.net"
role = "server"
"#;
        let c = ok(text);
        assert_eq!(
            c.hosts[0].bind,
            BindAddr::Cidr("192.168.30.0/24".parse().unwrap())
        );
    }

    #[test]
    fn missing_hosts_is_rejected() {
        let diags = errs(HEAD);
        assert_eq!(diags.len(), 1);
        let d = one(&diags, "hosts");
        assert_eq!(
            d.line, None,
            "no [[hosts]] at all: the whole file is concerned"
        );
        assert!(d.message.contains("missing required key"), "{d}");
        only(&hosts_doc("hosts = []\n"), "hosts", 1, "no hosts");
    }

    #[test]
    fn missing_host_name_address_and_role_are_rejected() {
        let text = format!(
            "{HEAD}[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
             [[hosts]]\ntags = [\"x\"]\n"
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 3, "{}", render(&inv_path(), &diags));
        // All point at the second [[hosts]] header.
        check(&diags, "hosts[1].name", 11, "missing required key");
        check(&diags, "hosts[1].address", 11, "missing required key");
        check(
            &diags,
            "hosts[1].role",
            11,
            "missing required key; expected one of \"server\", \"client\"",
        );
    }

    /// Many errors are reported in linear time: 20k hosts that all repeat the first one's
    /// name and address (one error per name and per address, each with its line). This took
    /// ~49 s when every diagnostic counted lines from the top of the file.
    #[test]
    fn twenty_thousand_duplicate_hosts_report_every_duplicate() {
        let n = 20_000;
        let mut text = String::from(HEAD);
        for _ in 0..n {
            text.push_str("[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n");
        }
        let diags = errs(&text);
        let names = diags
            .iter()
            .filter(|d| d.message.contains("duplicate host name"))
            .count();
        let addresses = diags
            .iter()
            .filter(|d| d.message.contains("duplicate host address"))
            .count();
        assert_eq!((names, addresses), (n - 1, n - 1));
        // Each is located: the last host's name is on the file's last host's line.
        let last = diags
            .iter()
            .find(|d| d.key == format!("hosts[{}].name", n - 1))
            .unwrap();
        assert_eq!(last.line, Some(7 + 4 * (n - 1) + 1), "{last}");
        assert!(
            last.to_string()
                .contains("already used by hosts[0] (line 8)"),
            "{last}"
        );
    }

    #[test]
    fn duplicate_host_name_is_rejected() {
        let text = hosts_doc(&THREE.replace("name = \"s3\"", "name = \"S1\""));
        let d = only(
            &text,
            "hosts[2].name",
            4,
            "hosts[2].name = \"S1\": duplicate host name, already used by hosts[0] (line 2)",
        );
        assert_eq!(d.column, Some(12));
    }

    #[test]
    fn duplicate_host_address_is_rejected() {
        let text = hosts_doc(&THREE.replace("10.0.0.3", "10.0.0.1"));
        only(
            &text,
            "hosts[2].address",
            4,
            "hosts[2].address = \"10.0.0.1\": duplicate host address, already used by hosts[0] \
             (line 2)",
        );
    }

    #[test]
    fn duplicate_bind_address_is_rejected() {
        let text = hosts_doc(&THREE.replace(
            "address = \"10.0.0.3\", role = \"server\"",
            "address = \"s3.example\", role = \"server\", bind_addr = \"10.0.0.2\"",
        ));
        only(
            &text,
            "hosts[2].bind_addr",
            4,
            "hosts[2].bind_addr = \"10.0.0.2\": duplicate bind address, hosts[1].address (line 3) \
             binds to it too",
        );
    }

    #[test]
    fn zero_servers_is_rejected() {
        let text = hosts_doc(&THREE.replace("\"server\"", "\"client\""));
        only(&text, "hosts", 1, "no host has role = \"server\"");
    }

    #[test]
    fn even_server_count_is_a_warning_not_an_error() {
        let text = hosts_doc(&THREE.replace(
            "]\n",
            "  { name = \"s4\", address = \"10.0.0.4\", role = \"server\" },\n]\n",
        ));
        let c = ok(&text);
        assert_eq!(c.servers().count(), 4);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(
            w.starts_with(&format!("{}: 4 servers", inv_path().display())),
            "{w}"
        );
        assert!(
            w.contains(
                "the quorum of 3 tolerates 1 failed server, the same failures as 3 servers (4 - 1)"
            ),
            "{w}"
        );
    }

    #[test]
    fn more_than_seven_servers_is_a_warning() {
        let mut hosts = String::from("hosts = [\n");
        for i in 1..=9 {
            hosts.push_str(&format!(
                "  {{ name = \"s{i}\", address = \"10.0.0.{i}\", role = \"server\" }},\n"
            ));
        }
        hosts.push_str("]\n");
        let c = ok(&hosts_doc(&hosts));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("9 servers: more than 7"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn invalid_node_name_is_rejected() {
        let text = hosts_doc(&THREE.replace("\"s2\"", "\"s2/web\""));
        only(
            &text,
            "hosts[1].name",
            3,
            "hosts[1].name = \"s2/web\": expected letters, digits",
        );
    }

    #[test]
    fn bind_addr_outside_bind_cidr_is_rejected() {
        let text = format!(
            "{HEAD}[servers]\nbind_cidr = \"192.168.30.0/24\"\n\
             [[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
             bind_addr = \"192.168.31.5\"\n"
        );
        only(
            &text,
            "hosts[0].bind_addr",
            13,
            "= \"192.168.31.5\": not inside servers.bind_cidr = \"192.168.30.0/24\" (line 8)",
        );
    }

    #[test]
    fn dns_address_without_bind_cidr_is_rejected() {
        let text = hosts_doc(&THREE.replace("\"10.0.0.3\"", "\"s3.example.net\""));
        only(
            &text,
            "hosts[2].address",
            4,
            "hosts[2].address = \"s3.example.net\": no way to find the bind address",
        );
    }

    #[test]
    fn empty_tag_is_rejected() {
        let text = hosts_doc(&s2_with("tags = [\"ok\", \"\"]"));
        let d = only(
            &text,
            "hosts[1].tags[1]",
            3,
            "hosts[1].tags[1] = \"\": tags must not be empty",
        );
        assert_eq!(d.column, Some(71));
    }

    #[test]
    fn invalid_role_is_rejected() {
        let text = hosts_doc(&THREE.replace(
            "address = \"10.0.0.2\", role = \"server\"",
            "address = \"10.0.0.2\", role = \"master\"",
        ));
        let d = only(
            &text,
            "hosts[1].role",
            3,
            "hosts[1].role = \"master\": expected one of \"server\", \"client\"",
        );
        assert_eq!(
            d.to_string(),
            format!(
                "{}:3:47: hosts[1].role = \"master\": expected one of \"server\", \"client\"",
                inv_path().display()
            )
        );
    }

    #[test]
    fn data_dir_equal_to_config_dir_is_rejected() {
        only(
            &doc("[paths]\ndata_dir = \"/etc/consul.d\"\n"),
            "paths.data_dir",
            13,
            "data_dir and config_dir must differ",
        );
    }

    #[test]
    fn missing_known_hosts_with_strict_host_keys_is_a_warning() {
        let c = ok(&doc("[ssh]\nknown_hosts = \"keys/nope\"\n"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("ssh.known_hosts (line 13)"),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings[0].contains("--accept-new-host-keys"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn ui_config_on_consul_1_8_is_a_warning() {
        let c = ok(&doc(
            "[servers]\nconfig = { ui_config = { enabled = true } }\n",
        ));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("does not know `ui_config`"),
            "{:?}",
            c.warnings
        );
        assert!(c.warnings[0].contains("s1, s2, s3"), "{:?}", c.warnings);
    }
}
