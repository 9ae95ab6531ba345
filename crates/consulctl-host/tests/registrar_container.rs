//! `Container::from_inspect` on real `docker inspect` output (Docker 20.10, API 1.41; see
//! fixtures/docker/capture.sh) and on odd documents.

mod common;

use std::collections::BTreeMap;

use common::{fixture, tcp, udp};
use consulctl_host::registrar::container::{Container, Health, Published, RunState};
use serde_json::json;

fn published(
    port: consulctl_host::registrar::container::Port,
    ip: &str,
    host_port: u16,
) -> Published {
    Published {
        port,
        host_ip: ip.into(),
        host_port,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_running_container_with_two_published_ports() {
    let c = fixture("published");
    assert_eq!(
        c.id,
        "7ba596aa0be81ffd315f3277f701eea7cd0976a90d37449bae8cfb8882a58839"
    );
    assert_eq!(c.short_id(), "7ba596aa0be8");
    assert_eq!(c.name, "regfix-published");
    assert_eq!(c.image, "regfix-web");
    assert_eq!(c.state, RunState::Running);
    assert_eq!((c.health, c.health_output.as_deref()), (None, None));
    assert_eq!(c.network_mode, "default");
    assert_eq!(c.networks, map(&[("bridge", "172.17.0.2")]));
    assert_eq!(c.exposed, [tcp(80), tcp(8443)]);
    // Docker lists 0.0.0.0 and :: for each port: one binding is kept, the IPv4 one.
    assert_eq!(
        c.published,
        [
            published(tcp(80), "0.0.0.0", 32769),
            published(tcp(8443), "0.0.0.0", 32768)
        ]
    );
    assert!(c.labels.is_empty());
    assert_eq!(
        c.env,
        map(&[(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        )])
    );
    assert!(c.service_settings().is_empty());
}

#[test]
fn env_and_labels_become_settings_with_labels_winning() {
    let c = fixture("settings");
    assert_eq!(c.env["EQUALS"], "a=b=c", "split at the first =");
    assert_eq!(
        c.env["FLAG"], "",
        "an entry without = is a key with no value"
    );
    assert_eq!(c.labels["other"], "label");
    assert_eq!(
        c.service_settings(),
        map(&[
            ("SERVICE_80_NAME", "web"),
            ("SERVICE_8443_CHECK_TCP", "true"),
            ("SERVICE_NAME", "from-env"),
            ("SERVICE_REGION", "eu-west"),
            ("SERVICE_TAGS", "label,wins"),
        ])
    );
    assert_eq!(c.exposed, [udp(53), tcp(80), tcp(8443)]);
    assert_eq!(
        c.published,
        [
            published(udp(53), "0.0.0.0", 5353),
            published(tcp(80), "0.0.0.0", 8080),
            published(tcp(8443), "127.0.0.1", 9443),
        ]
    );
}

#[test]
fn a_paused_container() {
    let c = fixture("paused");
    assert_eq!(c.state, RunState::Paused);
    assert_eq!(c.published.len(), 2);
}

#[test]
fn healthchecks_and_their_last_output() {
    let c = fixture("healthy");
    assert_eq!(c.health, Some(Health::Healthy));
    assert_eq!(c.health_output.as_deref(), Some("all good: 4.0"));
    let c = fixture("unhealthy");
    assert_eq!(c.health, Some(Health::Unhealthy));
    assert_eq!(
        c.health_output.as_deref(),
        Some("backend down: connection refused"),
        "trimmed"
    );
}

#[test]
fn host_networking_has_no_bindings() {
    let c = fixture("hostnet");
    assert_eq!(c.network_mode, "host");
    assert_eq!(c.networks, map(&[("host", "")]));
    assert_eq!(c.exposed, [tcp(80), tcp(8443)]);
    assert!(c.published.is_empty());
    assert_eq!(c.env["SERVICE_NAME"], "hostweb");
}

#[test]
fn user_defined_networks() {
    let c = fixture("usernet");
    assert_eq!(c.network_mode, "regfix-net");
    assert_eq!(c.networks, map(&[("regfix-net", "172.18.0.2")]));
    assert!(
        c.published.is_empty(),
        "exposed, not published: null bindings"
    );
    let c = fixture("twonets");
    assert_eq!(
        c.networks,
        map(&[("bridge", "172.17.0.7"), ("regfix-net", "172.18.0.3")])
    );
}

#[test]
fn stopped_containers() {
    let c = fixture("exited");
    assert_eq!(c.state, RunState::Other("exited".into()));
    assert_eq!(c.networks, map(&[("bridge", "")]));
    assert_eq!(fixture("created").state, RunState::Other("created".into()));
}

#[test]
fn a_document_without_id_is_not_a_container() {
    for doc in [
        json!({}),
        json!(null),
        json!([1, 2]),
        json!({"Id": ""}),
        json!({"Id": 5}),
    ] {
        assert!(Container::from_inspect(&doc).is_err(), "{doc}");
    }
}

#[test]
fn a_bare_document_reads_as_empty() {
    let c = Container::from_inspect(&json!({"Id": "abc"})).unwrap();
    assert_eq!(c.short_id(), "abc");
    assert_eq!(c.name, "");
    assert_eq!(c.state, RunState::Other("unknown".into()));
    assert!(c.env.is_empty() && c.labels.is_empty() && c.networks.is_empty());
    assert!(c.exposed.is_empty() && c.published.is_empty());
}

#[test]
fn odd_values_are_skipped_not_fatal() {
    let doc = json!({
        "Id": "é".repeat(20),
        "Name": 7,
        "Config": {
            "Env": ["A=1", 5, "=nokey", "A=2", null],
            "Labels": {"x": "y", "n": 1},
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "132/sctp": {}, "9/quic": {},
                             "abc/tcp": {}, "0/tcp": {}, "70000/tcp": {}, "81": {}},
        },
        "State": {"Status": 3, "Health": {"Status": "none"}},
        "HostConfig": null,
        "NetworkSettings": {
            "Networks": {"n1": {"IPAddress": null}, "n2": 4},
            "Ports": {
                "80/tcp": [
                    {"HostIp": "::", "HostPort": "8080"},
                    {"HostIp": "0.0.0.0", "HostPort": "8080"},
                    {"HostIp": "::", "HostPort": "8081"}
                ],
                "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "x"}, {"HostPort": "0"}, "junk"],
                "9/quic": [{"HostIp": "0.0.0.0", "HostPort": "9"}],
                "132/sctp": null,
                "81/tcp": {"HostPort": "1"},
            }
        }
    });
    let c = Container::from_inspect(&doc).unwrap();
    assert_eq!(c.short_id(), "é".repeat(6), "cut at 12 bytes");
    assert_eq!(c.env, map(&[("A", "2")]), "a later duplicate wins");
    assert_eq!(c.labels, map(&[("x", "y")]));
    assert_eq!(
        c.exposed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["53/udp", "80/tcp", "81/tcp", "132/sctp"]
    );
    assert_eq!(
        c.published,
        [
            published(tcp(80), "0.0.0.0", 8080),
            published(tcp(80), "::", 8081)
        ],
        "IPv4 preferred whatever the order; an IPv6-only binding is kept"
    );
    assert_eq!(c.networks, map(&[("n1", ""), ("n2", "")]));
    assert_eq!(c.health, None);
    assert_eq!(c.state, RunState::Other("unknown".into()));
}

#[test]
fn health_output_is_trimmed_and_cut_at_200_characters() {
    let long = format!("\n  {}  \n", "ü".repeat(300));
    let doc = json!({"Id": "a", "State": {"Status": "running", "Health": {
        "Status": "starting",
        "Log": [{"Output": "old"}, {"Output": long}]
    }}});
    let c = Container::from_inspect(&doc).unwrap();
    assert_eq!(c.health, Some(Health::Starting));
    assert_eq!(c.health_output, Some("ü".repeat(200)));
    let doc =
        json!({"Id": "a", "State": {"Health": {"Status": "healthy", "Log": [{"Output": "  \n"}]}}});
    let c = Container::from_inspect(&doc).unwrap();
    assert_eq!((c.health, c.health_output), (Some(Health::Healthy), None));
    let doc = json!({"Id": "a", "State": {"Health": {"Status": "unhealthy", "Log": null}}});
    assert_eq!(
        Container::from_inspect(&doc).unwrap().health,
        Some(Health::Unhealthy)
    );
}

#[test]
fn run_state_from_old_engines_flags() {
    let state = |s: serde_json::Value| {
        Container::from_inspect(&json!({"Id": "a", "State": s}))
            .unwrap()
            .state
    };
    assert_eq!(
        state(json!({"Running": true, "Paused": true})),
        RunState::Paused
    );
    assert_eq!(state(json!({"Running": true})), RunState::Running);
    assert_eq!(
        state(json!({"Running": true, "Restarting": true})),
        RunState::Other("restarting".into())
    );
    assert_eq!(
        state(json!({"Status": "dead"})),
        RunState::Other("dead".into())
    );
    assert_eq!(
        state(json!({"Status": "paused", "Running": true})),
        RunState::Paused
    );
}

#[test]
fn labels_override_env_settings_and_others_are_not_settings() {
    let doc = json!({"Id": "a", "Config": {
        "Env": ["SERVICE_NAME=env", "SERVICE_TAGS=a", "SERVICEX=no", "service_name=no"],
        "Labels": {"SERVICE_NAME": "label", "com.example": "no", "SERVICE_ID": "x"}
    }});
    let c = Container::from_inspect(&doc).unwrap();
    assert_eq!(
        c.service_settings(),
        map(&[
            ("SERVICE_ID", "x"),
            ("SERVICE_NAME", "label"),
            ("SERVICE_TAGS", "a")
        ])
    );
}
