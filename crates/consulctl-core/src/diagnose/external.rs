//! `external-check-never-run`: checks of nodes without an agent (registered in the catalog
//! directly, as `consulctl service register --external` and the seed's curl scripts do) that
//! nothing has ever run. Consul runs a check only on the agent that owns it; a catalog
//! registration has none, so its status stays what was registered: a dead service looks
//! healthy forever. Such a check is recognised by its node (not a member of the cluster: no
//! agent) and its empty output (a checker such as consul-esm writes one on every run).

use super::*;

impl<'a> Cx<'a> {
    pub(super) fn external_checks(&self) -> Vec<Finding> {
        // Any server's answer will do: they all read the same catalog.
        let Some(api) = self
            .all
            .iter()
            .filter_map(|o| o.api.as_ref())
            .find(|a| !a.all_checks.is_empty() && !a.members.is_empty())
        else {
            return vec![];
        };
        let members: BTreeSet<&str> = api.members.iter().map(|m| m.name.as_str()).collect();
        let mut d = Draft::new(FindingCode::ExternalCheckNeverRun);
        for c in &api.all_checks {
            if members.contains(c.node.as_str())
                || c.check_id == "serfHealth"
                || !c.output.trim().is_empty()
            {
                continue;
            }
            d.host(&c.node);
            let of = if c.service_id.is_empty() {
                String::new()
            } else {
                format!(" of service {}", c.service_id)
            };
            d.note(&format!(
                "{}: check {} ({}){of} is {} and has never run (no output); the node has no agent",
                c.node, c.check_id, c.name, c.status
            ));
            if !c.service_id.is_empty() {
                d.fix(format!(
                    "register it through an agent that can reach it, so the agent runs the \
                     check: `consulctl service deregister {} --external {} -i {}`, then \
                     `consulctl service register {} --on HOST ... -i {}`",
                    sh(&c.service_id),
                    sh(&c.node),
                    self.exp.inventory,
                    sh(if c.service_name.is_empty() {
                        &c.service_id
                    } else {
                        &c.service_name
                    }),
                    self.exp.inventory
                ));
            }
        }
        d.fix(
            "or run a checker for nodes without an agent (consul-esm) that updates these checks"
                .into(),
        );
        d.cause = "these checks belong to nodes without an agent (catalog registrations): \
                   Consul runs no check that no agent owns, so their status is whatever was \
                   registered and never changes; the services look healthy (or failed) \
                   whatever happens to them"
            .into();
        d.done().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn check(node: &str, id: &str, service: &str, status: &str, output: &str) -> HealthCheck {
        HealthCheck {
            node: node.into(),
            check_id: id.into(),
            name: format!("{service} tcp"),
            status: status.into(),
            output: output.into(),
            service_id: service.into(),
            service_name: service.into(),
            ..Default::default()
        }
    }

    fn with_checks(checks: Vec<HealthCheck>) -> Vec<Finding> {
        let mut obs = healthy();
        api(&mut obs, "server1").all_checks = checks;
        diagnose(&expected(), &obs)
    }

    #[test]
    fn a_check_of_a_node_without_agent_that_never_ran_is_a_finding() {
        let f = with_checks(vec![
            check(
                "client1",
                "serfHealth",
                "",
                "passing",
                "Agent alive and reachable",
            ),
            check("client1", "service:web", "web", "passing", ""),
            check("redis-master", "service:redis", "redis", "passing", ""),
        ]);
        assert_eq!(codes(&f), ["external-check-never-run"]);
        let f = one(&f, "external-check-never-run");
        assert_eq!(f.hosts, ["redis-master"]);
        assert!(
            evidence_has(f, "redis-master: check service:redis (redis tcp) of service redis is passing and has never run"),
            "{f:#?}"
        );
        assert!(
            f.fix[0].contains(
                "consulctl service deregister redis --external redis-master -i prod.toml"
            ),
            "{f:#?}"
        );
        assert!(f.cause.contains("Consul runs no check"), "{}", f.cause);
    }

    #[test]
    fn checks_that_ran_or_that_agents_own_are_no_finding() {
        // consul-esm (or anything) ran it: it has an output.
        let f = with_checks(vec![
            check(
                "redis-master",
                "service:redis",
                "redis",
                "passing",
                "TCP connect 10.0.0.5:6379: Success",
            ),
            check("client2", "service:api", "api", "critical", ""),
        ]);
        assert!(f.is_empty(), "{}", to_text(&f));
        assert!(with_checks(vec![]).is_empty());
    }
}
