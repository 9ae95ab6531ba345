//! `consulctl service register | deregister`: services by hand, as the seed's operators do
//! with curl.
//!
//! - `--on HOST`: through that host's agent (`/v1/agent/service/register`): the agent runs the
//!   check and keeps the registration in its data dir, so it survives agent restarts.
//! - `--external NODE --address ADDR`: in the catalog (`/v1/catalog/register`) for a node
//!   without an agent, marked `external-node` (consul-esm's convention). Consul runs no check
//!   of such a registration: its status stays what was registered, so a check asked for is
//!   registered with a warning, and `doctor` reports checks that never ran.
//!
//! Services the inventory declares (`[[services]]`) are refused: `apply` owns them. So are
//! registrations the Docker registrar owns. Each change is confirmed by reading the catalog.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use consul_api::catalog::{
    CatalogCheckRegistration, CatalogDeregistration, CatalogRegistration,
    CatalogServiceRegistration,
};
use consul_api::poll::{self, Progress};
use consul_api::{meta, CheckDefinition, Client, ServiceRegistration};
use serde::Serialize;

use crate::cli::{ClusterArgs, ServiceDeregisterArgs, ServiceRegisterArgs, Settings};
use crate::engine::agents::{settings_for, Agents};
use crate::engine::context;
use crate::engine::output::{self, Report};
use consulctl_core::error::Error;
use consulctl_core::model::Cluster;

/// How long the catalog may take to show a change.
const CONFIRM: Duration = Duration::from_secs(15);

/// What was asked for, checked before any host is touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckWanted {
    /// `http`, `tcp` or `ttl`.
    pub kind: String,
    /// The URL, `host:port` or TTL.
    pub target: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interval: String,
}

/// The check the arguments ask for.
pub fn check_wanted(a: &ServiceRegisterArgs) -> Option<CheckWanted> {
    let (kind, target) = if let Some(u) = &a.check_http {
        ("http", u)
    } else if let Some(t) = &a.check_tcp {
        ("tcp", t)
    } else {
        ("ttl", a.check_ttl.as_ref()?)
    };
    Some(CheckWanted {
        kind: kind.into(),
        target: target.clone(),
        interval: if kind == "ttl" {
            String::new()
        } else {
            a.check_interval.clone()
        },
    })
}

/// `--meta KEY=VALUE` pairs, plus `managed-by = consulctl`.
pub fn parse_meta(pairs: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Error::Input(anyhow!(
                "--meta {p}: expected KEY=VALUE (e.g. --meta version=2)"
            )));
        };
        let valid = !k.is_empty()
            && k.len() <= 128
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !k.starts_with("consul-");
        if !valid {
            return Err(Error::Input(anyhow!(
                "--meta {p}: keys are 1-128 letters, digits, '_' or '-', not starting with \
                 \"consul-\" (Consul's rule)"
            )));
        }
        out.insert(k.to_string(), v.to_string());
    }
    out.insert(meta::MANAGED_BY.into(), meta::CLI.into());
    Ok(out)
}

/// Refuse a service the inventory declares: `apply` registers it and would put it back (or
/// it would drift from the inventory).
pub fn refuse_declared(cluster: &Cluster, name_or_id: &str) -> Result<(), Error> {
    let declared: Vec<&str> = cluster
        .hosts
        .iter()
        .filter(|h| {
            h.services
                .iter()
                .any(|s| s.name == name_or_id || s.id() == name_or_id)
        })
        .map(|h| h.name.as_str())
        .collect();
    if declared.is_empty() {
        return Ok(());
    }
    Err(Error::Locked(anyhow!(
        "{name_or_id} is declared in the inventory ({}: [[services]], on {}): change it there \
         and run `consulctl apply -i {}`",
        cluster.inventory_path.display(),
        declared.join(", "),
        cluster.inventory_path.display()
    )))
}

/// The warning for a check on a node without an agent.
pub fn unrun_check_warning(node: &str, check: &CheckWanted, status: &str) -> String {
    format!(
        "Consul runs no checks for services of a node without an agent: the {} check of {} \
         on {node} is registered {status} and stays {status} whatever happens there, until \
         something updates it (consul-esm runs such checks; `consulctl doctor` reports checks \
         that never ran)",
        check.kind, check.target
    )
}

