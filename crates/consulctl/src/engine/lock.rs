//! Run locks: one on the control host per inventory, one on each host a run changes. They stop
//! two operators from changing the same cluster at once. A lock names who holds it; a stale one
//! is reported and taken over: its process on this machine is gone, it belongs to the run whose
//! stale control lock this run took over, or (on a host) it is older than
//! `HOST_LOCK_STALE_SECS`. A host lock of a run on another machine is never taken over:
//! `consulctl unlock` breaks it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};

use crate::remote::ssh::Connection;
use consulctl_core::error::Error;

/// Who holds a lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// RFC 3339, UTC.
    pub started: String,
    /// Unique per run, so a run only ever releases its own lock.
    pub token: String,
}

impl Holder {
    pub fn current(command: &str) -> Holder {
        let started = chrono::Utc::now();
        let pid = std::process::id();
        Holder {
            user: user_name(),
            host: hostname(),
            pid,
            command: command.to_string(),
            started: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            token: format!(
                "{}-{}-{}",
                hostname(),
                pid,
                started.timestamp_nanos_opt().unwrap_or(0)
            ),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{}@{} (pid {}, `consulctl {}`, since {})",
            self.user, self.host, self.pid, self.command, self.started
        )
    }
}

pub use crate::local::{process_start_ticks, process_started_unix, user_name};

/// Whether the process that took a lock on this machine still runs: its PID exists and did not
/// start after the lock was taken (a later start is another process under a reused PID).
pub fn holder_alive(h: &Holder) -> bool {
    if !Path::new(&format!("/proc/{}", h.pid)).exists() {
        return false;
    }
    let taken = chrono::DateTime::parse_from_rfc3339(&h.started).map(|t| t.timestamp());
    match (process_started_unix(h.pid), taken) {
        // Boot time and ticks round down: a second of slack.
        (Some(started), Ok(taken)) => started <= taken + 1,
        _ => true,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}

/// The control-host lock of one inventory; released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    holder: Holder,
    /// The holder of the stale lock this run took over: the host locks it left are stale too.
    took_over: Option<Holder>,
}

impl RunLock {
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The dead run whose stale control lock this run took over, if any.
    pub fn took_over(&self) -> Option<&Holder> {
        self.took_over.as_ref()
    }

    /// Take the lock in `state_dir`, or fail at once naming who holds it. A lock whose process is
    /// gone (same machine) is stale: it is reported and taken over.
    pub fn acquire(state_dir: &Path, command: &str) -> Result<RunLock, Error> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))
            .map_err(Error::Runtime)?;
        let path = state_dir.join("run.lock");
        let holder = Holder::current(command);
        let mut took_over = None;
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let text = serde_json::to_string_pretty(&holder).expect("holder serializes");
                    f.write_all(text.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))
                        .map_err(Error::Runtime)?;
                    return Ok(RunLock {
                        path,
                        holder,
                        took_over,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match serde_json::from_str::<Holder>(&text) {
                        Ok(other) if is_stale(&other) => {
                            eprintln!(
                                "warning: taking over a stale lock {}: held by {}, whose process is gone",
                                path.display(),
                                other.describe()
                            );
                            std::fs::remove_file(&path).ok();
                            took_over = Some(other);
                        }
                        Ok(other) => {
                            return Err(Error::Locked(anyhow!(
                                "the cluster is locked by {}: another consulctl run is changing it ({})",
                                other.describe(),
                                path.display()
                            )))
                        }
                        Err(_) => {
                            return Err(Error::Locked(anyhow!(
                                "the cluster is locked ({} exists but is unreadable); if no other run \
                                 is active, remove it",
                                path.display()
                            )))
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::Runtime(
                        anyhow!(e).context(format!("creating the lock {}", path.display())),
                    ))
                }
            }
        }
        Err(Error::Locked(anyhow!(
            "could not take the lock {}",
            path.display()
        )))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Only remove our own lock.
        if let Ok(text) = std::fs::read_to_string(&self.path) {
            if serde_json::from_str::<Holder>(&text)
                .map(|h| h.token == self.holder.token)
                .unwrap_or(false)
            {
                std::fs::remove_file(&self.path).ok();
            }
        }
    }
}

/// A lock is stale when it was taken on this machine by a process that no longer runs.
fn is_stale(h: &Holder) -> bool {
    h.host == hostname() && !holder_alive(h)
}

/// What to do about a host lock another run holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostLockVerdict {
    /// Its run is provably gone: take it over, saying why.
    Stale(String),
    /// Its run may still be changing the host (it runs here, or on another machine).
    Held { here: bool },
}

