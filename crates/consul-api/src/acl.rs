//! `/v1/acl`: bootstrap, tokens and policies.
//!
//! A token's `SecretID` is a credential: [`AclToken`]'s `Debug` leaves it out.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::client::{parse_bool, Call};
use crate::error::Error;
use crate::request::{PathBuilder, Request, Response};

/// A policy named by a token: `ID`, or `Name` when creating.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AclPolicyLink {
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "Name", skip_serializing_if = "String::is_empty")]
    pub name: String,
}

impl AclPolicyLink {
    pub fn by_name(name: &str) -> Self {
        AclPolicyLink {
            id: String::new(),
            name: name.into(),
        }
    }
}

/// An ACL token; also the body of [`token_create`] (empty fields are not sent, so Consul
/// generates the IDs unless they are set).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AclToken {
    #[serde(rename = "AccessorID", skip_serializing_if = "String::is_empty")]
    pub accessor_id: String,
    #[serde(rename = "SecretID", skip_serializing_if = "String::is_empty")]
    pub secret_id: String,
    #[serde(rename = "Description", skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(
        rename = "Policies",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::de::null_default"
    )]
    pub policies: Vec<AclPolicyLink>,
    #[serde(rename = "Local", skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
    #[serde(rename = "CreateIndex", skip_serializing)]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex", skip_serializing)]
    pub modify_index: u64,
}

impl fmt::Debug for AclToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclToken")
            .field("accessor_id", &self.accessor_id)
            .field(
                "secret_id",
                &if self.secret_id.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("description", &self.description)
            .field("policies", &self.policies)
            .field("local", &self.local)
            .field("create_index", &self.create_index)
            .field("modify_index", &self.modify_index)
            .finish()
    }
}

/// An ACL policy; also the body of [`policy_create`] and [`policy_update`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AclPolicy {
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Description", skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// HCL or JSON rules.
    #[serde(rename = "Rules")]
    pub rules: String,
    /// Where the policy applies; all datacenters when empty.
    #[serde(
        rename = "Datacenters",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::de::null_default"
    )]
    pub datacenters: Vec<String>,
    #[serde(rename = "CreateIndex", skip_serializing)]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex", skip_serializing)]
    pub modify_index: u64,
}

/// `PUT /v1/acl/bootstrap`: the initial management token. Consul answers 403 once the ACL
/// system is bootstrapped; see [`bootstrap_reset_index`].
pub fn bootstrap() -> Call<AclToken> {
    Call::json(Request::put("/v1/acl/bootstrap"))
}

/// The reset index in Consul's refusal of a second bootstrap
/// (`ACL bootstrap no longer allowed (reset index: 13)`), None for other errors.
pub fn bootstrap_reset_index(error: &Error) -> Option<u64> {
    let Error::Status {
        status: 403, body, ..
    } = error
    else {
        return None;
    };
    let rest = body.split("reset index: ").nth(1)?;
    rest.trim_end_matches(')').trim().parse().ok()
}

/// `PUT /v1/acl/token`: create a token.
pub fn token_create(token: &AclToken) -> Call<AclToken> {
    Call::json(Request::put("/v1/acl/token").with_json(token))
}

/// `PUT /v1/acl/token/<accessor ID>`: replace a token (`token.accessor_id` names it; the
/// secret and policies given replace the stored ones).
pub fn token_update(token: &AclToken) -> Call<AclToken> {
    Call::json(
        Request::put(
            PathBuilder::new("/v1/acl/token")
                .segment(&token.accessor_id)
                .build(),
        )
        .with_json(token),
    )
}

fn parse_optional<T: serde::de::DeserializeOwned>(r: &Response) -> Result<Option<T>, Error> {
    if r.status == 404 {
        return Ok(None);
    }
    crate::client::parse_json(r).map(Some)
}

/// `GET /v1/acl/token/<accessor ID>`; None when Consul answers 404.
pub fn token_read(accessor_id: &str) -> Call<Option<AclToken>> {
    let mut c = Call::new(
        Request::get(
            PathBuilder::new("/v1/acl/token")
                .segment(accessor_id)
                .build(),
        ),
        parse_optional::<AclToken>,
    );
    c.accept = &[404];
    c
}

