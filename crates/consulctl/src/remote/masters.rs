//! Where the ssh ControlMaster sockets of a run live, and the clean-up of those a killed run
//! left behind.
//!
//! Every run keeps its masters' control directories under one directory of its own in the temp
//! dir, `consulctl-ssh-<pid>-<start ticks>` (the PID and its start time name the run, also
//! across PID reuse). A run closes its masters when it ends; a run that was killed cannot, and
//! its masters (`ssh -M -f -N -S <dir>/.ssh-connection*/master ...`, ControlPersist=yes) would
//! live on. The first connection of the next run stops them: `ssh -O exit` on each socket, then
//! SIGTERM to any ssh process still naming the dead run's directory, then the directory goes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::anyhow;

use crate::local::process_start_ticks;

const PREFIX: &str = "consulctl-ssh-";

static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// This run's control directory (made on first use, after cleaning up the masters of dead runs).
pub fn control_dir() -> anyhow::Result<&'static Path> {
    DIR.get_or_init(|| {
        let base = std::env::temp_dir();
        for note in clean_dead_runs(&base) {
            eprintln!("warning: {note}");
            tracing::warn!(note = %note, "ssh masters of a dead run");
        }
        let pid = std::process::id();
        let dir = base.join(run_dir_name(pid, process_start_ticks(pid).unwrap_or(0)));
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
            Err(e) => Err(format!("creating {}: {e}", dir.display())),
        }
    })
    .as_deref()
    .map_err(|e| anyhow!("the ssh control directory: {e}"))
}

/// `consulctl-ssh-<pid>-<start ticks>`.
pub fn run_dir_name(pid: u32, start_ticks: u64) -> String {
    format!("{PREFIX}{pid}-{start_ticks}")
}

/// The PID and start ticks a run directory is named after.
pub fn parse_run_dir_name(name: &str) -> Option<(u32, u64)> {
    let (pid, ticks) = name.strip_prefix(PREFIX)?.split_once('-')?;
    Some((pid.parse().ok()?, ticks.parse().ok()?))
}

/// Whether the run a directory is named after is gone: no process with that PID, or one that
/// started at another time (the PID was reused).
pub fn run_is_dead(pid: u32, start_ticks: u64, ticks_now: impl Fn(u32) -> Option<u64>) -> bool {
    ticks_now(pid) != Some(start_ticks)
}

/// Stop the ssh masters of dead runs under `base` and remove their directories. Returns one
/// note per dead run that still had masters.
pub fn clean_dead_runs(base: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, ticks)) = parse_run_dir_name(&name) else {
            continue;
        };
        if !run_is_dead(pid, ticks, process_start_ticks) {
            continue;
        }
        let dir = entry.path();
        // Only our own directories (the temp dir is shared).
        let ours = std::fs::symlink_metadata(&dir)
            .map(|m| {
                m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == unsafe { libc::geteuid() }
            })
            .unwrap_or(false);
        if !ours {
            continue;
        }
        let mut exited = 0;
        for socket in sockets(&dir) {
            let ok = std::process::Command::new("ssh")
                .arg("-S")
                .arg(&socket)
                .args(["-O", "exit", "consulctl-dead-master"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                exited += 1;
            }
        }
        let killed = kill_ssh_naming(&dir);
        std::fs::remove_dir_all(&dir).ok();
        if exited + killed > 0 {
            notes.push(format!(
                "stopped {} ssh connection(s) left by a killed consulctl run (pid {pid})",
                exited.max(killed)
            ));
        }
    }
    notes
}

/// The `master` sockets under a run directory (`.ssh-connection*/master`).
fn sockets(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("master"))
        .filter(|p| p.exists())
        .collect()
}

/// SIGTERM every ssh process of this user whose arguments name a path under `dir` (the master's
/// `-S <dir>/.../master` and `-E <dir>/.../log`). Returns how many there were.
fn kill_ssh_naming(dir: &Path) -> usize {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let me = unsafe { libc::geteuid() };
    let prefix = format!("{}/", dir.display());
    let mut n = 0;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let owner = std::fs::metadata(p.path())
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(u32::MAX);
        if owner != me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if is_master_of(&cmdline, &prefix) {
            // SAFETY: a plain kill(2) of a process of ours.
            if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
                n += 1;
            }
        }
    }
    n
}