/// Decide about the host lock `held`: stale when it is the lock of the run whose stale control
/// lock this run took over (`took_over`, same token), or when it was taken on this machine
/// (`this_host`) by a process that is gone (`alive` says whether it runs). A lock taken on
/// another machine is never judged from here.
pub fn host_lock_verdict(
    held: &Holder,
    took_over: Option<&Holder>,
    this_host: &str,
    alive: impl Fn(&Holder) -> bool,
) -> HostLockVerdict {
    if took_over.is_some_and(|t| t.token == held.token) {
        return HostLockVerdict::Stale(format!(
            "held by {}, the killed run whose stale control lock this run took over",
            held.describe()
        ));
    }
    if held.host == this_host {
        if alive(held) {
            return HostLockVerdict::Held { here: true };
        }
        return HostLockVerdict::Stale(format!(
            "held by {}, whose process is gone",
            held.describe()
        ));
    }
    HostLockVerdict::Held { here: false }
}

/// A host lock older than this is stale (its run died without releasing it).
pub const HOST_LOCK_STALE_SECS: u64 = 6 * 3600;

/// Take the lock on a host (`/var/lib/consulctl/lock`). Fails naming the holder (and how to
/// break the lock) when another run holds it; takes over a stale one (see `host_lock_verdict`;
/// `took_over`: the dead run whose control lock this run took over) and returns why it was
/// stale.
pub async fn lock_host(
    conn: &Connection,
    holder: &Holder,
    took_over: Option<&Holder>,
) -> anyhow::Result<Option<String>> {
    let info = serde_json::to_string(holder)?;
    let args = vec![
        "acquire".to_string(),
        holder.token.clone(),
        HOST_LOCK_STALE_SECS.to_string(),
    ];
    let mut out = conn
        .run(
            "lock host",
            crate::remote::HOST_LOCK,
            &args,
            Some(info.as_bytes()),
        )
        .await?;
    let mut why = None;
    if out.status == 3 {
        if let Some(held) = held_by(&out.stdout) {
            if let HostLockVerdict::Stale(reason) =
                host_lock_verdict(&held, took_over, &hostname(), holder_alive)
            {
                // Replaced only if the same lock is still there.
                let args = vec![
                    "takeover".to_string(),
                    holder.token.clone(),
                    HOST_LOCK_STALE_SECS.to_string(),
                    held.token.clone(),
                ];
                out = conn
                    .run(
                        "lock host",
                        crate::remote::HOST_LOCK,
                        &args,
                        Some(info.as_bytes()),
                    )
                    .await?;
                why = Some(reason);
            }
        }
    }
    match out.status {
        0 => Ok(why.or_else(|| {
            out.stdout.lines().find_map(|l| {
                l.strip_prefix("stale ")
                    .map(|h| format!("held by {h}, older than {HOST_LOCK_STALE_SECS} s"))
            })
        })),
        3 => Err(locked_error(conn.host(), &out.stdout)),
        _ => Err(anyhow!("cannot take the host lock: {}", out.tail(4))),
    }
}

/// The holder in the script's `held <json>` line.
fn held_by(stdout: &str) -> Option<Holder> {
    let held = stdout.lines().find_map(|l| l.strip_prefix("held "))?;
    serde_json::from_str(held).ok()
}

/// "host is locked by ...", with what to do about it.
fn locked_error(host: &str, stdout: &str) -> anyhow::Error {
    let raw = stdout
        .lines()
        .find_map(|l| l.strip_prefix("held "))
        .unwrap_or("")
        .to_string();
    match held_by(stdout) {
        Some(h) if h.host == hostname() => anyhow!(
            "host is locked by {}: another consulctl run is changing it (its process runs on this \
             machine; wait for it or stop it)",
            h.describe()
        ),
        Some(h) => anyhow!(
            "host is locked by {}: another consulctl run is changing it from {}; if that run is \
             gone, break the lock with `consulctl unlock -i INVENTORY --limit {host}`",
            h.describe(),
            h.host
        ),
        None => anyhow!(
            "host is locked by {raw}: another consulctl run is changing it; if that run is gone, \
             break the lock with `consulctl unlock -i INVENTORY --limit {host}`"
        ),
    }
}

/// Break the lock on a host whatever run holds it (`consulctl unlock`). Returns the holder of
/// the lock broken (`None`: the host was not locked). A holder whose process still runs on this
/// machine is refused.
pub async fn break_host_lock(conn: &Connection) -> anyhow::Result<Option<Holder>> {
    let args = vec!["show".to_string(), String::new(), "0".to_string()];
    let out = conn
        .run_ok("show host lock", crate::remote::HOST_LOCK, &args, None)
        .await?;
    let Some(held) = held_by(&out.stdout) else {
        if out.stdout.lines().any(|l| l.starts_with("held ")) {
            // Unreadable holder: break it all the same.
            let args = vec!["break".to_string(), String::new(), "0".to_string()];
            conn.run_ok("break host lock", crate::remote::HOST_LOCK, &args, None)
                .await?;
            return Ok(Some(Holder {
                user: "?".into(),
                host: "?".into(),
                pid: 0,
                command: "?".into(),
                started: "?".into(),
                token: String::new(),
            }));
        }
        return Ok(None);
    };
    if held.host == hostname() && holder_alive(&held) {
        bail!(
            "locked by {}, whose process still runs on this machine: wait for it or stop it first",
            held.describe()
        );
    }
    let args = vec!["break".to_string(), held.token.clone(), "0".to_string()];
    conn.run_ok("break host lock", crate::remote::HOST_LOCK, &args, None)
        .await?;
    Ok(Some(held))
}

