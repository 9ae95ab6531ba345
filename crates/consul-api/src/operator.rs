//! `/v1/operator`: raft configuration and peer removal, autopilot health, gossip keyring.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::client::{parse_unit, Call};
use crate::request::{PathBuilder, Request};

/// One server of the raft configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RaftServer {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Node")]
    pub node: String,
    /// `IP:port` / `[IPv6]:port`.
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Leader")]
    pub leader: bool,
    #[serde(rename = "Voter")]
    pub voter: bool,
}

/// `GET /v1/operator/raft/configuration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RaftConfiguration {
    #[serde(rename = "Servers", deserialize_with = "crate::de::null_default")]
    pub servers: Vec<RaftServer>,
    #[serde(rename = "Index")]
    pub index: u64,
}

impl RaftConfiguration {
    pub fn leader(&self) -> Option<&RaftServer> {
        self.servers.iter().find(|s| s.leader)
    }

    pub fn voters(&self) -> impl Iterator<Item = &RaftServer> {
        self.servers.iter().filter(|s| s.voter)
    }
}

/// `GET /v1/operator/raft/configuration`, from any server when `stale` (works without a
/// leader), else from the leader.
pub fn raft_configuration(stale: bool) -> Call<RaftConfiguration> {
    Call::json(Request::get(
        PathBuilder::new("/v1/operator/raft/configuration")
            .flag_if("stale", stale)
            .build(),
    ))
}

/// `DELETE /v1/operator/raft/peer?address=IP:port`.
pub fn raft_remove_peer_by_address(address: &str) -> Call<()> {
    Call::new(
        Request::delete(
            PathBuilder::new("/v1/operator/raft/peer")
                .param("address", address)
                .build(),
        ),
        parse_unit,
    )
}

/// `DELETE /v1/operator/raft/peer?id=<node ID>` (raft protocol 3).
pub fn raft_remove_peer_by_id(id: &str) -> Call<()> {
    Call::new(
        Request::delete(
            PathBuilder::new("/v1/operator/raft/peer")
                .param("id", id)
                .build(),
        ),
        parse_unit,
    )
}

/// `DELETE /v1/operator/raft/peer`: `peer` is a raft address (`IP:port`, `[IPv6]:port`:
/// anything with a `:`) or else a server ID (raft protocol 3).
pub fn raft_remove_peer(peer: &str) -> Call<()> {
    if peer.contains(':') {
        raft_remove_peer_by_address(peer)
    } else {
        raft_remove_peer_by_id(peer)
    }
}

/// One server in [`AutopilotHealth`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServerHealth {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub address: String,
    /// `alive`, `failed`, `left`, ...
    pub serf_status: String,
    pub version: String,
    pub leader: bool,
    /// Since the last contact with the leader, e.g. `0s`, `13.4ms`.
    pub last_contact: String,
    pub last_term: u64,
    pub last_index: u64,
    pub healthy: bool,
    pub voter: bool,
    pub stable_since: String,
}

/// `GET /v1/operator/autopilot/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AutopilotHealth {
    pub healthy: bool,
    pub failure_tolerance: u32,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub servers: Vec<ServerHealth>,
}

/// `GET /v1/operator/autopilot/health`, answered by the leader. Consul answers 429 with the
/// same body when the cluster is unhealthy; that is an answer here, not an error.
pub fn autopilot_health() -> Call<AutopilotHealth> {
    let mut c = Call::json(Request::get("/v1/operator/autopilot/health"));
    c.accept = &[429];
    c
}

/// One keyring answer: the keys installed on the members of one pool (the WAN pool, or the
/// LAN pool of a datacenter or segment) and on how many members each key is.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct KeyringResponse {
    #[serde(rename = "WAN")]
    pub wan: bool,
    pub datacenter: String,
    pub segment: String,
    /// Key (base64) -> members that have it.
    #[serde(deserialize_with = "crate::de::null_default")]
    pub keys: BTreeMap<String, u32>,
    /// Key -> members using it as primary (Consul 1.9 and later; empty before).
    #[serde(deserialize_with = "crate::de::null_default")]
    pub primary_keys: BTreeMap<String, u32>,
    /// Node -> error, for members that did not answer.
    #[serde(deserialize_with = "crate::de::null_default")]
    pub messages: BTreeMap<String, String>,
    pub num_nodes: u32,
}

