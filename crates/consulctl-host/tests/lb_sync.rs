//! The sync's failure paths with a scripted system: whatever step fails, the live files are
//! the previous ones afterwards, and the step is named.

mod lb_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use consulctl_host::lb::render::render;
use consulctl_host::lb::sync::{Outcome, Syncer, System};
use consulctl_host::lb::view::build;
use lb_support::{config, seed_catalog};

#[derive(Clone, Default)]
struct Fake {
    ran: Arc<Mutex<Vec<String>>>,
    fail: Option<&'static str>,
    served: bool,
}

impl System for Fake {
    fn run(&self, argv: &[String]) -> Result<(), String> {
        let line = argv.join(" ");
        self.ran.lock().unwrap().push(line.clone());
        match self.fail {
            Some(word) if line.contains(word) => Err(format!("{word} refused")),
            _ => Ok(()),
        }
    }
    fn served(&self, _port: u16, _path: &str) -> bool {
        self.served
    }
}

fn setup(dir: &std::path::Path, kind: &str) -> consulctl_host::lb::config::Config {
    config(&format!(
        "kind = \"{kind}\"\nstate_dir = \"{d}/state\"\n[nginx]\nhttp_conf = \"{d}/http.conf\"\n\
         stream_conf = \"{d}/stream.conf\"\ntest = [\"nginx\", \"-t\"]\nreload = [\"nginx\", \"-s\", \"reload\"]\n\
         [haproxy]\nconfig = \"{d}/haproxy.cfg\"\ntest = [\"haproxy\", \"-c\", \"-f\", \"{d}/haproxy.cfg\"]\n\
         reload = [\"hareload\"]\n",
        d = dir.display()
    ))
}

#[test]
fn each_failing_step_puts_the_previous_files_back() {
    for (fail, step, served) in [
        ("-t", "test", true),
        ("reload", "reload", true),
        ("never", "confirm", false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = setup(tmp.path(), "nginx");
        std::fs::write(tmp.path().join("http.conf"), "old http\n").unwrap();
        let r = render(&build(&seed_catalog().dump(), &cfg), &cfg).unwrap();
        let fake = Fake {
            fail: Some(fail),
            served,
            ..Fake::default()
        };
        let mut s = Syncer::new(cfg, Box::new(fake.clone()));
        s.confirm_timeout = Duration::from_millis(200);
        match s.sync(&r) {
            Outcome::Failed { step: got, message } => {
                assert_eq!(got, step, "{message}");
            }
            other => panic!("{fail}: {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("http.conf")).unwrap(),
            "old http\n",
            "{fail}"
        );
        assert!(
            !tmp.path().join("stream.conf").exists(),
            "{fail}: a new file is taken away"
        );
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.contains("consulctl-"))
            .collect();
        assert!(leftovers.is_empty(), "{fail}: {leftovers:?}");
    }
}

#[test]
fn haproxy_validates_the_staged_file_before_the_live_one_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), "haproxy");
    std::fs::write(tmp.path().join("haproxy.cfg"), "old\n").unwrap();
    let r = render(&build(&seed_catalog().dump(), &cfg), &cfg).unwrap();
    let fake = Fake {
        fail: Some("staged"),
        served: true,
        ..Fake::default()
    };
    let o = Syncer::new(cfg.clone(), Box::new(fake.clone())).sync(&r);
    assert!(
        matches!(&o, Outcome::Failed { step, .. } if step == "validate haproxy"),
        "{o:?}"
    );
    let ran = fake.ran.lock().unwrap().clone();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(
        ran[0].starts_with("haproxy -c -f ") && ran[0].ends_with("/.haproxy.cfg.consulctl-staged")
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("haproxy.cfg")).unwrap(),
        "old\n"
    );

    // Passing: validated staged, swapped, reloaded (the whole file was checked staged with
    // the same test: not run twice); a second sync does nothing.
    let fake = Fake {
        served: true,
        ..Fake::default()
    };
    let s = Syncer::new(cfg, Box::new(fake.clone()));
    let o = s.sync(&r);
    let Outcome::Applied { steps, .. } = &o else {
        panic!("{o:?}")
    };
    let names: Vec<&str> = steps.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["validate", "swap", "test", "reload", "confirm"]);
    let ran = fake.ran.lock().unwrap().clone();
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert!(
        ran[0].ends_with("/.haproxy.cfg.consulctl-staged"),
        "{ran:?}"
    );
    assert_eq!(ran[1], "hareload");
    assert_eq!(s.sync(&r), Outcome::Unchanged);
    assert_eq!(fake.ran.lock().unwrap().len(), 2);
}

