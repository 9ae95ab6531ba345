//! Load balancers that follow the catalog, deployed by `apply` on a lab LB host: real nginx
//! and HAProxy, real requests from the machine, backends registered by the Docker registrar
//! (app containers) and by the inventory (dnsmasq answering DNS over tcp and udp).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{http_get, wait_until, App, Lab, LabInit};
use crate::registrar::{add_registrar, api};

const LB: &str = "client2";
const DNS_PORT: u16 = 5353;

/// `[lb]` of `kind` on the LB host, the registrar on client1, and a DNS service (dnsmasq on
/// client1, port 5353, tcp and udp; tcp only for HAProxy, which does not proxy udp) declared
/// in the inventory with the seed's tags.
fn add_lb(lab: &Lab, kind: &str, extra: &str) {
    let tags = if kind == "haproxy" {
        "\"tcp\", \"upyun\""
    } else {
        "\"tcp\", \"udp\", \"upyun\""
    };
    add_registrar(lab, "");
    let mut text = std::fs::read_to_string(lab.inventory()).unwrap();
    text.push_str(&format!(
        "\n[lb]\nkind = \"{kind}\"\n{extra}\n\n[[services]]\nname = \"dns\"\non = \"client1\"\n\
         port = {DNS_PORT}\ntags = [{tags}]\n[[services.checks]]\n\
         tcp = \"{{{{ bind_addr }}}}:{DNS_PORT}\"\ninterval = \"2s\"\n"
    ));
    std::fs::write(lab.inventory(), text).unwrap();
    let ip = lab.host_ip("client1").to_string();
    lab.exec(
        "client1",
        &[
            "dnsmasq",
            &format!("--port={DNS_PORT}"),
            "--no-resolv",
            "--no-hosts",
            "--address=/lb.test/10.9.9.9",
            &format!("--listen-address={ip}"),
            "--bind-interfaces",
            "--pid-file=/tmp/dnsmasq-lbtest.pid",
        ],
    )
    .success();
}

fn web_app(lab: &Lab, name: &str) -> App {
    lab.app(name)
        .env("SERVICE_NAME", "web")
        .env("SERVICE_TAGS", "http,upyun")
        .env("SERVICE_CHECK_HTTP", "/health")
        .env("SERVICE_CHECK_INTERVAL", "1s")
        .run()
}

/// The container hostname an app answers `/hostname` with.
fn hostname(app: &App) -> String {
    app.id()[..12].to_string()
}

/// `/hostname` through the LB, `n` times: the set of backends that answered (errors panic).
fn served(lab: &Lab, n: usize) -> BTreeSet<String> {
    let ip = lab.host_ip(LB).to_string();
    (0..n)
        .map(|_| {
            let (code, body) = http_get(&ip, 8080, "/hostname", Some("web"))
                .unwrap_or_else(|e| panic!("GET through the LB: {e:#}"));
            assert_eq!(code, 200, "{body}");
            body.trim().to_string()
        })
        .collect()
}

/// Wait until the LB serves exactly these apps (within 40 requests in a row). Until then a
/// refused connection is "not yet" (before the first render with the service the LB does not
/// listen on its port).
fn wait_served(lab: &Lab, apps: &[&App]) -> bool {
    let want: BTreeSet<String> = apps.iter().map(|a| hostname(a)).collect();
    let ip = lab.host_ip(LB).to_string();
    wait_until(40, || {
        let got: Option<BTreeSet<String>> = (0..40)
            .map(|_| match http_get(&ip, 8080, "/hostname", Some("web")) {
                Ok((200, body)) => Some(body.trim().to_string()),
                _ => None,
            })
            .collect();
        got == Some(want.clone())
    })
}

fn lb_check(lab: &Lab) -> Value {
    api(lab, LB, "/v1/agent/checks")["consulctl-lb"].clone()
}

fn lb_log(lab: &Lab) -> String {
    lab.exec(
        LB,
        &[
            "sh",
            "-c",
            "cat /var/log/supervisor/consulctl-lb*.log 2>/dev/null | tail -40; \
             journalctl -u consulctl-lb --no-pager 2>/dev/null | tail -40; true",
        ],
    )
    .out()
    .to_string()
}

