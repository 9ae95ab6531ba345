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

// ---- where the inventory comes from: -i > CONSULCTL_INVENTORY > ./consulctl.toml -----------
//
// `plan` on UNREACHABLE fails at SSH (exit 1, "1 of 1 hosts failed"): the inventory was found
// and loaded. A file that is not TOML fails with exit 2 naming it: that one was read.

/// Not an inventory: loading it is exit 2, naming the file.
const BROKEN: &str = "[cluster\n";

/// `CONSULCTL_INVENTORY=""` counts as unset, so the outer environment cannot leak in.
const NO_ENV: (&str, &str) = ("CONSULCTL_INVENTORY", "");

#[test]
fn inventory_flag_wins_over_env_and_consulctl_toml() {
    Test::unreachable()
        .file("env.toml", BROKEN)
        .file("consulctl.toml", BROKEN)
        .env("CONSULCTL_INVENTORY", "env.toml")
        .args(["plan", "-i", "inventory.toml"])
        .status(1)
        .stderr_contains("1 of 1 hosts failed")
        .run();
}

#[test]
fn inventory_env_wins_over_consulctl_toml() {
    Test::new()
        .file("env.toml", UNREACHABLE)
        .file("ssh_config", SSH_CONFIG)
        .file("consulctl.toml", BROKEN)
        .env("CONSULCTL_INVENTORY", "env.toml")
        .args(["plan"])
        .status(1)
        .stderr_contains("1 of 1 hosts failed")
        .run();
    // and it is the file read: a broken one is named
    Test::unreachable()
        .file("env.toml", BROKEN)
        .env("CONSULCTL_INVENTORY", "env.toml")
        .args(["plan"])
        .status(2)
        .stderr_contains("env.toml:")
        .run();
}

#[test]
fn consulctl_toml_in_the_current_directory_is_found() {
    Test::new()
        .file("consulctl.toml", UNREACHABLE)
        .file("ssh_config", SSH_CONFIG)
        .env(NO_ENV.0, NO_ENV.1)
        .args(["plan"])
        .status(1)
        .stderr_contains("1 of 1 hosts failed")
        .run();
    Test::new()
        .file("consulctl.toml", BROKEN)
        .env(NO_ENV.0, NO_ENV.1)
        .args(["plan", "-o", "json"])
        .status(2)
        .stderr_contains("consulctl.toml:")
        .run();
}

#[test]
fn no_inventory_anywhere_is_exit_2_naming_the_three_ways() {
    for (cmd, usage) in [
        (&["plan"][..], "plan"),
        (&["catalog", "service", "web"], "catalog service"),
        (&["node", "remove", "c1"], "node remove"),
    ] {
        Test::new()
            .env(NO_ENV.0, NO_ENV.1)
            .args(cmd)
            .status(2)
            .stderr_contains(
                "error: no inventory: give -i/--inventory <FILE>, set CONSULCTL_INVENTORY, \
                 or put consulctl.toml in the current directory",
            )
            .stderr_contains(&format!("Usage: consulctl {usage} "))
            .no_new_files::<[&str; 0], &str>([])
            .run();
    }
}

#[test]
fn a_missing_inventory_names_what_named_it() {
    Test::new()
        .env("CONSULCTL_INVENTORY", "gone.toml")
        .args(["plan"])
        .status(2)
        .stderr_contains(
            "error: gone.toml: cannot read the inventory named by CONSULCTL_INVENTORY: ",
        )
        .no_new_files::<[&str; 0], &str>([])
        .run();
    Test::new()
        .env("CONSULCTL_INVENTORY", "gone.toml")
        .args(["status", "-i", "nope.toml"])
        .status(2)
        .stderr_contains("error: nope.toml: cannot read the inventory given with -i/--inventory: ")
        .no_new_files::<[&str; 0], &str>([])
        .run();
}

#[test]
fn commands_without_an_inventory_need_none() {
    Test::new()
        .env(NO_ENV.0, NO_ENV.1)
        .args(["completions", "bash"])
        .stdout_contains("_consulctl")
        .run();
    Test::new()
        .env(NO_ENV.0, NO_ENV.1)
        .args(["lab", "down", "--help"])
        .stdout_contains("Usage: consulctl lab down")
        .run();
}

