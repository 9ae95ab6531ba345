//! The catalog as the outputs see it: the data model of the built-in outputs and of user
//! templates (documented in `docs/lb.md`). Pure: one `/v1/internal/ui/nodes` answer in, a
//! sorted, validated [`View`] out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use consul_api::catalog::NodeDump;
use serde::Serialize;

use super::config::{is_service_name, Config};

/// One instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub node: String,
    pub id: String,
    /// The service's address, else its node's.
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    /// The service's meta (filled for user templates only: the built-in outputs do not read
    /// it).
    pub meta: BTreeMap<String, String>,
    /// `passing`, `warning` or `critical`: the worst of its own and its node's checks.
    pub health: &'static str,
    pub node_address: String,
}

impl Instance {
    /// `address:port`, with brackets around an IPv6 address.
    pub fn endpoint(&self) -> String {
        match self.address.parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => format!("[{a}]:{}", self.port),
            _ => format!("{}:{}", self.address, self.port),
        }
    }
}

/// A service: its routable (passing) instances and all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    /// The tags of its instances, merged.
    pub tags: Vec<String>,
    /// Of `http`, `tcp`, `udp`: what its instances' tags ask for.
    pub protocols: Vec<String>,
    /// The port the load balancer listens on for it.
    pub listen: u16,
    /// Instances whose checks all pass: the ones to route to.
    pub instances: Vec<Instance>,
    /// Every instance, whatever its health.
    pub all: Vec<Instance>,
}

/// What the outputs render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    /// This load balancer's node.
    pub node: String,
    /// The selector tag.
    pub tag: String,
    /// Services with the selector tag (only their instances that carry it).
    pub services: Vec<Service>,
    /// Every service of the catalog, tagged or not (`protocols` empty, `listen` 0).
    pub all_services: Vec<Service>,
    /// Why some instances or services were left out.
    #[serde(skip)]
    pub problems: Vec<String>,
}

const PROTOCOLS: [&str; 3] = ["http", "tcp", "udp"];

/// The worst of some check statuses (`passing` when there is none; anything unknown counts
/// as critical).
fn worst<'a>(statuses: impl Iterator<Item = &'a str>) -> &'static str {
    let mut w = 0;
    for s in statuses {
        w = w.max(match s {
            "passing" => 0,
            "warning" => 1,
            _ => 2,
        });
    }
    ["passing", "warning", "critical"][w]
}

/// An address nginx and HAProxy take as is: an IP address or a host name.
fn is_address(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
        || (!s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
}

/// Whether an answer can be trusted to replace the last one: an agent that restarts or a
/// cluster that lost its state answers with an empty catalog, which must not empty the load
/// balancer. The catalog always holds the answering agent's own node.
pub fn trustworthy(dump: &[NodeDump], own_node: &str) -> Result<(), String> {
    if dump.is_empty() {
        return Err("Consul answered with an empty catalog (an agent or cluster that is starting?): keeping the last known instances".into());
    }
    if !dump.iter().any(|n| n.node == own_node) {
        return Err(format!(
            "the catalog does not hold this node ({own_node}): keeping the last known instances"
        ));
    }
    Ok(())
}

/// Build the view of one answer. `all_services` (a copy of the whole catalog) is only built
/// for user templates: the built-in outputs do not read it.
pub fn build(dump: &[NodeDump], config: &Config) -> View {
    let mut problems = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<Instance>> = BTreeMap::new();
    let want_all = !config.templates.is_empty();
    for node in dump {
        // Check statuses by service ID ("" for the node's own checks), once per node.
        let mut checks: HashMap<&str, Vec<&str>> = HashMap::new();
        for c in &node.checks {
            checks
                .entry(c.service_id.as_str())
                .or_default()
                .push(c.status.as_str());
        }
        let node_checks = checks.get("").map(Vec::as_slice).unwrap_or_default();
        for s in &node.services {
            if !want_all && !s.tags.contains(&config.tag) {
                continue;
            }
            let own = checks
                .get(s.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let health = worst(node_checks.iter().chain(own).copied());
            let address = if s.address.is_empty() {
                node.address.clone()
            } else {
                s.address.clone()
            };
            let mut tags = s.tags.clone();
            tags.sort();
            tags.dedup();
            by_name
                .entry(s.service.as_str())
                .or_default()
                .push(Instance {
                    node: node.node.clone(),
                    id: s.id.clone(),
                    address,
                    port: s.port,
                    tags,
                    meta: if want_all {
                        s.meta.clone()
                    } else {
                        BTreeMap::new()
                    },
                    health,
                    node_address: node.address.clone(),
                });
        }
    }
    let mut services = Vec::new();
    let mut all_services = Vec::new();
    for (name, mut all) in by_name {
        let name = name.to_string();
        all.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        if want_all {
            all_services.push(Service {
                name: name.clone(),
                tags: merged_tags(&all),
                protocols: vec![],
                listen: 0,
                instances: passing(&all),
                all: all.clone(),
            });
        }
        let tagged: Vec<Instance> = all
            .into_iter()
            .filter(|i| i.tags.contains(&config.tag))
            .collect();
        if tagged.is_empty() {
            continue;
        }
        if !is_service_name(&name) {
            problems.push(format!(
                "service {name:?}: left out: a name of letters, digits, '-', '_' or '.' is needed"
            ));
            continue;
        }
        let mut usable = Vec::new();
        for i in tagged {
            if !is_address(&i.address) {
                problems.push(format!(
                    "service {name}: instance {} left out: address {:?} is no IP address or host name",
                    i.id, i.address
                ));
            } else if i.port == 0 {
                problems.push(format!(
                    "service {name}: instance {} left out: it has no port",
                    i.id
                ));
            } else {
                usable.push(i);
            }
        }
        if usable.is_empty() {
            continue;
        }
        let tags = merged_tags(&usable);
        let protocols: Vec<String> = PROTOCOLS
            .iter()
            .filter(|p| tags.iter().any(|t| t == *p))
            .map(|p| p.to_string())
            .collect();
        if protocols.is_empty() && config.kind != super::config::Kind::None {
            problems.push(format!(
                "service {name}: tagged {} but not http, tcp or udp: not load balanced",
                config.tag
            ));
        }
        let listen = config
            .ports
            .get(&name)
            .copied()
            .unwrap_or_else(|| common_port(&usable));
        services.push(Service {
            name,
            tags,
            protocols,
            listen,
            instances: passing(&usable),
            all: usable,
        });
    }
    View {
        node: config.node.clone(),
        tag: config.tag.clone(),
        services,
        all_services,
        problems,
    }
}

fn passing(instances: &[Instance]) -> Vec<Instance> {
    instances
        .iter()
        .filter(|i| i.health == "passing")
        .cloned()
        .collect()
}

fn merged_tags(instances: &[Instance]) -> Vec<String> {
    let set: BTreeSet<&String> = instances.iter().flat_map(|i| &i.tags).collect();
    set.into_iter().cloned().collect()
}

/// The port most instances use (the lowest of equals): what clients of the service expect.
fn common_port(instances: &[Instance]) -> u16 {
    let mut count: BTreeMap<u16, usize> = BTreeMap::new();
    for i in instances {
        *count.entry(i.port).or_default() += 1;
    }
    let max = count.values().copied().max().unwrap_or(0);
    count
        .into_iter()
        .find(|(_, c)| *c == max)
        .map(|(p, _)| p)
        .unwrap_or(0)
}
