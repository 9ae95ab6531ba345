//! Putting rendered files in place without ever leaving the load balancer broken:
//! stage next to the live file, validate the staged file, swap atomically, test the whole
//! configuration, reload, confirm that the new generation is served. Any failure puts the
//! previous files back (the running process never saw the new ones, or refused them) and says
//! which step failed with the tool's own message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Mutex;

use super::config::{Config, Kind};
use super::nginx::generation_path;
use super::render::{Output, Rendered};
use super::runtime::{self, Change, Layout};

/// The side effects beyond files: commands and the status server. Faked in tests.
pub trait System: Send + Sync {
    /// Run a command; `Err` carries what it printed and how it ended.
    fn run(&self, argv: &[String]) -> Result<(), String>;
    /// Whether `GET http://127.0.0.1:<port><path>` answers 200.
    fn served(&self, port: u16, path: &str) -> bool;
    /// One command to HAProxy's admin socket, and its answer. Without one, every change
    /// reloads.
    fn admin(&self, socket: &Path, command: &str) -> Result<String, String> {
        let _ = (socket, command);
        Err("no runtime API".into())
    }
}

/// Real commands and a real HTTP GET.
pub struct RealSystem;

impl System for RealSystem {
    fn run(&self, argv: &[String]) -> Result<(), String> {
        let Some((program, args)) = argv.split_first() else {
            return Err("empty command".into());
        };
        let out = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("`{}`: cannot run: {e}", argv.join(" ")))?;
        if out.status.success() {
            return Ok(());
        }
        let mut text = tidy(&String::from_utf8_lossy(&out.stderr));
        let stdout = tidy(&String::from_utf8_lossy(&out.stdout));
        if !stdout.trim().is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(stdout.trim());
        }
        Err(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            text
        ))
    }

    fn served(&self, port: u16, path: &str) -> bool {
        http_status(port, path, Duration::from_secs(2)) == Some(200)
    }

    fn admin(&self, socket: &Path, command: &str) -> Result<String, String> {
        use std::io::Read;
        let what = |e: std::io::Error| format!("{}: {e}", socket.display());
        let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(what)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(what)?;
        s.set_write_timeout(Some(Duration::from_secs(2)))
            .map_err(what)?;
        s.write_all(format!("{command}\n").as_bytes())
            .map_err(what)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).map_err(what)?;
        Ok(answer)
    }
}

