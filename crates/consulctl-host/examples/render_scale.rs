//! How long the LB daemon takes to turn a large catalog into configuration, and how much
//! memory that catalog holds: `cargo run --release -p consulctl-host --example render_scale
//! [SERVICES] [INSTANCES]` (default 1000 x 10). Prints the milliseconds of each step (median
//! of 9 runs). The lab measurement (the daemon on a real LB host) is `bench/discovery`.

use std::time::Instant;

use consul_api::catalog::NodeDump;
use consulctl_host::lb::config::Config;
use consulctl_host::lb::render::render;
use consulctl_host::lb::view::build;

/// `/v1/internal/ui/nodes` as Consul writes it: `instances` nodes, each with one instance of
/// every service (tagged `http`, `upyun`) and its node check.
fn catalog(services: usize, instances: usize) -> String {
    let mut nodes = Vec::new();
    for n in 0..instances {
        let svcs: Vec<serde_json::Value> = (0..services)
            .map(|s| {
                serde_json::json!({
                    "ID": format!("svc{s:04}-{n}"), "Service": format!("svc{s:04}"),
                    "Tags": ["http", "upyun"], "Address": format!("10.1.{}.{}", n, s % 250 + 1),
                    "Port": 8080, "Meta": {"container": format!("app-{s}-{n}")},
                    "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false,
                    "Datacenter": "dc1", "Kind": "", "TaggedAddresses": null, "Proxy": {},
                    "Connect": {}
                })
            })
            .collect();
        nodes.push(serde_json::json!({
            "ID": format!("00000000-0000-0000-0000-{n:012}"), "Node": format!("node{n}"),
            "Address": format!("10.0.0.{}", n + 1), "Datacenter": "dc1",
            "TaggedAddresses": {"lan": format!("10.0.0.{}", n + 1)}, "Meta": {},
            "Services": svcs,
            "Checks": [{"Node": format!("node{n}"), "CheckID": "serfHealth",
                        "Name": "Serf Health Status", "Status": "passing",
                        "Output": "Agent alive and reachable", "ServiceID": "",
                        "ServiceName": "", "ServiceTags": [], "Type": "", "Definition": {},
                        "CreateIndex": 1, "ModifyIndex": 1}]
        }));
    }
    // The LB's own node.
    nodes.push(
        serde_json::json!({"ID": "lb", "Node": "lb1", "Address": "10.0.9.9",
        "Datacenter": "dc1", "TaggedAddresses": {}, "Meta": {}, "Services": [], "Checks": []}),
    );
    serde_json::to_string(&nodes).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let services = args.first().copied().unwrap_or(1000);
    let instances = args.get(1).copied().unwrap_or(10);
    let json = catalog(services, instances);
    println!(
        "{services} services x {instances} instances: answer {:.1} MB",
        json.len() as f64 / 1e6
    );
    for kind in ["nginx", "haproxy"] {
        let config = Config::parse(&format!("node = \"lb1\"\nkind = \"{kind}\"\n")).unwrap();
        let (mut parse, mut view, mut out) = (vec![], vec![], vec![]);
        for _ in 0..9 {
            let t = Instant::now();
            let dump: Vec<NodeDump> = serde_json::from_str(&json).unwrap();
            parse.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let v = build(&dump, &config);
            view.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let r = render(&v, &config).unwrap();
            out.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(r.routes.len(), services);
        }
        println!(
            "{kind}: parse {:.1} ms, view {:.1} ms, render {:.1} ms (view + render {:.1} ms)",
            median(parse),
            median(view.clone()),
            median(out.clone()),
            median(view) + median(out)
        );
    }
}
