//! ACLs of `acl = true`: default policy deny, the ACL system bootstrapped once through the
//! API (the management token goes into the secrets file, and from then on into every script
//! consulctl runs, on stdin), and one policy and token per node, installed as the agent's
//! `tokens.agent` and `tokens.default`.
//!
//! The agent tokens are generated (accessor and secret IDs) into the secrets file before any
//! agent starts, so the agent config is written once; this module creates them in Consul with
//! those IDs after the bootstrap. Re-running reads the tokens and policies (one round trip on
//! one server) and writes nothing when they are as they should be.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use consul_api::acl::{self as api, AclPolicy, AclPolicyLink, AclToken};
use consul_api::poll::{self, Progress};
use consul_api::{Call, Client};
use serde::Deserialize;

use crate::remote::ssh::Connection;
use consulctl_core::model::{Cluster, Host, Secret};

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

/// The policy of a host's Docker registrar token.
pub fn registrar_policy_name(node: &str) -> String {
    format!("consulctl-registrar-{node}")
}

/// The rules of a registrar's policy: it registers whatever services its containers name
/// (`service_prefix ""` write), its own node check (node write), and reads its agent (the
/// agent's services and checks); no KV, no ACL, no other node.
pub fn registrar_policy_rules(node: &str) -> String {
    format!(
        "service_prefix \"\" {{\n  policy = \"write\"\n}}\nnode {node:?} {{\n  policy = \"write\"\n}}\n\
         agent {node:?} {{\n  policy = \"read\"\n}}\n"
    )
}

/// The policy of a host's LB sync daemon token.
pub fn lb_policy_name(node: &str) -> String {
    format!("consulctl-lb-{node}")
}

/// The rules of an LB daemon's policy: it reads the catalog (every node and service), keeps
/// its own node check (node write), reads its agent, and publishes what it serves under its
/// own KV key; nothing else.
pub fn lb_policy_rules(node: &str) -> String {
    let key = format!("{}{node}", consulctl_core::lb::KV_PREFIX);
    format!(
        "node_prefix \"\" {{\n  policy = \"read\"\n}}\nservice_prefix \"\" {{\n  policy = \"read\"\n}}\n\
         service \"consulctl-lb\" {{\n  policy = \"write\"\n}}\n\
         node {node:?} {{\n  policy = \"write\"\n}}\nagent {node:?} {{\n  policy = \"read\"\n}}\n\
         key_prefix {key:?} {{\n  policy = \"write\"\n}}\n"
    )
}

/// The daemons of `consulctl-host` that get a token of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonToken {
    /// The Docker registrar (policy `consulctl-registrar-<node>`).
    Registrar,
    /// The LB sync daemon (policy `consulctl-lb-<node>`).
    Lb,
}

impl DaemonToken {
    pub const ALL: [DaemonToken; 2] = [DaemonToken::Registrar, DaemonToken::Lb];

    /// Does the inventory run this daemon on `host`?
    pub fn runs_on(self, host: &Host) -> bool {
        match self {
            DaemonToken::Registrar => host.registrar.is_some(),
            DaemonToken::Lb => host.lb.is_some(),
        }
    }

    /// The daemons' tokens in the secrets file, by node.
    pub fn tokens(
        self,
        cluster: &Cluster,
    ) -> &std::collections::BTreeMap<String, consulctl_core::model::AgentToken> {
        match self {
            DaemonToken::Registrar => &cluster.acl_tokens.registrars,
            DaemonToken::Lb => &cluster.acl_tokens.lbs,
        }
    }

    pub fn policy_name(self, node: &str) -> String {
        match self {
            DaemonToken::Registrar => registrar_policy_name(node),
            DaemonToken::Lb => lb_policy_name(node),
        }
    }

    /// Its name in messages (`registrar token of ...`).
    fn short(self) -> &'static str {
        match self {
            DaemonToken::Registrar => "registrar",
            DaemonToken::Lb => "LB daemon",
        }
    }

    fn spec(self, node: &str) -> TokenSpec {
        let (rules, what) = match self {
            DaemonToken::Registrar => (
                registrar_policy_rules(node),
                format!("Docker registrar of {node}"),
            ),
            DaemonToken::Lb => (lb_policy_rules(node), format!("LB sync daemon of {node}")),
        };
        TokenSpec {
            policy: self.policy_name(node),
            rules,
            what,
            token_what: format!("{} token of {node}", self.short()),
        }
    }
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

