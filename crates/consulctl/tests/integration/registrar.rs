//! The Docker registrar, deployed by `apply` on a lab Docker host (the machine's Docker socket
//! mounted in, scoped to the lab's network, internal mode): what Consul's catalog holds while
//! app containers start, stop, pause, and while the daemon or the agent is away.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::{wait_until, App, Lab, LabInit};

/// The lab's inventory with a `[registrar]` on the Docker host (client1), internal mode on the
/// lab network, a short resync.
pub(crate) fn add_registrar(lab: &Lab, extra: &str) {
    // `apply` takes consulctl-host from next to consulctl (the inventory's default).
    let consulctl = std::path::PathBuf::from(env!("CARGO_BIN_EXE_consulctl"));
    let host_binary = consulctl.with_file_name("consulctl-host");
    assert!(
        host_binary.exists(),
        "{} is missing: cargo build --release -p consulctl-host",
        host_binary.display()
    );
    let mut text = std::fs::read_to_string(lab.inventory()).unwrap();
    let net = lab.network();
    text.push_str(&format!(
        "\n[registrar]\non = \"tag:docker\"\nmode = \"internal\"\nnetwork = \"{net}\"\n\
         networks = [\"{net}\"]\nresync = \"5s\"\n{extra}"
    ));
    std::fs::write(lab.inventory(), text).unwrap();
}

/// The management token, when the lab's cluster has ACLs.
pub(crate) fn management_token(lab: &Lab) -> Option<String> {
    let text = std::fs::read_to_string(lab.inventory().with_extension("secrets.toml")).ok()?;
    let t: toml::Table = toml::from_str(&text).ok()?;
    t.get("acl_management_token")?.as_str().map(str::to_string)
}

/// A GET of the local agent's API on `host`, with the management token under ACLs.
pub(crate) fn api(lab: &Lab, host: &str, path: &str) -> Value {
    match management_token(lab) {
        None => lab.api(host, path),
        Some(token) => {
            let url = format!("http://127.0.0.1:8500{path}");
            let (code, body) = lab.consul_api_token(host, &url, &token, &[]);
            assert_eq!(code, 200, "GET {path}: {body}");
            serde_json::from_str(&body).unwrap()
        }
    }
}