/// Whether a NUL-separated command line is an ssh process with an argument under `prefix`.
pub fn is_master_of(cmdline: &[u8], prefix: &str) -> bool {
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let Some(argv0) = args.first() else {
        return false;
    };
    let program = argv0.rsplit('/').next().unwrap_or(argv0);
    program == "ssh" && args.iter().skip(1).any(|a| a.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_name_their_run_and_a_reused_pid_is_dead() {
        let name = run_dir_name(4242, 987654);
        assert_eq!(name, "consulctl-ssh-4242-987654");
        assert_eq!(parse_run_dir_name(&name), Some((4242, 987654)));
        assert_eq!(parse_run_dir_name(".ssh-connectionAbC"), None);
        assert_eq!(parse_run_dir_name("consulctl-ssh-x-1"), None);
        // Gone, reused, alive.
        assert!(run_is_dead(4242, 987654, |_| None));
        assert!(run_is_dead(4242, 987654, |_| Some(1)));
        assert!(!run_is_dead(4242, 987654, |_| Some(987654)));
        // This process is alive under its own name.
        let me = std::process::id();
        let ticks = process_start_ticks(me).expect("own /proc/self/stat");
        assert!(!run_is_dead(me, ticks, process_start_ticks));
    }

    #[test]
    fn only_ssh_processes_naming_the_dead_run_are_masters() {
        let prefix = "/tmp/consulctl-ssh-1-2/";
        let master = b"ssh\0-E\0/tmp/consulctl-ssh-1-2/.ssh-connectionX/log\0-S\0/tmp/consulctl-ssh-1-2/.ssh-connectionX/master\0-M\0-f\0-N\0root@10.0.0.1\0";
        assert!(is_master_of(master, prefix));
        let full = b"/usr/bin/ssh\0-S\0/tmp/consulctl-ssh-1-2/.ssh-connectionX/master\0x\0";
        assert!(is_master_of(full, prefix));
        // Another run's master, another program naming the path.
        let other = b"ssh\0-S\0/tmp/consulctl-ssh-1-23/.ssh-connectionX/master\0x\0";
        assert!(!is_master_of(other, prefix));
        let cat = b"cat\0/tmp/consulctl-ssh-1-2/.ssh-connectionX/log\0";
        assert!(!is_master_of(cat, prefix));
    }

    /// A real (idle) ssh process naming a dead run's directory is stopped and the directory
    /// removed; a live run's directory is left alone.
    #[test]
    fn clean_dead_runs_stops_their_ssh_and_keeps_live_ones() {
        let base = tempfile::tempdir().unwrap();
        // A dead run: PID 1's start ticks are never these.
        let dead = base.path().join(run_dir_name(1, u64::MAX - 7));
        let conn = dead.join(".ssh-connectionTEST");
        std::fs::create_dir_all(&conn).unwrap();
        // A process named ssh that runs until stopped, naming a path under the dead run's dir.
        std::fs::write(conn.join("master"), "").unwrap();
        let fake = base.path().join("ssh");
        std::os::unix::fs::symlink(which("tail"), &fake).unwrap();
        let mut child = std::process::Command::new(&fake)
            .arg("-f")
            .arg(conn.join("master"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "the fake master runs");
        let me = std::process::id();
        let live = base
            .path()
            .join(run_dir_name(me, process_start_ticks(me).unwrap()));
        std::fs::create_dir_all(&live).unwrap();
        let notes = clean_dead_runs(base.path());
        assert!(!dead.exists(), "the dead run's dir is removed");
        assert!(live.exists(), "a live run's dir is kept");
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the dead run's ssh was stopped: {status:?}"
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("pid 1)"), "{notes:?}");
    }

    fn which(program: &str) -> PathBuf {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(program))
            .find(|p| p.exists())
            .expect("tail in /usr/bin or /bin")
    }
}
