//! `/v1/agent`: the local agent: members, self, leave / force-leave, services and checks it
//! registers, maintenance mode, TTL check updates.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::check::HealthCheck;
use crate::client::{parse_unit, Call};
use crate::request::{PathBuilder, Request};

/// A serf member, as `GET /v1/agent/members` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Member {
    #[serde(rename = "Name")]
    pub name: String,
    /// The member's IP (no port, no brackets).
    #[serde(rename = "Addr")]
    pub addr: String,
    /// Serf port (8301 LAN, 8302 WAN).
    #[serde(rename = "Port")]
    pub port: u16,
    /// Serf status: 0 none, 1 alive, 2 leaving, 3 left, 4 failed.
    #[serde(rename = "Status")]
    pub status: u8,
    #[serde(rename = "Tags", deserialize_with = "crate::de::null_default")]
    pub tags: BTreeMap<String, String>,
}

impl Member {
    pub const ALIVE: u8 = 1;

    pub fn status_word(&self) -> &'static str {
        match self.status {
            0 => "none",
            1 => "alive",
            2 => "leaving",
            3 => "left",
            4 => "failed",
            _ => "unknown",
        }
    }

    pub fn is_alive(&self) -> bool {
        self.status == Self::ALIVE
    }

    /// `server` when the member's `role` tag is `consul`, else `client`.
    pub fn role(&self) -> &'static str {
        match self.tags.get("role").map(String::as_str) {
            Some("consul") => "server",
            _ => "client",
        }
    }

    pub fn is_server(&self) -> bool {
        self.role() == "server"
    }

    /// `Addr` as an IP (brackets tolerated).
    pub fn ip(&self) -> Option<IpAddr> {
        self.addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

/// `GET /v1/agent/members`, the WAN pool's members when `wan`.
pub fn members(wan: bool) -> Call<Vec<Member>> {
    let path = if wan {
        "/v1/agent/members?wan=1"
    } else {
        "/v1/agent/members"
    };
    Call::json(Request::get(path))
}

/// The part of the agent's configuration [`AgentSelf`] keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AgentConfig {
    pub datacenter: String,
    pub primary_datacenter: String,
    pub node_name: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub server: bool,
    /// e.g. `1.21.1`.
    pub version: String,
    pub revision: String,
}

/// `GET /v1/agent/self` (the parts of it that are stable across versions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AgentSelf {
    pub config: AgentConfig,
    pub member: Member,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub meta: BTreeMap<String, String>,
}

/// `GET /v1/agent/self`.
pub fn self_info() -> Call<AgentSelf> {
    Call::json(Request::get("/v1/agent/self"))
}

/// `PUT /v1/agent/force-leave/<node>`: mark a failed member left; with `prune` also remove
/// it from the member list at once (Consul 1.6.2 and later).
pub fn force_leave(node: &str, prune: bool) -> Call<()> {
    let path = PathBuilder::new("/v1/agent/force-leave")
        .segment(node)
        .flag_if("prune", prune)
        .build();
    Call::new(Request::put(path), parse_unit)
}

/// `PUT /v1/agent/leave`: the agent leaves gracefully and shuts down.
pub fn leave() -> Call<()> {
    Call::new(Request::put("/v1/agent/leave"), parse_unit)
}

/// `PUT /v1/agent/reload`: the agent rereads its configuration files.
pub fn reload() -> Call<()> {
    Call::new(Request::put("/v1/agent/reload"), parse_unit)
}

/// Weights of a service in DNS answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Weights {
    pub passing: u32,
    pub warning: u32,
}

/// A service as the agent (`/v1/agent/services`) and health endpoints return it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AgentService {
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    /// Empty for typical services; `connect-proxy`, `mesh-gateway`, ...
    pub kind: String,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub address: String,
    pub weights: Option<Weights>,
    pub enable_tag_override: bool,
    pub datacenter: String,
}

/// `GET /v1/agent/services`: service ID -> service.
pub fn services() -> Call<BTreeMap<String, AgentService>> {
    Call::json(Request::get("/v1/agent/services"))
}

/// `GET /v1/agent/checks`: check ID -> check.
pub fn checks() -> Call<BTreeMap<String, HealthCheck>> {
    Call::json(Request::get("/v1/agent/checks"))
}