/// `(service id, address, port, tags, aggregated status)` of every instance of `service`,
/// through server1's agent.
fn instances(lab: &Lab, service: &str) -> Vec<(String, String, u64, Vec<String>, String)> {
    let entries = api(lab, "server1", &format!("/v1/health/service/{service}"));
    let mut out: Vec<_> = entries
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let checks = e["Checks"].as_array().cloned().unwrap_or_default();
            let status = if checks.iter().any(|c| c["Status"] == "critical") {
                "critical"
            } else if checks.iter().any(|c| c["Status"] == "warning") {
                "warning"
            } else {
                "passing"
            };
            (
                e["Service"]["ID"].as_str().unwrap_or("").to_string(),
                e["Service"]["Address"].as_str().unwrap_or("").to_string(),
                e["Service"]["Port"].as_u64().unwrap_or(0),
                e["Service"]["Tags"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|t| t.as_str().unwrap_or("").to_string())
                    .collect(),
                status.to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Service IDs of the registrar's registrations on client1's agent.
fn registered_ids(lab: &Lab) -> BTreeSet<String> {
    let services = api(lab, "client1", "/v1/agent/services");
    services
        .as_object()
        .map(|m| {
            m.values()
                .filter(|s| s["Meta"]["managed-by"] == "consulctl-registrar")
                .map(|s| s["ID"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn id(app: &App) -> String {
    format!("client1:{}:8080", app.name())
}

/// The registrar's log on client1 (supervisord's child log or the journal).
fn registrar_log(lab: &Lab) -> String {
    lab.exec(
        "client1",
        &[
            "sh",
            "-c",
            "cat /var/log/supervisor/consulctl-registrar*.log 2>/dev/null; \
             journalctl -u consulctl-registrar --no-pager 2>/dev/null; true",
        ],
    )
    .out()
    .to_string()
}

fn self_check(lab: &Lab) -> Value {
    api(lab, "client1", "/v1/agent/checks")["consulctl-registrar"].clone()
}

#[test]
fn containers_follow_docker_through_stops_pauses_a_killed_daemon_and_an_agent_restart() {
    // client1 runs supervisord (mixed: server1 systemd, client1 supervisord).
    let lab = Lab::new("regflow")
        .servers(1)
        .clients(1)
        .init(LabInit::Mixed)
        .docker_hosts(&["client1"])
        .up();
    add_registrar(&lab, "");
    let inv = lab.inventory_str();
    lab.consulctl(&["apply", "-i", inv])
        .success()
        .contains("cluster healthy");
    assert!(
        wait_until(30, || self_check(&lab)["Status"] == "passing"),
        "registrar self check: {:#}\n{}",
        self_check(&lab),
        registrar_log(&lab)
    );
    // A second apply changes nothing.
    lab.consulctl(&["apply", "-i", inv, "--output", "json"])
        .success()
        .contains("\"changed\": 0");

    // 1. Three apps with registrator's env and an HTTP check: passing, with their address,
    //    port and tags.
    let apps: Vec<App> = (1..=3)
        .map(|i| {
            lab.app(&format!("web{i}"))
                .env("SERVICE_NAME", "simple")
                .env("SERVICE_TAGS", "http,upyun")
                .env("SERVICE_CHECK_HTTP", "/health")
                .env("SERVICE_CHECK_INTERVAL", "1s")
                .run()
        })
        .collect();
    let want: Vec<_> = {
        let mut v: Vec<_> = apps
            .iter()
            .map(|a| {
                (
                    id(a),
                    a.ip().to_string(),
                    8080,
                    vec!["http".to_string(), "upyun".to_string()],
                    "passing".to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert!(
        wait_until(30, || instances(&lab, "simple") == want),
        "want {want:#?}\ngot {:#?}\n{}",
        instances(&lab, "simple"),
        registrar_log(&lab)
    );
    // `services` names the container behind each instance.
    let out = lab
        .consulctl(&["services", "-i", inv, "--output", "json"])
        .success();
    let report = out.json();
    let simple = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "simple")
        .unwrap();
    for a in &apps {
        assert!(
            simple["instances"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["container"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(a.name()))),
            "{simple:#}"
        );
    }

    // 2. docker stop: gone; docker pause: not passing (maintenance), back when unpaused.
    apps[2].stop();
    assert!(
        wait_until(20, || !registered_ids(&lab).contains(&id(&apps[2]))
            && instances(&lab, "simple").len() == 2),
        "{:#?}",
        instances(&lab, "simple")
    );
    apps[1].pause();
    assert!(
        wait_until(20, || instances(&lab, "simple")
            .iter()
            .any(|i| i.0 == id(&apps[1]) && i.4 == "critical")),
        "{:#?}",
        instances(&lab, "simple")
    );
    let checks = lab.api("client1", "/v1/agent/checks");
    assert!(
        checks
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k == &format!("_service_maintenance:{}", id(&apps[1]))),
        "a paused container's service is in maintenance: {checks:#}"
    );
    apps[1].unpause();
    assert!(
        wait_until(20, || instances(&lab, "simple")
            .iter()
            .filter(|i| i.4 == "passing")
            .count()
            == 2),
        "{:#?}",
        instances(&lab, "simple")
    );

    // 3. The daemon killed with SIGKILL and kept down; meanwhile two apps start and one is
    //    removed; once it runs again the catalog equals what runs.
    lab.exec(
        "client1",
        &[
            "sh",
            "-c",
            "pkill -KILL -f '[c]onsulctl-host registrar'; supervisorctl stop consulctl-registrar",
        ],
    );
    let new: Vec<App> = (4..=5)
        .map(|i| {
            lab.app(&format!("web{i}"))
                .env("SERVICE_NAME", "simple")
                .env("SERVICE_CHECK_HTTP", "/health")
                .env("SERVICE_CHECK_INTERVAL", "1s")
                .run()
        })
        .collect();
    apps[0].remove();
    assert!(
        registered_ids(&lab).contains(&id(&apps[0])),
        "nobody deregisters while the daemon is away"
    );
    lab.exec(
        "client1",
        &["supervisorctl", "start", "consulctl-registrar"],
    )
    .success();
    let expect: BTreeSet<String> = [id(&apps[1]), id(&new[0]), id(&new[1])].into();
    assert!(
        wait_until(30, || registered_ids(&lab) == expect),
        "want {expect:?}, got {:?}\n{}",
        registered_ids(&lab),
        registrar_log(&lab)
    );
    assert!(wait_until(30, || instances(&lab, "simple").len() == 3
        && instances(&lab, "simple").iter().all(|i| i.4 == "passing")));

    // 4. The agent restarted, and a registration removed behind the daemon's back: all back.
    lab.exec(
        "client1",
        &[
            "curl",
            "-sS",
            "-X",
            "PUT",
            &format!(
                "http://127.0.0.1:8500/v1/agent/service/deregister/{}",
                id(&new[0])
            ),
        ],
    )
    .success();
    lab.exec("client1", &["supervisorctl", "restart", "consul"])
        .success();
    assert!(
        wait_until(60, || registered_ids(&lab) == expect
            && instances(&lab, "simple")
                .iter()
                .filter(|i| i.4 == "passing")
                .count()
                == 3),
        "want {expect:?}, got {:?}: {:#?}\n{}",
        registered_ids(&lab),
        instances(&lab, "simple"),
        registrar_log(&lab)
    );
    assert!(wait_until(30, || self_check(&lab)["Status"] == "passing"));
}

#[test]
fn labels_ignore_per_port_names_and_a_broken_interval_with_acls() {
    // client1 runs systemd here; ACLs on: the registrar works with its own token.
    let lab = Lab::new("regconv")
        .servers(1)
        .clients(1)
        .init(LabInit::Systemd)
        .docker_hosts(&["client1"])
        .up();
    add_registrar(&lab, "");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .parse()
        .unwrap();
    doc["cluster"]["acl"] = toml_edit::value(true);
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();
    let inv = lab.inventory_str();
    lab.consulctl(&["apply", "-i", inv]).success();
    assert!(management_token(&lab).is_some());
    // Its token may register services and nothing more: no KV, no ACL reads.
    for (method, path) in [
        ("PUT", "/v1/kv/registrar-probe"),
        ("GET", "/v1/acl/policies"),
    ] {
        let script = format!(
            "printf 'X-Consul-Token: %s\\n' \"$(cat /etc/consulctl/registrar.token)\" | \
             curl -s -o /dev/null -w '%{{http_code}}' -H @- -X {method} --data x \
             http://127.0.0.1:8500{path}"
        );
        let code = lab.exec("client1", &["sh", "-c", &script]).success();
        assert_eq!(
            code.out(),
            "403",
            "{method} {path} with the registrar's token"
        );
    }

    // Labels win over the environment.
    let labelled = lab
        .app("labelled")
        .env("SERVICE_NAME", "from-env")
        .label("SERVICE_NAME", "from-label")
        .run();
    // Ignored.
    let ignored = lab
        .app("ignored")
        .env("SERVICE_NAME", "ignored")
        .env("SERVICE_IGNORE", "1")
        .run();
    // Two ports, each named.
    let two = lab
        .app("two")
        .expose("9090")
        .env("SERVICE_8080_NAME", "alpha")
        .env("SERVICE_9090_NAME", "beta")
        .run();
    // A broken interval: registered, without its HTTP check; the log names container and key.
    let broken = lab
        .app("broken")
        .env("SERVICE_NAME", "broken")
        .env("SERVICE_CHECK_HTTP", "/health")
        .env("SERVICE_CHECK_INTERVAL", "every-second")
        .run();
    let _ = (&ignored, &two);
    assert!(
        wait_until(30, || {
            instances(&lab, "from-label").len() == 1
                && instances(&lab, "alpha").len() == 1
                && instances(&lab, "beta").len() == 1
                && instances(&lab, "broken").len() == 1
        }),
        "{}",
        registrar_log(&lab)
    );
    assert_eq!(instances(&lab, "from-label")[0].0, id(&labelled));
    assert!(instances(&lab, "from-env").is_empty());
    assert!(instances(&lab, "ignored").is_empty());
    assert_eq!(instances(&lab, "alpha")[0].2, 8080);
    assert_eq!(instances(&lab, "beta")[0].2, 9090);
    assert_eq!(instances(&lab, "beta")[0].1, two.ip());
    let checks = api(&lab, "server1", "/v1/health/checks/broken");
    assert!(
        checks.as_array().unwrap().is_empty(),
        "the broken container's HTTP check is dropped: {checks:#}"
    );
    let log = registrar_log(&lab);
    assert!(
        log.lines().any(|l| l.contains(broken.name())
            && l.contains("SERVICE_CHECK_INTERVAL")
            && l.contains("every-second")),
        "{log}"
    );
    // The self check warns with the same problem, and doctor reports it.
    assert!(wait_until(30, || self_check(&lab)["Status"] == "warning"));
    let out = lab.consulctl(&["doctor", "-i", inv, "--output", "json"]);
    assert!(out.out().contains("registrar-settings"), "{}", out.out());

    // The daemon stopped: doctor says the registrar is down once its check expires or says so.
    lab.exec("client1", &["systemctl", "stop", "consulctl-registrar"])
        .success();
    assert!(wait_until(10, || self_check(&lab)["Status"] == "critical"));
    let out = lab.consulctl(&["doctor", "-i", inv, "--output", "json"]);
    assert!(out.out().contains("registrar-down"), "{}", out.out());
}

#[test]
fn a_hundred_containers_in_waves_converge_and_the_daemon_stays_small() {
    let lab = Lab::new("regwave")
        .servers(1)
        .clients(1)
        .init(LabInit::Supervisord)
        .docker_hosts(&["client1"])
        .up();
    add_registrar(&lab, "");
    let inv = lab.inventory_str();
    lab.consulctl(&["apply", "-i", inv]).success();
    let mut running: Vec<App> = Vec::new();
    // Four waves of 25 starts, then stops of every other one in two waves.
    for wave in 0..4 {
        for i in 0..25 {
            let n = wave * 25 + i;
            running.push(lab.app(&format!("w{n}")).env("SERVICE_NAME", "wave").run());
        }
    }
    let all: BTreeSet<String> = running.iter().map(id).collect();
    assert_eq!(all.len(), 100);
    assert!(
        wait_until(120, || registered_ids(&lab) == all),
        "registered {} of 100\n{}",
        registered_ids(&lab).len(),
        registrar_log(&lab)
    );
    let mut kept = BTreeSet::new();
    for (i, a) in running.iter().enumerate() {
        if i % 2 == 0 {
            a.remove();
        } else {
            kept.insert(id(a));
        }
    }
    assert!(
        wait_until(120, || registered_ids(&lab) == kept),
        "{} registered, want {}",
        registered_ids(&lab).len(),
        kept.len()
    );
    assert_eq!(
        instances(&lab, "wave").len(),
        50,
        "catalog equals the agent"
    );
    let rss_kb: u64 = lab
        .exec(
            "client1",
            &[
                "sh",
                "-c",
                "grep VmRSS /proc/$(pgrep -f '[c]onsulctl-host registrar' | head -n1)/status | tr -dc 0-9",
            ],
        )
        .success()
        .out()
        .parse()
        .unwrap();
    eprintln!("MEASURED registrar_rss_kb={rss_kb} with 100 containers seen, 50 running");
    assert!(rss_kb < 30 * 1024, "registrar RSS {rss_kb} kB");
}
