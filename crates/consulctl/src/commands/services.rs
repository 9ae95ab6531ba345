//! `consulctl services`: what Consul's catalog holds per service, with every instance's check
//! status, side by side with what the inventory declares. Exit 0 when every declared service
//! instance is in the catalog, 1 otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::apply::{self, HostRun};
use crate::cli::{Output, ServicesArgs};
use crate::progress::Progress;
use crate::ssh::Connection;
use crate::verify;
use consulctl_core::error::Error;
use consulctl_core::model::{Cluster, Role};

const CATALOG: &str = "/v1/catalog/services";

#[derive(Debug, Clone, Deserialize)]
struct HealthEntry {
    #[serde(rename = "Node")]
    node: HealthNode,
    #[serde(rename = "Service")]
    service: HealthService,
    #[serde(rename = "Checks", default)]
    checks: Vec<HealthCheck>,
}

#[derive(Debug, Clone, Deserialize)]
struct HealthNode {
    #[serde(rename = "Node")]
    node: String,
    #[serde(rename = "Address", default)]
    address: String,
}

#[derive(Debug, Clone, Deserialize)]
struct HealthService {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Address", default)]
    address: String,
    #[serde(rename = "Port", default)]
    port: u16,
    #[serde(rename = "Tags", default)]
    tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct HealthCheck {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "CheckID", default)]
    pub check_id: String,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    #[serde(rename = "Output", default)]
    pub output: String,
}

/// One instance of a service as the catalog holds it (or as the inventory declares it).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Instance {
    pub node: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    /// Service checks (not the node's serfHealth): name -> status.
    pub checks: Vec<CheckState>,
    /// passing / warning / critical: the worst of the checks, `passing` without checks.
    pub status: String,
    /// The inventory declares this instance.
    pub declared: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckState {
    pub name: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceReport {
    pub name: String,
    pub instances: Vec<Instance>,
    /// Inventory hosts that declare it but are not in the catalog with it.
    pub missing: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub via: String,
    pub services: Vec<ServiceReport>,
    pub ok: bool,
}

/// Percent-encode a path segment.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn worst(checks: &[CheckState]) -> String {
    let rank = |s: &str| match s {
        "critical" => 3,
        "warning" => 2,
        "passing" => 1,
        _ => 0,
    };
    checks
        .iter()
        .max_by_key(|c| rank(&c.status))
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "passing".into())
}

/// Put the catalog's answers and the inventory together (pure).
pub fn build(
    cluster: &Cluster,
    names: &[String],
    health: &BTreeMap<String, String>,
) -> Result<Vec<ServiceReport>> {
    let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in &cluster.hosts {
        for s in &h.services {
            declared
                .entry(s.name.clone())
                .or_default()
                .insert(h.name.clone());
        }
    }
    let mut all: BTreeSet<String> = names.iter().cloned().collect();
    all.extend(declared.keys().cloned());
    let mut out = Vec::new();
    for name in all {
        let entries: Vec<HealthEntry> = match health.get(&name) {
            Some(body) => serde_json::from_str(body)
                .with_context(|| format!("parsing the health of service {name}"))?,
            None => Vec::new(),
        };
        let wanted = declared.get(&name).cloned().unwrap_or_default();
        let mut instances: Vec<Instance> = entries
            .iter()
            .map(|e| {
                let checks: Vec<CheckState> = e
                    .checks
                    .iter()
                    .filter(|c| c.service_id == e.service.id && !c.service_id.is_empty())
                    .map(|c| CheckState {
                        name: if c.name.is_empty() {
                            c.check_id.clone()
                        } else {
                            c.name.clone()
                        },
                        status: c.status.clone(),
                        output: c.output.trim().chars().take(200).collect(),
                    })
                    .collect();
                Instance {
                    node: e.node.node.clone(),
                    id: e.service.id.clone(),
                    address: if e.service.address.is_empty() {
                        e.node.address.clone()
                    } else {
                        e.service.address.clone()
                    },
                    port: e.service.port,
                    tags: e.service.tags.clone().unwrap_or_default(),
                    status: worst(&checks),
                    checks,
                    declared: wanted.contains(&e.node.node),
                }
            })
            .collect();
        instances.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        let present: BTreeSet<&str> = instances.iter().map(|i| i.node.as_str()).collect();
        let missing = wanted
            .iter()
            .filter(|h| !present.contains(h.as_str()))
            .cloned()
            .collect();
        out.push(ServiceReport {
            name,
            instances,
            missing,
        });
    }
    Ok(out)
}

async fn read(conn: &Connection, http: &str) -> Result<(Vec<String>, BTreeMap<String, String>)> {
    let out = conn
        .run(
            "consul api",
            verify::API,
            &[http.to_string(), CATALOG.into()],
            None,
        )
        .await?;
    let map = verify::parse_api_output(&out.stdout);
    let (code, body) = map.get(CATALOG).context("no answer for the catalog")?;
    if *code != 200 {
        bail!(
            "{CATALOG} answered HTTP {code}: {}",
            body.chars().take(200).collect::<String>()
        );
    }
    let catalog: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(body).context("parsing the catalog")?;
    let names: Vec<String> = catalog.keys().cloned().collect();
    let mut args = vec![http.to_string()];
    args.extend(
        names
            .iter()
            .map(|n| format!("/v1/health/service/{}", seg(n))),
    );
    let out = conn.run("consul api", verify::API, &args, None).await?;
    let map = verify::parse_api_output(&out.stdout);
    let mut health = BTreeMap::new();
    for n in &names {
        let path = format!("/v1/health/service/{}", seg(n));
        if let Some((200, body)) = map.get(&path) {
            health.insert(n.clone(), body.clone());
        }
    }
    Ok((names, health))
}

