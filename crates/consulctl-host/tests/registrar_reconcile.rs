//! reconcile: desired services + the agent's state -> actions. An in-test agent
//! ([`apply`]) carries the actions out, so that every scenario also checks that a second pass
//! has nothing to do.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{container, published, tcp, With};
use consul_api::agent::AgentService;
use consul_api::HealthCheck;
use consulctl_host::registrar::container::{Container, Health, RunState};
use consulctl_host::registrar::conventions::{services_for, DesiredService};
use consulctl_host::registrar::reconcile::{
    maintenance_check_id, reconcile, Action, Current, Draining, Options,
};

/// What the agent does with the actions (as far as reconcile cares): registration replaces
/// the service's checks (a check starts critical unless it says otherwise) but not its
/// maintenance check; deregistration removes the service and its checks.
fn apply(actions: &[Action], agent: &mut Current) {
    for action in actions {
        match action {
            Action::Register(r) => {
                agent.services.insert(
                    r.id.clone(),
                    AgentService {
                        id: r.id.clone(),
                        service: r.name.clone(),
                        tags: r.tags.clone(),
                        meta: r.meta.clone(),
                        port: r.port.unwrap_or(0),
                        address: r.address.clone(),
                        ..AgentService::default()
                    },
                );
                let maint = maintenance_check_id(&r.id);
                agent
                    .checks
                    .retain(|id, c| c.service_id != r.id || *id == maint);
                for c in &r.checks {
                    let status = if c.status.is_empty() {
                        "critical"
                    } else {
                        &c.status
                    };
                    agent.checks.insert(
                        c.check_id.clone(),
                        HealthCheck {
                            check_id: c.check_id.clone(),
                            name: c.name.clone(),
                            status: status.into(),
                            service_id: r.id.clone(),
                            ..HealthCheck::default()
                        },
                    );
                }
            }
            Action::Deregister { id, .. } => {
                assert!(agent.services.remove(id).is_some(), "deregister {id}: none");
                agent.checks.retain(|_, c| c.service_id != *id);
            }
            Action::Maintenance { id, enable, reason } => {
                assert!(agent.services.contains_key(id), "maintenance of {id}: none");
                let check_id = maintenance_check_id(id);
                if *enable {
                    agent.checks.entry(check_id.clone()).or_insert(HealthCheck {
                        check_id,
                        status: "critical".into(),
                        notes: reason.clone(),
                        service_id: id.clone(),
                        ..HealthCheck::default()
                    });
                } else {
                    agent.checks.remove(&check_id);
                }
            }
            Action::Ttl {
                check_id,
                status,
                note,
            } => {
                let check = agent
                    .checks
                    .get_mut(check_id)
                    .expect("ttl of a missing check");
                check.status = status.clone();
                check.output = note.clone();
            }
        }
    }
}

fn options(now_ms: u64) -> Options {
    Options {
        node: "node1".into(),
        drain: None,
        now_ms,
        refresh_ttl: false,
    }
}

fn draining_options(now_ms: u64) -> Options {
    Options {
        drain: Some(Duration::from_secs(30)),
        ..options(now_ms)
    }
}

/// The desired services of containers (in published mode, node `node1`).
fn desired(containers: &[Container]) -> Vec<DesiredService> {
    containers
        .iter()
        .flat_map(|c| services_for(c, &published()).0)
        .collect()
}

/// Container `name`, port 80 published on `host_port`.
fn web(name: &str, host_port: u16) -> Container {
    Container {
        name: name.into(),
        ..container()
    }
    .publish(tcp(80), host_port)
}

/// Reconcile, apply, and check that the next pass is empty.
fn settle(
    desired: &[DesiredService],
    agent: &mut Current,
    draining: &mut Draining,
    options: &Options,
) -> Vec<Action> {
    let actions = reconcile(desired, agent, draining, options);
    apply(&actions, agent);
    let again = reconcile(desired, agent, draining, options);
    assert!(again.is_empty(), "not idempotent: {again:#?}");
    actions
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Register(r) => format!("register {}", r.id),
            Action::Deregister { id, .. } => format!("deregister {id}"),
            Action::Maintenance { id, enable, .. } => format!("maintenance {id} {enable}"),
            Action::Ttl {
                check_id, status, ..
            } => format!("ttl {check_id} {status}"),
        })
        .collect()
}

