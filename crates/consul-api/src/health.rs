//! `/v1/health`: services with their checks, checks by state and by node.

use serde::{Deserialize, Serialize};

use crate::agent::AgentService;
use crate::catalog::Node;
pub use crate::check::HealthCheck;
use crate::client::Call;
use crate::request::{PathBuilder, QueryOptions, Request};

/// One instance of a service with its node and checks (`/v1/health/service/<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceEntry {
    pub node: Node,
    pub service: AgentService,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub checks: Vec<HealthCheck>,
}

impl ServiceEntry {
    /// The address to reach the instance at: the service's, else its node's.
    pub fn effective_address(&self) -> &str {
        if self.service.address.is_empty() {
            &self.node.address
        } else {
            &self.service.address
        }
    }

    /// The worst status of the entry's checks: `critical` > `warning` > `passing`
    /// (`passing` when there are no checks).
    pub fn aggregated_status(&self) -> &'static str {
        let has = |s: &str| self.checks.iter().any(|c| c.status == s);
        if has("critical") || has("maintenance") {
            "critical"
        } else if has("warning") {
            "warning"
        } else {
            "passing"
        }
    }
}

/// `GET /v1/health/service/<name>`: the instances of a service (all of them; add
/// [`QueryOptions`] `passing` / `tag` / `filter` with [`Call::with_options`]).
pub fn service(name: &str) -> Call<Vec<ServiceEntry>> {
    Call::json(Request::get(
        PathBuilder::new("/v1/health/service").segment(name).build(),
    ))
}

/// `GET /v1/health/service/<name>?passing[&tag=..]`: the instances whose checks all pass.
pub fn service_passing(name: &str, tag: Option<&str>) -> Call<Vec<ServiceEntry>> {
    service(name).with_options(&QueryOptions {
        passing: true,
        tag: tag.map(str::to_string).into_iter().collect(),
        ..QueryOptions::default()
    })
}

/// `GET /v1/health/state/<state>`: checks in `state` (`any`, `passing`, `warning`, `critical`).
pub fn state(state: &str) -> Call<Vec<HealthCheck>> {
    Call::json(Request::get(
        PathBuilder::new("/v1/health/state").segment(state).build(),
    ))
}

/// `GET /v1/health/node/<node>`: the checks of a node.
pub fn node(node: &str) -> Call<Vec<HealthCheck>> {
    Call::json(Request::get(
        PathBuilder::new("/v1/health/node").segment(node).build(),
    ))
}

/// `GET /v1/health/checks/<service>`: the checks of a service's instances.
pub fn checks(service: &str) -> Call<Vec<HealthCheck>> {
    Call::json(Request::get(
        PathBuilder::new("/v1/health/checks")
            .segment(service)
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Response;

    const SERVICE: &str = include_str!("../tests/fixtures/health-service-web.json");
    const STATE: &str = include_str!("../tests/fixtures/health-state-critical.json");

    #[test]
    fn service_entries_parse() {
        let e = service("web").finish(&Response::new(200, SERVICE)).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].node.node, "client1");
        assert_eq!(e[0].node.address, "10.0.0.10");
        assert_eq!(
            (e[0].service.id.as_str(), e[0].service.port),
            ("web-1", 8080)
        );
        assert_eq!(e[0].checks.len(), 2);
        assert_eq!(e[0].aggregated_status(), "passing");
        assert_eq!(e[1].aggregated_status(), "critical");
        assert_eq!(e[1].checks[1].check_type, "http");
        assert!(e[1].service.tags.is_empty());
    }

    #[test]
    fn paths_and_filters() {
        assert_eq!(
            service_passing("web", Some("v1")).request.path,
            "/v1/health/service/web?passing&tag=v1"
        );
        assert_eq!(
            service_passing("web", None).request.path,
            "/v1/health/service/web?passing"
        );
        assert_eq!(state("critical").request.path, "/v1/health/state/critical");
        assert_eq!(node("client 1").request.path, "/v1/health/node/client%201");
        assert_eq!(checks("web").request.path, "/v1/health/checks/web");
    }

    #[test]
    fn checks_by_state_parse() {
        let c = state("critical")
            .finish(&Response::new(200, STATE))
            .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].node.as_str(), c[0].check_id.as_str()),
            ("client2", "service:web-2")
        );
        assert!(!c[0].is_passing());
        assert_eq!(c[0].service_tags, Vec::<String>::new());
        let empty = state("critical").finish(&Response::new(200, "[]")).unwrap();
        assert!(empty.is_empty());
    }
}
