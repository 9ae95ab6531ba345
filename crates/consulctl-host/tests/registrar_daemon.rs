//! The registrar's loop against a fake agent (consul-api's FakeTransport): what a pass sends,
//! that a bad container never stops it, and the self check.

mod common;

use consul_api::testing::{block_on, FakeTransport};
use consul_api::Client;
use consulctl_host::registrar::config::Config;
use consulctl_host::registrar::daemon::Registrar;
use consulctl_host::registrar::reconcile::Action;

fn config() -> Config {
    Config::parse("node = \"docker1\"\nmode = \"published\"\nhost_ip = \"10.0.0.5\"\n").unwrap()
}

#[test]
fn a_pass_registers_every_container_and_a_second_one_against_that_state_sends_nothing() {
    let fake = FakeTransport::new()
        .on("GET", "/v1/agent/services", 200, "{}")
        .on("GET", "/v1/agent/checks", 200, "{}")
        .on(
            "PUT",
            "/v1/agent/service/register?replace-existing-checks",
            200,
            "",
        );
    let mut r = Registrar::new(config(), Client::new(fake.clone()));
    r.set_containers(vec![common::fixture("published")]);
    let actions = block_on(r.pass_now()).unwrap();
    let registered: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Register(reg) => Some(reg.id.as_str()),
            _ => None,
        })
        .collect();
    assert!(!registered.is_empty(), "{actions:?}");
    assert!(
        registered.iter().all(|id| id.starts_with("docker1:")),
        "{registered:?}"
    );
    assert_eq!(
        fake.count("PUT", "/v1/agent/service/register?replace-existing-checks"),
        registered.len(),
        "{:?}",
        fake.sent()
    );
    // The agent now holds what was sent: the next pass has nothing to do.
    let services: serde_json::Map<String, serde_json::Value> = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/agent/service/register"))
        .map(|r| {
            let reg: serde_json::Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
            let id = reg["ID"].as_str().unwrap().to_string();
            let service = serde_json::json!({
                "ID": id, "Service": reg["Name"], "Tags": reg["Tags"], "Meta": reg["Meta"],
                "Port": reg["Port"], "Address": reg["Address"],
            });
            (id, service)
        })
        .collect();
    let fake2 = FakeTransport::new()
        .on_json(
            "GET",
            "/v1/agent/services",
            &serde_json::Value::Object(services),
        )
        .on("GET", "/v1/agent/checks", 200, "{}");
    let mut r = Registrar::new(config(), Client::new(fake2.clone()));
    r.set_containers(vec![common::fixture("published")]);
    let actions = block_on(r.pass_now()).unwrap();
    assert!(
        actions
            .iter()
            .all(|a| !matches!(a, Action::Register(_) | Action::Deregister { .. })),
        "{actions:?}"
    );
}

#[test]
fn an_unreachable_agent_is_an_error_of_the_pass_not_a_panic_and_changes_nothing() {
    let fake = FakeTransport::new().fail_all("connection refused");
    let mut r = Registrar::new(config(), Client::new(fake.clone()));
    r.set_containers(vec![common::fixture("published")]);
    let err = block_on(r.pass_now()).unwrap_err();
    assert!(err.contains("connection refused"), "{err}");
    assert!(
        fake.sent().iter().all(|s| s.starts_with("GET")),
        "{:?}",
        fake.sent()
    );
}

#[test]
fn foreign_services_on_the_agent_are_left_alone_and_gone_containers_deregistered() {
    let services = serde_json::json!({
        "web": {"ID": "web", "Service": "web", "Port": 80},
        "docker1:old:80": {"ID": "docker1:old:80", "Service": "old", "Port": 80,
            "Meta": {"managed-by": "consulctl-registrar", "registrar-node": "docker1"}},
        "docker2:x:80": {"ID": "docker2:x:80", "Service": "x", "Port": 80,
            "Meta": {"managed-by": "consulctl-registrar", "registrar-node": "docker2"}}
    });
    let fake = FakeTransport::new()
        .on_json("GET", "/v1/agent/services", &services)
        .on("GET", "/v1/agent/checks", 200, "{}")
        .on(
            "PUT",
            "/v1/agent/service/deregister/docker1%3Aold%3A80",
            200,
            "",
        );
    let mut r = Registrar::new(config(), Client::new(fake.clone()));
    r.set_containers(vec![]);
    let actions = block_on(r.pass_now()).unwrap();
    assert_eq!(
        actions,
        [Action::Deregister {
            id: "docker1:old:80".into(),
            reason: match &actions[0] {
                Action::Deregister { reason, .. } => reason.clone(),
                other => panic!("{other:?}"),
            }
        }]
    );
    assert_eq!(
        fake.sent().last().map(String::as_str),
        Some("PUT /v1/agent/service/deregister/docker1%3Aold%3A80"),
        "{:?}",
        fake.sent()
    );
}