/// `GET /v1/acl/token/self`: the token the transport sends.
pub fn token_read_self() -> Call<AclToken> {
    Call::json(Request::get("/v1/acl/token/self"))
}

/// `DELETE /v1/acl/token/<accessor ID>`; Consul answers `true`.
pub fn token_delete(accessor_id: &str) -> Call<bool> {
    Call::new(
        Request::delete(
            PathBuilder::new("/v1/acl/token")
                .segment(accessor_id)
                .build(),
        ),
        parse_bool,
    )
}

/// `PUT /v1/acl/policy`: create a policy.
pub fn policy_create(policy: &AclPolicy) -> Call<AclPolicy> {
    Call::json(Request::put("/v1/acl/policy").with_json(policy))
}

/// `GET /v1/acl/policy/<ID>`; None when Consul answers 404.
pub fn policy_read(id: &str) -> Call<Option<AclPolicy>> {
    let mut c = Call::new(
        Request::get(PathBuilder::new("/v1/acl/policy").segment(id).build()),
        parse_optional::<AclPolicy>,
    );
    c.accept = &[404];
    c
}

/// `GET /v1/acl/policy/name/<name>`; None when Consul answers 404.
pub fn policy_read_by_name(name: &str) -> Call<Option<AclPolicy>> {
    let mut c = Call::new(
        Request::get(
            PathBuilder::new("/v1/acl/policy/name")
                .segment(name)
                .build(),
        ),
        parse_optional::<AclPolicy>,
    );
    c.accept = &[404];
    c
}

