//! `apply` restarting agents that already run: through the rolling engine (servers one at a
//! time, followers first and the leader last, clients after), every restart proven by a new
//! process running the new config, and a server that does not come up with its new config put
//! back on its last good one while the roll stops. State is read from Consul and the hosts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{wait_until, Lab, LabInit};
use crate::probe::Probe;

/// The `rev` node meta the agent on `host` runs with (its own `/v1/agent/self`).
fn running_rev(lab: &Lab, host: &str) -> String {
    let me = lab.api(host, "/v1/agent/self");
    me["Meta"]["rev"].as_str().unwrap_or("").to_string()
}

/// Rewrite the lab inventory: `[config] node_meta = { rev = REV }`, optionally another binary
/// as the install source and extra config for one host.
fn set_inventory(lab: &Lab, rev: &str, binary: Option<&Path>, host_config: Option<(&str, &str)>) {
    let path = lab.inventory();
    let text = std::fs::read_to_string(path).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    let mut meta = toml_edit::InlineTable::new();
    meta.insert("rev", rev.into());
    doc["config"]["node_meta"] = toml_edit::value(meta);
    if let Some(bin) = binary {
        let mut src = toml_edit::InlineTable::new();
        src.insert("file", bin.display().to_string().into());
        doc["consul"]["source"] = toml_edit::value(src);
    }
    let hosts = doc["hosts"].as_array_of_tables_mut().unwrap();
    for h in hosts.iter_mut() {
        h.remove("config");
        if let Some((name, hcl_toml)) = host_config {
            if h["name"].as_str() == Some(name) {
                let t: toml_edit::DocumentMut = hcl_toml.parse().unwrap();
                h["config"] = toml_edit::value(t.as_table().clone().into_inline_table());
            }
        }
    }
    std::fs::write(path, doc.to_string()).unwrap();
}

/// A copy of the lab's consul binary with a few bytes appended: the same program, another
/// sha256 (what a rebuilt binary of the same version looks like to consulctl).
fn rebuilt_binary(lab: &Lab, mark: &str) -> PathBuf {
    let installed = lab
        .exec(
            "server1",
            &["sh", "-c", "readlink -f \"$(command -v consul)\""],
        )
        .success()
        .out()
        .to_string();
    let dest = lab.inventory().with_extension(format!("consul-{mark}"));
    let _ = std::fs::remove_file(&dest);
    lab.docker(&[
        "cp",
        &format!("{}:{installed}", lab.container("server1")),
        dest.to_str().unwrap(),
    ])
    .success();
    let mut bytes = std::fs::read(&dest).unwrap();
    bytes.extend_from_slice(format!("\nconsulctl test: rebuilt {mark}\n").as_bytes());
    std::fs::write(&dest, bytes).unwrap();
    dest
}

fn sha_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// sha256 of the consul binary on a host, and whether a staged one waits beside it.
fn installed_sha(lab: &Lab, host: &str) -> String {
    let out = lab
        .exec(
            host,
            &[
                "sh",
                "-c",
                "sha256sum \"$(readlink -f \"$(command -v consul)\")\"",
            ],
        )
        .success();
    out.out().split_whitespace().next().unwrap().to_string()
}

fn staged_sha(lab: &Lab, host: &str) -> Option<String> {
    let out = lab.exec(
        host,
        &[
            "sh",
            "-c",
            "sha256sum \"$(readlink -f \"$(command -v consul)\").consulctl-new\"",
        ],
    );
    out.ok()
        .then(|| out.out().split_whitespace().next().unwrap().to_string())
}