#[test]
fn files_in_place_whose_generation_is_not_served_are_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), "nginx");
    let r = render(&build(&seed_catalog().dump(), &cfg), &cfg).unwrap();
    for o in &r.outputs {
        std::fs::write(&o.path, &o.content).unwrap();
    }
    let fake = Fake::default(); // never served
    let mut s = Syncer::new(cfg, Box::new(fake.clone()));
    s.confirm_timeout = Duration::from_millis(100);
    let o = s.sync(&r);
    assert!(
        matches!(&o, Outcome::Failed { step, .. } if step == "confirm"),
        "{o:?}"
    );
    assert_eq!(*fake.ran.lock().unwrap(), ["nginx -s reload"]);
    // The files were already right: they stay.
    assert_eq!(
        std::fs::read_to_string(&r.outputs[0].path).unwrap(),
        r.outputs[0].content
    );
}

#[test]
fn a_repeated_failure_reads_the_same() {
    use consulctl_host::lb::sync::tidy;
    let a = "2026/12/03 09:42:43 [emerg] 622#622: unknown directive \"bogus\" in /etc/nginx/conf.d/x.conf:1\n\
             nginx: configuration file /etc/nginx/nginx.conf test failed\n";
    let b = a
        .replace("622#622", "614#614")
        .replace("09:42:43", "09:42:50");
    assert_eq!(tidy(a), tidy(&b));
    assert_eq!(
        tidy(a),
        "[emerg] unknown directive \"bogus\" in /etc/nginx/conf.d/x.conf:1\n\
         nginx: configuration file /etc/nginx/nginx.conf test failed"
    );
    assert_eq!(
        tidy("[ALERT] (1) : parsing [x:2]\n"),
        "[ALERT] (1) : parsing [x:2]"
    );
}

/// HAProxy's admin socket, scripted: servers per backend (name, in maintenance), built from a
/// file; `busy` servers refuse deletion; `refuse_add` answers an add with an error.
#[derive(Clone, Default)]
struct Admin {
    ran: Arc<Mutex<Vec<String>>>,
    servers: Arc<Mutex<Vec<(String, String, bool)>>>,
    served: Arc<Mutex<Vec<String>>>,
    busy: Arc<Mutex<Vec<String>>>,
    refuse_add: bool,
    /// A command containing this fails.
    fail_run: Option<&'static str>,
    /// The live haproxy.cfg (what a reload reads).
    live: std::path::PathBuf,
}

impl Admin {
    /// HAProxy running the live file at `path`, answering `served` on its status URI.
    fn of(path: &std::path::Path, served: &str) -> Admin {
        let a = Admin {
            live: path.to_path_buf(),
            ..Admin::default()
        };
        a.load();
        a.served.lock().unwrap().push(served.to_string());
        a
    }

    /// What a start or reload does: the servers are the live file's.
    fn load(&self) {
        let file = std::fs::read_to_string(&self.live).unwrap_or_default();
        let layout = consulctl_host::lb::runtime::Layout::of(&file);
        let mut servers = self.servers.lock().unwrap();
        servers.clear();
        for (b, list) in &layout.servers {
            for (name, _) in list {
                servers.push((b.clone(), name.clone(), false));
            }
        }
    }

