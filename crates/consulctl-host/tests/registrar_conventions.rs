//! registrator's conventions: which services a container gives (state, ports, address modes,
//! names, IDs, tags, meta, hash). Checks are in registrar_checks.rs.

mod common;

use common::{container, fixture, internal, published, tcp, udp, With};
use consulctl_host::registrar::container::{Container, RunState};
use consulctl_host::registrar::conventions::{
    image_base_name, registration_hash, services_for, DesiredService, Problem, Settings,
    MANAGED_BY, META_CONTAINER, META_CONTAINER_ID, META_HASH, META_MANAGED_BY, META_NODE,
};

fn ids(services: &[DesiredService]) -> Vec<&str> {
    services
        .iter()
        .map(|d| d.registration.id.as_str())
        .collect()
}

fn names(services: &[DesiredService]) -> Vec<&str> {
    services
        .iter()
        .map(|d| d.registration.name.as_str())
        .collect()
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

/// The services of a container that must have no problems.
fn clean(c: &Container, s: &Settings) -> Vec<DesiredService> {
    let (services, problems) = services_for(c, s);
    assert!(problems.is_empty(), "{problems:#?}");
    services
}

/// Image `simple`, ports 80 and 443 published on 8080 and 8443.
fn simple() -> Container {
    Container {
        image: "simple".into(),
        ..container()
    }
    .publish(tcp(80), 8080)
    .publish(tcp(443), 8443)
}

#[test]
fn published_ports_of_a_real_container() {
    let services = clean(&fixture("published"), &published());
    assert_eq!(
        ids(&services),
        ["node1:regfix-published:80", "node1:regfix-published:8443"]
    );
    assert_eq!(names(&services), ["regfix-web-80", "regfix-web-8443"]);
    let r = &services[0].registration;
    assert_eq!((r.address.as_str(), r.port), ("10.0.0.5", Some(32769)));
    assert_eq!(services[1].registration.port, Some(32768));
    assert!(r.tags.is_empty() && r.checks.is_empty() && r.check.is_none());
    assert_eq!(services[0].maintenance, None);
    assert!(services[0].ttl.is_empty());
    let meta: Vec<(&str, &str)> = r
        .meta
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        meta,
        [
            (META_CONTAINER, "regfix-published"),
            (META_CONTAINER_ID, "7ba596aa0be8"),
            (META_MANAGED_BY, MANAGED_BY),
            (META_HASH, registration_hash(r).as_str()),
            (META_NODE, "node1"),
        ]
    );
}

#[test]
fn settings_of_a_real_container() {
    let (services, problems) = services_for(&fixture("settings"), &published());
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        ids(&services),
        [
            "node1:regfix-settings:53:udp",
            "node1:regfix-settings:80",
            "node1:regfix-settings:8443"
        ]
    );
    // SERVICE_80_NAME is used as is; SERVICE_NAME gets the port for the others.
    assert_eq!(names(&services), ["from-env-53", "web", "from-env-8443"]);
    for d in &services {
        assert_eq!(d.registration.tags, ["label", "wins"], "the label wins");
        assert_eq!(d.registration.meta["region"], "eu-west");
    }
    assert_eq!(services[0].registration.port, Some(5353));
    let tcp_check = &services[2].registration.checks;
    assert_eq!(tcp_check.len(), 1);
    assert_eq!(tcp_check[0].tcp, "10.0.0.5:9443");
}

#[test]
fn a_paused_container_is_in_maintenance() {
    let services = clean(&fixture("paused"), &published());
    assert_eq!(services.len(), 2);
    for d in &services {
        assert_eq!(
            d.maintenance.as_deref(),
            Some("container regfix-paused is paused")
        );
    }
}

#[test]
fn containers_that_do_not_run_give_nothing() {
    for name in ["exited", "created"] {
        assert_eq!(services_for(&fixture(name), &published()), (vec![], vec![]));
    }
    for state in ["restarting", "dead", "removing"] {
        let c = Container {
            state: RunState::Other(state.into()),
            ..simple().env("SERVICE_CHECK_FOO", "1")
        };
        assert_eq!(services_for(&c, &published()), (vec![], vec![]));
    }
}