/// `consulctl services`.
pub async fn run(args: &ServicesArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let p = apply::prepare(&args.inv, "services", debug_log).await?;
    let mut runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new_pub).collect();
    let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
    apply::connect(&mut runs, &p, &progress).await;
    apply::gather_facts(&mut runs, &p, &progress).await;
    for r in &runs {
        progress.finish(&r.host.name, "");
    }
    progress.clear();
    let binds = apply::bind_addrs(&p.cluster, &runs);
    let mut order: Vec<&HostRun> = runs
        .iter()
        .filter(|r| r.host.role == Role::Server)
        .collect();
    order.extend(runs.iter().filter(|r| r.host.role == Role::Client));
    let mut answer = None;
    let mut errors = Vec::new();
    for r in order {
        let (Some(conn), Some(bind)) = (r.conn.as_ref(), binds.get(&r.host.name)) else {
            continue;
        };
        if !r
            .facts
            .as_ref()
            .is_some_and(|f| f.agent_running(r.host.init))
        {
            continue;
        }
        let http = verify::http_addr(&r.host, *bind);
        match tokio::time::timeout(Duration::from_secs(30), read(conn, &http)).await {
            Ok(Ok(a)) => {
                answer = Some((r.host.name.clone(), a));
                break;
            }
            Ok(Err(e)) => errors.push(format!("{}: {e:#}", r.host.name)),
            Err(_) => errors.push(format!("{}: timed out", r.host.name)),
        }
    }
    apply::disconnect(&mut runs, None).await;
    let Some((via, (names, health))) = answer else {
        return Err(Error::Runtime(anyhow!(
            "no agent answered: {}",
            if errors.is_empty() {
                "no host with a running agent is reachable".to_string()
            } else {
                errors.join("; ")
            }
        )));
    };
    let services = build(&p.cluster, &names, &health).map_err(Error::Runtime)?;
    let ok = services.iter().all(|s| s.missing.is_empty());
    let report = Report { via, services, ok };
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Output::Text => print!("{}", to_text(&report)),
    }
    if ok {
        Ok(())
    } else {
        let missing: Vec<String> = report
            .services
            .iter()
            .filter(|s| !s.missing.is_empty())
            .map(|s| format!("{} on {}", s.name, s.missing.join(", ")))
            .collect();
        Err(Error::Runtime(anyhow!(
            "declared in the inventory but not in Consul's catalog: {}",
            missing.join("; ")
        )))
    }
}

pub fn to_text(r: &Report) -> String {
    let mut out = format!("catalog read through {}\n", r.via);
    for s in &r.services {
        out.push_str(&format!("\n{}\n", s.name));
        for i in &s.instances {
            let checks: Vec<String> = i
                .checks
                .iter()
                .map(|c| format!("{}: {}", c.name, c.status))
                .collect();
            out.push_str(&format!(
                "  {:<14} {:<22} {:<9} {}{}\n",
                i.node,
                format!("{}:{}", i.address, i.port),
                i.status,
                if checks.is_empty() {
                    "no checks".to_string()
                } else {
                    checks.join(", ")
                },
                if i.declared {
                    ""
                } else {
                    "  (not in the inventory)"
                }
            ));
        }
        for m in &s.missing {
            out.push_str(&format!(
                "  {m:<14} MISSING: declared in the inventory, not in the catalog\n"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seg_encodes_everything_but_unreserved() {
        assert_eq!(seg("web"), "web");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn builds_instances_with_their_own_checks_and_the_worst_status() {
        let body = r#"[
          {"Node":{"Node":"client1","Address":"10.0.0.21"},
           "Service":{"ID":"web","Service":"web","Address":"10.0.0.21","Port":80,"Tags":["http","upyun"]},
           "Checks":[{"Name":"Serf Health Status","CheckID":"serfHealth","Status":"passing","ServiceID":""},
                     {"Name":"web tcp","CheckID":"service:web","Status":"critical","ServiceID":"web","Output":"dial tcp: connection refused"}]},
          {"Node":{"Node":"client2","Address":"10.0.0.22"},
           "Service":{"ID":"web","Service":"web","Address":"","Port":80,"Tags":null},
           "Checks":[{"Name":"web tcp","CheckID":"service:web","Status":"passing","ServiceID":"web"}]}
        ]"#;
        let cluster = consulctl_core::model::Cluster {
            inventory_path: "inv.toml".into(),
            name: "dc1".into(),
            datacenter: "dc1".into(),
            domain: "consul".into(),
            consul: consulctl_core::model::ConsulSpec {
                version: "1.8.7".parse().unwrap(),
                source: consulctl_core::model::InstallSource::Package {
                    manager: consulctl_core::model::PackageManager::Auto,
                },
            },
            encrypt: None,
            encrypt_auto: false,
            tls_auto: false,
            acl: false,
            acl_tokens: Default::default(),
            hosts: vec![],
            warnings: vec![],
        };
        let mut health = BTreeMap::new();
        health.insert("web".to_string(), body.to_string());
        let r = build(&cluster, &["web".into()], &health).unwrap();
        assert_eq!(r.len(), 1);
        let web = &r[0];
        assert_eq!(web.instances.len(), 2);
        assert_eq!(web.instances[0].status, "critical");
        assert_eq!(web.instances[0].checks.len(), 1, "serfHealth is the node's");
        assert_eq!(
            web.instances[1].address, "10.0.0.22",
            "the node address fills in"
        );
        assert_eq!(web.instances[1].status, "passing");
        assert!(!web.instances[0].declared);
    }
}
