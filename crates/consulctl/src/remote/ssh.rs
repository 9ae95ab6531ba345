//! SSH connections through the system `ssh` client (openssh crate, one multiplexed master per
//! host), so users keep their ssh_config, agent, ProxyJump and known_hosts.
//!
//! Every remote command is a fixed script run as `sh -c SCRIPT sh ARG...`; each argument goes
//! through openssh's escaping (`Command::arg`). Inventory values never become shell text.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use consulctl_core::model::{Host, HostKeyPolicy};

/// What a remote command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The last few lines of stderr (or stdout when stderr is empty), for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// One host's ssh master connection. Clones share the master (a Consul API client of the host
/// keeps one); [`Connection::close`] closes it when no other clone is alive.
#[derive(Clone)]
pub struct Connection {
    host: String,
    session: std::sync::Arc<Session>,
    sudo: bool,
    round_trips: std::sync::Arc<AtomicU32>,
    /// What every script gets to talk to Consul's API (see [`PRELUDE`]).
    consul_env: std::sync::Arc<std::sync::Mutex<ConsulEnv>>,
}

/// How scripts on a host reach Consul's API: the ACL token and the CA of an HTTPS API.
/// Both reach the script on its stdin (never its arguments, which `ps` shows) and become
/// `CONSUL_HTTP_TOKEN` / `CONSUL_CACERT` for the `consul` CLI and `ccurl` (curl reading its
/// header and CA from a here-document, not the command line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsulEnv {
    pub token: Option<consulctl_core::model::Secret>,
    pub ca_file: Option<String>,
}

/// Put in front of every script. Defines `ccurl`: curl with the token as a header and the CA
/// file, both from a config on fd 3 (a here-document: neither appears in `ps`).
const PRELUDE: &str = r#"ccurl() {
  _cc_h= _cc_c=
  if [ -n "${CONSUL_HTTP_TOKEN:-}" ]; then _cc_h="header = \"X-Consul-Token: $CONSUL_HTTP_TOKEN\""; fi
  if [ -n "${CONSUL_CACERT:-}" ]; then _cc_c="cacert = \"$CONSUL_CACERT\""; fi
  curl -K /dev/fd/3 "$@" 3<<CONSULCTL_CURL_EOF
$_cc_h
$_cc_c
CONSULCTL_CURL_EOF
}
"#;

/// With a [`ConsulEnv`]: its two lines come first on stdin.
const PRELUDE_ENV: &str = r#"IFS= read -r CONSUL_HTTP_TOKEN || :
IFS= read -r CONSUL_CACERT || :
if [ -n "$CONSUL_HTTP_TOKEN" ]; then export CONSUL_HTTP_TOKEN; else unset CONSUL_HTTP_TOKEN; fi
if [ -n "$CONSUL_CACERT" ]; then export CONSUL_CACERT; else unset CONSUL_CACERT; fi
"#;

impl Connection {
    /// Open the master connection to a host. `accept_new` overrides a strict inventory policy.
    /// User, port and identity file are passed only when the inventory gives them: otherwise
    /// ssh_config (`ssh.config_file`, or `~/.ssh/config`) decides.
    pub async fn connect(host: &Host, accept_new: bool) -> Result<Connection> {
        let builder = session_builder(host, accept_new, crate::remote::masters::control_dir()?);
        // The user and port ssh will really use (for sudo and messages).
        let target = resolve_target(host).await;
        let started = Instant::now();
        let session = builder.connect(&host.address).await.map_err(|e| {
            let detail = clean_detail(&error_chain(&e));
            let hint = if detail.contains("Host key verification failed")
                || detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            {
                host_key_hint(host, target.port, &detail)
            } else {
                String::new()
            };
            anyhow!(
                "cannot connect to {}@{}:{}: {}{}",
                target.user,
                host.address,
                target.port,
                detail,
                hint
            )
        })?;
        tracing::debug!(host = %host.name, user = %target.user, port = target.port, elapsed_ms = started.elapsed().as_millis() as u64, "connected");
        Ok(Connection {
            host: host.name.clone(),
            session: std::sync::Arc::new(session),
            sudo: target.user != "root",
            round_trips: std::sync::Arc::new(AtomicU32::new(0)),
            consul_env: std::sync::Arc::new(std::sync::Mutex::new(ConsulEnv::default())),
        })
    }

