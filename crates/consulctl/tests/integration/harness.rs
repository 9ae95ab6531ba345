//! Test harness: lab hosts (Docker containers with sshd) driven through the real binary.
//!
//! ```ignore
//! let lab = Lab::new("smoke").servers(1).clients(1).init(LabInit::Mixed).up();
//! lab.consulctl(&["status", "-i", lab.inventory_str()]).success();
//! ```
//!
//! `Lab` runs `consulctl lab up --no-apply --name t<pid>-<name>` (unique per test process, short:
//! the name ends up in container names). Dropping it runs `consulctl lab down` and then removes
//! whatever still carries the lab's label, also when the test panicked.
//!
//! Docker hosts and app containers (for the registrar's tests):
//!
//! ```ignore
//! let lab = Lab::new(name).servers(1).clients(1).docker_hosts(&["client1"]).up();
//! let web = lab.app("web1").env("SERVICE_NAME", "simple").label("SERVICE_TAGS", "x")
//!     .health_cmd("wget -q -O /dev/null http://127.0.0.1:8080/health").publish_all().run();
//! web.pause(); web.unpause(); web.stop(); web.remove();
//! ```
//!
//! App containers carry the lab's label, so dropping the lab removes them too.
//!
//! Load-balancer hosts (nginx with the stream module and haproxy are on every lab host,
//! installed, not running; `lb_hosts` only tags them `lb`), and HTTP from this machine:
//!
//! ```ignore
//! let lab = Lab::new(name).servers(1).clients(1).lb_hosts(&["client1"]).up();
//! let (status, body) = lab.http_get(lab.host_ip("client1"), 80, "/", Some("web")).unwrap();
//! ```

#![allow(dead_code)]

use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

/// The binary under test.
pub const CONSULCTL: &str = env!("CARGO_BIN_EXE_consulctl");

/// The Docker label on every lab container and network.
pub const LAB_LABEL: &str = "consulctl.lab";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabInit {
    Supervisord,
    Systemd,
    Mixed,
}

impl LabInit {
    fn as_arg(self) -> &'static str {
        match self {
            LabInit::Supervisord => "supervisord",
            LabInit::Systemd => "systemd",
            LabInit::Mixed => "mixed",
        }
    }
}

/// The captured result of one command.
pub struct Out {
    pub cmd: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.cmd)?;
        writeln!(f, "exit code: {:?}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Out {
    /// Asserts exit code 0 (prints the command, stdout and stderr otherwise).
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        self
    }

    /// Asserts this exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "expected exit code {code}\n{self}");
        self
    }

    /// Asserts a non-zero exit.
    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected failure\n{self}"
        );
        self
    }

    /// Asserts that stdout or stderr contains `needle`.
    #[track_caller]
    pub fn contains(self, needle: &str) -> Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "expected output containing {needle:?}\n{self}"
        );
        self
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{self}"))
    }

    /// stdout, trimmed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }
}

/// Polls `f` every 500 ms until it returns true (true) or `secs` pass (false).
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Runs a command to completion, capturing everything. Panics only if it cannot start.
pub fn run(program: &str, args: &[&str]) -> Out {
    run_in(program, args, None)
}

fn run_in(program: &str, args: &[&str], cwd: Option<&Path>) -> Out {
    run_with(program, args, cwd, &[])
}

fn run_with(program: &str, args: &[&str], cwd: Option<&Path>, env: &[(&str, &Path)]) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Out {
        cmd: std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" "),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the consulctl binary (cwd: the package root).
pub fn consulctl(args: &[&str]) -> Out {
    run_in(CONSULCTL, args, Some(Path::new(env!("CARGO_MANIFEST_DIR"))))
}

/// Runs the consulctl binary with its own temp dir (`TMPDIR`): where it keeps its ssh control
/// sockets, so consulctl runs of other tests on this machine never see (or clean up) them.
pub fn consulctl_in_tmp(args: &[&str], tmp: &Path) -> Out {
    run_with(
        CONSULCTL,
        args,
        Some(Path::new(env!("CARGO_MANIFEST_DIR"))),
        &[("TMPDIR", tmp)],
    )
}

