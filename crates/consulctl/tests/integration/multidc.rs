//! Two datacenters in one lab, each inventory imported from Ansible (one YAML, one INI) onto
//! the lab's settings (`--base`), joined over WAN by `retry_join_wan`: both roll out, `status`
//! lists both datacenters' servers in the WAN pool, and `catalog --dc` reads the other one.
//! State is read from Consul's own API.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{wait_until, Lab, LabInit};

/// `inventory import ansible FILE --base <lab inventory> --out <lab dir>/<lab>-<dc>.toml`, then
/// the datacenter's own name and WAN join set on the result.
fn import(lab: &Lab, dc: &str, file: &str, text: &str, wan_peer: &str) -> PathBuf {
    let dir = lab.inventory().parent().unwrap().to_path_buf();
    let source = dir.join(format!("{}-{dc}.{file}", lab.name()));
    std::fs::write(&source, text).unwrap();
    let out = dir.join(format!("{}-{dc}.toml", lab.name()));
    let _ = std::fs::remove_file(&out);
    lab.consulctl(&[
        "inventory",
        "import",
        "ansible",
        source.to_str().unwrap(),
        "--servers-group",
        "consul_servers",
        "--clients-group",
        "consul_clients",
        "--base",
        lab.inventory_str(),
        "--out",
        out.to_str().unwrap(),
    ])
    .success();
    lab.consulctl(&["inventory", "check", "-i", out.to_str().unwrap()])
        .success();
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&out).unwrap().parse().unwrap();
    let names: Vec<&str> = doc["hosts"]
        .as_array_of_tables()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{doc}");
    doc["cluster"]["name"] = toml_edit::value(format!("{}-{dc}", lab.name()));
    doc["cluster"]["datacenter"] = toml_edit::value(dc);
    let mut peers = toml_edit::Array::new();
    peers.push(wan_peer);
    doc["cluster"]["retry_join_wan"] = toml_edit::value(peers);
    std::fs::write(&out, doc.to_string()).unwrap();
    out
}

#[test]
fn two_datacenters_imported_from_ansible_join_over_wan() {
    let lab = Lab::new("mdc")
        .servers(2)
        .clients(2)
        .init(LabInit::Supervisord)
        .up();
    let ip = |h: &str| lab.host_ip(h).to_string();
    let yaml = format!(
        "all:\n  vars:\n    ansible_user: root\n  children:\n    consul_servers:\n      hosts:\n        \
         server1:\n          ansible_host: {}\n    consul_clients:\n      hosts:\n        \
         client1:\n          ansible_host: {}\n          ansible_port: 22\n",
        ip("server1"),
        ip("client1")
    );
    let ini = format!(
        "[consul_servers]\nserver2 ansible_host={} ansible_port=22\n\n[consul_clients]\n\
         client2 ansible_host={}\n\n[all:vars]\nansible_user=root\n",
        ip("server2"),
        ip("client2")
    );
    let dc1 = import(&lab, "dc1", "yml", &yaml, &ip("server2"));
    let dc2 = import(&lab, "dc2", "ini", &ini, &ip("server1"));
    let (dc1, dc2) = (dc1.to_str().unwrap(), dc2.to_str().unwrap());
    // Both datacenters roll out at once (different hosts, different state dirs).
    std::thread::scope(|s| {
        let a = s.spawn(|| lab.consulctl(&["apply", "-i", dc1]));
        let b = s.spawn(|| lab.consulctl(&["apply", "-i", dc2]));
        a.join().unwrap().success();
        b.join().unwrap().success();
    });

    // Consul: each server sees both datacenters and the other's server alive in its WAN pool.
    let wan = |via: &str| -> Vec<(String, String, u64)> {
        let mut v: Vec<(String, String, u64)> = lab
            .api(via, "/v1/agent/members?wan=1")
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["Name"].as_str().unwrap().to_string(),
                    m["Tags"]["dc"].as_str().unwrap_or_default().to_string(),
                    m["Status"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let joined = [
        ("server1.dc1".to_string(), "dc1".to_string(), 1),
        ("server2.dc2".to_string(), "dc2".to_string(), 1),
    ];
    assert!(
        wait_until(60, || wan("server1") == joined && wan("server2") == joined),
        "WAN pool: {:?} / {:?}",
        wan("server1"),
        wan("server2")
    );
    assert_eq!(
        lab.api("server1", "/v1/catalog/datacenters"),
        serde_json::json!(["dc1", "dc2"])
    );

    // status shows both datacenters' servers in the WAN pool, healthy.
    let status: Value = lab
        .consulctl(&["status", "-i", dc1, "-o", "json"])
        .success()
        .json();
    let mut pool: Vec<(String, String)> = status["wan_members"]
        .as_array()
        .unwrap_or_else(|| panic!("{status:#}"))
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().unwrap().to_string(),
                m["Tags"]["dc"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pool.sort();
    assert_eq!(
        pool,
        [
            ("server1.dc1".to_string(), "dc1".to_string()),
            ("server2.dc2".to_string(), "dc2".to_string())
        ]
    );
    let text = lab.consulctl(&["status", "-i", dc2]).success();
    assert!(text.stdout.contains("WAN pool:"), "{text}");
    assert!(text.stdout.contains("server1.dc1"), "{text}");

    // catalog reads the other datacenter: a service registered in dc2 is seen from dc1.
    lab.consulctl(&[
        "service", "register", "api2", "--on", "client2", "--port", "1234", "-i", dc2,
    ])
    .success();
    let remote: Value = lab
        .consulctl(&[
            "catalog", "service", "api2", "--dc", "dc2", "-i", dc1, "-o", "json",
        ])
        .success()
        .json();
    assert_eq!(remote["datacenter"], "dc2", "{remote:#}");
    assert_eq!(remote["instances"][0]["node"], "client2", "{remote:#}");
    let local: Value = lab
        .consulctl(&["catalog", "service", "api2", "-i", dc1, "-o", "json"])
        .success()
        .json();
    assert!(
        local["instances"].as_array().unwrap().is_empty(),
        "{local:#}"
    );
    let nodes: Value = lab
        .consulctl(&["catalog", "nodes", "--dc", "dc2", "-i", dc1, "-o", "json"])
        .success()
        .json();
    let mut names: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["client2", "server2"]);
    let unknown = lab
        .consulctl(&["catalog", "services", "--dc", "nope", "-i", dc1])
        .code(2);
    assert!(unknown.stderr.contains("--dc nope"), "{unknown}");
}
