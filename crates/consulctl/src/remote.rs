//! Every script consulctl runs on hosts (`src/remote/*.sh`), one constant each, each run as
//! `sh -c SCRIPT sh ARGS...` with every value a separate, escaped argument (`ssh.rs` puts its
//! prelude in front). Scripts that use the shared functions of `src/remote/lib.sh` (`have`,
//! `agent_pid`, `answers`) get it prepended here, at compile time. [`ALL`] lists them all.

pub mod consul;
pub mod masters;
pub mod ssh;

/// `lib.sh` followed by a script: the script as shipped.
macro_rules! with_lib {
    ($file:literal) => {
        concat!(include_str!("remote/lib.sh"), include_str!($file))
    };
}

/// Read-only facts about a host, one round trip; parsed by `consulctl_core::facts::Facts::parse`.
/// Args: BINARY CONFIG_DIR DATA_DIR LOG_DIR SYSTEMD_UNIT [SUPERVISOR_PROGRAM...]. Always exits 0.
pub const FACTS: &str = with_lib!("remote/facts.sh");

/// `consulctl doctor`: read-only evidence about one host's agent (parsed by `doctor::parse_output`;
/// the agent's API answers are read through the API client). Args: 1=init (systemd|supervisord),
/// 2=data dir, 3=log dir (supervisord logs), 4=HTTP address of the local agent (for its port),
/// 5=how many log lines.
pub const DOCTOR: &str = with_lib!("remote/doctor.sh");

/// Install the consul binary from compressed data on stdin.
/// Args: 1=binary path, 2=expected sha256 of the raw binary, 3=install|stage, 4=compression of
/// stdin: gzip|zstd (default gzip).
pub const INSTALL_BINARY: &str = include_str!("remote/install-binary.sh");

/// Stage, validate (`consul validate`) and install managed files from a tar stream on stdin.
/// Args: 1=consul binary, 2=config dir, 3=backup dir, then dirs to create until "--", then four
/// args per file (destination, octal mode, kind, owner), then optionally "--" and managed files
/// to remove. Prints "changed PATH" / "removed PATH".
pub const CONFIGURE: &str = include_str!("remote/configure.sh");

/// Start or reload the consul agent under its init system and wait until it answers locally.
/// Args: 1=init (systemd|supervisord), 2=operation (start|reload), 3=reload-init (0|1),
/// 4=enable (0|1), 5=consul binary, 6=HTTP address (host:port), 7=seconds to wait, 8=log dir.
pub const SERVICE: &str = with_lib!("remote/service.sh");

/// Host preparation. Args: 1=what (disable|peerdns|command), then `disable UNIT...`,
/// `peerdns BACKUP FILE...` or `command ARGV...`.
pub const PREPARE: &str = include_str!("remote/prepare.sh");

/// (Re)start a helper service after its config changed, and check that it runs (exit 4 if not).
/// Args: 1=service (dnsmasq|systemd-resolved|NetworkManager), 2=under supervisord (0|1),
/// 3=supervisord program name.
pub const HELPER_SERVICE: &str = include_str!("remote/helper-service.sh");

/// The agent's system user and the dirs it owns.
/// Args: 1=user, 2=create the user when missing (0|1), then dirs (created when missing; owner
/// USER:USER, mode 0750), then "--" and dirs to chown recursively.
pub const OWN_DIRS: &str = include_str!("remote/own-dirs.sh");

/// Print the named files as a tar stream on stdout (missing ones skipped). Read-only.
/// Args: the files.
pub const READ_FILES: &str = include_str!("remote/read-files.sh");

/// The host lock of consulctl runs (`/var/lib/consulctl/lock`).
/// Args: 1=acquire|takeover|release|show|break, 2=token of this run, 3=seconds after which a
/// lock is stale, 4 (takeover) = token of the stale lock to replace. Holder JSON on stdin.
pub const HOST_LOCK: &str = include_str!("remote/host-lock.sh");

