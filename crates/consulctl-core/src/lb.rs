//! The LB sync daemon on a host (`consulctl-host lb`, `[lb]` in the inventory), rendered from
//! the model and the host's facts (pure), the way the Docker registrar is
//! ([`crate::registrar::render_daemon`]): its config, its ACL token file (`acl = true`), its
//! systemd unit or supervisord program, the upload of `consulctl-host` (once per host, shared
//! with the registrar), a restart when any of those changed or it does not run; and before it
//! the LB's own server (nginx or HAProxy) made to run under the host's init system.
//!
//! ```text
//! /etc/consulctl/lb.toml                          config (the contract's format)
//! /etc/consulctl/lb.token                         ACL token (0600, secret), acl = true only
//! /etc/systemd/system/consulctl-lb.service        systemd hosts (nginx/haproxy: enable --now)
//! <supervisord include dir>/consulctl-lb.{conf,ini}   supervisord hosts, and the programs
//! <supervisord include dir>/nginx.{conf,ini}          nginx (`daemon off;`) or haproxy (-W)
//! ```

use std::net::IpAddr;

use anyhow::Context as _;

use crate::action::Action;
use crate::facts::Facts;
pub use crate::managed_paths::{lb_server, LB_CONFIG, LB_SERVICE, LB_TOKEN, LB_UNIT};
use crate::managed_paths::{program_path, HOST_BINARY, MANAGED_MARK};
use crate::model::{Cluster, Host, LbKind, LbSpec};
use crate::registrar::{self, Daemon, Registrar};

/// The daemon's check on its agent (CheckID).
pub const LB_CHECK: &str = "consulctl-lb";
/// The Consul KV prefix the daemons publish what they serve under (`consulctl/lb/<node>`).
pub const KV_PREFIX: &str = "consulctl/lb/";

/// The command line the unit and the program run.
pub fn command() -> String {
    format!("{HOST_BINARY} lb --config {LB_CONFIG}")
}

/// The LB daemon as a [`Daemon`] (`kind`: the server it starts after).
pub fn daemon(kind: LbKind) -> Daemon<'static> {
    Daemon {
        service: LB_SERVICE,
        unit: LB_UNIT,
        config: LB_CONFIG,
        token: LB_TOKEN,
        what: "the LB sync daemon",
        command: command(),
        comment:
            "consulctl's LB sync daemon: keeps this host's load balancer equal to Consul's catalog.",
        description: "consulctl LB sync (Consul's catalog -> the local load balancer)",
        after: match kind {
            LbKind::Nginx => &["nginx.service"],
            LbKind::Haproxy => &["haproxy.service"],
            LbKind::None => &[],
        },
    }
}

fn value<T: serde::Serialize>(v: T) -> toml::Value {
    toml::Value::try_from(v).expect("plain values serialize")
}

fn argv(words: &[String]) -> toml::Value {
    toml::Value::Array(words.iter().map(value).collect())
}

fn path(p: &std::path::Path) -> toml::Value {
    value(p.display().to_string())
}

/// The daemon's config file (`/etc/consulctl/lb.toml`, what `consulctl-host lb` reads):
/// every setting resolved, the templates' text inlined.
pub fn config_text(host: &Host, spec: &LbSpec) -> String {
    let mut t = toml::Table::new();
    t.insert("node".into(), value(&host.name));
    t.insert("kind".into(), value(spec.kind.as_str()));
    t.insert("tag".into(), value(&spec.tag));
    t.insert("status_port".into(), value(spec.status_port));
    t.insert("min_wait".into(), value(&spec.min_wait));
    t.insert("max_wait".into(), value(&spec.max_wait));
    t.insert("publish".into(), value(spec.publish));
    let b = &spec.balance;
    let mut balance = toml::Table::new();
    balance.insert("method".into(), value(&b.method));
    balance.insert("max_fails".into(), value(b.max_fails));
    balance.insert("fail_timeout".into(), value(&b.fail_timeout));
    balance.insert("weight".into(), value(b.weight));
    balance.insert("keepalive".into(), value(b.keepalive));
    balance.insert("maxconn".into(), value(b.maxconn));
    balance.insert("retries".into(), value(b.retries));
    t.insert("balance".into(), toml::Value::Table(balance));
    let ports: toml::Table = spec
        .ports
        .iter()
        .map(|(name, port)| (name.clone(), value(port)))
        .collect();
    t.insert("ports".into(), toml::Value::Table(ports));
    let n = &spec.nginx;
    let mut nginx = toml::Table::new();
    nginx.insert("http_conf".into(), path(&n.http_conf));
    nginx.insert("stream_conf".into(), path(&n.stream_conf));
    nginx.insert("stream_block".into(), value(n.stream_block));
    nginx.insert("test".into(), argv(&n.test));
    nginx.insert("reload".into(), argv(&n.reload));
    t.insert("nginx".into(), toml::Value::Table(nginx));
    let h = &spec.haproxy;
    let mut haproxy = toml::Table::new();
    haproxy.insert("config".into(), path(&h.config));
    haproxy.insert("test".into(), argv(&h.test));
    haproxy.insert("reload".into(), argv(&h.reload));
    t.insert("haproxy".into(), toml::Value::Table(haproxy));
    if !spec.templates.is_empty() {
        let templates = spec
            .templates
            .iter()
            .map(|tpl| {
                let mut e = toml::Table::new();
                e.insert("name".into(), value(&tpl.name));
                e.insert("text".into(), value(&tpl.text));
                e.insert("destination".into(), path(&tpl.destination));
                if let Some(v) = &tpl.validate {
                    e.insert("validate".into(), argv(v));
                }
                if let Some(r) = &tpl.reload {
                    e.insert("reload".into(), argv(r));
                }
                toml::Value::Table(e)
            })
            .collect();
        t.insert("template".into(), toml::Value::Array(templates));
    }
    format!(
        "{MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
         # The LB sync daemon of {} (from the inventory's [lb]), read by `consulctl-host lb`.\n{}",
        host.name,
        toml::to_string(&t).expect("a TOML table serializes")
    )
}

