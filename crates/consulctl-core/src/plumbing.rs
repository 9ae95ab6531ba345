//! Host plumbing around the agent, rendered per host from the model and the host's facts
//! (pure): service definitions (one managed HCL file each in the config dir), DNS
//! (resolv.conf, forwarding the cluster's domain to the local agent through dnsmasq or
//! systemd-resolved, NetworkManager told to keep out, `PEERDNS=no` on RHEL network scripts)
//! and host preparation (packages to install, system services to stop and disable).
//!
//! What it renders goes through the same plan/execute path as the agent's own files: staged,
//! `consul validate`d where Consul reads it, backed up before it is replaced, unchanged files
//! left alone. Changed service definitions are applied with `consul reload`, never a restart.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};

use crate::action::Action;
use crate::desired::{DesiredFile, FileKind};
use crate::facts::Facts;
pub use crate::managed_paths::{
    fact_queries, supervisor_program_path, DNSMASQ_CONF, DNSMASQ_PROGRAM, MANAGED_MARK, NM_DROPIN,
    RESOLVED_DROPIN, SERVICE_FILE_PREFIX,
};
use crate::model::{CheckKind, Cluster, DnsForward, DnsSpec, Host, Init, ServiceSpec};

const RESOLVED_STUB_DIR: &str = "/run/systemd/resolve/";

/// The host's DNS forwarder for the cluster's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarder {
    Dnsmasq,
    Resolved,
    None,
}

/// Everything plumbing wants on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plumbing {
    pub files: Vec<DesiredFile>,
    /// Managed service files that no inventory service wants any more (moved aside).
    pub remove: Vec<PathBuf>,
    /// Actions beyond files: packages, units to disable, DNS service restarts.
    pub actions: Vec<Action>,
    /// What was decided and why (printed by `plan`).
    pub notes: Vec<String>,
}

/// The agent's DNS port: `ports.dns` from the extra config (`-1`: the agent serves no DNS).
pub fn dns_port(host: &Host) -> Option<u16> {
    match host
        .extra_config
        .get("ports")
        .and_then(|p| p.get("dns"))
        .and_then(Value::as_i64)
    {
        None => Some(8600),
        Some(p) if p > 0 && p <= 65535 => Some(p as u16),
        Some(_) => None,
    }
}

/// Which forwarder a host gets, from the inventory and its facts.
pub fn forwarder(host: &Host, dns: &DnsSpec, facts: &Facts) -> anyhow::Result<Forwarder> {
    let resolved_manages = facts.links.get(&dns.resolv_conf).is_some_and(|t| {
        t.starts_with(RESOLVED_STUB_DIR) || t.to_string_lossy().contains("systemd/resolve")
    });
    let wanted = match dns.forward {
        DnsForward::None => return Ok(Forwarder::None),
        DnsForward::Dnsmasq => Forwarder::Dnsmasq,
        DnsForward::Resolved => Forwarder::Resolved,
        DnsForward::Auto if resolved_manages => Forwarder::Resolved,
        DnsForward::Auto => Forwarder::Dnsmasq,
    };
    if dns_port(host).is_none() {
        // `ports.dns = -1`: nothing to forward to on this host.
        return Ok(Forwarder::None);
    }
    match wanted {
        Forwarder::Resolved if host.init != Init::Systemd || facts.pid1 != "systemd" => bail!(
            "dns.forward = \"resolved\" needs systemd-resolved, but this host does not run systemd"
        ),
        Forwarder::Resolved if !facts.units.contains_key("systemd-resolved") => {
            bail!("dns.forward = \"resolved\": systemd-resolved is not installed on this host")
        }
        Forwarder::Dnsmasq
            if !facts.packages.get("dnsmasq").copied().unwrap_or(false)
                && !host.prepare.packages.iter().any(|p| p == "dnsmasq") =>
        {
            bail!(
                "dns.forward = \"{}\" forwards through dnsmasq, which is not installed on this host: \
                 add \"dnsmasq\" to prepare.packages, or set dns.forward = \"none\"",
                dns.forward.as_str()
            )
        }
        f => Ok(f),
    }
}