/// A request loop from the machine through the LB, counting failures.
struct RequestLoop {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RequestLoop {
    fn start(ip: &str, port: u16) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, ok, errors, ip) = (stop.clone(), ok.clone(), errors.clone(), ip.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match http_get(&ip, port, "/hostname", Some("web")) {
                        Ok((200, _)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((code, body)) => errors.lock().unwrap().push(format!("{code}: {body}")),
                        Err(e) => errors.lock().unwrap().push(format!("{e:#}")),
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        RequestLoop {
            stop,
            ok,
            errors,
            thread: Some(thread),
        }
    }

    /// Stop; (answered, failures).
    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let errors = self.errors.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), errors)
    }
}

/// Replace every app with a new one, one at a time (the new one serving before the old one
/// stops), under a request loop; returns the new apps.
fn rolling_replacement(lab: &Lab, old: Vec<App>, prefix: &str) -> Vec<App> {
    let ip = lab.host_ip(LB).to_string();
    let requests = RequestLoop::start(&ip, 8080);
    let mut current: Vec<App> = old;
    let mut new_apps = Vec::new();
    for i in 0..current.len() {
        let fresh = web_app(lab, &format!("{prefix}{i}"));
        let h = hostname(&fresh);
        assert!(
            wait_until(40, || served(lab, 30).contains(&h)),
            "new backend {h} not served: {:?}\n{}",
            served(lab, 30),
            lb_log(lab)
        );
        let gone = current.remove(0);
        gone.stop();
        gone.remove();
        new_apps.push(fresh);
    }
    let all: Vec<&App> = new_apps.iter().collect();
    assert!(
        wait_served(lab, &all),
        "after the replacement: {:?}",
        served(lab, 40)
    );
    let (ok, errors) = requests.finish();
    eprintln!(
        "rolling replacement: {ok} requests answered, {} failed",
        errors.len()
    );
    assert!(ok > 50, "the request loop ran: {ok}");
    assert!(
        errors.is_empty(),
        "failed requests: {errors:?}\n{}",
        lb_log(lab)
    );
    new_apps
}

fn dig(lab: &Lab, tcp: bool) -> String {
    let server = format!("@{}", lab.host_ip(LB));
    let port = DNS_PORT.to_string();
    let mut argv = vec![
        "dig", "+short", "+time=2", "+tries=2", &server, "-p", &port, "lb.test",
    ];
    if tcp {
        argv.push("+tcp");
    }
    lab.exec("server1", &argv).out().trim().to_string()
}

/// A lab with the Docker host client1 and the LB host client2 running `kind`, three web apps,
/// rolled out by `apply`: returns once the LB's check passes and it serves every app.
fn lb_lab(
    name: &str,
    servers: u32,
    init: LabInit,
    kind: &str,
    app_prefix: &str,
) -> (Lab, Vec<App>) {
    let lab = Lab::new(name)
        .servers(servers)
        .clients(2)
        .init(init)
        .docker_hosts(&["client1"])
        .lb_hosts(&[LB])
        .up();
    add_lb(&lab, kind, "");
    let apps: Vec<App> = (1..=3)
        .map(|i| web_app(&lab, &format!("{app_prefix}{i}")))
        .collect();
    lab.consulctl(&["apply", "-i", lab.inventory_str()])
        .success();
    assert!(
        wait_until(40, || lb_check(&lab)["Status"] == "passing"),
        "LB check: {:#}\n{}",
        lb_check(&lab),
        lb_log(&lab)
    );
    let refs: Vec<&App> = apps.iter().collect();
    assert!(
        wait_served(&lab, &refs),
        "served: {:?}\n{}",
        served(&lab, 40),
        lb_log(&lab)
    );
    (lab, apps)
}