fn restarts(out: &Value) -> Vec<&Value> {
    out["restarts"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

#[test]
fn apply_rolls_restarts_proves_them_and_puts_back_a_server_that_does_not_start() {
    let lab = Lab::new("aroll")
        .servers(3)
        .clients(2)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    set_inventory(&lab, "0", None, None);
    lab.consulctl(&["apply", "-i", inv]).success();
    for h in lab.hosts() {
        assert_eq!(running_rev(&lab, &h.name), "0", "{}", h.name);
    }
    let inits: BTreeMap<&str, &str> = lab
        .hosts()
        .iter()
        .map(|h| (h.name.as_str(), h.init.as_str()))
        .collect();
    assert!(
        inits.values().any(|i| *i == "systemd") && inits.values().any(|i| *i == "supervisord"),
        "{inits:?}"
    );

    // 1. Ten applies of alternating values on the clients (one systemd, one supervisord host):
    //    every restart `apply` reports is a new process that runs the new config.
    let clients: Vec<&str> = lab
        .hosts()
        .iter()
        .filter(|h| h.role == "client")
        .map(|h| h.name.as_str())
        .collect();
    let client_inits: Vec<&str> = clients.iter().map(|c| inits[c]).collect();
    assert!(client_inits.contains(&"systemd") && client_inits.contains(&"supervisord"));
    let mut last: BTreeMap<String, String> = lab.consul_pids();
    for i in 1..=10 {
        let rev = if i % 2 == 1 { "a" } else { "b" };
        set_inventory(&lab, rev, None, None);
        let out = lab
            .consulctl(&["apply", "-i", inv, "--limit", "role:client", "-o", "json"])
            .success();
        let result = out.json();
        let steps = restarts(&result);
        assert_eq!(steps.len(), clients.len(), "apply {i}: {result:#}");
        for s in &steps {
            let host = s["host"].as_str().unwrap();
            assert_eq!(s["ok"], true, "{s}");
            let now = lab.consul_pid(host);
            assert_eq!(s["pid_before"], last[host].as_str(), "apply {i}: {s}");
            assert_eq!(s["pid_after"], now.as_str(), "apply {i}: {s}");
            assert_ne!(now, last[host], "apply {i}: {host} not restarted");
            assert_eq!(
                running_rev(&lab, host),
                rev,
                "apply {i}: {host} runs an old config"
            );
            last.insert(host.to_string(), now);
        }
    }

    // 2. A rebuilt binary and a config change reach the whole running cluster: one server at
    //    a time, followers first and the leader last, then the clients, while an application
    //    next to client1 keeps a leader and can write.
    let rebuilt = rebuilt_binary(&lab, "one");
    set_inventory(&lab, "2", Some(&rebuilt), None);
    let before = lab.consul_pids();
    let leader_before = lab.leader_host("server1");
    let probe = Probe::start(&lab, "client1");
    std::thread::sleep(Duration::from_secs(1));
    let out = lab.consulctl(&["apply", "-i", inv, "-o", "json"]);
    std::thread::sleep(Duration::from_secs(1));
    let report = probe.stop();
    eprintln!("apply roll probe (client1): {}", report.summary());
    let result = out.success().json();
    let steps = restarts(&result);
    let order: Vec<&str> = steps.iter().map(|s| s["host"].as_str().unwrap()).collect();
    eprintln!("MEASURED apply restart order {order:?}, leader before {leader_before}");
    assert_eq!(steps.len(), 5, "{result:#}");
    assert!(
        steps[..3].iter().all(|s| s["role"] == "server"),
        "{order:?}"
    );
    assert_eq!(order[2], leader_before, "the leader goes last: {order:?}");
    assert_eq!(steps[2]["was_leader"], true);
    assert!(steps[..2].iter().all(|s| s["was_leader"] == false));
    // Never two servers down at once: each server step began after the previous one was back
    // as a healthy voter.
    for w in steps[..3].windows(2) {
        assert!(
            w[1]["started_unix_ms"].as_i64() >= w[0]["finished_unix_ms"].as_i64(),
            "{w:#?}"
        );
    }
    let after = lab.consul_pids();
    for h in lab.hosts() {
        assert_ne!(before[&h.name], after[&h.name], "{} not restarted", h.name);
        assert_eq!(running_rev(&lab, &h.name), "2", "{}", h.name);
        assert_eq!(
            installed_sha(&lab, &h.name),
            sha_of(&rebuilt),
            "{} runs another binary",
            h.name
        );
    }
    assert_eq!(result["verify"]["healthy"], true, "{result:#}");
    assert!(
        report.longest_gap_without_leader <= Duration::from_secs(5),
        "{}",
        report.summary()
    );
    assert!(report.write_ratio() >= 0.95, "{}", report.summary());

    // 3. A change that validates but keeps server2 from starting (its WAN gossip port on
    //    sshd's): the roll stops at server2, which is put back on its last good config and
    //    runs again; the servers after it and the clients are not restarted.
    //    Consul 1.8's Raft has no pre-vote: a restarted server can win the next election, so
    //    moving leadership off server2 may take more than one restart.
    for _ in 0..4 {
        if lab.leader_host("server1") != "server2" {
            break;
        }
        lab.consulctl(&["restart", "-i", inv, "--limit", "server2"])
            .success();
    }
    let leader = lab.leader_host("server1");
    assert_ne!(
        leader, "server2",
        "leadership stayed on server2 after 4 restarts"
    );
    let good_config = lab
        .exec("server2", &["cat", "/etc/consul.d/consul.hcl"])
        .success()
        .stdout;
    let rebuilt2 = rebuilt_binary(&lab, "two");
    set_inventory(
        &lab,
        "3",
        Some(&rebuilt2),
        Some(("server2", "ports = { serf_wan = 22 }")),
    );
    let before = lab.consul_pids();
    let out = lab.consulctl(&["apply", "-i", inv, "-o", "json"]).code(1);
    let result = out.json();
    let steps = restarts(&result);
    let order: Vec<&str> = steps.iter().map(|s| s["host"].as_str().unwrap()).collect();
    eprintln!("MEASURED failing roll order {order:?} (leader {leader})");
    assert_eq!(
        order.last(),
        Some(&"server2"),
        "the roll stops at server2: {result:#}"
    );
    let failed = steps.last().unwrap();
    assert_eq!(failed["ok"], false);
    let restored = failed["restored"].as_str().unwrap_or_default();
    assert!(restored.contains("runs again"), "{failed:#}");
    let hosts = result["hosts"].as_array().unwrap();
    let host = |n: &str| hosts.iter().find(|h| h["name"] == n).unwrap();
    assert_eq!(host("server2")["status"], "failed");
    assert!(
        host("server2")["error"]
            .as_str()
            .unwrap()
            .contains("restored the last good"),
        "{result:#}"
    );
    // server2: a new process on its last good config, the failed one kept for inspection.
    let now = lab.consul_pid("server2");
    assert_ne!(now, before["server2"]);
    assert_eq!(running_rev(&lab, "server2"), "2");
    assert_eq!(
        lab.exec("server2", &["cat", "/etc/consul.d/consul.hcl"])
            .success()
            .stdout,
        good_config
    );
    assert_eq!(
        installed_sha(&lab, "server2"),
        sha_of(&rebuilt),
        "binary not put back"
    );
    let kept = lab
        .exec(
            "server2",
            &[
                "sh",
                "-c",
                "cat /var/backups/consulctl/*/failed/etc/consul.d/consul.hcl",
            ],
        )
        .success()
        .stdout;
    assert!(kept.contains("serf_wan"), "{kept}");
    // Hosts after server2 and the clients: never restarted, their new files put back.
    for h in lab.hosts() {
        if order.contains(&h.name.as_str()) {
            continue;
        }
        assert_eq!(
            lab.consul_pid(&h.name),
            before[&h.name],
            "{} was restarted",
            h.name
        );
        assert_eq!(running_rev(&lab, &h.name), "2", "{}", h.name);
        let cfg = lab
            .exec(&h.name, &["cat", "/etc/consul.d/consul.hcl"])
            .success()
            .stdout;
        assert!(
            !cfg.contains("\"3\""),
            "{}: new config left in place:\n{cfg}",
            h.name
        );
        // The new binary waits, verified, beside the old one.
        assert_eq!(installed_sha(&lab, &h.name), sha_of(&rebuilt), "{}", h.name);
        assert_eq!(
            staged_sha(&lab, &h.name),
            Some(sha_of(&rebuilt2)),
            "{}",
            h.name
        );
        let status = host(&h.name);
        assert!(
            status["error"]
                .as_str()
                .unwrap_or_default()
                .contains("not restarted"),
            "{status}"
        );
    }
    assert!(
        !order.contains(&"server3"),
        "server3 was restarted: {order:?}"
    );
    // The cluster is whole: 3 voters, a leader, 5 alive members. The put-back server rejoins
    // raft as a non-voter until autopilot's stabilization time (10 s) has passed.
    wait_until(30, || {
        let raft = lab.api("server1", "/v1/operator/raft/configuration");
        raft["Servers"]
            .as_array()
            .is_some_and(|s| s.len() == 3 && s.iter().all(|p| p["Voter"] == true))
    });
    lab.assert_cluster_whole(3, 5);

    // 4. The binary a stopped roll left staged goes in at the next restart; once server2's
    //    config is fixed, one plain apply finishes the job.
    let pid3 = lab.consul_pid("server3");
    lab.consulctl(&["restart", "-i", inv, "--limit", "server3"])
        .success();
    assert_ne!(lab.consul_pid("server3"), pid3);
    assert_eq!(installed_sha(&lab, "server3"), sha_of(&rebuilt2));
    assert_eq!(staged_sha(&lab, "server3"), None);
    set_inventory(&lab, "3", Some(&rebuilt2), None);
    let result = lab
        .consulctl(&["apply", "-i", inv, "-o", "json"])
        .success()
        .json();
    assert_eq!(result["verify"]["healthy"], true, "{result:#}");
    for h in lab.hosts() {
        assert_eq!(running_rev(&lab, &h.name), "3", "{}", h.name);
        assert_eq!(
            installed_sha(&lab, &h.name),
            sha_of(&rebuilt2),
            "{}",
            h.name
        );
    }
    let _ = std::fs::remove_file(&rebuilt);
    let _ = std::fs::remove_file(&rebuilt2);
}