/// A service someone else registered (`meta` as given).
fn foreign(agent: &mut Current, id: &str, meta: &[(&str, &str)]) {
    agent.services.insert(
        id.into(),
        AgentService {
            id: id.into(),
            service: "other".into(),
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..AgentService::default()
        },
    );
}

#[test]
fn new_services_are_registered_once() {
    let want = desired(&[web("b", 8081), web("a", 8080)]);
    let mut agent = Current::default();
    let mut draining = Draining::new();
    let actions = settle(&want, &mut agent, &mut draining, &options(0));
    assert_eq!(
        kinds(&actions),
        ["register node1:a:80", "register node1:b:80"]
    );
    assert_eq!(agent.services["node1:a:80"].port, 8080);
    assert!(reconcile(&want, &agent, &mut draining, &options(1)).is_empty());
}

#[test]
fn a_changed_registration_is_sent_again() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    settle(
        &desired(&[web("a", 8080)]),
        &mut agent,
        &mut draining,
        &options(0),
    );
    let retagged = desired(&[web("a", 8080).env("SERVICE_TAGS", "v2")]);
    let actions = settle(&retagged, &mut agent, &mut draining, &options(0));
    assert_eq!(kinds(&actions), ["register node1:a:80"]);
    assert_eq!(agent.services["node1:a:80"].tags, ["v2"]);
    // Another host port: another registration.
    let moved = desired(&[web("a", 9090).env("SERVICE_TAGS", "v2")]);
    assert_eq!(
        kinds(&settle(&moved, &mut agent, &mut draining, &options(0))),
        ["register node1:a:80"]
    );
}

#[test]
fn docker_health_is_sent_when_it_changes() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    let check = "node1:a:80:docker-health";
    let starting = desired(&[web("a", 8080).health(Health::Starting, None)]);
    let actions = settle(&starting, &mut agent, &mut draining, &options(0));
    assert_eq!(
        kinds(&actions),
        ["register node1:a:80", &format!("ttl {check} warning")]
    );
    assert_eq!(agent.checks[check].output, "starting");

    let healthy = desired(&[web("a", 8080).health(Health::Healthy, Some("ok"))]);
    let actions = settle(&healthy, &mut agent, &mut draining, &options(0));
    assert_eq!(kinds(&actions), [format!("ttl {check} passing")]);
    // The same status with other output is sent too.
    let other = desired(&[web("a", 8080).health(Health::Healthy, Some("ok 2"))]);
    let actions = settle(&other, &mut agent, &mut draining, &options(0));
    assert_eq!(kinds(&actions), [format!("ttl {check} passing")]);
    assert_eq!(agent.checks[check].output, "ok 2");
}

#[test]
fn ttl_refresh_sends_every_status() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    let want = desired(&[web("a", 8080).health(Health::Healthy, None)]);
    settle(&want, &mut agent, &mut draining, &options(0));
    let refresh = Options {
        refresh_ttl: true,
        ..options(0)
    };
    let actions = reconcile(&want, &agent, &mut draining, &refresh);
    assert_eq!(
        actions,
        [Action::Ttl {
            check_id: "node1:a:80:docker-health".into(),
            status: "passing".into(),
            note: "healthy".into(),
        }]
    );
}

#[test]
fn a_registration_resends_ttl_statuses() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    let want = desired(&[web("a", 8080).health(Health::Healthy, None)]);
    settle(&want, &mut agent, &mut draining, &options(0));
    // A changed registration resets the TTL check on the agent: its status is sent again.
    let retagged = desired(&[web("a", 8080)
        .health(Health::Healthy, None)
        .env("SERVICE_TAGS", "x")]);
    let actions = settle(&retagged, &mut agent, &mut draining, &options(0));
    assert_eq!(
        kinds(&actions),
        [
            "register node1:a:80",
            "ttl node1:a:80:docker-health passing"
        ]
    );
}