impl KeyringResponse {
    /// The pool, as Consul's CLI names it: `WAN`, `dc1 (LAN)`, `dc1 (LAN, segment alpha)`.
    pub fn pool(&self) -> String {
        if self.wan {
            "WAN".into()
        } else if self.segment.is_empty() {
            format!("{} (LAN)", self.datacenter)
        } else {
            format!("{} (LAN, segment {})", self.datacenter, self.segment)
        }
    }

    /// Whether every member of the pool has `key`.
    pub fn everyone_has(&self, key: &str) -> bool {
        self.keys.get(key).is_some_and(|n| *n == self.num_nodes)
    }
}

/// Keys are shown as their member counts only.
impl fmt::Debug for KeyringResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = |m: &BTreeMap<String, u32>| m.values().copied().collect::<Vec<_>>();
        f.debug_struct("KeyringResponse")
            .field("wan", &self.wan)
            .field("datacenter", &self.datacenter)
            .field("segment", &self.segment)
            .field(
                "keys",
                &format_args!("<{} redacted> {:?}", self.keys.len(), counts(&self.keys)),
            )
            .field(
                "primary_keys",
                &format_args!(
                    "<{} redacted> {:?}",
                    self.primary_keys.len(),
                    counts(&self.primary_keys)
                ),
            )
            .field("messages", &self.messages)
            .field("num_nodes", &self.num_nodes)
            .finish()
    }
}

#[derive(Serialize)]
struct KeyBody<'a> {
    #[serde(rename = "Key")]
    key: &'a str,
}

fn keyring_request(request: Request, key: &str) -> Call<()> {
    Call::new(request.with_json(&KeyBody { key }), parse_unit)
}

/// `GET /v1/operator/keyring`: one answer per pool.
pub fn keyring_list() -> Call<Vec<KeyringResponse>> {
    Call::json(Request::get("/v1/operator/keyring"))
}

/// `POST /v1/operator/keyring`: install `key` (base64) on every member.
pub fn keyring_install(key: &str) -> Call<()> {
    keyring_request(Request::post("/v1/operator/keyring"), key)
}

/// `PUT /v1/operator/keyring`: make the installed `key` the primary one.
pub fn keyring_use(key: &str) -> Call<()> {
    keyring_request(Request::put("/v1/operator/keyring"), key)
}

