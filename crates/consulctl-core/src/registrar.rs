//! The Docker registrar on a host (`consulctl-host registrar`, `[registrar]` in the
//! inventory), rendered from the model and the host's facts (pure): its config file, its ACL
//! token file (`acl = true`), its systemd unit or supervisord program (by the host's init, like
//! the agent), the upload of `consulctl-host` when the host's copy differs, and a restart when
//! any of those changed or it does not run.
//!
//! ```text
//! /usr/local/bin/consulctl-host                  the binary (sha256 from facts: file:...)
//! /etc/consulctl/registrar.toml                  config (node, docker, mode, host_ip, ...)
//! /etc/consulctl/registrar.token                 ACL token (0600, secret), acl = true only
//! /etc/systemd/system/consulctl-registrar.service    systemd hosts
//! <supervisord include dir>/consulctl-registrar.{conf,ini}   supervisord hosts
//! ```
//!
//! The registrar reaches the local agent as Consul's CLI does: `CONSUL_HTTP_ADDR` (the address
//! consulctl's own scripts use, [`crate::view::http_addr`]), `CONSUL_CACERT` when that is
//! HTTPS, `CONSUL_HTTP_TOKEN_FILE` with ACLs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::action::Action;
use crate::desired::{DesiredFile, FileKind};
use crate::facts::Facts;
pub use crate::managed_paths::{
    program_path, HOST_BINARY, HOST_BINARY_PROCESS, MANAGED_MARK, REGISTRAR_CONFIG,
    REGISTRAR_SERVICE, REGISTRAR_TOKEN, REGISTRAR_UNIT,
};
use crate::model::{Cluster, Host, Init, RegistrarMode, RegistrarSpec};

/// What the registrar wants on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registrar {
    pub files: Vec<DesiredFile>,
    /// The binary upload (first) and the restart (last), when needed.
    pub actions: Vec<Action>,
}

/// The command line the unit and the program run.
pub fn command() -> String {
    format!("{HOST_BINARY} registrar --config {REGISTRAR_CONFIG}")
}

/// Does the host's agent run script checks (`enable_local_script_checks` as the agent config
/// has it: consulctl turns it on for hosts with a script check, the extra config may set it)?
pub fn script_checks(host: &Host) -> bool {
    let get = |k: &str| host.extra_config.get(k).and_then(|v| v.as_bool());
    match get("enable_local_script_checks") {
        Some(b) => b || get("enable_script_checks") == Some(true),
        None => {
            host.services.iter().any(|s| s.has_script_check())
                || get("enable_script_checks") == Some(true)
        }
    }
}

/// `s` as a TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The registrar's config file (`consulctl-host`'s `registrar/config.rs` reads it).
pub fn config_text(host: &Host, spec: &RegistrarSpec, bind_addr: IpAddr) -> anyhow::Result<String> {
    let mut t = format!(
        "{MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
         # The Docker registrar of {} (from the inventory's [registrar]), read by\n\
         # `consulctl-host registrar`.\n",
        host.name
    );
    t.push_str(&format!("node = {}\n", q(&host.name)));
    t.push_str(&format!(
        "docker = {}\n",
        q(&format!("unix://{}", spec.docker_socket.display()))
    ));
    t.push_str(&format!("mode = {}\n", q(spec.mode.as_str())));
    match spec.mode {
        RegistrarMode::Published => {
            let ip = crate::plumbing::fill(
                spec.host_ip.as_deref().unwrap_or("{{ bind_addr }}"),
                host,
                bind_addr,
            );
            if ip.parse::<IpAddr>().is_err() {
                bail!(
                    "registrar.host_ip = {:?} gives {ip:?} on this host, not an IP address (the \
                     registrar registers addresses); set host_ip to an IP address or \
                     \"{{{{ bind_addr }}}}\"",
                    spec.host_ip.as_deref().unwrap_or_default()
                );
            }
            t.push_str(&format!("host_ip = {}\n", q(&ip)));
        }
        RegistrarMode::Internal => {
            if let Some(n) = &spec.network {
                t.push_str(&format!("network = {}\n", q(n)));
            }
        }
    }
    let networks: Vec<String> = spec.networks.iter().map(|n| q(n)).collect();
    t.push_str(&format!("networks = [{}]\n", networks.join(", ")));
    t.push_str(&format!("explicit = {}\n", spec.explicit));
    t.push_str(&format!("script_checks = {}\n", script_checks(host)));
    t.push_str(&format!("resync = {}\n", q(&spec.resync)));
    t.push_str(&format!("drain = {}\n", q(&spec.drain)));
    Ok(t)
}

