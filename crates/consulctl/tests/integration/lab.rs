//! `consulctl lab up|down` itself: the hosts are reachable the way the inventory says.

use crate::harness::{
    consulctl, labelled_containers, labelled_networks, unique_name, Lab, LabInit,
};

#[test]
fn lab_hosts_accept_ssh_for_root_and_sudo_user() {
    let lab = Lab::new("ssh")
        .servers(1)
        .clients(1)
        .init(LabInit::Mixed)
        .up();

    let inits: Vec<(&str, &str)> = lab
        .hosts()
        .iter()
        .map(|h| (h.name.as_str(), h.init.as_str()))
        .collect();
    assert_eq!(
        inits,
        [("server1", "systemd"), ("client1", "supervisord")],
        "mixed alternates the init system"
    );

    for host in ["server1", "client1"] {
        let root = lab.ssh("root", host, "id -u").success();
        assert_eq!(root.out(), "0", "root on {host}");
        let deploy = lab.ssh("deploy", host, "id -un && sudo -n id -u").success();
        assert_eq!(deploy.out(), "deploy\n0", "deploy + sudo on {host}");
        // Password authentication is off: without the key the server offers nothing else.
        let address = lab.host(host).address.clone();
        let kh = format!("UserKnownHostsFile={}", lab.known_hosts().display());
        crate::harness::run(
            "ssh",
            &[
                "-o",
                "BatchMode=yes",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                &kh,
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                &format!("root@{address}"),
                "true",
            ],
        )
        .failure()
        .contains("Permission denied (publickey)");
    }

    // systemd host: systemd is PID 1 and the system finished booting.
    let pid1 = lab.ssh("root", "server1", "cat /proc/1/comm").success();
    assert_eq!(pid1.out(), "systemd");
    let state = lab
        .ssh("root", "server1", "systemctl is-system-running || true")
        .success();
    assert!(
        matches!(state.out(), "running" | "degraded"),
        "is-system-running: {state}"
    );
    let sup = lab
        .ssh("root", "server1", "systemctl is-active supervisor || true")
        .success();
    assert_eq!(
        sup.out(),
        "inactive",
        "the systemd host runs no supervisord"
    );

    // supervisord host: supervisord is PID 1 and supervisorctl talks to it.
    let pid1 = lab
        .ssh("root", "client1", "cat /proc/1/cmdline | tr '\\0' ' '")
        .success();
    assert!(pid1.out().contains("supervisord"), "PID 1: {pid1}");
    let status = lab
        .ssh("deploy", "client1", "sudo -n supervisorctl status sshd")
        .success();
    assert!(status.out().contains("RUNNING"), "supervisorctl: {status}");

    // Host keys are per container, not baked into the image.
    let k1 = lab
        .exec("server1", &["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        .success();
    let k2 = lab
        .exec("client1", &["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        .success();
    assert_ne!(k1.out(), k2.out());

    // Strict host key checking really is strict: an unknown host key is refused.
    let empty_kh = lab.inventory().with_extension("empty_known_hosts");
    std::fs::write(&empty_kh, "").unwrap();
    let address = lab.host("server1").address.clone();
    let out = crate::harness::run(
        "ssh",
        &[
            "-i",
            lab.identity_file().to_str().unwrap(),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", empty_kh.display()),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            &format!("root@{address}"),
            "true",
        ],
    );
    let _ = std::fs::remove_file(&empty_kh);
    out.failure().contains("Host key verification failed");
}

#[test]
fn lab_down_removes_everything_and_is_idempotent() {
    let mut lab = Lab::new("down")
        .servers(1)
        .clients(1)
        .init(LabInit::Supervisord)
        .up();
    let name = lab.name().to_owned();
    let inventory = lab.inventory().to_path_buf();
    let state_dir = lab.identity_file().parent().unwrap().to_path_buf();
    assert_eq!(lab.containers().len(), 2);
    assert_eq!(lab.networks().len(), 1);
    assert!(inventory.exists() && state_dir.exists());

    // A second `lab up` with the same name is refused, naming the way out.
    consulctl(&["lab", "up", "--no-apply", "--name", &name])
        .code(2)
        .contains(&format!("consulctl lab down --name {name}"));

    lab.down().success();
    assert!(labelled_containers(&name).is_empty(), "containers left");
    assert!(labelled_networks(&name).is_empty(), "networks left");
    assert!(
        !inventory.exists(),
        "inventory left: {}",
        inventory.display()
    );
    assert!(!state_dir.exists(), "state left: {}", state_dir.display());

    consulctl(&["lab", "down", "--name", &name])
        .success()
        .contains("nothing to remove");
}

#[test]
fn lab_up_refuses_bad_flags_before_touching_docker() {
    let name = unique_name("bad");
    consulctl(&["lab", "up", "--no-apply", "--name", &name, "--servers", "0"])
        .code(2)
        .contains("--servers");
    consulctl(&["lab", "up", "--no-apply", "--name", "Bad_Name"])
        .code(2)
        .contains("invalid lab name");
    consulctl(&[
        "lab",
        "up",
        "--no-apply",
        "--name",
        &name,
        "--clients",
        "300",
    ])
    .code(2)
    .contains("do not fit");
    consulctl(&[
        "lab",
        "up",
        "--no-apply",
        "--name",
        &name,
        "--servers",
        "1",
        "--clients",
        "1",
        "--docker-hosts",
        "client1,client9",
    ])
    .code(2)
    .contains("--docker-hosts: this lab has no host \"client9\" (its hosts: server1, client1)");
    consulctl(&[
        "lab",
        "up",
        "--no-apply",
        "--name",
        &name,
        "--servers",
        "1",
        "--clients",
        "1",
        "--lb-hosts",
        "client9",
    ])
    .code(2)
    .contains("--lb-hosts: this lab has no host \"client9\" (its hosts: server1, client1)");
    assert!(labelled_containers(&name).is_empty());
    assert!(labelled_networks(&name).is_empty());
}