/// The bootstrap call's result as [`Bootstrap`]; `Err` when the agent gave no answer.
pub fn bootstrap_result(res: Result<AclToken, consul_api::Error>) -> Result<Bootstrap> {
    match res {
        Ok(t) if !t.secret_id.is_empty() => Ok(Bootstrap::Token(Secret::new(t.secret_id))),
        Ok(_) => bail!("the bootstrap answer has no SecretID"),
        Err(consul_api::Error::Status { status, body, .. }) => bootstrap_answer(status, &body),
        Err(consul_api::Error::Decode { source, .. }) => {
            Err(anyhow!(source).context("the bootstrap answer has no SecretID"))
        }
        Err(e) => Err(anyhow!("API requests failed: {e}")),
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
    bootstrap_with(
        &crate::remote::consul::client(conn, http),
        secrets_path,
        timeout,
    )
    .await
}

/// [`bootstrap`] through a client: `PUT /v1/acl/bootstrap` every 500 ms while Consul says
/// "not yet"; a cluster bootstrapped before, or an agent that does not answer, stops at once.
pub async fn bootstrap_with(
    client: &Client,
    secrets_path: &std::path::Path,
    timeout: Duration,
) -> Result<Secret> {
    let res = poll::wait_until(
        "the ACL bootstrap",
        timeout,
        Duration::from_millis(500),
        || async {
            let answer = match bootstrap_result(client.call(api::bootstrap()).await) {
                Ok(a) => a,
                Err(e) => return Ok::<_, String>(Progress::Ready(Err(e))),
            };
            Ok(match answer {
                Bootstrap::Token(t) => Progress::Ready(Ok(t)),
                Bootstrap::Done(msg) => Progress::Ready(Err(anyhow!(
                    "the ACL system of this cluster was bootstrapped before, and {} has no \
                     acl_management_token: put the management token there, or reset the \
                     bootstrap (Consul: `consul acl bootstrap` reset index) ({msg})",
                    secrets_path.display()
                ))),
                Bootstrap::Retry(why) => {
                    tracing::debug!(why = %why, "ACL bootstrap not yet possible");
                    Progress::Pending(why)
                }
            })
        },
    )
    .await;
    match res {
        Ok(r) => r,
        Err(t) => bail!(
            "the ACL bootstrap did not succeed within {}s: {}",
            timeout.as_secs(),
            crate::engine::verify::last_seen(&t)
        ),
    }
}

/// A write that makes a node's agent policy or token what it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    CreatePolicy(AclPolicy),
    UpdatePolicy(AclPolicy),
    CreateToken(AclToken),
    UpdateToken(AclToken),
}

impl Fix {
    /// The call that writes it (its answer is not needed).
    pub fn call(&self) -> Call<()> {
        let request = match self {
            Fix::CreatePolicy(p) => api::policy_create(p).request,
            Fix::UpdatePolicy(p) => api::policy_update(p).request,
            Fix::CreateToken(t) => api::token_create(t).request,
            Fix::UpdateToken(t) => api::token_update(t).request,
        };
        Call::new(request, |_| Ok(()))
    }

    fn is_token(&self) -> bool {
        matches!(self, Fix::CreateToken(_) | Fix::UpdateToken(_))
    }
}

/// A read that found nothing: 404, or 403 (Consul answers `403 ACL not found` for a token or
/// policy that does not exist).
fn absent<T>(res: Result<Option<T>, consul_api::Error>, what: &str) -> Result<Option<T>> {
    match res {
        Ok(v) => Ok(v),
        Err(consul_api::Error::Status {
            status: 403 | 404, ..
        }) => Ok(None),
        Err(consul_api::Error::Status { status, body, .. }) => {
            bail!("{what}: HTTP {status}: {}", first_line(&body))
        }
        Err(consul_api::Error::Decode { source, .. }) => {
            Err(anyhow!(source).context(what.to_string()))
        }
        Err(e) => Err(anyhow!("API requests failed: {e}")),
    }
}

