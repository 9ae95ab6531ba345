//! Verify through a host: read Consul's view through an agent's API and wait for it to check
//! out. The pure comparison is `consulctl_core::view`.
//!
//! Every reader of Consul in the CLI goes through an [`Agent`] (a host and a
//! [`consul_api::Client`] of its agent, see [`agent`]), and reads "through the first agent
//! that answers" with [`first_answer`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use consul_api::poll::{self, Clock, Progress, Timeout};

use crate::remote::ssh::Connection;
use consulctl_core::model::{Cluster, Host};
pub use consulctl_core::view::*;

/// The token and CA consulctl's scripts on this host use for Consul's API: the management
/// token of `acl = true` once bootstrapped, the generated CA where the API is HTTPS.
pub fn consul_env(
    cluster: &consulctl_core::model::Cluster,
    host: &Host,
) -> crate::remote::ssh::ConsulEnv {
    crate::remote::ssh::ConsulEnv {
        token: if cluster.acl {
            cluster.acl_tokens.management.clone()
        } else {
            None
        },
        ca_file: host.api_tls.then(|| {
            consulctl_core::agent_config::tls_dir(host)
                .join(consulctl_core::agent_config::TLS_CA_FILE)
                .to_string_lossy()
                .into_owned()
        }),
    }
}

/// An agent to read Consul through: the host it runs on and a client of its API.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The inventory name of the host whose agent answers.
    pub host: String,
    pub client: consul_api::Client,
}

impl Agent {
    pub fn new(host: impl Into<String>, client: consul_api::Client) -> Self {
        Agent {
            host: host.into(),
            client,
        }
    }

    /// The agent at `http` (a base URL from [`agent_url`]) on the host of `conn`, over SSH.
    pub fn via_ssh(conn: &Connection, http: &str) -> Self {
        Agent::new(conn.host(), crate::remote::consul::client(conn, http))
    }
}

/// The base URL of a host's agent API ([`http_addr`]), on loopback when the host's bind
/// address is not known.
pub fn agent_url(host: &Host, bind: Option<IpAddr>) -> String {
    http_addr(host, bind.unwrap_or(IpAddr::from([127, 0, 0, 1])))
}

/// The agent of a connected host, at [`agent_url`].
pub fn agent(conn: &Connection, host: &Host, bind: Option<IpAddr>) -> Agent {
    Agent::via_ssh(conn, &agent_url(host, bind))
}

/// Why an agent gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswered {
    /// The read failed (the error with its causes).
    Failed(String),
    /// No answer within this time.
    TimedOut(Duration),
}

/// An agent that did not answer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAnswer {
    pub host: String,
    pub why: Unanswered,
}

impl NoAnswer {
    /// `server1: <error>`, `server1: timed out`.
    pub fn short(&self) -> String {
        match &self.why {
            Unanswered::Failed(e) => format!("{}: {e}", self.host),
            Unanswered::TimedOut(_) => format!("{}: timed out", self.host),
        }
    }

    /// `server1 did not answer: <error>`, `server1 did not answer within 30s`.
    pub fn long(&self) -> String {
        match &self.why {
            Unanswered::Failed(e) => format!("{} did not answer: {e}", self.host),
            Unanswered::TimedOut(t) => {
                format!("{} did not answer within {}s", self.host, t.as_secs())
            }
        }
    }
}

/// What [`first_answer`] got: the answer of the first agent that gave one (and that agent),
/// and why each agent asked before it did not answer (all of them when none did).
#[derive(Debug)]
pub struct FirstAnswer<'a, T> {
    pub answer: Option<(&'a Agent, T)>,
    pub errors: Vec<NoAnswer>,
}