#[test]
fn nginx_follows_the_catalog_through_changes_a_refused_template_and_a_lost_quorum() {
    // Mixed init: client1 (Docker host) supervisord, client2 (LB) systemd.
    // 1. HTTP through nginx reaches every passing backend (lb_lab); DNS over udp and tcp
    //    through the stream proxy reaches dnsmasq.
    let (lab, apps) = lb_lab("lbnginx", 3, LabInit::Mixed, "nginx", "web");
    let inv = lab.inventory_str();
    let refs: Vec<&App> = apps.iter().collect();
    assert!(
        wait_until(30, || dig(&lab, false) == "10.9.9.9"),
        "udp: {}",
        dig(&lab, false)
    );
    assert_eq!(dig(&lab, true), "10.9.9.9", "tcp");
    // `services` shows the LB routing to the instances (from the daemon's KV record, written
    // after each change and retried with its heartbeat while Consul refuses it).
    let want: BTreeSet<String> = apps.iter().map(|a| a.ip().to_string()).collect();
    let web_report = || -> Value {
        let report = lab
            .consulctl(&["services", "-i", inv, "--output", "json"])
            .json();
        report["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "web")
            .cloned()
            .unwrap_or_else(|| panic!("no web in {report:#}"))
    };
    let routed = |web: &Value| -> BTreeSet<String> {
        web["lbs"][0]["instances"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| i["address"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        wait_until(30, || {
            let web = web_report();
            web["lbs"][0]["lb"] == LB && routed(&web) == want
        }),
        "services: which instances the LB routes to: {:#}\n{}",
        web_report(),
        lb_log(&lab)
    );

    // 6. What `--once --dry` prints is the file the daemon wrote; a second apply changes nothing.
    let dry = lab.exec(
        LB,
        &[
            "sh",
            "-c",
            "CONSUL_HTTP_TOKEN_FILE=/etc/consulctl/lb.token; [ -s $CONSUL_HTTP_TOKEN_FILE ] && export CONSUL_HTTP_TOKEN_FILE; \
             /usr/local/bin/consulctl-host lb --config /etc/consulctl/lb.toml --once --dry --only nginx-http",
        ],
    );
    let file = lab.exec(LB, &["cat", "/etc/nginx/conf.d/consulctl-http.conf"]);
    assert_eq!(dry.success().out(), file.success().out());
    lab.consulctl(&["apply", "-i", inv, "--output", "json"])
        .success()
        .contains("\"changed\": 0");

    // 2. Added and removed backends reach nginx; a rolling replacement of every backend under
    //    a request loop fails no request.
    let extra = web_app(&lab, "web4");
    let mut with_extra: Vec<&App> = apps.iter().collect();
    with_extra.push(&extra);
    assert!(
        wait_served(&lab, &with_extra),
        "added: {:?}",
        served(&lab, 40)
    );
    extra.stop();
    extra.remove();
    assert!(wait_served(&lab, &refs), "removed: {:?}", served(&lab, 40));
    let apps = rolling_replacement(&lab, apps, "next");

    // 3. A template that nginx refuses: nginx keeps serving, the check is critical with
    //    nginx's message, doctor shows it; fixing the template recovers.
    let tpl = lab
        .inventory()
        .with_file_name(format!("{}-custom.conf.tera", lab.name()));
    std::fs::write(&tpl, "bogus_directive on;\n").unwrap();
    let mut text = std::fs::read_to_string(lab.inventory()).unwrap();
    let before_template = text.clone();
    text = text.replace(
        "[lb]\nkind = \"nginx\"\n",
        &format!(
            "[lb]\nkind = \"nginx\"\ntemplates = [{{ name = \"custom\", source = \"{}\", destination = \"/etc/nginx/conf.d/custom.conf\" }}]\n",
            tpl.file_name().unwrap().to_string_lossy()
        ),
    );
    std::fs::write(lab.inventory(), &text).unwrap();
    lab.consulctl(&["apply", "-i", inv]).success();
    assert!(
        wait_until(40, || {
            let c = lb_check(&lab);
            c["Status"] == "critical"
                && c["Output"]
                    .as_str()
                    .unwrap_or("")
                    .contains("unknown directive \"bogus_directive\"")
        }),
        "LB check: {:#}\n{}",
        lb_check(&lab),
        lb_log(&lab)
    );
    let refs: Vec<&App> = apps.iter().collect();
    assert!(
        wait_served(&lab, &refs),
        "still serving: {:?}",
        served(&lab, 40)
    );
    assert!(!lab
        .exec(LB, &["test", "-e", "/etc/nginx/conf.d/custom.conf"])
        .ok());
    lab.consulctl(&["doctor", "-i", inv])
        .code(1)
        .contains("lb-failing")
        .contains("bogus_directive");
    std::fs::write(&tpl, "# nothing yet\n").unwrap();
    lab.consulctl(&["apply", "-i", inv]).success();
    assert!(
        wait_until(40, || lb_check(&lab)["Status"] == "passing"),
        "after the fix: {:#}\n{}",
        lb_check(&lab),
        lb_log(&lab)
    );
    assert_eq!(
        lab.exec(LB, &["cat", "/etc/nginx/conf.d/custom.conf"])
            .success()
            .out()
            .trim(),
        "# nothing yet"
    );
    std::fs::write(lab.inventory(), before_template).unwrap();

    // 4. Two of three servers stopped: no leader; the files stay and traffic flows; a backend
    //    stopped meanwhile leaves once quorum is back.
    let conf = || {
        lab.exec(LB, &["cat", "/etc/nginx/conf.d/consulctl-http.conf"])
            .success()
            .out()
            .to_string()
    };
    let before = conf();
    for s in ["server2", "server3"] {
        lab.docker(&["stop", &lab.container(s)]).success();
    }
    assert!(
        // Without a leader the agent may not answer at all within the timeout: that counts.
        wait_until(60, || {
            let out = lab.exec(
                LB,
                &[
                    "curl",
                    "-sS",
                    "--max-time",
                    "3",
                    "http://127.0.0.1:8500/v1/status/leader",
                ],
            );
            !(out.ok() && out.out().contains(':'))
        }),
        "the leader is gone"
    );
    let leaving = &apps[0];
    leaving.stop();
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(conf(), before, "no render while the cluster has no leader");
    let rest: Vec<&App> = apps[1..].iter().collect();
    assert!(
        wait_served(&lab, &rest),
        "traffic flows: {:?}",
        served(&lab, 40)
    );
    for s in ["server2", "server3"] {
        lab.docker(&["start", &lab.container(s)]).success();
    }
    assert!(
        wait_until(120, || !conf().contains(leaving.ip())),
        "after quorum is back the stopped backend leaves\n{}",
        lb_log(&lab)
    );
    assert!(
        wait_until(40, || lb_check(&lab)["Status"] == "passing"),
        "{:#}",
        lb_check(&lab)
    );
}

#[test]
fn haproxy_pools_connections_and_takes_twenty_changes_at_run_time_without_a_failed_request() {
    let (lab, apps) = lb_lab("lbhaproxy", 1, LabInit::Supervisord, "haproxy", "hweb");
    let inv = lab.inventory_str();
    assert!(
        wait_until(30, || dig(&lab, true) == "10.9.9.9"),
        "tcp: {}",
        dig(&lab, true)
    );
    let apps = rolling_replacement(&lab, apps, "hnext");

    // 20 changes under a request loop: an extra instance registered and deregistered ten
    // times on the LB's agent (pointing at a live backend), each change a new generation,
    // each taken by HAProxy through its runtime API (no reload: the same process keeps its
    // connection pools).
    let runtime_lines = |log: &str| log.matches("through the runtime API, no reload").count();
    let full_log = || {
        lab.exec(
            LB,
            &[
                "sh",
                "-c",
                "cat /var/log/supervisor/consulctl-lb*.log 2>/dev/null; true",
            ],
        )
        .out()
        .to_string()
    };
    let runtime_before = runtime_lines(&full_log());
    let generation = || -> String {
        let kv = api(&lab, LB, &format!("/v1/kv/consulctl/lb/{LB}?raw"));
        kv["serving"]["generation"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let requests = RequestLoop::start(lab.host_ip(LB), 8080);
    let target = apps[0].ip().to_string();
    let mut last = generation();
    let mut changes = 0;
    let token = crate::registrar::management_token(&lab);
    for i in 0..20 {
        let (path, body) = if i % 2 == 0 {
            (
                "/v1/agent/service/register".to_string(),
                format!(
                    "{{\"ID\":\"web-extra\",\"Name\":\"web\",\"Address\":\"{target}\",\"Port\":8080,\"Tags\":[\"http\",\"upyun\",\"n{i}\"]}}"
                ),
            )
        } else {
            (
                "/v1/agent/service/deregister/web-extra".to_string(),
                String::new(),
            )
        };
        let url = format!("http://127.0.0.1:8500{path}");
        let (code, out) = lab.consul_api_token(
            LB,
            &url,
            token.as_deref().unwrap_or(""),
            &["-X", "PUT", "--data", &body],
        );
        assert_eq!(code, 200, "{path}: {out}");
        assert!(
            wait_until(20, || generation() != last),
            "change {i} reached no new generation\n{}",
            lb_log(&lab)
        );
        last = generation();
        changes += 1;
    }
    let (ok, errors) = requests.finish();
    let runtime = runtime_lines(&full_log()) - runtime_before;
    eprintln!(
        "haproxy: {changes} changes, {runtime} through the runtime API, {ok} requests answered, {} failed",
        errors.len()
    );
    assert_eq!(changes, 20);
    assert!(
        runtime >= 20,
        "{runtime} changes at run time\n{}",
        lb_log(&lab)
    );
    assert!(errors.is_empty(), "failed requests: {errors:?}");
    lab.consulctl(&["apply", "-i", inv, "--output", "json"])
        .success()
        .contains("\"changed\": 0");
}