/// The writes that make a node's policy and token what they should be, given what
/// `GET /v1/acl/policy/name/..` and `GET /v1/acl/token/<accessor>` answered. Pure.
pub fn agent_token_fixes(
    host: &Host,
    accessor: &str,
    secret: &Secret,
    policy_answer: Result<Option<AclPolicy>, consul_api::Error>,
    token_answer: Result<Option<AclToken>, consul_api::Error>,
) -> Result<Vec<Fix>> {
    token_fixes(
        &TokenSpec {
            policy: policy_name(&host.name),
            rules: policy_rules(host),
            what: format!("agent of {}", host.name),
            token_what: format!("agent token of {}", host.name),
        },
        accessor,
        secret,
        policy_answer,
        token_answer,
    )
}

/// [`agent_token_fixes`] for the token of one of a host's daemons.
pub fn daemon_token_fixes(
    daemon: DaemonToken,
    host: &Host,
    accessor: &str,
    secret: &Secret,
    policy_answer: Result<Option<AclPolicy>, consul_api::Error>,
    token_answer: Result<Option<AclToken>, consul_api::Error>,
) -> Result<Vec<Fix>> {
    token_fixes(
        &daemon.spec(&host.name),
        accessor,
        secret,
        policy_answer,
        token_answer,
    )
}

/// A token with one policy of its own.
struct TokenSpec {
    policy: String,
    rules: String,
    /// For the policy's description (`consulctl: <what>`).
    what: String,
    /// For the token's description and messages.
    token_what: String,
}

