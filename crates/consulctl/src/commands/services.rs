//! `consulctl services`: what Consul's catalog holds per service, with every instance's check
//! status, side by side with what the inventory declares, and which load balancers route to
//! which instances (what each LB sync daemon publishes under Consul KV `consulctl/lb/<node>`).
//! Exit 0 when every declared service instance is in the catalog, 1 otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use consul_api::{Client, ServiceEntry};
use serde::{Deserialize, Serialize};

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
    /// The load balancers that serve it (from the LB daemons' KV entries).
    pub lbs: Vec<LbRoute>,
}

/// What one LB sync daemon publishes (Consul KV `consulctl/lb/<node>`, JSON).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LbState {
    pub node: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub updated: Option<String>,
    /// What the LB serves now (the last render whose reload was confirmed).
    #[serde(default)]
    pub serving: Option<LbServing>,
    /// The last attempt's failure (null when it succeeded or nothing changed): a message, or
    /// whatever JSON the daemon put there.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LbServing {
    #[serde(default)]
    pub generation: String,
    #[serde(default)]
    pub since: Option<String>,
    /// Per service its routes: a list (the daemon's form: a service tagged tcp and udp has
    /// two), or one route.
    #[serde(default)]
    pub services: BTreeMap<String, Routes>,
}

/// One route or several.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Routes {
    Many(Vec<LbService>),
    One(LbService),
}