/// `PUT /v1/acl/policy/<ID>`: replace a policy (`policy.id` names it).
pub fn policy_update(policy: &AclPolicy) -> Call<AclPolicy> {
    Call::json(
        Request::put(
            PathBuilder::new("/v1/acl/policy")
                .segment(&policy.id)
                .build(),
        )
        .with_json(policy),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeTransport};
    use crate::Client;

    const TOKEN: &str = include_str!("../tests/fixtures/acl-token.json");
    const POLICY: &str = include_str!("../tests/fixtures/acl-policy.json");

    #[test]
    fn tokens_parse_and_hide_their_secret() {
        let t = bootstrap().finish(&Response::new(200, TOKEN)).unwrap();
        assert_eq!(t.accessor_id, "b5b1a918-50bc-fc46-dec2-d481359da4e3");
        assert_eq!(t.secret_id, "527347d3-9653-07dc-adc0-598b8f2b0f4d");
        assert_eq!(t.policies[0].name, "global-management");
        assert!(!t.local);
        let debug = format!("{t:?}");
        assert!(!debug.contains("527347d3"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(bootstrap().request.line(), "PUT /v1/acl/bootstrap");
    }

    #[test]
    fn a_second_bootstrap_names_the_reset_index() {
        let fake = FakeTransport::new().on(
            "PUT",
            "/v1/acl/bootstrap",
            403,
            "Permission denied: ACL bootstrap no longer allowed (reset index: 13)",
        );
        let e = block_on(Client::new(fake).call(bootstrap())).unwrap_err();
        assert_eq!(bootstrap_reset_index(&e), Some(13));
        assert_eq!(
            bootstrap_reset_index(&Error::Transport(crate::TransportError::new("x"))),
            None
        );
    }

    #[test]
    fn token_create_sends_only_what_is_set() {
        let new = AclToken {
            description: "agent token".into(),
            policies: vec![AclPolicyLink::by_name("agent")],
            ..AclToken::default()
        };
        let c = token_create(&new);
        assert_eq!(c.request.line(), "PUT /v1/acl/token");
        assert_eq!(
            c.request.body_text(),
            r#"{"Description":"agent token","Policies":[{"Name":"agent"}]}"#
        );
        let created = c.finish(&Response::new(200, TOKEN)).unwrap();
        assert_eq!(created.create_index, 12);
    }

    #[test]
    fn token_update_names_the_accessor_in_path_and_body() {
        let t = AclToken {
            accessor_id: "acc-1".into(),
            secret_id: "sec-1".into(),
            policies: vec![AclPolicyLink::by_name("agent")],
            ..AclToken::default()
        };
        let c = token_update(&t);
        assert_eq!(c.request.line(), "PUT /v1/acl/token/acc-1");
        assert_eq!(
            c.request.body_text(),
            r#"{"AccessorID":"acc-1","SecretID":"sec-1","Policies":[{"Name":"agent"}]}"#
        );
        let fake = FakeTransport::new().on("PUT", "/v1/acl/token/acc-1", 200, TOKEN);
        assert!(block_on(Client::new(fake).call(token_update(&t))).is_ok());
    }

    #[test]
    fn token_reads_and_delete() {
        let fake = FakeTransport::new()
            .on("GET", "/v1/acl/token/self", 200, TOKEN)
            .on(
                "GET",
                "/v1/acl/token/b5b1a918-50bc-fc46-dec2-d481359da4e3",
                200,
                TOKEN,
            )
            .on("GET", "/v1/acl/token/gone", 404, "ACL not found")
            .on(
                "DELETE",
                "/v1/acl/token/b5b1a918-50bc-fc46-dec2-d481359da4e3",
                200,
                "true",
            );
        let c = Client::new(fake);
        assert_eq!(
            block_on(c.call(token_read_self())).unwrap().description,
            "Bootstrap Token (Global Management)"
        );
        assert!(
            block_on(c.call(token_read("b5b1a918-50bc-fc46-dec2-d481359da4e3")))
                .unwrap()
                .is_some()
        );
        assert_eq!(block_on(c.call(token_read("gone"))).unwrap(), None);
        assert!(block_on(c.call(token_delete("b5b1a918-50bc-fc46-dec2-d481359da4e3"))).unwrap());
    }

    #[test]
    fn policies_create_read_update() {
        let fake = FakeTransport::new()
            .on("PUT", "/v1/acl/policy", 200, POLICY)
            .on("GET", "/v1/acl/policy/name/agent", 200, POLICY)
            .on(
                "GET",
                "/v1/acl/policy/name/missing",
                404,
                "ACL policy not found",
            )
            .on(
                "GET",
                "/v1/acl/policy/e359bd81-baca-903e-7e64-1ccd9fdc78f5",
                200,
                POLICY,
            )
            .on(
                "PUT",
                "/v1/acl/policy/e359bd81-baca-903e-7e64-1ccd9fdc78f5",
                200,
                POLICY,
            );
        let c = Client::new(fake.clone());
        let p = AclPolicy {
            name: "agent".into(),
            rules: "node_prefix \"\" { policy = \"write\" }".into(),
            ..AclPolicy::default()
        };
        let created = block_on(c.call(policy_create(&p))).unwrap();
        assert_eq!(created.id, "e359bd81-baca-903e-7e64-1ccd9fdc78f5");
        assert_eq!(created.datacenters, ["dc1"]);
        assert_eq!(
            block_on(c.call(policy_read_by_name("agent")))
                .unwrap()
                .unwrap()
                .name,
            "agent"
        );
        assert_eq!(
            block_on(c.call(policy_read_by_name("missing"))).unwrap(),
            None
        );
        assert!(block_on(c.call(policy_read(&created.id)))
            .unwrap()
            .is_some());
        block_on(c.call(policy_update(&created))).unwrap();
        let reqs = fake.requests();
        assert_eq!(
            reqs[0].body_text(),
            r#"{"Name":"agent","Rules":"node_prefix \"\" { policy = \"write\" }"}"#
        );
        let update: serde_json::Value =
            serde_json::from_slice(reqs[4].body.as_ref().unwrap()).unwrap();
        assert_eq!(update["ID"], "e359bd81-baca-903e-7e64-1ccd9fdc78f5");
        assert!(update.get("CreateIndex").is_none());
    }
}