/// The supervisord program that runs the LB's server in the foreground (None: kind none).
pub fn server_program_text(spec: &LbSpec) -> Option<String> {
    let (name, command, stop) = match spec.kind {
        LbKind::Nginx => (
            "nginx",
            "/usr/sbin/nginx -g \"daemon off;\"".to_string(),
            "QUIT",
        ),
        LbKind::Haproxy => (
            "haproxy",
            format!(
                "/usr/sbin/haproxy -W -db -f {} -p {}",
                spec.haproxy.config.display(),
                crate::model::LbHaproxy::PIDFILE
            ),
            "USR1",
        ),
        LbKind::None => return None,
    };
    Some(format!(
        "; {MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
         ; The load balancer the LB sync daemon of consulctl keeps equal to Consul's catalog.\n\
         [program:{name}]\n\
         command={command}\n\
         autostart=true\n\
         autorestart=true\n\
         startsecs=2\n\
         startretries=1000\n\
         stopsignal={stop}\n\
         stopwaitsecs=15\n\
         redirect_stderr=true\n"
    ))
}

/// Render the LB daemon of one host. `binary_sha256`: sha256 of the `consulctl-host`
/// consulctl installs; needed when the host has an LB daemon.
pub fn render(
    cluster: &Cluster,
    host: &Host,
    facts: &Facts,
    bind_addr: IpAddr,
    binary_sha256: Option<&str>,
) -> anyhow::Result<Registrar> {
    let Some(spec) = &host.lb else {
        return Ok(Registrar::default());
    };
    let supervisor = registrar::under_supervisord(host, facts);
    // The server first: its program file, and a start when it does not run.
    let mut server = Registrar::default();
    if let Some(name) = lb_server(spec.kind) {
        let mut changed = false;
        if supervisor {
            let dir = facts.supervisor_include_dir.clone().context(
                "the load balancer on a host without systemd runs under supervisord, which is \
                 not installed here",
            )?;
            let text = server_program_text(spec).expect("a server");
            server.files.push(registrar::helper_file(
                program_path(&dir, name),
                text,
                0o644,
                false,
            ));
            changed = registrar::any_changed(&server.files, facts);
        }
        if changed || !registrar::runs(facts, name, name, supervisor) {
            server.actions.push(Action::StartHelper {
                service: name.into(),
                supervisor,
            });
        }
    }
    let mut r = registrar::render_daemon(
        cluster,
        host,
        facts,
        bind_addr,
        &daemon(spec.kind),
        config_text(host, spec),
        cluster.acl_tokens.lbs.get(&host.name),
        binary_sha256,
    )?;
    // A new server program, or a server just started: the daemon reloads a running one.
    r.files.extend(server.files);
    let restart_at = r
        .actions
        .iter()
        .position(|a| matches!(a, Action::RestartHelper { .. }))
        .unwrap_or(r.actions.len());
    for (i, a) in server.actions.into_iter().enumerate() {
        r.actions.insert(restart_at + i, a);
    }
    Ok(r)
}

