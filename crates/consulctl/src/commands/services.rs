//! `consulctl services`: what Consul's catalog holds per service, with every instance's check
//! status, side by side with what the inventory declares. Exit 0 when every declared service
//! instance is in the catalog, 1 otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use consul_api::{Client, ServiceEntry};
use serde::Serialize;

use crate::cli::ServicesArgs;
use crate::engine::context::{self, HostRun};
use crate::engine::progress::Progress;
use crate::engine::verify;
use consulctl_core::error::Error;
use consulctl_core::model::Cluster;

const CATALOG: &str = "/v1/catalog/services";

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
    /// The container behind it, when the Docker registrar registered it: `name (short id)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
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

/// `name (short id)` of the container a registrar registration stands for.
fn backing_container(meta: &BTreeMap<String, String>) -> Option<String> {
    use consul_api::meta;
    if meta.get(meta::MANAGED_BY).map(String::as_str) != Some(meta::REGISTRAR) {
        return None;
    }
    let name = meta.get(meta::CONTAINER)?;
    Some(match meta.get(meta::CONTAINER_ID) {
        Some(id) => format!("{name} ({id})"),
        None => name.clone(),
    })
}

/// Put the catalog's answers and the inventory together (pure).
pub fn build(
    cluster: &Cluster,
    names: &[String],
    health: &BTreeMap<String, Vec<ServiceEntry>>,
) -> Vec<ServiceReport> {
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
        let entries: &[ServiceEntry] = health.get(&name).map(Vec::as_slice).unwrap_or_default();
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
                    tags: e.service.tags.clone(),
                    status: worst(&checks),
                    checks,
                    declared: wanted.contains(&e.node.node),
                    container: backing_container(&e.service.meta),
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
    out
}

