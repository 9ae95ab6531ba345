//! The agent on one host: `bind-address`, `port-in-use`, `data-dir`, `crash-loop` and
//! `agent-down`, from its startup log lines and service state.

use super::*;

/// systemd restarts from which an agent counts as crash-looping.
pub(super) const CRASH_LOOP_RESTARTS: u32 = 3;

/// What Consul prints when it cannot pick or bind its address.
pub(super) const BIND_ERRORS: [&str; 4] = [
    "Multiple private IP",
    "Multiple public IPv6",
    "bind: cannot assign requested address",
    "Failed to get advertise address",
];

/// The banner of a successful start: startup errors before it are history.
pub(super) const AGENT_RUNNING: &str = "Consul agent running!";

/// Log levels as Consul prints them (hclog pads them, the Go logger of Consul <= 1.6 does not).
pub(super) const LEVELS: [&str; 6] = ["[TRACE]", "[DEBUG]", "[INFO]", "[WARN]", "[ERROR]", "[ERR]"];

/// `==> ` lines of `consul agent` that are not errors.
pub(super) const UI_INFO: [&str; 14] = [
    "Starting Consul agent",
    "Consul agent running",
    "Log data will now stream",
    "Caught signal",
    "Gracefully shutting down",
    "Graceful leave complete",
    "Reloading configuration",
    "Joining cluster",
    "Join completed",
    "Found address",
    "Loaded configuration",
    "WARNING",
    "Newer Consul version",
    "Attempting",
];

pub(super) fn is_looping(o: &Observation) -> bool {
    let state = o.init_state.as_deref().unwrap_or("");
    let restarts = o.restarts.unwrap_or(0);
    restarts >= CRASH_LOOP_RESTARTS
        || state.eq_ignore_ascii_case("BACKOFF")
        || state.eq_ignore_ascii_case("FATAL")
        || (state == "activating" && restarts > 0)
}

/// The log lines that can tell why the agent does not start: all of them while it is down or
/// restarting, else those after its last successful start.
pub(super) fn startup_lines(o: &Observation) -> &[String] {
    if o.agent_pid.is_none() || is_looping(o) {
        return &o.log;
    }
    match o.log.iter().rposition(|l| l.contains(AGENT_RUNNING)) {
        Some(i) => &o.log[i + 1..],
        None => &o.log,
    }
}

/// An error line: Consul's `[ERR]`/`[ERROR]` lines, `==> ` lines of `consul agent` that are
/// not progress messages, and other lines (systemd, stderr) that say `Error`.
pub(super) fn is_error_line(line: &str) -> bool {
    if line.contains("[ERR") {
        return true;
    }
    if LEVELS.iter().any(|l| line.contains(l)) {
        return false;
    }
    match line.trim_start().strip_prefix("==> ") {
        Some(msg) => !UI_INFO.iter().any(|i| msg.starts_with(i)),
        None => line.contains("Error"),
    }
}

pub(super) fn last_error(log: &[String]) -> Option<&str> {
    log.iter()
        .rev()
        .find(|l| is_error_line(l))
        .map(String::as_str)
}

/// The port of Go's `listen tcp IP:PORT: bind: ...`.
pub(super) fn listen_port(line: &str) -> Option<u16> {
    let i = line
        .find("listen tcp")
        .or_else(|| line.find("listen udp"))?;
    let addr = line[i..].split_whitespace().nth(2)?.trim_end_matches(':');
    addr.rsplit_once(':')?.1.parse().ok()
}

/// A write error about the data dir (node-id, raft, serf files).
pub(super) fn data_dir_error(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "permission denied",
        "read-only file system",
        "no space left on device",
    ]
    .iter()
    .any(|e| l.contains(e))
        && [
            "data",
            "node-id",
            "node id",
            "raft",
            "serf",
            "checkpoint",
            "mkdir",
        ]
        .iter()
        .any(|w| l.contains(w))
}

