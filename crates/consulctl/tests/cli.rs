//! The `consulctl` binary from the outside, without Docker and without any host answering:
//! inventory errors, usage errors, and the JSON shapes of commands whose hosts all fail.
//!
//! Every test builds a [`Test`]: a temp dir holding `inventory.toml` and any extra files, the
//! arguments, the environment, then what the run must show (exit status, stdout, stderr, JSON,
//! files left behind). `run()` runs the built binary in the temp dir and checks it all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// An inventory whose one server is 127.0.0.1 on a closed port (1), through an ssh_config that
/// fails fast (no prompts, short timeout), so every SSH connection is refused at once.
const UNREACHABLE: &str = r#"[cluster]
datacenter = "dc1"

[consul]
version = "1.21.0"
source = { package = "auto" }

[ssh]
user = "nobody"
port = 1
config_file = "ssh_config"

[[hosts]]
name = "s1"
address = "127.0.0.1"
role = "server"
"#;

const SSH_CONFIG: &str = "Host *\n  ConnectTimeout 2\n  BatchMode yes\n  StrictHostKeyChecking yes\n  UserKnownHostsFile /dev/null\n  ControlMaster no\n";

type JsonCheck = Box<dyn Fn(&Value)>;

/// A run of the binary and what it must show. Built fluently, checked by [`Test::run`].
struct Test {
    dir: tempfile::TempDir,
    /// Paths (relative to `dir`) the test put there.
    files: BTreeSet<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    status: i32,
    stdout_contains: Vec<String>,
    stderr_contains: Vec<String>,
    stderr_matches: Vec<String>,
    json: Option<JsonCheck>,
    /// `Some(patterns)`: after the run the dir holds only the test's files and files whose
    /// relative path matches one of the patterns (`*` within a path component).
    no_new_files: Option<Vec<String>>,
}

impl Test {
    fn new() -> Self {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            files: BTreeSet::new(),
            args: vec![],
            env: vec![],
            status: 0,
            stdout_contains: vec![],
            stderr_contains: vec![],
            stderr_matches: vec![],
            json: None,
            no_new_files: None,
        }
    }

    /// A cluster nothing can reach: [`UNREACHABLE`] and its `ssh_config`.
    fn unreachable() -> Self {
        Test::new()
            .inventory(UNREACHABLE)
            .file("ssh_config", SSH_CONFIG)
    }

    /// `inventory.toml` in the temp dir.
    fn inventory(self, text: &str) -> Self {
        self.file("inventory.toml", text)
    }

    /// Any file, relative to the temp dir (parent dirs are made).
    fn file(mut self, rel: &str, text: &str) -> Self {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        self.files.insert(PathBuf::from(rel));
        self
    }

    fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    fn status(mut self, status: i32) -> Self {
        self.status = status;
        self
    }

    fn stdout_contains(mut self, s: &str) -> Self {
        self.stdout_contains.push(s.to_string());
        self
    }

    fn stderr_contains(mut self, s: &str) -> Self {
        self.stderr_contains.push(s.to_string());
        self
    }

    /// Some line of stderr matches `pattern` whole, `*` matching any run of characters.
    fn stderr_matches(mut self, pattern: &str) -> Self {
        self.stderr_matches.push(pattern.to_string());
        self
    }

    /// Stdout is one JSON document, and `check` accepts it.
    fn json(mut self, check: impl Fn(&Value) + 'static) -> Self {
        self.json = Some(Box::new(check));
        self
    }

    /// After the run the temp dir holds only what the test put there and files matching
    /// `allowed` (relative paths, `*` within a component).
    fn no_new_files<I, S>(mut self, allowed: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.no_new_files = Some(
            allowed
                .into_iter()
                .map(|a| a.as_ref().to_string())
                .collect(),
        );
        self
    }

    fn run(self) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_consulctl"));
        cmd.current_dir(self.dir.path())
            .args(&self.args)
            .env_remove("CONSULCTL_DEBUG_LOG")
            .env_remove("CONSULCTL_TEMPLATES")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run consulctl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let what = format!(
            "consulctl {}\n--- stdout\n{stdout}--- stderr\n{stderr}---",
            self.args.join(" ")
        );
        assert_eq!(
            out.status.code(),
            Some(self.status),
            "exit status of {what}"
        );
        for s in &self.stdout_contains {
            assert!(stdout.contains(s), "stdout lacks {s:?}: {what}");
        }
        for s in &self.stderr_contains {
            assert!(stderr.contains(s), "stderr lacks {s:?}: {what}");
        }
        for p in &self.stderr_matches {
            assert!(
                stderr.lines().any(|l| glob(p, l)),
                "no stderr line matches {p:?}: {what}"
            );
        }
        if let Some(check) = &self.json {
            let v: Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {what}"));
            check(&v);
        }
        if let Some(allowed) = &self.no_new_files {
            let new: Vec<String> = walk(self.dir.path())
                .into_iter()
                .filter(|p| !self.files.contains(p))
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| !allowed.iter().any(|a| glob_path(a, p)))
                .collect();
            assert!(new.is_empty(), "new files {new:?} after {what}");
        }
        out
    }
}

