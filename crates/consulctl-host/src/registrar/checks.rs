//! The checks of one service: registrator's `SERVICE_CHECK_*` settings (global, or
//! `SERVICE_<port>_CHECK_*` for one port, which wins) and the mirror of Docker's HEALTHCHECK.
//!
//! Each check has the explicit ID `<service id>:<type>` and the name `<service name> <type>`;
//! they come in a fixed order (http, https, tcp, script, ttl, docker-health) so that a
//! registration's hash is stable.

use consul_api::agent::CheckDefinition;

use super::container::{Container, Health};
use super::conventions::{Settings, TtlStatus};
use super::duration::{parse_positive, DURATION_HELP};
use super::keys::{Keys, Setting};

/// Where a service is reached, and what it is called.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub service_id: &'a str,
    pub service_name: &'a str,
    /// Container port whose settings apply.
    pub container_port: u16,
    /// The address and port the checks reach (the registered ones).
    pub address: &'a str,
    pub port: u16,
}

impl Target<'_> {
    /// `address:port`, with an IPv6 address in brackets.
    fn host_port(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    fn check(&self, kind: &str) -> CheckDefinition {
        CheckDefinition {
            check_id: format!("{}:{kind}", self.service_id),
            name: format!("{} {kind}", self.service_name),
            ..CheckDefinition::default()
        }
    }
}

/// A problem with one setting: its key and what is wrong.
pub type SettingProblem = (String, String);

/// The status words a check may start with.
const STATUSES: [&str; 3] = ["passing", "warning", "critical"];

/// The checks the settings ask for, with what of them could not be used.
pub fn setting_checks(
    keys: &Keys,
    t: &Target,
    s: &Settings,
) -> (Vec<CheckDefinition>, Vec<SettingProblem>) {
    let mut problems: Vec<SettingProblem> = Vec::new();
    let get = |word: &str| keys.get(t.container_port, &format!("CHECK_{word}"));
    let mut bad = |setting: &Setting, message: String| {
        problems.push((setting.key.clone(), message));
    };

    let interval = match get("INTERVAL") {
        None => Some(s.default_interval.clone()),
        Some(i) if parse_positive(&i.value).is_some() => Some(i.value.clone()),
        Some(i) => {
            bad(
                i,
                format!(
                    "{:?} is not a check interval ({DURATION_HELP}): the http, https, tcp and \
                     script checks, which need one, are not registered",
                    i.value
                ),
            );
            None
        }
    };
    let timeout = get("TIMEOUT").and_then(|t| {
        let ok = parse_positive(&t.value).is_some();
        if !ok {
            bad(
                t,
                format!(
                    "{:?} is not a timeout ({DURATION_HELP}): the agent's default is used",
                    t.value
                ),
            );
        }
        ok.then(|| t.value.clone())
    });
    let status = get("INITIAL_STATUS").and_then(|st| {
        let ok = STATUSES.contains(&st.value.as_str());
        if !ok {
            bad(
                st,
                format!(
                    "{:?} is not a check status: use one of {}",
                    st.value,
                    STATUSES.join(", ")
                ),
            );
        }
        ok.then(|| st.value.clone())
    });
    let deregister = get("DEREGISTER_AFTER").and_then(|d| {
        let ok = parse_positive(&d.value).is_some();
        if !ok {
            bad(
                d,
                format!(
                    "{:?} is not a duration ({DURATION_HELP}): the service is not deregistered \
                     when critical",
                    d.value
                ),
            );
        }
        ok.then(|| d.value.clone())
    });

    let mut checks = Vec::new();
    let mut interval_check = |kind: &str, set: fn(&mut CheckDefinition, String), what: String| {
        if let Some(interval) = &interval {
            let mut check = t.check(kind);
            set(&mut check, what);
            check.interval = interval.clone();
            check.timeout = timeout.clone().unwrap_or_default();
            checks.push(check);
        }
    };
    for (word, scheme) in [("HTTP", "http"), ("HTTPS", "https")] {
        if let Some(path) = get(word) {
            let slash = if path.value.starts_with('/') { "" } else { "/" };
            let url = format!("{scheme}://{}{slash}{}", t.host_port(), path.value);
            interval_check(scheme, |c, url| c.http = url, url);
        }
    }
    if get("TCP").is_some() {
        interval_check("tcp", |c, a| c.tcp = a, t.host_port());
    }
    if let Some(script) = get("SCRIPT") {
        if s.script_checks {
            let script = script
                .value
                .replace("$SERVICE_IP", t.address)
                .replace("$SERVICE_PORT", &t.port.to_string());
            interval_check("script", |c, s| c.args = sh_c(s), script);
        } else {
            bad(
                script,
                "script checks are off: the agent needs enable_local_script_checks = true and \
                 the registrar script_checks = true; the check is not registered"
                    .into(),
            );
        }
    }
    if let Some(ttl) = get("TTL") {
        if parse_positive(&ttl.value).is_some() {
            let mut check = t.check("ttl");
            check.ttl = ttl.value.clone();
            checks.push(check);
        } else {
            bad(
                ttl,
                format!(
                    "{:?} is not a TTL ({DURATION_HELP}): the ttl check is not registered",
                    ttl.value
                ),
            );
        }
    }
    for check in &mut checks {
        check.status = status.clone().unwrap_or_default();
        check.deregister_critical_service_after = deregister.clone().unwrap_or_default();
    }
    (checks, problems)
}

fn sh_c(script: String) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// The TTL check that mirrors the container's Docker HEALTHCHECK, and the status it should
/// have; `None` when the container has no HEALTHCHECK.
pub fn docker_health(
    c: &Container,
    service_id: &str,
    s: &Settings,
) -> Option<(CheckDefinition, TtlStatus)> {
    let health = c.health?;
    let check_id = format!("{service_id}:docker-health");
    let check = CheckDefinition {
        check_id: check_id.clone(),
        name: format!("Docker HEALTHCHECK of {}", c.name),
        ttl: s.health_ttl.clone(),
        ..CheckDefinition::default()
    };
    let (status, word) = match health {
        Health::Healthy => ("passing", "healthy"),
        Health::Starting => ("warning", "starting"),
        Health::Unhealthy => ("critical", "unhealthy"),
    };
    let note = c.health_output.clone().unwrap_or_else(|| word.to_string());
    let ttl = TtlStatus {
        check_id,
        status: status.into(),
        note,
    };
    Some((check, ttl))
}
