//! ACLs of `acl = true`: default policy deny, the ACL system bootstrapped once through the
//! API (the management token goes into the secrets file, and from then on into every script
//! consulctl runs, on stdin), and one policy and token per node, installed as the agent's
//! `tokens.agent` and `tokens.default`.
//!
//! The agent tokens are generated (accessor and secret IDs) into the secrets file before any
//! agent starts, so the agent config is written once; this module creates them in Consul with
//! those IDs after the bootstrap. Re-running reads the tokens and policies (one round trip on
//! one server) and writes nothing when they are as they should be.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::json;

use crate::ssh::Connection;
use consulctl_core::model::{Cluster, Host, Secret};

pub use crate::remote::API_REQUESTS as REQUESTS;

/// The policy of a node's agent token.
pub fn policy_name(node: &str) -> String {
    format!("consulctl-agent-{node}")
}

/// The rules of a node's agent policy: write its own node and the services the inventory
/// declares on it, read the rest of the catalog (DNS answers through the default token). No KV.
pub fn policy_rules(host: &Host) -> String {
    let mut r = format!(
        "node {:?} {{\n  policy = \"write\"\n}}\nnode_prefix \"\" {{\n  policy = \"read\"\n}}\n\
         service_prefix \"\" {{\n  policy = \"read\"\n}}\n",
        host.name
    );
    let mut names: Vec<&str> = host.services.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    names.dedup();
    for n in names {
        r.push_str(&format!("service {n:?} {{\n  policy = \"write\"\n}}\n"));
    }
    r
}

/// One API request for [`REQUESTS`].
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    /// JSON body (may hold secrets: it only travels on stdin).
    pub body: Option<String>,
}

impl Request {
    fn get(path: String) -> Request {
        Request {
            method: "GET",
            path,
            body: None,
        }
    }
}

/// Send requests through a host's agent in one round trip; (HTTP code, body) per request.
/// Neither bodies nor answers are logged (tokens).
pub async fn send(conn: &Connection, http: &str, reqs: &[Request]) -> Result<Vec<(u16, String)>> {
    let requests = reqs
        .iter()
        .map(|r| {
            let method = consul_api::Method::parse(r.method)
                .ok_or_else(|| anyhow::anyhow!("internal: HTTP method {}", r.method))?;
            let mut q = consul_api::Request::new(method, r.path.clone());
            if let Some(b) = &r.body {
                q = q.with_body(b.clone().into_bytes());
            }
            Ok(q)
        })
        .collect::<Result<Vec<_>>>()?;
    let answers = crate::consul::client(conn, http)
        .send(requests)
        .await
        .map_err(|e| anyhow::anyhow!("API requests failed: {}", e.message))?;
    Ok(answers
        .into_iter()
        .map(|a| (a.status, String::from_utf8_lossy(&a.body).into_owned()))
        .collect())
}

/// What the bootstrap answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    Token(Secret),
    /// Not yet possible (no leader, ACLs still in legacy mode, not initialised): try again.
    Retry(String),
    /// Bootstrapped before, by someone else or a run whose token was lost.
    Done(String),
}

