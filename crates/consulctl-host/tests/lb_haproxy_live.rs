//! The sync on a real HAProxy (the machine's, master-worker mode, loopback backends): under a
//! request loop, 10 changes of servers taken through the runtime API (same worker, no reload)
//! and 10 that need a reload (a backend comes or goes) lose no request, and a refused render
//! leaves the last good config serving. Skipped (said) where haproxy is not installed;
//! required in CI.

mod lb_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consulctl_host::lb::render::render;
use consulctl_host::lb::sync::{Outcome, RealSystem, Syncer};
use consulctl_host::lb::view::build;
use lb_support::{backend, config, free_port, Catalog};

fn get(port: u16) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: web\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))?;
    Ok((
        status,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

/// One command to HAProxy's admin socket.
fn admin(socket: &str, command: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    writeln!(s, "{command}").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The PID of the worker that answers the admin socket.
fn worker(socket: &str) -> String {
    admin(socket, "show info")
        .lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .unwrap_or("")
        .to_string()
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn haproxy_takes_ten_server_changes_at_run_time_and_reloads_ten_times_without_a_failed_request() {
    let bin = std::path::Path::new("/usr/sbin/haproxy");
    if !bin.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("haproxy is required in CI (.ci/run installs it)");
        }
        eprintln!("haproxy is not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    let (web, api, status) = (free_port(), free_port(), free_port());
    let backends = [backend("one"), backend("two"), backend("three")];
    let cfg_path = format!("{d}/haproxy.cfg");
    // A first config for HAProxy to start with; the master's PID is known after the start.
    let base = |reload: &str| {
        format!(
            "kind = \"haproxy\"\nstatus_port = {status}\nstate_dir = \"{d}/state\"\n[ports]\nweb = {web}\n\
             api = {api}\n\
             [haproxy]\nconfig = \"{cfg_path}\"\nstats_socket = \"{d}/admin.sock\"\n\
             test = [\"{bin}\", \"-c\", \"-f\", \"{cfg_path}\"]\nreload = {reload}\n",
            bin = bin.display()
        )
    };
    let socket = format!("{d}/admin.sock");
    // web on the given backends; with `with_api`, a second service (its own backend and
    // frontend: a reload).
    let catalog = |ports: &[u16], with_api: bool| {
        let mut c = Catalog::new().node("app1", "127.0.0.1");
        for p in ports {
            c = c.instance("app1", "web", *p, &["http", "upyun"], "passing");
        }
        if with_api {
            c = c.instance("app1", "api", backends[0], &["http", "upyun"], "passing");
        }
        c.dump()
    };
    let first = config(&base("[\"true\"]"));
    let r = render(&build(&catalog(&backends[..2], false), &first), &first).unwrap();
    // As root HAProxy drops to user haproxy; elsewhere it runs as the user.
    let text = r.outputs[0].content.clone();
    std::fs::write(&cfg_path, &text).unwrap();
    let child = Command::new(bin)
        .args(["-W", "-f", &cfg_path])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _guard = Haproxy(child);
    let reload = format!("[\"kill\", \"-USR2\", \"{pid}\"]");
    let cfg = config(&base(&reload));
    let start = std::time::Instant::now();
    while get(web).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "haproxy did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The request loop.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let loop_ = {
        let (stop, ok, failed, errors) = (stop.clone(), ok.clone(), failed.clone(), errors.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match get(web) {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok((code, body)) => {
                        errors.lock().unwrap().push(format!("{code} {body}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        errors.lock().unwrap().push(e);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    // 20 changes under one syncer: even ones change web's servers (taken at run time by the
    // same worker), odd ones add or remove the api service (a reload: a new worker), each
    // confirmed.
    let syncer = Syncer::new(cfg.clone(), Box::new(RealSystem));
    let sets: [&[u16]; 3] = [&backends[1..], &[backends[0], backends[2]], &backends[..2]];
    let mut with_api = false;
    let mut ports = backends[..2].to_vec();
    let (mut runtime, mut reloads) = (0, 0);
    for i in 0..20 {
        let before = worker(&socket);
        if i % 2 == 0 {
            ports = sets[(i / 2) % 3].to_vec();
        } else {
            with_api = !with_api;
        }
        let r = render(&build(&catalog(&ports, with_api), &cfg), &cfg).unwrap();
        let o = syncer.sync(&r);
        let Outcome::Applied {
            steps,
            runtime_refused,
            ..
        } = &o
        else {
            panic!("change {i}: {o:?}")
        };
        assert_eq!(*runtime_refused, None, "change {i}");
        let after = worker(&socket);
        if i % 2 == 0 {
            assert!(
                steps.iter().any(|(s, _)| *s == "runtime"),
                "change {i}: {o:?}"
            );
            assert_eq!(before, after, "change {i}: the same worker took it");
            runtime += 1;
        } else {
            assert!(
                steps.iter().any(|(s, _)| *s == "reload"),
                "change {i}: {o:?}"
            );
            assert_ne!(before, after, "change {i}: a new worker");
            reloads += 1;
        }
        // What runs is the file: the servers of web, none waiting in maintenance for long.
        let stat = admin(&socket, "show stat");
        let mut web_servers: Vec<&str> = stat
            .lines()
            .filter(|l| l.starts_with("web_http,") && !l.contains(",BACKEND,"))
            .filter(|l| !l.contains(",MAINT,"))
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        web_servers.sort_unstable();
        assert_eq!(web_servers.len(), ports.len(), "change {i}: {stat}");
        assert_eq!(
            std::fs::read_to_string(&cfg_path).unwrap(),
            r.outputs[0].content,
            "change {i}: the file follows"
        );
        assert_eq!(syncer.sync(&r), Outcome::Unchanged, "change {i}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{runtime} changes at run time, {reloads} reloads");
    // A refused render: haproxy -c says why, the last good config keeps serving.
    let mut bad = render(&build(&catalog(&backends, false), &cfg), &cfg).unwrap();
    bad.outputs[0]
        .content
        .push_str("backend broken\n    bogus_keyword 1\n");
    let o = Syncer::new(cfg.clone(), Box::new(RealSystem)).sync(&bad);
    match &o {
        Outcome::Failed { step, message } => {
            assert_eq!(step, "validate haproxy");
            assert!(message.contains("bogus_keyword"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    loop_.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("request loop: {ok} answered, {failed} failed over 20 changes");
    assert!(ok > 100, "the loop ran: {ok}");
    assert_eq!(failed, 0, "{:?}", errors.lock().unwrap());
}