/// `DELETE /v1/operator/keyring`: remove `key` (not the primary one) from every member.
pub fn keyring_remove(key: &str) -> Call<()> {
    keyring_request(Request::delete("/v1/operator/keyring"), key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeTransport};
    use crate::{Client, Response};

    const RAFT_1_8: &str = include_str!("../tests/fixtures/raft-configuration-1.8.json");
    const RAFT_1_21: &str = include_str!("../tests/fixtures/raft-configuration-1.21.json");
    const AUTOPILOT: &str = include_str!("../tests/fixtures/autopilot-health.json");
    const KEYRING_1_8: &str = include_str!("../tests/fixtures/keyring-1.8.json");
    const KEYRING_1_21: &str = include_str!("../tests/fixtures/keyring-1.21.json");

    #[test]
    fn raft_configuration_parses_old_and_new_shapes() {
        for text in [RAFT_1_8, RAFT_1_21] {
            let c = raft_configuration(true)
                .finish(&Response::new(200, text))
                .unwrap();
            assert_eq!(c.servers.len(), 3);
            assert_eq!(c.leader().unwrap().node, "server1");
            assert_eq!(c.voters().count(), 3);
            assert!(c.index > 0);
        }
        let c = raft_configuration(true)
            .finish(&Response::new(200, RAFT_1_21))
            .unwrap();
        assert_eq!(c.servers[1].address, "[fd00::2]:8300");
        assert_eq!(c.servers[0].id, "8b8c4b52-2a6f-4a8e-b1b8-6e3f1c1e0001");
        assert_eq!(
            raft_configuration(false).request.path,
            "/v1/operator/raft/configuration"
        );
    }

    #[test]
    fn raft_peer_removal_requests() {
        let fake = FakeTransport::new().on("DELETE", "/v1/operator/raft/peer", 200, "");
        let c = Client::new(fake.clone());
        block_on(c.call(raft_remove_peer_by_address("[fd00::3]:8300"))).unwrap();
        block_on(c.call(raft_remove_peer_by_id("8b8c4b52-0003"))).unwrap();
        block_on(c.call(raft_remove_peer("10.0.0.5:8300"))).unwrap();
        block_on(c.call(raft_remove_peer("5e0d2f6c-0000-4000-8000-000000000001"))).unwrap();
        assert_eq!(
            fake.sent(),
            [
                "DELETE /v1/operator/raft/peer?address=%5Bfd00%3A%3A3%5D%3A8300",
                "DELETE /v1/operator/raft/peer?id=8b8c4b52-0003",
                "DELETE /v1/operator/raft/peer?address=10.0.0.5%3A8300",
                "DELETE /v1/operator/raft/peer?id=5e0d2f6c-0000-4000-8000-000000000001",
            ]
        );
    }

    #[test]
    fn autopilot_health_parses() {
        let h = autopilot_health()
            .finish(&Response::new(429, AUTOPILOT))
            .unwrap();
        assert!(!h.healthy);
        assert_eq!(h.failure_tolerance, 0);
        assert_eq!(h.servers.len(), 3);
        let s = &h.servers[2];
        assert_eq!(
            (s.name.as_str(), s.serf_status.as_str(), s.healthy, s.voter),
            ("server3", "failed", false, true)
        );
        assert!(h.servers[0].leader);
        assert_eq!(h.servers[0].last_term, 2);
    }

    #[test]
    fn keyring_lists_parse_and_hide_keys_in_debug() {
        let old = keyring_list()
            .finish(&Response::new(200, KEYRING_1_8))
            .unwrap();
        assert_eq!(old.len(), 2);
        assert_eq!(old[0].pool(), "WAN");
        assert_eq!(old[1].pool(), "dc1 (LAN)");
        assert!(old[1].primary_keys.is_empty());
        assert!(old[1].everyone_has("pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="));
        let new = keyring_list()
            .finish(&Response::new(200, KEYRING_1_21))
            .unwrap();
        assert_eq!(new[1].keys.len(), 2);
        assert_eq!(new[1].primary_keys.len(), 1);
        assert!(!new[1].everyone_has("Z3Nq9wTtXQ3bq2cXmZq6x6vD4XxH2yRZlY3n4nQk8hE="));
        let debug = format!("{new:?}");
        assert!(
            !debug.contains("pUqJ") && !debug.contains("Z3Nq"),
            "{debug}"
        );
        assert!(debug.contains("<2 redacted> [1, 3]"), "{debug}");
    }

    #[test]
    fn keyring_changes_send_the_key_in_the_body() {
        let fake = FakeTransport::new()
            .on("POST", "/v1/operator/keyring", 200, "")
            .on("PUT", "/v1/operator/keyring", 200, "")
            .on(
                "DELETE",
                "/v1/operator/keyring",
                500,
                "Removing the primary keys is not allowed",
            );
        let c = Client::new(fake.clone());
        block_on(c.call(keyring_install("a2V5"))).unwrap();
        block_on(c.call(keyring_use("a2V5"))).unwrap();
        let e = block_on(c.call(keyring_remove("a2V5"))).unwrap_err();
        assert_eq!(e.status(), Some(500));
        let bodies: Vec<String> = fake.requests().iter().map(|r| r.body_text()).collect();
        assert_eq!(bodies, [r#"{"Key":"a2V5"}"#; 3]);
        assert!(!e.to_string().contains("a2V5"));
    }
}
