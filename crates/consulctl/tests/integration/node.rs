//! `consulctl node remove` against real lab clusters. Every check reads Consul itself (API or
//! CLI inside a container) or the hosts' file systems; consulctl's report is not trusted alone.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Lab, LabInit, Out};

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn api(lab: &Lab, host: &str, path: &str) -> Value {
    let body = lab.consul_api(host, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{host} {path}: not JSON ({e}): {body}"))
}

/// Node names in the raft configuration, as `host`'s agent reports it.
fn raft_nodes(lab: &Lab, host: &str) -> Vec<String> {
    let raft = api(lab, host, "/v1/operator/raft/configuration");
    let mut nodes: Vec<String> = raft["Servers"]
        .as_array()
        .unwrap_or_else(|| panic!("{raft:#}"))
        .iter()
        .map(|s| {
            assert_eq!(s["Voter"], true, "{raft:#}");
            s["Node"].as_str().unwrap().to_string()
        })
        .collect();
    nodes.sort();
    nodes
}

/// Serf status of `node` as `via`'s agent sees it (`alive`, `left`, `failed`; None: not listed).
fn member_status(lab: &Lab, via: &str, node: &str) -> Option<String> {
    let members = lab.exec(via, &["consul", "members"]).success().stdout;
    members
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&node))
        .map(|f| f[2].to_string())
}