#[derive(Debug, Serialize)]
pub struct Change {
    /// `register` or `deregister`.
    pub action: &'static str,
    pub service: String,
    pub id: String,
    /// The Consul node that holds the instance.
    pub node: String,
    /// The node has no agent (catalog registration).
    pub external: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckWanted>,
    /// Deregistration of an external node's last service also removed the node.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub node_removed: bool,
    /// The inventory host whose agent made the change.
    pub via: String,
    pub warnings: Vec<String>,
}

impl Report for Change {
    fn to_text(&self) -> String {
        let mut s = match self.action {
            "register" => {
                let at = match (&self.address, self.port) {
                    (Some(a), Some(p)) => format!(" at {a}:{p}"),
                    (Some(a), None) => format!(" at {a}"),
                    (None, Some(p)) => format!(" on port {p}"),
                    (None, None) => String::new(),
                };
                format!(
                    "registered {} (service {}) on {}{}{}{}\n",
                    self.id,
                    self.service,
                    if self.external {
                        format!("external node {}", self.node)
                    } else {
                        format!("node {}", self.node)
                    },
                    at,
                    if self.tags.is_empty() {
                        String::new()
                    } else {
                        format!(", tags {}", self.tags.join(","))
                    },
                    match &self.check {
                        Some(c) if self.external => format!(
                            ", {} check of {} registered (not run by Consul)",
                            c.kind, c.target
                        ),
                        Some(c) => format!(", {} check of {} run by its agent", c.kind, c.target),
                        None => String::new(),
                    }
                )
            }
            _ => format!(
                "deregistered {} from {}{}\n",
                self.id,
                if self.external {
                    "external node "
                } else {
                    "node "
                },
                self.node
            ),
        };
        if self.node_removed {
            s.push_str(&format!(
                "external node {} had no other service and was removed from the catalog\n",
                self.node
            ));
        }
        s
    }
}

fn agent_check(c: &CheckWanted, name: &str) -> CheckDefinition {
    let mut d = match c.kind.as_str() {
        "http" => CheckDefinition::http(&c.target, &c.interval),
        "tcp" => CheckDefinition::tcp(&c.target, &c.interval),
        _ => CheckDefinition::ttl(&c.target),
    };
    d.name = format!("{name} {}", c.kind);
    d
}

/// Wait until the catalog shows (`present`) or no longer shows instance `id` of `service` on
/// `node`.
async fn confirm(
    client: &Client,
    service: &str,
    id: &str,
    node: &str,
    present: bool,
) -> anyhow::Result<()> {
    let what = format!(
        "the catalog to {} {id} on {node}",
        if present { "show" } else { "drop" }
    );
    poll::wait_until(&what, CONFIRM, Duration::from_millis(250), || async {
        let entries = client.call(consul_api::catalog::service(service)).await?;
        let there = entries.iter().any(|e| e.node == node && e.service_id == id);
        Ok::<_, consul_api::Error>(if there == present {
            Progress::Ready(())
        } else {
            Progress::Pending(format!(
                "{} instance{} of {service} listed",
                entries.len(),
                if entries.len() == 1 { "" } else { "s" }
            ))
        })
    })
    .await
    .map_err(|t| anyhow!("{t}"))
}

/// The node name of the agent `client` talks to.
async fn node_name(client: &Client) -> anyhow::Result<String> {
    Ok(client
        .call(consul_api::agent::self_info())
        .await?
        .config
        .node_name)
}

/// The servers of the inventory, for catalog writes.
fn servers(cluster: &ClusterArgs) -> Settings {
    let mut s = Settings::all_hosts(&cluster.inventory, cluster.accept_new_host_keys);
    s.limit = Some("role:server".into());
    s
}