impl Routes {
    pub fn list(&self) -> Vec<&LbService> {
        match self {
            Routes::Many(v) => v.iter().collect(),
            Routes::One(s) => vec![s],
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LbService {
    #[serde(default)]
    pub protocol: String,
    pub listen: u16,
    #[serde(default)]
    pub instances: Vec<LbInstance>,
    /// The daemon left the list out (the record would not fit in one Consul KV value): how
    /// many instances it routes to.
    #[serde(default)]
    pub instances_omitted: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct LbInstance {
    pub node: String,
    pub id: String,
    pub address: String,
    pub port: u16,
}

impl LbState {
    /// The last attempt's failure as text.
    pub fn error_text(&self) -> Option<String> {
        match self.error.as_ref()? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => Some(match o.get("message").and_then(|m| m.as_str()) {
                Some(m) => m.to_string(),
                None => serde_json::Value::Object(o.clone()).to_string(),
            }),
            other => Some(other.to_string()),
        }
    }
}

/// One load balancer's routes to a service.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LbRoute {
    /// The LB host (its Consul node name).
    pub lb: String,
    pub kind: String,
    pub protocol: String,
    pub listen: u16,
    /// The instances it routes to.
    pub instances: Vec<LbInstance>,
    /// The LB routes to this many instances but did not list them (too many for its record
    /// in Consul KV): `instances`, `gone` and `unrouted` are empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances_omitted: Option<usize>,
    pub generation: String,
    /// The last attempt failed: the LB keeps serving this generation meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Instances it routes to that are not in the catalog any more (`node/id`).
    pub gone: Vec<String>,
    /// Passing catalog instances carrying the LB's tag that it does not route to (`node/id`).
    pub unrouted: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub via: String,
    pub services: Vec<ServiceReport>,
    /// LB states that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lb_problems: Vec<String>,
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

/// The LB routes to one service (pure): per LB that serves it, its instances, and the
/// differences from the catalog's `instances`. `tag_of`: the tag an LB balances on.
fn lb_routes(
    service: &str,
    instances: &[Instance],
    lbs: &[LbState],
    tag_of: &dyn Fn(&str) -> String,
) -> Vec<LbRoute> {
    let key = |node: &str, id: &str| format!("{node}/{id}");
    let mut out = Vec::new();
    for lb in lbs {
        let Some(serving) = &lb.serving else {
            continue;
        };
        let Some(routes) = serving.services.get(service) else {
            continue;
        };
        for svc in routes.list() {
            if let Some(n) = svc.instances_omitted {
                out.push(LbRoute {
                    lb: lb.node.clone(),
                    kind: lb.kind.clone(),
                    protocol: svc.protocol.clone(),
                    listen: svc.listen,
                    instances: vec![],
                    instances_omitted: Some(n),
                    generation: serving.generation.clone(),
                    error: lb.error_text(),
                    gone: vec![],
                    unrouted: vec![],
                });
                continue;
            }
            let routed: BTreeSet<String> =
                svc.instances.iter().map(|i| key(&i.node, &i.id)).collect();
            let catalog: BTreeSet<String> = instances.iter().map(|i| key(&i.node, &i.id)).collect();
            let tag = tag_of(&lb.node);
            out.push(LbRoute {
                lb: lb.node.clone(),
                kind: lb.kind.clone(),
                protocol: svc.protocol.clone(),
                listen: svc.listen,
                instances: svc.instances.clone(),
                instances_omitted: None,
                generation: serving.generation.clone(),
                error: lb.error_text(),
                gone: routed.difference(&catalog).cloned().collect(),
                unrouted: instances
                    .iter()
                    .filter(|i| i.status == "passing" && i.tags.contains(&tag))
                    .map(|i| key(&i.node, &i.id))
                    .filter(|k| !routed.contains(k))
                    .collect(),
            });
        }
    }
    out
}

/// Put the catalog's answers, the LB daemons' states and the inventory together (pure).
pub fn build(
    cluster: &Cluster,
    names: &[String],
    health: &BTreeMap<String, Vec<ServiceEntry>>,
    lbs: &[LbState],
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
    // Services an LB still serves that the catalog no longer has.
    all.extend(
        lbs.iter()
            .filter_map(|l| l.serving.as_ref())
            .flat_map(|s| s.services.keys().cloned()),
    );
    let tag_of = |node: &str| {
        cluster
            .host(node)
            .and_then(|h| h.lb.as_ref())
            .map(|l| l.tag.clone())
            .unwrap_or_else(|| {
                consulctl_core::model::LbSpec::defaults(consulctl_core::model::Init::Systemd).tag
            })
    };
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
                    address: e.effective_address().to_string(),
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
        let lbs = lb_routes(&name, &instances, lbs, &tag_of);
        out.push(ServiceReport {
            name,
            instances,
            missing,
            lbs,
        });
    }
    out
}

/// What `services` reads of Consul.
#[derive(Debug, Default)]
pub struct Answers {
    pub names: Vec<String>,
    pub health: BTreeMap<String, Vec<ServiceEntry>>,
    /// The LB daemons' states (`consulctl/lb/` in KV); empty when none or not readable.
    pub lbs: Vec<LbState>,
    /// Why some LB states could not be read (a refused KV read, a value that is not the
    /// daemon's JSON).
    pub lb_problems: Vec<String>,
}

/// The LB daemons' KV entries, parsed; the problems with the ones that are not.
fn parse_lbs(pairs: Vec<consul_api::kv::KvPair>) -> (Vec<LbState>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for p in pairs {
        let Some(text) = p.value_str() else {
            continue;
        };
        match serde_json::from_str::<LbState>(text) {
            Ok(s) => out.push(s),
            Err(e) => problems.push(format!("KV {}: not an LB state: {e}", p.key)),
        }
    }
    (out, problems)
}

/// The catalog's service names and the LB daemons' states, then every service's instances
/// with their checks: two round trips through one agent. A service whose health read is
/// refused (an HTTP error) has no instances in the answer; a refused KV read, no LB states.
pub async fn read(client: &Client) -> Result<Answers> {
    let (catalog, kv) = client
        .call2(
            consul_api::catalog::services(),
            consul_api::kv::list(consulctl_core::lb::KV_PREFIX),
        )
        .await;
    let (lbs, lb_problems) = match kv {
        Ok(pairs) => parse_lbs(pairs),
        Err(consul_api::Error::Status { status, .. }) => (
            Vec::new(),
            vec![format!(
                "KV {} answered HTTP {status}: the LB states are not shown",
                consulctl_core::lb::KV_PREFIX
            )],
        ),
        Err(e) => (
            Vec::new(),
            vec![format!("KV {}: {e}", consulctl_core::lb::KV_PREFIX)],
        ),
    };
    let catalog = match catalog {
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
    Ok(Answers {
        names,
        health,
        lbs,
        lb_problems,
    })
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
    let Some((via, answers)) = answer else {
        return Err(Error::Runtime(anyhow!(
            "no agent answered: {}",
            if errors.is_empty() {
                "no host with a running agent is reachable".to_string()
            } else {
                errors.join("; ")
            }
        )));
    };
    let services = build(&p.cluster, &answers.names, &answers.health, &answers.lbs);
    let ok = services.iter().all(|s| s.missing.is_empty());
    let report = Report {
        via,
        services,
        lb_problems: answers.lb_problems,
        ok,
    };
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
        for l in &s.lbs {
            out.push_str(&lb_text(l));
        }
    }
    for p in &r.lb_problems {
        out.push_str(&format!("\nwarning: {p}\n"));
    }
    out
}

/// The lines of one LB under a service.
fn lb_text(l: &LbRoute) -> String {
    let generation: String = l.generation.chars().take(8).collect();
    let state = if l.error.is_some() {
        "last attempt failed, serving it meanwhile"
    } else {
        "serving"
    };
    let n = l.instances_omitted.unwrap_or(l.instances.len());
    let mut out = format!(
        "  via lb {} ({}, listen {}): {n} instance{}{} [generation {generation}, {state}]\n",
        l.lb,
        if l.kind.is_empty() { "?" } else { &l.kind },
        l.listen,
        if n == 1 { "" } else { "s" },
        if l.instances_omitted.is_some() {
            " (not listed: too many for its record in Consul KV)"
        } else {
            ""
        }
    );
    if let Some(e) = &l.error {
        out.push_str(&format!("    error: {}\n", e.trim()));
    }
    for g in &l.gone {
        out.push_str(&format!("    routes to {g}: not in the catalog any more\n"));
    }
    for u in &l.unrouted {
        out.push_str(&format!("    not routed: {u} (passing in the catalog)\n"));
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
            retry_join_wan: vec![],
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
        let Answers {
            names,
            health,
            lbs,
            lb_problems,
        } = block_on(read(&Client::new(fake.clone()))).unwrap();
        assert_eq!(names, ["consul", "db", "web"]);
        assert_eq!(
            fake.batches(),
            [2, 3],
            "the catalog and the LB states, then every service at once"
        );
        assert!(lbs.is_empty() && lb_problems.is_empty(), "no LB state: 404");
        assert!(
            !health.contains_key("db"),
            "a refused health read has no instances"
        );
        assert!(health["consul"].is_empty());
        let mut health: BTreeMap<String, Vec<ServiceEntry>> = health;
        health.retain(|k, _| k == "web");
        let r = build(&cluster, &["web".into()], &health, &[]);
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
                lbs: vec![],
            }],
            lb_problems: vec![],
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

    /// The catalog of service `web`: client1's instance (tagged upyun, passing), client3's
    /// (tagged upyun, passing), client4's (not tagged).
    const WEB: &str = r#"[
      {"Node":{"Node":"client1","Address":"10.0.0.21"},
       "Service":{"ID":"client1:web1:8080","Service":"web","Address":"10.0.0.21","Port":8080,"Tags":["http","upyun"]},
       "Checks":[]},
      {"Node":{"Node":"client3","Address":"10.0.0.23"},
       "Service":{"ID":"client3:web3:8080","Service":"web","Address":"10.0.0.23","Port":8080,"Tags":["http","upyun"]},
       "Checks":[]},
      {"Node":{"Node":"client4","Address":"10.0.0.24"},
       "Service":{"ID":"client4:web4:8080","Service":"web","Address":"10.0.0.24","Port":8080,"Tags":["http"]},
       "Checks":[]}
    ]"#;