#[test]
fn service_ignore_gives_nothing_not_even_problems() {
    let c = simple()
        .env("SERVICE_IGNORE", "true")
        .env("SERVICE_CHECK_FOO", "x");
    assert_eq!(services_for(&c, &published()), (vec![], vec![]));
    let c = simple().label("SERVICE_IGNORE", "yes");
    assert_eq!(services_for(&c, &published()).0, vec![]);
    // An empty value is no value.
    let c = simple().env("SERVICE_IGNORE", "");
    assert_eq!(clean(&c, &published()).len(), 2);
}

#[test]
fn a_port_can_be_ignored() {
    let c = simple().env("SERVICE_443_IGNORE", "1");
    let services = clean(&c, &published());
    assert_eq!(ids(&services), ["node1:web:80"]);
    assert_eq!(names(&services), ["simple"], "one port left: no suffix");
}

#[test]
fn several_ports_get_the_port_in_their_name_unless_named_per_port() {
    let services = clean(&simple(), &published());
    assert_eq!(names(&services), ["simple-443", "simple-80"]);
    assert_eq!(ids(&services), ["node1:web:443", "node1:web:80"]);
    let c = simple().env("SERVICE_80_NAME", "front");
    assert_eq!(names(&clean(&c, &published())), ["simple-443", "front"]);
    let c = simple().env("SERVICE_NAME", "site");
    assert_eq!(names(&clean(&c, &published())), ["site-443", "site-80"]);
    let one = Container {
        image: "simple".into(),
        ..container()
    }
    .publish(tcp(80), 8080);
    assert_eq!(names(&clean(&one, &published())), ["simple"]);
}

#[test]
fn labels_win_over_env() {
    let c = simple()
        .env("SERVICE_NAME", "from-env")
        .label("SERVICE_NAME", "from-label")
        .env("SERVICE_80_NAME", "env80");
    assert_eq!(names(&clean(&c, &published())), ["from-label-443", "env80"]);
}

#[test]
fn setting_words_ignore_case() {
    let c = simple().env("SERVICE_80_name", "lower");
    assert_eq!(names(&clean(&c, &published())), ["simple-443", "lower"]);
}

#[test]
fn image_base_names() {
    for (image, base) in [
        ("registry:5000/team/app:1.2", Some("app")),
        ("app", Some("app")),
        ("app:latest", Some("app")),
        ("library/redis", Some("redis")),
        ("ghcr.io/org/tool@sha256:0123abcd", Some("tool")),
        ("host:5000/a/b/c:v1@sha256:beef", Some("c")),
        ("localhost:5000/x", Some("x")),
        ("sha256:0123456789abcdef", None),
        ("", None),
        ("team/", None),
    ] {
        assert_eq!(image_base_name(image).as_deref(), base, "{image}");
    }
}

#[test]
fn a_container_started_from_an_image_id_is_named_after_itself() {
    let c = Container {
        image: "sha256:0123456789abcdef".into(),
        ..container()
    }
    .publish(tcp(80), 8080);
    assert_eq!(names(&clean(&c, &published())), ["web"]);
}

#[test]
fn service_ids() {
    let c = simple().env("SERVICE_ID", "site");
    assert_eq!(ids(&clean(&c, &published())), ["site-443", "site-80"]);
    let c = simple()
        .env("SERVICE_ID", "site")
        .env("SERVICE_80_ID", "front");
    assert_eq!(ids(&clean(&c, &published())), ["front", "site-443"]);
    let one = container().publish(tcp(80), 8080).env("SERVICE_ID", "only");
    assert_eq!(ids(&clean(&one, &published())), ["only"]);
    // UDP and SCTP ports: `:udp` on the default ID, `-udp` on SERVICE_ID's.
    let dns = container().publish(tcp(53), 53).publish(udp(53), 53);
    assert_eq!(
        ids(&clean(&dns, &published())),
        ["node1:web:53", "node1:web:53:udp"]
    );
    let dns = dns.env("SERVICE_ID", "dns");
    assert_eq!(ids(&clean(&dns, &published())), ["dns-53", "dns-53-udp"]);
}

