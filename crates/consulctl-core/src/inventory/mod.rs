//! Inventory: TOML text -> raw structs (serde, `deny_unknown_fields`) -> validation ->
//! the resolved [`model::Cluster`](crate::model::Cluster).
//!
//! Everything here happens before any host is touched. Problems are collected, not stopped at:
//! every unknown key, every bad value, every duplicate is reported together, each naming the
//! file, the key path (`hosts[1].role`, host indices count from 0), the line and column, the
//! offending value and what is allowed:
//!
//! ```text
//! inventory/prod.toml:14:8: hosts[1].role = "master": expected one of "server", "client"
//! ```
//!
//! How it works:
//! 1. `toml_edit` parses the text into a document that remembers where every key and value is
//!    (a syntax error stops here, with its line and column).
//! 2. serde deserializes that document into the `raw` structs (`deny_unknown_fields`). Leaves are
//!    kept as `toml::Value` so that a wrong type is a validation error with a good message rather
//!    than a serde error. When serde rejects something (an unknown key, a table where a value is
//!    expected) the offending key is reported, removed from a copy of the document and
//!    deserialization runs again, so that every such problem is found in one run.
//! 3. Validation walks the raw structs, checks every value, resolves defaults and overrides
//!    (host > role table > cluster-wide) and looks up line:column in the document by key path.
//!
//! The reference for the format is `docs/inventory.md`.
//!
//! Layout: [`load`] and [`parse`] here; step 2 in `parsing` (into the structs of `raw`); the
//! validation context and [`Diagnostic`] in `diagnostics`; step 3 in `cluster` (the whole
//! inventory), `layers` (settings given cluster-wide, per role and per host, and how they
//! merge), `hosts`, `dns` (the `dns` and `prepare` tables), `services`, `helpers` (what the host daemons share), `registrar`, `lb`, and `validators` (single
//! values, by family). The submodules share the imports below through `use super::*`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::{Map, Value as Json};
use toml_edit::{ImDocument, Item};

use crate::error::Error;
use crate::model::{
    BindAddr, CheckKind, CheckSpec, Cluster, ConsulSpec, DnsForward, DnsSpec, Host, HostKeyPolicy,
    Init, InstallSource, PackageManager, Paths, PrepareSpec, Role, Secret, ServiceSpec, SshTarget,
};
use crate::selector::Selector;
use crate::version::Version;

pub mod ansible;
mod cluster;
mod diagnostics;
mod dns;
mod helpers;
mod hosts;
mod layers;
mod lb;
mod parsing;
mod raw;
mod registrar;
mod schema;
mod services;
#[cfg(test)]
mod test_support;
mod validators;

pub use diagnostics::Diagnostic;
use diagnostics::*;
use dns::*;
use layers::*;
pub use schema::SCHEMA;
use validators::*;

/// Read, parse and validate an inventory file. Every problem is an `Error::Input` naming the
/// file, the key (with line:column) and what is allowed; all problems are listed together.
/// Touches no host, and writes nothing: secrets the inventory asks consulctl to generate
/// (`encrypt = "auto"`, the agent tokens of `acl = true`) are read from the secrets file beside
/// it, or generated in memory when missing there, the same ones for every load in this process
/// until [`persist_secrets`] writes them.
pub fn load(path: &Path) -> Result<Cluster, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::input(anyhow::anyhow!(
            "{}: cannot read the inventory: {e}",
            path.display()
        ))
    })?;
    let mut cluster =
        parse(path, &text).map_err(|diags| Error::input(anyhow::anyhow!(render(path, &diags))))?;
    if cluster.encrypt_auto {
        let key = crate::secrets::gossip_key(path).map_err(|e| {
            Error::input(e.context(format!("{}: cluster.encrypt = \"auto\"", path.display())))
        })?;
        cluster.encrypt = Some(key);
    }
    if cluster.acl {
        let names: Vec<String> = cluster.hosts.iter().map(|h| h.name.clone()).collect();
        let with = |has: fn(&Host) -> bool| -> Vec<String> {
            cluster
                .hosts
                .iter()
                .filter(|h| has(h))
                .map(|h| h.name.clone())
                .collect()
        };
        let registrars = with(|h| h.registrar.is_some());
        let lbs = with(|h| h.lb.is_some());
        cluster.acl_tokens =
            crate::secrets::acl_tokens(path, &names, &registrars, &lbs).map_err(|e| {
                Error::input(e.context(format!("{}: cluster.acl = true", path.display())))
            })?;
    }
    Ok(cluster)
}