/// Files and empty dirs under `root`, relative to it.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut empty = true;
        for e in std::fs::read_dir(&dir).unwrap() {
            empty = false;
            let path = e.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
        if empty && dir != root {
            out.push(dir.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

/// `text` matches `pattern` whole; `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().unwrap();
    let Some(mut text) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return text.is_empty();
    };
    for part in middle {
        match text.find(part) {
            Some(i) => text = &text[i + part.len()..],
            None => return false,
        }
    }
    text.len() >= last.len() && text.ends_with(last)
}

/// Like [`glob`], per path component (`*` never crosses a `/`).
fn glob_path(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = path.split('/').collect();
    p.len() == t.len() && p.iter().zip(&t).all(|(p, t)| glob(p, t))
}

/// The keys of a JSON object, in order.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// `UNREACHABLE` with `edit` applied: (old line, new lines).
fn unreachable_with(old: &str, new: &str) -> String {
    assert!(UNREACHABLE.contains(old), "{old:?} not in the inventory");
    UNREACHABLE.replacen(old, new, 1)
}

// ---- the builder itself -----------------------------------------------------------------

#[test]
fn glob_matches_whole_text_with_stars() {
    assert!(glob("a*c", "abbbc"));
    assert!(glob("*", ""));
    assert!(glob("a:*:*: x", "a:1:2: x"));
    assert!(!glob("a*c", "abcd"));
    assert!(!glob("abc", "ab"));
    assert!(!glob("a*bc", "abc_"));
    assert!(glob_path(
        ".consulctl/*/logs/*.log",
        ".consulctl/dc1/logs/plan-1.log"
    ));
    assert!(!glob_path("*.log", "a/b.log"));
}

// ---- help, version, usage ---------------------------------------------------------------

#[test]
fn help_exits_0() {
    Test::new()
        .args(["--help"])
        .stdout_contains("Usage: consulctl")
        .stdout_contains("plan")
        .stdout_contains("doctor")
        .run();
}

#[test]
fn command_help_exits_0() {
    for cmd in ["apply", "plan", "status", "doctor", "restart", "unlock"] {
        Test::new()
            .args([cmd, "--help"])
            .stdout_contains(&format!("Usage: consulctl {cmd}"))
            .stdout_contains("--inventory <FILE>")
            .stdout_contains("--accept-new-host-keys")
            .run();
    }
    for cmd in [
        &["recover"][..],
        &["node", "remove"],
        &["keys", "rotate"],
        &["tls", "renew"],
    ] {
        Test::new()
            .args(cmd.iter().copied().chain(["--help"]))
            .stdout_contains("--inventory <FILE>")
            .stdout_contains("--accept-new-host-keys")
            .run();
    }
}

#[test]
fn version_exits_0() {
    Test::new()
        .args(["--version"])
        .stdout_contains(&format!("consulctl {}", env!("CARGO_PKG_VERSION")))
        .run();
}

#[test]
fn missing_inventory_flag_is_a_usage_error() {
    Test::new()
        .args(["plan"])
        .status(2)
        .stderr_contains("--inventory <FILE>")
        .stderr_contains("Usage: consulctl plan")
        .no_new_files::<[&str; 0], &str>([])
        .run();
}

#[test]
fn unknown_command_and_flag_are_usage_errors() {
    Test::new()
        .args(["bogus"])
        .status(2)
        .stderr_contains("unrecognized subcommand 'bogus'")
        .run();
    Test::unreachable()
        .args(["status", "-i", "inventory.toml", "--bogus"])
        .status(2)
        .stderr_contains("unexpected argument '--bogus'")
        .run();
    Test::unreachable()
        .args(["plan", "-i", "inventory.toml", "-o", "yaml"])
        .status(2)
        .stderr_contains("invalid value 'yaml'")
        .run();
    Test::unreachable()
        .args(["plan", "-i", "inventory.toml", "--concurrency", "0"])
        .status(2)
        .stderr_contains("--concurrency")
        .run();
}

// ---- bad inventories: exit 2, file:line:col and the key ---------------------------------

#[test]
fn inventory_syntax_error() {
    Test::new()
        .inventory("[cluster]\ndatacenter = \"dc1\n")
        .args(["plan", "-i", "inventory.toml"])
        .status(2)
        .stderr_matches("error: inventory.toml:2:18: TOML syntax error: *")
        .no_new_files::<[&str; 0], &str>([])
        .run();
}

#[test]
fn inventory_unknown_key() {
    Test::unreachable()
        .inventory(&unreachable_with(
            "datacenter = \"dc1\"\n",
            "datacenter = \"dc1\"\nlog_levl = \"INFO\"\n",
        ))
        .args(["status", "-i", "inventory.toml"])
        .status(2)
        .stderr_matches(
            "error: inventory.toml:3:1: cluster.log_levl: unknown key; did you mean \"log_level\"?*",
        )
        .no_new_files::<[&str; 0], &str>([])
        .run();
}

#[test]
fn inventory_wrong_type() {
    Test::unreachable()
        .inventory(&unreachable_with("port = 1\n", "port = \"one\"\n"))
        .args(["doctor", "-i", "inventory.toml"])
        .status(2)
        .stderr_contains(
            "inventory.toml:10:8: ssh.port = \"one\": expected an integer from 1 to 65535",
        )
        .run();
}

#[test]
fn inventory_duplicate_host() {
    let text = format!(
        "{UNREACHABLE}\n[[hosts]]\nname = \"s1\"\naddress = \"127.0.0.2\"\nrole = \"server\"\n"
    );
    Test::unreachable()
        .inventory(&text)
        .args(["plan", "-i", "inventory.toml", "-o", "json"])
        .status(2)
        .stderr_matches("error: inventory.toml:19:8: hosts[1].name = \"s1\": duplicate host name, already used by hosts[0] (line 14)*")
        .run();
}

#[test]
fn inventory_bad_selector() {
    let text = format!("{UNREACHABLE}\n[[services]]\nname = \"web\"\non = \"s1,db9\"\nport = 80\n");
    Test::unreachable()
        .inventory(&text)
        .args(["plan", "-i", "inventory.toml"])
        .status(2)
        .stderr_matches(
            "*inventory.toml:20:6: services[0].on = \"s1,db9\": no host is named `db9`*",
        )
        .run();
}

#[test]
fn bad_limit_names_the_term_and_the_hosts() {
    Test::unreachable()
        .args(["plan", "-i", "inventory.toml", "--limit", "nope"])
        .status(2)
        .stderr_contains("--limit term `nope` matches no host; host names: s1")
        .no_new_files::<[&str; 0], &str>([])
        .run();
}

#[test]
fn inventory_bad_cidr() {
    Test::unreachable()
        .inventory(&unreachable_with(
            "datacenter = \"dc1\"\n",
            "datacenter = \"dc1\"\nbind_cidr = \"10.0.0.0/33\"\n",
        ))
        .args(["plan", "-i", "inventory.toml"])
        .status(2)
        .stderr_contains("inventory.toml:3:13: cluster.bind_cidr = \"10.0.0.0/33\": expected a network in CIDR notation")
        .run();
}

#[test]
fn inventory_missing_source_file() {
    Test::unreachable()
        .inventory(&unreachable_with(
            "source = { package = \"auto\" }\n",
            "source = { file = \"dist/consul.zip\" }\n",
        ))
        .args(["plan", "-i", "inventory.toml"])
        .status(2)
        .stderr_matches(
            "*inventory.toml:6:19: consul.source.file = \"dist/consul.zip\": file not found: */dist/consul.zip*",
        )
        .run();
}

#[test]
fn inventory_missing_ssh_config_file() {
    Test::new()
        .inventory(UNREACHABLE)
        .args(["status", "-i", "inventory.toml"])
        .status(2)
        .stderr_matches("*inventory.toml:*:*: ssh.config_file = \"ssh_config\": *not found*")
        .run();
}

#[test]
fn missing_inventory_file() {
    Test::new()
        .args(["plan", "-i", "nope.toml"])
        .status(2)
        .stderr_contains("error: nope.toml: cannot read the inventory")
        .no_new_files::<[&str; 0], &str>([])
        .run();
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = unreachable_with("port = 1\n", "port = 0\n").replacen(
        "role = \"server\"",
        "role = \"master\"",
        1,
    );
    Test::unreachable()
        .inventory(&text)
        .args(["plan", "-i", "inventory.toml"])
        .status(2)
        .stderr_contains("2 problems in inventory.toml")
        .stderr_contains("inventory.toml:10:8: ssh.port = 0")
        .stderr_contains("inventory.toml:16:8: hosts[0].role = \"master\"")
        .run();
}

// ---- JSON output with every host failing ------------------------------------------------

const SSH_ERROR: &str = "cannot connect to nobody@127.0.0.1:1";

#[test]
fn plan_json_with_an_unreachable_host() {
    Test::unreachable()
        .args(["plan", "-i", "inventory.toml", "-o", "json"])
        .status(1)
        .stderr_contains("1 of 1 hosts failed")
        .json(|v| {
            assert_eq!(keys(v), ["hosts", "totals", "duration_ms", "debug_log"]);
            let hosts = v["hosts"].as_array().unwrap();
            assert_eq!(hosts.len(), 1);
            let h = &hosts[0];
            assert_eq!(
                keys(h),
                ["name", "status", "actions", "notes", "files", "failed"]
            );
            assert_eq!(h["name"], "s1");
            assert_eq!(h["status"], "failed");
            assert_eq!(h["actions"], Value::Array(vec![]));
            assert_eq!(h["notes"], Value::Array(vec![]));
            assert_eq!(h["files"], Value::Array(vec![]));
            assert_eq!(keys(&h["failed"]), ["phase", "error"]);
            assert_eq!(h["failed"]["phase"], "connect");
            assert!(
                h["failed"]["error"].as_str().unwrap().contains(SSH_ERROR),
                "{h}"
            );
            assert_eq!(
                keys(&v["totals"]),
                ["hosts", "to_change", "unchanged", "failed"]
            );
            assert_eq!(v["totals"]["hosts"], 1);
            assert_eq!(v["totals"]["to_change"], 0);
            assert_eq!(v["totals"]["unchanged"], 0);
            assert_eq!(v["totals"]["failed"], 1);
            assert!(v["duration_ms"].is_u64());
            assert!(v["debug_log"]
                .as_str()
                .unwrap()
                .starts_with(".consulctl/dc1/logs/plan-"));
        })
        .no_new_files([".consulctl/dc1/logs/plan-*.log"])
        .run();
}

#[test]
fn status_json_with_an_unreachable_host() {
    Test::unreachable()
        .args(["status", "-i", "inventory.toml", "-o", "json"])
        .status(1)
        .stderr_contains("cluster not healthy: no agent answered")
        .json(|v| {
            assert_eq!(
                keys(v),
                [
                    "datacenter",
                    "healthy",
                    "problems",
                    "leader",
                    "raft_peers",
                    "members",
                    "hosts"
                ]
            );
            assert_eq!(v["datacenter"], "dc1");
            assert_eq!(v["healthy"], false);
            assert_eq!(v["problems"], serde_json::json!(["no agent answered"]));
            assert!(v["leader"].is_null());
            assert_eq!(v["raft_peers"], Value::Array(vec![]));
            assert_eq!(v["members"], Value::Array(vec![]));
            let hosts = v["hosts"].as_array().unwrap();
            assert_eq!(hosts.len(), 1);
            let h = &hosts[0];
            assert_eq!(
                keys(h),
                [
                    "name",
                    "role",
                    "init",
                    "reachable",
                    "agent_running",
                    "pid",
                    "version",
                    "error"
                ]
            );
            assert_eq!(h["name"], "s1");
            assert_eq!(h["role"], "server");
            assert_eq!(h["init"], "systemd");
            assert_eq!(h["reachable"], false);
            assert_eq!(h["agent_running"], false);
            assert!(h["pid"].is_null());
            assert!(h["version"].is_null());
            let err = h["error"].as_str().unwrap();
            assert!(
                err.starts_with("connect: ") && err.contains(SSH_ERROR),
                "{err}"
            );
        })
        .no_new_files([".consulctl/dc1/logs/status-*.log"])
        .run();
}

#[test]
fn doctor_json_with_an_unreachable_host() {
    Test::unreachable()
        .args(["doctor", "-i", "inventory.toml", "-o", "json"])
        .status(1)
        .stderr_contains("1 problem found")
        .json(|v| {
            assert_eq!(keys(v), ["healthy", "findings", "hosts", "debug_log"]);
            assert_eq!(v["healthy"], false);
            let findings = v["findings"].as_array().unwrap();
            assert_eq!(findings.len(), 1);
            let f = &findings[0];
            assert_eq!(keys(f), ["code", "hosts", "evidence", "cause", "fix"]);
            assert_eq!(f["code"], "unreachable");
            assert_eq!(f["hosts"], serde_json::json!(["s1"]));
            let evidence = f["evidence"].as_array().unwrap();
            assert_eq!(evidence.len(), 1);
            let e = evidence[0].as_str().unwrap();
            assert!(
                e.starts_with("s1: SSH failed: ") && e.contains(SSH_ERROR),
                "{e}"
            );
            assert!(f["cause"].is_string());
            let fix = f["fix"].as_array().unwrap();
            assert_eq!(fix.len(), 1);
            assert!(fix[0].as_str().unwrap().starts_with("s1 (127.0.0.1)"));
            let hosts = v["hosts"].as_array().unwrap();
            assert_eq!(hosts.len(), 1);
            let h = &hosts[0];
            assert_eq!(
                keys(h),
                [
                    "name",
                    "reachable",
                    "agent_pid",
                    "init_state",
                    "leader",
                    "members_alive"
                ]
            );
            assert_eq!(h["name"], "s1");
            assert_eq!(h["reachable"], false);
            for k in ["agent_pid", "init_state", "leader", "members_alive"] {
                assert!(h[k].is_null(), "{k}: {h}");
            }
            assert!(v["debug_log"]
                .as_str()
                .unwrap()
                .starts_with(".consulctl/dc1/logs/doctor-"));
        })
        .no_new_files([".consulctl/dc1/logs/doctor-*.log"])
        .run();
}

#[test]
fn debug_log_flag_and_env_put_the_log_where_asked() {
    Test::unreachable()
        .args([
            "plan",
            "-i",
            "inventory.toml",
            "-o",
            "json",
            "--debug-log",
            "debug.log",
        ])
        .status(1)
        .json(|v| assert_eq!(v["debug_log"], "debug.log"))
        .no_new_files(["debug.log"])
        .run();
    Test::unreachable()
        .args(["doctor", "-i", "inventory.toml", "-o", "json"])
        .env("CONSULCTL_DEBUG_LOG", "env.log")
        .status(1)
        .json(|v| assert_eq!(v["debug_log"], "env.log"))
        .no_new_files(["env.log"])
        .run();
}

// ---- read-only commands leave nothing behind --------------------------------------------

fn leaves_nothing_but_the_debug_log(inventory: &str) {
    for cmd in ["plan", "status", "doctor"] {
        for output in ["text", "json"] {
            Test::unreachable()
                .inventory(inventory)
                .args([
                    cmd,
                    "-i",
                    "inventory.toml",
                    "-o",
                    output,
                    "--debug-log",
                    "debug.log",
                ])
                .status(1)
                .no_new_files(["debug.log"])
                .run();
            Test::unreachable()
                .inventory(inventory)
                .args([cmd, "-i", "inventory.toml", "-o", output])
                .status(1)
                .no_new_files([format!(".consulctl/dc1/logs/{cmd}-*.log")])
                .run();
        }
    }
}

#[test]
fn plan_status_doctor_leave_no_new_files() {
    leaves_nothing_but_the_debug_log(UNREACHABLE);
}

#[test]
fn plan_status_doctor_leave_no_new_files_with_generated_secrets() {
    leaves_nothing_but_the_debug_log(&unreachable_with(
        "datacenter = \"dc1\"\n",
        "datacenter = \"dc1\"\nencrypt = \"auto\"\nacl = true\n",
    ));
}

#[test]
fn plan_status_doctor_leave_no_new_files_with_generated_secrets_and_tls_auto() {
    leaves_nothing_but_the_debug_log(&unreachable_with(
        "datacenter = \"dc1\"\n",
        "datacenter = \"dc1\"\nencrypt = \"auto\"\nacl = true\ntls = \"auto\"\n",
    ));
}
