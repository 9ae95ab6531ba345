//! `consulctl catalog services | service NAME | nodes`: Consul's catalog as operators query it
//! with curl, through the inventory's hosts (their agents, token and CA), in this datacenter
//! or another one (`--dc`, answered by that datacenter's servers over WAN).
//!
//! `services` and `nodes` read one answer, `/v1/internal/ui/nodes` (every node with its
//! services and checks), and count health from it; `service` reads `/v1/health/service/NAME`.
//! An instance's health is the worst of its node's checks and its own (as Consul's health
//! endpoints and DNS judge it); maintenance counts as critical.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use consul_api::catalog::NodeDump;
use consul_api::{HealthCheck, QueryOptions, ServiceEntry};
use serde::Serialize;

use crate::cli::{CatalogNodesArgs, CatalogServiceArgs, CatalogServicesArgs, HealthFilter};
use crate::engine::agents::{self, Agents};
use crate::engine::output::{self, Report};
use crate::engine::verify::Agent;
use consulctl_core::error::Error;

fn dc_options(dc: &Option<String>) -> QueryOptions {
    QueryOptions {
        dc: dc.clone(),
        ..QueryOptions::default()
    }
}

fn rank(status: &str) -> u8 {
    match status {
        "passing" => 0,
        "warning" => 1,
        _ => 2,
    }
}

/// The worst status of `checks` (`passing` without any; maintenance and unknown states are
/// critical).
fn worst<'a>(checks: impl IntoIterator<Item = &'a HealthCheck>) -> &'static str {
    match checks.into_iter().map(|c| rank(&c.status)).max() {
        None | Some(0) => "passing",
        Some(1) => "warning",
        _ => "critical",
    }
}

/// A node's own checks (serfHealth, node maintenance, node checks).
fn node_checks(n: &NodeDump) -> impl Iterator<Item = &HealthCheck> {
    n.checks.iter().filter(|c| c.service_id.is_empty())
}