/// The environment a daemon of `consulctl-host` reaches the agent with (name, value), in this
/// order; `token_file`: its ACL token file (used with ACLs only).
pub fn environment(
    cluster: &Cluster,
    host: &Host,
    bind_addr: IpAddr,
    token_file: &str,
) -> Vec<(String, String)> {
    let addr = crate::view::http_addr(host, bind_addr);
    let mut env = vec![("CONSUL_HTTP_ADDR".to_string(), addr.clone())];
    if addr.starts_with("https://") {
        env.push((
            "CONSUL_CACERT".into(),
            crate::agent_config::tls_dir(host)
                .join(crate::agent_config::TLS_CA_FILE)
                .display()
                .to_string(),
        ));
    }
    if cluster.acl {
        env.push(("CONSUL_HTTP_TOKEN_FILE".into(), token_file.into()));
    }
    env
}

/// One daemon of `consulctl-host` as its unit, program, token and restart see it.
#[derive(Debug, Clone)]
pub struct Daemon<'a> {
    /// The unit's and the program's name (`consulctl-registrar`).
    pub service: &'a str,
    /// Its systemd unit file.
    pub unit: &'a str,
    pub config: &'a str,
    pub token: &'a str,
    /// What it is, for the messages (`the Docker registrar`).
    pub what: &'a str,
    /// The command line the unit and the program run.
    pub command: String,
    /// The comment line under the mark.
    pub comment: &'a str,
    /// The unit's Description.
    pub description: &'a str,
    /// Units it starts after, besides the network and the agent's.
    pub after: &'a [&'a str],
}

/// The registrar as a [`Daemon`].
pub fn daemon() -> Daemon<'static> {
    Daemon {
        service: REGISTRAR_SERVICE,
        unit: REGISTRAR_UNIT,
        config: REGISTRAR_CONFIG,
        token: REGISTRAR_TOKEN,
        what: "the registrar",
        command: command(),
        comment:
            "consulctl's Docker registrar: registers this host's containers with the local agent.",
        description: "consulctl registrar (Docker containers -> the local Consul agent)",
        after: &["docker.service"],
    }
}

/// The systemd unit: after (and wanting) the agent's unit, restarted whenever it stops.
pub fn unit_text(host: &Host, d: &Daemon, env: &[(String, String)]) -> String {
    let agent_unit = host
        .paths
        .systemd_unit
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "consul.service".into());
    let mut after = vec!["network-online.target"];
    after.extend(d.after.iter().copied());
    after.push(&agent_unit);
    let mut t = format!(
        "{MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
         # {}\n\
         [Unit]\n\
         Description={}\n\
         After={}\n\
         Wants=network-online.target {agent_unit}\n\
         \n\
         [Service]\n\
         Type=simple\n",
        d.comment,
        d.description,
        after.join(" ")
    );
    for (k, v) in env {
        t.push_str(&format!("Environment={k}={v}\n"));
    }
    t.push_str(&format!(
        "ExecStart={}\n\
         Restart=always\n\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        d.command
    ));
    t
}

/// The supervisord program (hosts whose agent runs under supervisord).
pub fn program_text(d: &Daemon, env: &[(String, String)]) -> String {
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!(
        "; {MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
         ; {}\n\
         [program:{}]\n\
         command={}\n\
         environment={}\n\
         autostart=true\n\
         autorestart=true\n\
         startsecs=2\n\
         startretries=1000\n\
         stopsignal=TERM\n\
         stopwaitsecs=15\n\
         redirect_stderr=true\n",
        d.comment,
        d.service,
        d.command,
        env.join(",")
    )
}

/// Does the host run consulctl's daemons under supervisord (like its agent, or no systemd)?
pub fn under_supervisord(host: &Host, facts: &Facts) -> bool {
    host.init == Init::Supervisord || facts.pid1 != "systemd"
}