#[track_caller]
fn wait_member_status(lab: &Lab, via: &str, node: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = member_status(lab, via, node);
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{node} is {got:?} after {timeout:?}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `sh -c SCRIPT` in a host's container; stdout trimmed.
fn sh(lab: &Lab, host: &str, script: &str) -> String {
    lab.exec(host, &["sh", "-c", script])
        .success()
        .out()
        .to_string()
}

/// Autopilot (`cleanup_dead_servers`, on by default) removes a failed server from raft by itself
/// within seconds; these tests need the dead server to stay a voter until consulctl acts.
fn disable_autopilot_cleanup(lab: &Lab, via: &str) {
    lab.exec(
        via,
        &[
            "consul",
            "operator",
            "autopilot",
            "set-config",
            "-cleanup-dead-servers=false",
        ],
    )
    .success();
}

/// Acceptance: 5 servers + 1 client, 100 KV keys, remove two servers (one under supervisord, one
/// under systemd): 3 voters, snapshots on the control host, data moved aside, every key readable.
#[test]
fn remove_two_of_five_servers_keeps_three_voters_and_all_data() {
    let started = Instant::now();
    let lab = Lab::new("rm")
        .servers(5)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    assert_eq!(lab.host("server4").init, "supervisord");
    assert_eq!(lab.host("server5").init, "systemd");
    // Three servers first, with the data; then server4 and server5 join, and are removed right
    // after they joined: Consul refuses snapshots until the raft configuration entries of the
    // joins are applied ("cannot take snapshot now"), which `node remove` waits out.
    let full = std::fs::read_to_string(lab.inventory()).unwrap();
    lab.keep_hosts(&["server1", "server2", "server3", "client1"]);
    lab.consulctl(&["apply", "-i", inv]).success();
    sh(
        &lab,
        "server1",
        "for i in $(seq 1 100); do consul kv put rm-test/key$i value$i >/dev/null || exit 1; done",
    );
    std::fs::write(lab.inventory(), &full).unwrap();
    lab.consulctl(&["apply", "-i", inv])
        .success()
        .contains("5 voters");
    let node_ids: Vec<String> = ["server4", "server5"]
        .iter()
        .map(|h| sh(&lab, h, "cat /opt/consul/node-id"))
        .collect();
    // Whether Consul refuses depends on timing; to go through the retry for sure, every
    // server's `consul snapshot save` also refuses the first time with Consul's message (a
    // wrapper in front of the real binary; everything else goes straight through).
    let wrapper = "#!/bin/sh\n\
        if [ \"$1\" = snapshot ] && [ ! -e /tmp/snapshot-refused ]; then\n\
          : > /tmp/snapshot-refused\n\
          echo 'Error saving snapshot: Unexpected response code: 500 (cannot take snapshot now, wait until the configuration entry at 104 has been applied)' >&2\n\
          exit 1\n\
        fi\n\
        exec /usr/local/bin/consul.real \"$@\"\n";
    for h in ["server1", "server2", "server3", "server4", "server5"] {
        lab.exec_stdin(
            h,
            &[
                "sh",
                "-c",
                "cp -p /usr/local/bin/consul /usr/local/bin/consul.real && cat > /tmp/consul-wrapper \
                 && chmod 755 /tmp/consul-wrapper && mv /tmp/consul-wrapper /usr/local/bin/consul",
            ],
            wrapper,
        )
        .success();
    }

    let removing = Instant::now();
    let out = lab
        .consulctl(&[
            "node", "remove", "server4", "server5", "-i", inv, "--output", "json",
        ])
        .success();
    eprintln!(
        "MEASURED remove_right_after_join: {:.1}s, snapshot retries: {}",
        removing.elapsed().as_secs_f64(),
        out.stderr.matches("Consul cannot take one yet").count()
    );
    assert!(
        out.stderr.contains("Consul cannot take one yet")
            && out.stderr.contains("cannot take snapshot now"),
        "the refused snapshot was not retried:\n{out}"
    );
    let report = json(&out);
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{report:#}");
    for h in hosts {
        assert_eq!(h["status"], "removed", "{h:#}");
        // The snapshot is on the control host, non-empty, the size reported, and a valid
        // Consul snapshot (binary-safe copy): `consul snapshot inspect` reads it.
        let path = h["snapshot"]["path"].as_str().unwrap();
        let name = h["name"].as_str().unwrap();
        assert!(
            path.contains("/backups/") && path.ends_with(&format!("-{name}.snap")),
            "{path}"
        );
        let len = std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .len();
        assert!(len > 0, "{path} is empty");
        assert_eq!(h["snapshot"]["bytes"].as_u64(), Some(len), "{h:#}");
        let dest = format!("{}:/tmp/check.snap", lab.container("server1"));
        lab.docker(&["cp", path, &dest]).success();
        lab.exec(
            "server1",
            &["consul", "snapshot", "inspect", "/tmp/check.snap"],
        )
        .success()
        .contains("Index");
    }
    assert_eq!(report["inventory"]["updated"], false, "{report:#}");

    // Consul: 3 voters, a leader, the two removed as `left`.
    assert_eq!(
        raft_nodes(&lab, "server1"),
        ["server1", "server2", "server3"]
    );
    let leader = api(&lab, "server2", "/v1/status/leader");
    assert!(
        leader.as_str().is_some_and(|l| l.ends_with(":8300")),
        "{leader}"
    );
    for h in ["server4", "server5"] {
        assert_eq!(
            member_status(&lab, "server3", h).as_deref(),
            Some("left"),
            "{h}"
        );
    }
    assert_eq!(
        member_status(&lab, "server3", "client1").as_deref(),
        Some("alive")
    );

    // On the removed hosts: agent gone and not coming back, everything moved aside, not deleted.
    for (h, id) in ["server4", "server5"].iter().zip(&node_ids) {
        lab.exec(h, &["pidof", "consul"]).failure();
        assert_eq!(sh(&lab, h, "cat /opt/consul.removed-*/node-id"), *id, "{h}");
        sh(&lab, h, "test ! -e /opt/consul && test ! -e /etc/consul.d");
        sh(&lab, h, "test -f /etc/consul.d.removed-*/consul.hcl");
        sh(&lab, h, "test -x /usr/local/bin/consul"); // no --remove-binary
    }
    sh(
        &lab,
        "server4",
        "! supervisorctl status consul && test -f /etc/supervisor/conf.d/consul.conf.removed-* \
         && test ! -e /etc/supervisor/conf.d/consul.conf",
    );
    assert_eq!(
        lab.exec("server5", &["systemctl", "is-enabled", "consul"])
            .out(),
        "disabled"
    );
    // Still down a while later (nothing restarted them).
    std::thread::sleep(Duration::from_secs(3));
    for h in ["server4", "server5"] {
        lab.exec(h, &["pidof", "consul"]).failure();
        assert_eq!(
            member_status(&lab, "server1", h).as_deref(),
            Some("left"),
            "{h}"
        );
    }

    // Every key is there, read through a server and through the client.
    for via in ["server2", "client1"] {
        let kv = sh(&lab, via, "consul kv get -recurse rm-test/");
        let mut lines: Vec<&str> = kv.lines().collect();
        lines.sort();
        let mut want: Vec<String> = (1..=100)
            .map(|i| format!("rm-test/key{i}:value{i}"))
            .collect();
        want.sort();
        assert_eq!(lines, want, "via {via}");
    }
    eprintln!("remove_two_of_five_servers: {:.0?}", started.elapsed());
}

/// Acceptance: one of three servers down; removing a second one is refused with the numbers and
/// changes nothing.
#[test]
fn remove_refused_when_it_would_break_quorum() {
    let started = Instant::now();
    // One client too: `apply` on an inventory without clients fails at its "start clients"
    // step (`role:client` matches no host), a rollout bug outside this test.
    let lab = Lab::new("quorum")
        .servers(3)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    lab.consulctl(&["apply", "-i", inv]).success();
    disable_autopilot_cleanup(&lab, "server2");
    lab.docker(&["stop", &lab.container("server1")]).success();
    wait_member_status(
        &lab,
        "server3",
        "server1",
        "failed",
        Duration::from_secs(90),
    );
    let pid_before = sh(&lab, "server2", "pidof consul");

    let out = lab
        .consulctl(&["node", "remove", "server2", "-i", inv])
        .code(2)
        .contains(
            "removing server2 would leave 1 alive voter of 2; quorum of the remaining 2 needs 2",
        )
        .contains("--force");
    assert!(!out.stdout.contains("snapshot"), "{out}");

    // Nothing changed: 3 peers, the target's agent is the same process, files in place.
    assert_eq!(
        raft_nodes(&lab, "server3"),
        ["server1", "server2", "server3"]
    );
    assert_eq!(sh(&lab, "server2", "pidof consul"), pid_before);
    assert_eq!(
        member_status(&lab, "server3", "server2").as_deref(),
        Some("alive")
    );
    sh(
        &lab,
        "server2",
        "test -f /opt/consul/node-id && test -f /etc/consul.d/consul.hcl \
         && ! ls -d /opt/consul.removed-* /etc/consul.d.removed-* 2>/dev/null",
    );
    eprintln!(
        "remove_refused_when_it_would_break_quorum: {:.0?}",
        started.elapsed()
    );
}

/// Acceptance: a dead server needs --force; with it, a live server force-leaves it and it is gone
/// from the raft peers while the cluster keeps a leader. In the same run a live client leaves
/// gracefully, and --update-inventory removes exactly their two entries.
#[test]
fn force_remove_of_a_dead_server_and_update_inventory() {
    let started = Instant::now();
    let lab = Lab::new("dead")
        .servers(3)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    lab.consulctl(&["apply", "-i", inv]).success();
    disable_autopilot_cleanup(&lab, "server1");

    // Comments and odd spacing that must survive the edit.
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let text = text
        .replacen(
            "\n[[hosts]]\nname = \"server3\"",
            "\n# server3 is the one that dies\n[[hosts]]\nname = \"server3\"",
            1,
        )
        .replacen(
            "\n[[hosts]]\nname = \"client1\"",
            "\n# client1: web tier\n[[hosts]]\nname = \"client1\"",
            1,
        )
        .replacen("name = \"server1\"", "name = \"server1\"   # first", 1)
        + "\n# end of inventory\n";
    std::fs::write(lab.inventory(), &text).unwrap();
    let s3 = text.find("\n# server3 is the one that dies").unwrap();
    let end = text.find("\n# end of inventory").unwrap();
    let expected = format!("{}{}", &text[..s3], &text[end..]);
    assert!(expected.contains("name = \"server2\"") && !expected.contains("client1"));

    lab.docker(&["stop", &lab.container("server3")]).success();
    wait_member_status(
        &lab,
        "server1",
        "server3",
        "failed",
        Duration::from_secs(90),
    );
    assert_eq!(
        raft_nodes(&lab, "server1"),
        ["server1", "server2", "server3"]
    );

    // Without --force: that host fails with a hint, nothing changes.
    lab.consulctl(&["node", "remove", "server3", "-i", inv])
        .code(1)
        .contains("--force");
    assert_eq!(
        raft_nodes(&lab, "server1"),
        ["server1", "server2", "server3"]
    );
    assert_eq!(std::fs::read_to_string(lab.inventory()).unwrap(), text);

    let out = lab
        .consulctl(&[
            "node",
            "remove",
            "server3",
            "client1",
            "-i",
            inv,
            "--force",
            "--update-inventory",
            "--output",
            "json",
        ])
        .success();
    let report = json(&out);
    for h in report["hosts"].as_array().unwrap() {
        assert_eq!(h["status"], "removed", "{h:#}");
    }
    let server3 = &report["hosts"][0];
    assert!(
        server3["actions"]
            .to_string()
            .contains("force-leave -prune"),
        "{server3:#}"
    );
    let snap = server3["snapshot"]["path"].as_str().unwrap();
    assert!(std::fs::metadata(snap).unwrap().len() > 0);

    // Consul: server3 not a raft peer, a leader, client1 left.
    let peers = lab
        .exec("server1", &["consul", "operator", "raft", "list-peers"])
        .success()
        .stdout;
    assert!(!peers.contains("server3"), "{peers}");
    assert_eq!(
        peers.lines().filter(|l| l.contains(" leader ")).count(),
        1,
        "{peers}"
    );
    assert_eq!(raft_nodes(&lab, "server2"), ["server1", "server2"]);
    let leader = api(&lab, "server2", "/v1/status/leader");
    assert!(
        leader.as_str().is_some_and(|l| l.ends_with(":8300")),
        "{leader}"
    );
    assert_eq!(member_status(&lab, "server1", "server3"), None, "pruned");
    assert_eq!(
        member_status(&lab, "server1", "client1").as_deref(),
        Some("left")
    );
    lab.exec("client1", &["pidof", "consul"]).failure();
    sh(&lab, "client1", "test -f /opt/consul.removed-*/node-id");

    // The inventory lost exactly those two entries (with their comments); all else byte-equal.
    assert_eq!(std::fs::read_to_string(lab.inventory()).unwrap(), expected);
    assert_eq!(report["inventory"]["updated"], true, "{report:#}");
    // ... and the rest of the cluster now matches it.
    lab.consulctl(&["status", "-i", inv]).success();
    eprintln!("force_remove_of_a_dead_server: {:.0?}", started.elapsed());
}