// ---- examples, completions, man pages ------------------------------------------------------

#[test]
fn help_ends_with_examples() {
    for cmd in [
        &[][..],
        &["apply"],
        &["catalog"],
        &["catalog", "service"],
        &["service", "register"],
        &["inventory", "import", "ansible"],
    ] {
        let out = Test::new()
            .args(cmd.iter().copied().chain(["--help"]))
            .stdout_contains("\nExamples:\n  consulctl ")
            .run();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let examples: Vec<&str> = stdout
            .split("\nExamples:\n")
            .nth(1)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(examples.len() >= 2, "{stdout}");
        let prefix = format!("  consulctl {}", cmd.join(" "));
        assert!(
            examples.iter().all(|l| l.starts_with(prefix.trim_end())),
            "{stdout}"
        );
    }
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _consulctl"),
        ("zsh", "#compdef consulctl"),
        ("fish", "complete -c consulctl"),
        ("elvish", "edit:completion:arg-completer[consulctl]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        Test::new()
            .args(["completions", shell])
            .stdout_contains(marker)
            .stdout_contains("catalog")
            .no_new_files::<[&str; 0], &str>([])
            .run();
    }
    Test::new()
        .args(["completions", "tcsh"])
        .status(2)
        .stderr_contains("invalid value 'tcsh'")
        .run();
}

#[test]
fn man_writes_a_page_per_command_with_examples() {
    let out_dir = tempfile::tempdir().unwrap();
    let dir = out_dir.path().join("man1");
    let shown = dir.display().to_string();
    let out = Test::new()
        .args(["man", "--dir", &shown])
        .stdout_contains(&format!("{shown}/consulctl.1\n"))
        .stdout_contains(&format!("{shown}/consulctl-apply.1\n"))
        .stdout_contains(&format!("{shown}/consulctl-catalog-service.1\n"))
        .no_new_files::<[&str; 0], &str>([])
        .run();
    let printed = String::from_utf8_lossy(&out.stdout).lines().count();
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(printed, written.len(), "{written:?}");
    assert!(written.len() > 30, "{written:?}");
    assert!(!written.iter().any(|n| n.contains("help")), "{written:?}");
    let page = std::fs::read_to_string(dir.join("consulctl-catalog-service.1")).unwrap();
    for part in [
        ".TH consulctl-catalog-service 1 ",
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        "\\fB\\-\\-health\\fR",
        ".SH EXAMPLES",
        "consulctl catalog service web \\-\\-tag http \\-\\-health passing\n",
    ] {
        assert!(page.contains(part), "no {part:?} in\n{page}");
    }
}

// ---- inventory check, schema, import ansible: the file alone, no SSH ----------------------

