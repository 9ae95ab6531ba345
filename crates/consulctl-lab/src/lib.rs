//! The lab: Docker containers with sshd as hosts for consulctl (`consulctl lab up|down`, the
//! integration tests, the benchmarks).
//!
//! Everything goes through the `docker` CLI (argv entries, never a shell):
//! - images are built only when missing; each tag carries a short hash of its build inputs
//!   (the debootstrap recipe, the embedded files under `files/`), so a change rebuilds;
//!   builds run under a lock file in the cache dir, so concurrent `lab up`s share one build;
//! - the base image is a `debootstrap --variant=minbase` tree imported with `docker import`
//!   (no registry is needed); the supervisord and systemd images are built `FROM` it;
//! - each lab is a labelled network (`consulctl.lab=<name>`) with labelled containers at fixed
//!   addresses, a per-lab SSH key and known_hosts under `<cache>/labs/<name>/`, and a generated
//!   inventory file (`inventory/<name>.toml` by default);
//! - DNS plumbing: every image has `dnsmasq` (never started by the lab) and the systemd image
//!   has `systemd-resolved` (disabled). `--resolved-hosts` starts systemd hosts in "resolved
//!   mode" (CAP_SYS_ADMIN; `/sbin/init consulctl.lab.resolved`), where the image's units replace
//!   Docker's bind-mounted `/etc/resolv.conf` with the stub symlink and run systemd-resolved
//!   (`files/resolved-mode.sh`);
//! - every lab host container carries the label `SERVICE_IGNORE=1` (registrator convention: a
//!   registrar never registers lab hosts). `--docker-hosts` makes hosts "Docker hosts": the
//!   machine's Docker socket is mounted at `/var/run/docker.sock` (they see every container of
//!   the machine; no Docker CLI inside, `curl --unix-socket` works) and the inventory tags them
//!   `docker`;
//! - load-balancer flavour: every image has Debian's `nginx` (with `libnginx-mod-stream`) and
//!   `haproxy`, installed but never started by the lab (the systemd image disables both units,
//!   the supervisord image has no program for them; a drop-in lets haproxy.service start in an
//!   unprivileged container); `consulctl apply` starts them where the inventory asks. `--lb-hosts` tags hosts `lb` in the inventory (nothing else differs);
//! - app containers (`apps`: [`run_app`], [`app_action`]) are test applications on the lab's
//!   network, from a tiny locally built busybox image; `lab down` removes them with the hosts.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use ipnet::Ipv4Net;
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use consulctl_core::error::Error;
use consulctl_core::model::{Init, Role};

mod apps;
pub use apps::{
    app_action, app_container_name, app_image_tag, app_run_args, ensure_app_image, lab_apps,
    run_app, validate_app_name, AppAction, AppContainer, AppSpec, APP_HTTP_PORT, APP_LABEL,
};

/// The Docker label every lab container and network carries: `consulctl.lab=<lab name>`.
pub const LAB_LABEL: &str = "consulctl.lab";
/// The Docker label carrying a lab container's host name (`server1`, `client2`, ...).
pub const HOST_LABEL: &str = "consulctl.lab.host";
/// The Docker label of a lab Docker host's container (`consulctl.lab.docker=1`).
pub const DOCKER_HOST_LABEL: &str = "consulctl.lab.docker";
/// The Docker label of a lab LB host's container (`consulctl.lab.lb=1`).
pub const LB_HOST_LABEL: &str = "consulctl.lab.lb";
/// The machine's Docker socket; a lab Docker host has it mounted at the same path.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The non-root SSH user with passwordless sudo that every lab host has.
pub const SUDO_USER: &str = "deploy";
/// Consul version of the binary the lab uses (Debian bullseye's `consul` package).
pub const LAB_CONSUL_VERSION: &str = "1.8.7";

/// The base image: what `debootstrap` installs.
const DEBIAN_SUITE: &str = "bookworm";
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
///
/// `dnsmasq` and `systemd-resolved` are for host DNS plumbing: both are installed but not
/// enabled (the systemd image disables them, the supervisord image purges `systemd-resolved`);
/// consulctl configures and starts whichever it uses. `netcat-openbsd` serves script checks.
/// `nginx` (with the stream module, `libnginx-mod-stream`) and `haproxy` are for load-balancer
/// hosts: installed everywhere, never started by the lab (the systemd image disables both);
/// consulctl's `apply` starts them under the host's init system where the inventory asks.
const BASE_PACKAGES: &str = "openssh-server,iproute2,procps,supervisor,systemd,systemd-sysv,dbus,\
                             ca-certificates,curl,dnsutils,netcat-openbsd,sudo,unzip,gzip,zstd,less,\
                             dnsmasq,systemd-resolved,nginx,libnginx-mod-stream,haproxy";
/// Bump to force a rebuild of the base image when its recipe changes in a way the inputs
/// below do not show (base-2: `/etc/resolv.conf` is reset to a plain file after debootstrap).
const BASE_RECIPE_REV: &str = "base-2";

/// Where the lab's consul `.deb` comes from.
const CONSUL_SUITE_LINE: &str = "deb http://deb.debian.org/debian bullseye main";

/// Build inputs embedded in the binary: (file name in the build context, contents).
const COMMON_FILES: &[(&str, &str)] = &[
    ("sshd_config", include_str!("../files/sshd_config")),
    ("setup-common.sh", include_str!("../files/setup-common.sh")),
];
const SUPERVISORD_FILES: &[(&str, &str)] = &[
    (
        "Dockerfile",
        include_str!("../files/supervisord.Dockerfile"),
    ),
    (
        "setup-supervisord.sh",
        include_str!("../files/setup-supervisord.sh"),
    ),
    (
        "supervisord-entrypoint.sh",
        include_str!("../files/supervisord-entrypoint.sh"),
    ),
    (
        "supervisor-sshd.conf",
        include_str!("../files/supervisor-sshd.conf"),
    ),
];
const SYSTEMD_FILES: &[(&str, &str)] = &[
    ("Dockerfile", include_str!("../files/systemd.Dockerfile")),
    (
        "setup-systemd.sh",
        include_str!("../files/setup-systemd.sh"),
    ),
    (
        "ssh-hostkeys.service",
        include_str!("../files/ssh-hostkeys.service"),
    ),
    (
        "resolved-lab.conf",
        include_str!("../files/resolved-lab.conf"),
    ),
    (
        "resolved-mode.sh",
        include_str!("../files/resolved-mode.sh"),
    ),
    (
        "resolved-mode.service",
        include_str!("../files/resolved-mode.service"),
    ),
    (
        "resolved-docker-dns.service",
        include_str!("../files/resolved-docker-dns.service"),
    ),
    (
        "haproxy-lab.conf",
        include_str!("../files/haproxy-lab.conf"),
    ),
];

/// The word a resolved-mode host's PID 1 gets as argument (`/sbin/init consulctl.lab.resolved`):
/// in a container systemd reads its arguments as the kernel command line, and the image's
/// resolved-mode units run only with it (`ConditionKernelCommandLine=`).
const RESOLVED_MODE_ARG: &str = "consulctl.lab.resolved";
/// Where `/etc/resolv.conf` points on a resolved-mode host.
pub const RESOLVED_STUB_LINK: &str = "../run/systemd/resolve/stub-resolv.conf";

/// How long one host may take to answer SSH (and, for systemd, to finish booting).
const HOST_READY_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// The cache dir: `$CONSULCTL_CACHE_DIR`, else `$XDG_CACHE_HOME/consulctl`, else
/// `$HOME/.cache/consulctl`. Always absolute.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let dir = if let Some(d) = nonempty("CONSULCTL_CACHE_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = nonempty("XDG_CACHE_HOME") {
        PathBuf::from(d).join("consulctl")
    } else if let Some(h) = nonempty("HOME") {
        PathBuf::from(h).join(".cache").join("consulctl")
    } else {
        bail!("cannot find a cache dir: set CONSULCTL_CACHE_DIR (or HOME)");
    };
    std::path::absolute(&dir).with_context(|| format!("cache dir {}", dir.display()))
}

/// Per-lab state: SSH keypair (`id_ed25519`, `id_ed25519.pub`), `known_hosts`.
pub fn lab_state_dir(cache: &Path, lab: &str) -> PathBuf {
    cache.join("labs").join(lab)
}

/// The inventory `lab up` writes unless `--inventory` is given: `inventory/<name>.toml`.
pub fn default_inventory_path(lab: &str) -> PathBuf {
    PathBuf::from("inventory").join(format!("{lab}.toml"))
}

/// The Docker container name of a lab host: `consulctl-<lab>-<host>`.
pub fn container_name(lab: &str, host: &str) -> String {
    format!("consulctl-{lab}-{host}")
}

/// The Docker network name of a lab: `consulctl-<lab>`.
pub fn network_name(lab: &str) -> String {
    format!("consulctl-{lab}")
}

/// First line of every inventory `lab up` writes; `lab down` deletes only files starting so.
const INVENTORY_HEADER_PREFIX: &str = "# Generated by `consulctl lab up";

