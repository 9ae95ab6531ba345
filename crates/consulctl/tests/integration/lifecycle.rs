//! Growing a running cluster from the inventory, and run locks.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{Lab, LabInit, Out};

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn api(lab: &Lab, host: &str, path: &str) -> Value {
    let body = lab.consul_api(host, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{host} {path}: not JSON ({e}): {body}"))
}

fn pid(lab: &Lab, host: &str) -> String {
    lab.exec(host, &["pidof", "consul"])
        .success()
        .out()
        .to_string()
}

/// Issue 3, acceptance 1: add 2 servers and 1 client to a running 3 + 2 cluster by editing the
/// inventory: 5 voters, every member alive, the existing agents not restarted, data intact.
#[test]
fn adding_servers_and_a_client_joins_them_without_restarting_anyone() {
    let lab = Lab::new("grow")
        .servers(5)
        .clients(3)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    let full = std::fs::read_to_string(lab.inventory()).unwrap();
    let first = ["server1", "server2", "server3", "client1", "client2"];
    lab.keep_hosts(&first);
    lab.consulctl(&["apply", "-i", inv])
        .success()
        .contains("3 voters, 5 alive members");

    for i in 0..100 {
        let url = format!("http://127.0.0.1:8500/v1/kv/grow/key{i:03}");
        let put = lab.exec(
            "client1",
            &[
                "curl",
                "-sS",
                "-X",
                "PUT",
                "--data",
                &format!("value-{i}"),
                &url,
            ],
        );
        assert_eq!(put.success().out(), "true");
    }
    let before: BTreeMap<&str, String> = first.iter().map(|h| (*h, pid(&lab, h))).collect();

    std::fs::write(lab.inventory(), &full).unwrap();
    let plan = lab.consulctl(&["plan", "-i", inv]).success();
    for h in &first {
        // Existing nodes only get the new join list and bootstrap_expect: no restart planned.
        assert!(!plan.stdout.contains(&format!("{h}: FAILED")), "{plan}");
    }
    assert!(
        !plan.stdout.contains("restart consul"),
        "nothing may be restarted:\n{plan}"
    );

    let out = lab
        .consulctl(&["apply", "-i", inv, "--output", "json"])
        .success();
    let recap = json(&out);
    assert_eq!(recap["totals"]["failed"], 0, "{recap:#}");
    for h in recap["hosts"].as_array().unwrap() {
        let name = h["name"].as_str().unwrap();
        if first.contains(&name) {
            let pending = h["pending_restart"].to_string();
            if name.starts_with("server") || name.starts_with("client") {
                assert!(
                    pending.contains("retry_join"),
                    "{name} should report a pending restart: {h}"
                );
            }
        }
    }

    // Consul's view: 5 voters, every one of the 8 members alive.
    let raft = api(&lab, "server1", "/v1/operator/raft/configuration");
    let servers = raft["Servers"].as_array().unwrap();
    assert_eq!(
        servers.iter().filter(|s| s["Voter"] == true).count(),
        5,
        "{raft:#}"
    );
    let members = api(&lab, "server4", "/v1/agent/members");
    let alive: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Status"] == 1)
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(alive.len(), 8, "{members:#}");
    assert_eq!(
        members
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["Status"] == 1 && m["Tags"]["role"] == "node")
            .count(),
        3,
        "clients alive: {members:#}"
    );

    // The existing agents were not restarted.
    for h in &first {
        assert_eq!(pid(&lab, h), before[h], "{h} was restarted");
    }
    // The data is intact, read through a new server.
    let keys = api(&lab, "server5", "/v1/kv/grow/?keys");
    assert_eq!(keys.as_array().unwrap().len(), 100, "{keys}");

    // The new servers joined one at a time: server4 was a voter before server5 started.
    let log = std::fs::read_to_string(recap["debug_log"].as_str().unwrap()).unwrap();
    let voter4 = log
        .find("new server is a voter host=server4")
        .expect("server4 voter line in the debug log");
    let up5 = log
        .find("agent up host=server5")
        .expect("server5 start line in the debug log");
    assert!(voter4 < up5, "server5 started before server4 was a voter");
}

