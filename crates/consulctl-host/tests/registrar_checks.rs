//! registrator's check settings (`SERVICE_CHECK_*`, `SERVICE_<port>_CHECK_*`) and the mirror of
//! Docker's HEALTHCHECK.

mod common;

use common::{container, fixture, internal, published, tcp, With};
use consul_api::agent::CheckDefinition;
use consulctl_host::registrar::container::{Container, Health};
use consulctl_host::registrar::conventions::{
    services_for, AddressMode, DesiredService, Problem, Settings, TtlStatus,
};

/// Image `simple`, port 80 published on 8080.
fn simple() -> Container {
    Container {
        image: "simple".into(),
        ..container()
    }
    .publish(tcp(80), 8080)
}

fn one(c: &Container, s: &Settings) -> (DesiredService, Vec<Problem>) {
    let (mut services, problems) = services_for(c, s);
    assert_eq!(services.len(), 1, "{services:#?}");
    (services.remove(0), problems)
}

/// The checks of the container's one service, which must have no problems.
fn checks(c: &Container, s: &Settings) -> Vec<CheckDefinition> {
    let (d, problems) = one(c, s);
    assert!(problems.is_empty(), "{problems:#?}");
    d.registration.checks
}

fn check_ids(checks: &[CheckDefinition]) -> Vec<&str> {
    checks.iter().map(|c| c.check_id.as_str()).collect()
}

fn scripts_on() -> Settings {
    Settings {
        script_checks: true,
        ..published()
    }
}

#[test]
fn http_check() {
    let c = checks(&simple().env("SERVICE_CHECK_HTTP", "/health"), &published());
    assert_eq!(
        c,
        [CheckDefinition {
            check_id: "node1:web:80:http".into(),
            name: "simple http".into(),
            http: "http://10.0.0.5:8080/health".into(),
            interval: "10s".into(),
            ..CheckDefinition::default()
        }]
    );
}

#[test]
fn https_check_and_a_path_without_slash() {
    let c = checks(&simple().env("SERVICE_CHECK_HTTPS", "ping"), &published());
    assert_eq!(check_ids(&c), ["node1:web:80:https"]);
    assert_eq!(c[0].http, "https://10.0.0.5:8080/ping");
    assert_eq!(c[0].name, "simple https");
}

#[test]
fn tcp_check() {
    let c = checks(&simple().env("SERVICE_CHECK_TCP", "true"), &published());
    assert_eq!(check_ids(&c), ["node1:web:80:tcp"]);
    assert_eq!(
        (c[0].tcp.as_str(), c[0].interval.as_str()),
        ("10.0.0.5:8080", "10s")
    );
    // An empty value is no check.
    assert!(checks(&simple().env("SERVICE_CHECK_TCP", ""), &published()).is_empty());
}

#[test]
fn checks_in_internal_mode_reach_the_container() {
    let c = simple()
        .env("SERVICE_CHECK_HTTP", "/")
        .env("SERVICE_CHECK_TCP", "1");
    let c = checks(&c, &internal(None));
    assert_eq!(c[0].http, "http://172.17.0.2:80/");
    assert_eq!(c[1].tcp, "172.17.0.2:80");
}

#[test]
fn an_ipv6_host_address_is_bracketed() {
    let s = Settings {
        mode: AddressMode::Published {
            host_ip: "fd00::5".into(),
        },
        ..published()
    };
    let c = simple()
        .env("SERVICE_CHECK_HTTP", "/h")
        .env("SERVICE_CHECK_TCP", "1");
    let c = checks(&c, &s);
    assert_eq!(c[0].http, "http://[fd00::5]:8080/h");
    assert_eq!(c[1].tcp, "[fd00::5]:8080");
}

#[test]
fn script_checks_need_the_agents_permission() {
    let c = simple().env("SERVICE_CHECK_SCRIPT", "nc -z $SERVICE_IP $SERVICE_PORT");
    let (d, problems) = one(&c, &published());
    assert!(d.registration.checks.is_empty());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "SERVICE_CHECK_SCRIPT");
    assert!(problems[0].message.contains("enable_local_script_checks"));

    let c = checks(&c, &scripts_on());
    assert_eq!(check_ids(&c), ["node1:web:80:script"]);
    assert_eq!(c[0].args, ["/bin/sh", "-c", "nc -z 10.0.0.5 8080"]);
    assert_eq!(c[0].interval, "10s");
    assert_eq!(c[0].name, "simple script");
}

