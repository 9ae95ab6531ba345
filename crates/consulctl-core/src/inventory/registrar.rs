//! `[registrar]`: the Docker registrar (`consulctl-host registrar`) on the hosts its `on`
//! selects, with role and host `registrar = { ... }` tables overriding single keys and
//! `enabled = true|false` adding or removing a host whatever `on` says.

use super::helpers::{Daemon, GivenBinary, Layer, Tables};
use super::services::go_duration_nanos;
use super::*;
use crate::model::{RegistrarMode, RegistrarSpec};

/// The placeholders `host_ip` may be (whole).
const HOST_IP_FORMS: &[&str] = &["{{ bind_addr }}", "{{ address }}"];

/// A Docker network name: letters, digits, `_`, `.`, `-`, starting with a letter or digit.
fn is_network_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// One `registrar` table's settings (each key given or not).
#[derive(Debug, Default, Clone)]
pub(super) struct RegistrarLayer {
    mode: Option<RegistrarMode>,
    host_ip: Option<String>,
    network: Option<String>,
    networks: Option<Vec<String>>,
    explicit: Option<bool>,
    resync: Option<String>,
    drain: Option<String>,
    docker_socket: Option<PathBuf>,
    enabled: Option<bool>,
}

/// Host > role > `[registrar]` > default, key by key.
fn resolve(layers: &[&RegistrarLayer; 3]) -> RegistrarSpec {
    let d = RegistrarSpec::defaults();
    RegistrarSpec {
        mode: layers.iter().find_map(|l| l.mode).unwrap_or(d.mode),
        host_ip: layers.iter().find_map(|l| l.host_ip.clone()),
        network: layers.iter().find_map(|l| l.network.clone()),
        networks: layers
            .iter()
            .find_map(|l| l.networks.clone())
            .unwrap_or(d.networks),
        explicit: layers.iter().find_map(|l| l.explicit).unwrap_or(d.explicit),
        resync: layers
            .iter()
            .find_map(|l| l.resync.clone())
            .unwrap_or(d.resync),
        drain: layers
            .iter()
            .find_map(|l| l.drain.clone())
            .unwrap_or(d.drain),
        docker_socket: layers
            .iter()
            .find_map(|l| l.docker_socket.clone())
            .unwrap_or(d.docker_socket),
    }
}

impl Layer for RegistrarLayer {
    fn enabled(&self) -> Option<bool> {
        self.enabled
    }
}

/// The daemon, as its tables and messages name it.
const DAEMON: Daemon = Daemon {
    name: "registrar",
    what: "the registrar",
    default_on: None,
};

