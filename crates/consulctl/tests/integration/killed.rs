//! A killed run blocks nothing: `apply` killed with SIGKILL early (host locks just taken),
//! mid-upload and during the start of the servers; each time one plain `apply` afterwards
//! takes over the dead run's locks, stops the ssh connections it left, and rolls out a healthy
//! cluster (exit 0, no manual step). What is checked is read from the hosts, Consul and /proc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Lab, LabInit, Out, CONSULCTL};

/// `apply` started in the background, its stderr (the phase titles) and debug log in files.
struct Killable {
    child: Child,
    stderr: PathBuf,
    log: PathBuf,
}

impl Killable {
    fn start(lab: &Lab, tag: &str) -> Killable {
        let stderr = lab.inventory().with_extension(format!("{tag}.stderr"));
        let log = lab.inventory().with_extension(format!("{tag}.log"));
        let child = Command::new(CONSULCTL)
            .env("TMPDIR", tmp_dir(lab))
            .args(["--debug-log", log.to_str().unwrap()])
            .args(["apply", "-i", lab.inventory_str()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("starting apply");
        Killable { child, stderr, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn text(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Polls (every 50 ms) until `f(stderr, debug log)` holds; panics after `secs`.
    fn wait_for(&mut self, what: &str, secs: u64, f: impl Fn(&str, &str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if f(&Self::text(&self.stderr), &Self::text(&self.log)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "apply ended ({status}) before {what}\n--- stderr ---\n{}",
                    Self::text(&self.stderr)
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {secs}s\n--- stderr ---\n{}",
                Self::text(&self.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap it.
    fn kill(mut self) -> (u32, String) {
        let pid = self.pid();
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
        (pid, Self::text(&self.stderr))
    }
}

/// This test's own temp dir for consulctl (`TMPDIR`): its runs keep their ssh control sockets
/// there, out of sight of the consulctl runs of tests running beside it (which would otherwise
/// clean up the masters the killed runs left before this test looks at them).
fn tmp_dir(lab: &Lab) -> PathBuf {
    // Short: ssh's control socket paths must fit a Unix socket address (108 bytes).
    let dir = std::env::temp_dir().join(format!("c-{}", lab.name()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn consulctl_in_tmp(lab: &Lab, args: &[&str]) -> Out {
    crate::harness::consulctl_in_tmp(args, &tmp_dir(lab))
}

/// The ssh processes (ControlMasters and their sessions) of the run with this PID: their
/// arguments name its control directory `consulctl-ssh-<pid>-...`.
fn ssh_processes_of(pid: u32) -> Vec<String> {
    let needle = format!("consulctl-ssh-{pid}-");
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if !p
            .file_name()
            .to_str()
            .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()))
        {
            continue;
        }
        let Ok(raw) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_ssh = args
            .first()
            .is_some_and(|a| a.rsplit('/').next() == Some("ssh"));
        if is_ssh && args.iter().any(|a| a.contains(&needle)) {
            found.push(format!(
                "{}: {}",
                p.file_name().to_string_lossy(),
                args.join(" ")
            ));
        }
    }
    found
}

/// The hosts that carry a consulctl host lock right now.
fn locked_hosts(lab: &Lab) -> Vec<String> {
    lab.hosts()
        .iter()
        .filter(|h| {
            lab.exec(&h.name, &["test", "-d", "/var/lib/consulctl/lock"])
                .ok()
        })
        .map(|h| h.name.clone())
        .collect()
}

/// The sha256 of the consul binary on every host.
fn binary_shas(lab: &Lab) -> Vec<String> {
    lab.hosts()
        .iter()
        .map(|h| {
            lab.exec(&h.name, &["sha256sum", "/usr/local/bin/consul"])
                .success()
                .out()
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// After a kill: the dead run left host locks and ssh processes (else there is nothing to
/// recover from); one plain `apply` then succeeds, takes the locks over with a warning and
/// leaves no lock and no ssh process of the dead run.
fn recover_after_kill(lab: &Lab, moment: &str, pid: u32) {
    let locked = locked_hosts(lab);
    let left = ssh_processes_of(pid);
    eprintln!(
        "MEASURED {moment}: killed pid {pid}; host locks left on {locked:?}; {} ssh processes left",
        left.len()
    );
    assert!(
        !locked.is_empty(),
        "{moment}: the killed run left no host lock"
    );
    assert!(
        !left.is_empty(),
        "{moment}: the killed run left no ssh ControlMaster (nothing to clean up)"
    );
    let started = Instant::now();
    let out = consulctl_in_tmp(lab, &["apply", "-i", lab.inventory_str()]);
    eprintln!(
        "MEASURED {moment}: recovery apply exit {:?} in {:.1}s",
        out.code,
        started.elapsed().as_secs_f64()
    );
    let out = out
        .success()
        .contains("cluster healthy")
        .contains("taking over a stale lock");
    assert!(
        out.stderr.contains("taking over a stale host lock"),
        "{moment}: the host locks were taken over with a warning\n{out}"
    );
    assert!(
        out.stderr
            .contains("ssh connection(s) left by a killed consulctl run"),
        "{moment}: the dead run's ssh masters were stopped\n{out}"
    );
    assert!(!out.stderr.contains("is locked by"), "{out}");
    lab.assert_cluster_whole(3, 5);
    assert_eq!(
        locked_hosts(lab),
        Vec::<String>::new(),
        "{moment}: locks released"
    );
    let left = ssh_processes_of(pid);
    assert!(
        left.is_empty(),
        "{moment}: ssh processes of the killed run are left:\n{}",
        left.join("\n")
    );
}

#[test]
fn apply_killed_early_mid_upload_and_during_start_is_recovered_by_the_next_apply() {
    let lab = Lab::new("killed")
        .servers(3)
        .clients(2)
        .init(LabInit::Mixed)
        .up();

    // 1. Early, on fresh hosts: as soon as the host locks are taken.
    let mut run = Killable::start(&lab, "kill-early");
    run.wait_for("a host lock", 120, |_, log| log.contains("lock host"));
    let (pid, stderr) = run.kill();
    assert!(!stderr.contains("==> Configure"), "{stderr}");
    recover_after_kill(&lab, "early", pid);
    let mut killed = vec![pid];

    // A rebuilt binary (another checksum) for the next two runs to upload and restart with.
    let dir = lab.inventory().with_extension("killed.d");
    std::fs::create_dir_all(&dir).unwrap();
    let original = dir.join("consul-original");
    lab.docker(&[
        "cp",
        &format!("{}:/usr/local/bin/consul", lab.container("server1")),
        original.to_str().unwrap(),
    ])
    .success();
    let rebuilt = |tag: &str| -> PathBuf {
        let mut bytes = std::fs::read(&original).unwrap();
        bytes.extend_from_slice(format!("\nconsulctl-test-rebuild-{tag}\n").as_bytes());
        let path = dir.join(format!("consul-{tag}"));
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    let use_binary = |path: &Path| {
        let text = std::fs::read_to_string(lab.inventory()).unwrap();
        let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
        let mut source = toml_edit::InlineTable::new();
        source.insert("file", path.to_str().unwrap().into());
        doc["consul"]["source"] = toml_edit::value(source);
        std::fs::write(lab.inventory(), doc.to_string()).unwrap();
    };

    // 2. Mid-upload: the upload phase has begun, configure has not.
    let before = binary_shas(&lab);
    use_binary(&rebuilt("a"));
    let mut run = Killable::start(&lab, "kill-upload");
    run.wait_for("the upload phase", 300, |err, _| err.contains("==> Upload"));
    std::thread::sleep(Duration::from_millis(300));
    let (pid, stderr) = run.kill();
    assert!(
        !stderr.contains("==> Configure"),
        "killed after the upload:\n{stderr}"
    );
    recover_after_kill(&lab, "mid-upload", pid);
    killed.push(pid);
    let after = binary_shas(&lab);
    assert!(
        after.iter().zip(&before).all(|(a, b)| a != b),
        "every host runs the rebuilt binary: {before:?} -> {after:?}"
    );

    // 3. During the start of the servers (agents restarting onto another rebuilt binary).
    use_binary(&rebuilt("b"));
    let mut run = Killable::start(&lab, "kill-start");
    run.wait_for("the start phase", 300, |err, _| {
        err.contains("==> Start servers")
    });
    std::thread::sleep(Duration::from_millis(500));
    let (pid, stderr) = run.kill();
    assert!(
        !stderr.contains("==> Verify"),
        "killed after start:\n{stderr}"
    );
    recover_after_kill(&lab, "during start", pid);
    killed.push(pid);

    // Nothing left to do, nothing left running of the three killed runs.
    let out = consulctl_in_tmp(
        &lab,
        &["apply", "-i", lab.inventory_str(), "--output", "json"],
    )
    .success();
    let recap: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(recap["totals"]["changed"], 0, "{recap:#}");
    assert_eq!(recap["totals"]["failed"], 0, "{recap:#}");
    for pid in killed {
        assert_eq!(ssh_processes_of(pid), Vec::<String>::new(), "pid {pid}");
    }
    lab.assert_cluster_whole(3, 5);

    // A lock held from another machine is never taken over: the host is reported with its
    // holder and the command that breaks the lock; `unlock` breaks it.
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let plant = |host: &str, holder: &Value, token: &str| {
        lab.exec_stdin(
            host,
            &[
                "sh",
                "-c",
                "mkdir -p /var/lib/consulctl/lock && cat > /var/lib/consulctl/lock/holder \
                 && printf '%s\\n' \"$0\" > /var/lib/consulctl/lock/token",
                token,
            ],
            &format!("{holder}\n"),
        )
        .success();
    };
    let foreign = serde_json::json!({
        "user": "ops", "host": "elsewhere-ctl", "pid": 4242, "command": "apply",
        "started": "2026-01-01T00:00:00Z", "token": "elsewhere-4242",
    });
    plant("client2", &foreign, "elsewhere-4242");
    // Something to change on client2, so this run wants its lock.
    lab.exec(
        "client2",
        &[
            "sh",
            "-c",
            "echo '# edited by hand' >> /etc/consul.d/consul.hcl",
        ],
    )
    .success();
    let out = consulctl_in_tmp(
        &lab,
        &[
            "apply",
            "-i",
            lab.inventory_str(),
            "--output",
            "json",
            "--verify-timeout",
            "20",
        ],
    )
    .code(1);
    let recap: Value = serde_json::from_str(&out.stdout).unwrap();
    let failed: Vec<&Value> = recap["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{recap:#}");
    assert_eq!(failed[0]["name"], "client2", "{recap:#}");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("ops@elsewhere-ctl (pid 4242")
            && error.contains("consulctl unlock -i INVENTORY --limit client2"),
        "{error}"
    );
    assert!(!error.contains('\r'), "{error:?}");
    assert!(locked_hosts(&lab).contains(&"client2".to_string()));
    // unlock refuses a lock whose process runs here (this test process), breaks the foreign one.
    let live = serde_json::json!({
        "user": "ops", "host": here, "pid": std::process::id(), "command": "apply",
        "started": chrono_now(), "token": "live-here",
    });
    plant("client1", &live, "live-here");
    let out = consulctl_in_tmp(
        &lab,
        &[
            "unlock",
            "-i",
            lab.inventory_str(),
            "--limit",
            "client1,client2",
        ],
    );
    eprintln!("unlock:\n{out}");
    let out = out.code(1);
    assert!(
        out.stdout
            .contains("client2: broke the lock held by ops@elsewhere-ctl (pid 4242"),
        "{out}"
    );
    assert!(out.stdout.contains("client1: locked by"), "{out}");
    assert!(out.stdout.contains("still runs on this machine"), "{out}");
    assert_eq!(locked_hosts(&lab), vec!["client1".to_string()]);
    lab.exec("client1", &["rm", "-rf", "/var/lib/consulctl/lock"])
        .success();
    // Then the change goes through.
    let out = consulctl_in_tmp(
        &lab,
        &["apply", "-i", lab.inventory_str(), "--output", "json"],
    )
    .success();
    let recap: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(recap["totals"]["failed"], 0, "{recap:#}");
    assert_eq!(locked_hosts(&lab), Vec::<String>::new());
    lab.assert_cluster_whole(3, 5);
    let _ = std::fs::remove_dir_all(tmp_dir(&lab));
}

/// Now as RFC 3339 (UTC), from `date` (the test crate has no chrono).
fn chrono_now() -> String {
    crate::harness::run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .success()
        .out()
        .to_string()
}