/// Read `PUT /v1/acl/bootstrap`'s answer.
pub fn bootstrap_answer(code: u16, body: &str) -> Result<Bootstrap> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "SecretID")]
        secret: String,
    }
    match code {
        200 => {
            let a: Answer =
                serde_json::from_str(body).context("the bootstrap answer has no SecretID")?;
            Ok(Bootstrap::Token(Secret::new(a.secret)))
        }
        403 if body.contains("no longer allowed") || body.contains("already") => {
            Ok(Bootstrap::Done(first_line(body)))
        }
        _ => Ok(Bootstrap::Retry(format!(
            "HTTP {code}: {}",
            first_line(body)
        ))),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

/// Bootstrap through one server: wait until the ACL system takes it (a leader, out of legacy
/// mode), return the management token.
pub async fn bootstrap(
    conn: &Connection,
    http: &str,
    secrets_path: &std::path::Path,
    timeout: Duration,
) -> Result<Secret> {
    let deadline = Instant::now() + timeout;
    loop {
        let req = Request {
            method: "PUT",
            path: "/v1/acl/bootstrap".into(),
            body: None,
        };
        let ans = send(conn, http, &[req]).await?;
        let (code, body) = &ans[0];
        match bootstrap_answer(*code, body)? {
            Bootstrap::Token(t) => return Ok(t),
            Bootstrap::Done(msg) => bail!(
                "the ACL system of this cluster was bootstrapped before, and {} has no \
                 acl_management_token: put the management token there, or reset the bootstrap \
                 (Consul: `consul acl bootstrap` reset index) ({msg})",
                secrets_path.display()
            ),
            Bootstrap::Retry(why) => {
                if Instant::now() > deadline {
                    bail!(
                        "the ACL bootstrap did not succeed within {}s: {why}",
                        timeout.as_secs()
                    );
                }
                tracing::debug!(why = %why, "ACL bootstrap not yet possible");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The requests that make a node's policy and token what they should be, given what
/// `GET /v1/acl/policy/name/..` and `GET /v1/acl/token/<accessor>` answered. Pure.
pub fn agent_token_fixes(
    host: &Host,
    accessor: &str,
    secret: &Secret,
    policy_answer: (u16, &str),
    token_answer: (u16, &str),
) -> Result<Vec<Request>> {
    let name = policy_name(&host.name);
    let rules = policy_rules(host);
    let mut out = Vec::new();
    #[derive(Deserialize)]
    struct Policy {
        #[serde(rename = "ID")]
        id: String,
        #[serde(rename = "Rules", default)]
        rules: String,
    }
    match policy_answer {
        (200, body) => {
            let p: Policy =
                serde_json::from_str(body).with_context(|| format!("reading policy {name}"))?;
            if p.rules != rules {
                out.push(Request {
                    method: "PUT",
                    path: format!("/v1/acl/policy/{}", p.id),
                    body: Some(
                        json!({ "ID": p.id, "Name": name, "Rules": rules,
                                "Description": format!("consulctl: agent of {}", host.name) })
                        .to_string(),
                    ),
                });
            }
        }
        (403 | 404, _) => out.push(Request {
            method: "PUT",
            path: "/v1/acl/policy".into(),
            body: Some(
                json!({ "Name": name, "Rules": rules,
                        "Description": format!("consulctl: agent of {}", host.name) })
                .to_string(),
            ),
        }),
        (code, body) => bail!("reading policy {name}: HTTP {code}: {}", first_line(body)),
    }
    #[derive(Deserialize)]
    struct Token {
        #[serde(rename = "SecretID", default)]
        secret: String,
        #[serde(rename = "Policies", default)]
        policies: Vec<PolicyLink>,
    }
    #[derive(Deserialize)]
    struct PolicyLink {
        #[serde(rename = "Name", default)]
        name: String,
    }
    let token_body = json!({
        "AccessorID": accessor,
        "SecretID": secret.expose(),
        "Description": format!("consulctl: agent token of {}", host.name),
        "Policies": [{ "Name": name }],
    })
    .to_string();
    match token_answer {
        (200, body) => {
            let t: Token = serde_json::from_str(body)
                .with_context(|| format!("reading the agent token of {}", host.name))?;
            if t.secret != secret.expose() {
                bail!(
                    "ACL token {accessor} (agent of {}) exists with another secret than the \
                     secrets file holds",
                    host.name
                );
            }
            if !t.policies.iter().any(|p| p.name == name) {
                out.push(Request {
                    method: "PUT",
                    path: format!("/v1/acl/token/{accessor}"),
                    body: Some(token_body),
                });
            }
        }
        (403 | 404, _) => out.push(Request {
            method: "PUT",
            path: "/v1/acl/token".into(),
            body: Some(token_body),
        }),
        (code, body) => bail!(
            "reading the agent token of {}: HTTP {code}: {}",
            host.name,
            first_line(body)
        ),
    }
    Ok(out)
}

/// Make every node's agent policy and token exist as they should, through one server:
/// one round trip to read, one more only when something must be written. Returns how many
/// policies and tokens were written.
pub async fn ensure_agent_tokens(
    conn: &Connection,
    http: &str,
    cluster: &Cluster,
) -> Result<usize> {
    let mut reads = Vec::new();
    let mut hosts = Vec::new();
    for h in &cluster.hosts {
        let t = cluster
            .acl_tokens
            .agents
            .get(&h.name)
            .ok_or_else(|| anyhow!("no agent token for {} in the secrets file", h.name))?;
        reads.push(Request::get(format!(
            "/v1/acl/policy/name/{}",
            policy_name(&h.name)
        )));
        reads.push(Request::get(format!("/v1/acl/token/{}", t.accessor)));
        hosts.push((h, t));
    }
    let answers = send(conn, http, &reads).await?;
    let mut writes = Vec::new();
    for (i, (h, t)) in hosts.iter().enumerate() {
        let p = &answers[2 * i];
        let k = &answers[2 * i + 1];
        writes.extend(agent_token_fixes(
            h,
            &t.accessor,
            &t.secret,
            (p.0, &p.1),
            (k.0, &k.1),
        )?);
    }
    if writes.is_empty() {
        return Ok(0);
    }
    // Policies before tokens (a token names its policy).
    writes.sort_by_key(|r| r.path.starts_with("/v1/acl/token"));
    let answers = send(conn, http, &writes).await?;
    for (r, (code, body)) in writes.iter().zip(&answers) {
        if *code != 200 {
            bail!(
                "{} {}: HTTP {code}: {}",
                r.method,
                r.path.split('/').take(4).collect::<Vec<_>>().join("/"),
                first_line(body)
            );
        }
    }
    tracing::info!(written = writes.len(), "ACL agent policies and tokens");
    Ok(writes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use consulctl_core::model::{BindAddr, Init, Role};

    fn host() -> Host {
        let mut h = Host::minimal(
            "web-1",
            "10.0.0.5",
            Role::Client,
            Init::Systemd,
            BindAddr::Fixed("10.0.0.5".parse().unwrap()),
        );
        h.services.push(consulctl_core::model::ServiceSpec {
            name: "web".into(),
            id: None,
            port: Some(80),
            address: None,
            tags: vec![],
            meta: Default::default(),
            checks: vec![],
        });
        h
    }

    #[test]
    fn the_agent_policy_writes_its_node_and_services_and_reads_no_kv() {
        let r = policy_rules(&host());
        assert!(
            r.contains("node \"web-1\" {\n  policy = \"write\"\n}"),
            "{r}"
        );
        assert!(
            r.contains("service \"web\" {\n  policy = \"write\"\n}"),
            "{r}"
        );
        assert!(
            r.contains("service_prefix \"\" {\n  policy = \"read\"\n}"),
            "{r}"
        );
        assert!(!r.contains("key"), "{r}");
        // Valid HCL.
        hcl::parse(&r).unwrap();
    }

    #[test]
    fn bootstrap_answers() {
        assert_eq!(
            bootstrap_answer(200, r#"{"AccessorID":"a","SecretID":"s-1"}"#).unwrap(),
            Bootstrap::Token(Secret::new("s-1"))
        );
        assert!(matches!(
            bootstrap_answer(
                403,
                "Permission denied: ACL bootstrap no longer allowed (reset index: 12)"
            )
            .unwrap(),
            Bootstrap::Done(_)
        ));
        assert!(matches!(
            bootstrap_answer(500, "The ACL system is currently in legacy mode.").unwrap(),
            Bootstrap::Retry(_)
        ));
        assert!(matches!(
            bootstrap_answer(500, "No cluster leader").unwrap(),
            Bootstrap::Retry(_)
        ));
    }

    #[test]
    fn missing_policy_and_token_are_created_policy_first_with_the_stored_ids() {
        let h = host();
        let s = Secret::new("11111111-2222-4333-8444-555555555555");
        let fixes = agent_token_fixes(
            &h,
            "acc-1",
            &s,
            (404, "ACL not found"),
            (403, "ACL not found"),
        )
        .unwrap();
        assert_eq!(fixes.len(), 2);
        assert_eq!(fixes[0].path, "/v1/acl/policy");
        assert_eq!(fixes[1].path, "/v1/acl/token");
        let body: serde_json::Value =
            serde_json::from_str(fixes[1].body.as_ref().unwrap()).unwrap();
        assert_eq!(body["AccessorID"], "acc-1");
        assert_eq!(body["SecretID"], s.expose());
        assert_eq!(body["Policies"][0]["Name"], "consulctl-agent-web-1");
    }

    #[test]
    fn existing_right_policy_and_token_need_nothing() {
        let h = host();
        let s = Secret::new("sec");
        let policy =
            json!({ "ID": "p1", "Name": "consulctl-agent-web-1", "Rules": policy_rules(&h) })
                .to_string();
        let token = json!({ "AccessorID": "acc", "SecretID": "sec",
                            "Policies": [{ "ID": "p1", "Name": "consulctl-agent-web-1" }] })
        .to_string();
        let fixes = agent_token_fixes(&h, "acc", &s, (200, &policy), (200, &token)).unwrap();
        assert!(fixes.is_empty(), "{fixes:?}");
    }

    #[test]
    fn changed_rules_update_the_policy_in_place() {
        let h = host();
        let s = Secret::new("sec");
        let policy =
            json!({ "ID": "p1", "Name": "consulctl-agent-web-1", "Rules": "node \"web-1\" {}" })
                .to_string();
        let token = json!({ "SecretID": "sec", "Policies": [{ "Name": "consulctl-agent-web-1" }] })
            .to_string();
        let fixes = agent_token_fixes(&h, "acc", &s, (200, &policy), (200, &token)).unwrap();
        assert_eq!(fixes.len(), 1);
        assert_eq!(fixes[0].path, "/v1/acl/policy/p1");
    }

    #[test]
    fn a_token_with_another_secret_is_an_error_not_overwritten() {
        let h = host();
        let policy = json!({ "ID": "p1", "Rules": policy_rules(&h) }).to_string();
        let token = json!({ "SecretID": "zz-wrong-zz", "Policies": [] }).to_string();
        let e = agent_token_fixes(
            &h,
            "acc",
            &Secret::new("sec"),
            (200, &policy),
            (200, &token),
        )
        .unwrap_err();
        assert!(format!("{e}").contains("another secret"), "{e}");
        assert!(
            !format!("{e}").contains("zz-wrong-zz"),
            "never quotes a secret: {e}"
        );
    }
}
