//! Facts: one read-only command per host, parsed into `Facts`.
//!
//! The remote side is `src/remote/facts.sh`, run as `sh -c SCRIPT sh ARGS...` with every
//! path passed as a positional argument (escaped by openssh), never spliced into the script.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use ipnet::IpNet;
use serde::Serialize;

use crate::model::{Host, Init};
use crate::version::Version;

/// What the facts script (the CLI's `remote/facts.sh`) prints. It is run as `sh -c SCRIPT sh ARGS...` with [`script_args`].
///
/// Output format (stdout; one fact per line, `KEYWORD VALUE`, VALUE is the rest of the line,
/// lines in no particular order except the header first and `end` last):
///
/// ```text
/// consulctl-facts 1                      header (format version); lines before it are ignored
/// os ID=debian                           raw os-release lines: ID, ID_LIKE, VERSION_ID (may be quoted)
/// hostname web-1
/// pid1 systemd                           /proc/1/comm
/// arch x86_64                            uname -m
/// addr 10.0.0.5/24 eth0                  one per non-loopback address, `ip -o addr` order
///                                        (`addr 10.0.0.5` from `hostname -I`; `addr <32 hex digits> eth0`
///                                        from /proc/net/if_inet6 when neither exists)
/// binary_sha256 <hex>                    the consul binary exists (hashed with openssl or sha256sum)
/// consul_version Consul v1.8.7           first line of `consul version` (empty if it did not run)
/// consul_pid 1234                        a running `consul agent`
/// sha256 <hex>  <path>                   sha256sum line (`\<hex>  <escaped path>` for paths with `\`)
/// stat <mode> <user> <group> <path>      `stat -L -c '%a %U %G %n'`, same files as the sha256 lines
/// dir 1 <path>                           config/data/log dir exists (0: missing)
/// commands curl gzip tar ...             found on PATH
/// systemd_active active                  only when PID 1 is systemd
/// systemd_enabled enabled
/// supervisor_rpc RUNNING                 program state from supervisord's socket (BAD_NAME: unknown program)
/// supervisorctl <rc> <first line>        fallback: `supervisorctl status consul`
/// supervisor_include_dir /etc/supervisor/conf.d
/// epoch 1700000000
/// error <message>                        the script could not run (bad arguments)
/// end                                    trailer: the output is complete
/// ```
///
/// This constant is the first line of the facts output.
pub const HEADER: &str = "consulctl-facts 1";

/// supervisord program file candidates when the inventory does not name one.
pub const SUPERVISOR_PROGRAM_DEBIAN: &str = "/etc/supervisor/conf.d/consul.conf";
pub const SUPERVISOR_PROGRAM_RHEL: &str = "/etc/supervisord.d/consul.ini";