impl<'a> Cx<'a> {
    pub(super) fn bind_address(&self, o: &Observation) -> Option<Finding> {
        let mut d = Draft::new(FindingCode::BindAddress);
        let addrs = o
            .addresses
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let bind = self
            .expected_host(&o.host)
            .and_then(|h| h.bind)
            .filter(|ip| !ip.is_unspecified());
        if let Some(ip) = bind.filter(|ip| !o.addresses.is_empty() && !o.addresses.contains(ip)) {
            let text = format!(
                "the inventory's bind address {ip} is on none of the host's interfaces ({addrs})"
            );
            d.fact(&o.host, &text);
        }
        let several = d.facts.is_empty()
            && startup_lines(o)
                .iter()
                .any(|l| l.contains("Multiple private IP") || l.contains("Multiple public IPv6"));
        for line in startup_lines(o)
            .iter()
            .filter(|l| BIND_ERRORS.iter().any(|m| l.contains(m)))
        {
            d.log(&o.host, line);
        }
        if !d.has_evidence() {
            return None;
        }
        d.host(&o.host);
        d.cause = if several {
            format!(
                "{} has several private addresses and its agent config names none, so Consul \
                 cannot choose which one to bind and advertise",
                o.host
            )
        } else {
            format!(
                "the agent on {} is set to bind an address the host does not have (the host's \
                 address changed, or the inventory is wrong)",
                o.host
            )
        };
        let has = if addrs.is_empty() {
            String::new()
        } else {
            format!(" (the host has: {addrs})")
        };
        d.fix(format!(
            "set bind_addr (or a bind_cidr) for {} in the inventory to the address the other \
             agents reach it on{has}",
            o.host
        ));
        d.fix(self.apply());
        d.done()
    }

    pub(super) fn port_in_use(&self, o: &Observation) -> Option<Finding> {
        let mut d = Draft::new(FindingCode::PortInUse);
        for (port, process) in &o.foreign_listeners {
            d.fact(&o.host, &format!("port {port} is held by {process}"));
        }
        let lines: Vec<&String> = startup_lines(o)
            .iter()
            .filter(|l| l.contains("address already in use"))
            .collect();
        for line in &lines {
            d.log(&o.host, line);
        }
        if !d.has_evidence() {
            return None;
        }
        d.host(&o.host);
        if o.foreign_listeners.is_empty() {
            let ports: BTreeSet<u16> = lines.iter().filter_map(|l| listen_port(l)).collect();
            let ports = ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let which = if ports.is_empty() {
                "one of Consul's ports".to_string()
            } else {
                format!("port {ports}")
            };
            d.cause = format!(
                "{which} was taken when the agent started: by another program, or by a second \
                 consul process the init system does not know about"
            );
            d.fix(format!(
                "on {}, find what holds {which} (`ss -ltnup`) and stop it",
                o.host
            ));
        } else {
            let held = o
                .foreign_listeners
                .iter()
                .map(|(port, process)| format!("{process} on port {port}"))
                .collect::<Vec<_>>()
                .join(", ");
            d.cause = format!(
                "other programs listen on Consul's ports ({held}), so the agent cannot bind them"
            );
            for (port, process) in &o.foreign_listeners {
                d.fix(format!(
                    "on {}, stop {process} or move it off port {port}",
                    o.host
                ));
            }
        }
        d.fix(self.apply());
        d.done()
    }

    pub(super) fn data_dir(&self, o: &Observation) -> Option<Finding> {
        if o.installed == Some(false) {
            // No agent: a missing data dir is what a host looks like before its first apply.
            return None;
        }
        let mut d = Draft::new(FindingCode::DataDir);
        if o.data_dir_writable == Some(false) {
            d.fact(
                &o.host,
                "the data dir is missing or the agent's user cannot write it",
            );
        }
        for line in startup_lines(o).iter().filter(|l| data_dir_error(l)) {
            d.log(&o.host, line);
        }
        if !d.has_evidence() {
            return None;
        }
        d.host(&o.host);
        d.cause = "the agent cannot write its data dir (wrong owner or mode, a read-only or full \
                   file system); Consul keeps its node ID, raft data and keyring there"
            .into();
        d.fix(format!(
            "on {}, make the data dir exist and belong to the agent's user (e.g. `chown -R consul: \
             <data_dir>`), remount its file system read-write or free space",
            o.host
        ));
        d.fix(self.apply());
        d.done()
    }