/// Restart the agent and wait until a NEW agent process answers on its HTTP API.
/// Args: 1=init (systemd|supervisord), 2=consul binary, 3=HTTP address (host:port), 4=seconds
/// to wait, 5=log dir (supervisord logs), 6=reload the init system first (0|1), 7=enable (0|1).
pub const RESTART: &str = with_lib!("remote/restart.sh");

/// Put back the last good files (and binary) of a host whose agent did not come up.
/// Args: 1=backup dir of this run, 2=consul binary, 3=restore the binary (0|1), then the paths
/// of the files this run wrote.
pub const RESTORE: &str = include_str!("remote/restore.sh");

/// Take a Consul snapshot through this host's agent and print it on stdout (binary).
/// Args: 1=consul binary, 2=HTTP address of the local agent (host:port).
pub const NODE_SNAPSHOT: &str = include_str!("remote/node-snapshot.sh");

/// Leave the cluster gracefully through this host's agent (config dir moved aside first).
/// Args: 1=consul binary, 2=HTTP address (host:port), 3=config dir, 4=suffix for moved-aside
/// paths (".removed-<UTC timestamp>").
pub const NODE_LEAVE: &str = include_str!("remote/node-leave.sh");

/// Stop the consul agent for good and move its files aside. Nothing is deleted.
/// Args: 1=init (systemd|supervisord), 2=supervisord program file, 3=suffix for moved-aside
/// paths, then the paths to move aside.
pub const NODE_STOP: &str = with_lib!("remote/node-stop.sh");

/// Stop the consul agent and wait until its process is gone (recover).
/// Args: 1=init (systemd|supervisord), 2=data dir. Prints "old_node_id ID", "stopped".
pub const RECOVER_STOP: &str = with_lib!("remote/recover-stop.sh");

/// Move (or copy) the data dir aside, put an empty one in its place, prune old ones.
/// Args: 1=data dir, 2=mode (move|copy), 3=suffix, 4=suffix prefix for pruning, 5=KEEP (>= 1).
pub const RECOVER_DATA: &str = include_str!("remote/recover-data.sh");

/// Write `<data dir>/raft/peers.json` from stdin, owned like the data dir. Args: 1=data dir.
pub const RECOVER_PEERS: &str = include_str!("remote/recover-peers.sh");

/// Print `<data dir>/node-id` (nothing when it is missing). Args: 1=data dir.
pub const READ_NODE_ID: &str = include_str!("remote/read-node-id.sh");

/// Requests to Consul's HTTP API through the local agent, two lines each on stdin.
/// Args: 1=base URL of the local agent (http://127.0.0.1:8500).
pub const API_REQUESTS: &str = include_str!("remote/api-requests.sh");

/// Every script as shipped, by file name.
pub const ALL: &[(&str, &str)] = &[
    ("facts.sh", FACTS),
    ("doctor.sh", DOCTOR),
    ("install-binary.sh", INSTALL_BINARY),
    ("configure.sh", CONFIGURE),
    ("service.sh", SERVICE),
    ("prepare.sh", PREPARE),
    ("helper-service.sh", HELPER_SERVICE),
    ("own-dirs.sh", OWN_DIRS),
    ("read-files.sh", READ_FILES),
    ("host-lock.sh", HOST_LOCK),
    ("restart.sh", RESTART),
    ("restore.sh", RESTORE),
    ("node-snapshot.sh", NODE_SNAPSHOT),
    ("node-leave.sh", NODE_LEAVE),
    ("node-stop.sh", NODE_STOP),
    ("recover-stop.sh", RECOVER_STOP),
    ("recover-data.sh", RECOVER_DATA),
    ("recover-peers.sh", RECOVER_PEERS),
    ("read-node-id.sh", READ_NODE_ID),
    ("api-requests.sh", API_REQUESTS),
];

