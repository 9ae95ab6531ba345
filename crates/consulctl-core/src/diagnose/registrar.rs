//! `registrar-down` and `registrar-settings`: the Docker registrar on the hosts the inventory
//! gives one, judged by the check it keeps on its agent (`consulctl-registrar`, a TTL check it
//! refreshes every 10 s with a summary of its state).
//!
//! - no such check on an agent that answers: the daemon never reported (not running, or it
//!   cannot reach the agent);
//! - critical: it cannot reach Docker (its note says so), it stopped (its note says so), or it
//!   stopped refreshing the check (Consul's "TTL expired": the daemon is down or cannot reach
//!   its agent);
//! - warning: some containers have `SERVICE_*` settings it could not use (its note lists them);
//!   what was valid is registered.

use super::*;

/// The registrar's check ID on its agent.
pub const REGISTRAR_CHECK: &str = "consulctl-registrar";

impl<'a> Cx<'a> {
    /// The hosts the inventory gives a daemon (`has`) whose agent answers, not `explained`
    /// by an earlier finding, with the daemon's check (`check_id`) on that agent, if any.
    pub(super) fn daemon_hosts(
        &self,
        explained: &BTreeSet<String>,
        has: impl Fn(&ExpectedHost) -> bool,
        check_id: &str,
    ) -> Vec<(&'a ExpectedHost, Option<&'a HealthCheck>)> {
        let mut out = Vec::new();
        for h in self.exp.hosts.iter().filter(|h| has(h)) {
            if explained.contains(&h.name) {
                continue;
            }
            let Some(o) = self.observation(&h.name) else {
                continue;
            };
            // Without an answering agent the agent's own finding says it all.
            let Some(api) = o.api.as_ref().filter(|_| o.unreachable.is_none()) else {
                continue;
            };
            out.push((h, api.daemon_checks.get(check_id)));
        }
        out
    }

    pub(super) fn registrar(&self, explained: &BTreeSet<String>) -> Vec<Finding> {
        let mut down = Draft::new(FindingCode::RegistrarDown);
        let mut settings = Draft::new(FindingCode::RegistrarSettings);
        for (h, check) in self.daemon_hosts(explained, |h| h.registrar, REGISTRAR_CHECK) {
            let restart = format!(
                "on {}: `systemctl status consulctl-registrar` / `journalctl -u consulctl-registrar` \
                 (supervisord: `supervisorctl status consulctl-registrar`); `consulctl apply -i {} \
                 --limit {}` reinstalls and starts it",
                h.name, self.exp.inventory, h.name
            );
            match check {
                None => {
                    down.host(&h.name);
                    down.fact(
                        &h.name,
                        &format!("the agent has no check {REGISTRAR_CHECK}: the registrar never reported"),
                    );
                    down.fix(restart);
                }
                Some(c) if c.status == "critical" => {
                    down.host(&h.name);
                    let output = c.output.trim();
                    down.fact(
                        &h.name,
                        &format!("check {REGISTRAR_CHECK} is critical: {output}"),
                    );
                    if output.contains("cannot reach Docker") {
                        down.fix(format!(
                            "on {}: start Docker, or fix `docker_socket` in the inventory's \
                             [registrar] (the daemon retries by itself)",
                            h.name
                        ));
                    } else {
                        down.fix(restart);
                    }
                }
                Some(c) if c.status == "warning" => {
                    settings.host(&h.name);
                    settings.fact(&h.name, c.output.trim());
                    settings.fix(format!(
                        "fix the named SERVICE_* env/labels of those containers on {} (recreate \
                         them); the registrar registers the rest meanwhile",
                        h.name
                    ));
                }
                Some(_) => {}
            }
        }
        down.cause = "the Docker registrar is not keeping this host's containers registered: \
                      new or stopped containers are not reflected in Consul (existing \
                      registrations stay as they were)"
            .into();
        settings.cause = "containers carry SERVICE_* settings the registrar cannot use (a bad \
                          check interval, an unknown check type, an invalid meta key): it \
                          registered them without those parts"
            .into();
        down.done().into_iter().chain(settings.done()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

    fn check(status: &str, output: &str) -> HealthCheck {
        daemon_check(REGISTRAR_CHECK, status, output)
    }

    fn with_registrar(check_on_client1: Option<HealthCheck>) -> (Expected, Vec<Observation>) {
        with_daemon(|h| h.registrar = true, check_on_client1)
    }

    #[test]
    fn a_passing_registrar_is_no_finding() {
        let (exp, obs) = with_registrar(Some(check(
            "passing",
            "Docker 20.10 (API 1.41): 3 containers",
        )));
        assert_eq!(diagnose(&exp, &obs), []);
    }

    #[test]
    fn a_missing_or_critical_check_is_registrar_down_with_the_reason() {
        let (exp, obs) = with_registrar(None);
        let f = diagnose(&exp, &obs);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].code, FindingCode::RegistrarDown);
        assert_eq!(f[0].hosts, ["client1"]);
        assert!(f[0].evidence[0].contains("never reported"), "{f:#?}");

        let (exp, obs) = with_registrar(Some(check(
            "critical",
            "cannot reach Docker: docker /var/run/docker.sock: connect: No such file",
        )));
        let f = diagnose(&exp, &obs);
        assert_eq!(f[0].code, FindingCode::RegistrarDown);
        assert!(f[0].fix[0].contains("start Docker"), "{f:#?}");

        let (exp, obs) = with_registrar(Some(check("critical", "TTL expired")));
        let f = diagnose(&exp, &obs);
        assert!(f[0].evidence[0].contains("TTL expired"), "{f:#?}");
        assert!(
            f[0].fix[0].contains("journalctl -u consulctl-registrar"),
            "{f:#?}"
        );
    }

    #[test]
    fn a_warning_names_the_container_settings() {
        let (exp, obs) = with_registrar(Some(check(
            "warning",
            "3 containers; 1 settings could not be used: container web3: SERVICE_CHECK_INTERVAL: \"abc\" is not a Go duration",
        )));
        let f = diagnose(&exp, &obs);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].code, FindingCode::RegistrarSettings);
        assert!(
            f[0].evidence[0].contains("web3: SERVICE_CHECK_INTERVAL"),
            "{f:#?}"
        );
    }

    #[test]
    fn hosts_without_a_registrar_or_with_a_down_agent_are_not_judged() {
        // No registrar expected: a missing check is fine.
        let exp = expected();
        assert_eq!(diagnose(&exp, &healthy()), []);
        // The agent does not answer: its own finding, not a registrar one.
        let (exp, mut obs) = with_registrar(None);
        obs[3].api = None;
        assert!(diagnose(&exp, &obs)
            .iter()
            .all(|f| f.code != FindingCode::RegistrarDown));
    }
}
