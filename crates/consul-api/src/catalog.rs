//! `/v1/catalog`: services, nodes and datacenters as the servers record them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::{parse_bool, Call};
use crate::request::{PathBuilder, Request};

/// A node of the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub tagged_addresses: BTreeMap<String, String>,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// One instance of a service with its node (`/v1/catalog/service/<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CatalogService {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    /// The node's address.
    pub address: String,
    pub datacenter: String,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub node_meta: BTreeMap<String, String>,
    pub service_kind: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub service_tags: Vec<String>,
    /// The service's own address; empty when it is the node's.
    pub service_address: String,
    pub service_port: u16,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub service_meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl CatalogService {
    /// The address to reach the instance at: the service's, else the node's.
    pub fn effective_address(&self) -> &str {
        if self.service_address.is_empty() {
            &self.address
        } else {
            &self.service_address
        }
    }
}

/// `GET /v1/catalog/services`: service name -> tags.
pub fn services() -> Call<BTreeMap<String, Vec<String>>> {
    Call::new(Request::get("/v1/catalog/services"), |r| {
        let raw: BTreeMap<String, Option<Vec<String>>> = crate::client::parse_json(r)?;
        Ok(raw
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect())
    })
}

/// `GET /v1/catalog/service/<name>`.
pub fn service(name: &str) -> Call<Vec<CatalogService>> {
    Call::json(Request::get(
        PathBuilder::new("/v1/catalog/service")
            .segment(name)
            .build(),
    ))
}

/// `GET /v1/catalog/nodes`.
pub fn nodes() -> Call<Vec<Node>> {
    Call::json(Request::get("/v1/catalog/nodes"))
}

/// `GET /v1/catalog/datacenters`: known datacenters, nearest first.
pub fn datacenters() -> Call<Vec<String>> {
    Call::json(Request::get("/v1/catalog/datacenters"))
}

/// `PUT /v1/catalog/register` body: a node (created or updated), optionally with one service
/// and one check. This is how services of nodes without an agent ("external" nodes) get into
/// the catalog; Consul itself never runs the check's definition (no agent owns it): its
/// status stays what the registration says until something (such as consul-esm) updates it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogRegistration {
    #[serde(rename = "Node")]
    pub node: String,
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Datacenter", skip_serializing_if = "String::is_empty")]
    pub datacenter: String,
    #[serde(rename = "NodeMeta", skip_serializing_if = "BTreeMap::is_empty")]
    pub node_meta: BTreeMap<String, String>,
    #[serde(rename = "Service", skip_serializing_if = "Option::is_none")]
    pub service: Option<CatalogServiceRegistration>,
    #[serde(rename = "Check", skip_serializing_if = "Option::is_none")]
    pub check: Option<CatalogCheckRegistration>,
    /// Keep the node's address and meta as they are when it exists already.
    #[serde(rename = "SkipNodeUpdate", skip_serializing_if = "std::ops::Not::not")]
    pub skip_node_update: bool,
}

/// The service of a [`CatalogRegistration`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogServiceRegistration {
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "Service")]
    pub service: String,
    #[serde(rename = "Tags", skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "Address", skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(rename = "Port", skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(rename = "Meta", skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// The check of a [`CatalogRegistration`]: its status is set, never computed by Consul.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogCheckRegistration {
    #[serde(rename = "Node")]
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Notes", skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// `passing`, `warning` or `critical`.
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "ServiceID", skip_serializing_if = "String::is_empty")]
    pub service_id: String,
    /// What a checker (consul-esm) would run: HTTP, TCP, Interval, Timeout.
    #[serde(rename = "Definition", skip_serializing_if = "BTreeMap::is_empty")]
    pub definition: BTreeMap<String, String>,
}

/// `PUT /v1/catalog/register`; Consul answers `true`.
pub fn register(what: &CatalogRegistration) -> Call<bool> {
    Call::new(
        Request::put("/v1/catalog/register").with_json(what),
        parse_bool,
    )
}

/// `PUT /v1/catalog/deregister` body: the node, or only one of its services or checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogDeregistration {
    #[serde(rename = "Node")]
    pub node: String,
    #[serde(rename = "Datacenter", skip_serializing_if = "String::is_empty")]
    pub datacenter: String,
    #[serde(rename = "ServiceID", skip_serializing_if = "String::is_empty")]
    pub service_id: String,
    #[serde(rename = "CheckID", skip_serializing_if = "String::is_empty")]
    pub check_id: String,
}

