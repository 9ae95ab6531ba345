//! The debug log: every run writes one (remote commands, their output, timings per phase).
//! Its path is printed when a run fails. Secrets never reach it: they travel in files, and
//! every event is passed through [`consulctl_core::redact::redact`] before it is written (remote
//! output such as a config file read back from a host may hold keys and tokens).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

static SINK: OnceLock<Mutex<Option<File>>> = OnceLock::new();

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(lock) = SINK.get() {
            if let Ok(mut guard) = lock.lock() {
                if let Some(file) = guard.as_mut() {
                    // One call per event (the formatter writes each event whole).
                    let text = String::from_utf8_lossy(buf);
                    file.write_all(consulctl_core::redact::redact(&text, &[]).as_bytes())?;
                    return Ok(buf.len());
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(lock) = SINK.get() {
            if let Ok(mut guard) = lock.lock() {
                if let Some(file) = guard.as_mut() {
                    return file.flush();
                }
            }
        }
        Ok(())
    }
}

/// Open (or switch to) the debug log at `path`, creating its directory. Returns the path.
pub fn open(path: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file =
        File::create(path).with_context(|| format!("creating the debug log {}", path.display()))?;
    let first = SINK.set(Mutex::new(Some(file.try_clone()?))).is_ok();
    if first {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| Sink)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_target(false)
            .try_init();
    } else if let Some(lock) = SINK.get() {
        *lock.lock().unwrap() = Some(file);
    }
    Ok(path.to_path_buf())
}

/// The default debug log path for a command run on an inventory: `<state dir>/logs/<cmd>-<UTC>.log`.
pub fn default_path(state_dir: &Path, command: &str) -> PathBuf {
    let ts = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    state_dir.join("logs").join(format!("{command}-{ts}.log"))
}