/// Refuse `node` as an external node when it runs an agent: an inventory host, or a member.
fn refuse_member_node(
    cluster: &Cluster,
    node: &str,
    members: &[consul_api::Member],
) -> Result<(), Error> {
    if cluster.hosts.iter().any(|h| h.name == node) {
        return Err(Error::Locked(anyhow!(
            "--external {node}: {node} is an inventory host with an agent; use --on {node}"
        )));
    }
    if let Some(m) = members.iter().find(|m| m.name == node) {
        return Err(Error::Locked(anyhow!(
            "--external {node}: {node} is a member of the cluster ({}, {}), so it has an \
             agent that would remove what is registered for it here; register through its \
             agent instead",
            m.addr,
            m.status_word()
        )));
    }
    Ok(())
}

/// `consulctl service register`.
pub async fn register(args: &ServiceRegisterArgs, log: Option<&Path>) -> Result<(), Error> {
    let check = check_wanted(args);
    let service_meta = parse_meta(&args.meta)?;
    let id = args.id.clone().unwrap_or_else(|| args.name.clone());
    if args.external.is_some() && check.as_ref().is_some_and(|c| c.kind == "ttl") {
        return Err(Error::Input(anyhow!(
            "--check-ttl needs an agent to report to it: use --on HOST, or --check-http / \
             --check-tcp (which, on an external node, Consul does not run either)"
        )));
    }
    let settings = match (&args.on, &args.external) {
        (Some(host), _) => settings_for(&args.cluster, std::slice::from_ref(host)),
        _ => servers(&args.cluster),
    };
    let p = context::prepare(settings, "service", log).await?;
    refuse_declared(&p.cluster, &args.name)?;
    refuse_declared(&p.cluster, &id)?;
    if let Some(node) = &args.external {
        refuse_member_node(&p.cluster, node, &[])?;
    }
    let a = Agents::connect(p).await;
    let res = match (&args.on, &args.external) {
        (Some(host), _) => register_on(&a, host, args, &id, service_meta, check).await,
        (None, Some(node)) => register_external(&a, node, args, &id, service_meta, check).await,
        (None, None) => Err(Error::Input(anyhow!("give --on HOST or --external NODE"))),
    };
    a.close().await;
    let change = res?;
    for w in &change.warnings {
        eprintln!("warning: {w}");
    }
    output::print(args.output, &change);
    Ok(())
}

async fn register_on(
    a: &Agents,
    host: &str,
    args: &ServiceRegisterArgs,
    id: &str,
    service_meta: BTreeMap<String, String>,
    check: Option<CheckWanted>,
) -> Result<Change, Error> {
    let agent = a
        .of(host)
        .map_err(|why| Error::Runtime(anyhow!("{host}: {why}")))?;
    let reg = ServiceRegistration {
        id: id.to_string(),
        name: args.name.clone(),
        tags: args.tags.clone(),
        address: args.address.clone().unwrap_or_default(),
        port: args.port,
        meta: service_meta,
        check: check.as_ref().map(|c| agent_check(c, &args.name)),
        ..ServiceRegistration::default()
    };
    let node = async {
        let node = node_name(&agent.client).await?;
        agent
            .client
            .call(consul_api::agent::service_register(&reg, true))
            .await
            .context("registering through the agent")?;
        confirm(&agent.client, &args.name, id, &node, true).await?;
        anyhow::Ok(node)
    }
    .await
    .map_err(|e| Error::Runtime(e.context(host.to_string())))?;
    Ok(Change {
        action: "register",
        service: args.name.clone(),
        id: id.to_string(),
        node,
        external: false,
        address: args.address.clone(),
        port: args.port,
        tags: args.tags.clone(),
        check,
        node_removed: false,
        via: host.to_string(),
        warnings: vec![],
    })
}