/// Runs `docker ARGS`.
pub fn docker(args: &[&str]) -> Out {
    run("docker", args)
}

/// IDs of the containers carrying `consulctl.lab=<lab>`.
pub fn labelled_containers(lab: &str) -> Vec<String> {
    let filter = format!("label={LAB_LABEL}={lab}");
    docker(&["ps", "-a", "-q", "--filter", &filter])
        .success()
        .stdout
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// IDs of the networks carrying `consulctl.lab=<lab>`.
pub fn labelled_networks(lab: &str) -> Vec<String> {
    let filter = format!("label={LAB_LABEL}={lab}");
    docker(&["network", "ls", "-q", "--filter", &filter])
        .success()
        .stdout
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// An HTTP/1.1 GET from this machine (it reaches lab addresses directly) to `ip:port` with
/// `Connection: close`: (status code, body). `host_header` defaults to `ip:port`; a chunked
/// body is decoded. Connecting gives up after 3 s, each read or write after 5 s. An error
/// (refused, reset, timed out, not HTTP) is `Err`, for tests to poll with [`wait_until`].
pub fn http_get(
    ip: &str,
    port: u16,
    path: &str,
    host_header: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let addr = std::net::SocketAddr::new(
        ip.parse()
            .with_context(|| format!("not an IP address: {ip:?}"))?,
        port,
    );
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let host = host_header.map_or_else(|| format!("{ip}:{port}"), str::to_owned);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: consulctl-tests\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending GET {path} to {addr}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path} from {addr}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            anyhow!(
                "GET {path} from {addr}: no complete HTTP head in {} bytes",
                raw.len()
            )
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = match status_line.split_whitespace().collect::<Vec<_>>()[..] {
        [proto, code, ..] if proto.starts_with("HTTP/") => code
            .parse()
            .with_context(|| format!("GET {path} from {addr}: status line {status_line:?}"))?,
        _ => bail!("GET {path} from {addr}: not an HTTP status line: {status_line:?}"),
    };
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked {
        dechunk(body).with_context(|| format!("GET {path} from {addr}: chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Decodes a `Transfer-Encoding: chunked` body (chunk extensions and trailers ignored).
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("a chunk size line without CRLF"))?;
        let line = String::from_utf8_lossy(&rest[..eol]);
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).with_context(|| format!("chunk size {hex:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size {
            bail!("a chunk of {size} bytes has only {}", rest.len());
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
}

/// A short lab name unique to this test process: `t<pid>-<name>`.
/// Names are unique per test binary run only: two tests must not use the same `name`
/// (`lab_names_are_not_shared_by_two_tests` checks it).
pub fn unique_name(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

/// One host of a running lab, as the generated inventory describes it.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub role: String,
    pub init: String,
    /// The SSH user the inventory uses for it (`root` or `deploy`).
    pub ssh_user: String,
    /// The inventory's tags: `lab`, and `docker` / `lb` for Docker / load-balancer hosts.
    pub tags: Vec<String>,
}

/// Builder for a lab; `up()` starts it.
pub struct LabBuilder {
    name: String,
    servers: u32,
    clients: u32,
    init: LabInit,
    apply: bool,
    docker_hosts: Vec<String>,
    lb_hosts: Vec<String>,
    extra: Vec<String>,
}

impl LabBuilder {
    pub fn servers(mut self, n: u32) -> Self {
        self.servers = n;
        self
    }

    pub fn clients(mut self, n: u32) -> Self {
        self.clients = n;
        self
    }

    pub fn init(mut self, init: LabInit) -> Self {
        self.init = init;
        self
    }

    /// Also roll out Consul (`lab up` without `--no-apply`).
    pub fn apply(mut self, yes: bool) -> Self {
        self.apply = yes;
        self
    }

    /// Docker hosts (`lab up --docker-hosts`): the machine's Docker socket mounted, tag `docker`.
    pub fn docker_hosts(mut self, hosts: &[&str]) -> Self {
        self.docker_hosts
            .extend(hosts.iter().map(|h| h.to_string()));
        self
    }

    /// Load-balancer hosts (`lab up --lb-hosts`): tag `lb` (every lab host has nginx and
    /// haproxy installed, not running).
    pub fn lb_hosts(mut self, hosts: &[&str]) -> Self {
        self.lb_hosts.extend(hosts.iter().map(|h| h.to_string()));
        self
    }

    /// Extra `lab up` arguments (e.g. `--subnet`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_owned());
        self
    }

    /// Runs `consulctl lab up` and panics (after cleaning up) when it fails.
    #[track_caller]
    pub fn up(self) -> Lab {
        let inventory = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("labs")
            .join(format!("{}.toml", self.name));
        let mut lab = Lab {
            name: self.name,
            inventory,
            hosts: Vec::new(),
            identity_file: PathBuf::new(),
            known_hosts: PathBuf::new(),
            down: false,
        };
        // From here on, Drop cleans up even if `lab up` fails half-way.
        let (servers, clients) = (self.servers.to_string(), self.clients.to_string());
        let mut args = vec![
            "lab",
            "up",
            "--name",
            &lab.name,
            "--servers",
            &servers,
            "--clients",
            &clients,
            "--init",
            self.init.as_arg(),
        ];
        let inventory = lab.inventory.to_string_lossy().into_owned();
        args.extend(["--inventory", &inventory]);
        if !self.apply {
            args.push("--no-apply");
        }
        let docker_hosts = self.docker_hosts.join(",");
        if !self.docker_hosts.is_empty() {
            args.extend(["--docker-hosts", &docker_hosts]);
        }
        let lb_hosts = self.lb_hosts.join(",");
        if !self.lb_hosts.is_empty() {
            args.extend(["--lb-hosts", &lb_hosts]);
        }
        args.extend(self.extra.iter().map(String::as_str));
        consulctl(&args).success();
        lab.load_inventory();
        lab
    }
}

/// A running lab. Dropping it removes it.
pub struct Lab {
    name: String,
    inventory: PathBuf,
    hosts: Vec<Host>,
    identity_file: PathBuf,
    known_hosts: PathBuf,
    down: bool,
}

impl Lab {
    /// A lab named `t<pid>-<name>`; defaults: 1 server, 0 clients, mixed init, no apply.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(name: &str) -> LabBuilder {
        LabBuilder {
            name: unique_name(name),
            servers: 1,
            clients: 0,
            init: LabInit::Mixed,
            apply: false,
            docker_hosts: Vec::new(),
            lb_hosts: Vec::new(),
            extra: Vec::new(),
        }
    }

    fn load_inventory(&mut self) {
        let text = std::fs::read_to_string(&self.inventory)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.inventory.display()));
        let v: toml::Value = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", self.inventory.display()));
        let s = |v: &toml::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let ssh = &v["ssh"];
        self.identity_file = PathBuf::from(s(ssh, "identity_file").expect("ssh.identity_file"));
        self.known_hosts = PathBuf::from(s(ssh, "known_hosts").expect("ssh.known_hosts"));
        let default_user = s(ssh, "user").unwrap_or_else(|| "root".into());
        let default_init = s(&v["cluster"], "init").unwrap_or_else(|| "systemd".into());
        self.hosts = v["hosts"]
            .as_array()
            .expect("[[hosts]]")
            .iter()
            .map(|h| Host {
                name: s(h, "name").expect("host name"),
                address: s(h, "address").expect("host address"),
                role: s(h, "role").expect("host role"),
                init: s(h, "init").unwrap_or_else(|| default_init.clone()),
                ssh_user: h
                    .get("ssh")
                    .and_then(|x| s(x, "user"))
                    .unwrap_or_else(|| default_user.clone()),
                tags: h
                    .get("tags")
                    .and_then(|t| t.as_array())
                    .map(|t| {
                        t.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
    }

    /// The lab name (`t<pid>-<name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The generated inventory.
    pub fn inventory(&self) -> &Path {
        &self.inventory
    }

    pub fn inventory_str(&self) -> &str {
        self.inventory.to_str().expect("utf-8 inventory path")
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    #[track_caller]
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in lab {}", self.name))
    }

    /// A host's address on the lab network (as the inventory has it).
    #[track_caller]
    pub fn host_ip(&self, name: &str) -> &str {
        &self.host(name).address
    }

    /// [`http_get`] from this machine to `ip:port` (a lab host's or an app's address):
    /// (status code, body).
    pub fn http_get(
        &self,
        ip: &str,
        port: u16,
        path: &str,
        host_header: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        http_get(ip, port, path, host_header)
    }

    pub fn identity_file(&self) -> &Path {
        &self.identity_file
    }

    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The container of a host: `consulctl-<lab>-<host>`.
    pub fn container(&self, host: &str) -> String {
        format!("consulctl-{}-{host}", self.name)
    }

    /// The lab's Docker network: `consulctl-<lab>`.
    pub fn network(&self) -> String {
        format!("consulctl-{}", self.name)
    }

    /// An app container on the lab's network (the lab's busybox app image unless `.image()`);
    /// `.run()` starts it.
    pub fn app(&self, name: &str) -> AppBuilder {
        AppBuilder {
            lab: self.name.clone(),
            spec: consulctl_lab::AppSpec {
                name: name.to_owned(),
                ..Default::default()
            },
        }
    }

    /// The names of the lab's app containers (running or not), sorted.
    #[track_caller]
    pub fn apps(&self) -> Vec<String> {
        block_on(consulctl_lab::lab_apps(&self.name))
            .unwrap_or_else(|e| panic!("listing the app containers of {}: {e:#}", self.name))
    }

    /// Runs consulctl (cwd: the package root).
    pub fn consulctl(&self, args: &[&str]) -> Out {
        consulctl(args)
    }

    /// `docker exec <container> ARGV...`
    pub fn exec(&self, host: &str, argv: &[&str]) -> Out {
        let c = self.container(host);
        let mut args = vec!["exec", c.as_str()];
        args.extend_from_slice(argv);
        docker(&args)
    }

    /// `docker ARGS...` (fault injection: stop, pause, network disconnect ...).
    pub fn docker(&self, args: &[&str]) -> Out {
        docker(args)
    }

    /// The system ssh client as `user` on `host`, with the lab's key and known_hosts and
    /// strict host key checking.
    pub fn ssh(&self, user: &str, host: &str, command: &str) -> Out {
        let address = self.host(host).address.clone();
        let key = self.identity_file.to_string_lossy().into_owned();
        let kh = format!("UserKnownHostsFile={}", self.known_hosts.display());
        let target = format!("{user}@{address}");
        run(
            "ssh",
            &[
                "-i",
                &key,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                &kh,
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                &target,
                "--",
                command,
            ],
        )
    }

    /// GET a Consul HTTP API path on a host (through `docker exec ... curl`); the body.
    #[track_caller]
    pub fn consul_api(&self, host: &str, path: &str) -> String {
        let url = format!("http://127.0.0.1:8500{path}");
        self.exec(host, &["curl", "-sS", "--max-time", "10", &url])
            .success()
            .stdout
    }

    /// A Consul HTTP API answer on a host, parsed as JSON.
    #[track_caller]
    pub fn api(&self, host: &str, path: &str) -> serde_json::Value {
        let body = self.consul_api(host, path);
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{host} {path}: not JSON ({e}): {body}"))
    }

    /// The consul agent's PID on a host (exactly one consul process there).
    #[track_caller]
    pub fn consul_pid(&self, host: &str) -> String {
        let pid = self
            .exec(host, &["pidof", "consul"])
            .success()
            .out()
            .to_string();
        assert!(
            !pid.is_empty() && !pid.contains(' '),
            "{host}: expected one consul process, got {pid:?}"
        );
        pid
    }

    /// The consul agent's PID on every host.
    #[track_caller]
    pub fn consul_pids(&self) -> std::collections::BTreeMap<String, String> {
        self.hosts()
            .iter()
            .map(|h| (h.name.clone(), self.consul_pid(&h.name)))
            .collect()
    }

    /// The leader as Consul (asked through `via`) reports it, as a lab host name.
    #[track_caller]
    pub fn leader_host(&self, via: &str) -> String {
        let leader = self.api(via, "/v1/status/leader");
        let addr = leader.as_str().unwrap_or_default();
        let ip = addr.strip_suffix(":8300").unwrap_or(addr);
        self.hosts()
            .iter()
            .find(|h| h.address == ip)
            .unwrap_or_else(|| panic!("leader {leader} is no lab host"))
            .name
            .clone()
    }

    /// Consul's own view through server1: `servers` voters with one leader, and every lab
    /// host among `members` alive members.
    #[track_caller]
    pub fn assert_cluster_whole(&self, servers: usize, members: usize) {
        let raft = self.api("server1", "/v1/operator/raft/configuration");
        let peers = raft["Servers"].as_array().unwrap();
        assert_eq!(peers.len(), servers, "{raft:#}");
        assert!(peers.iter().all(|s| s["Voter"] == true), "{raft:#}");
        assert_eq!(
            peers.iter().filter(|s| s["Leader"] == true).count(),
            1,
            "{raft:#}"
        );
        let alive = self.alive_members("server1");
        assert_eq!(alive.len(), members, "alive members: {alive:?}");
        for h in self.hosts() {
            assert!(alive.contains(&h.name), "{} not alive: {alive:?}", h.name);
        }
    }

    /// The names of the members Consul (asked through `via`) reports alive.
    #[track_caller]
    pub fn alive_members(&self, via: &str) -> Vec<String> {
        self.api(via, "/v1/agent/members")
            .as_array()
            .expect("a member list")
            .iter()
            .filter(|m| m["Status"] == 1)
            .map(|m| m["Name"].as_str().unwrap().to_string())
            .collect()
    }

    /// `docker exec -i <container> ARGV...` with `input` on stdin (secrets stay out of argv).
    pub fn exec_stdin(&self, host: &str, argv: &[&str], input: &str) -> Out {
        use std::io::Write;
        let c = self.container(host);
        let mut cmd = Command::new("docker");
        cmd.arg("exec").arg("-i").arg(&c).args(argv);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run docker: {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing stdin");
        let output = child.wait_with_output().expect("docker exec");
        Out {
            cmd: format!("docker exec -i {c} {}", argv.join(" ")),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// A Consul HTTP API request on a host with an ACL token (sent on stdin as a header file,
    /// never in a command line): (HTTP status, body). `url` is the whole URL inside the
    /// container; `extra` are more curl arguments (`--cacert ...`, `-X PUT`, `--data ...`).
    #[track_caller]
    pub fn consul_api_token(
        &self,
        host: &str,
        url: &str,
        token: &str,
        extra: &[&str],
    ) -> (u16, String) {
        let mut argv = vec![
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-H",
            "@-",
            "-w",
            "\n%{http_code}",
        ];
        argv.extend_from_slice(extra);
        argv.push(url);
        let out = self.exec_stdin(host, &argv, &format!("X-Consul-Token: {token}\n"));
        let text = out.stdout.trim_end();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Keep only the named hosts in the lab's inventory (the other containers stay up, unused).
    pub fn keep_hosts(&self, keep: &[&str]) {
        let text = std::fs::read_to_string(&self.inventory).unwrap();
        let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
        let hosts = doc["hosts"].as_array_of_tables_mut().unwrap();
        hosts.retain(|t| keep.contains(&t["name"].as_str().unwrap()));
        std::fs::write(&self.inventory, doc.to_string()).unwrap();
    }

    /// Runs `consulctl lab down` now (Drop then does nothing more than a final sweep).
    pub fn down(&mut self) -> Out {
        self.down = true;
        consulctl(&["lab", "down", "--name", &self.name])
    }

    pub fn containers(&self) -> Vec<String> {
        labelled_containers(&self.name)
    }

    pub fn networks(&self) -> Vec<String> {
        labelled_networks(&self.name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        if !self.down {
            let out = consulctl(&["lab", "down", "--name", &self.name]);
            if !out.ok() {
                eprintln!("lab down failed during cleanup:\n{out}");
            }
        }
        let filter = format!("label={LAB_LABEL}={}", self.name);
        let ids = docker(&["ps", "-a", "-q", "--filter", &filter]).stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            let _ = docker(&args);
        }
        let ids = docker(&["network", "ls", "-q", "--filter", &filter]).stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["network", "rm"];
            args.extend(ids);
            let _ = docker(&args);
        }
        let _ = std::fs::remove_file(&self.inventory);
    }
}

/// Runs a future of the lab library to completion (the harness is synchronous).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// Builder for an app container; `run()` starts it.
pub struct AppBuilder {
    lab: String,
    spec: consulctl_lab::AppSpec,
}

impl AppBuilder {
    /// `--env K=V` (e.g. `SERVICE_NAME`, `SERVICE_8080_CHECK_HTTP`).
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.spec.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// `--label K=V` (e.g. `SERVICE_TAGS`).
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.spec.labels.push((k.to_owned(), v.to_owned()));
        self
    }

    /// `--health-cmd CMD --health-interval 1s` (the app image has none of its own). Use
    /// `127.0.0.1`, e.g. `wget -q -O /dev/null http://127.0.0.1:8080/health`.
    pub fn health_cmd(self, cmd: &str) -> Self {
        self.docker_args(&["--health-cmd", cmd, "--health-interval", "1s"])
    }

    /// `--publish-all` (`-P`).
    pub fn publish_all(mut self) -> Self {
        self.spec.publish_all = true;
        self
    }

    /// `--publish P` (`8080`, `18080:8080`, `5353/udp`).
    pub fn publish(mut self, p: &str) -> Self {
        self.spec.publish.push(p.to_owned());
        self
    }

    /// `--expose P` (`9090`, `5353/udp`).
    pub fn expose(mut self, p: &str) -> Self {
        self.spec.expose.push(p.to_owned());
        self
    }

    /// A fixed address on the lab network.
    #[track_caller]
    pub fn ip(mut self, ip: &str) -> Self {
        self.spec.ip = Some(ip.parse().unwrap_or_else(|e| panic!("ip {ip:?}: {e}")));
        self
    }

    /// Another image than the app image.
    pub fn image(mut self, image: &str) -> Self {
        self.spec.image = Some(image.to_owned());
        self
    }

    /// More `docker run` flags (before the image).
    pub fn docker_args(mut self, args: &[&str]) -> Self {
        self.spec
            .docker_args
            .extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The command after the image (default: the image's, HTTP on 8080).
    pub fn command(mut self, argv: &[&str]) -> Self {
        self.spec.command = argv.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Starts the container (building the app image first if needed); panics when it fails.
    #[track_caller]
    pub fn run(self) -> App {
        let c = block_on(consulctl_lab::run_app(&self.lab, &self.spec)).unwrap_or_else(|e| {
            panic!("starting app {} in lab {}: {e:#}", self.spec.name, self.lab)
        });
        App {
            lab: self.lab,
            app: c.app,
            name: c.name,
            id: c.id,
            ip: c.ip.to_string(),
        }
    }
}

/// A started app container. It stays when the handle is dropped (the lab's drop removes it).
#[derive(Debug, Clone)]
pub struct App {
    lab: String,
    app: String,
    name: String,
    id: String,
    ip: String,
}

impl App {
    /// Its address on the lab network (as of `run()`).
    pub fn ip(&self) -> &str {
        &self.ip
    }

    /// The full container ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container name: `consulctl-<lab>-app-<name>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app name given to `lab.app(...)`.
    pub fn app(&self) -> &str {
        &self.app
    }

    #[track_caller]
    fn act(&self, action: consulctl_lab::AppAction) {
        block_on(consulctl_lab::app_action(&self.lab, &self.app, action))
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// `docker start`.
    #[track_caller]
    pub fn start(&self) {
        self.act(consulctl_lab::AppAction::Start)
    }

    /// `docker stop` (the app image's command exits on SIGTERM at once).
    #[track_caller]
    pub fn stop(&self) {
        self.act(consulctl_lab::AppAction::Stop)
    }

    /// `docker kill` (SIGKILL).
    #[track_caller]
    pub fn kill(&self) {
        self.act(consulctl_lab::AppAction::Kill)
    }

    /// `docker pause`.
    #[track_caller]
    pub fn pause(&self) {
        self.act(consulctl_lab::AppAction::Pause)
    }

    /// `docker unpause`.
    #[track_caller]
    pub fn unpause(&self) {
        self.act(consulctl_lab::AppAction::Unpause)
    }

    /// `docker rm --force --volumes`.
    #[track_caller]
    pub fn remove(&self) {
        self.act(consulctl_lab::AppAction::Remove)
    }

    /// `docker exec <container> ARGV...`
    pub fn exec(&self, argv: &[&str]) -> Out {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend_from_slice(argv);
        docker(&args)
    }

    /// The machine's port published for `container_port` (`8080`, `8080/tcp`, `5353/udp`).
    pub fn host_port(&self, container_port: &str) -> Option<u16> {
        let out = docker(&["port", &self.name, container_port]);
        out.stdout
            .lines()
            .filter_map(|l| l.rsplit_once(':'))
            .find_map(|(_, p)| p.trim().parse().ok())
    }

    /// `.State.Status`: `running`, `paused`, `exited`, ...; `None` once removed.
    pub fn status(&self) -> Option<String> {
        let out = docker(&["inspect", "--format", "{{.State.Status}}", &self.name]);
        out.ok().then(|| out.out().to_string())
    }
}

/// Two tests with the same lab name would run on one lab when they overlap.
#[test]
fn lab_names_are_not_shared_by_two_tests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration");
    let mut seen = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            for marker in ["Lab::new(\"", "unique_name(\""] {
                if let Some(rest) = line.split(marker).nth(1) {
                    let name = rest.split('"').next().unwrap().to_string();
                    let here = format!("{}:{}", path.display(), i + 1);
                    if let Some(first) = seen.insert(name.clone(), here.clone()) {
                        panic!("lab name {name:?} used at {first} and {here}");
                    }
                }
            }
        }
    }
    assert!(seen.len() > 5, "lab names found: {seen:?}");
}

/// `http_get` against a one-shot local server: the request it sends, a plain and a chunked
/// answer, and a refused connection as `Err`.
#[test]
fn http_get_reads_status_and_bodies() {
    fn serve_once(answer: &'static [u8]) -> (u16, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "request cut short");
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(answer).unwrap();
            String::from_utf8(request).unwrap()
        });
        (port, handle)
    }

    let (port, server) =
        serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    let got = http_get("127.0.0.1", port, "/x?y=1", Some("web.lb")).unwrap();
    assert_eq!(got, (200, "hello".to_string()));
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /x?y=1 HTTP/1.1\r\nHost: web.lb\r\n"),
        "{request}"
    );
    assert!(request.contains("Connection: close\r\n"), "{request}");

    let (port, server) = serve_once(
        b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n\
          4\r\nno b\r\n7;x=1\r\nackends\r\n0\r\n\r\n",
    );
    let got = http_get("127.0.0.1", port, "/", None).unwrap();
    assert_eq!(got, (503, "no backends".to_string()));
    let request = server.join().unwrap();
    assert!(
        request.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{request}"
    );

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(http_get("127.0.0.1", port, "/", None).is_err());
}
