//! Step 3 for the whole inventory: the `[cluster]` and `[consul]` tables, then the roles,
//! hosts and services, resolved into a [`Cluster`].

use super::*;

/// Standard base64 with padding (Go's `base64.StdEncoding`, which Consul uses for keys).
pub(super) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (n, chunk) in bytes.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && n + 1 != chunks) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &chunk[..4 - pad] {
            acc = (acc << 6) | val(c)?;
        }
        acc <<= 6 * pad as u32;
        let decoded = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

impl Ctx<'_> {
    pub(super) fn resolve(&mut self, mut raw: raw::Inventory) -> Option<Cluster> {
        let root = KeyPath::root();
        // The daemons' tables ([registrar], [lb]), checked once the hosts are known.
        let top = raw.registrar.take();
        let registrar_tables = super::helpers::Tables::take(
            top,
            &mut raw,
            |r| r.registrar.take(),
            |h| h.registrar.take(),
        );
        let top = raw.lb.take();
        let lb_tables =
            super::helpers::Tables::take(top, &mut raw, |r| r.lb.take(), |h| h.lb.take());

        // [cluster]
        let kc = root.k("cluster");
        let rc = raw.cluster.unwrap_or_default();
        let datacenter = match &rc.datacenter {
            None => {
                self.missing(
                    &kc.k("datacenter"),
                    "the Consul datacenter: lowercase letters, digits, \"_\" and \"-\"",
                );
                None
            }
            Some(v) => self
                .string(&kc.k("datacenter"), &rc.datacenter)
                .and_then(|s| {
                    if is_consul_ident(&s) {
                        Some(s)
                    } else {
                        self.bad(
                            &kc.k("datacenter"),
                            v,
                            "expected lowercase letters, digits, \"_\" and \"-\" only \
                             (Consul rejects other datacenter names)",
                        );
                        None
                    }
                }),
        };
        let name = match &rc.name {
            None => datacenter.clone(),
            Some(v) => self.string(&kc.k("name"), &rc.name).and_then(|s| {
                if is_consul_ident(&s) {
                    Some(s)
                } else {
                    self.bad(
                        &kc.k("name"),
                        v,
                        "expected lowercase letters, digits, \"_\" and \"-\" only",
                    );
                    None
                }
            }),
        };
        let domain = match &rc.domain {
            None => Some("consul".to_owned()),
            Some(v) => self.string(&kc.k("domain"), &rc.domain).and_then(|s| {
                if is_domain(&s) {
                    Some(s)
                } else {
                    self.bad(
                        &kc.k("domain"),
                        v,
                        "expected a DNS domain: labels of letters, digits and \"-\" separated \
                         by dots, such as \"consul\" or \"consul.example\"",
                    );
                    None
                }
            }),
        };
        // Other datacenters' servers, joined over WAN by this datacenter's servers.
        let retry_join_wan = self
            .list(
                &kc.k("retry_join_wan"),
                &rc.retry_join_wan,
                "[\"10.1.0.10\", \"consul-dc2.example:8302\"]",
                wan_join_address,
                |a: &String, b: &String| a == b,
            )
            .unwrap_or_default();
        // `encrypt = "auto"`: the key lives in the secrets file, resolved by `load`.
        let encrypt_auto = matches!(&rc.encrypt, Some(toml::Value::String(s)) if s == "auto");
        let encrypt = if encrypt_auto {
            None
        } else {
            self.encrypt(&kc.k("encrypt"), &rc.encrypt)
        };
        // `tls = "auto"`: consulctl's CA and certificates (`tls.rs`); `false` is the same as absent.
        let tls_auto = match &rc.tls {
            None | Some(toml::Value::Boolean(false)) => false,
            Some(toml::Value::String(s)) if s == "auto" => true,
            Some(v) => {
                self.bad(
                    &kc.k("tls"),
                    v,
                    "expected \"auto\" (consulctl creates a CA and server certificates) or false",
                );
                false
            }
        };
        // `acl = true`: default deny, bootstrapped by consulctl (`acl.rs`).
        let acl = match &rc.acl {
            None | Some(toml::Value::Boolean(false)) => false,
            Some(toml::Value::Boolean(true)) => true,
            Some(v) => {
                self.bad(
                    &kc.k("acl"),
                    v,
                    "expected true (default policy deny; consulctl bootstraps the ACL system and \
                     keeps the tokens in the secrets file) or false",
                );
                false
            }
        };
        if acl && !retry_join_wan.is_empty() {
            self.warn(
                "cluster.acl = true with cluster.retry_join_wan: each datacenter bootstraps an \
                 ACL system of its own, so a token of one is unknown in the other and queries \
                 across datacenters (`catalog --dc`) are denied; consulctl does not set up ACL \
                 replication from a primary datacenter",
            );
        }
        let cluster_layer = self.layer(
            &LayerKeys {
                scalars: kc.clone(),
                tables: root.clone(),
            },
            &rc.init,
            &rc.log_level,
            &rc.client_addr,
            Some(&rc.bind_cidr),
            raw.ssh.as_ref(),
            raw.paths.as_ref(),
            &raw.config,
            raw.dns.as_ref(),
            raw.prepare.as_ref(),
        );

        // [consul]
        let kv = root.k("consul");
        let rcon = raw.consul.unwrap_or_default();
        let version = match &rcon.version {
            None => {
                self.missing(
                    &kv.k("version"),
                    "the Consul version to install, such as version = \"1.8.7\"",
                );
                None
            }
            Some(v) => self.string(&kv.k("version"), &rcon.version).and_then(|s| {
                match s.parse::<Version>() {
                    Ok(ver) => Some(ver),
                    Err(_) => {
                        self.bad(
                            &kv.k("version"),
                            v,
                            "expected MAJOR.MINOR.PATCH such as \"1.8.7\" or \"1.21.0\"",
                        );
                        None
                    }
                }
            }),
        };
        let source = self.source(&kv.k("source"), rcon.source.as_ref(), version);
        let consul_user = match self.string(&kv.k("user"), &rcon.user) {
            None => "consul".to_string(),
            Some(u) if valid_user_name(&u) => u,
            Some(_) => {
                let v = rcon.user.clone().unwrap_or(toml::Value::Boolean(false));
                self.bad(
                    &kv.k("user"),
                    &v,
                    "expected a system user name such as \"consul\" (created when missing) or \
                     \"root\": lower-case letters, digits, \"_\" and \"-\", starting with a letter \
                     or \"_\", at most 32 characters",
                );
                "consul".to_string()
            }
        };

        // [servers], [clients]
        let server_layer = self.role_layer("servers", raw.servers.as_ref());
        let client_layer = self.role_layer("clients", raw.clients.as_ref());

        // [[hosts]]
        // Every name given, valid or not: `on` selectors are checked against these even when
        // some host has problems of its own.
        let host_names: Vec<String> = raw
            .hosts
            .iter()
            .flatten()
            .filter_map(|h| match &h.name {
                Some(toml::Value::String(n)) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let mut hosts = self.hosts(
            raw.hosts,
            &cluster_layer,
            &server_layer,
            &client_layer,
            version,
        );

        // [[services]], attached to the hosts their `on` selects.
        let services_ok = self.services(raw.services, &host_names, hosts.as_mut());
        // [registrar] and [lb], and their role and host tables; the one consulctl-host.
        let has = (registrar_tables.top.is_some(), lb_tables.top.is_some());
        let (registrar_given, registrar_ok) =
            self.registrar(registrar_tables, &host_names, hosts.as_mut());
        let (lb_given, lb_ok) = self.lb(lb_tables, &host_names, hosts.as_mut());
        if !services_ok || !registrar_ok || !lb_ok {
            return None;
        }
        let needed = hosts
            .as_ref()
            .is_some_and(|hs| hs.iter().any(|h| h.registrar.is_some() || h.lb.is_some()));
        let registrar_needed = hosts
            .as_ref()
            .is_some_and(|hs| hs.iter().any(|h| h.registrar.is_some()));
        // The key a missing default binary is reported under: the daemon that needs it.
        let mut given = vec![
            ("registrar", has.0, registrar_given),
            ("lb", has.1, lb_given),
        ];
        if !registrar_needed {
            given.swap(0, 1);
        }
        let (registrar_binary, binary_ok) = self.host_binary(needed, &given);
        if !binary_ok {
            return None;
        }

        let (
            Some(name),
            Some(datacenter),
            Some(domain),
            Some(version),
            Some(source),
            Some(mut hosts),
        ) = (name, datacenter, domain, version, source, hosts)
        else {
            return None;
        };
        for h in hosts.iter_mut() {
            h.user = consul_user.clone();
            h.api_tls = tls_auto && h.role == Role::Server;
        }
        Some(Cluster {
            inventory_path: self.path.to_path_buf(),
            name,
            datacenter,
            domain,
            consul: ConsulSpec { version, source },
            encrypt,
            encrypt_auto,
            tls_auto,
            acl,
            acl_tokens: Default::default(),
            registrar_binary,
            retry_join_wan,
            hosts,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    pub(super) fn encrypt(&mut self, key: &KeyPath, v: &raw::V) -> Option<Secret> {
        // The value is a secret: messages never quote it.
        let s = self.string(key, v)?;
        match base64_decode(s.trim()) {
            Some(bytes) if matches!(bytes.len(), 16 | 24 | 32) => Some(Secret::new(s.trim())),
            Some(bytes) => {
                self.diag(
                    key,
                    format!(
                        "the key decodes to {} bytes; expected base64 of 16, 24 or 32 bytes \
                         (generate one with `consul keygen`; value not shown)",
                        bytes.len()
                    ),
                );
                None
            }
            None => {
                self.diag(
                    key,
                    "not valid base64; expected base64 of 16, 24 or 32 bytes \
                     (generate one with `consul keygen`; value not shown)",
                );
                None
            }
        }
    }

    pub(super) fn source(
        &mut self,
        key: &KeyPath,
        r: Option<&raw::Source>,
        version: Option<Version>,
    ) -> Option<InstallSource> {
        const FORMS: &str =
            "source = { file = \"...\" }, { url = \"https://...\", sha256 = \"...\" } \
                             or { package = \"auto\" }";
        let Some(r) = r else {
            self.missing(key, format!("where Consul comes from: {FORMS}"));
            return None;
        };
        let given: Vec<&str> = [("file", &r.file), ("url", &r.url), ("package", &r.package)]
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| *n)
            .collect();
        if r.sha256.is_some() && r.url.is_none() {
            self.diag(
                &key.k("sha256"),
                "only applies to a url source (a local file or a package is not checked against it)",
            );
        }
        match given.as_slice() {
            [] => {
                self.diag(
                    key,
                    format!("expected exactly one of \"file\", \"url\", \"package\": {FORMS}"),
                );
                None
            }
            ["file"] => {
                let path = self.local_path(&key.k("file"), &r.file, true)?;
                self.check_version_in_name(&key.k("file"), &path.to_string_lossy(), version);
                Some(InstallSource::File { path })
            }
            ["url"] => {
                let url = self.string(&key.k("url"), &r.url).and_then(|u| {
                    if valid_url(&u) {
                        Some(u)
                    } else {
                        let v = r.url.clone()?;
                        self.bad(&key.k("url"), &v, "expected an http:// or https:// URL");
                        None
                    }
                });
                let sha256 = match &r.sha256 {
                    None => {
                        self.missing(
                            &key.k("sha256"),
                            "a url source needs the sha256 of the file (64 hex digits)",
                        );
                        None
                    }
                    Some(v) => self.string(&key.k("sha256"), &r.sha256).and_then(|s| {
                        let s = s.trim().to_ascii_lowercase();
                        if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
                            Some(s)
                        } else {
                            self.bad(
                                &key.k("sha256"),
                                v,
                                "expected 64 hex digits (the sha256 of the file)",
                            );
                            None
                        }
                    }),
                };
                let url = url?;
                self.check_version_in_name(&key.k("url"), &url, version);
                Some(InstallSource::Url {
                    url,
                    sha256: sha256?,
                })
            }
            ["package"] => self
                .choice(
                    &key.k("package"),
                    &r.package,
                    &[
                        ("auto", PackageManager::Auto),
                        ("apt", PackageManager::Apt),
                        ("yum", PackageManager::Yum),
                        ("dnf", PackageManager::Dnf),
                    ],
                )
                .map(|manager| InstallSource::Package { manager }),
            several => {
                let names: Vec<String> = several.iter().map(|n| format!("\"{n}\"")).collect();
                self.diag(
                    key,
                    format!(
                        "{} given together; expected exactly one of \"file\", \"url\", \"package\"",
                        names.join(" and ")
                    ),
                );
                None
            }
        }
    }

    /// Warn when a release file name (`consul_1.21.0_linux_amd64.zip`) names another version.
    pub(super) fn check_version_in_name(
        &mut self,
        key: &KeyPath,
        name: &str,
        version: Option<Version>,
    ) {
        let (Some(version), Some(named)) = (version, version_in_name(name)) else {
            return;
        };
        if named != version {
            let line = self.line_of(key);
            self.warn(format!(
                "{key} ({line}) names Consul {named} but consul.version is {version}; \
                 the installed binary must match consul.version"
            ));
        }
    }
}

/// A WAN join address: an IP or DNS name, optionally with a port (`:8302` by default).
fn wan_join_address(s: &str) -> Result<String, String> {
    let host = match s.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && !h.contains(':') => {
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{port:?} is not a port"))?;
            h
        }
        _ => s.trim_start_matches('[').trim_end_matches(']'),
    };
    classify_address(host).map(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::test_support::*;

    #[test]
    fn secret_is_never_printed() {
        let c = ok(&custom(
            "encrypt = \"pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=\"\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        ));
        assert!(c.encrypt.is_some());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("pUqJ"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        assert!(!serde_json::to_string(&c).unwrap().contains("pUqJ"));
    }

    #[test]
    fn wan_join_takes_addresses_with_optional_ports() {
        let c = ok(&custom(
            "retry_join_wan = [\"10.1.0.10\", \"consul-dc2.example:8302\"]\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        ));
        assert_eq!(c.retry_join_wan, ["10.1.0.10", "consul-dc2.example:8302"]);
        let diags = errs(&custom(
            "retry_join_wan = [\"10.1.0.10:port\", \"user@dc2\", \"10.1.0.10:port\"]\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        ));
        let keys: Vec<&str> = diags.iter().map(|d| d.key.as_str()).collect();
        assert!(keys.contains(&"cluster.retry_join_wan[0]"), "{keys:?}");
        assert!(keys.contains(&"cluster.retry_join_wan[1]"), "{keys:?}");
        assert!(ok(&custom(
            "",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n"
        ))
        .retry_join_wan
        .is_empty());
        let with_acl = ok(&custom(
            "acl = true\nretry_join_wan = [\"10.1.0.10\"]\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        ));
        assert!(
            with_acl
                .warnings
                .iter()
                .any(|w| w.contains("ACL replication")),
            "{:?}",
            with_acl.warnings
        );
    }

    #[test]
    fn base64_decoding_follows_go_std_encoding() {
        assert_eq!(base64_decode("AAAA").unwrap(), [0, 0, 0]);
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aA==").unwrap(), b"h");
        assert_eq!(
            base64_decode("pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=")
                .unwrap()
                .len(),
            32
        );
        for bad in ["", "aGk", "aG=k", "a===", "aA==aA==", "aGk*", "aGk=\n"] {
            assert!(base64_decode(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn missing_datacenter_is_rejected() {
        let text = format!(
            "{THREE}[cluster]\nname = \"prod\"\n[consul]\nversion = \"1.8.7\"\n\
             source = {{ package = \"auto\" }}\n"
        );
        let d = only(&text, "cluster.datacenter", 6, "missing required key");
        assert_eq!(d.column, Some(1), "points at the [cluster] header");
    }

    #[test]
    fn missing_cluster_table_has_no_line() {
        let text =
            format!("{THREE}[consul]\nversion = \"1.8.7\"\nsource = {{ package = \"auto\" }}\n");
        let diags = errs(&text);
        assert_eq!(diags.len(), 1);
        let d = one(&diags, "cluster.datacenter");
        assert_eq!(d.line, None);
        assert_eq!(
            d.to_string(),
            format!(
                "{}: cluster.datacenter: missing required key; the Consul datacenter: lowercase \
                 letters, digits, \"_\" and \"-\"",
                inv_path().display()
            )
        );
    }

    #[test]
    fn missing_consul_version_is_rejected() {
        let text = custom("", "source = { package = \"auto\" }\n");
        only(&text, "consul.version", 8, "missing required key");
    }

    #[test]
    fn missing_consul_source_is_rejected() {
        let text = custom("", "version = \"1.8.7\"\n");
        only(
            &text,
            "consul.source",
            8,
            "missing required key; where Consul comes from",
        );
    }

    #[test]
    fn invalid_datacenter_is_rejected() {
        for bad in ["Upyun", "up.yun", "up yun", ""] {
            let text = format!(
                "{THREE}[cluster]\ndatacenter = \"{bad}\"\n[consul]\nversion = \"1.8.7\"\n\
                 source = {{ package = \"auto\" }}\n"
            );
            let d = only(
                &text,
                "cluster.datacenter",
                7,
                "expected lowercase letters, digits",
            );
            assert!(
                d.to_string()
                    .contains(&format!("cluster.datacenter = \"{bad}\": ")),
                "{d}"
            );
            assert_eq!(d.column, Some(14));
        }
    }

    #[test]
    fn invalid_cluster_name_is_rejected() {
        let text = custom(
            "name = \"Prod/1\"\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        );
        only(
            &text,
            "cluster.name",
            8,
            "cluster.name = \"Prod/1\": expected lowercase letters",
        );
    }

    #[test]
    fn invalid_domain_is_rejected() {
        for bad in ["consul..local", "-consul", "con sul", "consul_"] {
            let text = custom(
                &format!("domain = \"{bad}\"\n"),
                "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
            );
            only(&text, "cluster.domain", 8, "expected a DNS domain");
        }
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn url_source_is_accepted_with_sha256() {
        let c = ok(&with_source(&format!(
            "{{ url = \"https://releases.example/consul_1.21.0_linux_amd64.zip\", sha256 = \"{}\" }}",
            SHA.to_uppercase()
        )));
        assert_eq!(
            c.consul.source,
            InstallSource::Url {
                url: "https://releases.example/consul_1.21.0_linux_amd64.zip".into(),
                sha256: SHA.into()
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn url_without_sha256_is_rejected() {
        let text = with_source("{ url = \"https://releases.example/consul.zip\" }");
        only(
            &text,
            "consul.source.sha256",
            10,
            "missing required key; a url source needs the sha256",
        );
    }

    #[test]
    fn bad_sha256_is_rejected() {
        for bad in ["abc".to_owned(), format!("{}g", &SHA[..63])] {
            let text = with_source(&format!(
                "{{ url = \"https://releases.example/consul.zip\", sha256 = \"{bad}\" }}"
            ));
            only(&text, "consul.source.sha256", 10, "expected 64 hex digits");
        }
    }

    #[test]
    fn non_http_url_is_rejected() {
        for bad in [
            "ftp://mirror/consul.zip",
            "releases.example/consul.zip",
            "https://",
        ] {
            let text = with_source(&format!("{{ url = \"{bad}\", sha256 = \"{SHA}\" }}"));
            only(
                &text,
                "consul.source.url",
                10,
                &format!("consul.source.url = \"{bad}\": expected an http:// or https:// URL"),
            );
        }
    }

    #[test]
    fn two_source_forms_are_rejected() {
        let text = with_source("{ package = \"auto\", file = \"dist/consul\" }");
        only(
            &text,
            "consul.source",
            10,
            "\"file\" and \"package\" given together; expected exactly one of",
        );
    }

    #[test]
    fn empty_source_is_rejected() {
        only(
            &with_source("{}"),
            "consul.source",
            10,
            "expected exactly one of \"file\", \"url\", \"package\"",
        );
    }

    #[test]
    fn sha256_without_url_is_rejected() {
        let text = with_source(&format!("{{ package = \"auto\", sha256 = \"{SHA}\" }}"));
        only(
            &text,
            "consul.source.sha256",
            10,
            "only applies to a url source",
        );
    }

    #[test]
    fn invalid_package_manager_is_rejected() {
        only(
            &with_source("{ package = \"zypper\" }"),
            "consul.source.package",
            10,
            "consul.source.package = \"zypper\": expected one of \"auto\", \"apt\", \"yum\", \"dnf\"",
        );
    }

    #[test]
    fn version_mismatch_in_a_release_name_is_a_warning() {
        let c = ok(&with_source(&format!(
            "{{ url = \"https://releases.example/consul_1.8.7_linux_amd64.zip\", sha256 = \"{SHA}\" }}"
        )));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "consul.source.url (line 10) names Consul 1.8.7 but consul.version is 1.21.0"
            ),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn bad_version_is_rejected() {
        for bad in ["\"1.8\"", "\"latest\"", "1.8"] {
            let text = custom(
                "",
                &format!("version = {bad}\nsource = {{ package = \"auto\" }}\n"),
            );
            let d = only(
                &text,
                "consul.version",
                9,
                &format!("consul.version = {bad}: expected"),
            );
            assert_eq!(d.column, Some(11));
        }
    }

    #[test]
    fn encrypt_auto_leaves_the_key_to_the_secrets_file() {
        let c = ok(&doc("").replace("[cluster]\n", "[cluster]\nencrypt = \"auto\"\n"));
        assert!(c.encrypt_auto);
        assert!(
            c.encrypt.is_none(),
            "parse is pure: load() fills the key in"
        );
    }

    #[test]
    fn malformed_encrypt_key_is_rejected() {
        for (bad, needle) in [
            ("not base64!", "not valid base64"),
            ("aGVsbG8=", "decodes to 5 bytes"),
        ] {
            let text = custom(
                &format!("encrypt = \"{bad}\"\n"),
                "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
            );
            let d = only(&text, "cluster.encrypt", 8, needle);
            assert!(!d.to_string().contains(bad), "the key is a secret: {d}");
        }
    }

    #[test]
    fn tls_auto_is_parsed_and_false_is_off() {
        let c = ok(&doc("").replace("[cluster]\n", "[cluster]\ntls = \"auto\"\n"));
        assert!(c.tls_auto);
        let c = ok(&doc("").replace("[cluster]\n", "[cluster]\ntls = false\n"));
        assert!(!c.tls_auto);
        assert!(!ok(&doc("")).tls_auto);
    }

    #[test]
    fn other_tls_values_are_rejected() {
        for bad in ["\"yes\"", "true", "1"] {
            let text = custom(
                &format!("tls = {bad}\n"),
                "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
            );
            only(&text, "cluster.tls", 8, "expected \"auto\"");
        }
    }

    #[test]
    fn acl_is_a_boolean_and_the_agent_user_a_system_user_name() {
        let c = ok(&doc("").replace("[cluster]\n", "[cluster]\nacl = true\n"));
        assert!(c.acl);
        assert!(!ok(&doc("")).acl);
        assert!(ok(&doc("")).hosts.iter().all(|h| h.user == "consul"));
        let text = custom(
            "acl = \"yes\"\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        );
        only(&text, "cluster.acl", 8, "expected true");
        let text = custom(
            "",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\nuser = \"root\"\n",
        );
        assert!(ok(&text).hosts.iter().all(|h| h.user == "root"));
        for bad in ["Consul User", "9lives", "a:b", ""] {
            let text = custom(
                "",
                &format!(
                    "version = \"1.8.7\"\nsource = {{ package = \"auto\" }}\nuser = {bad:?}\n"
                ),
            );
            only(&text, "consul.user", 11, "expected a system user name");
        }
    }
}
