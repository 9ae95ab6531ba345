//! `consulctl restart` against real lab hosts (issue 3, acceptance 4): servers one at a time,
//! followers first and the leader last, clients in batches; what Consul reports before and
//! after, what the init systems ran (PIDs), and what an application next to an agent saw
//! meanwhile (`probe.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Lab, LabInit, Out};
use crate::probe::Probe;

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn pids(lab: &Lab) -> BTreeMap<String, String> {
    lab.consul_pids()
}

fn leader_host(lab: &Lab, via: &str) -> String {
    lab.leader_host(via)
}

/// `rolling restart step` lines of the debug log: (host, role, was_leader), in order.
fn logged_steps(log: &Path) -> Vec<(String, String, bool)> {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    text.lines()
        .filter(|l| l.contains("rolling restart step"))
        .map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .unwrap_or_else(|| panic!("no {k}= in {l}"))
                    .trim_matches('"')
                    .to_string()
            };
            (field("host"), field("role"), field("was_leader") == "true")
        })
        .collect()
}

fn steps(out: &Value) -> &Vec<Value> {
    out["steps"].as_array().expect("steps")
}

fn step_hosts(out: &Value) -> Vec<&str> {
    steps(out)
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect()
}

#[test]
fn restart_rolls_followers_first_and_the_leader_last_without_losing_the_cluster() {
    let lab = Lab::new("rroll")
        .servers(3)
        .clients(2)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    lab.consulctl(&["apply", "-i", inv])
        .success()
        .contains("cluster healthy");
    let leader_before = leader_host(&lab, "server1");
    assert_eq!(leader_host(&lab, "server3"), leader_before);
    let before = pids(&lab);
    let log = lab.inventory().with_extension("restart.log");
    let log_str = log.to_str().unwrap();

    let probe = Probe::start(&lab, "client1");
    std::thread::sleep(Duration::from_secs(2));
    let out = lab.consulctl(&[
        "--debug-log",
        log_str,
        "restart",
        "-i",
        inv,
        "--output",
        "json",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let report = probe.stop();
    eprintln!(
        "restart probe (client1, whole roll incl. client1's own restart): {}",
        report.summary()
    );
    eprintln!(
        "MEASURED longest_gap_without_leader={:.2}s write_ratio={:.3} ({}/{})",
        report.longest_gap_without_leader.as_secs_f64(),
        report.write_ratio(),
        report.writes_ok,
        report.writes_total
    );
    let out = out.success();
    let result = json(&out);
    // The leader handover bounded from above: from the moment the old leader's restart was
    // issued to the first probe sample naming a leader again (another server, or the same one
    // re-elected after a window without a leader).
    let old_leader = format!("{}:8300", lab.host(&leader_before).address);
    let leader_step = steps(&result)
        .iter()
        .find(|s| s["host"] == leader_before.as_str())
        .expect("the leader's step");
    let issued = leader_step["started_unix_ms"].as_i64().unwrap();
    let handover_ms = report
        .leader_back_at(issued, &old_leader)
        .map(|t| t - issued);
    eprintln!(
        "MEASURED leader_handover_upper_bound={} (restart of {leader_before} issued -> probe names a leader again)",
        handover_ms.map(|ms| format!("{:.2}s", ms as f64 / 1000.0)).unwrap_or_else(|| "never".into())
    );

    // Order: followers first, the leader (as Consul reported it before) last.
    assert_eq!(
        result["leader_before"],
        leader_before.as_str(),
        "{result:#}"
    );
    let hosts = step_hosts(&result);
    assert_eq!(hosts.len(), 5, "{result:#}");
    let servers: Vec<&Value> = steps(&result)
        .iter()
        .filter(|s| s["role"] == "server")
        .collect();
    assert_eq!(servers.len(), 3, "{result:#}");
    assert!(
        steps(&result)[..3].iter().all(|s| s["role"] == "server"),
        "servers before clients: {hosts:?}"
    );
    assert_eq!(hosts[2], leader_before, "the leader goes last: {hosts:?}");
    assert!(!hosts[..2].contains(&leader_before.as_str()), "{hosts:?}");
    assert_eq!(servers[2]["was_leader"], true, "{result:#}");
    assert!(servers[..2].iter().all(|s| s["was_leader"] == false));
    // One server at a time: each started after the previous one was back.
    for w in steps(&result)[..3].windows(2) {
        assert!(
            w[1]["started_unix_ms"].as_i64() >= w[0]["finished_unix_ms"].as_i64(),
            "{w:#?}"
        );
    }
    // The debug log proves the same order.
    let logged = logged_steps(&log);
    assert_eq!(
        logged
            .iter()
            .map(|(h, _, _)| h.as_str())
            .collect::<Vec<_>>(),
        hosts,
        "debug log {log_str}"
    );
    assert_eq!(
        logged
            .iter()
            .filter(|(_, role, _)| role == "server")
            .map(|(h, _, l)| (h.as_str(), *l))
            .next_back(),
        Some((leader_before.as_str(), true))
    );

    // Every agent really restarted: new PIDs, and the engine saw the same old ones.
    let after = pids(&lab);
    for s in steps(&result) {
        let h = s["host"].as_str().unwrap();
        assert_eq!(s["ok"], true, "{s}");
        assert_eq!(s["pid_before"], before[h].as_str(), "{s}");
        assert_eq!(s["pid_after"], after[h].as_str(), "{s}");
    }
    for h in lab.hosts() {
        assert_ne!(before[&h.name], after[&h.name], "{} not restarted", h.name);
    }
    assert_eq!(result["totals"]["changed"], 5, "{result:#}");
    assert_eq!(result["verify"]["healthy"], true, "{result:#}");

    // What an application next to client1 saw.
    assert!(report.samples > 50, "{}", report.summary());
    assert!(
        report.longest_gap_without_leader <= Duration::from_secs(5),
        "{}",
        report.summary()
    );
    assert!(report.write_ratio() >= 0.95, "{}", report.summary());
    let handover_ms =
        handover_ms.expect("the probe never saw the old leader go and a leader come back");
    assert!(handover_ms <= 5000, "leader handover took {handover_ms} ms");

    // Consul afterwards: 3 voters, 5 alive members.
    lab.assert_cluster_whole(3, 5);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn restart_batches_clients_in_order_and_refuses_bad_flags() {
    let lab = Lab::new("rbatch")
        .servers(1)
        .clients(3)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    lab.consulctl(&["apply", "-i", inv]).success();
    let before = pids(&lab);

    // Bad flags: exit 2, naming the flag and what is allowed, before any host is touched.
    for bad in ["0", "abc", "150%"] {
        lab.consulctl(&["restart", "-i", inv, "--batch", bad])
            .code(2)
            .contains("--batch")
            .contains("1% to 100%");
    }
    lab.consulctl(&["restart", "-i", inv, "--step-timeout", "0"])
        .code(2)
        .contains("--step-timeout");
    assert_eq!(pids(&lab), before, "a refused run restarted an agent");

    // An unhealthy cluster (client3's agent stopped): nothing is restarted, every host is
    // reported "not restarted" with Consul's finding, exit 1.
    let (stop, start): (&[&str], &[&str]) = match lab.host("client3").init.as_str() {
        "systemd" => (
            &["systemctl", "stop", "consul"],
            &["systemctl", "start", "consul"],
        ),
        _ => (
            &["supervisorctl", "stop", "consul"],
            &["supervisorctl", "start", "consul"],
        ),
    };
    lab.exec("client3", stop).success();
    let out = lab
        .consulctl(&[
            "restart",
            "-i",
            inv,
            "--step-timeout",
            "5",
            "--output",
            "json",
        ])
        .code(1);
    let result = json(&out);
    assert!(steps(&result).is_empty(), "{result:#}");
    let stopped = result["stopped"].as_str().expect("stopped");
    assert!(
        stopped.contains("not healthy before restarting server1") && stopped.contains("client3"),
        "{stopped}"
    );
    for h in result["hosts"].as_array().unwrap() {
        assert_eq!(h["status"], "failed", "{h}");
        assert!(
            h["error"].as_str().unwrap().starts_with("not restarted:"),
            "{h}"
        );
    }
    lab.exec("client3", start).success();
    let unchanged = pids(&lab);
    for h in ["server1", "client1", "client2"] {
        assert_eq!(
            unchanged[h], before[h],
            "{h} restarted although the cluster was unhealthy"
        );
    }
    let before = unchanged;

    // --batch 1, clients only: one client at a time, in inventory order; the server untouched.
    let out = lab
        .consulctl(&[
            "restart",
            "-i",
            inv,
            "--limit",
            "role:client",
            "--batch",
            "1",
            "--output",
            "json",
        ])
        .success();
    let result = json(&out);
    assert_eq!(
        step_hosts(&result),
        ["client1", "client2", "client3"],
        "{result:#}"
    );
    assert_eq!(result["batch_size"], 1);
    for (i, s) in steps(&result).iter().enumerate() {
        assert_eq!(s["batch"], i + 1, "{s}");
        assert_eq!(s["ok"], true, "{s}");
    }
    for w in steps(&result).windows(2) {
        assert!(
            w[1]["started_unix_ms"].as_i64() >= w[0]["finished_unix_ms"].as_i64(),
            "batches overlap: {w:#?}"
        );
    }
    let mid = pids(&lab);
    assert_eq!(
        mid["server1"], before["server1"],
        "--limit role:client restarted the server"
    );
    for c in ["client1", "client2", "client3"] {
        assert_ne!(mid[c], before[c], "{c} not restarted");
    }

    // --batch 2 over everything: the server first, then [client1, client2] together, then client3.
    let out = lab
        .consulctl(&["restart", "-i", inv, "--batch", "2", "--output", "json"])
        .success();
    let result = json(&out);
    assert_eq!(
        step_hosts(&result),
        ["server1", "client1", "client2", "client3"],
        "{result:#}"
    );
    let s = steps(&result);
    assert_eq!(s[0]["was_leader"], true, "a single server is the leader");
    assert_eq!(
        [&s[1]["batch"], &s[2]["batch"], &s[3]["batch"]],
        [1, 1, 2],
        "{result:#}"
    );
    // The batch ran concurrently: each started before the other was back ...
    assert!(s[1]["started_unix_ms"].as_i64() < s[2]["finished_unix_ms"].as_i64());
    assert!(s[2]["started_unix_ms"].as_i64() < s[1]["finished_unix_ms"].as_i64());
    // ... and the next batch only after both.
    for prev in [&s[1], &s[2]] {
        assert!(s[3]["started_unix_ms"].as_i64() >= prev["finished_unix_ms"].as_i64());
    }
    let after = pids(&lab);
    for h in lab.hosts() {
        assert_ne!(after[&h.name], mid[&h.name], "{} not restarted", h.name);
    }
    lab.assert_cluster_whole(1, 4);
}