    /// Set the token and CA the scripts on this host use for Consul's API.
    pub fn set_consul_env(&self, env: ConsulEnv) {
        *self.consul_env.lock().expect("consul env lock") = env;
    }

    pub fn consul_env(&self) -> ConsulEnv {
        self.consul_env.lock().expect("consul env lock").clone()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// How many remote commands this connection has run.
    pub fn round_trips(&self) -> u32 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Run a fixed script with positional arguments, as root (through `sudo -n` for other
    /// users), optionally feeding `stdin`. Returns the output whatever the exit status; fails
    /// only when the command could not run at all or sudo wants a password.
    pub async fn run(
        &self,
        name: &str,
        script: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Output> {
        let (status, stdout, stderr, elapsed) = self.exec(name, script, args, stdin).await?;
        let output = Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        tracing::debug!(
            host = %self.host,
            command = name,
            args = ?args,
            status = output.status,
            elapsed_ms = elapsed.as_millis() as u64,
            stdout = %truncate(&output.stdout, 4000),
            stderr = %truncate(&output.stderr, 4000),
            "remote command"
        );
        self.check_ran(name, &output, output.stdout.is_empty())?;
        Ok(output)
    }

    /// Like `run`, but stdout is kept as raw bytes (binary-safe: snapshots, archives). The
    /// returned `Output::stdout` is empty; the bytes come second. Only their length is logged.
    pub async fn run_bytes(
        &self,
        name: &str,
        script: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<(Output, Vec<u8>)> {
        let (status, stdout, stderr, elapsed) = self.exec(name, script, args, stdin).await?;
        let output = Output {
            status,
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        tracing::debug!(
            host = %self.host,
            command = name,
            args = ?args,
            status = output.status,
            elapsed_ms = elapsed.as_millis() as u64,
            stdout_bytes = stdout.len(),
            stderr = %truncate(&output.stderr, 4000),
            "remote command"
        );
        self.check_ran(name, &output, stdout.is_empty())?;
        Ok((output, stdout))
    }

    /// Spawn `sh -c SCRIPT sh ARGS...` (through `sudo -n` when needed) and collect its exit
    /// status, stdout and stderr.
    async fn exec(
        &self,
        name: &str,
        script: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<(i32, Vec<u8>, Vec<u8>, Duration)> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let env = self.consul_env();
        let with_env = env != ConsulEnv::default();
        let script = if with_env {
            format!("{PRELUDE_ENV}{PRELUDE}{script}")
        } else {
            format!("{PRELUDE}{script}")
        };
        // The env's two lines go first on stdin, then the caller's data (written after them,
        // not copied into one buffer: it may be a whole compressed binary).
        let mut header: Vec<u8> = Vec::new();
        if with_env {
            for line in [
                env.token.as_ref().map(|t| t.expose()).unwrap_or(""),
                env.ca_file.as_deref().unwrap_or(""),
            ] {
                if line.contains('\n') {
                    bail!("{}: a token or CA path with a newline", self.host);
                }
                header.extend_from_slice(line.as_bytes());
                header.push(b'\n');
            }
        }
        let piped = with_env || stdin.is_some();
        let mut cmd = if self.sudo {
            let mut c = self.session.command("sudo");
            c.arg("-n").arg("--").arg("sh");
            c
        } else {
            self.session.command("sh")
        };
        cmd.arg("-c").arg(&script).arg("sh").args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if piped { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd
            .spawn()
            .await
            .with_context(|| format!("{}: cannot start remote command `{name}`", self.host))?;
        if piped {
            let mut pipe = child.stdin().take().context("stdin pipe missing")?;
            for part in [header.as_slice(), stdin.unwrap_or_default()] {
                pipe.write_all(part)
                    .await
                    .with_context(|| format!("{}: sending data for `{name}`", self.host))?;
            }
            pipe.shutdown().await.ok();
            drop(pipe);
        }
        let out = child
            .wait_with_output()
            .await
            .with_context(|| format!("{}: remote command `{name}` did not finish", self.host))?;
        Ok((
            out.status.code().unwrap_or(-1),
            out.stdout,
            out.stderr,
            started.elapsed(),
        ))
    }

    /// The failures that mean the command did not run at all: sudo wanting a password, the
    /// connection lost (ssh's 255 with nothing on stdout).
    fn check_ran(&self, name: &str, output: &Output, stdout_empty: bool) -> Result<()> {
        if self.sudo && output.status != 0 && output.stderr.contains("a password is required") {
            bail!(
                "{}: the SSH user cannot run `sudo -n` without a password; give it passwordless sudo \
                 (NOPASSWD) or connect as root",
                self.host
            );
        }
        if output.status == 255 && stdout_empty {
            bail!(
                "{}: SSH connection lost during `{name}`: {}",
                self.host,
                output.tail(3)
            );
        }
        Ok(())
    }

    /// Like `run`, but a non-zero exit is an error carrying the last lines of output.
    pub async fn run_ok(
        &self,
        name: &str,
        script: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Output> {
        let out = self.run(name, script, args, stdin).await?;
        if !out.success() {
            bail!("{name} failed (exit {}): {}", out.status, out.tail(6));
        }
        Ok(out)
    }

    pub async fn close(self) {
        match std::sync::Arc::try_unwrap(self.session) {
            Ok(session) => {
                if let Err(e) = session.close().await {
                    tracing::debug!(host = %self.host, error = %e, "closing ssh master");
                }
            }
            // Another clone (a Consul client) still uses the master: the last one to go drops it.
            Err(_) => tracing::debug!(host = %self.host, "ssh master still in use"),
        }
    }
}

/// The master's options for a host: user, port, identity file and ssh_config file only where
/// the inventory gives them (so ssh_config's `User`, `Port`, `IdentityFile` apply otherwise),
/// control sockets under this run's `control_dir`.
pub fn session_builder(host: &Host, accept_new: bool, control_dir: &Path) -> SessionBuilder {
    let ssh = &host.ssh;
    let mut builder = SessionBuilder::default();
    builder
        .connect_timeout(Duration::from_secs(ssh.connect_timeout_secs))
        .server_alive_interval(Duration::from_secs(15))
        .control_directory(control_dir)
        .known_hosts_check(match (ssh.host_keys, accept_new) {
            (HostKeyPolicy::AcceptNew, _) | (_, true) => KnownHosts::Add,
            (HostKeyPolicy::Strict, false) => KnownHosts::Strict,
        });
    if let Some(user) = &ssh.user {
        builder.user(user.clone());
    }
    if let Some(port) = ssh.port {
        builder.port(port);
    }
    if let Some(config) = &ssh.config_file {
        builder.config_file(config);
    }
    if let Some(key) = &ssh.identity_file {
        builder.keyfile(key);
    }
    if let Some(known) = &ssh.known_hosts {
        builder.user_known_hosts_file(known);
    }
    if let Some(jump) = &ssh.jump {
        builder.jump_hosts([jump.as_str()]);
    }
    builder
}

/// Who ssh logs in as and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: String,
    pub port: u16,
}

/// `ssh -G` arguments that make ssh print the configuration it would use for a host, with the
/// inventory's settings on top of ssh_config's.
pub fn resolve_args(host: &Host) -> Vec<std::ffi::OsString> {
    let ssh = &host.ssh;
    let mut args: Vec<std::ffi::OsString> = vec!["-G".into()];
    if let Some(config) = &ssh.config_file {
        args.push("-F".into());
        args.push(config.into());
    }
    if let Some(user) = &ssh.user {
        args.push("-l".into());
        args.push(user.into());
    }
    if let Some(port) = ssh.port {
        args.push("-p".into());
        args.push(port.to_string().into());
    }
    args.push("--".into());
    args.push(host.address.clone().into());
    args
}

/// The `user` and `port` lines of `ssh -G` output.
pub fn parse_resolved(out: &str) -> Option<Target> {
    let mut user = None;
    let mut port = None;
    for line in out.lines() {
        match line.split_once(' ') {
            Some(("user", v)) => user = Some(v.trim().to_string()),
            Some(("port", v)) => port = v.trim().parse().ok(),
            _ => {}
        }
    }
    Some(Target {
        user: user?,
        port: port?,
    })
}

/// The user and port of a host: the inventory's where it gives them, else ssh_config's as
/// `ssh -G` reports them; when ssh cannot tell, the local user name and 22 (ssh's defaults).
pub async fn resolve_target(host: &Host) -> Target {
    if let (Some(user), Some(port)) = (&host.ssh.user, host.ssh.port) {
        return Target {
            user: user.clone(),
            port,
        };
    }
    let resolved = tokio::process::Command::new("ssh")
        .args(resolve_args(host))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_resolved(&String::from_utf8_lossy(&o.stdout)));
    resolved.unwrap_or_else(|| Target {
        user: host
            .ssh
            .user
            .clone()
            .unwrap_or_else(crate::local::user_name),
        port: host.ssh.port.unwrap_or(22),
    })
}

/// What to tell about a refused host key: for a changed key the fingerprint known_hosts
/// expects and the one the host sent, for an unknown key how to accept it.
fn host_key_hint(host: &Host, port: u16, detail: &str) -> String {
    let ssh = &host.ssh;
    let file = ssh
        .known_hosts
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.ssh/known_hosts".into());
    let seen = seen_fingerprint(detail);
    let expected = expected_fingerprints(host, port);
    if detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || seen.is_some() {
        format!(
            "\n  the host key of {} CHANGED: known_hosts ({file}) expects {}, the host sent {}; \
             if the host was reinstalled, check the new key out of band, then remove the old one \
             (`ssh-keygen -R {} -f {file}`) and connect with --accept-new-host-keys",
            host.address,
            if expected.is_empty() {
                "another key".to_string()
            } else {
                expected.join(", ")
            },
            seen.unwrap_or_else(|| "another key".into()),
            known_hosts_name(host, port),
        )
    } else {
        format!(
            "\n  the host key of {} is not in {file}; check it, then add it there (or run with \
             --accept-new-host-keys for a host you have not connected to yet)",
            host.address
        )
    }
}

/// The `SHA256:...` fingerprint ssh printed for the key the host sent.
pub fn seen_fingerprint(detail: &str) -> Option<String> {
    let at = detail.find("sent by the remote host is")?;
    let rest = &detail[at..];
    let start = rest.find("SHA256:")?;
    let fp: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '+' | '/' | '='))
        .collect();
    Some(fp.trim_end_matches('.').to_string())
}

/// How known_hosts names the host: `addr`, or `[addr]:port` for another port than 22.
fn known_hosts_name(host: &Host, port: u16) -> String {
    if port == 22 {
        host.address.clone()
    } else {
        format!("[{}]:{}", host.address, port)
    }
}

/// The fingerprints known_hosts holds for the host (`ssh-keygen -F NAME -l`; local only).
fn expected_fingerprints(host: &Host, port: u16) -> Vec<String> {
    let mut cmd = std::process::Command::new("ssh-keygen");
    cmd.arg("-l").arg("-F").arg(known_hosts_name(host, port));
    if let Some(f) = &host.ssh.known_hosts {
        cmd.arg("-f").arg(f);
    }
    let Ok(out) = cmd.stderr(std::process::Stdio::null()).output() else {
        return Vec::new();
    };
    parse_keygen_fingerprints(&String::from_utf8_lossy(&out.stdout))
}

/// `ssh-keygen -l -F` output: "# Host X found: line N" comments, then "NAME TYPE SHA256:..."
/// (or "NAME BITS SHA256:... (TYPE)") per key.
pub fn parse_keygen_fingerprints(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let fp = words.iter().find(|w| w.starts_with("SHA256:"))?;
            let kind = words
                .iter()
                .find(|w| w.starts_with('(') && w.ends_with(')'))
                .map(|w| w.trim_matches(|c| c == '(' || c == ')').to_string())
                .or_else(|| {
                    words
                        .get(1)
                        .filter(|w| !w.starts_with("SHA256"))
                        .map(|w| w.to_string())
                })
                .unwrap_or_default();
            Some(format!("{fp} ({kind})"))
        })
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

/// ssh's stderr as one clean text: its `\r\n` line ends (and stray `\r`) become `\n`, trailing
/// blank lines go (JSON output would carry them raw otherwise).
pub fn clean_detail(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "")
        .trim_end()
        .to_string()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_of_a_changed_host_key() {
        let detail = "failed to connect to the remote host: @@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
            The fingerprint for the ED25519 key sent by the remote host is\n\
            SHA256:abcDEF0123+/xyz.\nPlease contact your system administrator.";
        assert_eq!(
            seen_fingerprint(detail).as_deref(),
            Some("SHA256:abcDEF0123+/xyz")
        );
        assert_eq!(seen_fingerprint("Permission denied (publickey)"), None);
        let keygen = "# Host 10.0.0.1 found: line 3\n10.0.0.1 ED25519 SHA256:oldKEY123\n\
                      10.0.0.1 256 SHA256:other456 (ECDSA)\n";
        assert_eq!(
            parse_keygen_fingerprints(keygen),
            ["SHA256:oldKEY123 (ED25519)", "SHA256:other456 (ECDSA)"]
        );
    }

    fn host(ssh: consulctl_core::model::SshTarget) -> Host {
        let mut h = Host::minimal(
            "s1",
            "10.9.8.7",
            consulctl_core::model::Role::Server,
            consulctl_core::model::Init::Systemd,
            consulctl_core::model::BindAddr::Fixed("10.9.8.7".parse().unwrap()),
        );
        h.ssh = ssh;
        h
    }

    fn strings(args: &[std::ffi::OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn connect_errors_carry_no_carriage_returns() {
        let raw = "failed to connect to the remote host: ssh: connect to host 10.0.0.9 port 22: \
                   Connection refused\r\n\r\n";
        let clean = clean_detail(raw);
        assert!(!clean.contains('\r'), "{clean:?}");
        assert!(clean.ends_with("Connection refused"), "{clean:?}");
        assert_eq!(clean_detail("a\r\nb\rc\n"), "a\nbc");
    }

    /// User, port, key and config file reach ssh only when the inventory gives them.
    #[test]
    fn user_port_and_key_are_passed_only_when_the_inventory_sets_them() {
        let dir = std::path::Path::new("/run/consulctl-test");
        let bare = host(consulctl_core::model::SshTarget::default());
        let b = session_builder(&bare, false, dir);
        assert_eq!(b.get_user(), None);
        assert_eq!(b.get_port(), None);
        let shown = format!("{b:?}");
        assert!(shown.contains("keyfile: None"), "{shown}");
        assert!(shown.contains("config_file: None"), "{shown}");
        assert_eq!(strings(&resolve_args(&bare)), ["-G", "--", "10.9.8.7"]);

        let set = host(consulctl_core::model::SshTarget {
            user: Some("ops".into()),
            port: Some(2200),
            identity_file: Some("/keys/id".into()),
            config_file: Some("/etc/consulctl/ssh_config".into()),
            ..Default::default()
        });
        let b = session_builder(&set, false, dir);
        assert_eq!(b.get_user(), Some("ops"));
        assert_eq!(b.get_port(), Some("2200"));
        let shown = format!("{b:?}");
        assert!(shown.contains("keyfile: Some(\"/keys/id\")"), "{shown}");
        assert!(
            shown.contains("config_file: Some(\"/etc/consulctl/ssh_config\")"),
            "{shown}"
        );
        assert!(
            shown.contains("control_dir: Some(\"/run/consulctl-test\")"),
            "{shown}"
        );
        assert_eq!(
            strings(&resolve_args(&set)),
            [
                "-G",
                "-F",
                "/etc/consulctl/ssh_config",
                "-l",
                "ops",
                "-p",
                "2200",
                "--",
                "10.9.8.7"
            ]
        );
        assert_eq!(
            parse_resolved("host 10.9.8.7\nuser deploy\nhostname 10.9.8.7\nport 2222\n"),
            Some(Target {
                user: "deploy".into(),
                port: 2222
            })
        );
        assert_eq!(parse_resolved("user deploy\n"), None);
    }

    /// The user and port ssh_config gives (read by the real `ssh -G`, nothing connects), and
    /// the inventory's over them.
    #[tokio::test]
    async fn ssh_config_decides_what_the_inventory_leaves_out() {
        if std::process::Command::new("ssh")
            .arg("-V")
            .output()
            .is_err()
        {
            eprintln!("no ssh client: skipped");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("ssh_config");
        std::fs::write(
            &config,
            "Host 10.9.8.7\n    User deploy\n    Port 2222\nHost *\n    User nobody-else\n",
        )
        .unwrap();
        let from_config = host(consulctl_core::model::SshTarget {
            config_file: Some(config.clone()),
            ..Default::default()
        });
        assert_eq!(
            resolve_target(&from_config).await,
            Target {
                user: "deploy".into(),
                port: 2222
            }
        );
        let over = host(consulctl_core::model::SshTarget {
            config_file: Some(config),
            user: Some("root".into()),
            ..Default::default()
        });
        assert_eq!(
            resolve_target(&over).await,
            Target {
                user: "root".into(),
                port: 2222
            }
        );
    }

    /// The prelude's `ccurl` passes the token and CA to curl in a config on fd 3: the
    /// arguments (what `ps` shows) hold neither. Run with a fake curl on dash and bash.
    #[test]
    fn ccurl_keeps_the_token_out_of_the_arguments() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = tmp.path().join("curl");
        std::fs::write(&fake, "#!/bin/sh\necho \"args: $*\"\ncat /dev/fd/3\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        for shell in ["sh", "bash", "dash"] {
            if std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {shell}"))
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
            {
                continue;
            }
            let script =
                format!("{PRELUDE_ENV}{PRELUDE}set -eu\nccurl -sS http://127.0.0.1:1/v1/kv/x\n");
            let mut child = std::process::Command::new(shell)
                .arg("-c")
                .arg(&script)
                .env("PATH", format!("{}:/usr/bin:/bin", tmp.path().display()))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"tok-123-secret\n/etc/consul.d/tls/ca.pem\n")
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let args = text.lines().next().unwrap_or("");
            assert!(
                args.starts_with("args: -K /dev/fd/3 -sS http"),
                "{shell}: {text}"
            );
            assert!(
                !args.contains("tok-123"),
                "{shell}: token in the arguments: {text}"
            );
            assert!(
                text.contains("header = \"X-Consul-Token: tok-123-secret\""),
                "{shell}: {text}"
            );
            assert!(
                text.contains("cacert = \"/etc/consul.d/tls/ca.pem\""),
                "{shell}: {text}"
            );
        }
    }
}