fn token_fixes(
    spec: &TokenSpec,
    accessor: &str,
    secret: &Secret,
    policy_answer: Result<Option<AclPolicy>, consul_api::Error>,
    token_answer: Result<Option<AclToken>, consul_api::Error>,
) -> Result<Vec<Fix>> {
    let name = spec.policy.clone();
    let rules = spec.rules.clone();
    let description = format!("consulctl: {}", spec.what);
    let mut out = Vec::new();
    match absent(policy_answer, &format!("reading policy {name}"))? {
        Some(p) => {
            if p.rules != rules {
                out.push(Fix::UpdatePolicy(AclPolicy {
                    id: p.id,
                    name: name.clone(),
                    rules,
                    description,
                    ..AclPolicy::default()
                }));
            }
        }
        None => out.push(Fix::CreatePolicy(AclPolicy {
            name: name.clone(),
            rules,
            description,
            ..AclPolicy::default()
        })),
    }
    let token = AclToken {
        accessor_id: accessor.to_string(),
        secret_id: secret.expose().to_string(),
        description: format!("consulctl: {}", spec.token_what),
        policies: vec![AclPolicyLink::by_name(&name)],
        ..AclToken::default()
    };
    let what = format!("reading the {}", spec.token_what);
    match absent(token_answer, &what)? {
        Some(t) => {
            if t.secret_id != secret.expose() {
                bail!(
                    "ACL token {accessor} ({}) exists with another secret than the \
                     secrets file holds",
                    spec.token_what
                );
            }
            if !t.policies.iter().any(|p| p.name == name) {
                out.push(Fix::UpdateToken(token));
            }
        }
        None => out.push(Fix::CreateToken(token)),
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
    ensure_agent_tokens_with(&crate::remote::consul::client(conn, http), cluster).await
}

/// [`ensure_agent_tokens`] through a client. The tokens of the hosts' daemons too (Docker
/// registrar: policy `consulctl-registrar-<node>`; LB sync daemon: `consulctl-lb-<node>`).
pub async fn ensure_agent_tokens_with(client: &Client, cluster: &Cluster) -> Result<usize> {
    let mut reads = Vec::new();
    let mut hosts = Vec::new();
    for h in &cluster.hosts {
        let t = cluster
            .acl_tokens
            .agents
            .get(&h.name)
            .ok_or_else(|| anyhow!("no agent token for {} in the secrets file", h.name))?;
        let policy = api::policy_read_by_name(&policy_name(&h.name));
        let token = api::token_read(&t.accessor);
        reads.push(policy.request.clone());
        reads.push(token.request.clone());
        hosts.push((h, t, policy, token, None));
    }
    for daemon in DaemonToken::ALL {
        for h in cluster.hosts.iter().filter(|h| daemon.runs_on(h)) {
            let t = daemon.tokens(cluster).get(&h.name).ok_or_else(|| {
                anyhow!(
                    "no {} token for {} in the secrets file",
                    daemon.short(),
                    h.name
                )
            })?;
            let policy = api::policy_read_by_name(&daemon.policy_name(&h.name));
            let token = api::token_read(&t.accessor);
            reads.push(policy.request.clone());
            reads.push(token.request.clone());
            hosts.push((h, t, policy, token, Some(daemon)));
        }
    }
    let answers = client
        .send(reads)
        .await
        .map_err(|e| anyhow!("API requests failed: {}", e.message))?;
    let mut writes = Vec::new();
    for (i, (h, t, policy, token, daemon)) in hosts.iter().enumerate() {
        let (policy, token) = (
            policy.finish(&answers[2 * i]),
            token.finish(&answers[2 * i + 1]),
        );
        writes.extend(match daemon {
            Some(d) => daemon_token_fixes(*d, h, &t.accessor, &t.secret, policy, token)?,
            None => agent_token_fixes(h, &t.accessor, &t.secret, policy, token)?,
        });
    }
    if writes.is_empty() {
        return Ok(0);
    }
    // Policies before tokens (a token names its policy).
    writes.sort_by_key(Fix::is_token);
    let calls: Vec<Call<()>> = writes.iter().map(Fix::call).collect();
    let lines: Vec<(consul_api::Method, String)> = calls
        .iter()
        .map(|c| (c.request.method, c.request.path.clone()))
        .collect();
    let answers = client.call_all(calls).await;
    for ((method, path), answer) in lines.iter().zip(answers) {
        match answer {
            Ok(()) => {}
            // The path without the accessor or policy ID.
            Err(consul_api::Error::Status { status, body, .. }) => bail!(
                "{method} {}: HTTP {status}: {}",
                path.split('/').take(4).collect::<Vec<_>>().join("/"),
                first_line(&body)
            ),
            Err(e) => bail!("API requests failed: {e}"),
        }
    }
    tracing::info!(written = writes.len(), "ACL agent policies and tokens");
    Ok(writes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_api::testing::{block_on, FakeTransport};
    use consul_api::Response;
    use consulctl_core::model::{BindAddr, Init, Role};
    use serde_json::json;

    /// What reading the policy answers, through its call.
    fn policy(code: u16, body: &str) -> Result<Option<AclPolicy>, consul_api::Error> {
        api::policy_read_by_name("consulctl-agent-web-1").finish(&Response::new(code, body))
    }

    /// What reading the token answers, through its call.
    fn token(code: u16, body: &str) -> Result<Option<AclToken>, consul_api::Error> {
        api::token_read("acc").finish(&Response::new(code, body))
    }

    fn path(f: &Fix) -> String {
        f.call().request.path
    }

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
            policy(404, "ACL not found"),
            token(403, "ACL not found"),
        )
        .unwrap();
        assert_eq!(fixes.len(), 2);
        assert_eq!(path(&fixes[0]), "/v1/acl/policy");
        assert_eq!(path(&fixes[1]), "/v1/acl/token");
        let body: serde_json::Value =
            serde_json::from_str(&fixes[1].call().request.body_text()).unwrap();
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
        let fixes = agent_token_fixes(
            &h,
            "acc",
            &s,
            self::policy(200, &policy),
            self::token(200, &token),
        )
        .unwrap();
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
        let fixes = agent_token_fixes(
            &h,
            "acc",
            &s,
            self::policy(200, &policy),
            self::token(200, &token),
        )
        .unwrap();
        assert_eq!(fixes.len(), 1);
        assert_eq!(path(&fixes[0]), "/v1/acl/policy/p1");
        let body: serde_json::Value =
            serde_json::from_str(&fixes[0].call().request.body_text()).unwrap();
        assert_eq!(body["ID"], "p1");
        assert_eq!(body["Rules"], policy_rules(&h));
        assert_eq!(body["Description"], "consulctl: agent of web-1");
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
            self::policy(200, &policy),
            self::token(200, &token),
        )
        .unwrap_err();
        assert!(format!("{e}").contains("another secret"), "{e}");
        assert!(
            !format!("{e}").contains("zz-wrong-zz"),
            "never quotes a secret: {e}"
        );
    }

    #[test]
    fn other_read_errors_are_errors_with_the_status() {
        let h = host();
        let e = agent_token_fixes(
            &h,
            "acc",
            &Secret::new("sec"),
            policy(500, "rpc error: No cluster leader\nmore"),
            token(404, ""),
        )
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "reading policy consulctl-agent-web-1: HTTP 500: rpc error: No cluster leader"
        );
    }

    #[test]
    fn a_token_without_its_policy_is_updated_in_place() {
        let h = host();
        let policy = json!({ "ID": "p1", "Rules": policy_rules(&h) }).to_string();
        let token = json!({ "SecretID": "sec", "Policies": [] }).to_string();
        let fixes = agent_token_fixes(
            &h,
            "acc",
            &Secret::new("sec"),
            self::policy(200, &policy),
            self::token(200, &token),
        )
        .unwrap();
        assert_eq!(fixes.len(), 1);
        assert_eq!(fixes[0].call().request.line(), "PUT /v1/acl/token/acc");
    }

    #[test]
    fn ensure_reads_in_one_round_trip_and_writes_policies_before_tokens() {
        let text = "[cluster]\ndatacenter = \"dc1\"\nacl = true\n[consul]\nversion = \"1.8.7\"\n\
source = { package = \"auto\" }\n\
[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n";
        let mut cluster =
            consulctl_core::inventory::parse(std::path::Path::new("inv.toml"), text).unwrap();
        cluster.acl_tokens.agents.insert(
            "s1".into(),
            consulctl_core::model::AgentToken {
                accessor: "acc-s1".into(),
                secret: Secret::new("sec-s1"),
            },
        );
        let fake = FakeTransport::new()
            .on(
                "GET",
                "/v1/acl/policy/name/consulctl-agent-s1",
                403,
                "ACL not found",
            )
            .on("GET", "/v1/acl/token/acc-s1", 403, "ACL not found")
            .on("PUT", "/v1/acl/policy", 200, "{}")
            .on("PUT", "/v1/acl/token", 200, "{}");
        let n = block_on(ensure_agent_tokens_with(
            &Client::new(fake.clone()),
            &cluster,
        ))
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(fake.batches(), [2, 2]);
        assert_eq!(
            fake.sent()[2..],
            ["PUT /v1/acl/policy", "PUT /v1/acl/token"]
        );
        // A refused write names the endpoint, not the IDs.
        let fake = FakeTransport::new()
            .on(
                "GET",
                "/v1/acl/policy/name/consulctl-agent-s1",
                200,
                &json!({"ID": "p1", "Rules": ""}).to_string(),
            )
            .on("GET", "/v1/acl/token/acc-s1", 404, "")
            .on("PUT", "/v1/acl/policy/p1", 403, "Permission denied")
            .on("PUT", "/v1/acl/token", 200, "{}");
        let e = block_on(ensure_agent_tokens_with(&Client::new(fake), &cluster)).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "PUT /v1/acl/policy: HTTP 403: Permission denied"
        );
    }

    #[test]
    fn the_registrar_policy_writes_services_and_its_node_reads_its_agent_and_nothing_else() {
        let r = registrar_policy_rules("docker-1");
        assert_eq!(
            r,
            "service_prefix \"\" {\n  policy = \"write\"\n}\n\
             node \"docker-1\" {\n  policy = \"write\"\n}\n\
             agent \"docker-1\" {\n  policy = \"read\"\n}\n"
        );
        // Nothing else: no KV, no ACL, no other node, no prefix writes beyond services.
        for word in [
            "key",
            "acl",
            "node_prefix",
            "agent_prefix",
            "operator",
            "keyring",
        ] {
            assert!(!r.contains(word), "{word} in {r}");
        }
        let body: hcl::Body = hcl::from_str(&r).unwrap();
        assert_eq!(body.blocks().count(), 3);
        assert_eq!(
            registrar_policy_name("docker-1"),
            "consulctl-registrar-docker-1"
        );
    }

    #[test]
    fn registrar_token_is_created_with_its_own_policy_and_kept_when_right() {
        let h = host();
        let s = Secret::new("reg-secret");
        let fixes = daemon_token_fixes(
            DaemonToken::Registrar,
            &h,
            "reg-acc",
            &s,
            policy(404, "ACL not found"),
            token(404, ""),
        )
        .unwrap();
        assert_eq!(fixes.len(), 2);
        let body: serde_json::Value =
            serde_json::from_str(&fixes[0].call().request.body_text()).unwrap();
        assert_eq!(body["Name"], "consulctl-registrar-web-1");
        assert_eq!(body["Rules"], registrar_policy_rules("web-1"));
        let body: serde_json::Value =
            serde_json::from_str(&fixes[1].call().request.body_text()).unwrap();
        assert_eq!(body["AccessorID"], "reg-acc");
        assert_eq!(body["Policies"][0]["Name"], "consulctl-registrar-web-1");
        let policy = json!({ "ID": "p9", "Name": "consulctl-registrar-web-1",
                             "Rules": registrar_policy_rules("web-1") })
        .to_string();
        let token = json!({ "AccessorID": "reg-acc", "SecretID": "reg-secret",
                            "Policies": [{ "ID": "p9", "Name": "consulctl-registrar-web-1" }] })
        .to_string();
        let fixes = daemon_token_fixes(
            DaemonToken::Registrar,
            &h,
            "reg-acc",
            &s,
            self::policy(200, &policy),
            self::token(200, &token),
        )
        .unwrap();
        assert!(fixes.is_empty(), "{fixes:?}");
    }

    #[test]
    fn the_lb_policy_reads_the_catalog_writes_its_own_service_node_and_kv_key() {
        let r = lb_policy_rules("lb-1");
        assert_eq!(
            r,
            "node_prefix \"\" {\n  policy = \"read\"\n}\nservice_prefix \"\" {\n  policy = \"read\"\n}\n\
             service \"consulctl-lb\" {\n  policy = \"write\"\n}\n\
             node \"lb-1\" {\n  policy = \"write\"\n}\nagent \"lb-1\" {\n  policy = \"read\"\n}\n\
             key_prefix \"consulctl/lb/lb-1\" {\n  policy = \"write\"\n}\n"
        );
        assert_eq!(lb_policy_name("lb-1"), "consulctl-lb-lb-1");
        let mut h = Host::minimal(
            "lb-1",
            "10.0.0.9",
            Role::Client,
            Init::Systemd,
            BindAddr::Fixed("10.0.0.9".parse().unwrap()),
        );
        assert!(!DaemonToken::Lb.runs_on(&h));
        h.lb = Some(consulctl_core::model::LbSpec::defaults(Init::Systemd));
        assert!(DaemonToken::Lb.runs_on(&h));
        let fixes = daemon_token_fixes(
            DaemonToken::Lb,
            &h,
            "lb-acc",
            &Secret::new("lb-secret"),
            policy(403, "ACL not found"),
            token(403, "ACL not found"),
        )
        .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&fixes[0].call().request.body_text()).unwrap();
        assert_eq!(body["Name"], "consulctl-lb-lb-1");
        assert_eq!(body["Description"], "consulctl: LB sync daemon of lb-1");
    }

    #[test]
    fn ensure_covers_the_registrar_and_lb_tokens_in_the_same_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("consulctl-host"), "x").unwrap();
        let text = "[cluster]\ndatacenter = \"dc1\"\nacl = true\n[consul]\nversion = \"1.8.7\"\n\
source = { package = \"auto\" }\n\
[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
[registrar]\non = \"s1\"\nbinary = \"consulctl-host\"\n[lb]\non = \"s1\"\n";
        let mut cluster =
            consulctl_core::inventory::parse(&dir.path().join("inv.toml"), text).unwrap();
        let tok = |a: &str, s: &str| consulctl_core::model::AgentToken {
            accessor: a.into(),
            secret: Secret::new(s),
        };
        cluster
            .acl_tokens
            .agents
            .insert("s1".into(), tok("acc-s1", "sec-s1"));
        cluster
            .acl_tokens
            .registrars
            .insert("s1".into(), tok("reg-s1", "rsec-s1"));
        cluster
            .acl_tokens
            .lbs
            .insert("s1".into(), tok("lb-s1", "lsec-s1"));
        let fake = FakeTransport::new()
            .on(
                "GET",
                "/v1/acl/policy/name/consulctl-agent-s1",
                403,
                "ACL not found",
            )
            .on("GET", "/v1/acl/token/acc-s1", 403, "ACL not found")
            .on(
                "GET",
                "/v1/acl/policy/name/consulctl-registrar-s1",
                403,
                "ACL not found",
            )
            .on("GET", "/v1/acl/token/reg-s1", 403, "ACL not found")
            .on(
                "GET",
                "/v1/acl/policy/name/consulctl-lb-s1",
                403,
                "ACL not found",
            )
            .on("GET", "/v1/acl/token/lb-s1", 403, "ACL not found")
            .on("PUT", "/v1/acl/policy", 200, "{}")
            .on("PUT", "/v1/acl/token", 200, "{}");
        let n = block_on(ensure_agent_tokens_with(
            &Client::new(fake.clone()),
            &cluster,
        ))
        .unwrap();
        assert_eq!(n, 6);
        assert_eq!(fake.batches(), [6, 6]);
        assert_eq!(
            fake.sent()[6..],
            [
                "PUT /v1/acl/policy",
                "PUT /v1/acl/policy",
                "PUT /v1/acl/policy",
                "PUT /v1/acl/token",
                "PUT /v1/acl/token",
                "PUT /v1/acl/token"
            ]
        );
        let lb_policy = fake
            .requests()
            .into_iter()
            .map(|r| r.body_text())
            .find(|b| b.contains("consulctl-lb-s1"))
            .expect("the LB daemon's policy is written");
        assert!(lb_policy.contains("key_prefix"), "{lb_policy}");
        // Without the LB daemon's token in the secrets file: an error naming the host.
        let mut no_lb = cluster.clone();
        no_lb.acl_tokens.lbs.clear();
        let e = block_on(ensure_agent_tokens_with(
            &Client::new(FakeTransport::new()),
            &no_lb,
        ))
        .unwrap_err();
        assert!(format!("{e}").contains("no LB daemon token for s1"), "{e}");
        // Without its token in the secrets file: an error naming the host.
        cluster.acl_tokens.registrars.clear();
        let e = block_on(ensure_agent_tokens_with(
            &Client::new(FakeTransport::new()),
            &cluster,
        ))
        .unwrap_err();
        assert!(format!("{e}").contains("no registrar token for s1"), "{e}");
    }

    #[tokio::test]
    async fn bootstrap_retries_until_consul_takes_it_and_stops_when_done_before() {
        let fake = FakeTransport::new()
            .on("PUT", "/v1/acl/bootstrap", 500, "No cluster leader")
            .on(
                "PUT",
                "/v1/acl/bootstrap",
                200,
                r#"{"AccessorID":"a","SecretID":"s-1"}"#,
            );
        let secrets = std::path::Path::new("inv.secrets.toml");
        let t = bootstrap_with(&Client::new(fake.clone()), secrets, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(t, Secret::new("s-1"));
        assert_eq!(fake.count("PUT", "/v1/acl/bootstrap"), 2);
        let fake = FakeTransport::new().on(
            "PUT",
            "/v1/acl/bootstrap",
            403,
            "Permission denied: ACL bootstrap no longer allowed (reset index: 12)",
        );
        let e = bootstrap_with(&Client::new(fake.clone()), secrets, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(format!("{e}").contains("bootstrapped before"), "{e}");
        assert_eq!(fake.count("PUT", "/v1/acl/bootstrap"), 1);
        let fake = FakeTransport::new().on(
            "PUT",
            "/v1/acl/bootstrap",
            500,
            "The ACL system is currently in legacy mode.",
        );
        let e = bootstrap_with(&Client::new(fake), secrets, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(
            format!("{e}"),
            "the ACL bootstrap did not succeed within 0s: HTTP 500: The ACL system is currently in legacy mode."
        );
        let fake = FakeTransport::new().fail_all("ssh s1: refused");
        let e = bootstrap_with(&Client::new(fake), secrets, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(format!("{e}"), "API requests failed: ssh s1: refused");
    }
}