    /// `crash-loop` when the init system keeps restarting the agent, else `agent-down` when no
    /// agent runs. `so_far`: the findings that may already tell why.
    pub(super) fn crash_loop_or_down(
        &self,
        o: &Observation,
        so_far: &[Finding],
    ) -> Option<Finding> {
        if o.installed == Some(false) {
            return None; // `no-agent` says it
        }
        let looping = is_looping(o);
        if !looping && o.agent_pid.is_some() {
            return None;
        }
        let mut d = Draft::new(if looping {
            FindingCode::CrashLoop
        } else {
            FindingCode::AgentDown
        });
        d.host(&o.host);
        let state = o
            .init_state
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown");
        match (looping, o.restarts) {
            (true, Some(n)) => d.fact(
                &o.host,
                &format!("systemd restarted the agent {n} times; unit state: {state}"),
            ),
            (true, None) => d.fact(&o.host, &format!("supervisord state: {state}")),
            (false, _) => d.fact(
                &o.host,
                &format!("no consul agent process runs (init state: {state})"),
            ),
        }
        let last = last_error(&o.log);
        if let Some(line) = last {
            d.log(&o.host, line);
        }
        let specific: Vec<&str> = so_far
            .iter()
            .filter(|f| {
                [
                    FindingCode::BindAddress,
                    FindingCode::PortInUse,
                    FindingCode::DataDir,
                ]
                .contains(&f.code)
            })
            .filter(|f| f.hosts.contains(&o.host))
            .map(|f| f.code.as_str())
            .collect();
        let what = if looping {
            "the agent exits soon after each start and the init system keeps restarting it"
        } else {
            "the consul agent is not running"
        };
        d.cause = match (specific.is_empty(), last.is_some()) {
            (false, _) => format!(
                "{what}; the {} finding for {} tells why",
                specific.join(" and "),
                o.host
            ),
            (true, true) => format!("{what}; its last error is quoted below"),
            (true, false) => format!("{what}; its log shows no error"),
        };
        if !specific.is_empty() {
            d.fix(format!(
                "fix the {} problem of {} first (see that finding)",
                specific.join(" and "),
                o.host
            ));
        } else if looping {
            d.fix(format!(
                "read the agent's log on {} (`journalctl -u consul -n 200`, or the supervisord log \
                 files) and fix the error it reports",
                o.host
            ));
        }
        d.fix(self.apply());
        d.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

    #[test]
    fn crash_loop_on_several_private_addresses_is_not_also_agent_down() {
        let mut obs = healthy();
        stop(&mut obs, "client1", "activating", 7, MULTIPLE_IPV4);
        at(&mut obs, "client1").addresses = vec![ip("192.168.14.71"), ip("10.0.2.15")];
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["bind-address", "crash-loop"],
            "{}",
            to_text(&findings)
        );
        let bind = &findings[0];
        assert_eq!(bind.hosts, ["client1"]);
        assert!(bind.cause.contains("several private addresses"));
        assert!(bind.fix[0].contains("(the host has: 192.168.14.71, 10.0.2.15)"));
        assert_eq!(bind.fix[1], "consulctl apply -i prod.toml");
        // Both restarts printed the same error: one evidence line.
        assert_eq!(
            bind.evidence,
            ["client1: ==> Multiple private IPv4 addresses found. Please configure one with 'bind' and/or 'advertise'."]
        );
        let crash = &findings[1];
        assert_eq!(
            crash.evidence[0],
            "client1: systemd restarted the agent 7 times; unit state: activating"
        );
        assert!(crash.evidence[1].contains("==> Multiple private IPv4 addresses found"));
        assert!(crash.cause.contains("bind-address"));
    }

