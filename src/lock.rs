//! Run locks: one on the control host per inventory, one on each host a run changes. They stop
//! two operators from changing the same cluster at once. A lock names who holds it; a stale one
//! (its process is gone, or on a host it is older than `HOST_LOCK_STALE_SECS`) is reported and
//! taken over.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ssh::Connection;

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
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
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
}

impl RunLock {
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Take the lock in `state_dir`, or fail at once naming who holds it. A lock whose process is
    /// gone (same machine) is stale: it is reported and taken over.
    pub fn acquire(state_dir: &Path, command: &str) -> Result<RunLock, Error> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))
            .map_err(Error::Runtime)?;
        let path = state_dir.join("run.lock");
        let holder = Holder::current(command);
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
                    return Ok(RunLock { path, holder });
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
    h.host == hostname() && !Path::new(&format!("/proc/{}", h.pid)).exists()
}

/// A host lock older than this is stale (its run died without releasing it).
pub const HOST_LOCK_STALE_SECS: u64 = 6 * 3600;

const HOST_LOCK: &str = include_str!("remote/host-lock.sh");

/// Take the lock on a host (`/var/lib/consulctl/lock`). Fails naming the holder when another run
/// holds it; takes over (and says so in the returned note) a stale one.
pub async fn lock_host(conn: &Connection, holder: &Holder) -> anyhow::Result<Option<String>> {
    let info = serde_json::to_string(holder)?;
    let args = vec![
        "acquire".to_string(),
        holder.token.clone(),
        HOST_LOCK_STALE_SECS.to_string(),
    ];
    let out = conn
        .run("lock host", HOST_LOCK, &args, Some(info.as_bytes()))
        .await?;
    match out.status {
        0 => Ok(out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("stale ").map(str::to_string))),
        3 => {
            let held = out
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("held "))
                .unwrap_or("");
            let who = serde_json::from_str::<Holder>(held)
                .map(|h| h.describe())
                .unwrap_or_else(|_| held.to_string());
            Err(anyhow!(
                "host is locked by {who}: another consulctl run is changing it"
            ))
        }
        _ => Err(anyhow!("cannot take the host lock: {}", out.tail(4))),
    }
}

/// Release our lock on a host (a lock held by another token is left alone).
pub async fn unlock_host(conn: &Connection, holder: &Holder) -> anyhow::Result<()> {
    let args = vec!["release".to_string(), holder.token.clone(), "0".to_string()];
    conn.run_ok("unlock host", HOST_LOCK, &args, None).await?;
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

    #[test]
    fn lock_of_another_machine_is_never_stale() {
        let mut other = Holder::current("apply");
        other.host = "some-other-control-host".into();
        other.pid = u32::MAX - 1;
        assert!(!is_stale(&other));
    }
}