    fn commands(&self, prefix: &str) -> Vec<String> {
        let ran = self.ran.lock().unwrap();
        ran.iter()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl System for Admin {
    fn run(&self, argv: &[String]) -> Result<(), String> {
        let line = argv.join(" ");
        self.ran.lock().unwrap().push(line.clone());
        if line == "hareload" {
            self.load();
        }
        match self.fail_run {
            Some(word) if line.contains(word) => Err(format!("{word} refused")),
            _ => Ok(()),
        }
    }
    fn served(&self, _port: u16, path: &str) -> bool {
        self.served
            .lock()
            .unwrap()
            .iter()
            .any(|p| path.ends_with(p.as_str()))
    }
    fn admin(&self, _socket: &std::path::Path, command: &str) -> Result<String, String> {
        self.ran.lock().unwrap().push(command.to_string());
        let mut servers = self.servers.lock().unwrap();
        let words: Vec<&str> = command.split_whitespace().collect();
        let target = |w: &str| {
            let (b, s) = w.split_once('/').unwrap();
            (b.to_string(), s.to_string())
        };
        Ok(match words.as_slice() {
            ["add", "server", t, ..] if self.refuse_add => {
                format!("Already exists a server {t}.\n")
            }
            ["add", "server", t, ..] => {
                let (b, s) = target(t);
                servers.push((b, s, true));
                "New server registered.\n".into()
            }
            ["enable", "health", _] => "\n".into(),
            ["enable" | "disable", "server", t] => {
                let (b, s) = target(t);
                for x in servers.iter_mut().filter(|x| x.0 == b && x.1 == s) {
                    x.2 = words[0] == "disable";
                }
                "\n".into()
            }
            ["del", "server", t] => {
                let (b, s) = target(t);
                if self.busy.lock().unwrap().contains(&s) {
                    "Server still has connections attached to it, cannot remove it.\n".into()
                } else {
                    servers.retain(|x| !(x.0 == b && x.1 == s));
                    "Server deleted.\n".into()
                }
            }
            ["show", "stat"] => {
                let mut out = String::from("# pxname,svname,qcur,qmax,scur,status\n");
                for (b, s, maint) in servers.iter() {
                    out.push_str(&format!(
                        "{b},{s},0,0,0,{}\n",
                        if *maint { "MAINT" } else { "UP" }
                    ));
                }
                out
            }
            _ => format!("Unknown command: {command}\n"),
        })
    }
}

/// HAProxy serving web (one instance) from its live file, and a second render: web plus
/// what `more` adds. Returns the configuration, both renders and the running HAProxy.
fn haproxy_live(
    dir: &std::path::Path,
    more: impl FnOnce(lb_support::Catalog) -> lb_support::Catalog,
) -> (
    consulctl_host::lb::config::Config,
    consulctl_host::lb::render::Rendered,
    consulctl_host::lb::render::Rendered,
    Admin,
) {
    let cfg = setup(dir, "haproxy");
    let web = lb_support::Catalog::new()
        .node("app1", "10.0.0.11")
        .instance("app1", "web", 8080, &["http", "upyun"], "passing");
    let a = render(&build(&web.dump(), &cfg), &cfg).unwrap();
    let b = render(&build(&more(web).dump(), &cfg), &cfg).unwrap();
    std::fs::write(&a.outputs[0].path, &a.outputs[0].content).unwrap();
    let admin = Admin::of(&a.outputs[0].path, &a.generation);
    (cfg, a, b, admin)
}

/// The step names of an applied outcome and why the runtime API did not take it.
fn applied(o: &Outcome) -> (Vec<&'static str>, Option<String>) {
    match o {
        Outcome::Applied {
            steps,
            runtime_refused,
            ..
        } => (
            steps.iter().map(|(n, _)| *n).collect(),
            runtime_refused.clone(),
        ),
        other => panic!("{other:?}"),
    }
}

fn second_web(c: lb_support::Catalog) -> lb_support::Catalog {
    c.instance("app1", "web", 8081, &["http", "upyun"], "passing")
}

#[test]
fn haproxy_takes_a_change_of_servers_at_run_time_and_the_file_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, a, b, admin) = haproxy_live(tmp.path(), second_web);
    let s = Syncer::new(cfg.clone(), Box::new(admin.clone()));

