//! Verify through a host: read Consul's view over SSH and wait for it to check out.
//! The pure comparison is `consulctl_core::view`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::ssh::Connection;
use consulctl_core::model::{Cluster, Host};
pub use consulctl_core::view::*;

pub use crate::remote::API;

/// The token and CA consulctl's scripts on this host use for Consul's API: the management
/// token of `acl = true` once bootstrapped, the generated CA where the API is HTTPS.
pub fn consul_env(cluster: &consulctl_core::model::Cluster, host: &Host) -> crate::ssh::ConsulEnv {
    crate::ssh::ConsulEnv {
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

/// Read leader, raft configuration and members through one host's agent (one round trip).
pub async fn read_view(conn: &Connection, http: &str) -> Result<ClusterView> {
    read_view_with(&crate::consul::client(conn, http), conn.host()).await
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
    let deadline = Instant::now() + timeout;
    let mut last: (Vec<String>, Option<ClusterView>) = (vec!["no server answered".into()], None);
    let mut delay = Duration::from_millis(250);
    loop {
        for (conn, http) in via {
            match read_view(conn, http).await {
                Ok(view) => {
                    let problems = check_except(cluster, bind, &view, skip);
                    if problems.is_empty() {
                        return Ok(view);
                    }
                    last = (problems, Some(view));
                    break;
                }
                Err(e) => {
                    last.0 = vec![format!("{} did not answer: {e:#}", conn.host())];
                }
            }
        }
        if Instant::now() + delay > deadline {
            return Err(last);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
