//! The rollout against real lab hosts: what Consul itself reports, what runs on the hosts, and
//! what the files there contain. Nothing here trusts consulctl's own report alone.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{Lab, LabInit, Out};

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// Consul's answer for an API path, read inside the host's container.
fn api(lab: &Lab, host: &str, path: &str) -> Value {
    let body = lab.consul_api(host, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{host} {path}: not JSON ({e}): {body}"))
}

/// PID and kernel start time (clock ticks since boot) of the consul agent on every host.
/// Equal values before and after mean the process was not restarted.
fn agent_processes(lab: &Lab) -> BTreeMap<String, (String, String)> {
    lab.hosts()
        .iter()
        .map(|h| {
            let pid = lab
                .exec(&h.name, &["pidof", "consul"])
                .success()
                .out()
                .to_string();
            assert!(
                !pid.is_empty() && !pid.contains(' '),
                "{}: expected one consul process, got {pid:?}",
                h.name
            );
            let stat = lab
                .exec(&h.name, &["cat", &format!("/proc/{pid}/stat")])
                .success()
                .stdout;
            // Field 22 is the start time; the command name (field 2) has no spaces here.
            let start = stat
                .split_whitespace()
                .nth(21)
                .expect("starttime")
                .to_string();
            (h.name.clone(), (pid, start))
        })
        .collect()
}

/// The consul agent's own log on a host: the journal (systemd) or supervisord's log file.
fn consul_log(lab: &Lab, host: &str, init: &str) -> String {
    std::thread::sleep(std::time::Duration::from_millis(300));
    if init == "systemd" {
        lab.exec(
            host,
            &["journalctl", "-u", "consul", "--no-pager", "-n", "200"],
        )
        .success()
        .stdout
    } else {
        lab.exec(
            host,
            &["tail", "-n", "200", "/var/log/consul/consul.out.log"],
        )
        .success()
        .stdout
    }
}

fn file_sha(lab: &Lab, host: &str, path: &str) -> String {
    lab.exec(host, &["sha256sum", path])
        .success()
        .out()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn edit_inventory(lab: &Lab, f: impl FnOnce(&mut toml_edit::DocumentMut)) {
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    f(&mut doc);
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();
}

/// Every acceptance check of the foundation on one 3 + 2 mixed lab, in order.
#[test]
fn rollout_converges_reapply_is_a_noop_and_one_change_touches_only_that() {
    let lab = Lab::new("roll")
        .servers(3)
        .clients(2)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    let hosts: Vec<String> = lab.hosts().iter().map(|h| h.name.clone()).collect();
    assert!(
        lab.hosts().iter().any(|h| h.init == "systemd")
            && lab.hosts().iter().any(|h| h.init == "supervisord")
    );
    assert!(
        lab.hosts().iter().any(|h| h.ssh_user == "deploy"),
        "the lab must use the sudo user somewhere"
    );

    // 1. Fresh rollout.
    let first = json(
        &lab.consulctl(&["apply", "-i", inv, "--output", "json"])
            .success(),
    );
    assert_eq!(first["totals"]["failed"], 0, "{first:#}");
    assert_eq!(first["totals"]["changed"], 5, "{first:#}");

    // Consul itself, read inside a server container.
    let members = lab.exec("server1", &["consul", "members"]).success().stdout;
    let alive: Vec<&str> = members
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("alive"))
        .collect();
    assert_eq!(alive.len(), 5, "consul members:\n{members}");
    for h in &hosts {
        assert!(
            alive.iter().any(|l| l.split_whitespace().next() == Some(h)),
            "{h} not alive:\n{members}"
        );
    }
    let raft = api(&lab, "server2", "/v1/operator/raft/configuration");
    let servers = raft["Servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{raft:#}");
    assert!(servers.iter().all(|s| s["Voter"] == true), "{raft:#}");
    assert_eq!(
        servers.iter().filter(|s| s["Leader"] == true).count(),
        1,
        "{raft:#}"
    );
    let peers = lab
        .exec("server3", &["consul", "operator", "raft", "list-peers"])
        .success()
        .stdout;
    assert_eq!(
        peers
            .lines()
            .filter(|l| l.split_whitespace().nth(4) == Some("true"))
            .count(),
        3,
        "{peers}"
    );
    let leader = api(&lab, "server1", "/v1/status/leader");
    assert!(
        leader.as_str().is_some_and(|l| l.ends_with(":8300")),
        "leader: {leader}"
    );

    // `status` reports the same cluster Consul reports.
    let status = json(
        &lab.consulctl(&["status", "-i", inv, "--output", "json"])
            .success(),
    );
    assert_eq!(status["healthy"], true, "{status:#}");
    assert_eq!(
        status["raft_peers"].as_array().unwrap().len(),
        3,
        "{status:#}"
    );
    let status_members = status["members"].as_array().unwrap();
    assert_eq!(
        status_members.iter().filter(|m| m["Status"] == 1).count(),
        5,
        "{status:#}"
    );
    assert_eq!(status["leader"].as_str(), leader.as_str(), "{status:#}");
    for h in status["hosts"].as_array().unwrap() {
        assert_eq!(h["agent_running"], true, "{h}");
        assert_eq!(h["version"], "1.8.7", "{h}");
    }

    // 2. A second apply changes nothing and restarts nothing.
    let before = agent_processes(&lab);
    let second = json(
        &lab.consulctl(&["apply", "-i", inv, "--output", "json"])
            .success(),
    );
    assert_eq!(second["totals"]["changed_actions"], 0, "{second:#}");
    assert_eq!(second["totals"]["ok"], 5, "{second:#}");
    for h in second["hosts"].as_array().unwrap() {
        assert_eq!(h["status"], "ok", "{h}");
        assert_eq!(h["changed"], 0, "{h}");
    }
    assert_eq!(
        agent_processes(&lab),
        before,
        "an agent was restarted by a no-op apply"
    );
    lab.consulctl(&["plan", "-i", inv])
        .success()
        .contains("5 hosts: 0 to change, 5 unchanged");

    // 3. One inventory value changes: plan shows exactly that diff on every host.
    edit_inventory(&lab, |doc| {
        doc["cluster"]["log_level"] = toml_edit::value("DEBUG")
    });
    let plan = lab.consulctl(&["plan", "-i", inv]).success();
    let text = &plan.stdout;
    let minus: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .collect();
    let plus: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .collect();
    assert_eq!(minus, vec![r#"-log_level = "INFO""#; 5], "{plan}");
    assert_eq!(plus, vec![r#"+log_level = "DEBUG""#; 5], "{plan}");
    assert_eq!(
        text.matches("+++ /etc/consul.d/consul.hcl").count(),
        5,
        "{plan}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("+++")).count(),
        5,
        "only the agent config may change:\n{plan}"
    );
    for h in &hosts {
        assert!(text.contains(&format!("{h}: 2 actions")), "{h}:\n{plan}");
    }
    assert_eq!(
        text.matches("reload consul (log_level changed)").count(),
        5,
        "{plan}"
    );
    // plan changed nothing.
    assert_eq!(agent_processes(&lab), before, "plan restarted an agent");

    // ... and apply changes only that.
    let binary_before: Vec<String> = hosts
        .iter()
        .map(|h| file_sha(&lab, h, "/usr/local/bin/consul"))
        .collect();
    let third = json(
        &lab.consulctl(&["apply", "-i", inv, "--output", "json"])
            .success(),
    );
    for h in third["hosts"].as_array().unwrap() {
        assert_eq!(h["status"], "changed", "{h}");
        assert_eq!(h["changed"], 2, "config write + reload only: {h}");
    }
    // Consul itself logs at the new level: a request with a unique marker shows up as a
    // DEBUG "Request finished" line (at INFO it would not be logged at all).
    for h in lab.hosts() {
        let marker = format!("marker-{}-{}", h.name, std::process::id());
        lab.consul_api(&h.name, &format!("/v1/agent/self?{marker}"));
        let log = consul_log(&lab, &h.name, &h.init);
        assert!(
            log.lines()
                .any(|l| l.contains("[DEBUG]") && l.contains(&marker)),
            "{} does not log at DEBUG after the reload:\n{}",
            h.name,
            log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
        );
    }
    let binary_after: Vec<String> = hosts
        .iter()
        .map(|h| file_sha(&lab, h, "/usr/local/bin/consul"))
        .collect();
    assert_eq!(binary_before, binary_after);
    // The log level is reloadable: Consul applies it without a restart.
    assert_eq!(
        agent_processes(&lab),
        before,
        "a log level change must not restart agents"
    );
    let fourth = json(
        &lab.consulctl(&["apply", "-i", inv, "--output", "json"])
            .success(),
    );
    assert_eq!(fourth["totals"]["changed_actions"], 0, "{fourth:#}");
}

/// A value Consul rejects: the host fails with Consul's message, the live config and the
/// running agents stay as they were. Also: the non-root sudo user, and sudo wanting a password.
#[test]
fn config_rejected_by_consul_leaves_live_config_and_agents_untouched() {
    let lab = Lab::new("reject")
        .servers(1)
        .clients(2)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    assert_eq!(lab.host("client2").ssh_user, "deploy");
    lab.consulctl(&["apply", "-i", inv])
        .success()
        .contains("cluster healthy");

    let before = agent_processes(&lab);
    let sha_before: Vec<String> = lab
        .hosts()
        .iter()
        .map(|h| file_sha(&lab, &h.name, "/etc/consul.d/consul.hcl"))
        .collect();

    edit_inventory(&lab, |doc| {
        doc["config"]["not_a_consul_key"] = toml_edit::value(true)
    });
    let out = lab
        .consulctl(&["apply", "-i", inv, "--output", "json"])
        .code(1);
    let recap = json(&out);
    assert_eq!(recap["totals"]["failed"], 3, "{recap:#}");
    for h in recap["hosts"].as_array().unwrap() {
        assert_eq!(h["status"], "failed", "{h}");
        let err = h["error"].as_str().unwrap();
        assert!(err.contains("consul validate rejected"), "{h}");
        assert!(
            err.contains("not_a_consul_key"),
            "Consul's own message must be shown: {h}"
        );
    }
    let sha_after: Vec<String> = lab
        .hosts()
        .iter()
        .map(|h| file_sha(&lab, &h.name, "/etc/consul.d/consul.hcl"))
        .collect();
    assert_eq!(sha_before, sha_after, "the live config changed");
    assert_eq!(agent_processes(&lab), before, "an agent was restarted");
    for h in lab.hosts() {
        let staging = lab
            .exec(
                &h.name,
                &[
                    "sh",
                    "-c",
                    "ls -d /tmp/consulctl-stage.* 2>/dev/null | wc -l",
                ],
            )
            .success();
        assert_eq!(staging.out(), "0", "{}: staging dir left behind", h.name);
    }
    let members = api(&lab, "server1", "/v1/agent/members");
    assert_eq!(
        members
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["Status"] == 1)
            .count(),
        3
    );

    // Text output names the host and Consul's error too.
    lab.consulctl(&["apply", "-i", inv])
        .code(1)
        .contains("client2")
        .contains("invalid config key not_a_consul_key");

    // sudo that wants a password: a clear error for that host, the others are fine.
    edit_inventory(&lab, |doc| {
        doc["config"]
            .as_table_like_mut()
            .unwrap()
            .remove("not_a_consul_key");
    });
    lab.exec(
        "client2",
        &[
            "sh",
            "-c",
            "echo 'deploy ALL=(ALL) ALL' > /etc/sudoers.d/deploy",
        ],
    )
    .success();
    let out = lab
        .consulctl(&["apply", "-i", inv, "--output", "json"])
        .code(1);
    let recap = json(&out);
    for h in recap["hosts"].as_array().unwrap() {
        if h["name"] == "client2" {
            assert_eq!(h["status"], "failed", "{h}");
            assert!(
                h["error"].as_str().unwrap().contains("without a password"),
                "{h}"
            );
        } else {
            assert_eq!(h["status"], "ok", "{h}");
        }
    }

    // A host that does not answer: it fails in connect, the others go on, and verify (asking
    // Consul) names it as not alive.
    lab.exec(
        "client2",
        &[
            "sh",
            "-c",
            "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy",
        ],
    )
    .success();
    lab.docker(&["pause", &lab.container("client1")]).success();
    let out = lab
        .consulctl(&[
            "apply",
            "-i",
            inv,
            "--output",
            "json",
            "--verify-timeout",
            "40",
        ])
        .code(1);
    lab.docker(&["unpause", &lab.container("client1")])
        .success();
    let recap = json(&out);
    for h in recap["hosts"].as_array().unwrap() {
        if h["name"] == "client1" {
            assert_eq!(h["status"], "failed", "{h}");
            assert_eq!(h["phase"], "connect", "{h}");
        } else {
            assert_eq!(h["status"], "ok", "{h}");
        }
    }
    // The failed host is a failure already: verify checks the others and does not wait for it.
    assert_eq!(recap["verify"]["healthy"], true, "{recap:#}");
    assert_eq!(
        recap["verify"]["not_checked"],
        serde_json::json!(["client1"])
    );
    assert!(
        recap["duration_ms"].as_u64().unwrap() < 40_000,
        "verify waited for the failed host: {recap:#}"
    );
}

/// Issue 11, item 6: a host failing validation (its bind_cidr matches none of its addresses)
/// and one whose SSH user needs a password for sudo, on fresh hosts. `apply` does not wait for
/// them in verify (it returns within 30 s of the other hosts finishing), exits 1, and the recap
/// says for each its own error and nothing else; doctor then reports them as what they are.
#[test]
fn failed_hosts_are_not_waited_for_and_not_misdiagnosed() {
    let lab = Lab::new("vfail")
        .servers(1)
        .clients(2)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    assert_eq!(lab.host("client2").ssh_user, "deploy");
    // The clients bind inside a network none of them is on: client1 fails validation (client2
    // fails earlier, at its facts, through sudo).
    edit_inventory(&lab, |doc| {
        doc["clients"]["bind_cidr"] = toml_edit::value("192.0.2.0/24");
    });
    lab.exec(
        "client2",
        &[
            "sh",
            "-c",
            "echo 'deploy ALL=(ALL) ALL' > /etc/sudoers.d/deploy",
        ],
    )
    .success();

    let started = std::time::Instant::now();
    let out = lab
        .consulctl(&["apply", "-i", inv, "--output", "json"])
        .code(1);
    let wall = started.elapsed();
    let recap = json(&out);
    let host = |name: &str| -> &Value {
        recap["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap()
    };
    assert_eq!(host("server1")["status"], "changed", "{recap:#}");
    assert_eq!(host("client1")["phase"], "validate", "{recap:#}");
    let err1 = host("client1")["error"].as_str().unwrap();
    assert!(err1.starts_with("bind_cidr 192.0.2.0/24"), "{err1}");
    assert_eq!(host("client2")["phase"], "gather facts", "{recap:#}");
    let err2 = host("client2")["error"].as_str().unwrap();
    assert!(err2.contains("without a password"), "{err2}");
    // The others were done at `others_ms`; apply ended `total - others_ms` later.
    let others_ms = host("server1")["duration_ms"].as_u64().unwrap();
    let total_ms = recap["duration_ms"].as_u64().unwrap();
    eprintln!(
        "MEASURED failed_hosts: server1 done at {others_ms} ms, apply {total_ms} ms (wall {:.1}s), \
         after the others {} ms",
        wall.as_secs_f64(),
        total_ms - others_ms
    );
    assert!(
        total_ms - others_ms < 30_000,
        "apply waited {} ms after the other hosts were done",
        total_ms - others_ms
    );
    // Verify checked the rest (healthy) and named nothing about the failed hosts.
    let verify = &recap["verify"];
    assert_eq!(verify["healthy"], true, "{recap:#}");
    assert_eq!(
        verify["not_checked"],
        serde_json::json!(["client1", "client2"])
    );
    assert_eq!(verify["problems"], serde_json::json!([]), "{recap:#}");
    // Consul agrees: one alive member (server1), the leader.
    let members = api(&lab, "server1", "/v1/agent/members");
    assert_eq!(members.as_array().unwrap().len(), 1, "{members:#}");
    // client1 was never installed; client2 untouched.
    for h in ["client1", "client2"] {
        lab.exec(h, &["test", "!", "-e", "/usr/local/bin/consul"])
            .success();
    }
    // The text recap: each failed host with its own error, no doctor findings about them.
    let text = lab.consulctl(&["apply", "-i", inv]).code(1);
    assert!(
        text.stdout
            .contains("failed in validate: bind_cidr 192.0.2.0/24"),
        "{text}"
    );
    assert!(text.stdout.contains("failed in gather facts"), "{text}");
    for wrong in [
        "data dir",
        "could not log in",
        "NOT healthy",
        "not a member",
    ] {
        assert!(!text.stdout.contains(wrong), "{wrong:?} in\n{text}");
    }

    // doctor: client1 has no agent, client2's sudo wants a password; nothing else about them.
    let out = lab
        .consulctl(&["doctor", "-i", inv, "--output", "json"])
        .code(1);
    let report = json(&out);
    let codes: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["hosts"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("no-agent".to_string(), "[\"client1\"]".to_string()),
            ("sudo-password".to_string(), "[\"client2\"]".to_string())
        ],
        "{report:#}"
    );
    // A host that is down is not told it is up.
    lab.docker(&["stop", "-t", "1", &lab.container("client2")])
        .success();
    let out = lab.consulctl(&["doctor", "-i", inv]).code(1);
    assert!(out.stdout.contains("client2"), "{out}");
    assert!(out.stdout.contains("did not answer over SSH"), "{out}");
    assert!(!out.stdout.contains("the host is up;"), "{out}");
}

/// Package sources cannot run here (no internet): `plan` shows the exact commands.
/// A changed host key stops that host and says so.
#[test]
fn plan_shows_package_commands_and_a_changed_host_key_stops_that_host() {
    let lab = Lab::new("pkg")
        .servers(1)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();

    edit_inventory(&lab, |doc| {
        doc["consul"]["version"] = toml_edit::value("1.21.0");
        let mut src = toml_edit::InlineTable::new();
        src.insert("package", "apt".into());
        doc["consul"]["source"] = toml_edit::value(src);
    });
    let plan = lab.consulctl(&["plan", "-i", inv]).success();
    for h in ["server1", "client1"] {
        assert!(plan.stdout.contains(&format!("{h}: ")), "{plan}");
    }
    assert_eq!(
        plan.stdout
            .matches("apt-get install -y consul=1.21.0-1\n")
            .count(),
        2,
        "{plan}"
    );
    assert!(plan.stdout.contains("apt.releases.hashicorp.com"), "{plan}");
    // 1.21 config: ui_config block on the server, never `ui = true`.
    assert!(plan.stdout.contains("+ui_config {"), "{plan}");
    assert!(!plan.stdout.contains("+ui = true"), "{plan}");
    // plan changed nothing on the hosts.
    for h in ["server1", "client1"] {
        lab.exec(h, &["test", "!", "-e", "/usr/local/bin/consul"])
            .success();
        lab.exec(h, &["test", "!", "-e", "/etc/consul.d/consul.hcl"])
            .success();
    }

    // A wrong key for client1 in known_hosts: client1 fails naming the host key; server1 is fine.
    let kh = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let server_addr = &lab.host("server1").address;
    let client_addr = &lab.host("client1").address;
    let server_key = kh
        .lines()
        .find(|l| l.starts_with(&format!("{server_addr} ")))
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1;
    let forged: String = kh
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{client_addr} ")) {
                format!("{client_addr} {server_key}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let forged_path = lab.inventory().with_extension("known_hosts");
    std::fs::write(&forged_path, forged + "\n").unwrap();
    edit_inventory(&lab, |doc| {
        doc["ssh"]["known_hosts"] = toml_edit::value(forged_path.to_str().unwrap())
    });
    let out = lab.consulctl(&["plan", "-i", inv]).code(1);
    assert!(out.stdout.contains("client1: FAILED in connect"), "{out}");
    assert!(out.stdout.to_lowercase().contains("host key"), "{out}");
    assert!(out.stdout.contains("server1: "), "{out}");
    assert!(!out.stdout.contains("server1: FAILED"), "{out}");
}