/// Is `service` running (and enabled, on systemd) as the facts saw it? supervisord: its
/// program is RUNNING (`program:` facts), or else a process of that name runs.
pub fn runs(facts: &Facts, service: &str, process: &str, supervisor: bool) -> bool {
    if supervisor {
        facts
            .programs
            .get(service)
            .or(facts.procs.get(process))
            .copied()
            .unwrap_or(false)
    } else {
        facts
            .units
            .get(service)
            .is_some_and(|(a, e)| a == "active" && e == "enabled")
    }
}

/// Does any of `files` differ from the host's copy (or is it missing)?
pub fn any_changed(files: &[DesiredFile], facts: &Facts) -> bool {
    files.iter().any(|f| {
        facts
            .files
            .get(&f.path)
            .map(|c| c.sha256 != f.sha256())
            .unwrap_or(true)
    })
}

/// Render one daemon of `consulctl-host` on a host: the binary upload when the host's copy
/// differs, its config (`config`), its token file (`token`, with ACLs), its unit or program,
/// and a restart when any of those changed or it does not run.
#[allow(clippy::too_many_arguments)] // the host's context, the daemon, and what it gets
pub fn render_daemon(
    cluster: &Cluster,
    host: &Host,
    facts: &Facts,
    bind_addr: IpAddr,
    d: &Daemon,
    config: String,
    token: Option<&crate::model::AgentToken>,
    binary_sha256: Option<&str>,
) -> anyhow::Result<Registrar> {
    let mut r = Registrar::default();
    let sha = binary_sha256.context("internal: no consulctl-host binary prepared")?;
    let current = facts
        .files
        .get(Path::new(HOST_BINARY))
        .map(|f| f.sha256.clone());
    let new_binary = current.as_deref() != Some(sha);
    if new_binary {
        r.actions.push(Action::InstallHostBinary {
            path: HOST_BINARY.into(),
            sha256: sha.to_string(),
            current,
        });
    }
    let env = environment(cluster, host, bind_addr, d.token);
    r.files
        .push(helper_file(d.config.into(), config, 0o644, false));
    if cluster.acl {
        let token = token.with_context(|| {
            format!(
                "no ACL token of {} of {} in the secrets file",
                d.what, host.name
            )
        })?;
        r.files.push(helper_file(
            d.token.into(),
            format!("{}\n", token.secret.expose()),
            0o600,
            true,
        ));
    }
    let supervisor = under_supervisord(host, facts);
    if supervisor {
        let dir = facts.supervisor_include_dir.clone().with_context(|| {
            format!(
                "{} on a host without systemd runs under supervisord, which is not \
                 installed here",
                d.what
            )
        })?;
        r.files.push(helper_file(
            program_path(&dir, d.service),
            program_text(d, &env),
            0o644,
            false,
        ));
    } else {
        r.files.push(helper_file(
            d.unit.into(),
            unit_text(host, d, &env),
            0o644,
            false,
        ));
    }
    let changed = new_binary || any_changed(&r.files, facts);
    if changed || !runs(facts, d.service, HOST_BINARY_PROCESS, supervisor) {
        r.actions.push(Action::RestartHelper {
            service: d.service.into(),
            supervisor,
        });
    }
    Ok(r)
}

/// Render the registrar of one host. `binary_sha256`: sha256 of the `consulctl-host` consulctl
/// installs (the inventory's `registrar.binary`); needed when the host has a registrar.
pub fn render(
    cluster: &Cluster,
    host: &Host,
    facts: &Facts,
    bind_addr: IpAddr,
    binary_sha256: Option<&str>,
) -> anyhow::Result<Registrar> {
    let Some(spec) = &host.registrar else {
        return Ok(Registrar::default());
    };
    render_daemon(
        cluster,
        host,
        facts,
        bind_addr,
        &daemon(),
        config_text(host, spec, bind_addr).context("registrar")?,
        cluster.acl_tokens.registrars.get(&host.name),
        binary_sha256,
    )
}

pub(crate) fn helper_file(path: PathBuf, content: String, mode: u32, secret: bool) -> DesiredFile {
    DesiredFile {
        path,
        content,
        mode,
        kind: FileKind::HelperConfig,
        secret,
        owner: None,
    }
}

