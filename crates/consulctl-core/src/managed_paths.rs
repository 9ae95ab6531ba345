//! The names and paths of what consulctl manages on a host besides the agent's own files (the
//! mark on every such file, service definition files, the DNS forwarder's drop-ins and
//! supervisord program, the binary of consulctl-host and the config, token and unit of its
//! daemons: the Docker registrar and the LB sync daemon), and the facts queries that read them back. Shared by the plumbing
//! renderer, the facts script's arguments and the actions that print them, so that none of
//! those needs another.

use std::path::{Path, PathBuf};

use crate::model::Host;

/// The first line of every file consulctl writes outside the agent's own config: files
/// without it are never touched.
pub const MANAGED_MARK: &str = "# Managed by consulctl";
/// Service definition files: `<config_dir>/consulctl-service-<id>.hcl`.
pub const SERVICE_FILE_PREFIX: &str = "consulctl-service-";
pub const DNSMASQ_CONF: &str = "/etc/dnsmasq.d/consulctl-consul.conf";
pub const RESOLVED_DROPIN: &str = "/etc/systemd/resolved.conf.d/consulctl-consul.conf";
pub const NM_DROPIN: &str = "/etc/NetworkManager/conf.d/consulctl-dns.conf";
/// supervisord program running dnsmasq on hosts without systemd.
pub const DNSMASQ_PROGRAM: &str = "consulctl-dnsmasq";

/// The Docker registrar: `consulctl-host` installed here, its config, its ACL token, its
/// systemd unit (or supervisord program of the same name).
pub const HOST_BINARY: &str = "/usr/local/bin/consulctl-host";
pub const REGISTRAR_CONFIG: &str = "/etc/consulctl/registrar.toml";
pub const REGISTRAR_TOKEN: &str = "/etc/consulctl/registrar.token";
pub const REGISTRAR_SERVICE: &str = "consulctl-registrar";
pub const REGISTRAR_UNIT: &str = "/etc/systemd/system/consulctl-registrar.service";
/// The process name of the registrar (`pgrep -x`).
pub const HOST_BINARY_PROCESS: &str = "consulctl-host";
/// The LB sync daemon (`consulctl-host lb`): its config, ACL token, unit (or supervisord
/// program of the same name).
pub const LB_CONFIG: &str = "/etc/consulctl/lb.toml";
pub const LB_TOKEN: &str = "/etc/consulctl/lb.token";
pub const LB_SERVICE: &str = "consulctl-lb";
pub const LB_UNIT: &str = "/etc/systemd/system/consulctl-lb.service";
/// The supervisord include dirs consulctl looks for (Debian, RHEL).
const SUPERVISOR_DIRS: [&str; 2] = ["/etc/supervisor/conf.d", "/etc/supervisord.d"];

/// The supervisord program that runs a helper service on hosts without systemd.
pub fn supervisor_program_name(service: &str) -> &str {
    match service {
        "dnsmasq" => DNSMASQ_PROGRAM,
        other => other,
    }
}

/// The facts queries plumbing needs (appended to the facts script's arguments after `--`).
pub fn fact_queries(host: &Host) -> Vec<String> {
    let mut q = Vec::new();
    if let Some(dns) = &host.dns {
        q.push(format!("file:{}", dns.resolv_conf.display()));
        for f in [DNSMASQ_CONF, RESOLVED_DROPIN, NM_DROPIN] {
            q.push(format!("file:{f}"));
        }
        for dir in SUPERVISOR_DIRS {
            q.push(format!(
                "file:{}",
                supervisor_program_path(Path::new(dir)).display()
            ));
        }
        for u in ["dnsmasq", "systemd-resolved", "NetworkManager"] {
            q.push(format!("unit:{u}"));
        }
        q.push("pkg:dnsmasq".into());
        q.push("proc:dnsmasq".into());
    }
    let mut daemons: Vec<(&str, [&str; 3])> = Vec::new();
    if host.registrar.is_some() {
        daemons.push((
            REGISTRAR_SERVICE,
            [REGISTRAR_CONFIG, REGISTRAR_TOKEN, REGISTRAR_UNIT],
        ));
    }
    if let Some(lb) = &host.lb {
        daemons.push((LB_SERVICE, [LB_CONFIG, LB_TOKEN, LB_UNIT]));
        // The LB's own server (nginx or HAProxy) under the init system.
        if let Some(server) = lb_server(lb.kind) {
            for dir in SUPERVISOR_DIRS {
                q.push(format!(
                    "file:{}",
                    program_path(Path::new(dir), server).display()
                ));
            }
            q.push(format!("unit:{server}"));
            q.push(format!("program:{server}"));
            q.push(format!("proc:{server}"));
        }
    }
    if !daemons.is_empty() {
        q.push(format!("file:{HOST_BINARY}"));
        q.push(format!("proc:{HOST_BINARY_PROCESS}"));
    }
    for (service, files) in daemons {
        for f in files {
            q.push(format!("file:{f}"));
        }
        for dir in SUPERVISOR_DIRS {
            q.push(format!(
                "file:{}",
                program_path(Path::new(dir), service).display()
            ));
        }
        q.push(format!("unit:{service}"));
        q.push(format!("program:{service}"));
    }
    for u in &host.prepare.disable_services {
        q.push(format!("unit:{u}"));
    }
    for p in &host.prepare.packages {
        q.push(format!("pkg:{p}"));
    }
    if q.is_empty() {
        return q;
    }
    q.insert(0, "--".into());
    q
}

/// The service (systemd unit, supervisord program, process) of an LB kind's server.
pub fn lb_server(kind: crate::model::LbKind) -> Option<&'static str> {
    match kind {
        crate::model::LbKind::Nginx => Some("nginx"),
        crate::model::LbKind::Haproxy => Some("haproxy"),
        crate::model::LbKind::None => None,
    }
}

/// The supervisord program file for dnsmasq in an include dir (`.conf` on Debian, `.ini` on RHEL).
pub fn supervisor_program_path(include_dir: &Path) -> PathBuf {
    program_path(include_dir, DNSMASQ_PROGRAM)
}

/// The file of supervisord program `program` in an include dir (`.conf` on Debian, `.ini` on
/// RHEL).
pub fn program_path(include_dir: &Path, program: &str) -> PathBuf {
    let ext = if include_dir.ends_with("supervisord.d") {
        "ini"
    } else {
        "conf"
    };
    include_dir.join(format!("{program}.{ext}"))
}