#[test]
fn paused_containers_are_in_maintenance_until_unpaused() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    let paused = Container {
        state: RunState::Paused,
        ..web("a", 8080)
    };
    let actions = settle(&desired(&[paused]), &mut agent, &mut draining, &options(0));
    assert_eq!(
        actions[1],
        Action::Maintenance {
            id: "node1:a:80".into(),
            enable: true,
            reason: "container a is paused".into(),
        }
    );
    assert_eq!(actions.len(), 2);
    let actions = settle(
        &desired(&[web("a", 8080)]),
        &mut agent,
        &mut draining,
        &options(0),
    );
    assert_eq!(
        actions,
        [Action::Maintenance {
            id: "node1:a:80".into(),
            enable: false,
            reason: "container a is running".into(),
        }]
    );
}

#[test]
fn maintenance_with_another_reason_is_turned_off_and_on() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    settle(
        &desired(&[web("a", 8080)]),
        &mut agent,
        &mut draining,
        &options(0),
    );
    let id = "node1:a:80";
    apply(
        &[Action::Maintenance {
            id: id.into(),
            enable: true,
            reason: "operator".into(),
        }],
        &mut agent,
    );
    let paused = Container {
        state: RunState::Paused,
        ..web("a", 8080)
    };
    let actions = settle(&desired(&[paused]), &mut agent, &mut draining, &options(0));
    assert_eq!(
        kinds(&actions),
        [
            format!("maintenance {id} false"),
            format!("maintenance {id} true")
        ]
    );
    assert_eq!(
        agent.checks[&maintenance_check_id(id)].notes,
        "container a is paused"
    );
}

#[test]
fn gone_containers_are_deregistered_at_once_without_drain() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    settle(
        &desired(&[web("a", 8080), web("b", 8081)]),
        &mut agent,
        &mut draining,
        &options(0),
    );
    let actions = settle(
        &desired(&[web("b", 8081)]),
        &mut agent,
        &mut draining,
        &options(0),
    );
    assert_eq!(
        actions,
        [Action::Deregister {
            id: "node1:a:80".into(),
            reason: "container a is gone".into(),
        }]
    );
    assert!(agent.checks.values().all(|c| c.service_id != "node1:a:80"));
}

#[test]
fn services_of_others_are_never_touched() {
    let mut agent = Current::default();
    foreign(&mut agent, "plain", &[]);
    foreign(
        &mut agent,
        "other-node",
        &[
            ("managed-by", "consulctl-registrar"),
            ("registrar-node", "node2"),
        ],
    );
    foreign(
        &mut agent,
        "other-tool",
        &[("managed-by", "registrator"), ("registrar-node", "node1")],
    );
    agent.checks.insert(
        maintenance_check_id("plain"),
        HealthCheck {
            service_id: "plain".into(),
            notes: "someone's".into(),
            ..HealthCheck::default()
        },
    );
    let mut draining: Draining = [("other-node".to_string(), 0)].into();
    for opts in [options(0), draining_options(0), draining_options(u64::MAX)] {
        assert!(reconcile(&[], &agent, &mut draining, &opts).is_empty());
    }
    assert!(draining.is_empty(), "a foreign service is not drained");
}

#[test]
fn drain_puts_the_service_in_maintenance_then_deregisters_it() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    let id = "node1:a:80";
    settle(
        &desired(&[web("a", 8080)]),
        &mut agent,
        &mut draining,
        &draining_options(0),
    );

    let actions = settle(&[], &mut agent, &mut draining, &draining_options(1_000));
    assert_eq!(
        actions,
        [Action::Maintenance {
            id: id.into(),
            enable: true,
            reason: "draining: container gone, deregistering in 30s".into(),
        }]
    );
    assert_eq!(draining, [(id.to_string(), 31_000)].into());
    assert!(settle(&[], &mut agent, &mut draining, &draining_options(30_999)).is_empty());
    assert_eq!(draining.len(), 1);

    let actions = settle(&[], &mut agent, &mut draining, &draining_options(31_000));
    assert_eq!(kinds(&actions), [format!("deregister {id}")]);
    assert!(draining.is_empty());
    assert!(agent.services.is_empty() && agent.checks.is_empty());
}