/// A check in a service registration: HTTP, TCP, TTL or script (`args`).
/// Durations are Consul duration strings (`10s`, `1m`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckDefinition {
    #[serde(rename = "CheckID", skip_serializing_if = "String::is_empty")]
    pub check_id: String,
    #[serde(rename = "Name", skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "Notes", skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(rename = "HTTP", skip_serializing_if = "String::is_empty")]
    pub http: String,
    #[serde(rename = "Method", skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(
        rename = "Header",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::de::null_default"
    )]
    pub header: BTreeMap<String, Vec<String>>,
    #[serde(rename = "TLSSkipVerify", skip_serializing_if = "std::ops::Not::not")]
    pub tls_skip_verify: bool,
    #[serde(rename = "TLSServerName", skip_serializing_if = "String::is_empty")]
    pub tls_server_name: String,
    #[serde(rename = "TCP", skip_serializing_if = "String::is_empty")]
    pub tcp: String,
    /// A script check's command and arguments (`["/bin/sh", "-c", SCRIPT]`); the agent runs
    /// it only with `enable_local_script_checks`.
    #[serde(
        rename = "Args",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::de::null_default"
    )]
    pub args: Vec<String>,
    #[serde(rename = "TTL", skip_serializing_if = "String::is_empty")]
    pub ttl: String,
    #[serde(rename = "Interval", skip_serializing_if = "String::is_empty")]
    pub interval: String,
    #[serde(rename = "Timeout", skip_serializing_if = "String::is_empty")]
    pub timeout: String,
    #[serde(
        rename = "DeregisterCriticalServiceAfter",
        skip_serializing_if = "String::is_empty"
    )]
    pub deregister_critical_service_after: String,
    /// Initial status: `passing`, `warning` or `critical` (Consul's default).
    #[serde(rename = "Status", skip_serializing_if = "String::is_empty")]
    pub status: String,
}

impl CheckDefinition {
    /// An HTTP check of `url` every `interval`.
    pub fn http(url: &str, interval: &str) -> Self {
        CheckDefinition {
            http: url.into(),
            interval: interval.into(),
            ..Self::default()
        }
    }

    /// A TCP connect check of `host:port` every `interval`.
    pub fn tcp(address: &str, interval: &str) -> Self {
        CheckDefinition {
            tcp: address.into(),
            interval: interval.into(),
            ..Self::default()
        }
    }

    /// A TTL check the service keeps passing with [`check_pass`] within `ttl`.
    pub fn ttl(ttl: &str) -> Self {
        CheckDefinition {
            ttl: ttl.into(),
            ..Self::default()
        }
    }
}

/// `PUT /v1/agent/service/register` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceRegistration {
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(
        rename = "Tags",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::de::null_default"
    )]
    pub tags: Vec<String>,
    #[serde(rename = "Address", skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(rename = "Port", skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(
        rename = "Meta",
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::de::null_default"
    )]
    pub meta: BTreeMap<String, String>,
    #[serde(
        rename = "EnableTagOverride",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub enable_tag_override: bool,
    #[serde(rename = "Check", skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckDefinition>,
    #[serde(
        rename = "Checks",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::de::null_default"
    )]
    pub checks: Vec<CheckDefinition>,
}

/// `PUT /v1/agent/service/register`; `replace_existing_checks` drops checks of the service
/// that the registration no longer lists.
pub fn service_register(service: &ServiceRegistration, replace_existing_checks: bool) -> Call<()> {
    let path = PathBuilder::new("/v1/agent/service/register")
        .flag_if("replace-existing-checks", replace_existing_checks)
        .build();
    Call::new(Request::put(path).with_json(service), parse_unit)
}

/// `PUT /v1/agent/service/deregister/<id>`.
pub fn service_deregister(service_id: &str) -> Call<()> {
    let path = PathBuilder::new("/v1/agent/service/deregister")
        .segment(service_id)
        .build();
    Call::new(Request::put(path), parse_unit)
}

/// `PUT /v1/agent/service/maintenance/<id>?enable=..&reason=..`.
pub fn service_maintenance(service_id: &str, enable: bool, reason: Option<&str>) -> Call<()> {
    let path = PathBuilder::new("/v1/agent/service/maintenance")
        .segment(service_id)
        .param("enable", enable)
        .param_opt("reason", reason)
        .build();
    Call::new(Request::put(path), parse_unit)
}