async fn register_external(
    a: &Agents,
    node: &str,
    args: &ServiceRegisterArgs,
    id: &str,
    service_meta: BTreeMap<String, String>,
    check: Option<CheckWanted>,
) -> Result<Change, Error> {
    let address = args
        .address
        .clone()
        .ok_or_else(|| Error::Input(anyhow!("--external {node} needs --address")))?;
    let (agent, members) = a
        .first(|agent| {
            let c = agent.client.clone();
            async move { Ok(c.call(consul_api::agent::members(false)).await?) }
        })
        .await?;
    refuse_member_node(a.cluster(), node, &members)?;
    let status = "passing";
    let reg = CatalogRegistration {
        node: node.to_string(),
        address: address.clone(),
        node_meta: [
            (meta::EXTERNAL_NODE.to_string(), "true".to_string()),
            (meta::MANAGED_BY.to_string(), meta::CLI.to_string()),
        ]
        .into(),
        service: Some(CatalogServiceRegistration {
            id: id.to_string(),
            service: args.name.clone(),
            tags: args.tags.clone(),
            address: address.clone(),
            port: args.port,
            meta: service_meta,
        }),
        check: check.as_ref().map(|c| CatalogCheckRegistration {
            node: node.to_string(),
            check_id: format!("service:{id}"),
            name: format!("{} {}", args.name, c.kind),
            notes: "registered by consulctl in the catalog: Consul does not run it".into(),
            status: status.into(),
            service_id: id.to_string(),
            definition: [
                (c.kind.to_uppercase(), c.target.clone()),
                ("Interval".to_string(), c.interval.clone()),
            ]
            .into(),
        }),
        ..CatalogRegistration::default()
    };
    let via = agent.host.clone();
    async {
        let ok = agent
            .client
            .call(consul_api::catalog::register(&reg))
            .await
            .context("catalog registration")?;
        if !ok {
            bail!("Consul answered false to the catalog registration");
        }
        confirm(&agent.client, &args.name, id, node, true).await
    }
    .await
    .map_err(|e| Error::Runtime(e.context(via.clone())))?;
    Ok(Change {
        action: "register",
        service: args.name.clone(),
        id: id.to_string(),
        node: node.to_string(),
        external: true,
        address: Some(address),
        port: args.port,
        tags: args.tags.clone(),
        warnings: check
            .iter()
            .map(|c| unrun_check_warning(node, c, status))
            .collect(),
        check,
        node_removed: false,
        via,
    })
}

/// `consulctl service deregister`.
pub async fn deregister(args: &ServiceDeregisterArgs, log: Option<&Path>) -> Result<(), Error> {
    let settings = match &args.on {
        Some(host) => settings_for(&args.cluster, std::slice::from_ref(host)),
        None => servers(&args.cluster),
    };
    let p = context::prepare(settings, "service", log).await?;
    refuse_declared(&p.cluster, &args.id)?;
    let a = Agents::connect(p).await;
    let res = match (&args.on, &args.external) {
        (Some(host), _) => deregister_on(&a, host, &args.id).await,
        (None, Some(node)) => deregister_external(&a, node, &args.id).await,
        (None, None) => Err(Error::Input(anyhow!("give --on HOST or --external NODE"))),
    };
    a.close().await;
    output::print(args.output, &res?);
    Ok(())
}

async fn deregister_on(a: &Agents, host: &str, id: &str) -> Result<Change, Error> {
    let agent = a
        .of(host)
        .map_err(|why| Error::Runtime(anyhow!("{host}: {why}")))?;
    let services = agent
        .client
        .call(consul_api::agent::services())
        .await
        .map_err(|e| Error::Runtime(anyhow!("{host}: reading its agent's services: {e}")))?;
    let Some(svc) = services.get(id) else {
        let ids: Vec<&str> = services.keys().map(String::as_str).collect();
        return Err(Error::Input(anyhow!(
            "{host}'s agent has no service with ID {id} (it has: {})",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        )));
    };
    if svc.meta.get(meta::MANAGED_BY).map(String::as_str) == Some(meta::REGISTRAR) {
        return Err(Error::Locked(anyhow!(
            "{id} on {host} is the Docker registrar's (container {}): it registers it while \
             the container runs; stop the container or remove its SERVICE_* settings",
            svc.meta
                .get(meta::CONTAINER)
                .map(String::as_str)
                .unwrap_or("?")
        )));
    }
    let name = svc.service.clone();
    let node = async {
        let node = node_name(&agent.client).await?;
        agent
            .client
            .call(consul_api::agent::service_deregister(id))
            .await
            .context("deregistering through the agent")?;
        confirm(&agent.client, &name, id, &node, false).await?;
        anyhow::Ok(node)
    }
    .await
    .map_err(|e| Error::Runtime(e.context(host.to_string())))?;
    Ok(Change {
        action: "deregister",
        service: name,
        id: id.to_string(),
        node,
        external: false,
        address: None,
        port: None,
        tags: svc.tags.clone(),
        check: None,
        node_removed: false,
        via: host.to_string(),
        warnings: vec![],
    })
}

