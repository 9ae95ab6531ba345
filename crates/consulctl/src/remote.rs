//! The scripts consulctl runs on hosts (`src/remote/*.sh`), each run as `sh -c SCRIPT sh ARGS...`
//! with every value a separate, escaped argument.

/// Read-only facts about a host; parsed by `consulctl_core::facts::Facts::parse`.
pub const FACTS: &str = include_str!("remote/facts.sh");

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

    #[test]
    fn script_passes_shellcheck_when_available() {
        let Ok(out) = Command::new("shellcheck")
            .args(["-s", "sh", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("skipped: no shellcheck");
            return;
        };
        use std::io::Write;
        let mut child = out;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(SCRIPT.as_bytes())
            .unwrap();
        let res = child.wait_with_output().unwrap();
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stdout)
        );
    }
}