/// Remove the lock a dead run (`dead`) left on a host, if it is still there. True when it was.
pub async fn release_stale(conn: &Connection, dead: &Holder) -> anyhow::Result<bool> {
    let args = vec!["release".to_string(), dead.token.clone(), "0".to_string()];
    let out = conn
        .run_ok(
            "release stale host lock",
            crate::remote::HOST_LOCK,
            &args,
            None,
        )
        .await?;
    Ok(out.stdout.lines().any(|l| l == "released"))
}

/// Release our lock on a host (a lock held by another token is left alone).
pub async fn unlock_host(conn: &Connection, holder: &Holder) -> anyhow::Result<()> {
    let args = vec!["release".to_string(), holder.token.clone(), "0".to_string()];
    conn.run_ok("unlock host", crate::remote::HOST_LOCK, &args, None)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "apply").unwrap();
        let err = RunLock::acquire(dir.path(), "apply").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("locked by"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("consulctl apply"), "{msg}");
        assert_eq!(err.code(), 2);
        drop(first);
        RunLock::acquire(dir.path(), "apply").expect("released on drop");
    }

    #[test]
    fn stale_lock_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut dead = Holder::current("apply");
        dead.pid = u32::MAX - 1; // no such process
        dead.token = "old".into();
        std::fs::write(
            dir.path().join("run.lock"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        let lock = RunLock::acquire(dir.path(), "apply").expect("stale lock taken over");
        assert_ne!(lock.holder().token, "old");
    }

    fn held(host: &str, pid: u32, token: &str) -> Holder {
        Holder {
            user: "op".into(),
            host: host.into(),
            pid,
            command: "apply".into(),
            started: "2026-01-02T03:04:05Z".into(),
            token: token.into(),
        }
    }

    #[test]
    fn host_lock_staleness() {
        let alive = |_: &Holder| true;
        let dead = |_: &Holder| false;
        let mine = held("ctl", 10, "t-10");
        // The run whose stale control lock we took over: stale, even were its PID reused.
        let v = host_lock_verdict(&mine, Some(&held("ctl", 10, "t-10")), "ctl", alive);
        assert!(
            matches!(&v, HostLockVerdict::Stale(why) if why.contains("took over")),
            "{v:?}"
        );
        // Same machine, process gone: stale.
        let v = host_lock_verdict(&mine, None, "ctl", dead);
        assert!(
            matches!(&v, HostLockVerdict::Stale(why) if why.contains("process is gone")),
            "{v:?}"
        );
        // Same machine, process alive, another run's token: held here.
        assert_eq!(
            host_lock_verdict(&mine, Some(&held("ctl", 11, "t-11")), "ctl", alive),
            HostLockVerdict::Held { here: true }
        );
        // Another machine: never judged from here, whatever its PID does here.
        let remote = held("other", 10, "o-10");
        assert_eq!(
            host_lock_verdict(&remote, None, "ctl", dead),
            HostLockVerdict::Held { here: false }
        );
        assert_eq!(
            host_lock_verdict(&remote, Some(&held("ctl", 10, "t-10")), "ctl", dead),
            HostLockVerdict::Held { here: false }
        );
    }

    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let me = std::process::id();
        let mut h = Holder::current("apply");
        assert!(holder_alive(&h), "this process holds it");
        // A lock taken before this process started: the PID was reused since.
        h.started = "2001-01-01T00:00:00Z".into();
        assert!(!holder_alive(&h));
        h.pid = u32::MAX - 1;
        h.started = chrono::Utc::now().to_rfc3339();
        assert!(!holder_alive(&h));
        assert!(process_started_unix(me).is_some());
    }

    #[test]
    fn the_user_is_the_uids_name_without_user_in_the_environment() {
        let uid = unsafe { libc::geteuid() };
        let name = crate::local::passwd_name(uid);
        // What the passwd database says, when it has an entry (always in the lab and on CI).
        let expected = std::process::Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        assert_eq!(name, expected);
        // user_name() prefers it over the environment, so an unset USER changes nothing.
        if let Some(n) = name {
            assert_eq!(user_name(), n);
            assert_eq!(Holder::current("apply").user, n);
            assert_ne!(n, "unknown");
        }
    }

    #[test]
    fn lock_of_another_machine_is_never_stale() {
        let mut other = Holder::current("apply");
        other.host = "some-other-control-host".into();
        other.pid = u32::MAX - 1;
        assert!(!is_stale(&other));
    }
}
