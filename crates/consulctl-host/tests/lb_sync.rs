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
