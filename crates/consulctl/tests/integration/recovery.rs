//! The recovery runbook: `doctor` finds why nodes cannot join, `recover` repairs them.
//! Every check reads Consul's own API inside the containers.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{wait_until, Lab, LabInit, Out};

const DATA_DIR: &str = "/opt/consul";

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn api(lab: &Lab, host: &str, path: &str) -> Value {
    let body = lab.consul_api(host, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{host} {path}: not JSON ({e}): {body}"))
}

/// `(status, node id tag)` of a member as the server sees it.
fn member(lab: &Lab, via: &str, name: &str) -> Option<(u64, String)> {
    api(lab, via, "/v1/agent/members")
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Name"] == name)
        .map(|m| {
            (
                m["Status"].as_u64().unwrap(),
                m["Tags"]["id"].as_str().unwrap_or("").to_string(),
            )
        })
}

fn stop_agent(lab: &Lab, host: &str) {
    if lab.host(host).init == "systemd" {
        lab.exec(host, &["systemctl", "stop", "consul"]).success();
    } else {
        lab.exec(host, &["supervisorctl", "stop", "consul"])
            .success();
    }
}

fn start_agent(lab: &Lab, host: &str) {
    if lab.host(host).init == "systemd" {
        lab.exec(host, &["systemctl", "start", "--no-block", "consul"])
            .success();
    } else {
        let _ = lab.exec(host, &["supervisorctl", "start", "consul"]);
    }
}

fn stale_dirs(lab: &Lab, host: &str, suffix: &str) -> Vec<String> {
    let pattern = format!("ls -d {DATA_DIR}{suffix}* 2>/dev/null || true");
    lab.exec(host, &["sh", "-c", &pattern])
        .success()
        .stdout
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

fn names(finding: &Value) -> Vec<String> {
    finding["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

/// Issue 4, acceptance 5 and 1: doctor on a healthy cluster exits 0; a cloned node ID is named
/// by doctor (both hosts, the cause) and fixed by `recover`, the old data dir kept aside.
#[test]
fn node_id_conflict_found_by_doctor_and_fixed_by_recover() {
    let lab = Lab::new("nodeid")
        .servers(1)
        .clients(2)
        .init(LabInit::Mixed)
        .apply(true)
        .up();
    let inv = lab.inventory_str();

    // Healthy: exit 0, nothing found.
    let out = lab.consulctl(&["doctor", "-i", inv]).success();
    assert!(out.stdout.contains("healthy"), "{out}");
    let report = json(
        &lab.consulctl(&["doctor", "-i", inv, "-o", "json"])
            .success(),
    );
    assert_eq!(report["healthy"], true, "{report:#}");
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);

    // Clone client1's node ID into client2 and restart client2.
    let id1 = lab
        .exec("client1", &["cat", &format!("{DATA_DIR}/node-id")])
        .success()
        .out()
        .to_string();
    stop_agent(&lab, "client2");
    let write = format!("printf %s \"$1\" > {DATA_DIR}/node-id");
    lab.exec("client2", &["sh", "-c", &write, "sh", &id1])
        .success();
    start_agent(&lab, "client2");
    // Consul itself refuses client2's join (its log says why).
    let log = "journalctl -u consul --no-pager -o cat 2>/dev/null; cat /var/log/consul/*.log 2>/dev/null; true";
    assert!(
        wait_until(60, || ["client2", "server1"].iter().any(|h| lab
            .exec(h, &["sh", "-c", log])
            .stdout
            .contains("conflicting node ID"))),
        "Consul never logged the node ID conflict"
    );

    let out = lab.consulctl(&["doctor", "-i", inv, "-o", "json"]).code(1);
    let report = json(&out);
    let conflicts = findings(&report, "node-id-conflict");
    assert_eq!(conflicts.len(), 1, "{report:#}");
    let hosts = names(conflicts[0]);
    assert!(
        hosts.contains(&"client1".to_string()) && hosts.contains(&"client2".to_string()),
        "{report:#}"
    );
    assert!(
        conflicts[0]["fix"]
            .to_string()
            .contains("consulctl recover"),
        "{report:#}"
    );
    let text = lab.consulctl(&["doctor", "-i", inv]).code(1);
    assert!(text.stdout.contains("node-id-conflict"), "{text}");

    lab.consulctl(&["recover", "client2", "-i", inv])
        .success()
        .contains("moved the data dir");

    // Consul: both alive, with different node IDs; client1 keeps its own.
    let (s1, i1) = member(&lab, "server1", "client1").expect("client1 member");
    let (s2, i2) = member(&lab, "server1", "client2").expect("client2 member");
    assert_eq!((s1, s2), (1, 1), "client1 {s1}, client2 {s2}");
    assert_eq!(i1, id1);
    assert_ne!(i2, id1);
    let stale = stale_dirs(&lab, "client2", ".stale-");
    assert_eq!(stale.len(), 1, "{stale:?}");
    let moved_id = lab
        .exec("client2", &["cat", &format!("{}/node-id", stale[0])])
        .success()
        .out()
        .to_string();
    assert_eq!(
        moved_id, id1,
        "the moved-aside data dir keeps the cloned node-id"
    );

    // Afterwards doctor no longer reports a conflict.
    let report = json(&lab.consulctl(&["doctor", "-i", inv, "-o", "json"]));
    assert!(
        findings(&report, "node-id-conflict").is_empty(),
        "{report:#}"
    );
}

const KEY_A: &str = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
const KEY_B: &str = "Ri1pnBNnY6qmD8ML2QWN4zP4T3Xn2yI9MHt5bMVoIjw=";

/// Issue 4, acceptance 2: a stale `serf/local.keyring` with another key wins over the
/// configured one; doctor names the host and the keyring cause; recover fixes it.
#[test]
fn stale_keyring_found_by_doctor_and_fixed_by_recover() {
    let lab = Lab::new("keyring")
        .servers(1)
        .clients(2)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    doc["cluster"]["encrypt"] = toml_edit::value(KEY_A);
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();
    lab.consulctl(&["apply", "-i", inv])
        .success()
        .contains("1 voters, 3 alive members");

    stop_agent(&lab, "client2");
    let keyring = format!("[\"{KEY_B}\"]");
    lab.exec(
        "client2",
        &[
            "sh",
            "-c",
            &format!("printf '%s' '{keyring}' > {DATA_DIR}/serf/local.keyring"),
        ],
    )
    .success();
    start_agent(&lab, "client2");
    assert!(
        wait_until(60, || member(&lab, "server1", "client2").map(|m| m.0)
            != Some(1)),
        "client2 still alive with a foreign key"
    );

    let report = json(&lab.consulctl(&["doctor", "-i", inv, "-o", "json"]).code(1));
    let keys = findings(&report, "gossip-key");
    assert!(!keys.is_empty(), "{report:#}");
    assert!(
        keys.iter()
            .any(|f| names(f).contains(&"client2".to_string())),
        "{report:#}"
    );
    assert!(
        keys.iter().any(|f| f["cause"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("keyring")),
        "{report:#}"
    );
    // The key itself is never printed.
    let out = lab.consulctl(&["doctor", "-i", inv]);
    assert!(
        !out.stdout.contains(KEY_A) && !out.stdout.contains(KEY_B),
        "{out}"
    );

    lab.consulctl(&["recover", "client2", "-i", inv]).success();
    assert_eq!(member(&lab, "server1", "client2").map(|m| m.0), Some(1));
    let installed = api(&lab, "server1", "/v1/operator/keyring");
    let lan: Vec<&Value> = installed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["WAN"] == false)
        .collect();
    assert_eq!(lan.len(), 1, "{installed:#}");
    let lan_keys: Vec<&String> = lan[0]["Keys"].as_object().unwrap().keys().collect();
    assert_eq!(lan_keys, vec![&KEY_A.to_string()], "{installed:#}");
    assert_eq!(lan[0]["NumNodes"], 3, "{installed:#}");
    assert_eq!(stale_dirs(&lab, "client2", ".stale-").len(), 1);
}

fn voters(lab: &Lab, via: &str) -> Vec<String> {
    let raft = api(lab, via, "/v1/operator/raft/configuration");
    let mut v: Vec<String> = raft["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Voter"] == true)
        .map(|s| s["Node"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn kv_keys(lab: &Lab, via: &str) -> usize {
    let body = lab
        .exec(
            via,
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "http://127.0.0.1:8500/v1/kv/q/?keys",
            ],
        )
        .stdout;
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Issue 4, acceptance 3: 3 servers, 100 keys, two servers gone for good. `recover quorum`
/// gives the survivor a leader within 60 s with every key; an `apply` with two fresh servers in
/// place of the lost ones ends with 3 healthy voters and every key.
#[test]
fn lost_quorum_recovered_from_the_survivor_then_replacements_join() {
    let lab = Lab::new("lostquorum")
        .servers(5)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    let full = std::fs::read_to_string(lab.inventory()).unwrap();
    lab.keep_hosts(&["server1", "server2", "server3", "client1"]);
    lab.consulctl(&["apply", "-i", inv])
        .success()
        .contains("3 voters, 4 alive members");
    for i in 0..100 {
        let url = format!("http://127.0.0.1:8500/v1/kv/q/key{i:03}");
        let put = lab.exec(
            "client1",
            &["curl", "-sS", "-X", "PUT", "--data", &format!("v{i}"), &url],
        );
        assert_eq!(put.success().out(), "true");
    }
    assert_eq!(kv_keys(&lab, "server1"), 100);

    // Two servers gone for good: no leader any more.
    for h in ["server2", "server3"] {
        lab.docker(&["rm", "-f", "-v", &lab.container(h)]).success();
    }
    assert!(
        wait_until(60, || api(&lab, "server1", "/v1/status/leader") == ""),
        "server1 still reports a leader"
    );
    let report = json(&lab.consulctl(&["doctor", "-i", inv, "-o", "json"]).code(1));
    let no_leader = findings(&report, "no-leader");
    assert_eq!(no_leader.len(), 1, "{report:#}");
    assert!(
        no_leader[0]["fix"].to_string().contains("recover quorum"),
        "{report:#}"
    );
    // recover NODE on a server is refused: the cluster has no quorum.
    lab.consulctl(&["recover", "server1", "-i", inv])
        .code(2)
        .contains("refusing");

    let started = Instant::now();
    let out = lab
        .consulctl(&["recover", "quorum", "-i", inv, "-o", "json"])
        .success();
    let took = started.elapsed();
    let r = json(&out);
    assert_eq!(r["ok"], true, "{r:#}");
    let leader = api(&lab, "server1", "/v1/status/leader");
    let server1_ip = &lab.host("server1").address;
    assert_eq!(leader, Value::from(format!("{server1_ip}:8300")), "{r:#}");
    assert!(
        took < Duration::from_secs(60),
        "recover quorum took {took:?} to a leader"
    );
    eprintln!(
        "MEASURED recover_quorum_to_leader={:.1}s",
        took.as_secs_f64()
    );
    assert_eq!(voters(&lab, "server1"), vec!["server1".to_string()]);
    assert_eq!(kv_keys(&lab, "server1"), 100);
    assert_eq!(
        stale_dirs(&lab, "server1", ".pre-recovery-").len(),
        1,
        "the data dir copy"
    );

    // Replacements: server4 and server5 in place of the lost ones.
    std::fs::write(lab.inventory(), &full).unwrap();
    lab.keep_hosts(&["server1", "server4", "server5", "client1"]);
    lab.consulctl(&["apply", "-i", inv])
        .success()
        .contains("3 voters, 4 alive members");
    assert_eq!(
        voters(&lab, "server4"),
        vec!["server1".to_string(), "server4".into(), "server5".into()]
    );
    let health = api(&lab, "server1", "/v1/operator/autopilot/health");
    assert_eq!(health["Healthy"], true, "{health:#}");
    assert_eq!(kv_keys(&lab, "server5"), 100);

    // `recover NODE` of a server that works: it comes back as a healthy voter under a new node
    // ID, its old data dir moved aside, every key still readable (through it too).
    let node_id = |h: &str| {
        lab.exec(h, &["cat", &format!("{DATA_DIR}/node-id")])
            .success()
            .out()
            .to_string()
    };
    let old_id = node_id("server4");
    let started = Instant::now();
    lab.consulctl(&["recover", "server4", "-i", inv])
        .success()
        .contains("moved the data dir");
    eprintln!(
        "MEASURED recover_server={:.1}s",
        started.elapsed().as_secs_f64()
    );
    let new_id = node_id("server4");
    assert_ne!(new_id, old_id, "server4 kept its node ID");
    let (status, member_id) = member(&lab, "server1", "server4").expect("server4 member");
    assert_eq!((status, member_id.as_str()), (1, new_id.as_str()));
    assert_eq!(
        voters(&lab, "server1"),
        vec!["server1".to_string(), "server4".into(), "server5".into()]
    );
    let raft = api(&lab, "server5", "/v1/operator/raft/configuration");
    let ids: Vec<&str> = raft["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ID"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&new_id.as_str()), "{raft:#}");
    assert!(
        !ids.contains(&old_id.as_str()),
        "the old raft entry stayed: {raft:#}"
    );
    assert!(
        wait_until(30, || api(&lab, "server1", "/v1/operator/autopilot/health")
            ["Healthy"]
            == true),
        "autopilot not healthy after recover"
    );
    let stale = stale_dirs(&lab, "server4", ".stale-");
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(
        lab.exec("server4", &["cat", &format!("{}/node-id", stale[0])])
            .success()
            .out(),
        old_id,
        "the moved-aside data dir is the old one"
    );
    assert!(
        wait_until(30, || kv_keys(&lab, "server4") == 100),
        "keys through server4: {}",
        kv_keys(&lab, "server4")
    );
    assert_eq!(kv_keys(&lab, "client1"), 100);
}