fn matches(filter: Option<HealthFilter>, status: &str) -> bool {
    filter.map_or(true, |f| f.as_str() == status)
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ServiceSummary {
    pub name: String,
    /// Every tag any instance has.
    pub tags: Vec<String>,
    pub instances: usize,
    pub passing: usize,
    pub warning: usize,
    pub critical: usize,
}

#[derive(Debug, Serialize)]
pub struct ServicesReport {
    pub datacenter: String,
    /// The inventory host whose agent answered.
    pub via: String,
    pub services: Vec<ServiceSummary>,
}

/// Services with their tags and instance counts by health, filtered by tag and by "has an
/// instance in this state".
pub fn summarize(
    nodes: &[NodeDump],
    tag: Option<&str>,
    health: Option<HealthFilter>,
) -> Vec<ServiceSummary> {
    let mut by_name: BTreeMap<String, ServiceSummary> = BTreeMap::new();
    for n in nodes {
        for s in &n.services {
            let own = n.checks.iter().filter(|c| c.service_id == s.id);
            let status = worst(own.chain(node_checks(n)));
            let e = by_name
                .entry(s.service.clone())
                .or_insert_with(|| ServiceSummary {
                    name: s.service.clone(),
                    tags: vec![],
                    instances: 0,
                    passing: 0,
                    warning: 0,
                    critical: 0,
                });
            e.instances += 1;
            match status {
                "passing" => e.passing += 1,
                "warning" => e.warning += 1,
                _ => e.critical += 1,
            }
            e.tags.extend(s.tags.iter().cloned());
        }
    }
    by_name
        .into_values()
        .map(|mut s| {
            let tags: BTreeSet<String> = s.tags.drain(..).collect();
            s.tags = tags.into_iter().collect();
            s
        })
        .filter(|s| tag.map_or(true, |t| s.tags.iter().any(|x| x == t)))
        .filter(|s| match health {
            None => true,
            Some(HealthFilter::Passing) => s.passing > 0,
            Some(HealthFilter::Warning) => s.warning > 0,
            Some(HealthFilter::Critical) => s.critical > 0,
        })
        .collect()
}

impl Report for ServicesReport {
    fn to_text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .services
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.instances.to_string(),
                    s.passing.to_string(),
                    s.warning.to_string(),
                    s.critical.to_string(),
                    s.tags.join(","),
                ]
            })
            .collect();
        let mut out = table(
            &[
                "SERVICE",
                "INSTANCES",
                "PASSING",
                "WARNING",
                "CRITICAL",
                "TAGS",
            ],
            &rows,
        );
        out.push_str(&format!(
            "{} service{} in {} (via {})\n",
            self.services.len(),
            plural(self.services.len()),
            self.datacenter,
            self.via
        ));
        out
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CheckRow {
    pub name: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct InstanceRow {
    pub node: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub health: String,
    pub checks: Vec<CheckRow>,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub service: String,
    pub datacenter: String,
    pub via: String,
    pub instances: Vec<InstanceRow>,
}

/// One service's instances from `/v1/health/service/NAME` (the tag filter is Consul's), with
/// the health filter applied.
pub fn instances(entries: &[ServiceEntry], health: Option<HealthFilter>) -> Vec<InstanceRow> {
    let mut rows: Vec<InstanceRow> = entries
        .iter()
        .map(|e| InstanceRow {
            node: e.node.node.clone(),
            id: e.service.id.clone(),
            address: e.effective_address().to_string(),
            port: e.service.port,
            tags: e.service.tags.clone(),
            health: worst(&e.checks).to_string(),
            checks: e
                .checks
                .iter()
                .map(|c| CheckRow {
                    name: c.name.clone(),
                    status: c.status.clone(),
                    output: c.output.trim().chars().take(200).collect(),
                })
                .collect(),
        })
        .filter(|r| matches(health, &r.health))
        .collect();
    rows.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
    rows
}

impl Report for ServiceReport {
    fn to_text(&self) -> String {
        if self.instances.is_empty() {
            return format!(
                "no instances of {} in {} (via {})\n",
                self.service, self.datacenter, self.via
            );
        }
        let rows: Vec<Vec<String>> = self
            .instances
            .iter()
            .map(|i| {
                let failing: Vec<String> = i
                    .checks
                    .iter()
                    .filter(|c| c.status != "passing")
                    .map(|c| {
                        if c.output.is_empty() {
                            format!("{}: {}", c.name, c.status)
                        } else {
                            format!("{}: {} ({})", c.name, c.status, first_line(&c.output))
                        }
                    })
                    .collect();
                vec![
                    i.node.clone(),
                    i.id.clone(),
                    i.address.clone(),
                    i.port.to_string(),
                    i.tags.join(","),
                    i.health.clone(),
                    failing.join("; "),
                ]
            })
            .collect();
        let mut out = table(
            &[
                "NODE",
                "ID",
                "ADDRESS",
                "PORT",
                "TAGS",
                "HEALTH",
                "FAILING CHECKS",
            ],
            &rows,
        );
        out.push_str(&format!(
            "{} instance{} of {} in {} (via {})\n",
            self.instances.len(),
            plural(self.instances.len()),
            self.service,
            self.datacenter,
            self.via
        ));
        out
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct NodeRow {
    pub node: String,
    pub address: String,
    pub datacenter: String,
    /// The worst of the node's own checks.
    pub health: String,
    pub services: usize,
    /// No agent runs on it: registered in the catalog directly (no serfHealth check).
    pub external: bool,
}

#[derive(Debug, Serialize)]
pub struct NodesReport {
    pub datacenter: String,
    pub via: String,
    pub nodes: Vec<NodeRow>,
}

pub fn node_rows(nodes: &[NodeDump], health: Option<HealthFilter>) -> Vec<NodeRow> {
    nodes
        .iter()
        .map(|n| NodeRow {
            node: n.node.clone(),
            address: n.address.clone(),
            datacenter: n.datacenter.clone(),
            health: worst(node_checks(n)).to_string(),
            services: n.services.len(),
            external: !n.checks.iter().any(|c| c.check_id == "serfHealth"),
        })
        .filter(|r| matches(health, &r.health))
        .collect()
}

impl Report for NodesReport {
    fn to_text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.node.clone(),
                    n.address.clone(),
                    n.health.clone(),
                    n.services.to_string(),
                    if n.external { "external" } else { "agent" }.to_string(),
                ]
            })
            .collect();
        let mut out = table(&["NODE", "ADDRESS", "HEALTH", "SERVICES", "KIND"], &rows);
        out.push_str(&format!(
            "{} node{} in {} (via {})\n",
            self.nodes.len(),
            plural(self.nodes.len()),
            self.datacenter,
            self.via
        ));
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The datacenter a query answered for: the one asked, else the answering agent's.
async fn datacenter_of(client: &consul_api::Client, dc: &Option<String>) -> anyhow::Result<String> {
    Ok(match dc {
        Some(dc) => dc.clone(),
        None => {
            client
                .call(consul_api::agent::self_info())
                .await?
                .config
                .datacenter
        }
    })
}

/// An unknown `--dc` is bad input: Consul says "No path to datacenter".
fn dc_error(e: Error, dc: &Option<String>) -> Error {
    match (e, dc) {
        (Error::Runtime(e), Some(dc)) if format!("{e:#}").contains("No path to datacenter") => {
            Error::Input(e.context(format!(
                "--dc {dc}: no such datacenter is known to this cluster (over WAN)"
            )))
        }
        (e, _) => e,
    }
}

async fn read_nodes(
    a: &Agents,
    dc: &Option<String>,
) -> Result<(Agent, (String, Vec<NodeDump>)), Error> {
    let opts = dc_options(dc);
    a.first(|agent| {
        let opts = opts.clone();
        let client = agent.client.clone();
        async move {
            let nodes = client
                .call(consul_api::catalog::node_dump().with_options(&opts))
                .await?;
            Ok((datacenter_of(&client, &opts.dc).await?, nodes))
        }
    })
    .await
    .map_err(|e| dc_error(e, dc))
}

/// `consulctl catalog services`.
pub async fn services(args: &CatalogServicesArgs, log: Option<&Path>) -> Result<(), Error> {
    let a = Agents::open(
        agents::settings_servers_by_default(&args.inv),
        "catalog",
        log,
    )
    .await?;
    let got = read_nodes(&a, &args.dc.dc).await;
    a.close().await;
    let (via, (datacenter, nodes)) = got?;
    let report = ServicesReport {
        datacenter,
        via: via.host,
        services: summarize(&nodes, args.tag.as_deref(), args.health),
    };
    output::print(args.output, &report);
    Ok(())
}

/// `consulctl catalog service NAME`.
pub async fn service(args: &CatalogServiceArgs, log: Option<&Path>) -> Result<(), Error> {
    let a = Agents::open(
        agents::settings_servers_by_default(&args.inv),
        "catalog",
        log,
    )
    .await?;
    let mut opts = dc_options(&args.dc.dc);
    opts.tag = args.tag.iter().cloned().collect();
    let got = a
        .first(|agent| {
            let opts = opts.clone();
            let client = agent.client.clone();
            let name = args.name.clone();
            async move {
                let entries = client
                    .call(consul_api::health::service(&name).with_options(&opts))
                    .await?;
                Ok((datacenter_of(&client, &opts.dc).await?, entries))
            }
        })
        .await
        .map_err(|e| dc_error(e, &args.dc.dc));
    a.close().await;
    let (via, (datacenter, entries)) = got?;
    let report = ServiceReport {
        service: args.name.clone(),
        datacenter,
        via: via.host,
        instances: instances(&entries, args.health),
    };
    output::print(args.output, &report);
    Ok(())
}

/// `consulctl catalog nodes`.
pub async fn nodes(args: &CatalogNodesArgs, log: Option<&Path>) -> Result<(), Error> {
    let a = Agents::open(
        agents::settings_servers_by_default(&args.inv),
        "catalog",
        log,
    )
    .await?;
    let got = read_nodes(&a, &args.dc.dc).await;
    a.close().await;
    let (via, (datacenter, nodes)) = got?;
    let report = NodesReport {
        datacenter,
        via: via.host,
        nodes: node_rows(&nodes, args.health),
    };
    output::print(args.output, &report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(node: &str, id: &str, service: &str, status: &str) -> HealthCheck {
        HealthCheck {
            node: node.into(),
            check_id: id.into(),
            name: id.into(),
            status: status.into(),
            service_id: service.into(),
            ..HealthCheck::default()
        }
    }

    fn svc(id: &str, name: &str, tags: &[&str]) -> consul_api::AgentService {
        consul_api::AgentService {
            id: id.into(),
            service: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            port: 8080,
            ..Default::default()
        }
    }

    /// client1: web-1 passing, api passing; client2: web-2 with a critical check; external
    /// node db1 (no serfHealth) with redis passing; client3 in node maintenance with web-3.
    fn dump() -> Vec<NodeDump> {
        let node = |name: &str, services, checks| NodeDump {
            node: name.into(),
            address: format!("10.0.0.{}", name.len()),
            datacenter: "dc1".into(),
            services,
            checks,
            ..NodeDump::default()
        };
        vec![
            node(
                "client1",
                vec![svc("web-1", "web", &["http", "v1"]), svc("api", "api", &[])],
                vec![
                    check("client1", "serfHealth", "", "passing"),
                    check("client1", "service:web-1", "web-1", "passing"),
                ],
            ),
            node(
                "client2",
                vec![svc("web-2", "web", &["http", "v2"])],
                vec![
                    check("client2", "serfHealth", "", "passing"),
                    check("client2", "service:web-2", "web-2", "critical"),
                ],
            ),
            node(
                "db1",
                vec![svc("redis", "redis", &["db"])],
                vec![check("db1", "service:redis", "redis", "passing")],
            ),
            node(
                "client3",
                vec![svc("web-3", "web", &["http"])],
                vec![
                    check("client3", "serfHealth", "", "passing"),
                    check("client3", "_node_maintenance", "", "maintenance"),
                ],
            ),
        ]
    }

    #[test]
    fn services_count_instances_by_health_with_node_checks_counted() {
        let s = summarize(&dump(), None, None);
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["api", "redis", "web"]);
        let web = &s[2];
        assert_eq!(
            (web.instances, web.passing, web.warning, web.critical),
            (3, 1, 0, 2),
            "web-2 has a critical check, web-3's node is in maintenance"
        );
        assert_eq!(web.tags, ["http", "v1", "v2"]);
    }

    #[test]
    fn services_filter_by_tag_and_health() {
        let tagged = summarize(&dump(), Some("db"), None);
        assert_eq!(tagged.len(), 1);
        assert_eq!(tagged[0].name, "redis");
        let critical = summarize(&dump(), None, Some(HealthFilter::Critical));
        assert_eq!(critical.len(), 1);
        assert_eq!(critical[0].name, "web");
        assert!(summarize(&dump(), Some("nope"), None).is_empty());
        let text = ServicesReport {
            datacenter: "dc1".into(),
            via: "server1".into(),
            services: summarize(&dump(), None, None),
        }
        .to_text();
        assert!(text.starts_with("SERVICE  INSTANCES  PASSING"), "{text}");
        assert!(
            text.contains("web      3          1        0        2         http,v1,v2"),
            "{text}"
        );
        assert!(
            text.ends_with("3 services in dc1 (via server1)\n"),
            "{text}"
        );
    }

    #[test]
    fn nodes_show_health_and_which_have_no_agent() {
        let rows = node_rows(&dump(), None);
        let db = rows.iter().find(|r| r.node == "db1").unwrap();
        assert!(db.external);
        assert_eq!(db.health, "passing");
        let c3 = rows.iter().find(|r| r.node == "client3").unwrap();
        assert_eq!((c3.health.as_str(), c3.external), ("critical", false));
        let crit = node_rows(&dump(), Some(HealthFilter::Critical));
        assert_eq!(crit.len(), 1);
        assert_eq!(crit[0].node, "client3");
    }

    #[test]
    fn one_service_lists_instances_with_address_health_and_failing_checks() {
        let entries: Vec<ServiceEntry> = serde_json::from_str(include_str!(
            "../../../consul-api/tests/fixtures/health-service-web.json"
        ))
        .unwrap();
        let all = instances(&entries, None);
        assert!(!all.is_empty());
        for (row, e) in all.iter().zip({
            let mut e = entries.clone();
            e.sort_by(|a, b| (&a.node.node, &a.service.id).cmp(&(&b.node.node, &b.service.id)));
            e
        }) {
            assert_eq!(row.health, e.aggregated_status());
            let want = if e.service.address.is_empty() {
                &e.node.address
            } else {
                &e.service.address
            };
            assert_eq!(&row.address, want);
        }
        let passing = instances(&entries, Some(HealthFilter::Passing));
        assert!(passing.iter().all(|r| r.health == "passing"));
        assert_eq!(
            passing.len(),
            all.iter().filter(|r| r.health == "passing").count()
        );
        let report = ServiceReport {
            service: "web".into(),
            datacenter: "dc1".into(),
            via: "server1".into(),
            instances: all,
        };
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["service"], "web");
        assert!(json["instances"][0]["port"].is_u64());
        let empty = ServiceReport {
            instances: vec![],
            ..report
        };
        assert_eq!(
            empty.to_text(),
            "no instances of web in dc1 (via server1)\n"
        );
    }
}