/// Render the plumbing of one host.
pub fn render(
    cluster: &Cluster,
    host: &Host,
    facts: &Facts,
    bind_addr: IpAddr,
) -> anyhow::Result<Plumbing> {
    let mut p = Plumbing::default();

    // Host preparation.
    let missing: Vec<String> = host
        .prepare
        .packages
        .iter()
        .filter(|pkg| !facts.packages.get(*pkg).copied().unwrap_or(false))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let commands = package_commands(facts, &missing)?;
        p.actions.push(Action::InstallPackages {
            packages: missing,
            commands,
        });
    }
    let disable: Vec<String> = host
        .prepare
        .disable_services
        .iter()
        .filter(|u| {
            facts.units.get(*u).is_some_and(|(active, enabled)| {
                active == "active" || active == "activating" || enabled == "enabled"
            })
        })
        .cloned()
        .collect();
    if !host.prepare.disable_services.is_empty() && facts.pid1 != "systemd" {
        p.notes.push(format!(
            "prepare.disable_services ({}) skipped: this host does not run systemd",
            host.prepare.disable_services.join(", ")
        ));
    }
    if !disable.is_empty() {
        p.actions.push(Action::DisableUnits { units: disable });
    }

    // Services.
    let mut wanted: Vec<PathBuf> = Vec::new();
    for svc in &host.services {
        let file = service_file(cluster, host, svc, bind_addr)?;
        wanted.push(file.path.clone());
        p.files.push(file);
    }
    for path in facts.files.keys() {
        let managed = path.parent() == Some(host.paths.config_dir.as_path())
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SERVICE_FILE_PREFIX) && n.ends_with(".hcl"));
        if managed && !wanted.contains(path) {
            p.remove.push(path.clone());
        }
    }

    // DNS.
    if let Some(dns) = &host.dns {
        dns_files(cluster, host, dns, facts, &mut p)?;
    }
    Ok(p)
}

fn package_commands(facts: &Facts, packages: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let mut install: Vec<String> = if facts.has_command("apt-get") {
        vec![
            "apt-get".into(),
            "install".into(),
            "-y".into(),
            "--no-install-recommends".into(),
        ]
    } else if facts.has_command("dnf") {
        vec!["dnf".into(), "install".into(), "-y".into()]
    } else if facts.has_command("yum") {
        vec!["yum".into(), "install".into(), "-y".into()]
    } else {
        bail!(
            "prepare.packages: no package manager found on this host (apt-get, dnf or yum) to install {}",
            packages.join(", ")
        );
    };
    install.extend(packages.iter().cloned());
    let mut commands = Vec::new();
    if install[0] == "apt-get" {
        commands.push(vec!["apt-get".into(), "update".into()]);
    }
    commands.push(install);
    Ok(commands)
}

/// `{{ bind_addr }}`, `{{ node_name }}`, `{{ address }}` filled in for this host.
pub fn fill(text: &str, host: &Host, bind_addr: IpAddr) -> String {
    text.replace("{{ bind_addr }}", &bind_addr.to_string())
        .replace("{{ node_name }}", &host.name)
        .replace("{{ address }}", &host.address)
}