    // A second instance: added, its check and the server enabled, no reload; the file follows.
    let o = s.sync(&b);
    let (names, runtime_refused) = applied(&o);
    assert_eq!(names, ["runtime", "validate", "swap"], "{o:?}");
    assert_eq!(runtime_refused, None);
    assert_eq!(
        admin.commands("add server"),
        ["add server web_http/web-app1-80811 10.0.0.11:8081 check inter 2s fall 3 rise 2 maxconn 100 weight 1"]
    );
    assert_eq!(admin.commands("enable").len(), 2);
    assert!(admin.commands("hareload").is_empty(), "no reload");
    assert_eq!(
        std::fs::read_to_string(&b.outputs[0].path).unwrap(),
        b.outputs[0].content
    );
    // The process still answers the first generation's status path: that is what serves b.
    assert_eq!(s.sync(&b), Outcome::Unchanged);

    // Back to one instance while the gone one still has a connection: in maintenance, its
    // deletion waits; once free, the next pass deletes it.
    admin.busy.lock().unwrap().push("web-app1-80811".into());
    let o = s.sync(&a);
    assert!(
        matches!(&o, Outcome::Applied { steps, .. } if steps.iter().any(|(n, _)| *n == "runtime")),
        "{o:?}"
    );
    assert_eq!(s.waiting_deletions(), 1);
    assert_eq!(
        admin.commands("disable server"),
        ["disable server web_http/web-app1-80811"]
    );
    admin.busy.lock().unwrap().clear();
    assert_eq!(s.sync(&a), Outcome::Unchanged);
    assert_eq!(s.waiting_deletions(), 0);
    assert_eq!(admin.servers.lock().unwrap().len(), 1);
    assert!(admin.commands("hareload").is_empty(), "no reload");

    // HAProxy refuses: the reload makes it read the file, and the log will say why.
    let admin = Admin {
        refuse_add: true,
        ..Admin::of(&a.outputs[0].path, &a.generation)
    };
    admin.served.lock().unwrap().push(b.generation.clone());
    let s = Syncer::new(cfg, Box::new(admin.clone()));
    let o = s.sync(&b);
    let (names, runtime_refused) = applied(&o);
    assert_eq!(names, ["validate", "swap", "test", "reload", "confirm"]);
    assert!(
        runtime_refused
            .as_deref()
            .is_some_and(|r| r.contains("Already exists")),
        "{runtime_refused:?}"
    );
    assert_eq!(admin.commands("hareload").len(), 1);
}

#[test]
fn a_file_refused_after_the_runtime_api_took_its_servers_is_undone_by_a_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, a, b, running) = haproxy_live(tmp.path(), second_web);
    let admin = Admin {
        fail_run: Some("staged"),
        ..running
    };
    let o = Syncer::new(cfg, Box::new(admin.clone())).sync(&b);
    match &o {
        Outcome::Failed { step, message } => {
            assert_eq!(step, "validate haproxy");
            assert!(message.contains("reloaded the live file"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        admin.commands("add server").len(),
        1,
        "taken at run time first"
    );
    assert_eq!(admin.commands("hareload").len(), 1, "then undone");
    assert_eq!(
        std::fs::read_to_string(&a.outputs[0].path).unwrap(),
        a.outputs[0].content
    );
    let running: Vec<String> = admin
        .servers
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.1.clone())
        .collect();
    let live = consulctl_host::lb::runtime::Layout::of(&a.outputs[0].content).names();
    assert_eq!(
        running, live["web_http"],
        "the live file's servers run again"
    );
}

#[test]
fn haproxy_reloads_when_more_than_servers_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, _, b, admin) = haproxy_live(tmp.path(), |web| {
        web.instance("app1", "api", 9000, &["http", "upyun"], "passing")
    });
    admin.served.lock().unwrap().push(b.generation.clone());
    let o = Syncer::new(cfg, Box::new(admin.clone())).sync(&b);
    let (names, runtime_refused) = applied(&o);
    assert!(names.contains(&"reload"), "{o:?}");
    assert_eq!(runtime_refused, None, "not tried: a new backend");
    assert!(admin.commands("add server").is_empty());
}