/// Read through `agents` in order until one answers: `read` on each, bounded by `per_agent`
/// when given. Agents after the one that answered are not asked.
pub async fn first_answer<'a, T, F, Fut>(
    agents: &'a [Agent],
    per_agent: Option<Duration>,
    mut read: F,
) -> FirstAnswer<'a, T>
where
    F: FnMut(&'a Agent) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut errors = Vec::new();
    for a in agents {
        let res = match per_agent {
            Some(t) => tokio::time::timeout(t, read(a))
                .await
                .map_err(|_| Unanswered::TimedOut(t)),
            None => Ok(read(a).await),
        };
        match res {
            Ok(Ok(v)) => {
                return FirstAnswer {
                    answer: Some((a, v)),
                    errors,
                }
            }
            Ok(Err(e)) => errors.push(NoAnswer {
                host: a.host.clone(),
                why: Unanswered::Failed(format!("{e:#}")),
            }),
            Err(why) => errors.push(NoAnswer {
                host: a.host.clone(),
                why,
            }),
        }
    }
    FirstAnswer {
        answer: None,
        errors,
    }
}

/// What a wait saw last, for its timeout message: the pending reason or the error.
pub fn last_seen(t: &Timeout<String>) -> &str {
    match &t.last {
        poll::Last::Pending(why) => why,
        poll::Last::Error(e) => e,
    }
}

/// Read leader, raft configuration and members through one host's agent (one round trip).
pub async fn read_view(conn: &Connection, http: &str) -> Result<ClusterView> {
    read_view_with(&crate::remote::consul::client(conn, http), conn.host()).await
}

/// Leader, raft configuration and members through one client, in one round trip. `via` names
/// the host whose agent answers.
pub async fn read_view_with(client: &consul_api::Client, via: &str) -> Result<ClusterView> {
    let (leader, raft, members) = client
        .call3(
            consul_api::status::leader(),
            consul_api::operator::raft_configuration(true),
            consul_api::agent::members(false),
        )
        .await;
    view_from(via, leader, raft, members)
}

/// A view from the answers to [`read_view_with`]'s three calls.
pub fn view_from(
    via: &str,
    leader: Result<Option<String>, consul_api::Error>,
    raft: Result<consul_api::RaftConfiguration, consul_api::Error>,
    members: Result<Vec<Member>, consul_api::Error>,
) -> Result<ClusterView> {
    let leader = leader.context("reading the leader")?;
    // Without a leader the raft configuration may be unavailable; that is a finding, not an error.
    let raft = raft.map(|c| c.servers).unwrap_or_default();
    let members = members.context("reading the members")?;
    Ok(ClusterView {
        via: via.to_string(),
        leader,
        raft,
        members,
    })
}

/// How long one read of the view through one agent may take while waiting.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`wait_healthy`] reads the view again.
const WAIT_INTERVAL: Duration = Duration::from_secs(1);

/// Poll Consul through the given servers until the cluster checks out or the timeout passes.
/// Each poll is one round trip to one server; a server that does not answer is skipped.
pub async fn wait_healthy(
    cluster: &Cluster,
    bind: &BTreeMap<String, IpAddr>,
    via: &[(&Connection, String)],
    timeout: Duration,
) -> Result<ClusterView, (Vec<String>, Option<ClusterView>)> {
    wait_healthy_except(cluster, bind, via, timeout, &BTreeSet::new()).await
}

/// [`wait_healthy`] judged by [`check_except`]: nothing is waited for about the hosts in `skip`.
pub async fn wait_healthy_except(
    cluster: &Cluster,
    bind: &BTreeMap<String, IpAddr>,
    via: &[(&Connection, String)],
    timeout: Duration,
    skip: &BTreeSet<String>,
) -> Result<ClusterView, (Vec<String>, Option<ClusterView>)> {
    let agents: Vec<Agent> = via
        .iter()
        .map(|(conn, http)| Agent::via_ssh(conn, http))
        .collect();
    wait_healthy_with(&poll::TokioClock, cluster, bind, &agents, timeout, skip).await
}