/// `PUT /v1/agent/maintenance?enable=..&reason=..`: node maintenance mode.
pub fn maintenance(enable: bool, reason: Option<&str>) -> Call<()> {
    let path = PathBuilder::new("/v1/agent/maintenance")
        .param("enable", enable)
        .param_opt("reason", reason)
        .build();
    Call::new(Request::put(path), parse_unit)
}

/// `PUT /v1/agent/check/register` body: a check of the node itself (no `ServiceID`) or of a
/// service of this agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckRegistration {
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Notes", skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(rename = "ServiceID", skip_serializing_if = "String::is_empty")]
    pub service_id: String,
    /// A TTL check: the registering program reports its state with [`check_pass`] and friends.
    #[serde(rename = "TTL", skip_serializing_if = "String::is_empty")]
    pub ttl: String,
    /// Initial status: `passing`, `warning` or `critical` (Consul's default).
    #[serde(rename = "Status", skip_serializing_if = "String::is_empty")]
    pub status: String,
}

/// `PUT /v1/agent/check/register`.
pub fn check_register(check: &CheckRegistration) -> Call<()> {
    Call::new(
        Request::put("/v1/agent/check/register").with_json(check),
        parse_unit,
    )
}

/// `PUT /v1/agent/check/deregister/<id>`.
pub fn check_deregister(check_id: &str) -> Call<()> {
    let path = PathBuilder::new("/v1/agent/check/deregister")
        .segment(check_id)
        .build();
    Call::new(Request::put(path), parse_unit)
}

fn ttl_update(state: &str, check_id: &str, note: Option<&str>) -> Call<()> {
    let path = PathBuilder::new("/v1/agent/check")
        .segment(state)
        .segment(check_id)
        .param_opt("note", note)
        .build();
    Call::new(Request::put(path), parse_unit)
}

/// `PUT /v1/agent/check/pass/<id>?note=..`: a TTL check passes.
pub fn check_pass(check_id: &str, note: Option<&str>) -> Call<()> {
    ttl_update("pass", check_id, note)
}

/// `PUT /v1/agent/check/warn/<id>?note=..`.
pub fn check_warn(check_id: &str, note: Option<&str>) -> Call<()> {
    ttl_update("warn", check_id, note)
}