/// A file of the repository, by its path from the workspace root.
fn repo_file(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn ansible_fixture(name: &str) -> String {
    std::fs::read_to_string(repo_file(&format!(
        "crates/consulctl-core/tests/fixtures/ansible/{name}"
    )))
    .unwrap()
}

#[test]
fn inventory_check_accepts_the_shipped_examples() {
    for (file, summary) in [
        (
            "inventory/example.toml",
            "valid: cluster example (datacenter dc1), 3 servers, 2 clients, 0 services, no warnings",
        ),
        (
            "inventory/example-production.toml",
            "valid: cluster upyun (datacenter upyun), 3 servers, 3 clients, 5 services",
        ),
    ] {
        let path = repo_file(file);
        Test::new()
            .args(["inventory", "check", "-i", &path])
            .stdout_contains(summary)
            .no_new_files::<[&str; 0], &str>([])
            .run();
    }
    Test::new()
        .args(["inventory", "check", "-o", "json", "-i"])
        .args([repo_file("inventory/example.toml")])
        .json(|v| {
            assert_eq!(
                keys(v),
                [
                    "valid",
                    "inventory",
                    "cluster",
                    "datacenter",
                    "servers",
                    "clients",
                    "services",
                    "warnings"
                ]
            );
            assert_eq!(v["valid"], true);
            assert_eq!(v["servers"][0]["name"], "server1");
            assert_eq!(v["servers"][0]["address"], "10.0.10.11");
            assert_eq!(v["clients"].as_array().unwrap().len(), 2);
            assert_eq!(v["warnings"], Value::Array(vec![]));
        })
        .run();
}

#[test]
fn inventory_check_fails_on_bad_inventories_with_every_place() {
    let many = repo_file("crates/consulctl-core/tests/fixtures/inventory/many-errors.toml");
    for output in ["text", "json"] {
        Test::new()
            .args(["inventory", "check", "-o", output, "-i", &many])
            .status(2)
            .stderr_matches("error: 9 problems in */many-errors.toml:")
            .stderr_matches("  */many-errors.toml:5:14: cluster.datacenter = \"Up Yun\": *")
            .stderr_matches("  */many-errors.toml:15:8: hosts[0].role = \"master\": *")
            .stderr_matches("  */many-errors.toml:21:16: hosts[1].ssh.port = 0: *")
            .no_new_files::<[&str; 0], &str>([])
            .run();
    }
    let services = repo_file("crates/consulctl-core/tests/fixtures/inventory/services-errors.toml");
    Test::new()
        .args(["inventory", "check", "-i", &services])
        .status(2)
        .stderr_matches("error: * problems in */services-errors.toml:")
        .stderr_matches("  */services-errors.toml:13:*: dns.nameservers[1] = \"ns1.example\": *")
        .stderr_matches(
            "  */services-errors.toml:20:*: prepare.disable_services[1] = \"rpc bind\": *",
        )
        .no_new_files::<[&str; 0], &str>([])
        .run();
    Test::unreachable()
        .inventory(&unreachable_with("role = \"server\"", "role = \"leader\""))
        .args(["inventory", "check", "-i", "inventory.toml"])
        .status(2)
        .stderr_matches("error: inventory.toml:*: hosts[0].role = \"leader\": expected one of *")
        .run();
}

#[test]
fn inventory_check_never_connects_and_writes_nothing() {
    // The unreachable cluster passes, with no ssh to be found on PATH: check runs none.
    // Generated secrets stay in memory: no secrets file, no TLS dir, no log.
    let secrets = unreachable_with(
        "datacenter = \"dc1\"\n",
        "datacenter = \"dc1\"\nencrypt = \"auto\"\nacl = true\ntls = \"auto\"\n",
    );
    for inventory in [UNREACHABLE.to_owned(), secrets] {
        Test::unreachable()
            .inventory(&inventory)
            .env("PATH", "/nonexistent")
            .args(["inventory", "check", "-i", "inventory.toml"])
            .stdout_contains(
                "inventory.toml: valid: cluster dc1 (datacenter dc1), 1 server, 0 clients",
            )
            .no_new_files::<[&str; 0], &str>([])
            .run();
    }
}

#[test]
fn inventory_schema_prints_a_json_schema() {
    Test::new()
        .args(["inventory", "schema"])
        .json(|v| {
            assert_eq!(v["$schema"], "http://json-schema.org/draft-07/schema#");
            assert_eq!(v["additionalProperties"], false);
            assert!(v["properties"]["hosts"]["description"].is_string());
            assert_eq!(v["definitions"]["host"]["required"][2], "role");
        })
        .no_new_files::<[&str; 0], &str>([])
        .run();
}

/// `inventory import ansible` of `name` (put in the temp dir) with `extra` arguments; the
/// TOML it printed.
fn import_ansible(name: &str, extra: &[&str], files: &[(&str, &str)]) -> String {
    let mut t = Test::new().file(name, &ansible_fixture(name));
    for (rel, text) in files {
        t = t.file(rel, text);
    }
    let out = t
        .args(["inventory", "import", "ansible", name])
        .args(extra)
        .stdout_contains("[[hosts]]")
        .no_new_files::<[&str; 0], &str>([])
        .run();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inventory_import_ansible_prints_what_check_accepts() {
    let ini = import_ansible("hosts.ini", &[], &[]);
    assert!(ini.starts_with(
        "# Imported from the Ansible inventory hosts.ini by `consulctl inventory import ansible`\n"
    ));
    assert!(ini.contains("name = \"db1\"\naddress = \"10.0.1.31\"\nrole = \"client\"\n"));
    Test::new()
        .inventory(&ini)
        .args(["inventory", "check", "-i", "inventory.toml"])
        .stdout_contains("valid: cluster dc1 (datacenter dc1), 3 servers, 3 clients")
        .run();
    let yaml = import_ansible("hosts.yml", &["--clients-group", "consul_clients"], &[]);
    Test::new()
        .inventory(&yaml)
        .args(["inventory", "check", "-i", "inventory.toml"])
        .stdout_contains("valid: cluster dc1 (datacenter dc1), 3 servers, 3 clients")
        .run();
    // A warning for what is left out, on stderr.
    Test::new()
        .file("hosts.ini", &ansible_fixture("hosts.ini"))
        .args(["inventory", "import", "ansible", "hosts.ini"])
        .stderr_matches(
            "warning: hosts.ini: ansible_ssh_private_key_file (set for *) is not imported; *",
        )
        .run();
}

#[test]
fn inventory_import_ansible_keeps_a_base_and_writes_out_once() {
    // The unreachable inventory as the base: its ssh_config (a relative path) resolves from
    // the same directory, its [ssh] user is what the hosts inherit, its hosts are gone.
    let base = ["--base", "inventory.toml"];
    let imported = import_ansible(
        "lab.ini",
        &base,
        &[("inventory.toml", UNREACHABLE), ("ssh_config", SSH_CONFIG)],
    );
    assert!(
        imported.contains("config_file = \"ssh_config\""),
        "{imported}"
    );
    assert!(!imported.contains("name = \"s1\""), "{imported}");
    assert_eq!(
        imported.matches("ssh = { user = \"deploy\" }").count(),
        2,
        "{imported}"
    );
    Test::unreachable()
        .file("imported.toml", &imported)
        .args(["inventory", "check", "-i", "imported.toml"])
        .stdout_contains("valid: cluster dc1 (datacenter dc1), 2 servers, 2 clients")
        .run();
    let out = Test::unreachable()
        .file("lab.ini", &ansible_fixture("lab.ini"))
        .args([
            "inventory",
            "import",
            "ansible",
            "lab.ini",
            "--out",
            "imported.toml",
        ])
        .args(base)
        .stderr_contains("wrote imported.toml: 2 servers, 2 clients from lab.ini")
        .no_new_files(["imported.toml"])
        .run();
    assert!(out.stdout.is_empty());
    Test::unreachable()
        .file("lab.ini", &ansible_fixture("lab.ini"))
        .file("imported.toml", "keep me\n")
        .args([
            "inventory",
            "import",
            "ansible",
            "lab.ini",
            "--out",
            "imported.toml",
        ])
        .status(2)
        .stderr_contains("error: imported.toml: already exists;")
        .run();
}

#[test]
fn inventory_import_ansible_bad_files_exit_2_with_lines() {
    Test::new()
        .file("bad.ini", &ansible_fixture("bad.ini"))
        .args(["inventory", "import", "ansible", "bad.ini"])
        .status(2)
        .stderr_contains("error: 4 problems in bad.ini:\n")
        .stderr_matches("  bad.ini:5: both: in both consul_servers and consul_clients: *")
        .stderr_matches("  bad.ini:9: noaddr: no address: *")
        .stderr_matches("  bad.ini:10: S1: the same name as `s1` (line 4) ignoring case; *")
        .no_new_files::<[&str; 0], &str>([])
        .run();
    Test::new()
        .file("hosts.yml", &ansible_fixture("hosts.yml"))
        .args([
            "inventory",
            "import",
            "ansible",
            "hosts.yml",
            "--servers-group",
            "servers",
        ])
        .status(2)
        .stderr_contains(
            "error: hosts.yml: no group `servers` for the servers (--servers-group); its \
             groups: `consul_servers`, `consul_clients`, `es`, `rack1`",
        )
        .run();
    Test::new()
        .file("hosts.yml", "all:\n  hosts: [a, b]\n")
        .args(["inventory", "import", "ansible", "hosts.yml"])
        .status(2)
        .stderr_contains("error: hosts.yml:2: all: hosts: expected a mapping of host names")
        .run();
}