// ---------------------------------------------------------------------------------------------
// Pure planning: names, addresses, init systems, the inventory text
// ---------------------------------------------------------------------------------------------

/// One planned lab host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    /// Host name, Consul node name and container hostname: `server1`, `client1`, ...
    pub name: String,
    pub role: Role,
    pub init: Init,
    pub address: Ipv4Addr,
    /// SSH user written into the inventory for this host: `root` or [`SUDO_USER`].
    pub ssh_user: &'static str,
    /// Resolved mode (systemd hosts only): `/etc/resolv.conf` is systemd-resolved's stub symlink
    /// instead of Docker's bind mount. See [`UpSpec::resolved_hosts`].
    pub resolved_mode: bool,
    /// Docker host: the machine's Docker socket is mounted into the container and the inventory
    /// tags the host `docker`. See [`UpSpec::docker_hosts`].
    pub docker_host: bool,
    /// Load-balancer host: the inventory tags the host `lb`. See [`UpSpec::lb_hosts`].
    pub lb_host: bool,
}

/// How the lab's hosts run their services: all supervisord, all systemd, or alternating
/// (servers and clients of both kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LabInit {
    Supervisord,
    Systemd,
    Mixed,
}

/// Lab names go into container, network and node names: lowercase letters, digits and `-`.
pub fn validate_lab_name(name: &str) -> anyhow::Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && !name.ends_with('-');
    if name.is_empty() || name.len() > 32 || !ok_chars || !ok_ends {
        bail!(
            "invalid lab name {name:?}: use 1-32 lowercase letters, digits and '-' \
             (starting with a letter or digit, not ending with '-')"
        );
    }
    Ok(())
}

/// Address offsets inside the lab subnet: servers from .11, clients from .21 (or the next
/// multiple of ten past the servers when there are more than ten).
fn address_offsets(servers: u32) -> (u32, u32) {
    let server_start = 11;
    let client_start = server_start + servers.div_ceil(10).max(1) * 10;
    (server_start, client_start)
}

/// Plans the hosts: names, roles, init systems, addresses, SSH users. Pure.
///
/// `mixed` alternates over all hosts in order (server1 systemd, server2 supervisord, server3
/// systemd, client1 supervisord, ...). Every second host of each role (server2, client2, ...)
/// is reached as [`SUDO_USER`] instead of root.
pub fn plan_hosts(
    servers: u32,
    clients: u32,
    init: LabInit,
    subnet: Ipv4Net,
) -> anyhow::Result<Vec<LabHost>> {
    if servers == 0 {
        bail!("--servers must be at least 1");
    }
    let (server_start, client_start) = address_offsets(servers);
    let last = if clients > 0 {
        client_start + clients - 1
    } else {
        server_start + servers - 1
    };
    // Usable offsets: 1 .. size-2 (network and broadcast excluded); .1 is Docker's gateway.
    let size: u64 = 1u64 << (32 - subnet.prefix_len());
    if u64::from(last) > size.saturating_sub(2) {
        bail!(
            "{servers} servers and {clients} clients do not fit into {subnet}: the last host \
             would be at offset {last} (servers start at .{server_start}, clients at \
             .{client_start}); use fewer hosts or a larger --subnet"
        );
    }
    let base = u32::from(subnet.network());
    let mut hosts = Vec::new();
    let roles = (1..=servers)
        .map(|i| (Role::Server, i, server_start + i - 1))
        .chain((1..=clients).map(|i| (Role::Client, i, client_start + i - 1)));
    for (n, (role, i, offset)) in roles.enumerate() {
        let init = match init {
            LabInit::Systemd => Init::Systemd,
            LabInit::Supervisord => Init::Supervisord,
            LabInit::Mixed if n % 2 == 0 => Init::Systemd,
            LabInit::Mixed => Init::Supervisord,
        };
        hosts.push(LabHost {
            name: format!("{}{i}", role.as_str()),
            role,
            init,
            address: Ipv4Addr::from(base + offset),
            ssh_user: if i % 2 == 0 { SUDO_USER } else { "root" },
            resolved_mode: false,
            docker_host: false,
            lb_host: false,
        });
    }
    Ok(hosts)
}

/// Puts the named hosts into resolved mode. Pure. Every name must be a planned systemd host.
pub fn mark_resolved_hosts(hosts: &mut [LabHost], names: &[String]) -> anyhow::Result<()> {
    for name in names {
        let name = name.trim();
        if name.is_empty() {
            bail!("--resolved-hosts: empty host name");
        }
        let systemd_hosts = || {
            let names: Vec<&str> = hosts
                .iter()
                .filter(|h| h.init == Init::Systemd)
                .map(|h| h.name.as_str())
                .collect();
            if names.is_empty() {
                "none (use --init systemd or mixed)".to_owned()
            } else {
                names.join(", ")
            }
        };
        let Some(i) = hosts.iter().position(|h| h.name == name) else {
            bail!(
                "--resolved-hosts: this lab has no host {name:?} (its systemd hosts: {})",
                systemd_hosts()
            );
        };
        if hosts[i].init != Init::Systemd {
            bail!(
                "--resolved-hosts: {name} runs {}, but resolved mode needs systemd \
                 (this lab's systemd hosts: {})",
                hosts[i].init.as_str(),
                systemd_hosts()
            );
        }
        hosts[i].resolved_mode = true;
    }
    Ok(())
}

/// The names of the planned hosts, for messages: `server1, client1, client2`.
fn planned_names(hosts: &[LabHost]) -> String {
    hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of the planned host `name` (trimmed) for the option `flag`; the error names the
/// hosts this lab has.
fn planned_host(hosts: &[LabHost], flag: &str, name: &str) -> anyhow::Result<usize> {
    let name = name.trim();
    if name.is_empty() {
        bail!("{flag}: empty host name");
    }
    hosts.iter().position(|h| h.name == name).ok_or_else(|| {
        anyhow!(
            "{flag}: this lab has no host {name:?} (its hosts: {})",
            planned_names(hosts)
        )
    })
}

/// Makes the named hosts Docker hosts (the machine's Docker socket mounted, tag `docker`).
/// Pure. Every name must be a planned host.
pub fn mark_docker_hosts(hosts: &mut [LabHost], names: &[String]) -> anyhow::Result<()> {
    for name in names {
        let i = planned_host(hosts, "--docker-hosts", name)?;
        hosts[i].docker_host = true;
    }
    Ok(())
}

/// Makes the named hosts load-balancer hosts (tag `lb`; every lab host has nginx and haproxy
/// installed, not running). Pure. Every name must be a planned host.
pub fn mark_lb_hosts(hosts: &mut [LabHost], names: &[String]) -> anyhow::Result<()> {
    for name in names {
        let i = planned_host(hosts, "--lb-hosts", name)?;
        hosts[i].lb_host = true;
    }
    Ok(())
}

/// The inventory tags of a lab host: `lab`, `docker` for a Docker host, `lb` for a
/// load-balancer host. Pure.
pub fn host_tags(host: &LabHost) -> Vec<&'static str> {
    let mut tags = vec!["lab"];
    if host.docker_host {
        tags.push("docker");
    }
    if host.lb_host {
        tags.push("lb");
    }
    tags
}

/// What goes into a generated inventory besides the hosts.
#[derive(Debug, Clone)]
pub struct InventorySpec<'a> {
    pub lab: &'a str,
    pub init: LabInit,
    pub consul_deb: &'a Path,
    pub identity_file: &'a Path,
    pub known_hosts: &'a Path,
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn toml_path(p: &Path) -> String {
    toml_str(&p.to_string_lossy())
}