/// What the tests of the daemons' renderers share (this module's and [`crate::lb`]'s).
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::facts::FileFact;
    use crate::model::{AgentToken, Secret};

    pub(crate) const SHA: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// A cluster whose secrets hold a registrar and an LB daemon token for `node`
    /// (`registrar-secret-of-<node>`, `lb-secret-of-<node>`).
    pub(crate) fn cluster(acl: bool, tls: bool, node: &str) -> Cluster {
        let mut acl_tokens = crate::model::AclTokens::default();
        for (table, what) in [
            (&mut acl_tokens.registrars, "registrar"),
            (&mut acl_tokens.lbs, "lb"),
        ] {
            table.insert(
                node.into(),
                AgentToken {
                    accessor: "11111111-2222-4333-8444-555555555555".into(),
                    secret: Secret::new(format!("{what}-secret-of-{node}")),
                },
            );
        }
        Cluster {
            inventory_path: "inv.toml".into(),
            name: "dc1".into(),
            datacenter: "dc1".into(),
            domain: "consul".into(),
            consul: crate::model::ConsulSpec {
                version: "1.8.7".parse().unwrap(),
                source: crate::model::InstallSource::Package {
                    manager: crate::model::PackageManager::Auto,
                },
            },
            encrypt: None,
            encrypt_auto: false,
            tls_auto: tls,
            acl,
            acl_tokens,
            registrar_binary: Some("/build/consulctl-host".into()),
            retry_join_wan: vec![],
            hosts: vec![],
            warnings: vec![],
        }
    }

    pub(crate) fn facts(systemd: bool) -> Facts {
        Facts {
            pid1: if systemd { "systemd" } else { "supervisord" }.into(),
            supervisor_include_dir: Some("/etc/supervisor/conf.d".into()),
            ..Default::default()
        }
    }

    /// Facts of a host where `r`'s files and the binary are in place (nothing runs yet).
    pub(crate) fn in_place(r: &Registrar, systemd: bool) -> Facts {
        let mut f = facts(systemd);
        let fact = |sha256: String, mode: u32| FileFact {
            sha256,
            mode: format!("{mode:o}"),
            owner: "root".into(),
            group: "root".into(),
        };
        f.files.insert(HOST_BINARY.into(), fact(SHA.into(), 0o755));
        for d in &r.files {
            f.files.insert(d.path.clone(), fact(d.sha256(), d.mode));
        }
        f
    }

    /// The planner writes none of `files` on a host with `facts`.
    pub(crate) fn assert_no_writes(host: &Host, facts: &Facts, files: &[DesiredFile]) {
        let plan = crate::plan::plan_host(&crate::plan::PlanInput {
            host,
            facts,
            desired: files,
            binary: &crate::plan::BinaryPlan::Package { commands: vec![] },
            version: "1.8.7".parse().unwrap(),
        });
        assert!(
            plan.actions
                .iter()
                .all(|a| !matches!(a, Action::WriteFile { .. })),
            "{:?}",
            plan.actions
        );
    }

    /// The files (secrets hidden) and actions, for the golden tests.
    pub(crate) fn show(r: &Registrar) -> String {
        let mut s = String::new();
        for f in &r.files {
            s.push_str(&format!(
                "==> {} (mode {:o}{})\n",
                f.path.display(),
                f.mode,
                if f.secret { ", secret" } else { "" }
            ));
            s.push_str(if f.secret { "<secret>\n" } else { &f.content });
        }
        for a in &r.actions {
            s.push_str(&format!("--> {a}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{assert_no_writes, facts, in_place, show, SHA};
    use super::*;
    use crate::model::{BindAddr, Role};
    use crate::plan::{add_plumbing, HostPlan};
    use crate::plumbing::Plumbing;

    fn host(init: Init) -> Host {
        let mut h = Host::minimal(
            "docker1",
            "10.0.0.31",
            Role::Client,
            init,
            BindAddr::Fixed("10.0.0.31".parse().unwrap()),
        );
        h.registrar = Some(RegistrarSpec::defaults());
        h
    }

    fn bind() -> IpAddr {
        "10.0.0.31".parse().unwrap()
    }

    fn cluster(acl: bool, tls: bool) -> Cluster {
        test_support::cluster(acl, tls, "docker1")
    }

    /// Facts of a host where `r` is in place and the registrar runs.
    fn converged(r: &Registrar, systemd: bool) -> Facts {
        let mut f = in_place(r, systemd);
        if systemd {
            f.units.insert(
                REGISTRAR_SERVICE.into(),
                ("active".into(), "enabled".into()),
            );
        } else {
            f.procs.insert(HOST_BINARY_PROCESS.into(), true);
        }
        f
    }

    #[test]
    fn golden_systemd_plain() {
        let r = render(
            &cluster(false, false),
            &host(Init::Systemd),
            &facts(true),
            bind(),
            Some(SHA),
        )
        .unwrap();
        insta::assert_snapshot!("systemd_plain", show(&r));
    }

    #[test]
    fn golden_systemd_acl_tls_server() {
        let mut h = host(Init::Systemd);
        h.role = Role::Server;
        h.api_tls = true;
        let mut spec = RegistrarSpec::defaults();
        spec.mode = RegistrarMode::Internal;
        spec.network = Some("apps".into());
        spec.networks = vec!["apps".into(), "web".into()];
        spec.explicit = true;
        spec.resync = "1m".into();
        spec.drain = "10s".into();
        spec.docker_socket = "/run/docker.sock".into();
        h.registrar = Some(spec);
        let r = render(&cluster(true, true), &h, &facts(true), bind(), Some(SHA)).unwrap();
        insta::assert_snapshot!("systemd_acl_tls", show(&r));
        let token = r
            .files
            .iter()
            .find(|f| f.path == Path::new(REGISTRAR_TOKEN))
            .unwrap();
        assert_eq!(token.content, "registrar-secret-of-docker1\n");
        assert!(token.secret);
        assert_eq!(token.mode, 0o600);
        assert_eq!(token.kind, FileKind::HelperConfig);
    }

    #[test]
    fn golden_supervisord_plain_and_acl() {
        let mut h = host(Init::Supervisord);
        h.registrar.as_mut().unwrap().host_ip = Some("{{ address }}".into());
        let r = render(&cluster(false, false), &h, &facts(false), bind(), Some(SHA)).unwrap();
        insta::assert_snapshot!("supervisord_plain", show(&r));
        let r = render(&cluster(true, false), &h, &facts(false), bind(), Some(SHA)).unwrap();
        insta::assert_snapshot!("supervisord_acl", show(&r));
        assert!(r.actions.contains(&Action::RestartHelper {
            service: REGISTRAR_SERVICE.into(),
            supervisor: true
        }));
    }

    #[test]
    fn the_config_is_what_consulctl_host_reads() {
        // The same keys and values consulctl-host's config.rs takes (deny_unknown_fields).
        let text = config_text(&host(Init::Systemd), &RegistrarSpec::defaults(), bind()).unwrap();
        let t: toml::Table = text.parse().unwrap();
        let keys: Vec<&str> = t.keys().map(String::as_str).collect();
        let allowed = [
            "node",
            "docker",
            "mode",
            "host_ip",
            "network",
            "networks",
            "explicit",
            "script_checks",
            "resync",
            "drain",
        ];
        assert!(keys.iter().all(|k| allowed.contains(k)), "{keys:?}");
        assert!(text.starts_with(MANAGED_MARK));
        assert_eq!(t["node"].as_str(), Some("docker1"));
        assert_eq!(t["host_ip"].as_str(), Some("10.0.0.31"));
        assert_eq!(t["docker"].as_str(), Some("unix:///var/run/docker.sock"));
    }

    #[test]
    fn a_host_ip_that_is_no_ip_on_the_host_is_an_error() {
        let mut h = host(Init::Systemd);
        h.address = "docker1.example".into();
        h.registrar.as_mut().unwrap().host_ip = Some("{{ address }}".into());
        let e = render(&cluster(false, false), &h, &facts(true), bind(), Some(SHA)).unwrap_err();
        assert!(format!("{e:#}").contains("not an IP address"), "{e:#}");
    }

    #[test]
    fn script_checks_follow_the_agent_config() {
        let mut h = host(Init::Systemd);
        assert!(!script_checks(&h));
        h.extra_config
            .insert("enable_local_script_checks".into(), true.into());
        assert!(script_checks(&h));
        h.extra_config
            .insert("enable_local_script_checks".into(), false.into());
        assert!(!script_checks(&h));
        h.extra_config
            .insert("enable_script_checks".into(), true.into());
        assert!(script_checks(&h));
    }

    #[test]
    fn plan_uploads_the_binary_when_its_sha_differs_and_restarts() {
        let c = cluster(true, false);
        let h = host(Init::Systemd);
        let first = render(&c, &h, &facts(true), bind(), Some(SHA)).unwrap();
        let mut f = converged(&first, true);
        f.files.get_mut(Path::new(HOST_BINARY)).unwrap().sha256 = "old".into();
        let r = render(&c, &h, &f, bind(), Some(SHA)).unwrap();
        assert_eq!(
            r.actions,
            vec![
                Action::InstallHostBinary {
                    path: HOST_BINARY.into(),
                    sha256: SHA.into(),
                    current: Some("old".into()),
                },
                Action::RestartHelper {
                    service: REGISTRAR_SERVICE.into(),
                    supervisor: false
                },
            ]
        );
    }

    #[test]
    fn nothing_to_do_when_everything_matches_and_it_runs() {
        for systemd in [true, false] {
            let c = cluster(true, false);
            let h = host(if systemd {
                Init::Systemd
            } else {
                Init::Supervisord
            });
            let first = render(&c, &h, &facts(systemd), bind(), Some(SHA)).unwrap();
            let f = converged(&first, systemd);
            let r = render(&c, &h, &f, bind(), Some(SHA)).unwrap();
            assert!(r.actions.is_empty(), "{:?}", r.actions);
            // And the planner writes no file either.
            assert_no_writes(&h, &f, &r.files);
        }
    }

    #[test]
    fn a_changed_config_or_a_stopped_registrar_restarts_it() {
        let c = cluster(false, false);
        let h = host(Init::Systemd);
        let first = render(&c, &h, &facts(true), bind(), Some(SHA)).unwrap();
        let restart = vec![Action::RestartHelper {
            service: REGISTRAR_SERVICE.into(),
            supervisor: false,
        }];
        // The config changed (drain).
        let f = converged(&first, true);
        let mut h2 = h.clone();
        h2.registrar.as_mut().unwrap().drain = "30s".into();
        let r = render(&c, &h2, &f, bind(), Some(SHA)).unwrap();
        assert_eq!(r.actions, restart);
        let plan = crate::plan::plan_host(&crate::plan::PlanInput {
            host: &h2,
            facts: &f,
            desired: &r.files,
            binary: &crate::plan::BinaryPlan::Package { commands: vec![] },
            version: "1.8.7".parse().unwrap(),
        });
        let written: Vec<&Path> = plan.file_writes().map(|f| f.path.as_path()).collect();
        assert_eq!(written, [Path::new(REGISTRAR_CONFIG)]);
        // Not running, or not enabled.
        let mut f = converged(&first, true);
        f.units.insert(
            REGISTRAR_SERVICE.into(),
            ("failed".into(), "enabled".into()),
        );
        assert_eq!(
            render(&c, &h, &f, bind(), Some(SHA)).unwrap().actions,
            restart
        );
        f.units.insert(
            REGISTRAR_SERVICE.into(),
            ("active".into(), "disabled".into()),
        );
        assert_eq!(
            render(&c, &h, &f, bind(), Some(SHA)).unwrap().actions,
            restart
        );
    }

    #[test]
    fn in_a_plan_the_upload_comes_first_and_the_restart_after_the_files() {
        let c = cluster(false, false);
        let h = host(Init::Systemd);
        let r = render(&c, &h, &facts(true), bind(), Some(SHA)).unwrap();
        let mut plan = HostPlan {
            actions: vec![Action::Start],
            ..Default::default()
        };
        add_plumbing(
            &mut plan,
            &Plumbing {
                actions: r.actions.clone(),
                ..Default::default()
            },
            false,
        );
        assert!(matches!(plan.actions[0], Action::InstallHostBinary { .. }));
        assert!(matches!(plan.actions[1], Action::RestartHelper { .. }));
        assert_eq!(plan.actions[2], Action::Start);
        assert_eq!(
            plan.host_binary_action().map(|a| a.to_string()).unwrap(),
            format!("install consulctl-host {HOST_BINARY} (sha256 bbbbbbbbbbbb)")
        );
    }

    #[test]
    fn no_registrar_no_files() {
        let mut h = host(Init::Systemd);
        h.registrar = None;
        let r = render(&cluster(true, true), &h, &facts(true), bind(), None).unwrap();
        assert_eq!(r, Registrar::default());
        // With one, the binary's sha256 is needed.
        assert!(render(
            &cluster(false, false),
            &host(Init::Systemd),
            &facts(true),
            bind(),
            None
        )
        .is_err());
    }
}