#[test]
fn a_service_id_used_twice_is_registered_once() {
    let c = simple()
        .env("SERVICE_80_ID", "same")
        .env("SERVICE_443_ID", "same");
    let (services, problems) = services_for(&c, &published());
    assert_eq!(ids(&services), ["same"]);
    assert_eq!(
        services[0].registration.port,
        Some(8080),
        "port 80 comes first"
    );
    assert_eq!(keys(&problems), ["SERVICE_443_ID"]);
    assert!(problems[0].message.contains("443/tcp is not registered"));
}

#[test]
fn tags_are_split_trimmed_and_deduplicated() {
    let c = simple()
        .env("SERVICE_TAGS", " b, a ,,b, c,")
        .env("SERVICE_80_TAGS", "front");
    let services = clean(&c, &published());
    assert_eq!(services[0].registration.tags, ["b", "a", "c"]);
    assert_eq!(services[1].registration.tags, ["front"]);
}

#[test]
fn other_settings_become_meta_per_port_winning() {
    let c = simple()
        .env("SERVICE_REGION", "eu")
        .env("SERVICE_TEAM_NAME", "core")
        .env("SERVICE_80_REGION", "us")
        .env("SERVICE_443_PROTOCOL", "h2");
    let services = clean(&c, &published());
    let meta = |i: usize, k: &str| services[i].registration.meta.get(k).cloned();
    assert_eq!(meta(0, "region").as_deref(), Some("eu"));
    assert_eq!(meta(0, "protocol").as_deref(), Some("h2"));
    assert_eq!(meta(0, "team_name").as_deref(), Some("core"));
    assert_eq!(meta(1, "region").as_deref(), Some("us"));
    assert_eq!(meta(1, "protocol"), None);
    assert_eq!(
        meta(1, "name"),
        None,
        "names, IDs, tags, checks are not meta"
    );
}

#[test]
fn meta_consul_refuses_is_left_out_with_a_problem() {
    let c = container()
        .publish(tcp(80), 8080)
        .env("SERVICE_BAD.KEY", "x")
        .env("SERVICE_CONSUL-VERSION", "x")
        .env("SERVICE_LONG", &"v".repeat(513))
        .env("SERVICE_OK", &"v".repeat(512))
        .env("SERVICE_CONTAINER", "mine")
        .env(&format!("SERVICE_{}", "K".repeat(129)), "x")
        .env(&format!("SERVICE_{}", "K".repeat(128)), "x");
    let (services, problems) = services_for(&c, &published());
    let meta = &services[0].registration.meta;
    assert_eq!(meta["ok"].len(), 512);
    assert!(meta.contains_key(&"k".repeat(128)));
    assert_eq!(meta[META_CONTAINER], "web", "the registrar's own keys win");
    for gone in ["bad.key", "consul-version", "long"] {
        assert!(!meta.contains_key(gone), "{gone}");
    }
    let mut bad = keys(&problems);
    bad.sort();
    let long_key = format!("SERVICE_{}", "K".repeat(129));
    assert_eq!(
        bad,
        [
            "SERVICE_BAD.KEY",
            "SERVICE_CONSUL-VERSION",
            "SERVICE_CONTAINER",
            long_key.as_str(),
            "SERVICE_LONG",
        ]
    );
    assert!(problems.iter().any(|p| p.message.contains("at most 512")));
}

#[test]
fn meta_beyond_consuls_64_keys_is_left_out() {
    let mut c = container().publish(tcp(80), 8080);
    for i in 0..70 {
        c = c.env(&format!("SERVICE_M{i:02}"), "x");
    }
    let (services, problems) = services_for(&c, &published());
    assert_eq!(services[0].registration.meta.len(), 64);
    assert_eq!(problems.len(), 70 - 59);
    assert_eq!(problems[0].key, "SERVICE_M59");
}

#[test]
fn unpublished_ports_are_not_registered_in_published_mode() {
    let c = container()
        .publish(tcp(80), 8080)
        .expose(tcp(9000))
        .env("SERVICE_9000_NAME", "admin");
    let services = clean(&c, &published());
    assert_eq!(ids(&services), ["node1:web:80"]);
    assert_eq!(names(&services), ["app"]);
}

#[test]
fn a_port_published_twice_is_registered_once() {
    let c = container().publish(tcp(80), 8081).publish(tcp(80), 8080);
    let (services, problems) = services_for(&c, &published());
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].registration.port, Some(8080));
    assert_eq!(keys(&problems), ["ports"]);
    assert!(problems[0].message.contains("8080 is registered, not 8081"));
}