/// The service definition as Consul's config (a `service` block).
pub fn service_config(host: &Host, svc: &ServiceSpec, bind_addr: IpAddr) -> Map<String, Value> {
    let mut s = Map::new();
    s.insert("name".into(), json!(svc.name));
    s.insert("id".into(), json!(svc.id()));
    if let Some(addr) = &svc.address {
        s.insert("address".into(), json!(fill(addr, host, bind_addr)));
    }
    if let Some(port) = svc.port {
        s.insert("port".into(), json!(port));
    }
    if !svc.tags.is_empty() {
        let tags: Vec<String> = svc.tags.iter().map(|t| fill(t, host, bind_addr)).collect();
        s.insert("tags".into(), json!(tags));
    }
    if !svc.meta.is_empty() {
        let meta: Map<String, Value> = svc
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), json!(fill(v, host, bind_addr))))
            .collect();
        s.insert("meta".into(), Value::Object(meta));
    }
    if !svc.checks.is_empty() {
        let checks: Vec<Value> = svc
            .checks
            .iter()
            .map(|c| {
                let mut m = Map::new();
                if let Some(name) = &c.name {
                    m.insert("name".into(), json!(fill(name, host, bind_addr)));
                }
                match &c.kind {
                    CheckKind::Tcp(t) => m.insert("tcp".into(), json!(fill(t, host, bind_addr))),
                    CheckKind::Http(u) => m.insert("http".into(), json!(fill(u, host, bind_addr))),
                    CheckKind::Script(args) => m.insert(
                        "args".into(),
                        json!(args
                            .iter()
                            .map(|a| fill(a, host, bind_addr))
                            .collect::<Vec<_>>()),
                    ),
                };
                m.insert("interval".into(), json!(c.interval));
                if let Some(t) = &c.timeout {
                    m.insert("timeout".into(), json!(t));
                }
                if let Some(d) = &c.deregister_critical_service_after {
                    m.insert("deregister_critical_service_after".into(), json!(d));
                }
                Value::Object(m)
            })
            .collect();
        s.insert("checks".into(), Value::Array(checks));
    }
    let mut root = Map::new();
    root.insert("service".into(), Value::Object(s));
    root
}

pub fn service_path(host: &Host, svc: &ServiceSpec) -> PathBuf {
    host.paths
        .config_dir
        .join(format!("{SERVICE_FILE_PREFIX}{}.hcl", svc.id()))
}

fn service_file(
    cluster: &Cluster,
    host: &Host,
    svc: &ServiceSpec,
    bind_addr: IpAddr,
) -> anyhow::Result<DesiredFile> {
    let body = crate::templates::hcl_body(&service_config(host, svc, bind_addr))
        .with_context(|| format!("service {}", svc.name))?;
    let text = format!(
        "{MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
         # Service {} of datacenter {} (from the inventory's [[services]]).\n\n{body}",
        svc.name, cluster.datacenter
    );
    if let Err(e) = hcl::parse(&text) {
        bail!(
            "service {}: the rendered definition is not valid HCL: {e}",
            svc.name
        );
    }
    Ok(DesiredFile {
        path: service_path(host, svc),
        content: text,
        mode: 0o640,
        kind: FileKind::ServiceDefinition,
        secret: false,
        owner: crate::agent_config::agent_owner(host),
    })
}