/// `PUT /v1/agent/check/fail/<id>?note=..`.
pub fn check_fail(check_id: &str, note: Option<&str>) -> Call<()> {
    ttl_update("fail", check_id, note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeTransport};
    use crate::{Client, Response};

    const MEMBERS: &str = include_str!("../tests/fixtures/agent-members.json");
    const SELF_1_8: &str = include_str!("../tests/fixtures/agent-self-1.8.json");
    const SERVICES: &str = include_str!("../tests/fixtures/agent-services.json");
    const CHECKS: &str = include_str!("../tests/fixtures/agent-checks.json");

    #[test]
    fn members_parse_with_roles_and_status_words() {
        let m = members(false).finish(&Response::new(200, MEMBERS)).unwrap();
        assert_eq!(m.len(), 4);
        let words: Vec<_> = m
            .iter()
            .map(|m| (m.name.as_str(), m.role(), m.status_word()))
            .collect();
        assert_eq!(
            words,
            [
                ("server1", "server", "alive"),
                ("server2", "server", "failed"),
                ("server3", "server", "alive"),
                ("client1", "client", "left"),
            ]
        );
        assert_eq!(m[2].ip(), Some("fd00::3".parse().unwrap()));
        assert_eq!(m[0].port, 8301);
        assert_eq!(members(true).request.path, "/v1/agent/members?wan=1");
        let odd = Member {
            status: 9,
            ..Member::default()
        };
        assert_eq!((odd.status_word(), odd.role()), ("unknown", "client"));
        assert_eq!(Member::default().status_word(), "none");
    }

    #[test]
    fn agent_self_parses() {
        let s = self_info().finish(&Response::new(200, SELF_1_8)).unwrap();
        assert_eq!(s.config.node_name, "server1");
        assert_eq!(s.config.version, "1.8.7");
        assert!(s.config.server);
        assert_eq!(s.member.role(), "server");
        assert_eq!(
            s.meta.get("consul-network-segment").map(String::as_str),
            Some("")
        );
    }

    #[test]
    fn node_checks_register_with_their_id_and_ttl() {
        let c = check_register(&CheckRegistration {
            id: "consulctl-registrar".into(),
            name: "Docker registrar".into(),
            ttl: "30s".into(),
            ..CheckRegistration::default()
        });
        assert_eq!(c.request.path, "/v1/agent/check/register");
        let body: serde_json::Value =
            serde_json::from_slice(c.request.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"ID": "consulctl-registrar", "Name": "Docker registrar", "TTL": "30s"})
        );
        assert_eq!(
            check_deregister("a b").request.path,
            "/v1/agent/check/deregister/a%20b"
        );
    }

    #[test]
    fn services_and_checks_parse() {
        let s = services().finish(&Response::new(200, SERVICES)).unwrap();
        let web = &s["web-1"];
        assert_eq!(
            (web.service.as_str(), web.port, web.tags.len()),
            ("web", 8080, 2)
        );
        assert_eq!(
            web.weights,
            Some(Weights {
                passing: 1,
                warning: 1
            })
        );
        let c = checks().finish(&Response::new(200, CHECKS)).unwrap();
        assert_eq!(c["service:web-1"].status, "passing");
        assert_eq!(c["serfHealth"].service_id, "");
    }

    #[test]
    fn write_endpoints_build_their_paths() {
        let fake = FakeTransport::new().unknown(200, "");
        let c = Client::new(fake.clone());
        block_on(c.call(force_leave("server 2", true))).unwrap();
        block_on(c.call(force_leave("server2", false))).unwrap();
        block_on(c.call(leave())).unwrap();
        block_on(c.call(service_deregister("web/1"))).unwrap();
        block_on(c.call(service_maintenance("web-1", true, Some("deploy & test")))).unwrap();
        block_on(c.call(maintenance(false, None))).unwrap();
        block_on(c.call(check_pass("service:web-1", Some("ok")))).unwrap();
        block_on(c.call(check_warn("t", None))).unwrap();
        block_on(c.call(check_fail("t", Some("down")))).unwrap();
        assert_eq!(
            fake.sent(),
            [
                "PUT /v1/agent/force-leave/server%202?prune",
                "PUT /v1/agent/force-leave/server2",
                "PUT /v1/agent/leave",
                "PUT /v1/agent/service/deregister/web%2F1",
                "PUT /v1/agent/service/maintenance/web-1?enable=true&reason=deploy%20%26%20test",
                "PUT /v1/agent/maintenance?enable=false",
                "PUT /v1/agent/check/pass/service%3Aweb-1?note=ok",
                "PUT /v1/agent/check/warn/t",
                "PUT /v1/agent/check/fail/t?note=down",
            ]
        );
    }

    #[test]
    fn service_registration_serializes_consuls_names_and_skips_empties() {
        let reg = ServiceRegistration {
            id: "web-1".into(),
            name: "web".into(),
            tags: vec!["v1".into()],
            port: Some(8080),
            check: Some(CheckDefinition {
                deregister_critical_service_after: "90m".into(),
                timeout: "2s".into(),
                status: "passing".into(),
                ..CheckDefinition::http("http://127.0.0.1:8080/health", "10s")
            }),
            checks: vec![
                CheckDefinition::tcp("127.0.0.1:8080", "5s"),
                CheckDefinition::ttl("30s"),
            ],
            ..ServiceRegistration::default()
        };
        let call = service_register(&reg, true);
        assert_eq!(
            call.request.line(),
            "PUT /v1/agent/service/register?replace-existing-checks"
        );
        let body: serde_json::Value =
            serde_json::from_slice(call.request.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "ID": "web-1", "Name": "web", "Tags": ["v1"], "Port": 8080,
                "Check": {"HTTP": "http://127.0.0.1:8080/health", "Interval": "10s", "Timeout": "2s",
                          "DeregisterCriticalServiceAfter": "90m", "Status": "passing"},
                "Checks": [{"TCP": "127.0.0.1:8080", "Interval": "5s"}, {"TTL": "30s"}]
            })
        );
        let back: ServiceRegistration = serde_json::from_value(body).unwrap();
        assert_eq!(back, reg);
    }
}
