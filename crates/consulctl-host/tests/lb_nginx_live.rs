//! The sync on a real nginx (the machine's, on loopback ports, in a prefix of its own):
//! routed backends answer through it, changes reach it, a configuration that nginx refuses
//! leaves the last good one serving, a service with no passing instance gets a 503. Skipped
//! (said) where nginx is not installed; required in CI.

mod lb_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use consulctl_host::lb::render::render;
use consulctl_host::lb::sync::{Outcome, RealSystem, Syncer};
use consulctl_host::lb::view::build;
use lb_support::{backend, config, free_port, Catalog};

fn nginx() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/sbin/nginx");
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("nginx is required in CI (.ci/run installs it)");
    }
    eprintln!("nginx is not installed: skipped");
    None
}

/// GET through the load balancer: (status, body).
fn get(port: u16, host: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

struct Nginx {
    dir: PathBuf,
    argv: Vec<String>,
}

impl Nginx {
    fn start(dir: &Path, bin: &Path) -> Nginx {
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
        let load = if Path::new(module).exists() {
            format!("load_module {module};\n")
        } else {
            String::new()
        };
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "{load}error_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\n\
                 http {{ access_log off; include {d}/conf.d/*.conf; }}\ninclude {d}/stream.conf;\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("stream.conf"), "").unwrap();
        let argv: Vec<String> = vec![
            bin.display().to_string(),
            "-p".into(),
            d.to_string(),
            "-c".into(),
            format!("{d}/nginx.conf"),
            "-e".into(),
            format!("{d}/error.log"),
        ];
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "nginx: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Nginx {
            dir: dir.to_path_buf(),
            argv,
        }
    }

    fn cmd(&self, extra: &[&str]) -> Vec<String> {
        let mut a = self.argv.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let a = self.cmd(&["-s", "quit"]);
        let _ = Command::new(&a[0]).args(&a[1..]).output();
        let _ = &self.dir;
    }
}

fn toml_list(a: &[String]) -> String {
    let q: Vec<String> = a.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", q.join(", "))
}

#[test]
fn nginx_follows_the_catalog_and_keeps_its_last_good_config_when_a_render_is_refused() {
    let Some(bin) = nginx() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let n = Nginx::start(dir, &bin);
    let (web, status) = (free_port(), free_port());
    let (b1, b2, b3) = (backend("one"), backend("two"), backend("three"));
    let base = format!(
        "status_port = {status}\nstate_dir = \"{d}/state\"\n[ports]\nweb = {web}\napi = {web}\n\
         [nginx]\nhttp_conf = \"{d}/conf.d/consulctl-http.conf\"\nstream_conf = \"{d}/stream.conf\"\n\
         test = {test}\nreload = {reload}\n",
        d = dir.display(),
        test = toml_list(&n.cmd(&["-t", "-q"])),
        reload = toml_list(&n.cmd(&["-s", "reload"])),
    );
    let catalog = |ports: &[u16], api_passing: bool| {
        let mut c = Catalog::new().node("app1", "127.0.0.1");
        for p in ports {
            c = c.instance("app1", "web", *p, &["http", "upyun"], "passing");
        }
        let api = if api_passing { "passing" } else { "critical" };
        c.instance("app1", "api", b1, &["http", "upyun"], api)
            .dump()
    };
    let sync = |extra: &str, ports: &[u16], api: bool| {
        let cfg = config(&format!("{base}{extra}"));
        let r = render(&build(&catalog(ports, api), &cfg), &cfg).unwrap();
        let mut s = Syncer::new(cfg, Box::new(RealSystem));
        s.confirm_timeout = Duration::from_secs(5);
        (s.sync(&r), r.generation)
    };
    // The backends answering 12 requests in a row, once the old workers of a reload are
    // gone (they finish what they accepted; a few ms): every request answers 200 meanwhile.
    let seen = |want: &[&str]| {
        let want: std::collections::BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let start = std::time::Instant::now();
        loop {
            let got: std::collections::BTreeSet<String> = (0..12)
                .map(|_| get(web, "web"))
                .map(|(code, body)| {
                    assert_eq!(code, 200, "{body}");
                    body
                })
                .collect();
            if got == want || start.elapsed() > Duration::from_secs(5) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Two backends: both answer through nginx; the api service has no passing instance: 503.
    let (o, g1) = sync("", &[b1, b2], false);
    assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
    assert_eq!(
        seen(&["one", "two"]),
        ["one", "two"].map(String::from).into()
    );
    let (code, body) = get(web, "api");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("no instance of this service passes"),
        "{body}"
    );
    // Nothing changed: nothing done.
    assert_eq!(sync("", &[b1, b2], false).0, Outcome::Unchanged);

    // A backend added, one removed: the served config follows.
    let (o, _) = sync("", &[b2, b3], true);
    assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
    assert_eq!(
        seen(&["three", "two"]),
        ["three", "two"].map(String::from).into()
    );
    assert_eq!(get(web, "api"), (200, "one".to_string()));

    // A template that nginx refuses: the step and nginx's message; the files are back, the
    // previous generation serves, traffic flows.
    let before = std::fs::read_to_string(dir.join("conf.d/consulctl-http.conf")).unwrap();
    let bad = format!(
        "[[template]]\nname = \"custom\"\ndestination = \"{}/conf.d/custom.conf\"\ntext = \"bogus_directive on;\"\n",
        dir.display()
    );
    let (o, g_bad) = sync(&bad, &[b1, b2, b3], true);
    match &o {
        Outcome::Failed { step, message } => {
            assert_eq!(step, "test");
            assert!(
                message.contains("unknown directive \"bogus_directive\""),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !dir.join("conf.d/custom.conf").exists(),
        "the refused file is not left in place"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("conf.d/consulctl-http.conf")).unwrap(),
        before
    );
    assert!(
        dir.join("state/failed/custom").exists(),
        "a copy is kept for the operator"
    );
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert_eq!(
        seen(&["three", "two"]),
        ["three", "two"].map(String::from).into(),
        "{log}"
    );
    assert_ne!(g_bad, g1);

    // Fixed: it goes through (nothing else restarted).
    let good = bad.replace("bogus_directive on;", "# fixed");
    let (o, _) = sync(&good, &[b1, b2, b3], true);
    assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
    assert_eq!(
        seen(&["one", "three", "two"]),
        ["one", "three", "two"].map(String::from).into()
    );
}