#[test]
fn ttl_check() {
    let c = checks(&simple().env("SERVICE_CHECK_TTL", "30s"), &published());
    assert_eq!(
        c,
        [CheckDefinition {
            check_id: "node1:web:80:ttl".into(),
            name: "simple ttl".into(),
            ttl: "30s".into(),
            ..CheckDefinition::default()
        }]
    );
    let (d, problems) = one(&simple().env("SERVICE_CHECK_TTL", "30"), &published());
    assert!(d.registration.checks.is_empty());
    assert_eq!(problems[0].key, "SERVICE_CHECK_TTL");
    assert!(problems[0].message.contains("\"30\""));
}

#[test]
fn modifiers_apply_to_every_check() {
    let c = simple()
        .env("SERVICE_CHECK_HTTP", "/")
        .env("SERVICE_CHECK_TCP", "1")
        .env("SERVICE_CHECK_TTL", "1m")
        .env("SERVICE_CHECK_INTERVAL", "1m30s")
        .env("SERVICE_CHECK_TIMEOUT", "500ms")
        .env("SERVICE_CHECK_INITIAL_STATUS", "passing")
        .env("SERVICE_CHECK_DEREGISTER_AFTER", "1.5h");
    let c = checks(&c, &published());
    assert_eq!(
        check_ids(&c),
        ["node1:web:80:http", "node1:web:80:tcp", "node1:web:80:ttl"]
    );
    for check in &c[..2] {
        assert_eq!(
            (check.interval.as_str(), check.timeout.as_str()),
            ("1m30s", "500ms")
        );
    }
    assert_eq!((c[2].interval.as_str(), c[2].timeout.as_str()), ("", ""));
    for check in &c {
        assert_eq!(check.status, "passing");
        assert_eq!(check.deregister_critical_service_after, "1.5h");
    }
}

#[test]
fn a_bad_interval_drops_the_checks_that_need_one_with_one_problem() {
    let c = simple()
        .env("SERVICE_CHECK_HTTP", "/")
        .env("SERVICE_CHECK_HTTPS", "/")
        .env("SERVICE_CHECK_TCP", "1")
        .env("SERVICE_CHECK_SCRIPT", "true")
        .env("SERVICE_CHECK_TTL", "20s")
        .env("SERVICE_CHECK_INTERVAL", "10")
        .health(Health::Healthy, None);
    let (d, problems) = one(&c, &scripts_on());
    assert_eq!(
        check_ids(&d.registration.checks),
        ["node1:web:80:ttl", "node1:web:80:docker-health"],
        "the service stays, with its TTL and docker checks"
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].key, "SERVICE_CHECK_INTERVAL");
    assert!(problems[0].message.contains("\"10\""));
    assert!(problems[0].message.contains("10s, 1m30s"));
    assert_eq!(d.ttl.len(), 1);
}

#[test]
fn a_bad_global_setting_is_one_problem_for_several_ports() {
    let c = simple()
        .publish(tcp(443), 8443)
        .env("SERVICE_CHECK_TCP", "1")
        .env("SERVICE_CHECK_INTERVAL", "often");
    let (services, problems) = services_for(&c, &published());
    assert_eq!(services.len(), 2);
    assert!(services.iter().all(|d| d.registration.checks.is_empty()));
    assert_eq!(problems.len(), 1);
}

#[test]
fn a_bad_timeout_drops_just_the_timeout() {
    let c = simple()
        .env("SERVICE_CHECK_HTTP", "/")
        .env("SERVICE_CHECK_TIMEOUT", "-1s");
    let (d, problems) = one(&c, &published());
    let check = &d.registration.checks[0];
    assert_eq!(
        (check.interval.as_str(), check.timeout.as_str()),
        ("10s", "")
    );
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "SERVICE_CHECK_TIMEOUT");
}

#[test]
fn bad_initial_status_and_deregister_after_are_dropped() {
    let c = simple()
        .env("SERVICE_CHECK_TCP", "1")
        .env("SERVICE_CHECK_INITIAL_STATUS", "ok")
        .env("SERVICE_CHECK_DEREGISTER_AFTER", "soon");
    let (d, problems) = one(&c, &published());
    let check = &d.registration.checks[0];
    assert_eq!(check.status, "");
    assert_eq!(check.deregister_critical_service_after, "");
    let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "SERVICE_CHECK_DEREGISTER_AFTER",
            "SERVICE_CHECK_INITIAL_STATUS"
        ]
    );
    assert!(problems
        .iter()
        .any(|p| p.message.contains("passing, warning, critical")));
}

