//! Execute a host's plan over its connection, one phase at a time. Only what the plan lists is
//! done; an agent is restarted only when its binary, config or unit changed.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;

use crate::engine::source::PreparedBinary;
use crate::remote::ssh::Connection;
use consulctl_core::action::Action;
use consulctl_core::desired::FileKind;
use consulctl_core::facts::Facts;
use consulctl_core::model::{Host, Init};
use consulctl_core::plan::HostPlan;

/// Where HashiCorp packages install the binary.
pub const PACKAGE_BINARY: &str = "/usr/bin/consul";

/// Where replaced files are kept on the host: `/var/backups/consulctl/<UTC timestamp>`.
pub fn backup_dir(timestamp: &str) -> String {
    format!("/var/backups/consulctl/{timestamp}")
}

/// Upload phase: install the binary (or package) when the plan says so. The binary goes
/// zstd-compressed to hosts whose facts list `zstd` (a fifth of gzip's CPU time to unpack on
/// the host, where a rollout to many hosts waits for CPU), gzip-compressed to the others.
pub async fn upload(
    conn: &Connection,
    host: &Host,
    plan: &HostPlan,
    facts: Option<&Facts>,
    binary: Option<&PreparedBinary>,
) -> Result<()> {
    match plan.binary_action() {
        Some(Action::InstallBinary { sha256, staged, .. }) => {
            let binary = binary.context("internal: no prepared binary for an upload")?;
            let mode = if *staged { "stage" } else { "install" };
            let target = (host.paths.binary.as_path(), sha256.as_str(), mode);
            install_binary(conn, "install binary", target, facts, binary).await?;
        }
        // A running agent's package is installed by the rolling restart, right before its turn.
        Some(Action::InstallPackage { deferred: true, .. }) => {}
        Some(Action::InstallPackage { commands, .. }) => {
            for argv in commands {
                let script = "set -eu; \"$@\"";
                conn.run_ok(
                    &consulctl_core::action::shell_words(argv),
                    script,
                    argv,
                    None,
                )
                .await?;
            }
            // Packages install /usr/bin/consul; a layout that names another path gets a link.
            if host.paths.binary != Path::new(PACKAGE_BINARY) {
                let script = r#"set -eu; mkdir -p "$(dirname "$2")"; ln -sfn "$1" "$2""#;
                let args = vec![PACKAGE_BINARY.to_string(), path_arg(&host.paths.binary)];
                conn.run_ok("link the packaged binary", script, &args, None)
                    .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Upload phase for the Docker registrar: install `consulctl-host` when the plan says so,
/// compressed like the consul binary (zstd where the host has it, else gzip), through the same
/// `remote/install-binary.sh` (verified by sha256 and by running `consulctl-host version`).
pub async fn upload_host_binary(
    conn: &Connection,
    plan: &HostPlan,
    facts: Option<&Facts>,
    binary: Option<&PreparedBinary>,
) -> Result<()> {
    let Some(Action::InstallHostBinary { path, sha256, .. }) = plan.host_binary_action() else {
        return Ok(());
    };
    let binary = binary.context("internal: no prepared consulctl-host binary for an upload")?;
    let target = (path.as_path(), sha256.as_str(), "install");
    install_binary(conn, "install consulctl-host", target, facts, binary).await
}

/// Send a prepared binary to `remote/install-binary.sh`: zstd-compressed to hosts whose facts
/// list `zstd`, gzip to the others. `target` is (path on the host, sha256 of the raw binary,
/// `install` or `stage`).
async fn install_binary(
    conn: &Connection,
    what: &str,
    target: (&Path, &str, &str),
    facts: Option<&Facts>,
    binary: &PreparedBinary,
) -> Result<()> {
    let (path, sha256, mode) = target;
    let (file, format) = if facts.is_some_and(|f| f.has_command("zstd")) {
        (&binary.zstd, "zstd")
    } else {
        (&binary.gzip, "gzip")
    };
    let data = tokio::fs::read(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let args = vec![
        path_arg(path),
        sha256.to_string(),
        mode.into(),
        format.into(),
    ];
    conn.run_ok(what, crate::remote::INSTALL_BINARY, &args, Some(&data))
        .await?;
    Ok(())
}

/// Configure phase: create dirs, stage + validate + install changed files. Returns the paths
/// written. When `consul validate` rejects the config nothing live changes and the error
/// carries Consul's message.
pub async fn configure(
    conn: &Connection,
    host: &Host,
    plan: &HostPlan,
    timestamp: &str,
) -> Result<Vec<String>> {
    let dirs = plan.dirs();
    let files: Vec<_> = plan.file_writes().collect();
    let removals: Vec<&Path> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::RemoveFile { path } => Some(path.as_path()),
            _ => None,
        })
        .collect();
    // Host preparation first: packages (dnsmasq ...) and units in the way.
    for action in &plan.actions {
        match action {
            Action::InstallPackages { commands, .. } => {
                for argv in commands {
                    let mut args = vec!["command".to_string()];
                    args.extend(argv.iter().cloned());
                    conn.run_ok(
                        &consulctl_core::action::shell_words(argv),
                        crate::remote::PREPARE,
                        &args,
                        None,
                    )
                    .await?;
                }
            }
            Action::DisableUnits { units } => {
                let mut args = vec!["disable".to_string()];
                args.extend(units.iter().cloned());
                conn.run_ok("disable units", crate::remote::PREPARE, &args, None)
                    .await?;
            }
            _ => {}
        }
    }
    // The agent's user before the files (they are given to it).
    for action in &plan.actions {
        if let Action::OwnDirs {
            user,
            create_user,
            dirs,
            recursive,
        } = action
        {
            let mut args = vec![user.clone(), flag(*create_user)];
            args.extend(dirs.iter().map(|d| path_arg(d)));
            args.push("--".into());
            args.extend(recursive.iter().map(|d| path_arg(d)));
            conn.run_ok("own dirs", crate::remote::OWN_DIRS, &args, None)
                .await?;
        }
    }
    let written = if dirs.is_empty() && files.is_empty() && removals.is_empty() {
        Vec::new()
    } else {
        configure_files(conn, host, plan, timestamp, &dirs, &files, &removals).await?
    };
    // After the files: network scripts, then the helper services that read them.
    for action in &plan.actions {
        match action {
            Action::SetPeerDnsNo { files } => {
                let mut args = vec!["peerdns".to_string(), backup_dir(timestamp)];
                args.extend(files.iter().map(|f| path_arg(f)));
                conn.run_ok("PEERDNS=no", crate::remote::PREPARE, &args, None)
                    .await?;
            }
            Action::RestartHelper {
                service,
                supervisor,
            } => helper_service(conn, service, *supervisor, false).await?,
            Action::StartHelper {
                service,
                supervisor,
            } => helper_service(conn, service, *supervisor, true).await?,
            _ => {}
        }
    }
    Ok(written)
}

/// `remote/helper-service.sh`: (re)start a helper service (`start`: only make it run).
async fn helper_service(
    conn: &Connection,
    service: &str,
    supervisor: bool,
    start: bool,
) -> Result<()> {
    use consulctl_core::managed_paths::{LB_SERVICE, REGISTRAR_SERVICE};
    // A unit consulctl writes itself (the registrar's, the LB daemon's) needs systemd to read it.
    let own_unit = service == REGISTRAR_SERVICE || service == LB_SERVICE;
    let args = vec![
        service.to_string(),
        flag(supervisor),
        consulctl_core::managed_paths::supervisor_program_name(service).to_string(),
        flag(own_unit),
        flag(start),
    ];
    let what = if start { "start" } else { "restart" };
    conn.run_ok(
        &format!("{what} {service}"),
        crate::remote::HELPER_SERVICE,
        &args,
        None,
    )
    .await?;
    Ok(())
}

async fn configure_files(
    conn: &Connection,
    host: &Host,
    plan: &HostPlan,
    timestamp: &str,
    dirs: &[std::path::PathBuf],
    files: &[&consulctl_core::desired::DesiredFile],
    removals: &[&Path],
) -> Result<Vec<String>> {
    // Validate with the binary that will run this config: a staged new one if there is one.
    let validator = if stages_binary(plan) {
        format!("{}.consulctl-new", path_arg(&host.paths.binary))
    } else {
        path_arg(&host.paths.binary)
    };
    let mut args = vec![
        validator,
        path_arg(&host.paths.config_dir),
        backup_dir(timestamp),
    ];
    args.extend(dirs.iter().map(|d| path_arg(d)));
    args.push("--".into());
    let mut tar = tar::Builder::new(Vec::new());
    for (i, file) in files.iter().enumerate() {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.content.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, i.to_string(), file.content.as_bytes())?;
        args.push(path_arg(&file.path));
        args.push(format!("{:o}", file.mode));
        args.push(match file.kind {
            FileKind::AgentConfig => "agent_config".into(),
            FileKind::ServiceDefinition => "service".into(),
            FileKind::ResolvConf => "inplace".into(),
            FileKind::TlsFile => "tls".into(),
            _ => "other".into(),
        });
        args.push(file.owner.clone().unwrap_or_else(|| "-".into()));
    }
    if !removals.is_empty() {
        args.push("--".into());
        args.extend(removals.iter().map(|p| path_arg(p)));
    }
    let data = tar.into_inner()?;
    let out = conn
        .run("configure", crate::remote::CONFIGURE, &args, Some(&data))
        .await?;
    if !out.success() {
        anyhow::bail!("{}", out.tail(12));
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("changed ").map(str::to_string))
        .collect())
}

/// Start phase: reload the init system, enable, start (an agent that does not run) or reload,
/// then wait for the agent's local HTTP API. Returns the agent's PID as reported by the host.
pub async fn start(
    conn: &Connection,
    host: &Host,
    plan: &HostPlan,
    http_addr: &str,
    wait_secs: u64,
) -> Result<Option<String>> {
    let mut reload = false;
    let mut enable = false;
    let mut op = None;
    for action in plan.service_actions() {
        match action {
            Action::ReloadInit => reload = true,
            Action::Enable => enable = true,
            Action::Start => op = Some("start"),
            // Restarts of running agents go through the rolling engine (`rolling`), which
            // swaps in a staged binary and proves a new process answers.
            Action::Reload { .. } => op = op.or(Some("reload")),
            _ => {}
        }
    }
    let Some(op) = op.or(if reload || enable {
        Some("start")
    } else {
        None
    }) else {
        return Ok(None);
    };
    let args = vec![
        host.init.as_str().to_string(),
        op.to_string(),
        flag(reload),
        flag(enable && host.init == Init::Systemd),
        path_arg(&host.paths.binary),
        http_addr.to_string(),
        wait_secs.to_string(),
        path_arg(&host.paths.log_dir),
    ];
    let out = conn
        .run("service", crate::remote::SERVICE, &args, None)
        .await?;
    if !out.success() {
        anyhow::bail!("consul did not start: {}", out.tail(15));
    }
    Ok(out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid ").map(str::to_string)))
}

/// Read the current contents of files (for `plan` diffs). Missing files are absent in the map.
pub async fn read_files(
    conn: &Connection,
    paths: &[&Path],
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut map = std::collections::BTreeMap::new();
    if paths.is_empty() {
        return Ok(map);
    }
    let args: Vec<String> = paths.iter().map(|p| path_arg(p)).collect();
    // The tar stream is binary: run it through base64 so it survives the text pipe.
    // Read as bytes: the files may hold secrets (the gossip key), and `run_bytes` logs only
    // the length of what it reads.
    let script = format!("{{ {} ; }} | base64", crate::remote::READ_FILES.trim_end());
    let (out, bytes) = conn.run_bytes("read files", &script, &args, None).await?;
    if !out.success() {
        anyhow::bail!("read files failed (exit {}): {}", out.status, out.tail(6));
    }
    let compact: String = String::from_utf8_lossy(&bytes).split_whitespace().collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .context("decoding file contents")?;
    let mut archive = tar::Archive::new(raw.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut entry, &mut content).ok();
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        map.insert(path, content);
    }
    Ok(map)
}

/// Does the plan stage a new binary to be swapped in at the restart?
pub fn stages_binary(plan: &HostPlan) -> bool {
    matches!(
        plan.binary_action(),
        Some(Action::InstallBinary { staged: true, .. })
    )
}

fn flag(b: bool) -> String {
    if b {
        "1".into()
    } else {
        "0".into()
    }
}

/// Remote paths travel as positional arguments (escaped by openssh), never spliced into scripts.
pub fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    //! The file scripts run here, on local temp dirs, with a fake `consul` that validates by
    //! checking that every path the config names exists.

    use std::fs;
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Output, Stdio};

    fn run(script: &str, args: &[String], stdin: &[u8]) -> Output {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin);
        child.wait_with_output().unwrap()
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// A `consul` whose `validate DIR` fails unless every quoted absolute path in DIR's files
    /// exists, and which fails on a `bad = true` line.
    fn fake_consul(dir: &Path) -> String {
        let bin = dir.join("consul");
        fs::write(
            &bin,
            "#!/bin/sh\n[ \"$1\" = validate ] || exit 0\n\
             for p in $(grep -ho '\"/[^\"]*\"' \"$2\"/* | tr -d '\"'); do\n\
               [ -e \"$p\" ] || { echo \"missing $p\"; exit 1; }\n\
             done\n\
             if grep -q 'bad = true' \"$2\"/*; then echo 'bad setting'; exit 1; fi\n",
        )
        .unwrap();
        Command::new("chmod").arg("755").arg(&bin).status().unwrap();
        bin.display().to_string()
    }

    fn tar_of(files: &[&str]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (i, content) in files.iter().enumerate() {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            tar.append_data(&mut header, i.to_string(), content.as_bytes())
                .unwrap();
        }
        tar.into_inner().unwrap()
    }

    #[test]
    fn tls_files_are_validated_from_staging_and_go_live_only_after() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = fake_consul(tmp.path());
        let conf = tmp.path().join("etc/consul.d");
        let ca = conf.join("tls/ca.pem");
        let backup = tmp.path().join("backup");
        let config = |extra: &str| format!("ca_file = \"{}\"\n{extra}", ca.display());
        let args = |n: usize| {
            let mut a = vec![
                bin.clone(),
                conf.display().to_string(),
                backup.display().to_string(),
                conf.display().to_string(),
                "--".to_string(),
            ];
            let files = [
                (ca.display().to_string(), "644", "tls"),
                (
                    conf.join("consul.hcl").display().to_string(),
                    "640",
                    "agent_config",
                ),
            ];
            for (path, mode, kind) in files.iter().take(n) {
                a.extend([path.clone(), mode.to_string(), kind.to_string(), "-".into()]);
            }
            a
        };

        // Rejected: neither the certificate nor the config goes live.
        let out = run(
            crate::remote::CONFIGURE,
            &args(2),
            &tar_of(&["CERT\n", &config("bad = true\n")]),
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("bad setting"),
            "{}",
            text(&out.stderr)
        );
        assert!(!ca.exists(), "the certificate went live before validation");
        assert!(!conf.join("consul.hcl").exists());

        // Accepted, although the certificate is not at its final path yet: both go live and
        // the live config names the final path, not the staging copy.
        let out = run(
            crate::remote::CONFIGURE,
            &args(2),
            &tar_of(&["CERT\n", &config("")]),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(fs::read_to_string(&ca).unwrap(), "CERT\n");
        assert_eq!(
            fs::read_to_string(conf.join("consul.hcl")).unwrap(),
            config("")
        );

        // A new certificate alone is validated too, and the old one backed up.
        let out = run(crate::remote::CONFIGURE, &args(1), &tar_of(&["CERT2\n"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(fs::read_to_string(&ca).unwrap(), "CERT2\n");
        let kept = backup.join(ca.strip_prefix("/").unwrap());
        assert_eq!(fs::read_to_string(kept).unwrap(), "CERT\n");
    }

    #[test]
    fn restore_puts_back_the_last_good_files_and_binary_and_keeps_the_failed_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let p = |rel: &str| tmp.path().join(rel);
        let backup = p("backup/20260101T000000Z");
        let under_backup = |path: &Path| backup.join(path.strip_prefix("/").unwrap());
        fs::create_dir_all(p("etc")).unwrap();
        fs::create_dir_all(p("bin")).unwrap();
        // consul.hcl was replaced by this run (its old copy in the backup dir), svc.hcl is new.
        fs::write(p("etc/consul.hcl"), "new\n").unwrap();
        fs::create_dir_all(under_backup(&p("etc"))).unwrap();
        fs::write(under_backup(&p("etc/consul.hcl")), "good\n").unwrap();
        fs::write(p("etc/svc.hcl"), "added\n").unwrap();
        fs::write(p("bin/consul"), "new binary").unwrap();
        fs::write(p("bin/consul.consulctl-prev"), "good binary").unwrap();
        let args: Vec<String> = vec![
            backup.display().to_string(),
            p("bin/consul").display().to_string(),
            "1".into(),
            p("etc/consul.hcl").display().to_string(),
            p("etc/svc.hcl").display().to_string(),
        ];
        let out = run(crate::remote::RESTORE, &args, b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        assert!(
            said.contains(&format!("restored {}", p("etc/consul.hcl").display())),
            "{said}"
        );
        assert!(
            said.contains(&format!("set aside {}", p("etc/svc.hcl").display())),
            "{said}"
        );
        assert!(said.contains("restored binary"), "{said}");
        assert_eq!(fs::read_to_string(p("etc/consul.hcl")).unwrap(), "good\n");
        assert!(!p("etc/svc.hcl").exists());
        assert_eq!(fs::read_to_string(p("bin/consul")).unwrap(), "good binary");
        // Nothing is lost: the failed files are kept for inspection.
        let failed = backup.join("failed");
        let kept = |path: &Path| failed.join(path.strip_prefix("/").unwrap());
        assert_eq!(
            fs::read_to_string(kept(&p("etc/consul.hcl"))).unwrap(),
            "new\n"
        );
        assert_eq!(
            fs::read_to_string(kept(&p("etc/svc.hcl"))).unwrap(),
            "added\n"
        );
        assert_eq!(
            fs::read_to_string(kept(&p("bin/consul"))).unwrap(),
            "new binary"
        );
        assert_eq!(
            fs::read_to_string(p("bin/consul.consulctl-prev")).unwrap(),
            "good binary"
        );
    }
}