/// Issue 3, acceptance 6: two applies on one inventory at once: the second stops at once,
/// naming who holds the lock; it touched nothing.
#[test]
fn second_concurrent_apply_stops_at_once_naming_the_lock_holder() {
    let lab = Lab::new("lock")
        .servers(1)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str().to_string();
    let bin = crate::harness::CONSULCTL;
    let mut first = std::process::Command::new(bin)
        .args(["apply", "-i", &inv])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock.
    let lock = lab
        .inventory()
        .parent()
        .unwrap()
        .join(".consulctl")
        .join(lab.name())
        .join("run.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !lock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first apply never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    let second = lab
        .consulctl(&["apply", "-i", &inv])
        .code(2)
        .contains("locked by");
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{second}"
    );
    assert!(
        started.elapsed().as_secs() < 5,
        "the second apply must stop at once"
    );
    assert!(
        first.wait().unwrap().success(),
        "the first apply must finish normally"
    );
    assert!(!lock.exists(), "the lock is released at the end");
    // And with the lock free, apply works again (a no-op now).
    lab.consulctl(&["apply", "-i", &inv])
        .success()
        .contains("0 changed actions");
}

/// `consulctl run` with plain command steps: every argument arrives literally (no shell sees
/// it), as root also through `sudo -n`, `serial` batches, and a failing command fails its host
/// unless `ignore_errors`.
#[test]
fn run_playbook_command_steps_pass_arguments_literally() {
    let lab = Lab::new("run")
        .servers(2)
        .clients(0)
        .init(LabInit::Mixed)
        .up();
    assert_eq!(lab.host("server2").ssh_user, "deploy");
    let inv = lab.inventory_str();
    let weird = "/tmp/it's $(touch /tmp/pwned) `touch /tmp/pwned2`; echo \"x\" | y";
    let mut playbook = toml_edit::DocumentMut::new();
    playbook["name"] = toml_edit::value("escape-test");
    let mut steps = toml_edit::ArrayOfTables::new();
    let mut step =
        |title: &str, task: &str, command: Option<&[&str]>, extra: &[(&str, toml_edit::Item)]| {
            let mut t = toml_edit::Table::new();
            t["title"] = toml_edit::value(title);
            t["task"] = toml_edit::value(task);
            if let Some(argv) = command {
                t["command"] = toml_edit::value(toml_edit::Array::from_iter(argv.iter().copied()));
            }
            for (k, v) in extra {
                t[*k] = v.clone();
            }
            steps.push(t);
        };
    step("Connect", "connect", None, &[]);
    step(
        "Make a dir",
        "command",
        Some(&["mkdir", "-p", weird]),
        &[("serial", toml_edit::value(1))],
    );
    step(
        "Who am I",
        "command",
        Some(&["sh", "-c", "id -u > /tmp/run-uid"]),
        &[],
    );
    step(
        "Fails, ignored",
        "command",
        Some(&["false"]),
        &[("ignore_errors", toml_edit::value(true))],
    );
    step("Disconnect", "disconnect", None, &[]);
    playbook["steps"] = toml_edit::Item::ArrayOfTables(steps);
    let path = lab.inventory().with_extension("playbook.toml");
    std::fs::write(&path, playbook.to_string()).unwrap();

    lab.consulctl(&["run", path.to_str().unwrap(), "-i", inv])
        .success();
    for h in ["server1", "server2"] {
        lab.exec(h, &["test", "-d", weird]).success();
        lab.exec(h, &["test", "!", "-e", "/tmp/pwned"]).success();
        lab.exec(h, &["test", "!", "-e", "/tmp/pwned2"]).success();
        assert_eq!(
            lab.exec(h, &["cat", "/tmp/run-uid"]).success().out(),
            "0",
            "{h} ran as root"
        );
    }

    // Without ignore_errors a failing command fails the host, and the run exits 1.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("ignore_errors = true\n", "");
    std::fs::write(&path, text).unwrap();
    lab.consulctl(&["run", path.to_str().unwrap(), "-i", inv])
        .code(1)
        .contains("Fails, ignored failed");

    // `hosts` on validate, upload and configure: only those hosts are touched.
    let rollout_steps = |validate: &str, upload: &str, configure: &str| {
        format!(
            "name = \"partial\"\n\
             [[steps]]\ntitle = \"Connect\"\ntask = \"connect\"\n\
             [[steps]]\ntitle = \"Gather facts\"\ntask = \"gather_facts\"\n\
             [[steps]]\ntitle = \"Validate\"\ntask = \"validate\"\nhosts = \"{validate}\"\n\
             [[steps]]\ntitle = \"Upload\"\ntask = \"upload\"\nhosts = \"{upload}\"\n\
             [[steps]]\ntitle = \"Configure\"\ntask = \"configure\"\nhosts = \"{configure}\"\n\
             [[steps]]\ntitle = \"Disconnect\"\ntask = \"disconnect\"\n"
        )
    };
    let partial = lab.inventory().with_extension("partial.toml");
    let partial = partial.to_str().unwrap();
    std::fs::write(partial, rollout_steps("server1", "server1", "server1")).unwrap();
    let out = lab
        .consulctl(&["run", partial, "-i", inv, "--output", "json"])
        .success();
    let recap: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let status = |recap: &serde_json::Value, h: &str| {
        recap["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == h)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&recap, "server1"), "changed", "{recap:#}");
    assert_eq!(status(&recap, "server2"), "ok", "{recap:#}");
    lab.exec("server1", &["test", "-x", "/usr/local/bin/consul"])
        .success();
    lab.exec("server1", &["test", "-f", "/etc/consul.d/consul.hcl"])
        .success();
    for path in [
        "/usr/local/bin/consul",
        "/etc/consul.d",
        "/opt/consul",
        "/var/backups/consulctl",
    ] {
        lab.exec("server2", &["test", "!", "-e", path]).success();
    }
    // Nothing left behind on server2 by a step it was not selected for (staging, uploads).
    let tmp = lab
        .exec(
            "server2",
            &["sh", "-c", "ls -d /tmp/consulctl-* 2>/dev/null | wc -l"],
        )
        .success();
    assert_eq!(tmp.out(), "0", "server2 /tmp: {tmp}");

    // Validate and upload everywhere, configure only server2, after a config change that
    // concerns both: server2 gets the binary and its config, server1's config stays as it was.
    let mtime = |h: &str| {
        lab.exec(h, &["stat", "-c", "%Y %s", "/etc/consul.d/consul.hcl"])
            .success()
            .out()
            .to_string()
    };
    let hcl1 = lab
        .exec("server1", &["cat", "/etc/consul.d/consul.hcl"])
        .success()
        .stdout;
    let before1 = mtime("server1");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .parse()
        .unwrap();
    doc["cluster"]["log_level"] = toml_edit::value("DEBUG");
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a changed file gets a new mtime
    std::fs::write(partial, rollout_steps("all", "all", "server2")).unwrap();
    lab.consulctl(&["run", partial, "-i", inv]).success();
    assert_eq!(mtime("server1"), before1, "server1's config was rewritten");
    assert_eq!(
        lab.exec("server1", &["cat", "/etc/consul.d/consul.hcl"])
            .success()
            .stdout,
        hcl1
    );
    assert!(!hcl1.contains("DEBUG"), "{hcl1}");
    lab.exec("server2", &["test", "-x", "/usr/local/bin/consul"])
        .success();
    let hcl2 = lab
        .exec("server2", &["cat", "/etc/consul.d/consul.hcl"])
        .success()
        .stdout;
    assert!(hcl2.contains("\"DEBUG\""), "{hcl2}");

    // `hosts` where it cannot apply is refused before any host is touched: exit 2, naming the
    // playbook file with the line, the step and the key.
    let refused = lab.inventory().with_extension("refused.toml");
    let refused = refused.to_str().unwrap();
    std::fs::write(
        refused,
        rollout_steps("all", "all", "all").replace(
            "[[steps]]\ntitle = \"Disconnect\"",
            "[[steps]]\ntitle = \"Touch\"\ntask = \"command\"\ncommand = [\"touch\", \"/tmp/refused-ran\"]\n\
             [[steps]]\ntitle = \"Check\"\ntask = \"verify\"\nhosts = \"server1\"\n\
             [[steps]]\ntitle = \"Disconnect\"",
        ),
    )
    .unwrap();
    let out = lab.consulctl(&["run", refused, "-i", inv]).code(2);
    assert!(
        out.stderr.contains(&format!(
            "{refused}:27:1: steps[6] (\"Check\"): hosts = \"server1\""
        )),
        "{out}"
    );
    assert!(out.stderr.contains("task = \"verify\""), "{out}");
    for h in ["server1", "server2"] {
        lab.exec(h, &["test", "!", "-e", "/tmp/refused-ran"])
            .success();
    }
}