#[test]
fn port_settings_win_over_global_ones() {
    let c = simple()
        .publish(tcp(443), 8443)
        .env("SERVICE_CHECK_HTTP", "/global")
        .env("SERVICE_443_CHECK_HTTP", "/secure")
        .env("SERVICE_CHECK_INTERVAL", "5s")
        .env("SERVICE_80_CHECK_INTERVAL", "7s")
        .env("SERVICE_80_CHECK_TCP", "1");
    let (services, problems) = services_for(&c, &published());
    assert!(problems.is_empty(), "{problems:#?}");
    let c443 = &services[0].registration.checks;
    assert_eq!(check_ids(c443), ["node1:web:443:http"]);
    assert_eq!(c443[0].http, "http://10.0.0.5:8443/secure");
    assert_eq!(c443[0].interval, "5s");
    assert_eq!(c443[0].name, "simple-443 http");
    let c80 = &services[1].registration.checks;
    assert_eq!(check_ids(c80), ["node1:web:80:http", "node1:web:80:tcp"]);
    assert_eq!(c80[0].http, "http://10.0.0.5:8080/global");
    assert_eq!(c80[1].interval, "7s");
}

#[test]
fn an_unknown_check_type_is_a_problem() {
    let c = simple()
        .publish(tcp(8080), 9090)
        .env("SERVICE_8080_CHECK_FOO", "1")
        .env("SERVICE_CHECK_GRPC", "x");
    let (services, problems) = services_for(&c, &published());
    assert_eq!(services.len(), 2);
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["SERVICE_8080_CHECK_FOO", "SERVICE_CHECK_GRPC"]);
    for p in &problems {
        assert!(p.message.contains(
            "HTTP, HTTPS, TCP, SCRIPT, TTL, INTERVAL, TIMEOUT, INITIAL_STATUS, DEREGISTER_AFTER"
        ));
    }
}

#[test]
fn checks_come_in_a_fixed_order() {
    let c = simple()
        .env("SERVICE_CHECK_TTL", "1m")
        .env("SERVICE_CHECK_SCRIPT", "true")
        .env("SERVICE_CHECK_TCP", "1")
        .env("SERVICE_CHECK_HTTPS", "/")
        .env("SERVICE_CHECK_HTTP", "/")
        .health(Health::Starting, None);
    let types: Vec<String> = checks(&c, &scripts_on())
        .iter()
        .map(|c| c.check_id.rsplit(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        ["http", "https", "tcp", "script", "ttl", "docker-health"]
    );
}

#[test]
fn docker_healthcheck_is_mirrored_by_a_ttl_check() {
    let (d, problems) = one(&fixture("healthy"), &published());
    assert!(problems.is_empty());
    let id = "node1:regfix-healthy:8080";
    assert_eq!(d.registration.id, id);
    assert_eq!(
        d.registration.checks,
        [CheckDefinition {
            check_id: format!("{id}:docker-health"),
            name: "Docker HEALTHCHECK of regfix-healthy".into(),
            ttl: "90s".into(),
            ..CheckDefinition::default()
        }]
    );
    assert_eq!(
        d.ttl,
        [TtlStatus {
            check_id: format!("{id}:docker-health"),
            status: "passing".into(),
            note: "all good: 4.0".into(),
        }]
    );
    let (d, _) = one(&fixture("unhealthy"), &published());
    assert_eq!(d.ttl[0].status, "critical");
    assert_eq!(d.ttl[0].note, "backend down: connection refused");
}

#[test]
fn docker_health_states_map_to_check_statuses() {
    for (health, output, status, note) in [
        (Health::Healthy, None, "passing", "healthy"),
        (Health::Starting, None, "warning", "starting"),
        (Health::Unhealthy, None, "critical", "unhealthy"),
        (Health::Unhealthy, Some("503"), "critical", "503"),
    ] {
        let (d, _) = one(&simple().health(health, output), &published());
        assert_eq!(
            (d.ttl[0].status.as_str(), d.ttl[0].note.as_str()),
            (status, note)
        );
    }
}

#[test]
fn health_changes_do_not_change_the_registration() {
    let healthy = one(&simple().health(Health::Healthy, Some("ok")), &published()).0;
    let sick = one(
        &simple().health(Health::Unhealthy, Some("down")),
        &published(),
    )
    .0;
    assert_eq!(healthy.registration, sick.registration);
    assert_ne!(healthy.ttl, sick.ttl);
}

#[test]
fn a_script_check_is_sent_as_args() {
    let c = checks(
        &simple().env("SERVICE_CHECK_SCRIPT", "exit 0"),
        &scripts_on(),
    );
    let json = serde_json::to_value(&c[0]).unwrap();
    assert_eq!(json["Args"], serde_json::json!(["/bin/sh", "-c", "exit 0"]));
    let plain = serde_json::to_value(CheckDefinition::ttl("1s")).unwrap();
    assert!(plain.get("Args").is_none(), "no Args when there are none");
    let read: CheckDefinition =
        serde_json::from_value(serde_json::json!({"Args": null, "TTL": "1s"})).unwrap();
    assert!(read.args.is_empty());
}