#[test]
fn a_container_that_comes_back_ends_the_drain() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    let want = desired(&[web("a", 8080)]);
    settle(&want, &mut agent, &mut draining, &draining_options(0));
    settle(&[], &mut agent, &mut draining, &draining_options(0));
    assert_eq!(draining.len(), 1);

    let actions = settle(&want, &mut agent, &mut draining, &draining_options(10_000));
    assert_eq!(kinds(&actions), ["maintenance node1:a:80 false"]);
    assert!(draining.is_empty());
    // Gone again: a new drain, from now.
    settle(&[], &mut agent, &mut draining, &draining_options(20_000));
    assert_eq!(draining["node1:a:80"], 50_000);
}

#[test]
fn a_container_that_comes_back_paused_keeps_maintenance_with_its_reason() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    settle(
        &desired(&[web("a", 8080)]),
        &mut agent,
        &mut draining,
        &draining_options(0),
    );
    settle(&[], &mut agent, &mut draining, &draining_options(0));
    let paused = Container {
        state: RunState::Paused,
        ..web("a", 8080)
    };
    let actions = settle(
        &desired(&[paused]),
        &mut agent,
        &mut draining,
        &draining_options(1),
    );
    assert_eq!(
        kinds(&actions),
        [
            "maintenance node1:a:80 false",
            "maintenance node1:a:80 true"
        ]
    );
    assert!(draining.is_empty());
}

#[test]
fn drain_entries_of_services_no_longer_on_the_agent_are_dropped() {
    let agent = Current::default();
    let mut draining: Draining = [("node1:gone:80".to_string(), 5)].into();
    assert!(reconcile(&[], &agent, &mut draining, &draining_options(0)).is_empty());
    assert!(draining.is_empty());
}

#[test]
fn turning_drain_off_deregisters_what_was_draining() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    settle(
        &desired(&[web("a", 8080)]),
        &mut agent,
        &mut draining,
        &draining_options(0),
    );
    settle(&[], &mut agent, &mut draining, &draining_options(0));
    let actions = settle(&[], &mut agent, &mut draining, &options(1));
    assert_eq!(kinds(&actions), ["deregister node1:a:80"]);
    assert!(draining.is_empty());
}

#[test]
fn actions_come_in_order() {
    let mut agent = Current::default();
    let mut draining = Draining::new();
    let before = desired(&[
        web("a", 8080),
        web("b", 8081).health(Health::Healthy, None),
        web("c", 8082),
        web("d", 8083),
        web("e", 8084),
    ]);
    settle(&before, &mut agent, &mut draining, &options(0));
    let paused = |c: Container| Container {
        state: RunState::Paused,
        ..c
    };
    let after = desired(&[
        paused(web("e", 8084)),
        web("b", 8081).health(Health::Unhealthy, None),
        web("a", 8080).env("SERVICE_TAGS", "new"),
        paused(web("c", 8082)),
        web("f", 8085),
    ]);
    let actions = settle(&after, &mut agent, &mut draining, &options(0));
    assert_eq!(
        kinds(&actions),
        [
            "register node1:a:80",
            "register node1:f:80",
            "maintenance node1:c:80 true",
            "maintenance node1:e:80 true",
            "ttl node1:b:80:docker-health critical",
            "deregister node1:d:80",
        ]
    );
}

#[test]
fn the_first_of_two_desired_services_with_one_id_wins() {
    let mut want = desired(&[web("a", 8080)]);
    let mut second = want[0].clone();
    second.registration.port = Some(9999);
    want.push(second);
    let actions = reconcile(
        &want,
        &Current::default(),
        &mut Draining::new(),
        &options(0),
    );
    match actions.as_slice() {
        [Action::Register(r)] => assert_eq!(r.port, Some(8080)),
        other => panic!("{other:#?}"),
    }
}

#[test]
fn a_service_with_our_id_but_not_ours_is_replaced_by_ours() {
    let mut agent = Current::default();
    foreign(&mut agent, "node1:a:80", &[]);
    let want = desired(&[web("a", 8080)]);
    let actions = settle(&want, &mut agent, &mut Draining::new(), &options(0));
    assert_eq!(kinds(&actions), ["register node1:a:80"]);
}

#[test]
fn nothing_to_do_is_nothing() {
    let mut draining = Draining::new();
    assert!(reconcile(&[], &Current::default(), &mut draining, &options(0)).is_empty());
    let _: BTreeMap<String, u64> = draining;
}