/// Positional arguments for [`SCRIPT`], in order: binary, config dir, data dir, log dir,
/// systemd unit, then the supervisord program candidates (`paths.supervisor_program` if set,
/// else the Debian and the RHEL default).
pub fn script_args(host: &Host) -> Vec<String> {
    let p = &host.paths;
    let mut args: Vec<String> = [
        &p.binary,
        &p.config_dir,
        &p.data_dir,
        &p.log_dir,
        &p.systemd_unit,
    ]
    .iter()
    .map(|p| p.to_string_lossy().into_owned())
    .collect();
    match &p.supervisor_program {
        Some(prog) => args.push(prog.to_string_lossy().into_owned()),
        None => {
            args.push(SUPERVISOR_PROGRAM_DEBIAN.to_string());
            args.push(SUPERVISOR_PROGRAM_RHEL.to_string());
        }
    }
    // Host plumbing (DNS, preparation): `--` then `file:`/`unit:`/`pkg:`/`proc:` queries,
    // and `user:NAME` (the agent's user: does it exist, does it own the data dir).
    let mut q = crate::managed_paths::fact_queries(host);
    if q.is_empty() {
        q.push("--".into());
    }
    q.push(format!("user:{}", host.user));
    args.extend(q);
    args
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// `/etc/os-release` ID, ID_LIKE (space separated), VERSION_ID.
    pub os_id: String,
    pub os_like: Vec<String>,
    pub os_version: String,
    pub hostname: String,
    /// Name of PID 1's command (`systemd`, `supervisord`, `init`, ...).
    pub pid1: String,
    /// CPU architecture as `uname -m` prints it (`x86_64`, `aarch64`). Added by the facts module.
    pub arch: String,
    /// Every IP address on the host's interfaces except loopback, in `ip -o addr` order.
    pub addresses: Vec<IpAddr>,
    /// The installed consul binary at `paths.binary`, if any.
    pub consul: Option<InstalledBinary>,
    /// sha256 of every file that exists among: `*.hcl`/`*.json` in the config dir, the
    /// systemd unit, the supervisord program candidates. Absent files are not listed.
    pub files: BTreeMap<PathBuf, FileFact>,
    /// Directories from the arguments and whether they exist.
    pub dirs: BTreeMap<PathBuf, bool>,
    pub systemd: Option<SystemdUnitState>,
    pub supervisor: Option<SupervisorState>,
    /// Where supervisord includes program files on this host, if supervisord is installed
    /// (`/etc/supervisor/conf.d` with `.conf` on Debian, `/etc/supervisord.d` with `.ini` on RHEL).
    pub supervisor_include_dir: Option<PathBuf>,
    /// Commands found on PATH (plus the usual sbin/bin dirs), among: curl, gzip, zstd, tar,
    /// systemctl, supervisorctl, supervisord, sudo, apt-get, dnf, yum.
    pub commands: Vec<String>,
    /// PID of the running consul agent, if any (any init).
    pub consul_pid: Option<u32>,
    /// Host clock, seconds since the epoch, when the facts were read.
    pub epoch: i64,
    /// Host plumbing files asked about that are symlinks: path -> target (`readlink`).
    pub links: BTreeMap<PathBuf, PathBuf>,
    /// systemd units asked about: name -> (is-active, is-enabled). Only on systemd hosts.
    pub units: BTreeMap<String, (String, String)>,
    /// Packages asked about: name -> installed.
    pub packages: BTreeMap<String, bool>,
    /// Processes asked about: name -> one runs.
    pub procs: BTreeMap<String, bool>,
    /// supervisord programs asked about: name -> RUNNING (only where supervisorctl answers).
    pub programs: BTreeMap<String, bool>,
    /// RHEL network scripts `/etc/sysconfig/network-scripts/ifcfg-*`: path -> PEERDNS value
    /// (`-` when not set).
    pub ifcfg: BTreeMap<PathBuf, String>,
    /// Owner, group and octal mode of the config, data, log and `<config>/tls` dirs that exist.
    pub dir_stats: BTreeMap<PathBuf, (String, String, String)>,
    /// Whether the agent's system user exists (None: not asked).
    pub user_exists: Option<bool>,
    /// Something in the data dir belongs to another user than the agent's.
    pub data_foreign_owner: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledBinary {
    pub sha256: String,
    /// From `consul version`; None if it would not run.
    pub version: Option<Version>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFact {
    pub sha256: String,
    /// Octal mode as `stat -c %a` prints it, e.g. `640`.
    pub mode: String,
    /// Owning user name (`stat -c %U`; `UNKNOWN` when the uid has no name).
    pub owner: String,
    /// Owning group name (`stat -c %G`). Added by the facts module.
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemdUnitState {
    /// `systemctl is-active consul`: active, inactive, failed, activating, ...
    pub active: String,
    /// `systemctl is-enabled consul`: enabled, disabled, not-found, ...
    pub enabled: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupervisorState {
    /// supervisord answers on its socket.
    pub running: bool,
    /// State of the `consul` program (`RUNNING`, `STOPPED`, `FATAL`, `BACKOFF`, ...), None if unknown to supervisord.
    pub program: Option<String>,
}

impl Facts {
    /// Parse the facts script's stdout. Text before the header (login noise) is ignored;
    /// anything else that is not a known fact is an error naming the line.
    pub fn parse(stdout: &str) -> anyhow::Result<Facts> {
        let lines: Vec<&str> = stdout.lines().collect();
        let Some(start) = lines.iter().position(|l| l.trim_end() == HEADER) else {
            if let Some(l) = lines.iter().find(|l| l.starts_with("consulctl-facts ")) {
                bail!(
                    "facts output has header `{}`, this consulctl understands `{HEADER}`",
                    l.trim_end()
                );
            }
            let first = lines
                .iter()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim())
                .unwrap_or("");
            if first.is_empty() {
                bail!("facts output is empty: the facts script did not run");
            }
            bail!("facts output has no `{HEADER}` header: the facts script did not run; output began with `{first}`");
        };

        let mut f = Facts::default();
        let mut shas: BTreeMap<PathBuf, String> = BTreeMap::new();
        let mut stats: BTreeMap<PathBuf, (String, String, String)> = BTreeMap::new();
        let mut binary_sha: Option<String> = None;
        let mut consul_version: Option<Option<Version>> = None;
        let mut sd_active: Option<String> = None;
        let mut sd_enabled: Option<String> = None;
        let mut seen: Vec<&str> = Vec::new();
        let mut end = false;

        for (i, raw) in lines.iter().enumerate().skip(start + 1) {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let bad = |why: &str| anyhow!("facts output line {n}: `{line}`: {why}");
            if end {
                return Err(bad("unexpected text after `end`"));
            }
            let (key, val) = line.split_once(' ').unwrap_or((line, ""));
            // Facts that may appear once only.
            if matches!(
                key,
                "hostname"
                    | "pid1"
                    | "arch"
                    | "binary_sha256"
                    | "consul_version"
                    | "consul_pid"
                    | "commands"
                    | "systemd_active"
                    | "systemd_enabled"
                    | "supervisor_rpc"
                    | "supervisorctl"
                    | "supervisor_include_dir"
                    | "epoch"
            ) {
                if seen.contains(&key) {
                    return Err(bad("this fact appears twice"));
                }
                seen.push(key);
            }
            match key {
                "end" if val.is_empty() => end = true,
                "error" => bail!("the facts script failed (line {n}): {val}"),
                "os" => {
                    let (k, v) = val
                        .split_once('=')
                        .ok_or_else(|| bad("expected `os KEY=VALUE`"))?;
                    let v = unquote_os_release(v);
                    match k {
                        "ID" => f.os_id = v,
                        "ID_LIKE" => f.os_like = v.split_whitespace().map(str::to_string).collect(),
                        "VERSION_ID" => f.os_version = v,
                        _ => return Err(bad("expected ID, ID_LIKE or VERSION_ID")),
                    }
                }
                "hostname" => f.hostname = non_empty(val).ok_or_else(|| bad("empty hostname"))?,
                "pid1" => f.pid1 = non_empty(val).ok_or_else(|| bad("empty PID 1 name"))?,
                "arch" => f.arch = non_empty(val).ok_or_else(|| bad("empty architecture"))?,
                "addr" => {
                    let ip = parse_addr(val).ok_or_else(|| bad("not an IP address"))?;
                    if !ip.is_loopback() && !f.addresses.contains(&ip) {
                        f.addresses.push(ip);
                    }
                }
                "binary_sha256" => {
                    if !is_sha256(val) {
                        return Err(bad("not a sha256 (64 hex digits)"));
                    }
                    binary_sha = Some(val.to_string());
                }
                "consul_version" => consul_version = Some(Version::from_consul_output(val)),
                "consul_pid" => {
                    f.consul_pid = Some(val.parse().map_err(|_| bad("not a process id"))?);
                }
                "sha256" => {
                    let (hash, path) = parse_sha256sum_line(val)
                        .ok_or_else(|| bad("expected a sha256sum line `HASH  PATH`"))?;
                    shas.insert(path, hash);
                }
                "stat" => {
                    let mut it = val.splitn(4, ' ');
                    let (mode, user, group, path) =
                        match (it.next(), it.next(), it.next(), it.next()) {
                            (Some(m), Some(u), Some(g), Some(p))
                                if is_mode(m)
                                    && !u.is_empty()
                                    && !g.is_empty()
                                    && !p.is_empty() =>
                            {
                                (m, u, g, p)
                            }
                            _ => return Err(bad("expected `stat MODE USER GROUP PATH`")),
                        };
                    stats.insert(
                        PathBuf::from(path),
                        (mode.to_string(), user.to_string(), group.to_string()),
                    );
                }
                "dir" => {
                    let exists = match val.split_once(' ') {
                        Some(("1", p)) if !p.is_empty() => (true, p),
                        Some(("0", p)) if !p.is_empty() => (false, p),
                        _ => return Err(bad("expected `dir 1 PATH` or `dir 0 PATH`")),
                    };
                    f.dirs.insert(PathBuf::from(exists.1), exists.0);
                }
                "commands" => f.commands = val.split_whitespace().map(str::to_string).collect(),
                "systemd_active" => {
                    sd_active = Some(non_empty(val).ok_or_else(|| bad("empty state"))?)
                }
                "systemd_enabled" => {
                    sd_enabled = Some(non_empty(val).ok_or_else(|| bad("empty state"))?)
                }
                "supervisor_rpc" => {
                    let program = match val {
                        "BAD_NAME" => None,
                        s if is_supervisor_state(s) => Some(s.to_string()),
                        _ => return Err(bad("not a supervisord process state")),
                    };
                    f.supervisor = Some(SupervisorState {
                        running: true,
                        program,
                    });
                }
                "supervisorctl" => {
                    let (rc, out) = val.split_once(' ').unwrap_or((val, ""));
                    rc.parse::<i32>()
                        .map_err(|_| bad("expected `supervisorctl EXIT_CODE OUTPUT`"))?;
                    f.supervisor = Some(parse_supervisorctl(out));
                }
                "supervisor_include_dir" => {
                    f.supervisor_include_dir = Some(PathBuf::from(
                        non_empty(val).ok_or_else(|| bad("empty path"))?,
                    ));
                }
                "epoch" => f.epoch = val.parse().map_err(|_| bad("not a number of seconds"))?,
                "dirstat" => {
                    let mut it = val.splitn(4, ' ');
                    match (it.next(), it.next(), it.next(), it.next()) {
                        (Some(u), Some(g), Some(m), Some(p))
                            if !u.is_empty() && is_mode(m) && !p.is_empty() =>
                        {
                            f.dir_stats
                                .insert(PathBuf::from(p), (u.into(), g.into(), m.into()));
                        }
                        _ => return Err(bad("expected `dirstat USER GROUP MODE PATH`")),
                    }
                }
                "user" => match val.rsplit_once(' ') {
                    Some((_, "1")) => f.user_exists = Some(true),
                    Some((_, "0")) => f.user_exists = Some(false),
                    _ => return Err(bad("expected `user NAME 0|1`")),
                },
                "data_foreign_owner" => f.data_foreign_owner = val == "1",
                "link" => {
                    // Paths come from the inventory (no spaces in the ones consulctl manages);
                    // the target is the rest of the line.
                    let (path, target) = val
                        .split_once(' ')
                        .filter(|(p, t)| !p.is_empty() && !t.is_empty())
                        .ok_or_else(|| bad("expected `link PATH TARGET`"))?;
                    f.links.insert(PathBuf::from(path), PathBuf::from(target));
                }
                "unit" => {
                    let mut it = val.split(' ');
                    match (it.next(), it.next(), it.next(), it.next()) {
                        (Some(u), Some(a), Some(e), None) if !u.is_empty() => {
                            f.units
                                .insert(u.to_string(), (a.to_string(), e.to_string()));
                        }
                        _ => return Err(bad("expected `unit NAME ACTIVE ENABLED`")),
                    }
                }
                "pkg" | "proc" | "program" => {
                    let (name, flag) = match val.split_once(' ') {
                        Some((n, "1")) if !n.is_empty() => (n, true),
                        Some((n, "0")) if !n.is_empty() => (n, false),
                        _ => return Err(bad("expected `NAME 0|1`")),
                    };
                    let map = match key {
                        "pkg" => &mut f.packages,
                        "proc" => &mut f.procs,
                        _ => &mut f.programs,
                    };
                    map.insert(name.to_string(), flag);
                }
                "ifcfg" => {
                    let (v, path) = val
                        .split_once(' ')
                        .filter(|(v, p)| !v.is_empty() && !p.is_empty())
                        .ok_or_else(|| bad("expected `ifcfg PEERDNS PATH`"))?;
                    f.ifcfg.insert(PathBuf::from(path), v.to_string());
                }
                _ => return Err(bad("not a fact this consulctl knows")),
            }
        }
        if !end {
            bail!(
                "facts output is incomplete (no `end` line after {} lines): the connection dropped or the script was killed",
                lines.len()
            );
        }
        for required in ["hostname", "pid1", "arch", "epoch"] {
            if !seen.contains(&required) {
                bail!("facts output has no `{required}` line");
            }
        }
        match (sd_active, sd_enabled) {
            (Some(active), Some(enabled)) => f.systemd = Some(SystemdUnitState { active, enabled }),
            (None, None) => {}
            _ => bail!("facts output has only one of `systemd_active` and `systemd_enabled`"),
        }
        if let Some(sha256) = binary_sha {
            f.consul = Some(InstalledBinary {
                sha256,
                version: consul_version.flatten(),
            });
        }
        // A file listed by only one of sha256sum/stat vanished or was unreadable: leave it out.
        for (path, sha256) in shas {
            if let Some((mode, owner, group)) = stats.remove(&path) {
                f.files.insert(
                    path,
                    FileFact {
                        sha256,
                        mode,
                        owner,
                        group,
                    },
                );
            }
        }
        Ok(f)
    }

    /// Debian, Ubuntu and friends (`ID=debian` or `ID_LIKE` containing debian/ubuntu).
    pub fn is_debian_like(&self) -> bool {
        self.os_is(&["debian", "ubuntu"])
    }

    /// RHEL, CentOS, Rocky, Alma, Fedora, Amazon Linux ...
    pub fn is_rhel_like(&self) -> bool {
        self.os_is(&[
            "rhel",
            "centos",
            "fedora",
            "rocky",
            "almalinux",
            "ol",
            "amzn",
        ])
    }

    fn os_is(&self, ids: &[&str]) -> bool {
        ids.contains(&self.os_id.as_str()) || self.os_like.iter().any(|l| ids.contains(&l.as_str()))
    }

    /// supervisord is installed: its commands are on PATH or it is PID 1.
    pub fn supervisor_installed(&self) -> bool {
        self.has_command("supervisord")
            || self.has_command("supervisorctl")
            || self.pid1 == "supervisord"
    }

    /// Where the consul program file for supervisord goes: `paths.supervisor_program` if set,
    /// else `consul.conf` in `/etc/supervisor/conf.d` (Debian) or `consul.ini` in
    /// `/etc/supervisord.d` (RHEL). None if supervisord is not installed, or if no override is
    /// set and neither include dir exists.
    pub fn supervisor_program_path(&self, host: &Host) -> Option<PathBuf> {
        if !self.supervisor_installed() {
            return None;
        }
        if let Some(p) = &host.paths.supervisor_program {
            return Some(p.clone());
        }
        let dir = self.supervisor_include_dir.as_ref()?;
        let name = if dir.ends_with("supervisord.d") {
            "consul.ini"
        } else {
            "consul.conf"
        };
        Some(dir.join(name))
    }

    /// The host's single address inside `net` (the inventory's `bind_addr = "CIDR"`).
    pub fn bind_addr_in(&self, net: &IpNet) -> Result<IpAddr, String> {
        let inside: Vec<IpAddr> = self
            .addresses
            .iter()
            .copied()
            .filter(|a| net.contains(a))
            .collect();
        let list = |addrs: &[IpAddr]| {
            if addrs.is_empty() {
                "none".to_string()
            } else {
                addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match inside.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!(
                "host `{}` has no address in {net}; its addresses: {}",
                self.hostname,
                list(&self.addresses)
            )),
            many => Err(format!(
                "host `{}` has {} addresses in {net} ({}); set bind_addr to one of them or use a narrower network",
                self.hostname,
                many.len(),
                list(many)
            )),
        }
    }

    /// Is the agent running under `init`? systemd: the unit is `active`; supervisord: the
    /// `consul` program is `RUNNING`. (A consul started some other way shows in `consul_pid`.)
    pub fn agent_running(&self, init: Init) -> bool {
        match init {
            // `activating`/`STARTING`: the process runs and is within its start-up grace
            // time; starting it again would be wrong.
            Init::Systemd => self.systemd.as_ref().is_some_and(|s| {
                matches!(s.active.as_str(), "active" | "activating" | "reloading")
            }),
            Init::Supervisord => matches!(
                self.supervisor.as_ref().and_then(|s| s.program.as_deref()),
                Some("RUNNING" | "STARTING")
            ),
        }
    }

    pub fn has_command(&self, name: &str) -> bool {
        self.commands.iter().any(|c| c == name)
    }

    pub fn file_sha(&self, path: &Path) -> Option<&str> {
        self.files.get(path).map(|f| f.sha256.as_str())
    }

    /// Does this directory exist (as reported for the config, data and log dirs)?
    pub fn dir_exists(&self, path: &Path) -> bool {
        self.dirs.get(path).copied().unwrap_or(false)
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_mode(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

const SUPERVISOR_STATES: [&str; 8] = [
    "STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN",
];

fn is_supervisor_state(s: &str) -> bool {
    SUPERVISOR_STATES.contains(&s)
}

/// First line of `supervisorctl status consul`:
/// `consul   RUNNING   pid 30, uptime 0:01:16` / `consul: ERROR (no such process)` /
/// `unix:///var/run/supervisor.sock no such file` / `... refused connection`.
fn parse_supervisorctl(out: &str) -> SupervisorState {
    let mut words = out.split_whitespace();
    if words.next() == Some("consul") {
        if let Some(state) = words.next().filter(|s| is_supervisor_state(s)) {
            return SupervisorState {
                running: true,
                program: Some(state.to_string()),
            };
        }
    }
    let answered = out.contains("no such process")
        || out.contains("no such group")
        || out.contains("requires authentication");
    SupervisorState {
        running: answered,
        program: None,
    }
}

/// `ID="centos"`, `ID_LIKE='rhel fedora'`, `VERSION_ID=12` -> the value.
fn unquote_os_release(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        return v[1..v.len() - 1].to_string();
    }
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let mut out = String::new();
        let mut chars = v[1..v.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    v.to_string()
}

/// `10.0.0.5/24 eth0`, `10.0.0.5`, `fe80::1/64 eth0`, or /proc/net/if_inet6's 32 hex digits.
fn parse_addr(val: &str) -> Option<IpAddr> {
    let first = val.split_whitespace().next()?;
    let ip = first.split('/').next()?;
    if ip.len() == 32 && ip.bytes().all(|b| b.is_ascii_hexdigit()) {
        return u128::from_str_radix(ip, 16)
            .ok()
            .map(|n| IpAddr::V6(Ipv6Addr::from(n)));
    }
    ip.parse().ok()
}

/// A `sha256sum` output line: `HASH  PATH` (or ` *PATH`); a leading backslash means PATH is
/// escaped (`\\` and `\n`).
fn parse_sha256sum_line(line: &str) -> Option<(String, PathBuf)> {
    let (escaped, rest) = match line.strip_prefix('\\') {
        Some(r) => (true, r),
        None => (false, line),
    };
    let hash = rest.get(..64)?;
    if !is_sha256(hash) {
        return None;
    }
    let name = rest[64..]
        .strip_prefix("  ")
        .or_else(|| rest[64..].strip_prefix(" *"))?;
    if name.is_empty() {
        return None;
    }
    let name = if escaped {
        let mut out = String::new();
        let mut chars = name.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next()? {
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    _ => return None,
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        name.to_string()
    };
    Some((hash.to_ascii_lowercase(), PathBuf::from(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BindAddr, Paths, Role, SshTarget};

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../tests/fixtures/facts/", $name))
        };
    }

    fn host(paths: Paths) -> Host {
        Host {
            name: "node-1".into(),
            address: "node-1.example".into(),
            role: Role::Server,
            tags: vec![],
            init: Init::Supervisord,
            bind: BindAddr::Cidr("10.0.0.0/24".parse().unwrap()),
            client_addr: "127.0.0.1".into(),
            log_level: "INFO".into(),
            user: "consul".into(),
            api_tls: false,
            ssh: SshTarget::default(),
            paths,
            extra_config: Default::default(),
            dns: None,
            services: vec![],
            prepare: Default::default(),
            registrar: None,
            lb: None,
        }
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    const CONSUL_187_SHA: &str = "a449efb10a03df3cb9310f3a54d933ccda7c4faba4f421f183fc90a82056798e";

    // ---- script_args -------------------------------------------------------------------

    #[test]
    fn script_args_in_order_with_default_supervisor_candidates() {
        let args = script_args(&host(Paths::vendor_default()));
        assert_eq!(
            args,
            [
                "/usr/local/bin/consul",
                "/etc/consul.d",
                "/opt/consul",
                "/var/log/consul",
                "/etc/systemd/system/consul.service",
                "/etc/supervisor/conf.d/consul.conf",
                "/etc/supervisord.d/consul.ini",
                "--",
                "user:consul",
            ]
        );
        let mut paths = Paths::vendor_default();
        paths.supervisor_program = Some(p("/srv/sv/consul agent.conf"));
        let args = script_args(&host(paths));
        assert_eq!(args.len(), 8);
        assert_eq!(args[5], "/srv/sv/consul agent.conf");
    }

    // ---- fixtures ----------------------------------------------------------------------

    #[test]
    fn fresh_debian_host() {
        let f = Facts::parse(fixture!("debian12-fresh.txt")).unwrap();
        assert_eq!(f.os_id, "debian");
        assert_eq!(f.os_version, "12");
        assert!(f.os_like.is_empty());
        assert!(f.is_debian_like() && !f.is_rhel_like());
        assert_eq!(f.hostname, "vm");
        assert_eq!(f.pid1, "process_api");
        assert_eq!(f.arch, "x86_64");
        let addrs: Vec<String> = f.addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            addrs[..6],
            [
                "192.0.2.2",
                "fd00::2",
                "fe80::fc:ff:fe00:1",
                "172.17.0.1",
                "fe80::42:1cff:fe43:6e9c",
                "10.213.0.1",
            ]
        );
        assert_eq!(addrs.len(), 12);
        assert_eq!(f.consul, None);
        assert!(f.files.is_empty());
        assert_eq!(f.dirs.len(), 3);
        assert!(!f.dir_exists(Path::new("/etc/consul.d")));
        assert!(!f.dir_exists(Path::new("/opt/consul")));
        assert_eq!(
            f.commands,
            ["curl", "gzip", "zstd", "tar", "systemctl", "apt-get"]
        );
        assert_eq!(f.systemd, None);
        assert_eq!(f.supervisor, None);
        assert_eq!(f.supervisor_include_dir, None);
        assert_eq!(f.consul_pid, None);
        assert_eq!(f.epoch, 1795580406);
        assert!(!f.supervisor_installed());
        assert_eq!(
            f.supervisor_program_path(&host(Paths::vendor_default())),
            None
        );
        assert!(!f.agent_running(Init::Systemd));
        assert!(!f.agent_running(Init::Supervisord));
    }

    #[test]
    fn supervisord_host_with_consul_running() {
        let f = Facts::parse(fixture!("debian12-supervisord-running.txt")).unwrap();
        assert_eq!(f.hostname, "consul-sv-1");
        assert_eq!(f.pid1, "supervisord");
        let bin = f.consul.as_ref().unwrap();
        assert_eq!(bin.sha256, CONSUL_187_SHA);
        assert_eq!(bin.version, Some(Version::new(1, 8, 7)));
        assert_eq!(f.consul_pid, Some(29));
        assert_eq!(f.files.len(), 3);
        let hcl = &f.files[Path::new("/etc/consul.d/consul.hcl")];
        assert_eq!(
            hcl.sha256,
            "c73d88dd60f92b2f731d9e7a2943eca26f20730a24008e83a4f9179b519e3983"
        );
        assert_eq!(
            (hcl.mode.as_str(), hcl.owner.as_str(), hcl.group.as_str()),
            ("640", "consul", "consul")
        );
        let prog = &f.files[Path::new("/etc/supervisor/conf.d/consul.conf")];
        assert_eq!((prog.mode.as_str(), prog.owner.as_str()), ("644", "root"));
        assert!(f
            .file_sha(Path::new("/etc/consul.d/telemetry.json"))
            .is_some());
        assert!(f.dirs.values().all(|e| *e));
        assert_eq!(
            f.supervisor,
            Some(SupervisorState {
                running: true,
                program: Some("RUNNING".into())
            })
        );
        assert_eq!(f.supervisor_include_dir, Some(p("/etc/supervisor/conf.d")));
        assert!(f.agent_running(Init::Supervisord));
        assert!(!f.agent_running(Init::Systemd));
        assert_eq!(
            f.supervisor_program_path(&host(Paths::vendor_default())),
            Some(p("/etc/supervisor/conf.d/consul.conf"))
        );
        let mut paths = Paths::vendor_default();
        paths.supervisor_program = Some(p("/etc/supervisor/conf.d/zz-consul.conf"));
        assert_eq!(
            f.supervisor_program_path(&host(paths)),
            Some(p("/etc/supervisor/conf.d/zz-consul.conf"))
        );
    }

    #[test]
    fn supervisorctl_fallback_reads_the_same_state() {
        let rpc = Facts::parse(fixture!("debian12-supervisord-running.txt")).unwrap();
        let ctl = Facts::parse(fixture!("debian12-supervisord-running-supervisorctl.txt")).unwrap();
        assert_eq!(ctl.supervisor, rpc.supervisor);
        assert_eq!(ctl.consul, rpc.consul);
        assert_eq!(ctl.files, rpc.files);
    }

    #[test]
    fn supervisord_program_stopped_or_unknown() {
        let f = Facts::parse(fixture!("debian12-supervisord-stopped.txt")).unwrap();
        assert_eq!(
            f.supervisor,
            Some(SupervisorState {
                running: true,
                program: Some("STOPPED".into())
            })
        );
        assert_eq!(f.consul_pid, None);
        assert!(!f.agent_running(Init::Supervisord));

        let f = Facts::parse(fixture!("debian12-supervisord-unknown-program.txt")).unwrap();
        assert_eq!(
            f.supervisor,
            Some(SupervisorState {
                running: true,
                program: None
            })
        );
        assert!(!f
            .files
            .contains_key(Path::new("/etc/supervisor/conf.d/consul.conf")));
        assert!(!f.agent_running(Init::Supervisord));
    }

    #[test]
    fn supervisor_installed_but_down() {
        let f = Facts::parse(fixture!("debian12-supervisor-installed-not-running.txt")).unwrap();
        assert_eq!(
            f.supervisor,
            Some(SupervisorState {
                running: false,
                program: None
            })
        );
        assert!(f.supervisor_installed());
        assert_eq!(
            f.supervisor_program_path(&host(Paths::vendor_default())),
            Some(p("/etc/supervisor/conf.d/consul.conf"))
        );
    }

    #[test]
    fn systemd_host() {
        let f = Facts::parse(fixture!("debian12-systemd-running.txt")).unwrap();
        assert_eq!(f.pid1, "systemd");
        assert_eq!(
            f.systemd,
            Some(SystemdUnitState {
                active: "active".into(),
                enabled: "enabled".into()
            })
        );
        assert!(f.agent_running(Init::Systemd));
        assert!(!f.agent_running(Init::Supervisord));
        assert_eq!(f.supervisor, None);
        assert_eq!(
            f.supervisor_program_path(&host(Paths::vendor_default())),
            None
        );
        assert_eq!(
            f.file_sha(Path::new("/etc/systemd/system/consul.service")),
            Some("92e6809256237062e27d650a7c7cf60c23cfe57fc8a201529c584fb888361745")
        );
        assert!(!f.dir_exists(Path::new("/var/log/consul")));
        assert!(f.has_command("sudo") && !f.has_command("supervisorctl"));
    }

    #[test]
    fn centos7_host() {
        let f = Facts::parse(fixture!("centos7-systemd-consul-failed.txt")).unwrap();
        assert_eq!(f.os_id, "centos");
        assert_eq!(f.os_like, ["rhel", "fedora"]);
        assert_eq!(f.os_version, "7");
        assert!(f.is_rhel_like() && !f.is_debian_like());
        assert_eq!(
            f.consul.as_ref().unwrap().version,
            Some(Version::new(1, 9, 17))
        );
        assert_eq!(f.systemd.as_ref().unwrap().active, "failed");
        assert!(!f.agent_running(Init::Systemd));
        assert_eq!(f.consul_pid, None);
        assert_eq!(f.files.len(), 3);
        assert!(f.has_command("yum") && !f.has_command("dnf") && !f.has_command("zstd"));
        assert_eq!(
            f.bind_addr_in(&"192.168.56.0/24".parse().unwrap()),
            Ok("192.168.56.12".parse().unwrap())
        );
    }

    #[test]
    fn rhel_supervisord_uses_ini_in_supervisord_d() {
        let f = Facts::parse(fixture!("rocky9-supervisord-fresh.txt")).unwrap();
        assert!(f.is_rhel_like());
        assert_eq!(f.os_version, "9.3");
        assert_eq!(
            f.supervisor,
            Some(SupervisorState {
                running: true,
                program: None
            })
        );
        assert_eq!(
            f.supervisor_program_path(&host(Paths::vendor_default())),
            Some(p("/etc/supervisord.d/consul.ini"))
        );
    }

    #[test]
    fn login_noise_before_the_header_is_ignored() {
        let f = Facts::parse(fixture!("login-noise-before-header.txt")).unwrap();
        assert_eq!(
            f.systemd,
            Some(SystemdUnitState {
                active: "inactive".into(),
                enabled: "not-found".into()
            })
        );
        assert!(!f.agent_running(Init::Systemd));
    }

    fn parse_err(text: &str) -> String {
        format!("{:#}", Facts::parse(text).unwrap_err())
    }

    #[test]
    fn malformed_outputs_are_errors_naming_the_line() {
        let e = parse_err(fixture!("malformed-truncated.txt"));
        assert!(e.contains("incomplete") && e.contains("no `end`"), "{e}");

        let e = parse_err(fixture!("malformed-bad-addr.txt"));
        assert!(
            e.contains("line 7") && e.contains("192.0.2.300/24") && e.contains("not an IP address"),
            "{e}"
        );

        let e = parse_err(fixture!("malformed-interleaved.txt"));
        assert!(e.contains("line 6") && e.contains("Welcome to vm!"), "{e}");

        let e = parse_err(fixture!("malformed-no-header.txt"));
        assert!(
            e.contains("no `consulctl-facts 1` header")
                && e.contains("This account is currently not available."),
            "{e}"
        );

        assert!(parse_err("").contains("empty"));
        assert!(parse_err("consulctl-facts 2\nend\n").contains("understands `consulctl-facts 1`"));
    }

    #[test]
    fn malformed_lines() {
        let base = "consulctl-facts 1\nhostname h\npid1 init\narch x86_64\nepoch 1\n";
        let cases = [
            ("binary_sha256 abc\n", "not a sha256"),
            ("sha256 zz  /etc/x\n", "sha256sum line"),
            ("stat 64x root root /x\n", "stat MODE USER GROUP PATH"),
            ("dir 2 /x\n", "dir 1 PATH"),
            ("hostname again\n", "appears twice"),
            ("supervisor_rpc running\n", "process state"),
            ("supervisorctl x consul RUNNING\n", "EXIT_CODE"),
            ("systemd_active active\n", "only one of"),
            ("os NAME=Debian\n", "ID, ID_LIKE or VERSION_ID"),
            ("consul_pid -1\n", "process id"),
            (
                "error expected at least 5 arguments, got 0\n",
                "facts script failed",
            ),
        ];
        for (line, want) in cases {
            let e = parse_err(&format!("{base}{line}end\n"));
            assert!(e.contains(want), "{line:?}: {e}");
        }
        assert!(
            parse_err("consulctl-facts 1\npid1 x\nepoch 1\nend\n").contains("no `hostname` line")
        );
        assert!(parse_err(&format!("{base}end\nend\n")).contains("after `end`"));
        assert!(
            parse_err("consulctl-facts 1\nhostname h\npid1 x\nepoch 1\nend\n")
                .contains("no `arch` line")
        );
    }

    #[test]
    fn small_parsers() {
        assert_eq!(unquote_os_release("\"rhel fedora\""), "rhel fedora");
        assert_eq!(unquote_os_release("'7'"), "7");
        assert_eq!(unquote_os_release("debian"), "debian");
        assert_eq!(unquote_os_release(r#""a \"b\"""#), "a \"b\"");
        assert_eq!(
            parse_addr("fe8000000000000000fc00fffe000001 eth0"),
            Some("fe80::fc:ff:fe00:1".parse().unwrap())
        );
        assert_eq!(parse_addr("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(
            parse_addr("10.1.2.3/8 eth0:1"),
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(parse_addr("eth0"), None);
        let h = "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac";
        assert_eq!(
            parse_sha256sum_line(&format!("{h}  /a b/c")),
            Some((h.into(), p("/a b/c")))
        );
        assert_eq!(
            parse_sha256sum_line(&format!("{h} */bin")),
            Some((h.into(), p("/bin")))
        );
        assert_eq!(
            parse_sha256sum_line(&format!("\\{h}  /we\\\\ird\\nx")),
            Some((h.into(), p("/we\\ird\nx")))
        );
        assert_eq!(parse_sha256sum_line(&format!("{h} /x")), None);
        assert_eq!(
            parse_supervisorctl("consul                           FATAL     Exited too quickly"),
            SupervisorState {
                running: true,
                program: Some("FATAL".into())
            }
        );
        assert_eq!(
            parse_supervisorctl("unix:///var/run/supervisor/supervisor.sock refused connection"),
            SupervisorState {
                running: false,
                program: None
            }
        );
    }

    #[test]
    fn bind_addr_in_network() {
        let f = Facts::parse(fixture!("debian12-supervisord-running.txt")).unwrap();
        assert_eq!(
            f.bind_addr_in(&"192.0.2.0/24".parse().unwrap()),
            Ok("192.0.2.2".parse().unwrap())
        );
        assert_eq!(
            f.bind_addr_in(&"fd00::/64".parse().unwrap()),
            Ok("fd00::2".parse().unwrap())
        );
        let e = f.bind_addr_in(&"10.0.0.0/8".parse().unwrap()).unwrap_err();
        assert_eq!(
            e,
            "host `consul-sv-1` has no address in 10.0.0.0/8; its addresses: 192.0.2.2, fd00::2, fe80::fc:ff:fe00:1, 172.17.0.1, fe80::42:1cff:fe43:6e9c"
        );
        let e = f.bind_addr_in(&"fe80::/10".parse().unwrap()).unwrap_err();
        assert!(
            e.contains(
                "has 2 addresses in fe80::/10 (fe80::fc:ff:fe00:1, fe80::42:1cff:fe43:6e9c)"
            ),
            "{e}"
        );
        let empty = Facts {
            hostname: "x".into(),
            ..Default::default()
        };
        assert!(empty
            .bind_addr_in(&"10.0.0.0/8".parse().unwrap())
            .unwrap_err()
            .ends_with("its addresses: none"));
    }
}