#[test]
fn settings_of_a_port_the_container_lacks_are_problems() {
    let c = container()
        .publish(tcp(80), 8080)
        .env("SERVICE_8080_NAME", "oops");
    let (services, problems) = services_for(&c, &published());
    assert_eq!(names(&services), ["app"]);
    assert_eq!(keys(&problems), ["SERVICE_8080_NAME"]);
    assert!(problems[0].message.contains("no port 8080"));
    let c = container()
        .publish(tcp(80), 8080)
        .env("SERVICE_99999_NAME", "x");
    assert_eq!(
        keys(&services_for(&c, &published()).1),
        ["SERVICE_99999_NAME"]
    );
}

#[test]
fn a_container_without_ports_gives_nothing() {
    assert_eq!(services_for(&container(), &published()), (vec![], vec![]));
    assert_eq!(
        services_for(&container(), &internal(None)),
        (vec![], vec![])
    );
}

#[test]
fn explicit_mode_registers_named_ports_only() {
    let s = Settings {
        explicit: true,
        ..published()
    };
    assert_eq!(services_for(&simple(), &s), (vec![], vec![]));
    let c = simple().env("SERVICE_80_NAME", "front");
    let services = clean(&c, &s);
    assert_eq!(names(&services), ["front"]);
    let c = simple().env("SERVICE_NAME", "site");
    assert_eq!(names(&clean(&c, &s)), ["site-443", "site-80"]);
}

#[test]
fn host_networking_registers_only_named_ports() {
    let c = fixture("hostnet");
    // SERVICE_NAME and two exposed ports: which is the service is unknown.
    let (services, problems) = services_for(&c, &published());
    assert!(services.is_empty());
    assert_eq!(keys(&problems), ["SERVICE_NAME"]);
    assert!(problems[0].message.contains("80/tcp, 8443/tcp"));
    assert!(problems[0].message.contains("#38"));

    let c = c.env("SERVICE_8443_NAME", "secure");
    let services = clean(&c, &published());
    assert_eq!(ids(&services), ["node1:regfix-hostnet:8443"]);
    assert_eq!(names(&services), ["secure"]);
    let r = &services[0].registration;
    assert_eq!((r.address.as_str(), r.port), ("10.0.0.5", Some(8443)));
}

#[test]
fn host_networking_in_explicit_mode_without_names_is_quiet() {
    let s = Settings {
        explicit: true,
        ..published()
    };
    let c = Container {
        network_mode: "host".into(),
        ..container()
    }
    .expose(tcp(80))
    .expose(tcp(81));
    assert_eq!(services_for(&c, &s), (vec![], vec![]));
    // Named, it is registered.
    let c = c.env("SERVICE_81_NAME", "admin");
    assert_eq!(names(&clean(&c, &s)), ["admin"]);
}

#[test]
fn host_networking_with_one_exposed_port_and_service_name() {
    let c = Container {
        network_mode: "host".into(),
        networks: [("host".to_string(), String::new())].into(),
        ..container()
    }
    .expose(tcp(9100));
    let (services, problems) = services_for(&c, &published());
    assert!(services.is_empty());
    assert_eq!(keys(&problems), ["network"]);
    let c = c.env("SERVICE_NAME", "exporter");
    let services = clean(&c, &published());
    assert_eq!(names(&services), ["exporter"]);
    assert_eq!(services[0].registration.port, Some(9100));
    // No exposed port: nothing to say.
    let bare = Container {
        exposed: vec![],
        ..c.clone()
    };
    assert_eq!(services_for(&bare, &published()), (vec![], vec![]));
    // Internal mode has no address for it.
    let (services, problems) = services_for(&c, &internal(None));
    assert!(services.is_empty());
    assert_eq!(keys(&problems), ["network"]);
}

#[test]
fn internal_mode_uses_the_only_network() {
    let services = clean(&fixture("usernet"), &internal(None));
    assert_eq!(
        ids(&services),
        ["node1:regfix-usernet:80", "node1:regfix-usernet:8443"]
    );
    for (d, port) in services.iter().zip([80, 8443]) {
        assert_eq!(d.registration.address, "172.18.0.2");
        assert_eq!(d.registration.port, Some(port));
    }
    // Published ports register at the container port.
    let services = clean(&fixture("published"), &internal(None));
    assert_eq!(services[0].registration.address, "172.17.0.2");
    assert_eq!(services[0].registration.port, Some(80));
}