/// `PUT /v1/catalog/deregister`; Consul answers `true`.
pub fn deregister(what: &CatalogDeregistration) -> Call<bool> {
    Call::new(
        Request::put("/v1/catalog/deregister").with_json(what),
        parse_bool,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeTransport};
    use crate::{Client, Response};

    const SERVICE: &str = include_str!("../tests/fixtures/catalog-service-web.json");
    const NODES: &str = include_str!("../tests/fixtures/catalog-nodes.json");

    #[test]
    fn services_parse_with_null_tags() {
        let s = services()
            .finish(&Response::new(
                200,
                r#"{"consul":[],"web":["v1","primary"],"old":null}"#,
            ))
            .unwrap();
        assert_eq!(s["web"], ["v1", "primary"]);
        assert!(s["old"].is_empty() && s["consul"].is_empty());
    }

    #[test]
    fn service_instances_parse() {
        let s = service("web").finish(&Response::new(200, SERVICE)).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].node.as_str(), s[0].service_port), ("client1", 8080));
        assert_eq!(s[0].effective_address(), "10.0.0.10");
        assert_eq!(s[1].effective_address(), "10.0.1.5");
        assert_eq!(
            s[1].service_meta.get("version").map(String::as_str),
            Some("2")
        );
        assert_eq!(service("a/b").request.path, "/v1/catalog/service/a%2Fb");
    }

    #[test]
    fn nodes_and_datacenters_parse() {
        let n = nodes().finish(&Response::new(200, NODES)).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[1].tagged_addresses["wan"], "203.0.113.5");
        assert!(n[0].meta.is_empty());
        let dcs = datacenters()
            .finish(&Response::new(200, r#"["dc1","dc2"]"#))
            .unwrap();
        assert_eq!(dcs, ["dc1", "dc2"]);
    }

    #[test]
    fn register_sends_the_node_service_and_check() {
        let fake = FakeTransport::new().on("PUT", "/v1/catalog/register", 200, "true");
        let reg = CatalogRegistration {
            node: "redis-master".into(),
            address: "10.0.0.5".into(),
            service: Some(CatalogServiceRegistration {
                service: "redis".into(),
                port: Some(6379),
                ..Default::default()
            }),
            check: Some(CatalogCheckRegistration {
                node: "redis-master".into(),
                check_id: "service:redis".into(),
                name: "redis tcp".into(),
                status: "passing".into(),
                definition: [("TCP".to_string(), "10.0.0.5:6379".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(block_on(Client::new(fake.clone()).call(register(&reg))).unwrap());
        let body: serde_json::Value =
            serde_json::from_str(&fake.requests()[0].body_text()).unwrap();
        assert_eq!(body["Service"]["Port"], 6379);
        assert_eq!(body["Check"]["Definition"]["TCP"], "10.0.0.5:6379");
        assert_eq!(body["Check"]["Status"], "passing");
        assert!(body.get("NodeMeta").is_none() && body.get("SkipNodeUpdate").is_none());
    }

    #[test]
    fn deregister_sends_only_what_is_set() {
        let fake = FakeTransport::new().on("PUT", "/v1/catalog/deregister", 200, "true");
        let done = block_on(
            Client::new(fake.clone()).call(deregister(&CatalogDeregistration {
                node: "client2".into(),
                service_id: "web-2".into(),
                ..Default::default()
            })),
        )
        .unwrap();
        assert!(done);
        assert_eq!(
            fake.requests()[0].body_text(),
            r#"{"Node":"client2","ServiceID":"web-2"}"#
        );
    }
}

/// One node with its services and checks, as `/v1/internal/ui/nodes` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeDump {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub tagged_addresses: BTreeMap<String, String>,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub meta: BTreeMap<String, String>,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub services: Vec<crate::agent::AgentService>,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub checks: Vec<crate::check::HealthCheck>,
}

/// `GET /v1/internal/ui/nodes`: every node of the datacenter with its services and their
/// checks, in one answer whose index moves when any node, service or check changes. It is the
/// endpoint Consul's own web UI watches (present and unchanged in shape from 1.0 to 1.21); a
/// blocking query on it is one query for the whole catalog, however many services there are.
/// With ACLs, the token needs `node_prefix` and `service_prefix` read.
pub fn node_dump() -> Call<Vec<NodeDump>> {
    Call::json(Request::get("/v1/internal/ui/nodes"))
}