    #[test]
    fn bind_address_not_on_the_host() {
        let mut obs = healthy();
        at(&mut obs, "server3").addresses = vec![ip("10.1.1.5")];
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["bind-address"]);
        assert_eq!(
            findings[0].evidence,
            ["server3: the inventory's bind address 192.168.14.63 is on none of the host's interfaces (10.1.1.5)"]
        );
    }

    #[test]
    fn port_in_use_and_the_agent_down_it_causes() {
        let mut obs = healthy();
        stop(&mut obs, "server2", "failed", 1, ADDRESS_IN_USE);
        at(&mut obs, "server2").foreign_listeners = vec![(8300, "java".into())];
        for o in obs.iter_mut().filter_map(|o| o.api.as_mut()) {
            o.members
                .iter_mut()
                .filter(|m| m.name == "server2")
                .for_each(|m| m.status = 4);
        }
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["port-in-use", "agent-down"],
            "{}",
            to_text(&findings)
        );
        let port = &findings[0];
        assert_eq!(port.evidence[0], "server2: port 8300 is held by java");
        assert!(port.evidence[1]
            .contains("listen tcp 192.168.14.62:8300: bind: address already in use"));
        assert_eq!(
            port.fix,
            [
                "on server2, stop java or move it off port 8300",
                "consulctl apply -i prod.toml"
            ]
        );
        let down = &findings[1];
        assert_eq!(down.hosts, ["server2"]);
        assert_eq!(
            down.evidence[0],
            "server2: no consul agent process runs (init state: failed)"
        );
        assert_eq!(
            down.evidence[1],
            "server2: ==> Error starting agent: Failed to start Consul server: Failed to start RPC layer: listen tcp 192.168.14.62:8300: bind: address already in use"
        );
        assert!(down.cause.contains("port-in-use"));
    }

    #[test]
    fn port_held_by_another_program_while_the_agent_runs() {
        let mut obs = healthy();
        at(&mut obs, "client1").foreign_listeners = vec![(8500, "nginx".into())];
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["port-in-use"]);
        assert_eq!(
            findings[0].evidence,
            ["client1: port 8500 is held by nginx"]
        );
        assert_eq!(
            listen_port("listen tcp 127.0.0.1:8500: bind: address already in use"),
            Some(8500)
        );
        assert_eq!(
            listen_port("listen udp [::1]:8600: bind: address already in use"),
            Some(8600)
        );
    }

    #[test]
    fn data_dir_not_writable() {
        let mut obs = healthy();
        stop(&mut obs, "client2", "failed", 2, DATA_DIR);
        at(&mut obs, "client2").data_dir_writable = Some(false);
        let findings = diagnose(&expected(), &obs);
        assert_eq!(
            codes(&findings),
            ["data-dir", "agent-down"],
            "{}",
            to_text(&findings)
        );
        let f = &findings[0];
        assert_eq!(
            f.evidence[0],
            "client2: the data dir is missing or the agent's user cannot write it"
        );
        assert!(f.evidence[1].ends_with("open /opt/consul/data/node-id: permission denied"));
        assert!(data_dir_error("[ERROR] agent.server.raft: failed to append to logs: error=\"write /opt/consul/raft/raft.db: no space left on device\""));
        assert!(!data_dir_error(
            "[ERROR] agent: failed to read config /etc/consul.d/x.hcl: permission denied"
        ));
    }

    #[test]
    fn last_error_skips_progress_lines() {
        let lines = log(ADDRESS_IN_USE);
        assert!(last_error(&lines)
            .unwrap()
            .starts_with("==> Error starting agent:"));
        assert_eq!(
            last_error(&log(HEALTHY_CLIENT)).map(|l| l.contains("No known Consul servers")),
            Some(true)
        );
        assert!(!is_error_line("==> Starting Consul agent..."));
        assert!(!is_error_line("    2024-01-02T03:04:05.116Z [WARN]  agent: Join cluster failed, will retry: cluster=LAN retry_interval=30s error=<nil>"));
        assert!(is_error_line(
            "2019/01/02 03:04:05 [ERR] agent: failed to sync remote state: No cluster leader"
        ));
        assert!(is_error_line("==> Multiple private IPv4 addresses found. Please configure one with 'bind' and/or 'advertise'."));
    }
}
