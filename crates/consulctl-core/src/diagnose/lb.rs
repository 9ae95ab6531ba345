//! `lb-down` and `lb-failing`: the LB sync daemon on the hosts the inventory gives one, judged
//! by the check it keeps on its agent (`consulctl-lb`, a TTL check it refreshes every 10 s):
//!
//! - no such check on an agent that answers: the daemon never reported (not running, or it
//!   cannot reach the agent);
//! - critical with Consul's "TTL expired": the daemon stopped heartbeating (down, or cut off
//!   from its agent);
//! - critical with any other output: the daemon runs, but its last render was refused by the
//!   validator or the reload failed (the output is that message); the load balancer keeps
//!   serving its last good config.

use super::*;
use crate::lb::LB_CHECK;

/// Does a critical check's output say the daemon stopped heartbeating (rather than report a
/// failed render)?
fn heartbeat_lost(output: &str) -> bool {
    let o = output.trim();
    o.is_empty()
        || o.contains("TTL expired")
        || o.contains("never reported")
        || o.starts_with("stopped;")
}

impl<'a> Cx<'a> {
    pub(super) fn lb(&self, explained: &BTreeSet<String>) -> Vec<Finding> {
        let mut down = Draft::new(FindingCode::LbDown);
        let mut failing = Draft::new(FindingCode::LbFailing);
        for (h, check) in self.daemon_hosts(explained, |h| h.lb, LB_CHECK) {
            let restart = format!(
                "on {}: `systemctl status consulctl-lb` / `journalctl -u consulctl-lb` \
                 (supervisord: `supervisorctl status consulctl-lb`); `consulctl apply -i {} \
                 --limit {}` reinstalls and starts it",
                h.name, self.exp.inventory, h.name
            );
            match check {
                None => {
                    down.host(&h.name);
                    down.fact(
                        &h.name,
                        &format!(
                            "the agent has no check {LB_CHECK}: the LB sync daemon never reported"
                        ),
                    );
                    down.fix(restart);
                }
                Some(c) if c.status == "critical" && heartbeat_lost(&c.output) => {
                    down.host(&h.name);
                    down.fact(
                        &h.name,
                        &format!("check {LB_CHECK} is critical: {}", c.output.trim()),
                    );
                    down.fix(restart);
                }
                Some(c) if c.status == "critical" => {
                    failing.host(&h.name);
                    failing.fact(&h.name, c.output.trim());
                    failing.fix(format!(
                        "fix what the message names (a user template, or a setting of [lb] in \
                         the inventory, then `consulctl apply -i {} --limit {}`); the daemon \
                         renders again on the next catalog change or restart and swaps the new \
                         config in once it validates",
                        self.exp.inventory, h.name
                    ));
                }
                Some(_) => {}
            }
        }
        down.cause = "the LB sync daemon is not running or not reporting: the load balancer \
                      keeps its current config, so instances added to or removed from Consul's \
                      catalog are not reflected in it"
            .into();
        failing.cause = "the LB sync daemon's last render was refused (the config test or the \
                         reload failed): the load balancer keeps serving its last good config, \
                         which no longer follows the catalog"
            .into();
        down.done().into_iter().chain(failing.done()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

    fn check(status: &str, output: &str) -> HealthCheck {
        daemon_check(LB_CHECK, status, output)
    }

    fn with_lb(check_on_client1: Option<HealthCheck>) -> (Expected, Vec<Observation>) {
        with_daemon(|h| h.lb = true, check_on_client1)
    }

    #[test]
    fn a_passing_or_warning_lb_is_no_finding() {
        for status in ["passing", "warning"] {
            let (exp, obs) = with_lb(Some(check(status, "generation 3f2a9c1b: 2 services")));
            assert_eq!(diagnose(&exp, &obs), [], "{status}");
        }
    }

    #[test]
    fn no_check_or_an_expired_ttl_is_lb_down() {
        let (exp, obs) = with_lb(None);
        let f = diagnose(&exp, &obs);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].code, FindingCode::LbDown);
        assert_eq!(f[0].hosts, ["client1"]);
        assert!(f[0].evidence[0].contains("never reported"), "{f:#?}");
        assert!(f[0].fix[0].contains("journalctl -u consulctl-lb"), "{f:#?}");

        let (exp, obs) = with_lb(Some(check("critical", "TTL expired")));
        let f = diagnose(&exp, &obs);
        assert_eq!(f[0].code, FindingCode::LbDown);
        assert!(f[0].evidence[0].contains("TTL expired"), "{f:#?}");
    }

    #[test]
    fn a_refused_render_is_lb_failing_with_the_validators_message() {
        let msg = "nginx: [emerg] unknown directive \"bogus\" in /etc/nginx/conf.d/custom.conf:3";
        let (exp, obs) = with_lb(Some(check("critical", msg)));
        let f = diagnose(&exp, &obs);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].code, FindingCode::LbFailing);
        assert!(
            f[0].evidence[0].contains("unknown directive \"bogus\""),
            "{f:#?}"
        );
        assert!(f[0].cause.contains("last good config"), "{f:#?}");
        assert!(f[0].fix[0].contains("template"), "{f:#?}");
        assert!(f[0].fix[0].contains("next catalog change"), "{f:#?}");
    }

    #[test]
    fn hosts_without_an_lb_or_with_a_down_agent_are_not_judged() {
        assert_eq!(diagnose(&expected(), &healthy()), []);
        let (exp, mut obs) = with_lb(None);
        obs[3].api = None;
        assert!(diagnose(&exp, &obs)
            .iter()
            .all(|f| f.code != FindingCode::LbDown));
        // The registrar's check is not the LB's.
        let (exp, mut obs) = with_lb(None);
        obs[3].api.as_mut().unwrap().daemon_checks.insert(
            REGISTRAR_CHECK.into(),
            daemon_check(REGISTRAR_CHECK, "passing", ""),
        );
        assert_eq!(diagnose(&exp, &obs)[0].code, FindingCode::LbDown);
    }
}