/// Every daemon of `consulctl-host` on one host: the registrar and the LB daemon, with one
/// upload of the binary between them.
pub fn render_daemons(
    cluster: &Cluster,
    host: &Host,
    facts: &Facts,
    bind_addr: IpAddr,
    binary_sha256: Option<&str>,
) -> anyhow::Result<Registrar> {
    let mut all = registrar::render(cluster, host, facts, bind_addr, binary_sha256)
        .context("the Docker registrar")?;
    let lb =
        render(cluster, host, facts, bind_addr, binary_sha256).context("the LB sync daemon")?;
    all.files.extend(lb.files);
    let uploads = all
        .actions
        .iter()
        .any(|a| matches!(a, Action::InstallHostBinary { .. }));
    all.actions.extend(
        lb.actions
            .into_iter()
            .filter(|a| !(uploads && matches!(a, Action::InstallHostBinary { .. }))),
    );
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BindAddr, Init, RegistrarSpec, Role};
    use crate::registrar::test_support::{assert_no_writes, facts, in_place, show, SHA};

    fn host(init: Init) -> Host {
        let mut h = Host::minimal(
            "lb1",
            "10.0.0.41",
            Role::Client,
            init,
            BindAddr::Fixed("10.0.0.41".parse().unwrap()),
        );
        h.lb = Some(LbSpec::defaults(init));
        h
    }

    fn bind() -> IpAddr {
        "10.0.0.41".parse().unwrap()
    }

    fn cluster(acl: bool) -> Cluster {
        crate::registrar::test_support::cluster(acl, false, "lb1")
    }

    /// Facts of a host where `r` is in place, and the daemon and the server run.
    fn converged(r: &Registrar, systemd: bool) -> Facts {
        let mut f = in_place(r, systemd);
        for s in [LB_SERVICE, "nginx", crate::managed_paths::REGISTRAR_SERVICE] {
            if systemd {
                f.units
                    .insert(s.into(), ("active".into(), "enabled".into()));
            } else {
                f.programs.insert(s.into(), true);
            }
        }
        f
    }

    /// A spec with a template and ports, to show every part of the config.
    fn full(init: Init) -> LbSpec {
        let mut spec = LbSpec::defaults(init);
        spec.ports.insert("web".into(), 8080);
        spec.templates.push(crate::model::LbTemplate {
            name: "status".into(),
            source: "/inv/lb/status.conf.tera".into(),
            text: "server {\n  listen 8081; # \"{{ node }}\"\n}\n".into(),
            destination: "/etc/nginx/conf.d/status.conf".into(),
            validate: Some(vec![
                "nginx".into(),
                "-t".into(),
                "-c".into(),
                "{staged}".into(),
            ]),
            reload: None,
        });
        spec
    }

    /// The render of `plain` without ACLs, and of the defaults with ACLs, on a host with
    /// `init` whose server is not running yet.
    fn goldens(init: Init, plain: LbSpec) -> (Registrar, Registrar) {
        let systemd = init == Init::Systemd;
        let mut h = host(init);
        h.lb = Some(plain);
        let p = render(&cluster(false), &h, &facts(systemd), bind(), Some(SHA)).unwrap();
        let a = render(
            &cluster(true),
            &host(init),
            &facts(systemd),
            bind(),
            Some(SHA),
        )
        .unwrap();
        (p, a)
    }

    #[test]
    fn golden_systemd_plain_and_acl() {
        let (plain, acl) = goldens(Init::Systemd, full(Init::Systemd));
        insta::assert_snapshot!("lb_systemd_plain", show(&plain));
        insta::assert_snapshot!("lb_systemd_acl", show(&acl));
        let token = acl
            .files
            .iter()
            .find(|f| f.path.to_str() == Some(LB_TOKEN))
            .unwrap();
        assert_eq!(token.content, "lb-secret-of-lb1\n");
        assert!(token.secret);
        assert_eq!(token.mode, 0o600);
    }

    #[test]
    fn golden_supervisord_plain_and_acl() {
        let mut haproxy = LbSpec::defaults(Init::Supervisord);
        haproxy.kind = LbKind::Haproxy;
        let (plain, acl) = goldens(Init::Supervisord, haproxy);
        insta::assert_snapshot!("lb_supervisord_plain", show(&plain));
        insta::assert_snapshot!("lb_supervisord_acl", show(&acl));
    }

    #[test]
    fn the_config_is_the_contracts_format() {
        let text = config_text(&host(Init::Systemd), &full(Init::Systemd));
        assert!(text.starts_with(MANAGED_MARK));
        let t: toml::Table = text.parse().unwrap();
        let keys: Vec<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "node",
                "kind",
                "tag",
                "status_port",
                "min_wait",
                "max_wait",
                "publish",
                "balance",
                "ports",
                "nginx",
                "haproxy",
                "template"
            ]
        );
        assert_eq!(t["node"].as_str(), Some("lb1"));
        assert_eq!(t["status_port"].as_integer(), Some(18900));
        assert_eq!(t["ports"]["web"].as_integer(), Some(8080));
        assert_eq!(t["balance"]["fail_timeout"].as_str(), Some("60s"));
        assert_eq!(t["nginx"]["reload"][0].as_str(), Some("systemctl"));
        let tpl = &t["template"][0];
        // The template's text survives TOML quoting exactly.
        assert_eq!(
            tpl["text"].as_str(),
            Some("server {\n  listen 8081; # \"{{ node }}\"\n}\n")
        );
        assert_eq!(tpl["validate"][3].as_str(), Some("{staged}"));
        assert!(tpl.get("reload").is_none());
        assert!(
            tpl.get("source").is_none(),
            "the host gets the text, not the path"
        );
    }

    #[test]
    fn a_second_apply_changes_nothing() {
        for systemd in [true, false] {
            let c = cluster(true);
            let h = host(if systemd {
                Init::Systemd
            } else {
                Init::Supervisord
            });
            let first = render(&c, &h, &facts(systemd), bind(), Some(SHA)).unwrap();
            assert!(!first.actions.is_empty());
            let f = converged(&first, systemd);
            let r = render(&c, &h, &f, bind(), Some(SHA)).unwrap();
            assert!(r.actions.is_empty(), "{systemd}: {:?}", r.actions);
            assert_no_writes(&h, &f, &r.files);
        }
    }

    #[test]
    fn the_server_is_started_before_the_daemon_and_only_when_it_does_not_run() {
        let c = cluster(false);
        let h = host(Init::Systemd);
        let first = render(&c, &h, &facts(true), bind(), Some(SHA)).unwrap();
        let names: Vec<String> = first.actions.iter().map(|a| a.to_string()).collect();
        assert!(
            matches!(first.actions[0], Action::InstallHostBinary { .. }),
            "{names:?}"
        );
        assert_eq!(
            first.actions[1..],
            [
                Action::StartHelper {
                    service: "nginx".into(),
                    supervisor: false
                },
                Action::RestartHelper {
                    service: LB_SERVICE.into(),
                    supervisor: false
                },
            ]
        );
        // The daemon runs, nginx is stopped: only nginx is started.
        let mut f = converged(&first, true);
        f.units
            .insert("nginx".into(), ("inactive".into(), "enabled".into()));
        assert_eq!(
            render(&c, &h, &f, bind(), Some(SHA)).unwrap().actions,
            [Action::StartHelper {
                service: "nginx".into(),
                supervisor: false
            }]
        );
        // A changed setting restarts the daemon, never the server.
        let f = converged(&first, true);
        let mut h2 = h.clone();
        h2.lb.as_mut().unwrap().balance.retries = 5;
        assert_eq!(
            render(&c, &h2, &f, bind(), Some(SHA)).unwrap().actions,
            [Action::RestartHelper {
                service: LB_SERVICE.into(),
                supervisor: false
            }]
        );
        // Kind none: no server at all.
        let mut h3 = h.clone();
        h3.lb.as_mut().unwrap().kind = LbKind::None;
        let r = render(&c, &h3, &facts(true), bind(), Some(SHA)).unwrap();
        assert!(!r
            .actions
            .iter()
            .any(|a| matches!(a, Action::StartHelper { .. })));
    }

    #[test]
    fn with_the_registrar_the_binary_is_uploaded_once_and_both_restart() {
        let c = cluster(true);
        let mut h = host(Init::Systemd);
        h.registrar = Some(RegistrarSpec::defaults());
        let r = render_daemons(&c, &h, &facts(true), bind(), Some(SHA)).unwrap();
        let uploads = r
            .actions
            .iter()
            .filter(|a| matches!(a, Action::InstallHostBinary { .. }))
            .count();
        assert_eq!(uploads, 1);
        let restarts: Vec<&str> = r
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::RestartHelper { service, .. } => Some(service.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            restarts,
            [crate::managed_paths::REGISTRAR_SERVICE, LB_SERVICE]
        );
        // A new binary restarts both, even though one action uploads it.
        let mut f = converged(&r, true);
        f.files
            .get_mut(std::path::Path::new(HOST_BINARY))
            .unwrap()
            .sha256 = "old".into();
        let again = render_daemons(&c, &h, &f, bind(), Some(SHA)).unwrap();
        assert_eq!(again.actions.len(), 3, "{:?}", again.actions);
        let f = converged(&r, true);
        assert!(render_daemons(&c, &h, &f, bind(), Some(SHA))
            .unwrap()
            .actions
            .is_empty());
    }

    #[test]
    fn acl_without_a_token_is_an_error_and_no_lb_no_files() {
        let mut c = cluster(true);
        c.acl_tokens.lbs.clear();
        let e = render(&c, &host(Init::Systemd), &facts(true), bind(), Some(SHA)).unwrap_err();
        assert!(
            format!("{e:#}").contains("the LB sync daemon of lb1"),
            "{e:#}"
        );
        let mut h = host(Init::Systemd);
        h.lb = None;
        assert_eq!(
            render(&c, &h, &facts(true), bind(), None).unwrap(),
            Registrar::default()
        );
    }
}