/// A tool's message without what changes from one run to the next (nginx's
/// `2026/12/03 09:42:43 [emerg] 622#622: ` prefix keeps only `[emerg]`), so that a failure
/// that repeats reads the same each time.
pub fn tidy(text: &str) -> String {
    text.lines()
        .map(|line| {
            let b = line.as_bytes();
            let stamped = b.len() > 20
                && b[4] == b'/'
                && b[7] == b'/'
                && b[10] == b' '
                && b[13] == b':'
                && b[16] == b':'
                && b[19] == b' ';
            if !stamped {
                return line.to_string();
            }
            let rest = &line[20..];
            // `[emerg] 622#622: message` -> `[emerg] message`
            match (rest.find("] "), rest.find(": ")) {
                (Some(a), Some(c)) if a < c && rest[a + 2..c].contains('#') => {
                    format!("{} {}", &rest[..a + 1], &rest[c + 2..])
                }
                _ => rest.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// The status code of `GET <path>` on 127.0.0.1:<port> (HTTP/1.0, one request).
pub fn http_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    use std::io::Read;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    // One segment, sent at once: `write!` would send each piece of the format on its own,
    // and Nagle's algorithm would hold the second until the server's delayed ACK (40 ms).
    s.set_nodelay(true).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).ok()?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let line = std::str::from_utf8(&buf[..got]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The files already hold this render and it is served.
    Unchanged,
    /// New files are in place and served; how long each step took (milliseconds). A
    /// `runtime` step: HAProxy took the change through its runtime API, without a reload.
    Applied {
        changed: Vec<PathBuf>,
        steps: Vec<(&'static str, u64)>,
        /// Why HAProxy's runtime API was tried and did not take the change (it reloaded).
        runtime_refused: Option<String>,
    },
    /// Nothing changed on disk (the previous files are back); `step` failed with `message`.
    Failed { step: String, message: String },
}

/// The file a staged render is written to: hidden, beside the live one (same file system,
/// so the swap is a rename), and not matched by `*.conf` includes.
pub fn staged_path(live: &Path) -> PathBuf {
    let name = live
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    live.with_file_name(format!(".{name}.consulctl-staged"))
}

/// Write `content` to `path` atomically: a temporary file beside it, fsync, rename.
fn write_atomic(path: &Path, content: &[u8], mode: Option<u32>) -> Result<(), String> {
    let tmp = path.with_file_name(format!(
        ".{}.consulctl-tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        if let Some(m) = mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(m))?;
        }
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: cannot write: {e}", path.display())
    })
}

fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// A swapped file and what was there before (None: nothing).
struct Swapped {
    path: PathBuf,
    before: Option<Vec<u8>>,
    mode: Option<u32>,
}

/// The validate command of an output, `{staged}` replaced.
fn with_staged(argv: &[String], staged: &Path) -> Vec<String> {
    argv.iter()
        .map(|a| a.replace("{staged}", &staged.to_string_lossy()))
        .collect()
}

/// What the running HAProxy holds beyond what its status URI says.
#[derive(Debug, Default)]
struct RuntimeState {
    /// The live file of this generation went in through the runtime API, on top of a process
    /// that answers this status path (its last reload's).
    applied: Option<(String, String)>,
    /// Servers gone from the file, in maintenance, whose deletion waits for their connections.
    waiting: Vec<(String, String)>,
}

/// Puts renders in place for one configuration.
pub struct Syncer {
    config: Config,
    system: Box<dyn System>,
    /// How long a reload has to show its generation.
    pub confirm_timeout: Duration,
    runtime: Mutex<RuntimeState>,
}

impl Syncer {
    pub fn new(config: Config, system: Box<dyn System>) -> Self {
        Syncer {
            config,
            system,
            confirm_timeout: Duration::from_secs(10),
            runtime: Mutex::new(RuntimeState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RuntimeState> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status path that shows the running process serves the file of `generation`: the
    /// file's own, or the one that answered when that file went in through the runtime API.
    fn serving_path(&self, generation: &str) -> Option<String> {
        let own = generation_path(generation);
        if self.system.served(self.config.status_port, &own) {
            return Some(own);
        }
        let applied = self.state().applied.clone();
        match applied {
            Some((g, path)) if g == generation => self
                .system
                .served(self.config.status_port, &path)
                .then_some(path),
            _ => None,
        }
    }

    fn admin(&self, command: &str) -> Result<String, String> {
        let socket = Path::new(&self.config.haproxy.stats_socket);
        self.system
            .admin(socket, command)
            .map(|a| a.trim().to_string())
            .map_err(|e| format!("`{command}`: {e}"))
    }

    /// How many servers gone from the file wait in maintenance for their connections to end.
    pub fn waiting_deletions(&self) -> usize {
        self.state().waiting.len()
    }

    /// Delete the servers in maintenance that wait for it; those still in use keep waiting.
    pub fn delete_waiting(&self) {
        let waiting = std::mem::take(&mut self.state().waiting);
        let mut still = Vec::new();
        for (b, s) in waiting {
            match self.admin(&format!("del server {b}/{s}")) {
                Ok(a) if a == "Server deleted." || a.contains("No such server") => {}
                _ => still.push((b, s)),
            }
        }
        self.state().waiting.extend(still);
    }

    /// The change of servers that HAProxy can take at run time: when the one changed file
    /// is HAProxy's whole file, only servers of existing backends differ, and the running
    /// process serves the live file.
    /// Also returns the status path the process answers.
    fn runtime_change(&self, changed: &[&Output]) -> Option<(Change, Layout, String)> {
        if self.config.kind != Kind::Haproxy {
            return None;
        }
        let [o] = changed else { return None };
        if o.path != self.config.haproxy.config {
            return None;
        }
        let live = Layout::of(&std::fs::read_to_string(&o.path).ok()?);
        let new = Layout::of(&o.content);
        let change = runtime::change(&live, &new).ok()?;
        let served = self.serving_path(live.generation.as_deref()?)?;
        Some((change, new, served))
    }

    /// Add the new servers, put the gone ones in maintenance and delete them, then read back
    /// that the running servers are the new file's.
    fn apply_runtime(&self, change: &Change, new: &Layout) -> Result<(), String> {
        self.delete_waiting();
        for (command, ok) in change.add_commands() {
            let answer = self.admin(&command)?;
            if answer != ok {
                return Err(format!("`{command}`: {answer}"));
            }
        }
        for (b, s) in &change.remove {
            let command = format!("disable server {b}/{s}");
            let answer = self.admin(&command)?;
            if !answer.is_empty() {
                return Err(format!("`{command}`: {answer}"));
            }
            self.state().waiting.push((b.clone(), s.clone()));
        }
        self.delete_waiting();
        let stat = runtime::parse_stat(&self.admin("show stat")?)?;
        let waiting = runtime::matches(new, &stat)?;
        self.state().waiting = waiting;
        Ok(())
    }

    fn kind_test(&self) -> Option<&[String]> {
        match self.config.kind {
            Kind::Nginx => Some(&self.config.nginx.test),
            Kind::Haproxy => Some(&self.config.haproxy.test),
            Kind::None => None,
        }
    }

    fn kind_reload(&self) -> Option<&[String]> {
        match self.config.kind {
            Kind::Nginx => Some(&self.config.nginx.reload),
            Kind::Haproxy => Some(&self.config.haproxy.reload),
            Kind::None => None,
        }
    }

    /// The staged validation of an output: its own, or for HAProxy's whole file the kind's
    /// test with the staged file in place of the live one.
    fn validation(&self, o: &Output) -> Vec<String> {
        if self.config.kind == Kind::Haproxy && o.path == self.config.haproxy.config {
            let live = self.config.haproxy.config.to_string_lossy().to_string();
            return self
                .config
                .haproxy
                .test
                .iter()
                .map(|a| {
                    if *a == live {
                        "{staged}".to_string()
                    } else {
                        a.clone()
                    }
                })
                .collect();
        }
        o.validate.clone()
    }

    /// Keep a copy of a render that failed where the operator can read it.
    fn keep_failed(&self, o: &Output) {
        let dir = self.config.state_dir.join("failed");
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join(&o.name), &o.content);
        }
    }

    fn rollback(&self, swapped: &[Swapped]) -> Vec<String> {
        let mut errors = Vec::new();
        for s in swapped.iter().rev() {
            let r = match &s.before {
                Some(b) => write_atomic(&s.path, b, s.mode),
                None => std::fs::remove_file(&s.path)
                    .map_err(|e| format!("{}: cannot remove: {e}", s.path.display())),
            };
            if let Err(e) = r {
                errors.push(e);
            }
        }
        errors
    }

    fn fail(&self, swapped: &[Swapped], step: &str, message: String) -> Outcome {
        let errors = self.rollback(swapped);
        let message = if errors.is_empty() {
            message
        } else {
            format!(
                "{message}; putting the previous files back failed too: {}",
                errors.join("; ")
            )
        };
        Outcome::Failed {
            step: step.into(),
            message,
        }
    }

    /// One attempt.
    pub fn sync(&self, rendered: &Rendered) -> Outcome {
        let changed: Vec<&Output> = rendered
            .outputs
            .iter()
            .filter(|o| std::fs::read(&o.path).ok().as_deref() != Some(o.content.as_bytes()))
            .collect();
        let gen_path = generation_path(&rendered.generation);
        let confirm = self.config.kind != Kind::None;
        if changed.is_empty() && (!confirm || self.serving_path(&rendered.generation).is_some()) {
            if self.config.kind == Kind::Haproxy && !self.state().waiting.is_empty() {
                self.delete_waiting();
            }
            return Outcome::Unchanged;
        }
        let mut steps = Steps::new();
        // HAProxy takes a change of servers through its runtime API at once (it checks each
        // server line as it adds it); the file follows, validated like any other. Any refusal:
        // the reload below makes the process read the file.
        let mut runtime_refused = None;
        let runtime = self.runtime_change(&changed);
        let mut runtime_applied = false;
        if let Some((change, new, _)) = &runtime {
            match self.apply_runtime(change, new) {
                Ok(()) => {
                    runtime_applied = true;
                    steps.done("runtime");
                }
                Err(e) => runtime_refused = Some(e),
            }
        }
        // A file refused after the runtime API took its servers: reloading the live file
        // (unchanged) puts the running servers back to it.
        let undo_runtime = |message: String| -> String {
            if !runtime_applied {
                return message;
            }
            match self.kind_reload().map(|r| self.system.run(r)) {
                Some(Ok(())) => {
                    *self.state() = RuntimeState::default();
                    format!("{message}; reloaded the live file to put its servers back")
                }
                Some(Err(e)) => format!(
                    "{message}; the running servers are the new ones and reloading the live \
                     file failed: {e}"
                ),
                None => message,
            }
        };
        // Stage and validate every changed file before any live file is touched.
        let mut staged = Vec::new();
        for o in &changed {
            let s = staged_path(&o.path);
            if let Some(dir) = o.path.parent() {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    let e = undo_runtime(format!("{}: {e}", dir.display()));
                    return self.fail(&[], "stage", e);
                }
            }
            if let Err(e) = write_atomic(&s, o.content.as_bytes(), Some(0o644)) {
                cleanup(&staged);
                return self.fail(&[], "stage", undo_runtime(e));
            }
            staged.push(s.clone());
            let validate = self.validation(o);
            if !validate.is_empty() {
                if let Err(e) = self.system.run(&with_staged(&validate, &s)) {
                    cleanup(&staged);
                    self.keep_failed(o);
                    return self.fail(&[], &format!("validate {}", o.name), undo_runtime(e));
                }
            }
        }
        steps.done("validate");
        // Swap.
        let mut swapped = Vec::new();
        for (o, s) in changed.iter().zip(&staged) {
            let before = std::fs::read(&o.path).ok();
            let mode = mode_of(&o.path);
            if let Some(m) = mode {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(s, std::fs::Permissions::from_mode(m));
            }
            if let Err(e) = std::fs::rename(s, &o.path) {
                cleanup(&staged);
                return self.fail(
                    &swapped,
                    "swap",
                    format!("{} -> {}: {e}", s.display(), o.path.display()),
                );
            }
            swapped.push(Swapped {
                path: o.path.clone(),
                before,
                mode,
            });
        }
        steps.done("swap");
        if let (Some((_, _, served)), true) = (&runtime, runtime_applied) {
            self.state().applied = Some((rendered.generation.clone(), served.clone()));
            return Outcome::Applied {
                changed: changed.iter().map(|o| o.path.clone()).collect(),
                steps: steps.0,
                runtime_refused: None,
            };
        }
        // The whole configuration, as the running process would read it (unless the one
        // changed file is HAProxy's whole file, whose staged validation was that very test on
        // the same bytes).
        let only_whole_file = matches!(changed.as_slice(), [o] if self.validation(o) != o.validate);
        if !changed.is_empty() && !only_whole_file {
            if let Some(test) = self.kind_test() {
                if let Err(e) = self.system.run(test) {
                    for o in &changed {
                        self.keep_failed(o);
                    }
                    return self.fail(&swapped, "test", e);
                }
            }
        }
        steps.done("test");
        // Reload: the built-in kind once, then each template's own command (once each).
        let mut reloads: Vec<Vec<String>> = Vec::new();
        if let Some(r) = self.kind_reload() {
            reloads.push(r.to_vec());
        }
        for o in &changed {
            if !o.reload.is_empty() && !reloads.contains(&o.reload) {
                reloads.push(o.reload.clone());
            }
        }
        for r in &reloads {
            if let Err(e) = self.system.run(r) {
                return self.fail(&swapped, "reload", e);
            }
        }
        steps.done("reload");
        if confirm {
            let start = Instant::now();
            while !self.system.served(self.config.status_port, &gen_path) {
                if start.elapsed() >= self.confirm_timeout {
                    let reload = self.kind_reload().map(|r| r.join(" ")).unwrap_or_default();
                    return self.fail(
                        &swapped,
                        "confirm",
                        format!(
                            "{} did not serve generation {} within {}s of `{reload}` (it keeps its \
                             previous configuration; its error log says why, e.g. a port in use)",
                            self.config.kind.as_str(),
                            rendered.generation,
                            self.confirm_timeout.as_secs()
                        ),
                    );
                }
                std::thread::sleep(CONFIRM_POLL);
            }
            steps.done("confirm");
        }
        if self.config.kind == Kind::Haproxy {
            // A new process: it reads the file, no server waits for deletion in it.
            *self.state() = RuntimeState::default();
        }
        Outcome::Applied {
            changed: changed.iter().map(|o| o.path.clone()).collect(),
            steps: steps.0,
            runtime_refused,
        }
    }
}

/// How often the status server is asked for the new generation after a reload.
const CONFIRM_POLL: Duration = Duration::from_millis(10);

/// Step durations of one attempt.
struct Steps(Vec<(&'static str, u64)>, Instant);

impl Steps {
    fn new() -> Self {
        Steps(Vec::new(), Instant::now())
    }

    fn done(&mut self, step: &'static str) {
        let ms = self.1.elapsed().as_millis() as u64;
        self.0.push((step, ms));
        self.1 = Instant::now();
    }
}

fn cleanup(staged: &[PathBuf]) {
    for s in staged {
        let _ = std::fs::remove_file(s);
    }
}