impl Ctx<'_> {
    /// One registrar table. `top`: `[registrar]` (may have `on` and `binary`, not `enabled`).
    /// False in the second value when anything is wrong (reported).
    fn registrar_layer(
        &mut self,
        key: &KeyPath,
        r: &raw::Registrar,
        top: bool,
    ) -> (RegistrarLayer, bool) {
        let mut ok = self.helper_scope(
            key,
            "registrar",
            top,
            [
                ("on", r.on.is_some()),
                ("binary", r.binary.is_some()),
                ("enabled", r.enabled.is_some()),
            ],
            "mode, host_ip, network, networks, explicit, resync, drain, docker_socket",
        );
        let mut check = |given: bool, got: bool| {
            if given && !got {
                ok = false;
            }
        };
        let mode = self.choice(
            &key.k("mode"),
            &r.mode,
            &[
                ("published", RegistrarMode::Published),
                ("internal", RegistrarMode::Internal),
            ],
        );
        check(r.mode.is_some(), mode.is_some());
        let host_ip = self.string(&key.k("host_ip"), &r.host_ip).and_then(|s| {
            if HOST_IP_FORMS.contains(&s.as_str()) || s.parse::<IpAddr>().is_ok() {
                Some(s)
            } else {
                let v = r.host_ip.clone()?;
                self.bad(
                    &key.k("host_ip"),
                    &v,
                    format!(
                        "expected an IP address, or one of {} (filled in per host)",
                        quoted_list(HOST_IP_FORMS)
                    ),
                );
                None
            }
        });
        check(r.host_ip.is_some(), host_ip.is_some());
        let network = self.string(&key.k("network"), &r.network).and_then(|s| {
            if is_network_name(&s) {
                Some(s)
            } else {
                let v = r.network.clone()?;
                self.bad(
                    &key.k("network"),
                    &v,
                    "expected a Docker network name: letters, digits, \"_\", \".\" and \"-\", \
                     starting with a letter or digit",
                );
                None
            }
        });
        check(r.network.is_some(), network.is_some());
        let networks = self.list(
            &key.k("networks"),
            &r.networks,
            "[\"apps\"]",
            |s| {
                if is_network_name(s) {
                    Ok(s.to_owned())
                } else {
                    Err(
                        "expected a Docker network name: letters, digits, \"_\", \".\" and \"-\", \
                         starting with a letter or digit"
                            .into(),
                    )
                }
            },
            |a, b| a == b,
        );
        check(r.networks.is_some(), networks.is_some());
        let explicit = self.boolean(&key.k("explicit"), &r.explicit);
        check(r.explicit.is_some(), explicit.is_some());
        let enabled = self.boolean(&key.k("enabled"), &r.enabled);
        check(r.enabled.is_some(), enabled.is_some());
        let resync = self
            .duration(&key.k("resync"), &r.resync, true)
            .and_then(|s| {
                if go_duration_nanos(&s).is_some_and(|n| n >= 1e9) {
                    Some(s)
                } else {
                    let v = r.resync.clone()?;
                    self.bad(
                        &key.k("resync"),
                        &v,
                        "expected at least 1s (the registrar's shortest resync period)",
                    );
                    None
                }
            });
        check(r.resync.is_some(), resync.is_some());
        let drain = self.duration(&key.k("drain"), &r.drain, false);
        check(r.drain.is_some(), drain.is_some());
        let docker_socket = self
            .remote_path(&key.k("docker_socket"), &r.docker_socket)
            .map(|(p, _)| p);
        check(r.docker_socket.is_some(), docker_socket.is_some());
        (
            RegistrarLayer {
                mode,
                host_ip,
                network,
                networks,
                explicit,
                resync,
                drain,
                docker_socket,
                enabled,
            },
            ok,
        )
    }

    /// Validate every registrar table and give each host its registrar (when `hosts` is
    /// known). Returns `[registrar] binary` when given and whether all is well (problems are
    /// reported).
    pub(super) fn registrar(
        &mut self,
        tables: Tables<raw::Registrar>,
        host_names: &[String],
        hosts: Option<&mut Vec<Host>>,
    ) -> (Option<GivenBinary>, bool) {
        self.helper_place(
            DAEMON,
            &tables,
            host_names,
            hosts,
            |cx, key, r, top| cx.registrar_layer(key, r, top),
            |_, layers, host| {
                host.registrar = Some(resolve(&layers));
                true
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::test_support::*;
    use crate::model::{RegistrarMode, RegistrarSpec};

    /// `with_client` (c1 tagged web, line 5), a `[registrar]` table from line 13.
    fn reg(table: &str) -> String {
        with_client(&format!("[registrar]\nbinary = \"dist/consul\"\n{table}"))
    }

    #[test]
    fn on_selects_the_hosts_and_every_default_applies() {
        let c = ok(&reg("on = \"tag:web\"\n"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.registrar_binary, Some(fixtures().join("dist/consul")));
        let with: Vec<&str> = c
            .hosts
            .iter()
            .filter(|h| h.registrar.is_some())
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(with, ["c1"]);
        assert_eq!(
            c.host("c1").unwrap().registrar,
            Some(RegistrarSpec::defaults())
        );
        let d = RegistrarSpec::defaults();
        assert_eq!(d.mode, RegistrarMode::Published);
        assert_eq!(
            d.docker_socket,
            std::path::PathBuf::from("/var/run/docker.sock")
        );
        assert_eq!((d.resync.as_str(), d.drain.as_str()), ("30s", "0s"));
    }

    #[test]
    fn every_key_resolves_host_over_role_over_table() {
        let text = with_client(
            r#"[servers]
registrar = { mode = "internal", network = "apps", enabled = true }
[registrar]
on = "c1"
binary = "dist/consul"
mode = "published"
host_ip = "{{ address }}"
networks = ["apps", "web"]
explicit = true
resync = "1m30s"
drain = "5s"
docker_socket = "/run/docker.sock"
"#,
        )
        .replace(
            "{ name = \"s2\", address = \"10.0.0.2\", role = \"server\" }",
            "{ name = \"s2\", address = \"10.0.0.2\", role = \"server\", registrar = { enabled = false } }",
        )
        .replace(
            "{ name = \"s3\", address = \"10.0.0.3\", role = \"server\" }",
            "{ name = \"s3\", address = \"10.0.0.3\", role = \"server\", registrar = { resync = \"10s\", host_ip = \"10.9.9.9\" } }",
        );
        let c = ok(&text);
        let c1 = c.host("c1").unwrap().registrar.clone().unwrap();
        assert_eq!(
            c1,
            RegistrarSpec {
                mode: RegistrarMode::Published,
                host_ip: Some("{{ address }}".into()),
                network: None,
                networks: vec!["apps".into(), "web".into()],
                explicit: true,
                resync: "1m30s".into(),
                drain: "5s".into(),
                docker_socket: "/run/docker.sock".into(),
            }
        );
        // [servers] enables every server; s2 opts out.
        let s1 = c.host("s1").unwrap().registrar.clone().unwrap();
        assert_eq!(s1.mode, RegistrarMode::Internal);
        assert_eq!(s1.network.as_deref(), Some("apps"));
        assert_eq!(s1.networks, ["apps", "web"]);
        assert_eq!(c.host("s2").unwrap().registrar, None);
        let s3 = c.host("s3").unwrap().registrar.clone().unwrap();
        assert_eq!(s3.resync, "10s");
        assert_eq!(s3.host_ip.as_deref(), Some("10.9.9.9"));
        assert_eq!(s3.mode, RegistrarMode::Internal);
    }

    #[test]
    fn no_registrar_anywhere_needs_no_binary() {
        let c = ok(&doc(""));
        assert_eq!(c.registrar_binary, None);
        assert!(c.hosts.iter().all(|h| h.registrar.is_none()));
        // A table whose `on` selects nobody (only a warning) needs none either.
        let c = ok(&doc("[registrar]\non = \"tag:nope\"\n"));
        assert_eq!(c.registrar_binary, None);
        assert!(
            c.warnings[0].contains("the registrar is on no host"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn a_missing_binary_names_the_key_and_how_to_build_it() {
        let d = only(
            &doc("[registrar]\non = \"s1\"\nbinary = \"dist/nope\"\n"),
            "registrar.binary",
            14,
            "cargo build --release -p consulctl-host",
        );
        assert!(d.message.contains("dist/nope"), "{d}");
        // The default: next to the test binary, where there is none.
        let d = only(
            &doc("[registrar]\non = \"s1\"\n"),
            "registrar.binary",
            12,
            "next to the running consulctl",
        );
        assert!(d.message.contains("scripts/build-host-binary"), "{d}");
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "mode = \"bridge\"",
                "registrar.mode",
                "expected one of \"published\", \"internal\"",
            ),
            (
                "host_ip = \"{{ node_name }}\"",
                "registrar.host_ip",
                "expected an IP address, or one of",
            ),
            (
                "host_ip = \"docker1\"",
                "registrar.host_ip",
                "expected an IP address",
            ),
            ("host_ip = 5", "registrar.host_ip", "expected a string"),
            (
                "network = \"-x\"",
                "registrar.network",
                "expected a Docker network name",
            ),
            (
                "networks = \"apps\"",
                "registrar.networks",
                "expected an array of strings",
            ),
            (
                "networks = [\"a b\"]",
                "registrar.networks[0]",
                "expected a Docker network name",
            ),
            (
                "networks = [\"a\", \"a\"]",
                "registrar.networks[1]",
                "given twice",
            ),
            (
                "explicit = \"yes\"",
                "registrar.explicit",
                "expected true or false",
            ),
            (
                "resync = \"30\"",
                "registrar.resync",
                "expected a Go duration",
            ),
            ("resync = \"500ms\"", "registrar.resync", "at least 1s"),
            ("resync = \"0s\"", "registrar.resync", "above zero"),
            (
                "drain = \"soon\"",
                "registrar.drain",
                "expected a Go duration",
            ),
            (
                "docker_socket = \"run/docker.sock\"",
                "registrar.docker_socket",
                "absolute path",
            ),
            (
                "enabled = true",
                "registrar.enabled",
                "only in a role table or on a host",
            ),
            ("colour = 1", "registrar.colour", "unknown key"),
        ];
        for (line, key, needle) in cases {
            let text = doc(&format!(
                "[registrar]\non = \"s1\"\nbinary = \"dist/consul\"\n{line}\n"
            ));
            only(&text, key, 15, needle);
        }
        // `on`: missing, empty, an unknown host.
        only(
            &doc("[registrar]\nbinary = \"dist/consul\"\n"),
            "registrar.on",
            12,
            "missing required key",
        );
        only(
            &doc("[registrar]\non = \"\"\n"),
            "registrar.on",
            13,
            "empty",
        );
        only(
            &doc("[registrar]\non = \"s1,db9\"\n"),
            "registrar.on",
            13,
            "no host is named `db9`",
        );
        // `on` and `binary` only at the top, `enabled` must be a boolean.
        only(
            &doc("[servers]\nregistrar = { on = \"s1\" }\n"),
            "servers.registrar.on",
            13,
            "only in the top-level [registrar] table",
        );
        only(
            &(s2_with("registrar = { binary = \"dist/consul\" }") + HEAD),
            "hosts[1].registrar.binary",
            3,
            "only in the top-level [registrar] table",
        );
        only(
            &(s2_with("registrar = { enabled = 1 }") + HEAD),
            "hosts[1].registrar.enabled",
            3,
            "expected true or false",
        );
        only(
            &(s2_with("registrar = { mode = \"host\" }") + HEAD),
            "hosts[1].registrar.mode",
            3,
            "expected one of",
        );
    }
}