async fn deregister_external(a: &Agents, node: &str, id: &str) -> Result<Change, Error> {
    let (agent, (members, nodes)) = a
        .first(|agent| {
            let c = agent.client.clone();
            async move {
                let (m, n) = c
                    .call2(
                        consul_api::agent::members(false),
                        consul_api::catalog::node_dump(),
                    )
                    .await;
                Ok((m?, n?))
            }
        })
        .await?;
    refuse_member_node(a.cluster(), node, &members)?;
    let Some(n) = nodes.iter().find(|n| n.node == node) else {
        return Err(Error::Input(anyhow!("the catalog has no node {node}")));
    };
    let Some(svc) = n.services.iter().find(|s| s.id == id) else {
        let ids: Vec<&str> = n.services.iter().map(|s| s.id.as_str()).collect();
        return Err(Error::Input(anyhow!(
            "node {node} has no service with ID {id} (it has: {})",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        )));
    };
    // The node goes too when consulctl created it for external services and this was its last.
    let remove_node = n.services.len() == 1
        && n.meta.get(meta::EXTERNAL_NODE).map(String::as_str) == Some("true");
    let via = agent.host.clone();
    let what = CatalogDeregistration {
        node: node.to_string(),
        service_id: if remove_node {
            String::new()
        } else {
            id.to_string()
        },
        ..CatalogDeregistration::default()
    };
    async {
        let ok = agent
            .client
            .call(consul_api::catalog::deregister(&what))
            .await
            .context("catalog deregistration")?;
        if !ok {
            bail!("Consul answered false to the catalog deregistration");
        }
        confirm(&agent.client, &svc.service, id, node, false).await
    }
    .await
    .map_err(|e| Error::Runtime(e.context(via.clone())))?;
    Ok(Change {
        action: "deregister",
        service: svc.service.clone(),
        id: id.to_string(),
        node: node.to_string(),
        external: true,
        address: None,
        port: None,
        tags: svc.tags.clone(),
        check: None,
        node_removed: remove_node,
        via,
        warnings: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn register_args(extra: &[&str]) -> ServiceRegisterArgs {
        let mut argv = vec!["consulctl", "service", "register", "-i", "x.toml"];
        argv.extend_from_slice(extra);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            crate::cli::Command::Service {
                command: crate::cli::ServiceCommand::Register(a),
            } => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_check_asked_for_is_one_of_http_tcp_ttl() {
        let a = register_args(&[
            "web",
            "--on",
            "client1",
            "--check-http",
            "http://127.0.0.1/",
            "--check-interval",
            "5s",
        ]);
        let c = check_wanted(&a).unwrap();
        assert_eq!((c.kind.as_str(), c.interval.as_str()), ("http", "5s"));
        let d = agent_check(&c, "web");
        assert_eq!(
            (d.http.as_str(), d.interval.as_str(), d.name.as_str()),
            ("http://127.0.0.1/", "5s", "web http")
        );
        let a = register_args(&["web", "--on", "client1", "--check-ttl", "30s"]);
        let c = check_wanted(&a).unwrap();
        assert_eq!((c.kind.as_str(), c.interval.as_str()), ("ttl", ""));
        assert_eq!(agent_check(&c, "web").ttl, "30s");
        assert!(check_wanted(&register_args(&["web", "--on", "client1"])).is_none());
    }

    #[test]
    fn on_and_external_exclude_each_other_and_external_needs_an_address() {
        use clap::Parser as _;
        let parse = |extra: &[&str]| {
            let mut argv = vec!["consulctl", "service", "register", "-i", "x.toml", "web"];
            argv.extend_from_slice(extra);
            crate::cli::Cli::try_parse_from(argv).map(|_| ())
        };
        assert!(parse(&[]).is_err(), "one of --on / --external is required");
        assert!(parse(&["--on", "c1", "--external", "n1", "--address", "10.0.0.1"]).is_err());
        assert!(
            parse(&["--external", "n1"]).is_err(),
            "--external needs --address"
        );
        assert!(parse(&["--external", "n1", "--address", "10.0.0.1"]).is_ok());
        assert!(parse(&["--on", "c1", "--check-http", "u", "--check-tcp", "t"]).is_err());
    }

    #[test]
    fn meta_is_key_value_with_consuls_key_rule_and_marks_consulctl() {
        let m = parse_meta(&["version=2".into(), "owner=ops=team".into()]).unwrap();
        assert_eq!(m["version"], "2");
        assert_eq!(m["owner"], "ops=team");
        assert_eq!(m[meta::MANAGED_BY], meta::CLI);
        for bad in ["novalue", "=x", "consul-x=1", "a b=1"] {
            let e = parse_meta(&[bad.into()]).unwrap_err();
            assert_eq!(e.code(), 2, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn services_the_inventory_declares_are_refused_with_a_pointer_to_it() {
        let cluster = consulctl_core::inventory::parse(
            Path::new("inv/prod.toml"),
            r#"
[cluster]
datacenter = "dc1"
[consul]
version = "1.8.7"
source = { package = "auto" }
[[hosts]]
name = "s1"
address = "10.0.0.1"
role = "server"
[[hosts]]
name = "c1"
address = "10.0.0.2"
role = "client"
[[services]]
name = "web"
id = "web-main"
port = 80
on = "c1"
"#,
        )
        .unwrap();
        for name in ["web", "web-main"] {
            let e = refuse_declared(&cluster, name).unwrap_err();
            assert_eq!(e.code(), 2);
            let msg = e.to_string();
            assert!(msg.contains("inv/prod.toml: [[services]], on c1"), "{msg}");
            assert!(msg.contains("consulctl apply -i inv/prod.toml"), "{msg}");
        }
        refuse_declared(&cluster, "redis").unwrap();
        let e = refuse_member_node(&cluster, "c1", &[]).unwrap_err();
        assert!(e.to_string().contains("use --on c1"), "{e}");
        let member = consul_api::Member {
            name: "box7".into(),
            addr: "10.0.0.7".into(),
            status: 1,
            ..Default::default()
        };
        let e = refuse_member_node(&cluster, "box7", &[member]).unwrap_err();
        assert!(
            e.to_string()
                .contains("member of the cluster (10.0.0.7, alive)"),
            "{e}"
        );
        refuse_member_node(&cluster, "redis-master", &[]).unwrap();
    }

    #[test]
    fn an_external_check_is_reported_as_not_run() {
        let c = CheckWanted {
            kind: "tcp".into(),
            target: "10.0.0.5:6379".into(),
            interval: "10s".into(),
        };
        let w = unrun_check_warning("redis-master", &c, "passing");
        assert!(w.contains("Consul runs no checks"), "{w}");
        assert!(w.contains("stays passing"), "{w}");
        assert!(w.contains("consulctl doctor"), "{w}");
        let change = Change {
            action: "register",
            service: "redis".into(),
            id: "redis".into(),
            node: "redis-master".into(),
            external: true,
            address: Some("10.0.0.5".into()),
            port: Some(6379),
            tags: vec!["db".into()],
            check: Some(c),
            node_removed: false,
            via: "server1".into(),
            warnings: vec![w],
        };
        assert_eq!(
            change.to_text(),
            "registered redis (service redis) on external node redis-master at 10.0.0.5:6379, \
             tags db, tcp check of 10.0.0.5:6379 registered (not run by Consul)\n"
        );
        let json: serde_json::Value = serde_json::from_str(&change.to_json()).unwrap();
        assert_eq!(json["external"], true);
        assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
    }
}