#[cfg(test)]
mod tests {
    use super::FACTS as SCRIPT;
    use consulctl_core::facts::Facts;
    use consulctl_core::version::Version;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const CONSUL_187_SHA: &str = "a449efb10a03df3cb9310f3a54d933ccda7c4faba4f421f183fc90a82056798e";

    // ---- the script itself, run locally with sh / dash / bash ----------------------------

    fn shells() -> Vec<&'static str> {
        ["sh", "dash", "bash"]
            .into_iter()
            .filter(|s| {
                Command::new(s)
                    .arg("-c")
                    .arg("exit 0")
                    .status()
                    .is_ok_and(|st| st.success())
            })
            .collect()
    }

    fn run_script(shell: &str, args: &[String]) -> (String, String) {
        let out = Command::new(shell)
            .arg("-c")
            .arg(SCRIPT)
            .arg("sh")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: exit {:?}", out.status);
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// (path, size, mode, mtime) of everything under `root`.
    fn snapshot(root: &Path) -> Vec<(PathBuf, u64, u32, std::time::SystemTime)> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = vec![];
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                out.push((
                    e.path(),
                    m.len(),
                    m.permissions().mode(),
                    m.modified().unwrap(),
                ));
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn script_reads_a_tree_with_spaces_quotes_and_missing_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("it's a \"consul\" tree $HOME");
        let cfg = base.join("etc/consul d");
        let logs = base.join("log");
        let data = base.join("no data"); // missing
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::create_dir_all(base.join("bin")).unwrap();
        std::fs::create_dir_all(base.join("sv")).unwrap();
        std::fs::create_dir_all(cfg.join("sub.hcl")).unwrap(); // a dir: not a file fact
        let write = |p: &Path, body: &str, mode: u32| {
            std::fs::write(p, body).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let bin = base.join("bin/consul");
        write(
            &bin,
            "#!/bin/sh\n[ \"$1\" = version ] && printf 'Consul v1.8.7\\nRevision 1\\n'\n",
            0o755,
        );
        let managed = [
            (cfg.join("consul.hcl"), 0o640),
            (cfg.join("a b.json"), 0o600),
            (cfg.join("it's.hcl"), 0o644),
            (cfg.join("we\\ird.hcl"), 0o644),
            (base.join("consul.service"), 0o644),
            (base.join("sv/consul.conf"), 0o644),
        ];
        for (i, (path, mode)) in managed.iter().enumerate() {
            write(path, &format!("file {i}\n"), *mode);
        }
        write(&cfg.join("notes.txt"), "not config\n", 0o644);
        let args: Vec<String> = [
            bin.clone(),
            cfg.clone(),
            data.clone(),
            logs.clone(),
            base.join("consul.service"),
            base.join("sv/consul.conf"),
            base.join("sv.d/consul.ini"), // missing
        ]
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();

        let before = snapshot(tmp.path());
        for shell in shells() {
            let (out, err) = run_script(shell, &args);
            assert_eq!(err, "", "{shell} wrote to stderr");
            let f = Facts::parse(&out).unwrap_or_else(|e| panic!("{shell}: {e:#}\n{out}"));
            let files: Vec<&PathBuf> = f.files.keys().collect();
            let mut want: Vec<&PathBuf> = managed.iter().map(|(p, _)| p).collect();
            want.sort();
            assert_eq!(files, want, "{shell}");
            for (path, mode) in &managed {
                let fact = &f.files[path];
                assert_eq!(
                    fact.sha256,
                    consulctl_core::hash::sha256_file(path).unwrap(),
                    "{shell} {path:?}"
                );
                assert_eq!(fact.mode, format!("{mode:o}"), "{shell} {path:?}");
                assert!(!fact.owner.is_empty() && !fact.group.is_empty());
            }
            assert_eq!(f.dirs.get(&cfg), Some(&true), "{shell}");
            assert_eq!(f.dirs.get(&data), Some(&false), "{shell}");
            assert_eq!(f.dirs.get(&logs), Some(&true), "{shell}");
            let consul = f.consul.as_ref().expect("binary facts");
            assert_eq!(
                consul.sha256,
                consulctl_core::hash::sha256_file(&bin).unwrap()
            );
            assert_eq!(consul.version, Some(Version::new(1, 8, 7)));
            assert!(!f.hostname.is_empty() && !f.pid1.is_empty());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!((f.epoch - now).abs() < 60, "{shell}: epoch {}", f.epoch);
            assert!(f.has_command("tar"), "{shell}: {:?}", f.commands);
        }
        assert_eq!(
            snapshot(tmp.path()),
            before,
            "the facts script changed files"
        );
    }

    #[test]
    fn script_on_a_host_without_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let args: Vec<String> = [
            "bin/consul",
            "etc",
            "data",
            "log",
            "consul.service",
            "sv.conf",
        ]
        .iter()
        .map(|n| {
            tmp.path()
                .join("missing")
                .join(n)
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
        for shell in shells() {
            let (out, err) = run_script(shell, &args);
            assert_eq!(err, "", "{shell} wrote to stderr");
            let f = Facts::parse(&out).unwrap();
            assert_eq!(f.consul, None);
            assert!(f.files.is_empty());
            assert_eq!(f.dirs.len(), 4, "config, data, log and config/tls dirs");
            assert!(f.dirs.values().all(|e| !e));
        }
        assert!(!tmp.path().join("missing").exists());
    }

    #[test]
    fn script_with_too_few_arguments_reports_it() {
        for shell in shells() {
            let (out, _) = run_script(shell, &["/usr/local/bin/consul".to_string()]);
            let e = format!("{:#}", Facts::parse(&out).unwrap_err());
            assert!(
                e.contains("expected at least 5 arguments, got 1"),
                "{shell}: {e}"
            );
        }
    }

    #[test]
    fn script_arguments_are_never_evaluated() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("pwned");
        let evil = format!("$(touch {m}); `touch {m}`; touch {m}", m = marker.display());
        let args: Vec<String> = (0..6).map(|i| format!("{evil} {i}")).collect();
        for shell in shells() {
            let (out, _) = run_script(shell, &args);
            Facts::parse(&out).unwrap();
        }
        assert!(!marker.exists());
    }

    #[test]
    fn script_with_the_real_consul_binary() {
        let bin = Path::new("/work/cache/consul");
        if !bin.exists() {
            eprintln!("skipped: {} not here", bin.display());
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec![bin.to_str().unwrap().to_string()];
        args.extend(
            ["etc", "data", "log", "unit"]
                .iter()
                .map(|n| tmp.path().join(n).to_str().unwrap().to_string()),
        );
        let (out, _) = run_script("sh", &args);
        let f = Facts::parse(&out).unwrap();
        let consul = f.consul.unwrap();
        assert_eq!(consul.sha256, CONSUL_187_SHA);
        assert_eq!(consul.version, Some(Version::new(1, 8, 7)));
    }

    /// Every script of the registry, as shipped (lib.sh prepended where used), passes
    /// `shellcheck -s sh`. Without shellcheck: skipped, except under CI=true where it fails.
    #[test]
    fn every_script_passes_shellcheck() {
        if Command::new("shellcheck")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "shellcheck is missing (CI=true): install it (Debian package shellcheck)"
            );
            eprintln!("skipped: no shellcheck");
            return;
        }
        let mut failed = vec![];
        for (name, script) in super::ALL {
            let mut child = Command::new("shellcheck")
                .args(["-s", "sh", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            let res = child.wait_with_output().unwrap();
            if !res.status.success() {
                failed.push(format!("{name}:\n{}", String::from_utf8_lossy(&res.stdout)));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn registry_holds_every_script_file_once() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/remote");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sh") && n != "lib.sh")
            .collect();
        files.sort();
        let mut names: Vec<String> = super::ALL.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        assert_eq!(names, files);
        for (name, script) in super::ALL {
            let file = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(script.ends_with(&file), "{name} is not its file");
        }
    }
}