fn dns_files(
    cluster: &Cluster,
    host: &Host,
    dns: &DnsSpec,
    facts: &Facts,
    p: &mut Plumbing,
) -> anyhow::Result<()> {
    let fwd = forwarder(host, dns, facts)?;
    let port = dns_port(host);
    let domain = cluster.domain.trim_end_matches('.');
    let resolv_is_link = facts.links.contains_key(&dns.resolv_conf);
    let nm_active = facts
        .units
        .get("NetworkManager")
        .is_some_and(|(a, _)| a == "active");
    match fwd {
        Forwarder::Resolved => {
            let mut dns_line = vec![format!("127.0.0.1:{}", port.unwrap_or(8600))];
            dns_line.extend(dns.nameservers.iter().map(|ip| ip.to_string()));
            let mut domains = vec![format!("~{domain}")];
            domains.extend(dns.search.iter().cloned());
            let text = format!(
                "{MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
                 # Forwards *.{domain} to the local Consul agent; resolv.conf stays systemd-resolved's.\n\
                 [Resolve]\nDNS={}\nDNSSEC=false\nDomains={}\n",
                dns_line.join(" "),
                domains.join(" ")
            );
            push_helper(
                p,
                facts,
                RESOLVED_DROPIN,
                text,
                0o644,
                "systemd-resolved",
                host.init,
            );
            p.notes.push(format!(
                "{} is managed by systemd-resolved: configured through a resolved drop-in ({RESOLVED_DROPIN}), resolv.conf left alone{}",
                dns.resolv_conf.display(),
                if dns.options.is_empty() { String::new() } else { format!("; resolv.conf options ({}) do not apply to resolved", dns.options.join(" ")) }
            ));
        }
        Forwarder::Dnsmasq => {
            let mut text = format!(
                "{MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
                 # dnsmasq on 127.0.0.1:53: *.{domain} to the local Consul agent, the rest upstream.\n\
                 listen-address=127.0.0.1\nbind-interfaces\nno-resolv\nserver=/{domain}/127.0.0.1#{}\n",
                port.unwrap_or(8600)
            );
            for ns in &dns.nameservers {
                text.push_str(&format!("server={ns}\n"));
            }
            if dns.nameservers.is_empty() {
                p.notes.push(format!(
                    "dns.nameservers is empty: dnsmasq answers *.{domain} only (give the upstream \
                     nameservers in dns.nameservers)"
                ));
            }
            push_helper(p, facts, DNSMASQ_CONF, text, 0o644, "dnsmasq", host.init);
            if host.init == Init::Supervisord || facts.pid1 != "systemd" {
                let dir = facts.supervisor_include_dir.clone().context(
                    "dnsmasq on a host without systemd runs under supervisord, which is not installed here",
                )?;
                let program = format!(
                    "; {MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
                     [program:{DNSMASQ_PROGRAM}]\n\
                     command=/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --conf-dir=/etc/dnsmasq.d/,*.conf\n\
                     autostart=true\nautorestart=true\nstartsecs=1\n"
                );
                push_helper(
                    p,
                    facts,
                    &supervisor_program_path(&dir).to_string_lossy(),
                    program,
                    0o644,
                    "dnsmasq",
                    host.init,
                );
            }
            let resolv = resolv_conf(&[IpAddr::from([127, 0, 0, 1])], dns);
            push_resolv(p, facts, dns, resolv, resolv_is_link)?;
        }
        Forwarder::None => {
            if dns_port(host).is_none() && dns.forward != DnsForward::None {
                p.notes.push(
                    "ports.dns = -1: this agent serves no DNS, so nothing is forwarded to it"
                        .into(),
                );
            }
            let resolv = resolv_conf(&dns.nameservers, dns);
            push_resolv(p, facts, dns, resolv, resolv_is_link)?;
        }
    }
    if nm_active && fwd != Forwarder::Resolved {
        let text = format!(
            "{MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n\
             # consulctl writes resolv.conf: NetworkManager must not.\n[main]\ndns=none\n"
        );
        push_helper(
            p,
            facts,
            NM_DROPIN,
            text,
            0o644,
            "NetworkManager",
            host.init,
        );
        p.notes
            .push("NetworkManager runs: told to leave resolv.conf alone (dns=none)".into());
    }
    // RHEL network scripts would put DHCP's nameservers back.
    let peerdns: Vec<PathBuf> = facts
        .ifcfg
        .iter()
        .filter(|(_, v)| !v.eq_ignore_ascii_case("no"))
        .map(|(path, _)| path.clone())
        .collect();
    if !peerdns.is_empty() && fwd != Forwarder::Resolved {
        p.actions.push(Action::SetPeerDnsNo { files: peerdns });
    }
    Ok(())
}