/// The catalog's service names, then every service's instances with their checks: two round
/// trips through one agent. A service whose health read is refused (an HTTP error) has no
/// instances in the answer.
pub async fn read(client: &Client) -> Result<(Vec<String>, BTreeMap<String, Vec<ServiceEntry>>)> {
    let catalog = match client.call(consul_api::catalog::services()).await {
        Ok(c) => c,
        Err(consul_api::Error::Status { status, body, .. }) => {
            bail!("{CATALOG} answered HTTP {status}: {body}")
        }
        Err(consul_api::Error::Decode { source, .. }) => {
            return Err(anyhow!(source).context("parsing the catalog"))
        }
        Err(e) => return Err(e.into()),
    };
    let names: Vec<String> = catalog.into_keys().collect();
    let answers = client
        .call_all(
            names
                .iter()
                .map(|n| consul_api::health::service(n))
                .collect(),
        )
        .await;
    let mut health = BTreeMap::new();
    for (n, answer) in names.iter().zip(answers) {
        match answer {
            Ok(entries) => {
                health.insert(n.clone(), entries);
            }
            Err(consul_api::Error::Status { .. }) => {}
            Err(consul_api::Error::Decode { source, .. }) => {
                return Err(anyhow!(source).context(format!("parsing the health of service {n}")))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((names, health))
}

/// `consulctl services`.
pub async fn run(args: &ServicesArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let p = context::prepare(&args.inv, "services", debug_log).await?;
    let mut runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new_pub).collect();
    let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
    context::connect(&mut runs, &p, &progress).await;
    context::gather_facts(&mut runs, &p, &progress).await;
    for r in &runs {
        progress.finish(&r.host.name, "");
    }
    progress.clear();
    let binds = context::bind_addrs(&p.cluster, &runs);
    // Servers first, as `status`: any host whose agent runs will do.
    let agents = crate::engine::status::agents(&runs, &binds);
    let got =
        verify::first_answer(&agents, Some(Duration::from_secs(30)), |a| read(&a.client)).await;
    let errors: Vec<String> = got.errors.iter().map(verify::NoAnswer::short).collect();
    let answer = got.answer.map(|(a, answer)| (a.host.clone(), answer));
    context::disconnect(&mut runs, None).await;
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
    let services = build(&p.cluster, &names, &health);
    let ok = services.iter().all(|s| s.missing.is_empty());
    let report = Report { via, services, ok };
    crate::engine::output::print(args.output, &report);
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
                match (&i.container, i.declared) {
                    (Some(c), _) => format!("  container {c}"),
                    (None, true) => String::new(),
                    (None, false) => "  (not in the inventory)".into(),
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

impl crate::engine::output::Report for Report {
    fn to_text(&self) -> String {
        to_text(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use consul_api::testing::{block_on, FakeTransport};

    #[test]
    fn service_names_are_encoded_as_one_path_segment() {
        assert_eq!(
            consul_api::health::service("web").request.path,
            "/v1/health/service/web"
        );
        assert_eq!(
            consul_api::health::service("a b/c").request.path,
            "/v1/health/service/a%20b%2Fc"
        );
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
            registrar_binary: None,
            hosts: vec![],
            warnings: vec![],
        };
        let fake = FakeTransport::new()
            .on(
                "GET",
                "/v1/catalog/services",
                200,
                r#"{"consul":[],"web":["http"],"db":null}"#,
            )
            .on("GET", "/v1/health/service/web", 200, body)
            .on("GET", "/v1/health/service/consul", 200, "[]")
            .on("GET", "/v1/health/service/db", 403, "Permission denied");
        let (names, health) = block_on(read(&Client::new(fake.clone()))).unwrap();
        assert_eq!(names, ["consul", "db", "web"]);
        assert_eq!(
            fake.batches(),
            [1, 3],
            "the catalog, then every service at once"
        );
        assert!(
            !health.contains_key("db"),
            "a refused health read has no instances"
        );
        assert!(health["consul"].is_empty());
        let mut health: BTreeMap<String, Vec<ServiceEntry>> = health;
        health.retain(|k, _| k == "web");
        let r = build(&cluster, &["web".into()], &health);
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

    #[test]
    fn registrar_instances_name_their_container_and_others_do_not() {
        let meta = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let reg = meta(&[
            ("managed-by", "consulctl-registrar"),
            ("container", "web1"),
            ("container-id", "0123456789ab"),
        ]);
        assert_eq!(
            backing_container(&reg).as_deref(),
            Some("web1 (0123456789ab)")
        );
        // Somebody else's meta that happens to say "container" is not ours.
        assert_eq!(backing_container(&meta(&[("container", "x")])), None);
        let instance = Instance {
            node: "client1".into(),
            id: "client1:web1:8080".into(),
            address: "10.0.0.5".into(),
            port: 8080,
            tags: vec![],
            checks: vec![],
            status: "passing".into(),
            declared: false,
            container: backing_container(&reg),
        };
        let report = Report {
            via: "server1".into(),
            services: vec![ServiceReport {
                name: "simple".into(),
                instances: vec![instance],
                missing: vec![],
            }],
            ok: true,
        };
        let text = to_text(&report);
        assert!(text.contains("container web1 (0123456789ab)"), "{text}");
        assert!(!text.contains("not in the inventory"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["services"][0]["instances"][0]["container"],
            "web1 (0123456789ab)"
        );
    }

    #[test]
    fn catalog_errors_name_the_catalog_and_bad_health_bodies_the_service() {
        let fake = FakeTransport::new().on("GET", "/v1/catalog/services", 500, "rpc error");
        let e = block_on(read(&Client::new(fake))).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "/v1/catalog/services answered HTTP 500: rpc error"
        );
        let fake = FakeTransport::new()
            .on("GET", "/v1/catalog/services", 200, r#"{"web":[]}"#)
            .on("GET", "/v1/health/service/web", 200, "<html>");
        let e = block_on(read(&Client::new(fake))).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("parsing the health of service web: "),
            "{e:#}"
        );
        let fake = FakeTransport::new().fail_all("ssh c1: refused");
        let e = block_on(read(&Client::new(fake))).unwrap_err();
        assert_eq!(format!("{e:#}"), "ssh c1: refused");
    }
}