/// Write what [`load`] generated for `cluster` and did not write: the secrets file beside the
/// inventory (gossip key, agent tokens) and, with `tls = "auto"`, the TLS directory, whose
/// files are then written as rendering makes them (see [`crate::pki`]). For the commands that
/// change hosts, before they touch any: a command that only reads never calls it and leaves no
/// file behind. Nothing generated: nothing written.
pub fn persist_secrets(cluster: &Cluster) -> Result<(), Error> {
    let path = &cluster.inventory_path;
    crate::secrets::persist_unsaved(path).map_err(|e| {
        Error::input(e.context(format!("{}: writing the generated secrets", path.display())))
    })?;
    if cluster.tls_auto {
        crate::pki::persist(&crate::pki::dir(cluster)).map_err(|e| {
            Error::input(e.context(format!("{}: cluster.tls = \"auto\"", path.display())))
        })?;
    }
    Ok(())
}

/// Parse and validate inventory `text` read from `path` (used in messages and to resolve
/// relative local paths). Pure except for checking that local files (source file,
/// identity_file, known_hosts) exist.
pub fn parse(path: &Path, text: &str) -> Result<Cluster, Vec<Diagnostic>> {
    let doc = match ImDocument::parse(text.to_owned()) {
        Ok(doc) => doc,
        Err(e) => {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            let message = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(vec![Diagnostic {
                path: path.to_path_buf(),
                key: String::new(),
                line,
                column,
                message: format!("TOML syntax error: {message}"),
            }]);
        }
    };
    let mut cx = Ctx::new(path, text, &doc);
    let cluster = cx.deserialize().and_then(|raw| cx.resolve(raw));
    let mut diags = cx.diags;
    match cluster {
        Some(cluster) if diags.is_empty() => Ok(cluster),
        _ => {
            if diags.is_empty() {
                // Cannot happen: every `None` above records why. Never fail silently anyway.
                diags.push(Diagnostic {
                    path: path.to_path_buf(),
                    key: String::new(),
                    line: None,
                    column: None,
                    message: "the inventory is invalid".into(),
                });
            }
            // File-level problems (no line) first, then in file order; stable, so problems on
            // one line keep the order they were found in.
            diags.sort_by_key(|d| (d.line, d.column));
            Err(diags)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::test_support::*;

    #[test]
    fn minimal_inventory_gets_every_default() {
        let c = ok(&doc(""));
        assert_eq!(c.name, "dc1");
        assert_eq!(c.datacenter, "dc1");
        assert_eq!(c.domain, "consul");
        assert_eq!(c.inventory_path, inv_path());
        assert_eq!(c.consul.version, Version::new(1, 8, 7));
        assert_eq!(
            c.consul.source,
            InstallSource::Package {
                manager: PackageManager::Auto
            }
        );
        assert!(c.encrypt.is_none());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.hosts.len(), 3);
        let h = &c.hosts[0];
        assert_eq!(h.name, "s1");
        assert_eq!(h.address, "10.0.0.1");
        assert_eq!(h.role, Role::Server);
        assert_eq!(h.init, Init::Systemd);
        assert_eq!(h.bind, BindAddr::Fixed("10.0.0.1".parse().unwrap()));
        assert_eq!(h.client_addr, "127.0.0.1");
        assert_eq!(h.log_level, "INFO");
        assert_eq!(h.paths, Paths::vendor_default());
        assert_eq!(h.ssh, SshTarget::default());
        assert!(h.extra_config.is_empty());
        assert!(h.tags.is_empty());
        assert_eq!(h.dns, None);
        assert!(h.services.is_empty());
        assert_eq!(h.prepare, PrepareSpec::default());
    }

    #[test]
    fn full_fixture_resolves_every_override() {
        let path = fixtures().join("full.toml");
        let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.name, "prod-a");
        assert_eq!(c.datacenter, "dc_1");
        assert_eq!(c.domain, "consul.example");
        assert_eq!(
            c.encrypt.as_ref().map(Secret::expose),
            Some("pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=")
        );
        assert_eq!(
            c.consul.source,
            InstallSource::File {
                path: fixtures().join("dist/consul")
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let s1 = c.host("s1").unwrap();
        // Role table over cluster.
        assert_eq!(s1.log_level, "INFO");
        assert_eq!(s1.client_addr, "127.0.0.1");
        assert_eq!(s1.bind, BindAddr::Cidr("10.1.1.0/24".parse().unwrap()));
        assert_eq!(s1.ssh.user.as_deref(), Some("root"));
        assert_eq!(s1.ssh.port, Some(2200));
        assert_eq!(
            s1.ssh.identity_file,
            Some(fixtures().join("keys/id_placeholder"))
        );
        assert_eq!(
            s1.ssh.known_hosts,
            Some(fixtures().join("keys/known_hosts"))
        );
        assert_eq!(s1.ssh.jump.as_deref(), Some("ops@bastion.example:2222"));
        assert_eq!(s1.ssh.connect_timeout_secs, 15);
        assert_eq!(s1.paths.data_dir, PathBuf::from("/var/lib/consul-server"));
        assert_eq!(s1.paths.config_dir, PathBuf::from("/usr/local/consul/conf"));
        assert_eq!(
            s1.paths.supervisor_program,
            Some(PathBuf::from("/etc/supervisord.d/consul.ini"))
        );
        assert_eq!(s1.tags, ["rack1", "ssd"]);
        assert_eq!(
            Json::Object(s1.extra_config.clone()),
            serde_json::json!({
                "performance": { "raft_multiplier": 1 },
                "dns_config": { "enable_truncate": true, "only_passing": false },
                "telemetry": { "disable_hostname": true },
                "enable_local_script_checks": true,
                "ui_config": { "enabled": true },
            })
        );

        // Host over role over cluster.
        let s2 = c.host("s2").unwrap();
        assert_eq!(s2.address, "s2.example");
        assert_eq!(s2.bind, BindAddr::Fixed("10.1.1.12".parse().unwrap()));
        assert_eq!(s2.init, Init::Supervisord);
        assert_eq!(s2.log_level, "DEBUG");
        assert_eq!(s2.ssh.port, Some(22));
        assert_eq!(s2.ssh.connect_timeout_secs, 30);
        assert_eq!(s2.ssh.user.as_deref(), Some("root"));
        assert_eq!(s2.paths.log_dir, PathBuf::from("/var/log/consul-s2"));
        assert_eq!(s2.paths.data_dir, PathBuf::from("/var/lib/consul-server"));
        assert_eq!(
            s2.extra_config["dns_config"],
            serde_json::json!({ "enable_truncate": false, "only_passing": false })
        );
        assert_eq!(
            s2.extra_config["node_meta"],
            serde_json::json!({ "rack": "r2" })
        );

        // A client: [clients] and the cluster.
        let a = c.host("10.1.2.21").unwrap();
        assert_eq!(a.role, Role::Client);
        assert_eq!(a.init, Init::Supervisord);
        assert_eq!(a.log_level, "WARN");
        assert_eq!(a.client_addr, "10.1.2.21");
        assert_eq!(a.bind, BindAddr::Cidr("10.1.0.0/16".parse().unwrap()));
        assert_eq!(a.ssh.user.as_deref(), Some("ops"));
        assert_eq!(a.ssh.jump.as_deref(), Some("bastion2.example"));
        assert_eq!(a.ssh.host_keys, HostKeyPolicy::AcceptNew);
        assert_eq!(a.paths.data_dir, PathBuf::from("/disk/ssd1/consul/data"));
        assert_eq!(
            Json::Object(a.extra_config.clone()),
            serde_json::json!({
                "performance": { "raft_multiplier": 1 },
                "dns_config": { "enable_truncate": true, "only_passing": true },
                "telemetry": { "disable_hostname": true },
                "enable_local_script_checks": true,
                "ports": { "dns": -1, "http": 8501 },
            })
        );

        // DNS: host over role over cluster, key by key.
        let ns: Vec<IpAddr> = ["10.1.0.2", "10.1.0.3", "2001:db8::53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let options = ["timeout:1", "attempts:1", "single-request-reopen", "rotate"];
        assert_eq!(
            s1.dns,
            Some(DnsSpec {
                nameservers: ns.clone(),
                search: vec!["servers.example.com".into()],
                options: options.iter().map(|o| o.to_string()).collect(),
                forward: DnsForward::None,
                resolv_conf: "/etc/resolv.conf".into(),
            })
        );
        let d2 = s2.dns.as_ref().unwrap();
        assert_eq!(d2.options, ["ndots:2"]);
        assert_eq!(d2.search, ["servers.example.com"]);
        assert_eq!(d2.forward, DnsForward::None);
        assert_eq!(d2.resolv_conf, PathBuf::from("/etc/resolv.conf.consul"));
        let da = a.dns.as_ref().unwrap();
        assert_eq!(da.forward, DnsForward::None);
        assert_eq!(da.search, ["example.com", "corp.example."]);
        assert_eq!(da.nameservers, ns);

        // prepare: the most specific list wins whole.
        assert_eq!(
            s1.prepare,
            PrepareSpec {
                disable_services: vec!["cups".into(), "rpcbind".into()],
                packages: vec![],
            }
        );
        assert_eq!(s2.prepare.packages, ["dnsmasq", "bind-utils"]);
        assert_eq!(s2.prepare.disable_services, ["cups", "rpcbind"]);
        assert_eq!(
            a.prepare.disable_services,
            ["cups", "rpcbind", "postfix.service"]
        );
        assert_eq!(a.prepare.packages, ["dnsmasq"]);

        // services: web on the client and s1, ntp on the host tagged ssd (s1), in file order.
        let names = |h: &Host| {
            h.services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(s1), ["web", "ntp"]);
        assert_eq!(names(s2), Vec::<String>::new());
        assert_eq!(names(a), ["web"]);
        let web = &a.services[0];
        assert_eq!(web.id(), "web-80");
        assert_eq!(web.port, Some(80));
        assert_eq!(web.address.as_deref(), Some("{{ bind_addr }}"));
        assert_eq!(web.tags, ["http", "upyun"]);
        assert_eq!(
            web.meta,
            [("node", "{{ node_name }}"), ("team", "web")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        assert_eq!(
            web.checks,
            [
                CheckSpec {
                    name: Some("web tcp".into()),
                    kind: CheckKind::Tcp("{{ bind_addr }}:80".into()),
                    interval: "10s".into(),
                    timeout: Some("1s".into()),
                    deregister_critical_service_after: None,
                },
                CheckSpec {
                    name: None,
                    kind: CheckKind::Http("http://{{ address }}:80/health".into()),
                    interval: "1m30s".into(),
                    timeout: None,
                    deregister_critical_service_after: Some("90m".into()),
                },
            ]
        );
        assert_eq!(&s1.services[0], web);
        let ntp = &s1.services[1];
        assert_eq!(ntp.id(), "ntp");
        assert!(ntp.has_script_check());
        assert_eq!(
            ntp.checks[0].kind,
            CheckKind::Script(vec![
                "/usr/local/consul/script/check_udp.sh".into(),
                "123".into()
            ])
        );
    }

    #[test]
    fn example_inventory_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/example.toml");
        let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.servers().count(), 3);
        assert!(c.clients().count() >= 1);
        assert_eq!(c.host("server1").unwrap().paths, Paths::vendor_default());
        assert_eq!(c.host("server1").unwrap().init, Init::Systemd);
        // [dns], [prepare] and [[services]] are commented out there.
        assert!(c
            .hosts
            .iter()
            .all(|h| h.dns.is_none() && h.services.is_empty()));
        assert_eq!(c.host("web1").unwrap().prepare, PrepareSpec::default());
    }

    #[test]
    fn example_production_inventory_mirrors_the_seed() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/example-production.toml");
        let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.datacenter, "upyun");
        assert_eq!(c.domain, "consul");
        assert_eq!(c.servers().count(), 3);
        assert!(c.clients().count() >= 2);
        let net: IpNet = "192.168.30.0/24".parse().unwrap();
        for h in &c.hosts {
            assert_eq!(h.init, Init::Supervisord, "{}", h.name);
            assert_eq!(h.bind, BindAddr::Cidr(net), "{}", h.name);
            assert_eq!(h.paths.binary, PathBuf::from("/usr/local/consul/consul"));
            assert_eq!(h.paths.config_dir, PathBuf::from("/usr/local/consul/conf"));
            assert_eq!(h.paths.data_dir, PathBuf::from("/disk/ssd1/consul/data"));
            assert_eq!(h.paths.log_dir, PathBuf::from("/disk/ssd1/logs/supervisor"));
            assert_eq!(
                h.paths.supervisor_program,
                Some(PathBuf::from("/etc/supervisord.d/consul.ini"))
            );
            let x = &h.extra_config;
            assert_eq!(x["leave_on_terminate"], Json::Bool(true));
            assert_eq!(x["rejoin_after_leave"], Json::Bool(true));
            assert_eq!(x["enable_local_script_checks"], Json::Bool(true));
            assert_eq!(
                x["dns_config"],
                serde_json::json!({ "enable_truncate": true, "only_passing": true })
            );
            match h.role {
                Role::Server => {
                    assert_eq!(x["ui_config"], serde_json::json!({ "enabled": true }));
                    assert!(!x.contains_key("ports"));
                }
                Role::Client => {
                    assert_eq!(x["ports"], serde_json::json!({ "dns": -1 }));
                    assert!(!x.contains_key("ui_config"));
                }
            }
            // The seed's resolv.conf and install script.
            let dns = h.dns.as_ref().expect("dns");
            assert_eq!(dns.forward, DnsForward::None, "{}", h.name);
            assert_eq!(
                dns.options,
                ["timeout:1", "attempts:1", "single-request-reopen", "rotate"]
            );
            assert!(!dns.nameservers.is_empty() && dns.nameservers.len() <= 3);
            assert_eq!(dns.resolv_conf, PathBuf::from("/etc/resolv.conf"));
            assert_eq!(h.prepare.disable_services, ["cups", "rpcbind"]);
        }
        let services = |name: &str| -> Vec<&str> {
            c.host(name)
                .unwrap()
                .services
                .iter()
                .map(|s| s.name.as_str())
                .collect()
        };
        assert!(services("192.168.30.17").is_empty());
        assert_eq!(services("192.168.30.7"), ["mysql", "ntp", "ssh"]);
        assert_eq!(services("192.168.30.21"), ["kafka", "ntp", "ssh"]);
        assert_eq!(services("192.168.30.22"), ["es", "ssh"]);
        let mysql = &c.host("192.168.30.7").unwrap().services[0];
        assert_eq!(mysql.tags, ["tcp", "upyun"]);
        assert_eq!(
            mysql.checks,
            [CheckSpec {
                name: None,
                kind: CheckKind::Tcp("{{ bind_addr }}:3306".into()),
                interval: "10s".into(),
                timeout: Some("1s".into()),
                deregister_critical_service_after: None,
            }]
        );
        assert_eq!(
            c.host("192.168.30.22").unwrap().services[0].tags,
            ["http", "upyun"]
        );
        let ntp = &c.host("192.168.30.7").unwrap().services[1];
        assert_eq!(
            ntp.checks[0].kind,
            CheckKind::Script(vec!["/usr/local/consul/script/check_udp.sh".into()])
        );
        assert_eq!(
            (
                ntp.checks[0].interval.as_str(),
                ntp.checks[0].timeout.as_deref()
            ),
            ("60s", Some("10s"))
        );
        let ssh = &c.host("192.168.30.21").unwrap().services[2];
        assert_eq!(ssh.port, Some(22));
        assert_eq!(
            ssh.checks[0].kind,
            CheckKind::Tcp("{{ bind_addr }}:22".into())
        );
    }

    #[test]
    fn toml_syntax_error_reports_line_and_column() {
        let text = "[cluster]\ndatacenter = \"dc1\nname = \"x\"\n";
        let d = only(text, "", 2, "TOML syntax error");
        assert_eq!(d.column, Some(18));
        assert!(
            d.to_string().starts_with(&format!(
                "{}:2:18: TOML syntax error: ",
                inv_path().display()
            )),
            "{d}"
        );
    }

    #[test]
    fn duplicate_toml_key_is_a_syntax_error() {
        let text = "[cluster]\ndatacenter = \"dc1\"\ndatacenter = \"dc2\"\n";
        let d = only(text, "", 3, "duplicate key");
        assert_eq!(d.column, Some(1));
    }

    #[test]
    fn load_reports_every_dns_prepare_and_service_problem() {
        let path = fixtures().join("services-errors.toml");
        let err = load(&path).unwrap_err();
        assert_eq!(err.code(), 2);
        let shown = err.to_string();
        let p = path.display();
        let expected = [
            format!("16 problems in {p}:"),
            format!("  {p}:13:28: dns.nameservers[1] = \"ns1.example\": expected an IP address"),
            format!("  {p}:14:26: dns.search[1] = \"bad_domain.example\": expected a DNS domain"),
            format!(
                "  {p}:15:25: dns.options[1] = \"timout:2\": unknown resolv.conf option; did you \
                 mean \"timeout\"?"
            ),
            format!(
                "  {p}:15:37: dns.options[2] = \"attempts:9\": expected attempts:N with N a whole \
                 number from 1 to 5"
            ),
            format!(
                "  {p}:16:11: dns.forward = \"systemd\": expected one of \"auto\", \"dnsmasq\""
            ),
            format!(
                "  {p}:17:15: dns.resolv_conf = \"etc/resolv.conf\": expected an absolute path"
            ),
            format!(
                "  {p}:20:29: prepare.disable_services[1] = \"rpc bind\": expected a systemd unit \
                 name"
            ),
            format!("  {p}:21:24: prepare.packages[1] = \"dnsmasq=2.80\": expected a package name"),
            format!("  {p}:28:1: services[0].on: missing required key"),
            format!("  {p}:33:6: services[1].on = \"s1,db9\": no host is named `db9`"),
            format!("  {p}:34:8: services[1].port = 70000: expected an integer from 1 to 65535"),
            format!(
                "  {p}:35:11: services[1].address = \"{{{{ bind_ip }}}}\": unknown placeholder"
            ),
            format!("  {p}:37:1: services[1].checks[0]: \"tcp\" and \"http\" given together"),
            format!("  {p}:42:1: services[1].checks[1]: no check kind"),
            format!("  {p}:43:12: services[1].checks[1].interval = \"10\": expected a Go duration"),
            format!(
                "  {p}:50:8: services[3].name = \"api\": duplicate service id on host s1: \
                 services[2] (line 46)"
            ),
        ];
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{shown}");
        for (got, want) in lines.iter().zip(&expected) {
            assert!(
                got.starts_with(want.as_str()),
                "want `{want}`, got `{got}`\nall:\n{shown}"
            );
        }
    }

    #[test]
    fn load_reports_every_problem_as_one_input_error() {
        let path = fixtures().join("many-errors.toml");
        let err = load(&path).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(matches!(err, Error::Input(_)));
        let shown = err.to_string();
        let p = path.display();
        let expected = [
            format!("9 problems in {p}:"),
            format!("  {p}:5:14: cluster.datacenter = \"Up Yun\": expected lowercase letters"),
            format!("  {p}:6:1: cluster.log_levl: unknown key; did you mean \"log_level\"?"),
            format!("  {p}:9:11: consul.version = \"1.8\": expected MAJOR.MINOR.PATCH"),
            format!("  {p}:10:10: consul.source.sha256: missing required key"),
            format!(
                "  {p}:10:18: consul.source.url = \"ftp://mirror/consul.zip\": expected an \
                 http:// or https:// URL"
            ),
            format!(
                "  {p}:15:8: hosts[0].role = \"master\": expected one of \"server\", \"client\""
            ),
            format!(
                "  {p}:18:8: hosts[1].name = \"server1\": duplicate host name, already used by \
                 hosts[0] (line 13)"
            ),
            format!("  {p}:19:11: hosts[1].address = \"192.168.30.11\": duplicate host address"),
            format!("  {p}:21:16: hosts[1].ssh.port = 0: expected an integer from 1 to 65535"),
        ];
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{shown}");
        for (got, want) in lines.iter().zip(&expected) {
            assert!(
                got.starts_with(want.as_str()),
                "want `{want}`, got `{got}`\nall:\n{shown}"
            );
        }
    }

    #[test]
    fn load_writes_nothing_and_persist_secrets_writes_what_it_generated() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = tmp.path().join("prod.toml");
        let text = doc("").replace(
            "datacenter = \"dc1\"\n",
            "datacenter = \"dc1\"\nencrypt = \"auto\"\nacl = true\ntls = \"auto\"\n",
        );
        std::fs::write(&inv, text).unwrap();
        let listing = || {
            let mut names: Vec<String> = std::fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let a = load(&inv).unwrap();
        let b = load(&inv).unwrap();
        assert_eq!(listing(), ["prod.toml"], "load wrote a file");
        assert_eq!(
            a.encrypt, b.encrypt,
            "the same generated key for every load"
        );
        assert_eq!(a.acl_tokens.agents, b.acl_tokens.agents);
        assert_eq!(a.acl_tokens.agents.len(), 3);

        persist_secrets(&a).unwrap();
        assert_eq!(listing(), ["prod.secrets.toml", "prod.toml"]);
        let c = load(&inv).unwrap();
        assert_eq!(c.encrypt, a.encrypt, "the written key is read back");
        assert_eq!(c.acl_tokens.agents, a.acl_tokens.agents);
        // Nothing generated any more: persisting again writes nothing new.
        persist_secrets(&c).unwrap();
        assert_eq!(listing(), ["prod.secrets.toml", "prod.toml"]);
    }

    #[test]
    fn load_of_a_missing_file_is_an_input_error() {
        let err = load(&fixtures().join("does-not-exist.toml")).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err
            .to_string()
            .contains("does-not-exist.toml: cannot read the inventory"));
    }
}