/// Renders the lab inventory (the schema `inventory.rs` parses). Pure.
pub fn render_inventory(spec: &InventorySpec<'_>, hosts: &[LabHost]) -> String {
    let cluster_init = match spec.init {
        LabInit::Supervisord => Init::Supervisord,
        LabInit::Systemd | LabInit::Mixed => Init::Systemd,
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{INVENTORY_HEADER_PREFIX} --name {}`; machine-specific, git-ignored.",
        spec.lab
    );
    let _ = writeln!(s, "[cluster]");
    let _ = writeln!(s, "name = {}", toml_str(spec.lab));
    let _ = writeln!(s, "datacenter = {}", toml_str(spec.lab));
    let _ = writeln!(s, "domain = \"consul\"");
    let _ = writeln!(s, "init = {}", toml_str(cluster_init.as_str()));
    let _ = writeln!(s, "log_level = \"INFO\"");
    let _ = writeln!(s);
    let _ = writeln!(s, "[consul]");
    let _ = writeln!(s, "version = {}", toml_str(LAB_CONSUL_VERSION));
    let _ = writeln!(s, "source = {{ file = {} }}", toml_path(spec.consul_deb));
    let _ = writeln!(s);
    let _ = writeln!(s, "[ssh]");
    let _ = writeln!(s, "user = \"root\"");
    let _ = writeln!(s, "identity_file = {}", toml_path(spec.identity_file));
    let _ = writeln!(s, "known_hosts = {}", toml_path(spec.known_hosts));
    let _ = writeln!(s, "host_keys = \"strict\"");
    let _ = writeln!(s);
    let _ = writeln!(s, "[config]");
    let _ = writeln!(s, "performance = {{ raft_multiplier = 1 }}");
    for h in hosts {
        let _ = writeln!(s);
        if h.resolved_mode {
            let _ = writeln!(
                s,
                "# resolved mode: /etc/resolv.conf -> {RESOLVED_STUB_LINK} (systemd-resolved)"
            );
        }
        let _ = writeln!(s, "[[hosts]]");
        let _ = writeln!(s, "name = {}", toml_str(&h.name));
        let _ = writeln!(s, "address = {}", toml_str(&h.address.to_string()));
        let _ = writeln!(s, "role = {}", toml_str(h.role.as_str()));
        let _ = writeln!(s, "init = {}", toml_str(h.init.as_str()));
        let tags: Vec<String> = host_tags(h).into_iter().map(toml_str).collect();
        let _ = writeln!(s, "tags = [{}]", tags.join(", "));
        if h.ssh_user != "root" {
            let _ = writeln!(s, "ssh = {{ user = {} }}", toml_str(h.ssh_user));
        }
    }
    s
}

fn nets_overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The /24s of 10.213.0.0/16 that overlap none of `taken`, in order.
fn free_subnets(taken: &[Ipv4Net]) -> Vec<Ipv4Net> {
    (0..=255u8)
        .filter_map(|k| Ipv4Net::new(Ipv4Addr::new(10, 213, k, 0), 24).ok())
        .filter(|c| !taken.iter().any(|t| nets_overlap(c, t)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

fn show_cmd<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut s = program.to_owned();
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

/// Runs a program to completion with its output captured; a non-zero exit is an error that
/// carries the program's stderr (and the end of stdout).
async fn run_capture<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    cwd: Option<&Path>,
    envs: &[(&str, &str)],
) -> anyhow::Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("cannot run `{program}` (is it installed and on PATH?)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut msg = format!("`{}` failed ({})", show_cmd(program, args), out.status);
        let stderr = tail_lines(stderr.trim(), 30);
        if !stderr.is_empty() {
            let _ = write!(msg, ": {stderr}");
        }
        let stdout_tail = tail_lines(stdout.trim(), 15);
        if !stdout_tail.is_empty() {
            let _ = write!(msg, "\n  stdout (end): {stdout_tail}");
        }
        return Err(anyhow!(msg));
    }
    Ok(stdout)
}

fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `docker ARGS...`, stdout on success, an error with docker's stderr otherwise.
pub async fn docker<S: AsRef<OsStr>>(args: &[S]) -> anyhow::Result<String> {
    run_capture("docker", args, None, &[]).await
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A program on PATH, or in the sbin dirs a non-root PATH often lacks.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn elapsed(t: Instant) -> String {
    format!("{:.1}s", t.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------------------------

/// An exclusive `flock(2)` on a file; released when dropped (or when the process dies).
pub struct FileLock {
    _file: std::fs::File,
}

/// Takes the exclusive lock on `path` (created if missing), waiting for other holders.
/// `what` is printed when we have to wait.
pub async fn lock_file(path: &Path, what: &str) -> anyhow::Result<FileLock> {
    use std::os::fd::AsRawFd as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    // SAFETY: flock on a valid, open file descriptor owned by `file`.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(FileLock { _file: file });
    }
    println!(
        "lab: waiting for another consulctl ({what}; lock {})",
        path.display()
    );
    let lock_path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        // SAFETY: as above; this blocks until the other holder releases the lock.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", lock_path.display()));
        }
        Ok(FileLock { _file: file })
    })
    .await
    .context("lock task")?
}

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

/// The lab's image tags (with their input hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabImages {
    pub base: String,
    pub supervisord: String,
    pub systemd: String,
}

impl LabImages {
    pub fn for_init(&self, init: Init) -> &str {
        match init {
            Init::Systemd => &self.systemd,
            Init::Supervisord => &self.supervisord,
        }
    }
}

fn short_hash(parts: &[&str]) -> String {
    let joined = parts.join("\u{0}");
    consulctl_core::hash::sha256_hex(joined.as_bytes())[..12].to_owned()
}

fn files_hash(kind: &str, base_tag: &str, files: &[&[(&str, &str)]]) -> String {
    let mut parts = vec![kind, base_tag];
    for group in files {
        for (name, content) in *group {
            parts.push(name);
            parts.push(content);
        }
    }
    short_hash(&parts)
}

/// The image tags for the embedded build inputs. Pure.
pub fn image_tags() -> LabImages {
    let base = format!(
        "consulctl-lab-base:{}",
        short_hash(&[
            BASE_RECIPE_REV,
            DEBIAN_SUITE,
            DEBIAN_MIRROR,
            "minbase",
            BASE_PACKAGES
        ])
    );
    let supervisord = format!(
        "consulctl-lab-supervisord:{}",
        files_hash("supervisord", &base, &[COMMON_FILES, SUPERVISORD_FILES])
    );
    let systemd = format!(
        "consulctl-lab-systemd:{}",
        files_hash("systemd", &base, &[COMMON_FILES, SYSTEMD_FILES])
    );
    LabImages {
        base,
        supervisord,
        systemd,
    }
}

async fn image_exists(tag: &str) -> anyhow::Result<bool> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .context("cannot run `docker` (is it installed and on PATH?)")?;
    if out.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No such image") || stderr.contains("No such object") {
        Ok(false)
    } else {
        bail!("`docker image inspect {tag}` failed: {}", stderr.trim())
    }
}

/// Builds the lab images that are missing (under the image lock) and returns their tags.
pub async fn ensure_images(cache: &Path) -> anyhow::Result<LabImages> {
    let tags = image_tags();
    if image_exists(&tags.supervisord).await? && image_exists(&tags.systemd).await? {
        return Ok(tags);
    }
    let _lock = lock_file(
        &cache.join("locks").join("images.lock"),
        "building lab images",
    )
    .await?;
    let build_root = cache.join("build");
    // Whatever is in the build dir is left from a crashed build: we hold the lock.
    clean_build_root(&build_root)?;
    let result = build_missing(&tags, &build_root).await;
    let cleanup = clean_build_root(&build_root);
    result?;
    cleanup?;
    Ok(tags)
}

async fn build_missing(tags: &LabImages, build_root: &Path) -> anyhow::Result<()> {
    // Deleting the debootstrap tree is slow on some disks: it runs while the derived images
    // build (they need only the imported base image).
    let mut rootfs_removal = None;
    if !image_exists(&tags.base).await? {
        let rootfs = build_base_image(&tags.base, build_root).await?;
        rootfs_removal = Some(tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(&rootfs)
                .with_context(|| format!("removing {}", rootfs.display()))
        }));
    }
    let derived =
        |tag: &str, files: &'static [(&'static str, &'static str)], kind: &'static str| {
            let (tag, base) = (tag.to_owned(), tags.base.clone());
            async move {
                if !image_exists(&tag).await? {
                    build_derived_image(&tag, &base, kind, files, build_root).await?;
                }
                anyhow::Ok(())
            }
        };
    let built = tokio::try_join!(
        derived(&tags.supervisord, SUPERVISORD_FILES, "supervisord"),
        derived(&tags.systemd, SYSTEMD_FILES, "systemd"),
    );
    if let Some(removal) = rootfs_removal {
        removal.await.context("rootfs removal task")??;
    }
    built.map(|_| ())
}

/// Removes everything under the build root, unmounting leftovers first (a crashed debootstrap
/// can leave `proc`/`sys` mounted inside its target).
fn clean_build_root(build_root: &Path) -> anyhow::Result<()> {
    if !build_root.exists() {
        return Ok(());
    }
    unmount_under(build_root);
    std::fs::remove_dir_all(build_root)
        .with_context(|| format!("removing build dir {}", build_root.display()))
}

/// Unmounts (lazily) every mount point under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let Ok(dir) = dir.canonicalize() else {
        return;
    };
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `/proc/mounts` escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Finds debootstrap, installing it with apt-get when we are root on a Debian-like host.
async fn ensure_debootstrap() -> anyhow::Result<PathBuf> {
    if let Some(p) = find_program("debootstrap") {
        return Ok(p);
    }
    let apt = find_program("apt-get");
    if is_root() && apt.is_some() && Path::new("/etc/debian_version").exists() {
        println!("lab: debootstrap is missing; installing it: apt-get update && apt-get install -y debootstrap");
        let env = [("DEBIAN_FRONTEND", "noninteractive")];
        run_capture("apt-get", &["update"], None, &env).await?;
        run_capture("apt-get", &["install", "-y", "debootstrap"], None, &env).await?;
        return find_program("debootstrap")
            .ok_or_else(|| anyhow!("apt-get installed debootstrap but it is not on PATH"));
    }
    bail!(
        "debootstrap is needed to build the lab base image (once) but is not installed: \
         install it (Debian/Ubuntu: `sudo apt-get install debootstrap`) and run as root"
    )
}

/// Builds the base image; returns the debootstrap tree, which the caller deletes.
async fn build_base_image(tag: &str, build_root: &Path) -> anyhow::Result<PathBuf> {
    let debootstrap = ensure_debootstrap().await?;
    if !is_root() {
        bail!("building the lab base image {tag} runs debootstrap, which needs root: run `consulctl lab up` once as root (e.g. with sudo)");
    }
    let t = Instant::now();
    println!(
        "lab: building {tag}: debootstrap {DEBIAN_SUITE} from {DEBIAN_MIRROR} (takes 1-3 minutes, once)"
    );
    std::fs::create_dir_all(build_root)
        .with_context(|| format!("creating {}", build_root.display()))?;
    let rootfs = build_root.join(format!("rootfs-{}", std::process::id()));
    let include = format!("--include={BASE_PACKAGES}");
    let args: Vec<&OsStr> = vec![
        OsStr::new("--variant=minbase"),
        OsStr::new(&include),
        OsStr::new(DEBIAN_SUITE),
        rootfs.as_os_str(),
        OsStr::new(DEBIAN_MIRROR),
    ];
    run_capture(&debootstrap.to_string_lossy(), &args, Some(build_root), &[])
        .await
        .with_context(|| format!("debootstrap for the lab base image {tag}"))?;
    println!("lab: debootstrap done after {}", elapsed(t));
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        empty_dir_files(&rootfs.join(dir))?;
    }
    reset_resolv_conf(&rootfs)?;
    // Mounts debootstrap may have left must not end up in the tarball (nor be deleted through).
    unmount_under(&rootfs);

    let t_import = Instant::now();
    let rootfs2 = rootfs.clone();
    let tag2 = tag.to_owned();
    let err_file = build_root.join("tar.stderr");
    tokio::task::spawn_blocking(move || import_rootfs(&rootfs2, &tag2, &err_file))
        .await
        .context("import task")??;
    println!(
        "lab: built {tag} in {} (docker import: {})",
        elapsed(t),
        elapsed(t_import)
    );
    Ok(rootfs)
}

/// Makes the tree's `/etc/resolv.conf` a plain placeholder file. debootstrap copies the build
/// host's file in, and `systemd-resolved`'s postinst turns it into a symlink to
/// `../run/systemd/resolve/stub-resolv.conf`, which does not exist in a container: Docker
/// bind-mounts its own resolv.conf over this path in every container (and `docker build` step),
/// and a dangling symlink there would redirect that mount into `/run`.
fn reset_resolv_conf(rootfs: &Path) -> anyhow::Result<()> {
    let etc = rootfs.join("etc");
    for name in ["resolv.conf", ".resolv.conf.systemd-resolved.bak"] {
        let p = etc.join(name);
        // symlink_metadata: never follow a link out of the tree.
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let p = etc.join("resolv.conf");
    std::fs::write(
        &p,
        "# consulctl lab: Docker bind-mounts its own resolv.conf here in every container.\n",
    )
    .with_context(|| format!("writing {}", p.display()))
}

/// Removes the regular files directly in `dir` (keeps subdirectories such as `partial/`).
fn empty_dir_files(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e?;
        if !e.file_type()?.is_dir() {
            std::fs::remove_file(e.path())
                .with_context(|| format!("removing {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// `tar -C ROOTFS -c . | docker import - TAG`.
fn import_rootfs(rootfs: &Path, tag: &str, err_file: &Path) -> anyhow::Result<()> {
    use std::process::Command as StdCommand;
    let tar_err = std::fs::File::create(err_file)?;
    let mut tar = StdCommand::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(tar_err))
        .spawn()
        .context("cannot run `tar`")?;
    let tar_out = tar.stdout.take().context("tar stdout")?;
    let import = StdCommand::new("docker")
        .args([
            "import",
            "--message",
            "consulctl lab base (debootstrap)",
            "-",
            tag,
        ])
        .stdin(Stdio::from(tar_out))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run `docker import`")?;
    let tar_status = tar.wait().context("waiting for tar")?;
    if !import.status.success() {
        bail!(
            "`docker import - {tag}` failed ({}): {}",
            import.status,
            String::from_utf8_lossy(&import.stderr).trim()
        );
    }
    if !tar_status.success() {
        let err = std::fs::read_to_string(err_file).unwrap_or_default();
        bail!(
            "`tar -C {} -c .` failed ({tar_status}): {}",
            rootfs.display(),
            tail_lines(err.trim(), 20)
        );
    }
    Ok(())
}

/// `docker build` of the context dir `ctx` (its `Dockerfile`) as `tag`, labelled
/// `consulctl.lab.image=1`, with the classic builder (it needs no buildx plugin and uses local
/// images as they are).
async fn docker_build(ctx: &Path, tag: &str, build_args: &[String]) -> anyhow::Result<()> {
    let mut args: Vec<&str> = vec!["build"];
    for a in build_args {
        args.extend(["--build-arg", a.as_str()]);
    }
    args.extend([
        "--label",
        "consulctl.lab.image=1",
        "--tag",
        tag,
        "--file",
        "Dockerfile",
        ".",
    ]);
    run_capture("docker", &args, Some(ctx), &[("DOCKER_BUILDKIT", "0")])
        .await
        .with_context(|| format!("building the lab image {tag}"))?;
    Ok(())
}

async fn build_derived_image(
    tag: &str,
    base: &str,
    kind: &str,
    files: &[(&str, &str)],
    build_root: &Path,
) -> anyhow::Result<()> {
    let t = Instant::now();
    println!("lab: building {tag}");
    let ctx = build_root.join(format!("ctx-{kind}-{}", std::process::id()));
    std::fs::create_dir_all(&ctx).with_context(|| format!("creating {}", ctx.display()))?;
    for (name, content) in COMMON_FILES.iter().chain(files) {
        std::fs::write(ctx.join(name), content)
            .with_context(|| format!("writing {}", ctx.join(name).display()))?;
    }
    docker_build(&ctx, tag, &[format!("BASE_IMAGE={base}")]).await?;
    std::fs::remove_dir_all(&ctx).with_context(|| format!("removing {}", ctx.display()))?;
    println!("lab: built {tag} in {}", elapsed(t));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The consul .deb
// ---------------------------------------------------------------------------------------------

fn find_consul_deb(dir: &Path) -> Option<PathBuf> {
    find_deb(dir, "consul_1.8.7")
}

/// The last (by name) `<prefix>*.deb` in `dir`.
fn find_deb(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Debian bullseye's `consul` package (1.8.7) in `<cache>/downloads/`, downloaded once with
/// apt-get and a temporary sources list (touching none of the host's apt state).
pub async fn ensure_consul_deb(cache: &Path) -> anyhow::Result<PathBuf> {
    let downloads = cache.join("downloads");
    if let Some(p) = find_consul_deb(&downloads) {
        return Ok(p);
    }
    let _lock = lock_file(
        &cache.join("locks").join("downloads.lock"),
        "downloading consul",
    )
    .await?;
    if let Some(p) = find_consul_deb(&downloads) {
        return Ok(p);
    }
    if find_program("apt-get").is_none() {
        bail!(
            "the lab needs Debian bullseye's consul {LAB_CONSUL_VERSION} .deb and fetches it \
             with apt-get, which is missing here: put the file (consul_1.8.7*.deb) into {}",
            downloads.display()
        );
    }
    let t = Instant::now();
    println!(
        "lab: downloading consul {LAB_CONSUL_VERSION} (Debian bullseye's package) with apt-get"
    );
    let dest = apt_download(&downloads, CONSUL_SUITE_LINE, "consul", "consul_1.8.7").await?;
    println!("lab: downloaded {} in {}", dest.display(), elapsed(t));
    Ok(dest)
}

/// Downloads one Debian package (`<prefix>*.deb`) into `downloads` with apt-get and a
/// temporary sources list (`suite_line`) and lists dir, touching none of the host's apt state.
/// The caller holds the downloads lock.
async fn apt_download(
    downloads: &Path,
    suite_line: &str,
    package: &str,
    prefix: &str,
) -> anyhow::Result<PathBuf> {
    let work = downloads.join(format!(".apt-{}", std::process::id()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    for d in ["lists/partial", "cache/archives/partial", "out"] {
        std::fs::create_dir_all(work.join(d))
            .with_context(|| format!("creating {}", work.join(d).display()))?;
    }
    let sources = work.join("sources.list");
    std::fs::write(&sources, format!("{suite_line}\n"))?;
    let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
    let opts = [
        "-o".to_owned(),
        opt("Dir::Etc::SourceList", &sources),
        "-o".to_owned(),
        "Dir::Etc::SourceParts=/dev/null".to_owned(),
        "-o".to_owned(),
        opt("Dir::State::Lists", &work.join("lists")),
        "-o".to_owned(),
        opt("Dir::Cache", &work.join("cache")),
        "-o".to_owned(),
        "Acquire::Languages=none".to_owned(),
        "-o".to_owned(),
        "APT::Get::List-Cleanup=0".to_owned(),
    ];
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    let result = async {
        let mut update: Vec<String> = opts.to_vec();
        update.extend(["-q".to_owned(), "update".to_owned()]);
        run_capture("apt-get", &update, Some(&work), &env)
            .await
            .with_context(|| {
                format!("apt-get update with a temporary sources list ({suite_line})")
            })?;
        let mut download: Vec<String> = opts.to_vec();
        download.extend(["-q".to_owned(), "download".to_owned(), package.to_owned()]);
        run_capture("apt-get", &download, Some(&work.join("out")), &env)
            .await
            .with_context(|| format!("apt-get download {package}"))?;
        let deb = find_deb(&work.join("out"), prefix)
            .ok_or_else(|| anyhow!("apt-get download {package} gave no {prefix}*.deb"))?;
        let dest = downloads.join(deb.file_name().context("deb file name")?);
        std::fs::rename(&deb, &dest).with_context(|| format!("moving to {}", dest.display()))?;
        anyhow::Ok(dest)
    }
    .await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

// ---------------------------------------------------------------------------------------------
// Docker objects
// ---------------------------------------------------------------------------------------------

fn label_filter(lab: &str) -> String {
    format!("label={LAB_LABEL}={lab}")
}

/// IDs of the containers labelled `consulctl.lab=<lab>` (running or not).
pub async fn lab_containers(lab: &str) -> anyhow::Result<Vec<String>> {
    let out = docker(&[
        "ps",
        "-a",
        "-q",
        "--no-trunc",
        "--filter",
        &label_filter(lab),
    ])
    .await?;
    Ok(out.split_whitespace().map(str::to_owned).collect())
}

/// IDs of the networks labelled `consulctl.lab=<lab>`.
pub async fn lab_networks(lab: &str) -> anyhow::Result<Vec<String>> {
    let out = docker(&[
        "network",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        &label_filter(lab),
    ])
    .await?;
    Ok(out.split_whitespace().map(str::to_owned).collect())
}

async fn taken_subnets() -> anyhow::Result<Vec<Ipv4Net>> {
    let ids = docker(&["network", "ls", "-q", "--no-trunc"]).await?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids);
    // A network removed between `ls` and `inspect` makes inspect fail: one retry.
    let out = match docker(&args).await {
        Ok(out) => out,
        Err(_) => {
            let ids = docker(&["network", "ls", "-q", "--no-trunc"]).await?;
            let mut args = args[..4].to_vec();
            args.extend(ids.split_whitespace());
            docker(&args).await?
        }
    };
    Ok(out
        .split_whitespace()
        .filter_map(|s| s.parse::<Ipv4Net>().ok())
        .collect())
}

/// Creates the lab network; without a subnet, the first free /24 of 10.213.0.0/16
/// (the next one when a concurrent `lab up` took it first).
async fn create_network(lab: &str, subnet: Option<Ipv4Net>) -> anyhow::Result<Ipv4Net> {
    let name = network_name(lab);
    let label = format!("{LAB_LABEL}={lab}");
    let create = |net: Ipv4Net| {
        let (name, label) = (name.clone(), label.clone());
        async move {
            docker(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &net.to_string(),
                "--label",
                &label,
                &name,
            ])
            .await
        }
    };
    if let Some(net) = subnet {
        create(net.trunc())
            .await
            .with_context(|| format!("creating the lab network {name} on {net}"))?;
        return Ok(net.trunc());
    }
    let mut last_err = None;
    for net in free_subnets(&taken_subnets().await?) {
        match create(net).await {
            Ok(_) => return Ok(net),
            Err(e) if e.to_string().contains("overlap") => last_err = Some(e),
            Err(e) => return Err(e.context(format!("creating the lab network {name} on {net}"))),
        }
    }
    Err(last_err
        .unwrap_or_else(|| anyhow!("every /24 of 10.213.0.0/16 is taken"))
        .context(format!(
            "no free /24 in 10.213.0.0/16 for the lab network {name}: pass --subnet"
        )))
}

async fn cgroup_version() -> anyhow::Result<String> {
    let v = docker(&["info", "--format", "{{.CgroupVersion}}"])
        .await
        .context("asking Docker for its cgroup version (is the Docker daemon running?)")?;
    Ok(v.trim().to_owned())
}

/// Starts one host's container and waits until it is ready: the lab key installed, sshd
/// answering on port 22, systemd (if it is PID 1) booted. Returns its ed25519 host key.
async fn start_host(
    lab: &str,
    host: &LabHost,
    image: &str,
    cgroup_v2: bool,
    pubkey: &str,
) -> anyhow::Result<String> {
    let container = container_name(lab, &host.name);
    let network = network_name(lab);
    let mut args: Vec<String> = [
        "run",
        "--detach",
        "--name",
        &container,
        "--hostname",
        &host.name,
        "--network",
        &network,
        "--ip",
        &host.address.to_string(),
        "--network-alias",
        &host.name,
        "--label",
        &format!("{LAB_LABEL}={lab}"),
        "--label",
        &format!("{HOST_LABEL}={}", host.name),
        "--label",
        &format!("consulctl.lab.init={}", host.init.as_str()),
        // Registrator convention: a registrar on a lab Docker host never registers lab hosts.
        "--label",
        "SERVICE_IGNORE=1",
    ]
    .map(str::to_owned)
    .to_vec();
    if host.docker_host {
        args.extend(
            [
                "--volume",
                &format!("{DOCKER_SOCKET}:{DOCKER_SOCKET}"),
                "--label",
                &format!("{DOCKER_HOST_LABEL}=1"),
            ]
            .map(str::to_owned),
        );
    }
    if host.lb_host {
        args.extend(["--label", &format!("{LB_HOST_LABEL}=1")].map(str::to_owned));
    }
    if host.init == Init::Systemd {
        args.extend(["--tmpfs", "/run", "--tmpfs", "/run/lock"].map(str::to_owned));
        if cgroup_v2 {
            args.extend(
                ["--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"].map(str::to_owned),
            );
        } else {
            args.extend(["-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"].map(str::to_owned));
        }
    }
    if host.resolved_mode {
        // umount(2) of Docker's /etc/resolv.conf bind mount needs CAP_SYS_ADMIN (Docker's
        // default seccomp profile then allows it); Docker's default AppArmor profile, where
        // AppArmor is on, denies every umount.
        args.extend(
            [
                "--cap-add",
                "SYS_ADMIN",
                "--security-opt",
                "apparmor=unconfined",
                "--label",
                "consulctl.lab.dns=resolved",
            ]
            .map(str::to_owned),
        );
    }
    args.push(image.to_owned());
    if host.resolved_mode {
        args.extend(["/sbin/init", RESOLVED_MODE_ARG].map(str::to_owned));
    }
    docker(&args).await.with_context(|| {
        if host.resolved_mode {
            format!(
                "starting {container} in resolved mode (it needs `docker run --cap-add SYS_ADMIN`)"
            )
        } else {
            format!("starting {container}")
        }
    })?;

    // The lab key, for root and deploy (sshd's AuthorizedKeysFile includes this file).
    docker(&[
        "exec",
        &container,
        "sh",
        "-c",
        "umask 022 && printf '%s\\n' \"$1\" > /etc/ssh/consulctl-lab/authorized_keys",
        "sh",
        pubkey.trim(),
    ])
    .await
    .with_context(|| format!("installing the lab key in {container}"))?;

    let deadline = Instant::now() + HOST_READY_TIMEOUT;
    wait_for_sshd(&container, host.address, deadline).await?;
    if host.init == Init::Systemd {
        wait_for_systemd(&container, deadline).await?;
    }
    if host.resolved_mode {
        check_resolved_mode(&container).await?;
    }
    let key = docker(&[
        "exec",
        &container,
        "cat",
        "/etc/ssh/ssh_host_ed25519_key.pub",
    ])
    .await
    .with_context(|| format!("reading the SSH host key of {container}"))?;
    let mut parts = key.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(kind @ "ssh-ed25519"), Some(b64)) => Ok(format!("{kind} {b64}")),
        _ => bail!("unexpected SSH host key in {container}: {:?}", key.trim()),
    }
}

/// Run in a resolved-mode host after boot; says what is wrong and fails, or succeeds quietly.
const RESOLVED_MODE_CHECK: &str = r#"
test "$(readlink /etc/resolv.conf)" = ../run/systemd/resolve/stub-resolv.conf ||
  { echo "/etc/resolv.conf is not the symlink to ../run/systemd/resolve/stub-resolv.conf"; exit 1; }
if awk '$5 == "/etc/resolv.conf" || $5 == "/run/systemd/resolve/stub-resolv.conf"' \
     /proc/self/mountinfo | grep -q .; then
  echo "Docker's resolv.conf is still mounted"; exit 1
fi
for u in systemd-resolved.service consulctl-lab-resolved-docker-dns.service; do
  systemctl is-active --quiet "$u" || { echo "$u is not active"; exit 1; }
done
"#;

/// After boot: a resolved-mode host has the stub symlink (no Docker mount over it) and
/// systemd-resolved answering with the uplink's DNS server set.
async fn check_resolved_mode(container: &str) -> anyhow::Result<()> {
    if let Err(e) = docker(&["exec", container, "sh", "-c", RESOLVED_MODE_CHECK]).await {
        let journal = docker(&[
            "exec",
            container,
            "journalctl",
            "-b",
            "--no-pager",
            "-n",
            "30",
            "-u",
            "consulctl-lab-resolved-mode.service",
            "-u",
            "systemd-resolved.service",
            "-u",
            "consulctl-lab-resolved-docker-dns.service",
        ])
        .await
        .unwrap_or_else(|e| e.to_string());
        bail!(
            "{container}: resolved mode did not come up: {e:#}\njournal:\n{}",
            journal.trim_end()
        );
    }
    Ok(())
}

async fn container_failure(container: &str, what: &str) -> anyhow::Error {
    let state = docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} (exit code {{.State.ExitCode}})",
        container,
    ])
    .await
    .unwrap_or_else(|e| e.to_string());
    let logs = match Command::new("docker")
        .args(["logs", "--tail", "30", container])
        .stdin(Stdio::null())
        .output()
        .await
    {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => e.to_string(),
    };
    anyhow!(
        "{container}: {what}; container state: {}; last log lines:\n{}",
        state.trim(),
        logs.trim_end()
    )
}

async fn container_running(container: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", container])
        .await
        .map(|s| s.trim() == "true")
        .unwrap_or(false)
}

/// Waits until the container's address answers on port 22 with an SSH banner.
async fn wait_for_sshd(container: &str, ip: Ipv4Addr, deadline: Instant) -> anyhow::Result<()> {
    let mut tries = 0u32;
    loop {
        if let Ok(Ok(mut stream)) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((ip, 22)),
        )
        .await
        {
            let mut buf = [0u8; 4];
            if let Ok(Ok(4)) =
                tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut buf)).await
            {
                if &buf == b"SSH-" {
                    return Ok(());
                }
            }
        }
        tries += 1;
        if tries % 8 == 0 && !container_running(container).await {
            return Err(container_failure(container, "the container stopped").await);
        }
        if Instant::now() > deadline {
            return Err(container_failure(
                container,
                &format!("sshd did not answer on {ip}:22 within {HOST_READY_TIMEOUT:?}"),
            )
            .await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `systemctl is-system-running` says `running` (or `degraded`, with a warning).
async fn wait_for_systemd(container: &str, deadline: Instant) -> anyhow::Result<()> {
    loop {
        let out = Command::new("docker")
            .args(["exec", container, "systemctl", "is-system-running"])
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run `docker`")?;
        let last = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match last.as_str() {
            "running" => return Ok(()),
            "degraded" => {
                let failed = docker(&[
                    "exec",
                    container,
                    "systemctl",
                    "list-units",
                    "--failed",
                    "--plain",
                    "--no-legend",
                ])
                .await
                .unwrap_or_default();
                println!(
                    "lab: warning: {container}: systemd is degraded; failed units: {}",
                    failed.trim().replace('\n', "; ")
                );
                return Ok(());
            }
            _ => {}
        }
        if Instant::now() > deadline {
            let what = format!("systemd did not finish booting (is-system-running: {last:?})");
            return Err(container_failure(container, &what).await);
        }
        if !container_running(container).await {
            return Err(container_failure(container, "the container stopped").await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// lab up / lab down
// ---------------------------------------------------------------------------------------------

async fn generate_keypair(state: &Path, lab: &str) -> anyhow::Result<(PathBuf, String)> {
    let key = state.join("id_ed25519");
    run_capture(
        "ssh-keygen",
        &[
            OsStr::new("-q"),
            OsStr::new("-t"),
            OsStr::new("ed25519"),
            OsStr::new("-N"),
            OsStr::new(""),
            OsStr::new("-C"),
            OsStr::new(&format!("consulctl-lab-{lab}")),
            OsStr::new("-f"),
            key.as_os_str(),
        ],
        None,
        &[],
    )
    .await
    .context("generating the lab SSH key (is openssh-client installed?)")?;
    let pubkey = std::fs::read_to_string(state.join("id_ed25519.pub"))
        .context("reading the lab public key")?;
    Ok((key, pubkey))
}

/// What [`create`] makes.
#[derive(Debug, Clone)]
pub struct UpSpec {
    pub name: String,
    pub servers: u32,
    pub clients: u32,
    pub init: LabInit,
    pub subnet: Option<Ipv4Net>,
    /// Where to write the inventory (default `inventory/<name>.toml`).
    pub inventory: Option<PathBuf>,
    /// Systemd hosts whose /etc/resolv.conf belongs to systemd-resolved, not Docker
    /// ("resolved mode"): they run with SYS_ADMIN, unmount Docker's file at boot and make
    /// /etc/resolv.conf the stub symlink of systemd-resolved.
    pub resolved_hosts: Vec<String>,
    /// Docker hosts: the machine's Docker socket (`/var/run/docker.sock`) is mounted into their
    /// containers and the inventory tags them `docker`. Every name must be a planned host.
    pub docker_hosts: Vec<String>,
    /// Load-balancer hosts: the inventory tags them `lb` (nginx and haproxy are on every lab
    /// host, installed but not running). Every name must be a planned host.
    pub lb_hosts: Vec<String>,
}

/// A lab [`create`] brought up: its hosts and where its inventory and SSH files are.
#[derive(Debug, Clone)]
pub struct Created {
    pub name: String,
    pub hosts: Vec<LabHost>,
    /// Absolute path of the inventory written.
    pub inventory: PathBuf,
    /// The inventory path as shown to the operator (relative to the current dir when inside).
    pub shown: PathBuf,
    pub identity_file: PathBuf,
    pub known_hosts: PathBuf,
}

impl Created {
    /// The commands an operator runs next (`ssh` into the first host, `lab down`, ...).
    pub fn next_steps(&self, applied: bool) -> Vec<String> {
        let first = &self.hosts[0];
        let mut lines = Vec::new();
        if !applied {
            lines.push(format!("consulctl apply -i {}", self.shown.display()));
        }
        lines.push(format!("consulctl status -i {}", self.shown.display()));
        lines.push(format!(
            "ssh -i {} -o UserKnownHostsFile={} {}@{}",
            self.identity_file.display(),
            self.known_hosts.display(),
            first.ssh_user,
            first.address
        ));
        lines.push(format!("consulctl lab down --name {}", self.name));
        lines
    }
}

/// Bring a lab up: images (if missing), consul .deb (if missing), network, hosts, known_hosts,
/// inventory. Nothing is rolled out: the CLI's `lab up` runs `apply` and `status` afterwards.
pub async fn create(args: &UpSpec) -> Result<Created, Error> {
    let dns = args;
    let lab = args.name.as_str();
    validate_lab_name(lab).map_err(Error::input)?;
    // Checked against the real subnet later; a /24 is what we pick when none is given.
    let probe_net = args
        .subnet
        .unwrap_or_else(|| "10.213.0.0/24".parse().expect("valid net"));
    let mut probe = plan_hosts(args.servers, args.clients, args.init, probe_net.trunc())
        .map_err(Error::input)?;
    mark_resolved_hosts(&mut probe, &dns.resolved_hosts).map_err(Error::input)?;
    mark_docker_hosts(&mut probe, &args.docker_hosts).map_err(Error::input)?;
    mark_lb_hosts(&mut probe, &args.lb_hosts).map_err(Error::input)?;
    if !args.docker_hosts.is_empty() && !Path::new(DOCKER_SOCKET).exists() {
        return Err(Error::input(anyhow!(
            "--docker-hosts mounts the machine's Docker socket {DOCKER_SOCKET}, which does not \
             exist here (is the Docker daemon listening on another socket?)"
        )));
    }

    let t_all = Instant::now();
    let cache = cache_dir().map_err(Error::Runtime)?;
    let inventory = std::path::absolute(
        args.inventory
            .clone()
            .unwrap_or_else(|| default_inventory_path(lab)),
    )
    .context("inventory path")?;

    let cgroup = cgroup_version().await?;
    if !lab_containers(lab).await?.is_empty() || !lab_networks(lab).await?.is_empty() {
        return Err(Error::input(anyhow!(
            "a lab named {lab:?} already exists (Docker objects labelled {LAB_LABEL}={lab}): \
             remove it first with `consulctl lab down --name {lab}`"
        )));
    }

    let app_image = async {
        if args.docker_hosts.is_empty() {
            anyhow::Ok(None)
        } else {
            // Docker hosts are for app containers: build their image with the lab's.
            ensure_app_image(&cache).await.map(Some)
        }
    };
    let (images, deb, app_image) =
        tokio::try_join!(ensure_images(&cache), ensure_consul_deb(&cache), app_image)?;

    let state = lab_state_dir(&cache, lab);
    if state.exists() {
        std::fs::remove_dir_all(&state)
            .with_context(|| format!("removing stale lab state {}", state.display()))?;
    }
    std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let (identity_file, pubkey) = generate_keypair(&state, lab).await?;
    std::fs::write(
        state.join("inventory-path"),
        inventory.to_string_lossy().as_bytes(),
    )
    .context("recording the inventory path")?;

    let t_hosts = Instant::now();
    let subnet = create_network(lab, args.subnet).await?;
    let mut hosts =
        plan_hosts(args.servers, args.clients, args.init, subnet).map_err(Error::input)?;
    mark_resolved_hosts(&mut hosts, &dns.resolved_hosts).map_err(Error::input)?;
    mark_docker_hosts(&mut hosts, &args.docker_hosts).map_err(Error::input)?;
    mark_lb_hosts(&mut hosts, &args.lb_hosts).map_err(Error::input)?;
    println!(
        "lab: starting {} hosts on {} ({})",
        hosts.len(),
        network_name(lab),
        subnet
    );
    let cgroup_v2 = cgroup == "2";
    let mut tasks = tokio::task::JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        let (lab, host, image, pubkey) = (
            lab.to_owned(),
            host.clone(),
            images.for_init(host.init).to_owned(),
            pubkey.clone(),
        );
        tasks.spawn(async move { (i, start_host(&lab, &host, &image, cgroup_v2, &pubkey).await) });
    }
    let mut keys: Vec<Option<String>> = vec![None; hosts.len()];
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.context("host start task")?;
        match result {
            Ok(key) => keys[i] = Some(key),
            Err(e) => failures.push(format!("{}: {e:#}", hosts[i].name)),
        }
    }
    if !failures.is_empty() {
        return Err(Error::Runtime(anyhow!(
            "{} of {} lab hosts did not come up (the lab is left as is for inspection; \
             remove it with `consulctl lab down --name {lab}`):\n{}",
            failures.len(),
            hosts.len(),
            failures.join("\n")
        )));
    }
    let known_hosts = state.join("known_hosts");
    let mut kh = String::new();
    for (h, key) in hosts.iter().zip(&keys) {
        let _ = writeln!(kh, "{} {}", h.address, key.as_deref().unwrap_or_default());
    }
    std::fs::write(&known_hosts, kh).context("writing the lab known_hosts")?;
    println!("lab: {} hosts up in {}", hosts.len(), elapsed(t_hosts));

    let text = render_inventory(
        &InventorySpec {
            lab,
            init: args.init,
            consul_deb: &deb,
            identity_file: &identity_file,
            known_hosts: &known_hosts,
        },
        &hosts,
    );
    if let Some(dir) = inventory.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&inventory, text)
        .with_context(|| format!("writing the inventory {}", inventory.display()))?;
    let shown = inventory
        .strip_prefix(std::env::current_dir().unwrap_or_default())
        .unwrap_or(&inventory)
        .to_path_buf();
    println!(
        "lab: wrote {} (in {} overall)",
        shown.display(),
        elapsed(t_all)
    );
    if let Some(tag) = &app_image {
        println!(
            "lab: app containers (image {tag}) go on {}",
            network_name(lab)
        );
    }
    for h in &hosts {
        let mut notes = Vec::new();
        if h.resolved_mode {
            notes.push("resolved mode");
        }
        if h.docker_host {
            notes.push("docker host: the machine's Docker socket is mounted");
        }
        if h.lb_host {
            notes.push("lb host: nginx and haproxy installed, not running");
        }
        println!(
            "  {:<10} {:<15} {:<7} {:<12} {}{}",
            h.name,
            h.address,
            h.role.as_str(),
            h.init.as_str(),
            container_name(lab, &h.name),
            if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join("; "))
            }
        );
    }

    Ok(Created {
        name: lab.to_owned(),
        hosts,
        inventory,
        shown,
        identity_file,
        known_hosts,
    })
}

/// `consulctl lab down`: removes the lab's containers and network, its state dir and the
/// inventory it generated. Idempotent.
pub async fn down(lab: &str) -> Result<(), Error> {
    validate_lab_name(lab).map_err(Error::input)?;
    let cache = cache_dir().map_err(Error::Runtime)?;
    let mut removed = Vec::new();

    let containers = lab_containers(lab).await?;
    if !containers.is_empty() {
        let mut rm = vec!["rm", "--force", "--volumes"];
        rm.extend(containers.iter().map(String::as_str));
        docker(&rm)
            .await
            .with_context(|| format!("removing the containers of lab {lab}"))?;
        removed.push(format!("{} containers", containers.len()));
    }
    let networks = lab_networks(lab).await?;
    if !networks.is_empty() {
        let mut rm = vec!["network", "rm"];
        rm.extend(networks.iter().map(String::as_str));
        // Docker may still hold an endpoint of a container it has just removed (after many
        // removals at once): "has active endpoints" goes away within seconds.
        let mut attempt = 1;
        loop {
            match docker(&rm).await {
                Ok(_) => break,
                Err(e) if attempt < 10 && format!("{e:#}").contains("active endpoints") => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => {
                    return Err(e
                        .context(format!("removing the network of lab {lab}"))
                        .into())
                }
            }
        }
        removed.push(format!("{} network", networks.len()));
    }

    let state = lab_state_dir(&cache, lab);
    let inventory = std::fs::read_to_string(state.join("inventory-path"))
        .ok()
        .map(PathBuf::from)
        .unwrap_or_else(|| default_inventory_path(lab));
    let generated = std::fs::read_to_string(&inventory)
        .map(|t| t.starts_with(INVENTORY_HEADER_PREFIX))
        .unwrap_or(false);
    if generated {
        std::fs::remove_file(&inventory)
            .with_context(|| format!("removing {}", inventory.display()))?;
        removed.push(format!("inventory {}", inventory.display()));
    }
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))?;
        removed.push(format!("state {}", state.display()));
    }

    if removed.is_empty() {
        println!("lab: no lab named {lab:?}; nothing to remove");
    } else {
        println!("lab: removed lab {lab:?}: {}", removed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn mixed_alternates_over_all_hosts_and_every_second_host_uses_sudo() {
        let hosts = plan_hosts(3, 2, LabInit::Mixed, net("10.213.5.0/24")).unwrap();
        let got: Vec<(&str, &str, String, &str)> = hosts
            .iter()
            .map(|h| {
                (
                    h.name.as_str(),
                    h.init.as_str(),
                    h.address.to_string(),
                    h.ssh_user,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("server1", "systemd", "10.213.5.11".into(), "root"),
                ("server2", "supervisord", "10.213.5.12".into(), "deploy"),
                ("server3", "systemd", "10.213.5.13".into(), "root"),
                ("client1", "supervisord", "10.213.5.21".into(), "root"),
                ("client2", "systemd", "10.213.5.22".into(), "deploy"),
            ]
        );
    }

    #[test]
    fn resolved_hosts_must_be_planned_systemd_hosts() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut hosts = plan_hosts(1, 2, LabInit::Mixed, net("10.213.5.0/24")).unwrap();
        assert!(hosts.iter().all(|h| !h.resolved_mode));
        // server1 systemd, client1 supervisord, client2 systemd.
        mark_resolved_hosts(&mut hosts, &names(&["client2", "server1", "client2"])).unwrap();
        let marked: Vec<&str> = hosts
            .iter()
            .filter(|h| h.resolved_mode)
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(marked, ["server1", "client2"]);

        let err = mark_resolved_hosts(&mut hosts, &names(&["client1"])).unwrap_err();
        assert!(
            err.to_string().contains("client1 runs supervisord"),
            "{err}"
        );
        assert!(err.to_string().contains("server1, client2"), "{err}");
        let err = mark_resolved_hosts(&mut hosts, &names(&["client9"])).unwrap_err();
        assert!(err.to_string().contains("no host \"client9\""), "{err}");
        assert!(mark_resolved_hosts(&mut hosts, &names(&[""])).is_err());

        let mut sup = plan_hosts(1, 1, LabInit::Supervisord, net("10.213.5.0/24")).unwrap();
        let err = mark_resolved_hosts(&mut sup, &names(&["server1"])).unwrap_err();
        assert!(
            err.to_string().contains("none (use --init systemd"),
            "{err}"
        );
        mark_resolved_hosts(&mut sup, &[]).unwrap();
    }

    #[test]
    fn docker_hosts_must_be_planned_hosts_and_are_tagged_docker() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut hosts = plan_hosts(1, 2, LabInit::Mixed, net("10.213.5.0/24")).unwrap();
        assert!(hosts.iter().all(|h| !h.docker_host));
        mark_docker_hosts(&mut hosts, &names(&[" client2", "client1", "client2"])).unwrap();
        let marked: Vec<&str> = hosts
            .iter()
            .filter(|h| h.docker_host)
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(marked, ["client1", "client2"]);
        assert_eq!(host_tags(&hosts[0]), ["lab"]);
        assert_eq!(host_tags(&hosts[1]), ["lab", "docker"]);

        let err = mark_docker_hosts(&mut hosts, &names(&["client3"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--docker-hosts: this lab has no host \"client3\" (its hosts: server1, client1, \
             client2)"
        );
        let err = mark_docker_hosts(&mut hosts, &names(&[""])).unwrap_err();
        assert_eq!(err.to_string(), "--docker-hosts: empty host name");
        // Any init system will do: supervisord and systemd hosts alike.
        let mut sup = plan_hosts(1, 0, LabInit::Supervisord, net("10.213.5.0/24")).unwrap();
        mark_docker_hosts(&mut sup, &names(&["server1"])).unwrap();
        assert!(sup[0].docker_host);

        let text = render_inventory(
            &InventorySpec {
                lab: "lab",
                init: LabInit::Mixed,
                consul_deb: Path::new("/c/consul.deb"),
                identity_file: Path::new("/c/id"),
                known_hosts: Path::new("/c/kh"),
            },
            &hosts,
        );
        let v: toml::Value = toml::from_str(&text).unwrap();
        let tags: Vec<Vec<&str>> = v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                h["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(
            tags,
            [vec!["lab"], vec!["lab", "docker"], vec!["lab", "docker"]]
        );
        // The line as written.
        assert!(text.contains("tags = [\"lab\", \"docker\"]\n"));
    }

    #[test]
    fn lb_hosts_must_be_planned_hosts_and_are_tagged_lb() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut hosts = plan_hosts(1, 2, LabInit::Mixed, net("10.213.5.0/24")).unwrap();
        assert!(hosts.iter().all(|h| !h.lb_host));
        mark_lb_hosts(&mut hosts, &names(&[" client2", "client2"])).unwrap();
        mark_docker_hosts(&mut hosts, &names(&["client1"])).unwrap();
        let marked: Vec<&str> = hosts
            .iter()
            .filter(|h| h.lb_host)
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(marked, ["client2"]);
        assert_eq!(host_tags(&hosts[0]), ["lab"]);
        assert_eq!(host_tags(&hosts[1]), ["lab", "docker"]);
        assert_eq!(host_tags(&hosts[2]), ["lab", "lb"]);
        // A host can be both.
        mark_lb_hosts(&mut hosts, &names(&["client1"])).unwrap();
        assert_eq!(host_tags(&hosts[1]), ["lab", "docker", "lb"]);

        let err = mark_lb_hosts(&mut hosts, &names(&["client9"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--lb-hosts: this lab has no host \"client9\" (its hosts: server1, client1, \
             client2)"
        );
        let err = mark_lb_hosts(&mut hosts, &names(&[""])).unwrap_err();
        assert_eq!(err.to_string(), "--lb-hosts: empty host name");
        // Any init system will do.
        let mut sup = plan_hosts(1, 1, LabInit::Supervisord, net("10.213.5.0/24")).unwrap();
        mark_lb_hosts(&mut sup, &names(&["client1"])).unwrap();
        assert!(sup[1].lb_host && !sup[1].docker_host);

        let text = render_inventory(
            &InventorySpec {
                lab: "lab",
                init: LabInit::Mixed,
                consul_deb: Path::new("/c/consul.deb"),
                identity_file: Path::new("/c/id"),
                known_hosts: Path::new("/c/kh"),
            },
            &hosts,
        );
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["hosts"][2]["name"].as_str(), Some("client2"));
        assert_eq!(
            v["hosts"][2]["tags"],
            toml::Value::Array(vec!["lab".into(), "lb".into()])
        );
        assert!(text.contains("tags = [\"lab\", \"docker\", \"lb\"]\n"));
    }

    #[test]
    fn base_image_has_nginx_with_the_stream_module_and_haproxy() {
        let packages: Vec<&str> = BASE_PACKAGES.split(',').map(str::trim).collect();
        for p in ["nginx", "libnginx-mod-stream", "haproxy", "dnsmasq"] {
            assert!(packages.contains(&p), "{p} missing from {packages:?}");
        }
        // Installed, not running: the systemd image disables the units.
        let setup = SYSTEMD_FILES
            .iter()
            .find(|(n, _)| *n == "setup-systemd.sh")
            .unwrap()
            .1;
        assert!(setup.contains("systemctl disable nginx.service haproxy.service"));
        // ... and haproxy.service can start in an unprivileged container.
        assert!(setup.contains("/etc/systemd/system/haproxy.service.d/00-consulctl-lab.conf"));
    }

    #[test]
    fn many_servers_push_clients_to_the_next_ten() {
        let hosts = plan_hosts(12, 1, LabInit::Supervisord, net("10.213.5.0/24")).unwrap();
        assert_eq!(hosts[11].address.to_string(), "10.213.5.22");
        assert_eq!(hosts[12].name, "client1");
        assert_eq!(hosts[12].address.to_string(), "10.213.5.31");
        assert!(hosts.iter().all(|h| h.init == Init::Supervisord));
    }

    #[test]
    fn bad_counts_are_refused() {
        assert!(plan_hosts(0, 1, LabInit::Mixed, net("10.213.5.0/24")).is_err());
        assert!(plan_hosts(3, 240, LabInit::Mixed, net("10.213.5.0/24")).is_err());
        assert!(plan_hosts(3, 233, LabInit::Mixed, net("10.213.5.0/24")).is_ok());
        assert!(plan_hosts(1, 1, LabInit::Mixed, net("10.213.5.0/28")).is_err());
        assert!(plan_hosts(1, 0, LabInit::Mixed, net("10.213.5.0/28")).is_ok());
    }

    #[test]
    fn lab_names() {
        for ok in ["lab", "dev1", "t123-smoke", "a"] {
            validate_lab_name(ok).unwrap();
        }
        for bad in ["", "Lab", "-x", "x-", "a_b", "a.b", "a b", &"x".repeat(33)] {
            assert!(validate_lab_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn free_subnets_skip_overlaps() {
        let taken = [
            net("10.213.0.0/24"),
            net("10.213.2.0/23"),
            net("172.17.0.0/16"),
        ];
        let free = free_subnets(&taken);
        assert_eq!(free[0], net("10.213.1.0/24"));
        assert_eq!(free[1], net("10.213.4.0/24"));
        assert!(free_subnets(&[net("10.0.0.0/8")]).is_empty());
    }

    #[test]
    fn inventory_has_the_agreed_shape() {
        let mut hosts = plan_hosts(2, 2, LabInit::Mixed, net("10.213.5.0/24")).unwrap();
        mark_resolved_hosts(&mut hosts, &["server1".to_owned()]).unwrap();
        let text = render_inventory(
            &InventorySpec {
                lab: "lab",
                init: LabInit::Mixed,
                consul_deb: Path::new("/c/downloads/consul_1.8.7+dfsg1-2+b3_amd64.deb"),
                identity_file: Path::new("/c/labs/lab/id_ed25519"),
                known_hosts: Path::new("/c/labs/lab/known_hosts"),
            },
            &hosts,
        );
        assert!(text.starts_with(
            "# Generated by `consulctl lab up --name lab`; machine-specific, git-ignored.\n"
        ));
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["cluster"]["name"].as_str(), Some("lab"));
        assert_eq!(v["cluster"]["datacenter"].as_str(), Some("lab"));
        assert_eq!(v["cluster"]["domain"].as_str(), Some("consul"));
        assert_eq!(v["cluster"]["init"].as_str(), Some("systemd"));
        assert_eq!(v["cluster"]["log_level"].as_str(), Some("INFO"));
        assert_eq!(v["consul"]["version"].as_str(), Some("1.8.7"));
        assert_eq!(
            v["consul"]["source"]["file"].as_str(),
            Some("/c/downloads/consul_1.8.7+dfsg1-2+b3_amd64.deb")
        );
        assert_eq!(v["ssh"]["user"].as_str(), Some("root"));
        assert_eq!(v["ssh"]["host_keys"].as_str(), Some("strict"));
        assert_eq!(
            v["config"]["performance"]["raft_multiplier"].as_integer(),
            Some(1)
        );
        let hosts_v = v["hosts"].as_array().unwrap();
        assert_eq!(hosts_v.len(), 4);
        assert_eq!(hosts_v[1]["name"].as_str(), Some("server2"));
        assert_eq!(hosts_v[1]["address"].as_str(), Some("10.213.5.12"));
        assert_eq!(hosts_v[1]["role"].as_str(), Some("server"));
        assert_eq!(hosts_v[1]["init"].as_str(), Some("supervisord"));
        assert_eq!(hosts_v[1]["ssh"]["user"].as_str(), Some("deploy"));
        assert!(hosts_v[0].get("ssh").is_none());
        assert_eq!(hosts_v[2]["role"].as_str(), Some("client"));
        assert_eq!(hosts_v[2]["tags"][0].as_str(), Some("lab"));
        // Resolved mode is a comment only: the schema is unchanged.
        assert!(text.contains(
            "# resolved mode: /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf \
             (systemd-resolved)\n[[hosts]]\nname = \"server1\""
        ));
        assert_eq!(text.matches("# resolved mode").count(), 1);
    }

    #[test]
    fn image_tags_are_stable_and_distinct() {
        let a = image_tags();
        assert_eq!(a, image_tags());
        assert!(a.base.starts_with("consulctl-lab-base:"));
        assert_ne!(a.supervisord, a.systemd);
        assert_eq!(a.for_init(Init::Systemd), a.systemd);
    }

    #[test]
    fn mount_paths_unescape() {
        assert_eq!(unescape_mount_path("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }
}