/// [`wait_healthy_except`] through `agents` on `clock`. Each poll reads through the first agent
/// that answers (a whole read, even at the deadline: with a zero timeout, one look). On a
/// timeout: the last problems (or why no agent answered) and the last view read.
pub async fn wait_healthy_with(
    clock: &dyn Clock,
    cluster: &Cluster,
    bind: &BTreeMap<String, IpAddr>,
    agents: &[Agent],
    timeout: Duration,
    skip: &BTreeSet<String>,
) -> Result<ClusterView, (Vec<String>, Option<ClusterView>)> {
    let last: Mutex<(Vec<String>, Option<ClusterView>)> =
        Mutex::new((vec!["no server answered".into()], None));
    let last_ref = &last;
    let res = poll::wait_until_with(
        clock,
        "a healthy cluster",
        timeout,
        WAIT_INTERVAL,
        move || async move {
            let got = first_answer(agents, Some(READ_TIMEOUT), |a| {
                read_view_with(&a.client, &a.host)
            })
            .await;
            let mut last = last_ref.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = got.errors.last() {
                last.0 = vec![e.long()];
            }
            let Some((_, view)) = got.answer else {
                return Ok::<_, String>(Progress::Pending(last.0.join("; ")));
            };
            let problems = check_except(cluster, bind, &view, skip);
            if problems.is_empty() {
                return Ok(Progress::Ready(view));
            }
            let why = problems.join("; ");
            *last = (problems, Some(view));
            Ok(Progress::Pending(why))
        },
    )
    .await;
    res.map_err(|_| last.into_inner().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_api::testing::{block_on, FakeTransport};
    use consul_api::BoxFuture;
    use std::time::Instant;

    /// A clock whose sleeps advance it at once.
    pub(crate) struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        pub(crate) fn new() -> Self {
            ManualClock(Mutex::new(Instant::now()))
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
        fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
            *self.0.lock().unwrap() += d;
            Box::pin(std::future::ready(()))
        }
    }

    pub(crate) const LAB: &str = "[cluster]\ndatacenter = \"dc1\"\n[consul]\nversion = \"1.8.7\"\n\
source = { package = \"auto\" }\n\
[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
[[hosts]]\nname = \"c1\"\naddress = \"10.0.0.4\"\nrole = \"client\"\n";

    fn lab() -> (Cluster, BTreeMap<String, IpAddr>) {
        let cluster = consulctl_core::inventory::parse(std::path::Path::new("inv.toml"), LAB)
            .expect("inventory");
        let bind = cluster
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.address.parse().unwrap()))
            .collect();
        (cluster, bind)
    }

    const RAFT: &str = r#"{"Servers":[{"ID":"a","Node":"s1","Address":"10.0.0.1:8300","Leader":true,"Voter":true}],"Index":5}"#;
    const MEMBERS_S1: &str =
        r#"[{"Name":"s1","Addr":"10.0.0.1","Port":8301,"Status":1,"Tags":{"role":"consul"}}]"#;
    const MEMBERS_ALL: &str = r#"[{"Name":"s1","Addr":"10.0.0.1","Port":8301,"Status":1,"Tags":{"role":"consul"}},{"Name":"c1","Addr":"10.0.0.4","Port":8301,"Status":1,"Tags":{"role":"node"}}]"#;

    fn agent(name: &str, fake: &FakeTransport) -> Agent {
        Agent::new(name, consul_api::Client::new(fake.clone().named(name)))
    }

    #[test]
    fn the_first_agent_that_answers_is_read_and_the_others_say_why_not() {
        let down = FakeTransport::new().fail_all("ssh s1: connection refused");
        let up = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
            .on("GET", "/v1/operator/raft/configuration", 200, RAFT)
            .on("GET", "/v1/agent/members", 200, MEMBERS_S1);
        let never = FakeTransport::new();
        let agents = [agent("s1", &down), agent("s2", &up), agent("s3", &never)];
        let got = block_on(first_answer(&agents, None, |a| {
            read_view_with(&a.client, &a.host)
        }));
        let (a, view) = got.answer.unwrap();
        assert_eq!(a.host, "s2");
        assert_eq!(view.via, "s2");
        assert_eq!(view.leader.as_deref(), Some("10.0.0.1:8300"));
        assert_eq!(view.raft.len(), 1);
        assert_eq!(got.errors.len(), 1);
        assert_eq!(
            got.errors[0].long(),
            "s1 did not answer: reading the leader: ssh s1: connection refused"
        );
        assert_eq!(
            got.errors[0].short(),
            "s1: reading the leader: ssh s1: connection refused"
        );
        assert!(
            never.sent().is_empty(),
            "agents after the answer are not asked"
        );
        assert_eq!(up.batches(), [3], "one round trip");
        let t = NoAnswer {
            host: "s3".into(),
            why: Unanswered::TimedOut(Duration::from_secs(30)),
        };
        assert_eq!(t.long(), "s3 did not answer within 30s");
        assert_eq!(t.short(), "s3: timed out");
    }

    #[test]
    fn no_leader_is_a_finding_and_a_failed_members_read_an_error() {
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"\"")
            .on(
                "GET",
                "/v1/operator/raft/configuration",
                500,
                "No cluster leader",
            )
            .on("GET", "/v1/agent/members", 200, "[]");
        let view = block_on(read_view_with(&consul_api::Client::new(fake), "s1")).unwrap();
        assert_eq!(view.leader, None);
        assert!(view.raft.is_empty());
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"\"")
            .on("GET", "/v1/agent/members", 500, "rpc error");
        let e = block_on(read_view_with(&consul_api::Client::new(fake), "s1")).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("reading the members: "),
            "{e:#}"
        );
    }

    #[tokio::test]
    async fn wait_healthy_polls_until_the_view_checks_out() {
        let (cluster, bind) = lab();
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"\"")
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
            .on("GET", "/v1/operator/raft/configuration", 200, RAFT)
            .on("GET", "/v1/agent/members", 200, MEMBERS_S1)
            .on("GET", "/v1/agent/members", 200, MEMBERS_S1)
            .on("GET", "/v1/agent/members", 200, MEMBERS_ALL);
        let agents = [agent("s1", &fake)];
        let clock = ManualClock::new();
        let view = wait_healthy_with(
            &clock,
            &cluster,
            &bind,
            &agents,
            Duration::from_secs(60),
            &BTreeSet::new(),
        )
        .await
        .unwrap();
        assert_eq!(view.members.len(), 2);
        assert_eq!(fake.batches(), [3, 3, 3]);
    }

    #[tokio::test]
    async fn wait_healthy_times_out_with_the_last_problems_and_view() {
        let (cluster, bind) = lab();
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
            .on("GET", "/v1/operator/raft/configuration", 200, RAFT)
            .on("GET", "/v1/agent/members", 200, MEMBERS_S1);
        let down = FakeTransport::new().fail_all("ssh c1: connection refused");
        let clock = ManualClock::new();
        let (problems, view) = wait_healthy_with(
            &clock,
            &cluster,
            &bind,
            &[agent("c1", &down), agent("s1", &fake)],
            Duration::from_secs(5),
            &BTreeSet::new(),
        )
        .await
        .unwrap_err();
        // The last error of an agent that did not answer comes first, as it did.
        assert_eq!(
            problems,
            ["hosts that are not members: c1"],
            "the answer's problems replace the error"
        );
        assert_eq!(view.unwrap().via, "s1");
        // Nobody answers: why; one look only with a zero timeout.
        let (problems, view) = wait_healthy_with(
            &clock,
            &cluster,
            &bind,
            &[agent("c1", &down)],
            Duration::ZERO,
            &BTreeSet::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            problems,
            ["c1 did not answer: reading the leader: ssh c1: connection refused"]
        );
        assert!(view.is_none());
        assert_eq!(down.batches().len(), 7, "6 polls in 5s, then one look");
        let (problems, _) = wait_healthy_with(
            &clock,
            &cluster,
            &bind,
            &[],
            Duration::ZERO,
            &BTreeSet::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(problems, ["no server answered"]);
    }
}