#[test]
fn internal_mode_with_several_networks_needs_one_named() {
    let c = fixture("twonets");
    let (services, problems) = services_for(&c, &internal(None));
    assert!(services.is_empty());
    assert_eq!(keys(&problems), ["network"]);
    assert!(problems[0]
        .message
        .contains("bridge 172.17.0.7, regfix-net 172.18.0.3"));
    let services = clean(&c, &internal(Some("regfix-net")));
    assert_eq!(services[0].registration.address, "172.18.0.3");
    let (services, problems) = services_for(&c, &internal(Some("backend")));
    assert!(services.is_empty());
    assert_eq!(keys(&problems), ["network"]);
    assert!(problems[0].message.contains("network backend"));
}

#[test]
fn internal_mode_without_an_address() {
    let c = Container {
        network_mode: "none".into(),
        networks: [("none".to_string(), String::new())].into(),
        ..container()
    }
    .expose(tcp(80));
    let (services, problems) = services_for(&c, &internal(None));
    assert!(services.is_empty());
    assert_eq!(keys(&problems), ["network"]);
    assert!(problems[0].message.contains("network mode none"));
}

#[test]
fn the_hash_is_stable_and_follows_changes() {
    let c = simple().env("SERVICE_TAGS", "a,b");
    let first = clean(&c, &published());
    let again = clean(&c.clone(), &published());
    assert_eq!(first, again);
    let hash = &first[0].registration.meta[META_HASH];
    assert_eq!(hash.len(), 16);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(*hash, registration_hash(&first[0].registration));
    let mut without = first[0].registration.clone();
    without.meta.remove(META_HASH);
    assert_eq!(
        *hash,
        registration_hash(&without),
        "the hash key is left out"
    );

    let retagged = clean(&simple().env("SERVICE_TAGS", "a,c"), &published());
    assert_ne!(retagged[0].registration.meta[META_HASH], *hash);
    let checked = clean(
        &simple()
            .env("SERVICE_TAGS", "a,b")
            .env("SERVICE_CHECK_TCP", "1"),
        &published(),
    );
    assert_ne!(checked[0].registration.meta[META_HASH], *hash);
    let other_node = Settings {
        node: "node2".into(),
        ..published()
    };
    assert_ne!(
        clean(&c, &other_node)[0].registration.meta[META_HASH],
        *hash
    );
}

#[test]
fn problems_name_the_container_and_key() {
    let c = simple().env("SERVICE_80_CHECK_FOO", "x");
    let (_, problems) = services_for(&c, &published());
    assert_eq!(problems.len(), 1);
    let line = problems[0].to_string();
    assert!(
        line.starts_with("container web: SERVICE_80_CHECK_FOO: unknown check type FOO"),
        "{line}"
    );
}

#[test]
fn odd_settings_never_panic() {
    let values = [
        "",
        " ",
        ",",
        "é",
        "0",
        "-1",
        "99999999999999999999",
        "1.5.3",
        "$SERVICE_IP",
        "\u{0}",
        "a,b,,c",
        "s",
        "ms",
        "/",
        "::1",
    ];
    let words = [
        "NAME",
        "ID",
        "TAGS",
        "IGNORE",
        "CHECK_HTTP",
        "CHECK_HTTPS",
        "CHECK_TCP",
        "CHECK_SCRIPT",
        "CHECK_TTL",
        "CHECK_INTERVAL",
        "CHECK_TIMEOUT",
        "CHECK_INITIAL_STATUS",
        "CHECK_DEREGISTER_AFTER",
        "CHECK_",
        "CHECK",
        "",
        "_",
        "é",
        "80",
        "80_",
    ];
    for v in values {
        for w in words {
            for prefix in ["SERVICE_", "SERVICE_80_", "SERVICE_0_", "SERVICE_65536_"] {
                let key = format!("{prefix}{w}");
                let c = simple().env(&key, v).label(&key, v);
                for s in [published(), internal(None), internal(Some(v))] {
                    let _ = services_for(&c, &s);
                }
            }
        }
    }
}