    /// lb `client2`'s state: it serves web from client1 and a gone client9, and its last
    /// attempt failed.
    fn lb_state_json() -> String {
        serde_json::json!({
            "node": "client2", "kind": "nginx", "updated": "2026-12-03T10:00:00Z",
            "serving": {"generation": "3f2a9c1b7d0e", "since": "2026-12-03T10:00:00Z",
                "services": {"web": {"protocol": "http", "listen": 8080, "instances": [
                    {"node": "client1", "id": "client1:web1:8080", "address": "10.0.0.21", "port": 8080},
                    {"node": "client9", "id": "client9:web9:8080", "address": "10.0.0.29", "port": 8080}
                ]}}},
            "error": "nginx: [emerg] unknown directive \"bogus\" in /etc/nginx/conf.d/custom.conf:3"
        })
        .to_string()
    }

    fn kv_body(pairs: &[(&str, &str)]) -> String {
        use base64::Engine as _;
        let list: Vec<serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| {
                serde_json::json!({
                    "Key": k, "Flags": 0, "CreateIndex": 1, "ModifyIndex": 2, "LockIndex": 0,
                    "Value": base64::engine::general_purpose::STANDARD.encode(v),
                })
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    }

    #[test]
    fn the_record_the_lb_daemon_writes_parses_with_every_route() {
        // Written by consulctl-host's own test from its types: one format on both sides.
        let text = include_str!("../../../consulctl-host/tests/fixtures/lb/record.json");
        let (lbs, problems) = parse_lbs(vec![consul_api::kv::KvPair {
            key: "consulctl/lb/lb1".into(),
            value: Some(text.as_bytes().to_vec()),
            ..Default::default()
        }]);
        assert!(problems.is_empty(), "{problems:?}");
        let serving = lbs[0].serving.as_ref().unwrap();
        let dns: Vec<(String, u16, usize)> = serving.services["dns"]
            .list()
            .iter()
            .map(|r| (r.protocol.clone(), r.listen, r.instances.len()))
            .collect();
        assert_eq!(dns, [("tcp".into(), 8600, 1), ("udp".into(), 8600, 1)]);
        let routes = lb_routes("dns", &[], &lbs, &|_| "upyun".to_string());
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1].protocol, "udp");
    }

    #[test]
    fn a_record_without_instance_lists_says_how_many_and_claims_no_difference() {
        // What the daemon writes when the lists would not fit in one Consul KV value.
        let text = r#"{"node":"lb1","kind":"nginx","updated":"2026-12-03T10:00:00Z",
            "serving":{"generation":"abc","since":"2026-12-03T10:00:00Z","services":{"web":[
            {"protocol":"http","listen":8080,"instances":[],"instances_omitted":10000}]}},
            "error":null,"problems":[]}"#;
        let (lbs, problems) = parse_lbs(vec![consul_api::kv::KvPair {
            key: "consulctl/lb/lb1".into(),
            value: Some(text.as_bytes().to_vec()),
            ..Default::default()
        }]);
        assert!(problems.is_empty(), "{problems:?}");
        let routes = lb_routes("web", &[], &lbs, &|_| "upyun".to_string());
        assert_eq!(routes.len(), 1);
        let r = &routes[0];
        assert_eq!(r.instances_omitted, Some(10_000));
        assert!(r.gone.is_empty() && r.unrouted.is_empty());
        let text = lb_text(r);
        assert!(
            text.contains("10000 instances (not listed: too many for its record in Consul KV)"),
            "{text}"
        );
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["instances_omitted"], 10_000);
    }

    #[test]
    fn lb_states_show_per_service_which_instances_each_lb_routes_to() {
        let kv = kv_body(&[
            ("consulctl/lb/client2", &lb_state_json()),
            ("consulctl/lb/broken", "not json"),
        ]);
        let fake = FakeTransport::new()
            .on("GET", "/v1/catalog/services", 200, r#"{"web":["http"]}"#)
            .on("GET", "/v1/kv/consulctl/lb/?recurse", 200, &kv)
            .on("GET", "/v1/health/service/web", 200, WEB);
        let answers = block_on(read(&Client::new(fake.clone()))).unwrap();
        assert_eq!(fake.batches(), [2, 1]);
        assert_eq!(answers.lbs.len(), 1);
        assert_eq!(answers.lb_problems.len(), 1);
        assert!(answers.lb_problems[0].contains("consulctl/lb/broken"));
        let cluster = consulctl_core::inventory::parse(
            Path::new("inv.toml"),
            "hosts = [{ name = \"s1\", address = \"10.0.0.1\", role = \"server\" },\n\
                       { name = \"client2\", address = \"10.0.0.22\", role = \"client\" }]\n\
             [cluster]\ndatacenter = \"dc1\"\n[consul]\nversion = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        )
        .unwrap();
        let services = build(&cluster, &answers.names, &answers.health, &answers.lbs);
        let web = &services[0];
        assert_eq!(web.lbs.len(), 1);
        let l = &web.lbs[0];
        assert_eq!(
            (l.lb.as_str(), l.kind.as_str(), l.listen),
            ("client2", "nginx", 8080)
        );
        assert_eq!(l.instances.len(), 2);
        assert_eq!(l.gone, ["client9/client9:web9:8080"]);
        assert_eq!(
            l.unrouted,
            ["client3/client3:web3:8080"],
            "tagged upyun and passing; client4's is not tagged"
        );
        assert!(l.error.as_deref().unwrap().contains("bogus"));
        let report = Report {
            via: "server1".into(),
            services: services.clone(),
            lb_problems: answers.lb_problems.clone(),
            ok: true,
        };
        let text = to_text(&report);
        assert!(
            text.contains("via lb client2 (nginx, listen 8080): 2 instances [generation 3f2a9c1b, last attempt failed"),
            "{text}"
        );
        assert!(
            text.contains("    error: nginx: [emerg] unknown directive"),
            "{text}"
        );
        assert!(
            text.contains("routes to client9/client9:web9:8080: not in the catalog"),
            "{text}"
        );
        assert!(
            text.contains("not routed: client3/client3:web3:8080"),
            "{text}"
        );
        assert!(text.contains("warning: KV consulctl/lb/broken"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        let lbs = &json["services"][0]["lbs"];
        assert_eq!(lbs[0]["lb"], "client2");
        assert_eq!(lbs[0]["instances"][1]["node"], "client9");
        assert_eq!(lbs[0]["gone"][0], "client9/client9:web9:8080");
    }

    #[test]
    fn a_service_only_an_lb_still_serves_is_listed_and_a_clean_lb_says_serving() {
        let mut state: LbState = serde_json::from_str(&lb_state_json()).unwrap();
        state.error = Some(serde_json::Value::Null);
        let cluster = consulctl_core::inventory::parse(
            Path::new("inv.toml"),
            "hosts = [{ name = \"s1\", address = \"10.0.0.1\", role = \"server\" }]\n\
             [cluster]\ndatacenter = \"dc1\"\n[consul]\nversion = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        )
        .unwrap();
        let services = build(&cluster, &[], &BTreeMap::new(), &[state]);
        assert_eq!(services[0].name, "web");
        assert_eq!(
            services[0].lbs[0].gone.len(),
            2,
            "nothing of it in the catalog"
        );
        let text = lb_text(&services[0].lbs[0]);
        assert!(text.contains("[generation 3f2a9c1b, serving]"), "{text}");
        assert!(!text.contains("error:"), "{text}");
    }
}