/// resolv.conf text: nameservers, search, options.
pub fn resolv_conf(nameservers: &[IpAddr], dns: &DnsSpec) -> String {
    let mut s = format!(
        "{MANAGED_MARK}: do not edit by hand; changes are overwritten by the next apply.\n"
    );
    for ns in nameservers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.search.is_empty() {
        s.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    s
}

fn push_resolv(
    p: &mut Plumbing,
    facts: &Facts,
    dns: &DnsSpec,
    text: String,
    is_link: bool,
) -> anyhow::Result<()> {
    if is_link {
        bail!(
            "{} is a symlink to {} (managed by another program); set dns.forward = \"resolved\" if that is \
             systemd-resolved, or replace the link with a file first",
            dns.resolv_conf.display(),
            facts.links[&dns.resolv_conf].display()
        );
    }
    let file = DesiredFile {
        path: dns.resolv_conf.clone(),
        content: text,
        mode: 0o644,
        kind: FileKind::ResolvConf,
        secret: false,
        owner: None,
    };
    let _ = facts;
    p.files.push(file);
    Ok(())
}

/// A config file of a helper service (dnsmasq, systemd-resolved, NetworkManager): when it
/// changes, or the service is not running, the service is (re)started.
fn push_helper(
    p: &mut Plumbing,
    facts: &Facts,
    path: &str,
    text: String,
    mode: u32,
    service: &str,
    init: Init,
) {
    let path = PathBuf::from(path);
    let changed = facts
        .files
        .get(&path)
        .map(|f| f.sha256 != crate::hash::sha256_hex(text.as_bytes()))
        .unwrap_or(true);
    p.files.push(DesiredFile {
        path,
        content: text,
        mode,
        kind: FileKind::HelperConfig,
        secret: false,
        owner: None,
    });
    let under_supervisor =
        service == "dnsmasq" && (init == Init::Supervisord || facts.pid1 != "systemd");
    let running = if under_supervisor || facts.pid1 != "systemd" {
        facts.procs.get(service).copied().unwrap_or(false)
    } else {
        facts.units.get(service).is_some_and(|(a, _)| a == "active")
    };
    let enabled = under_supervisor
        || facts
            .units
            .get(service)
            .is_some_and(|(_, e)| e == "enabled" || e == "static");
    if changed || !running || !enabled {
        let action = Action::RestartHelper {
            service: service.to_string(),
            supervisor: under_supervisor,
        };
        if !p.actions.contains(&action) {
            p.actions.push(action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::FileFact;
    use crate::model::{BindAddr, CheckSpec, PrepareSpec, Role};
    use crate::plan::HostPlan;
    use std::path::Path;

    fn host(init: Init) -> Host {
        let mut h = Host::minimal(
            "client1",
            "10.0.0.21",
            Role::Client,
            init,
            BindAddr::Fixed("10.0.0.21".parse().unwrap()),
        );
        h.dns = Some(DnsSpec {
            nameservers: vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()],
            search: vec!["example.com".into()],
            options: vec![
                "timeout:1".into(),
                "attempts:1".into(),
                "single-request-reopen".into(),
                "rotate".into(),
            ],
            forward: DnsForward::Auto,
            resolv_conf: "/etc/resolv.conf".into(),
        });
        h
    }

    fn cluster() -> Cluster {
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
            tls_auto: false,
            acl: false,
            acl_tokens: Default::default(),
            registrar_binary: None,
            retry_join_wan: vec![],
            hosts: vec![],
            warnings: vec![],
        }
    }

    fn facts(systemd: bool) -> Facts {
        let mut f = Facts {
            pid1: if systemd { "systemd" } else { "supervisord" }.into(),
            commands: vec!["apt-get".into(), "systemctl".into()],
            supervisor_include_dir: Some("/etc/supervisor/conf.d".into()),
            ..Default::default()
        };
        f.packages.insert("dnsmasq".into(), true);
        if systemd {
            f.units
                .insert("dnsmasq".into(), ("inactive".into(), "disabled".into()));
            f.units.insert(
                "systemd-resolved".into(),
                ("inactive".into(), "disabled".into()),
            );
        }
        f.procs.insert("dnsmasq".into(), false);
        f
    }

    fn web() -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            id: None,
            port: Some(80),
            address: Some("{{ bind_addr }}".into()),
            tags: vec!["http".into(), "upyun".into()],
            meta: Default::default(),
            checks: vec![CheckSpec {
                name: Some("web tcp".into()),
                kind: CheckKind::Tcp("{{ bind_addr }}:80".into()),
                interval: "10s".into(),
                timeout: Some("1s".into()),
                deregister_critical_service_after: None,
            }],
        }
    }

    fn bind() -> IpAddr {
        "10.0.0.21".parse().unwrap()
    }

    fn file<'a>(p: &'a Plumbing, path: &str) -> &'a DesiredFile {
        p.files
            .iter()
            .find(|f| f.path == Path::new(path))
            .unwrap_or_else(|| panic!("no {path} in {:#?}", p.files))
    }

    #[test]
    fn dnsmasq_forwards_the_domain_and_resolv_conf_points_at_it() {
        let p = render(&cluster(), &host(Init::Systemd), &facts(true), bind()).unwrap();
        let conf = &file(&p, DNSMASQ_CONF).content;
        assert!(conf.starts_with(MANAGED_MARK));
        assert!(conf.contains("server=/consul/127.0.0.1#8600\n"), "{conf}");
        assert!(
            conf.contains("no-resolv\n") && conf.contains("server=10.0.0.2\nserver=10.0.0.3\n"),
            "{conf}"
        );
        let resolv = file(&p, "/etc/resolv.conf");
        assert_eq!(resolv.kind, FileKind::ResolvConf);
        assert!(resolv.content.ends_with(
            "nameserver 127.0.0.1\nsearch example.com\noptions timeout:1 attempts:1 single-request-reopen rotate\n"
        ), "{}", resolv.content);
        // dnsmasq.service is not running: enable and start it.
        assert!(p.actions.contains(&Action::RestartHelper {
            service: "dnsmasq".into(),
            supervisor: false
        }));
    }

    #[test]
    fn without_systemd_dnsmasq_runs_as_a_supervisord_program() {
        let p = render(&cluster(), &host(Init::Supervisord), &facts(false), bind()).unwrap();
        let prog = &file(&p, "/etc/supervisor/conf.d/consulctl-dnsmasq.conf").content;
        assert!(prog.contains("[program:consulctl-dnsmasq]"), "{prog}");
        assert!(prog.contains("--keep-in-foreground"), "{prog}");
        assert!(p.actions.contains(&Action::RestartHelper {
            service: "dnsmasq".into(),
            supervisor: true
        }));
    }

    #[test]
    fn a_resolved_stub_symlink_is_configured_through_resolved() {
        let mut f = facts(true);
        f.links.insert(
            "/etc/resolv.conf".into(),
            "../run/systemd/resolve/stub-resolv.conf".into(),
        );
        f.units.insert(
            "systemd-resolved".into(),
            ("active".into(), "enabled".into()),
        );
        let p = render(&cluster(), &host(Init::Systemd), &f, bind()).unwrap();
        assert!(
            p.files
                .iter()
                .all(|x| x.path != Path::new("/etc/resolv.conf")),
            "resolv.conf left alone"
        );
        let drop = &file(&p, RESOLVED_DROPIN).content;
        assert!(
            drop.contains("[Resolve]\nDNS=127.0.0.1:8600 10.0.0.2 10.0.0.3\n"),
            "{drop}"
        );
        assert!(drop.contains("Domains=~consul example.com\n"), "{drop}");
        assert!(
            p.notes.iter().any(|n| n.contains("systemd-resolved")),
            "{:?}",
            p.notes
        );
        // The drop-in is new: resolved restarts to read it.
        assert!(p.actions.contains(&Action::RestartHelper {
            service: "systemd-resolved".into(),
            supervisor: false
        }));
    }

    #[test]
    fn forward_none_writes_the_nameservers_and_no_forwarder() {
        let mut h = host(Init::Systemd);
        h.dns.as_mut().unwrap().forward = DnsForward::None;
        let p = render(&cluster(), &h, &facts(true), bind()).unwrap();
        assert_eq!(p.files.len(), 1);
        assert!(p.files[0]
            .content
            .contains("nameserver 10.0.0.2\nnameserver 10.0.0.3\n"));
        assert!(p.actions.is_empty());
    }

    #[test]
    fn an_agent_without_dns_gets_no_forwarding() {
        let mut h = host(Init::Systemd);
        h.extra_config.insert("ports".into(), json!({"dns": -1}));
        let p = render(&cluster(), &h, &facts(true), bind()).unwrap();
        assert!(
            p.files.iter().all(|f| f.kind == FileKind::ResolvConf),
            "{:#?}",
            p.files
        );
        assert!(p.notes.iter().any(|n| n.contains("ports.dns = -1")));
    }

    #[test]
    fn dnsmasq_missing_is_an_error_naming_the_fix() {
        let mut f = facts(true);
        f.packages.insert("dnsmasq".into(), false);
        let e = render(&cluster(), &host(Init::Systemd), &f, bind()).unwrap_err();
        assert!(format!("{e:#}").contains("prepare.packages"), "{e:#}");
        // ... unless prepare installs it.
        let mut h = host(Init::Systemd);
        h.prepare = PrepareSpec {
            disable_services: vec![],
            packages: vec!["dnsmasq".into()],
        };
        let p = render(&cluster(), &h, &f, bind()).unwrap();
        assert!(
            matches!(&p.actions[0], Action::InstallPackages { packages, commands }
            if packages == &["dnsmasq".to_string()] && commands.last().unwrap().contains(&"dnsmasq".to_string()))
        );
    }

    #[test]
    fn unchanged_running_forwarder_needs_no_restart() {
        let h = host(Init::Systemd);
        let first = render(&cluster(), &h, &facts(true), bind()).unwrap();
        let mut f = facts(true);
        for d in &first.files {
            f.files.insert(
                d.path.clone(),
                FileFact {
                    sha256: d.sha256(),
                    mode: "644".into(),
                    owner: "root".into(),
                    group: "root".into(),
                },
            );
        }
        f.units
            .insert("dnsmasq".into(), ("active".into(), "enabled".into()));
        let p = render(&cluster(), &h, &f, bind()).unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
    }

    #[test]
    fn service_file_is_valid_hcl_with_placeholders_filled() {
        let mut h = host(Init::Systemd);
        h.dns = None;
        h.services = vec![web()];
        let p = render(&cluster(), &h, &facts(true), bind()).unwrap();
        let f = file(&p, "/etc/consul.d/consulctl-service-web.hcl");
        assert_eq!(f.kind, FileKind::ServiceDefinition);
        assert!(f.content.starts_with(MANAGED_MARK));
        let v: serde_json::Value = hcl::from_str(&f.content).unwrap();
        assert_eq!(v["service"]["name"], "web");
        assert_eq!(v["service"]["address"], "10.0.0.21");
        assert_eq!(v["service"]["port"], 80);
        assert_eq!(v["service"]["tags"], json!(["http", "upyun"]));
        assert_eq!(v["service"]["checks"][0]["tcp"], "10.0.0.21:80");
        assert_eq!(v["service"]["checks"][0]["timeout"], "1s");
    }

    #[test]
    fn managed_service_files_no_longer_declared_are_removed_others_kept() {
        let mut h = host(Init::Systemd);
        h.dns = None;
        h.services = vec![web()];
        let mut f = facts(true);
        for name in [
            "consulctl-service-web.hcl",
            "consulctl-service-old.hcl",
            "mysql.hcl",
            "consul.hcl",
        ] {
            f.files.insert(
                format!("/etc/consul.d/{name}").into(),
                FileFact {
                    sha256: "x".into(),
                    mode: "640".into(),
                    owner: "root".into(),
                    group: "root".into(),
                },
            );
        }
        let p = render(&cluster(), &h, &f, bind()).unwrap();
        assert_eq!(
            p.remove,
            vec![PathBuf::from("/etc/consul.d/consulctl-service-old.hcl")]
        );
        // In a plan of a running agent that changes nothing else: moved aside, then one reload.
        let mut plan = HostPlan::default();
        crate::plan::add_plumbing(
            &mut plan,
            &Plumbing {
                remove: p.remove.clone(),
                ..Default::default()
            },
            true,
        );
        assert_eq!(
            plan.actions,
            vec![
                Action::RemoveFile {
                    path: "/etc/consul.d/consulctl-service-old.hcl".into()
                },
                Action::Reload {
                    keys: vec!["services".into()]
                },
            ]
        );
    }

    #[test]
    fn script_checks_switch_on_local_script_checks() {
        let mut svc = web();
        svc.checks[0].kind = CheckKind::Script(vec![
            "nc".into(),
            "-z".into(),
            "-u".into(),
            "127.0.0.1".into(),
            "123".into(),
        ]);
        assert!(svc.has_script_check());
        let mut h = host(Init::Systemd);
        h.services = vec![svc];
        let p = render(&cluster(), &h, &facts(true), bind()).unwrap();
        let f = file(&p, "/etc/consul.d/consulctl-service-web.hcl");
        let v: serde_json::Value = hcl::from_str(&f.content).unwrap();
        assert_eq!(
            v["service"]["checks"][0]["args"],
            json!(["nc", "-z", "-u", "127.0.0.1", "123"])
        );
    }

    #[test]
    fn prepare_disables_only_units_that_run_or_are_enabled() {
        let mut h = host(Init::Systemd);
        h.dns = None;
        h.prepare.disable_services = vec!["cups".into(), "rpcbind".into(), "absent".into()];
        let mut f = facts(true);
        f.units
            .insert("cups".into(), ("active".into(), "enabled".into()));
        f.units
            .insert("rpcbind".into(), ("inactive".into(), "disabled".into()));
        f.units
            .insert("absent".into(), ("inactive".into(), "not-found".into()));
        let p = render(&cluster(), &h, &f, bind()).unwrap();
        assert_eq!(
            p.actions,
            vec![Action::DisableUnits {
                units: vec!["cups".into()]
            }]
        );
    }

    #[test]
    fn rhel_network_scripts_get_peerdns_no() {
        let mut h = host(Init::Systemd);
        h.dns.as_mut().unwrap().forward = DnsForward::None;
        let mut f = facts(true);
        f.ifcfg.insert(
            "/etc/sysconfig/network-scripts/ifcfg-eth0".into(),
            "-".into(),
        );
        f.ifcfg.insert(
            "/etc/sysconfig/network-scripts/ifcfg-eth1".into(),
            "no".into(),
        );
        let p = render(&cluster(), &h, &f, bind()).unwrap();
        assert_eq!(
            p.actions,
            vec![Action::SetPeerDnsNo {
                files: vec!["/etc/sysconfig/network-scripts/ifcfg-eth0".into()]
            }]
        );
    }

    #[test]
    fn fact_queries_only_when_needed() {
        let mut h = host(Init::Systemd);
        assert!(
            fact_queries(&h).starts_with(&["--".to_string(), "file:/etc/resolv.conf".to_string()])
        );
        h.dns = None;
        assert!(fact_queries(&h).is_empty());
        h.prepare.packages = vec!["dnsmasq".into()];
        assert_eq!(
            fact_queries(&h),
            vec!["--".to_string(), "pkg:dnsmasq".to_string()]
        );
    }
}
