//! ssh_config decides what the inventory leaves out: an inventory that names no SSH user, port
//! or key, with `ssh.config_file` pointing at an ssh_config that gives User, Port, IdentityFile
//! and a ProxyJump through another lab host.

use serde_json::Value;

use crate::harness::{run, Lab, LabInit};

/// The sshd log of a lab host, wherever its init keeps it (supervisord's file or the journal).
fn sshd_log(lab: &Lab, host: &str) -> String {
    lab.exec(
        host,
        &[
            "sh",
            "-c",
            "cat /var/log/supervisor/sshd.log 2>/dev/null; \
             journalctl -u ssh -u sshd --no-pager 2>/dev/null; true",
        ],
    )
    .success()
    .stdout
}

#[test]
fn ssh_config_gives_user_port_key_and_proxyjump_when_the_inventory_does_not() {
    let lab = Lab::new("sshcfg")
        .servers(1)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let server = lab.host("server1").address.clone();
    let client = lab.host("client1").address.clone();
    let dir = lab.inventory().with_extension("sshcfg.d");
    std::fs::create_dir_all(&dir).unwrap();

    // client1: a second sshd on port 2222 that admits only connections coming from server1's
    // address, so logging in there at all proves the jump through server1.
    lab.exec(
        "client1",
        &[
            "/usr/sbin/sshd",
            "-p",
            "2222",
            "-o",
            &format!("AllowUsers root@{server} deploy@{server}"),
            "-o",
            "LogLevel=VERBOSE",
            "-E",
            "/var/log/sshd-2222.log",
        ],
    )
    .success();
    assert!(
        crate::harness::wait_until(10, || lab
            .exec("client1", &["sh", "-c", "ss -ltn | grep -q ':2222 '"])
            .ok()),
        "the second sshd listens on 2222"
    );
    // Direct from here it is refused (the control: without the jump it cannot work).
    let key = lab.identity_file().to_str().unwrap().to_string();
    let direct = run(
        "ssh",
        &[
            "-i",
            &key,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-p",
            "2222",
            &format!("root@{client}"),
            "true",
        ],
    );
    assert!(
        !direct.ok(),
        "port 2222 must refuse direct logins\n{direct}"
    );

    // known_hosts: the lab's, plus client1's keys under [addr]:2222 (same host keys).
    let lab_kh = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let mut kh = lab_kh.clone();
    for line in lab_kh.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{client} ")) {
            kh.push_str(&format!("[{client}]:2222 {rest}\n"));
        }
    }
    let kh_path = dir.join("known_hosts");
    std::fs::write(&kh_path, kh).unwrap();

    let config = format!(
        "Host {server}\n    User deploy\n    Port 22\n\n\
         Host {client}\n    User root\n    Port 2222\n    ProxyJump {server}\n\n\
         Host *\n    IdentityFile {key}\n    IdentitiesOnly yes\n    BatchMode yes\n    \
         StrictHostKeyChecking yes\n    UserKnownHostsFile {kh}\n    \
         GlobalKnownHostsFile /dev/null\n",
        kh = kh_path.display()
    );
    std::fs::write(dir.join("ssh_config"), &config).unwrap();

    // The inventory: the lab's without any user, port, identity file or known_hosts.
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    let ssh = doc["ssh"].as_table_mut().unwrap();
    for k in ["user", "port", "identity_file", "known_hosts"] {
        ssh.remove(k);
    }
    // Relative to the inventory's directory.
    let relative = format!("{}/ssh_config", dir.file_name().unwrap().to_str().unwrap());
    ssh["config_file"] = toml_edit::value(relative);
    for h in doc["hosts"].as_array_of_tables_mut().unwrap().iter_mut() {
        h.remove("ssh");
    }
    let inv = lab.inventory().with_extension("sshcfg.toml");
    std::fs::write(&inv, doc.to_string()).unwrap();
    let inv_text = doc.to_string();
    for k in ["user", "port", "identity_file", "known_hosts", "jump"] {
        assert!(
            !inv_text.contains(&format!("{k} =")),
            "the inventory names no {k}:\n{inv_text}"
        );
    }
    let inv_str = inv.to_str().unwrap();

    // Only what this run logs counts.
    let before = sshd_log(&lab, "server1").lines().count();
    let started = std::time::Instant::now();
    let out = lab.consulctl(&["apply", "-i", inv_str, "--output", "json"]);
    eprintln!(
        "apply through ssh_config: exit {:?} in {:.1}s",
        out.code,
        started.elapsed().as_secs_f64()
    );
    let out = out.success();
    let recap: Value = serde_json::from_str(&out.stdout).expect("JSON recap");
    assert_eq!(recap["verify"]["healthy"], true, "{recap:#}");

    // Consul itself: both members alive, server1 the leader.
    let alive = lab.alive_members("server1");
    assert!(
        alive.iter().any(|m| m == "server1") && alive.iter().any(|m| m == "client1"),
        "alive members: {alive:?}"
    );
    let leader = lab.consul_api("client1", "/v1/status/leader");
    assert!(leader.contains(&format!("{server}:8300")), "{leader}");

    // The jump: client1's port-2222 sshd saw root log in from server1's address.
    let log2222 = lab
        .exec("client1", &["cat", "/var/log/sshd-2222.log"])
        .success()
        .stdout;
    assert!(
        log2222.contains(&format!("Accepted publickey for root from {server}")),
        "client1:2222 sshd log:\n{log2222}"
    );
    // ssh_config's User on server1: deploy (through sudo), the jump as deploy too.
    let log1: String = sshd_log(&lab, "server1")
        .lines()
        .skip(before)
        .map(|l| format!("{l}\n"))
        .collect();
    let deploy_logins = log1
        .lines()
        .filter(|l| l.contains("Accepted publickey for deploy from"))
        .count();
    assert!(deploy_logins >= 2, "server1 sshd log:\n{log1}");
    assert!(
        !log1.contains("Accepted publickey for root from"),
        "nothing logged in to server1 as root:\n{log1}"
    );
    eprintln!(
        "MEASURED deploy logins on server1: {deploy_logins}; root logins on client1:2222 from \
         server1: {}",
        log2222
            .lines()
            .filter(|l| l.contains("Accepted publickey for root"))
            .count()
    );

    // A second apply through the same config changes nothing.
    let again = lab
        .consulctl(&["apply", "-i", inv_str, "--output", "json"])
        .success();
    let recap: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(recap["totals"]["changed"], 0, "{recap:#}");
}
