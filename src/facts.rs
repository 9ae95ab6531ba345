//! Facts: one read-only command per host, parsed into `Facts`.
//!
//! The remote side is `src/remote/facts.sh`, run as `sh -c SCRIPT sh ARGS...` with every
//! path passed as a positional argument (escaped by openssh), never spliced into the script.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::version::Version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// `/etc/os-release` ID, ID_LIKE (space separated), VERSION_ID.
    pub os_id: String,
    pub os_like: Vec<String>,
    pub os_version: String,
    pub hostname: String,
    /// Name of PID 1's command (`systemd`, `supervisord`, `init`, ...).
    pub pid1: String,
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
    /// Commands found on PATH, among: curl, gzip, zstd, tar, systemctl, supervisorctl, sudo, apt-get, dnf, yum.
    pub commands: Vec<String>,
    /// PID of the running consul agent, if any (any init).
    pub consul_pid: Option<u32>,
    /// Host clock, seconds since the epoch, when the facts were read.
    pub epoch: i64,
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
    pub owner: String,
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
    pub fn has_command(&self, name: &str) -> bool {
        self.commands.iter().any(|c| c == name)
    }

    pub fn file_sha(&self, path: &std::path::Path) -> Option<&str> {
        self.files.get(path).map(|f| f.sha256.as_str())
    }
}

// --- placeholder API (replaced by the facts branch) ---
pub const SCRIPT: &str = "";
pub fn script_args(_host: &crate::model::Host) -> Vec<String> {
    todo!()
}
impl Facts {
    pub fn parse(_stdout: &str) -> anyhow::Result<Facts> {
        todo!()
    }
    pub fn supervisor_program_path(&self, _host: &crate::model::Host) -> Option<PathBuf> {
        todo!()
    }
    pub fn bind_addr_in(&self, _net: &ipnet::IpNet) -> Result<IpAddr, String> {
        todo!()
    }
    pub fn agent_running(&self, _init: crate::model::Init) -> bool {
        todo!()
    }
}
