//! `lab up --docker-hosts` and app containers: a Docker host reaches the machine's Docker
//! socket, app containers answer HTTP on the lab network, `lab down` removes them all.

use crate::harness::{docker, labelled_containers, labelled_networks, wait_until, Lab, LabInit};

/// `docker inspect --format FORMAT OBJECT`, trimmed.
#[track_caller]
fn inspect(object: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, object])
        .success()
        .out()
        .to_string()
}

#[test]
fn docker_host_sees_the_socket_and_apps_answer_on_the_lab_network() {
    let mut lab = Lab::new("dockhost")
        .servers(1)
        .clients(1)
        .init(LabInit::Mixed)
        .docker_hosts(&["client1"])
        .up();
    let name = lab.name().to_owned();

    // The inventory tags the Docker host `docker`, only it.
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let inv: toml::Value = toml::from_str(&text).unwrap();
    let tags = |host: &str| -> Vec<String> {
        inv["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"].as_str() == Some(host))
            .unwrap()["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(tags("client1"), ["lab", "docker"]);
    assert_eq!(tags("server1"), ["lab"]);

    // Every lab host is ignored by registrars; only the Docker host has the socket.
    for host in ["server1", "client1"] {
        let c = lab.container(host);
        assert_eq!(
            inspect(&c, "{{index .Config.Labels \"SERVICE_IGNORE\"}}"),
            "1"
        );
    }
    let version = lab
        .exec(
            "client1",
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--unix-socket",
                "/var/run/docker.sock",
                "http://localhost/version",
            ],
        )
        .success();
    let v: serde_json::Value =
        serde_json::from_str(version.out()).unwrap_or_else(|e| panic!("not JSON ({e}): {version}"));
    assert!(
        v["ApiVersion"].as_str().is_some_and(|s| !s.is_empty()),
        "{v:#}"
    );
    lab.exec("server1", &["test", "-e", "/var/run/docker.sock"])
        .failure();

    // Two app containers: one with registrator-style env/labels, a health check and published
    // ports; one at a fixed address.
    let web1 = lab
        .app("web1")
        .env("SERVICE_NAME", "simple")
        .label("SERVICE_TAGS", "x,y")
        .health_cmd("wget -q -O /dev/null http://127.0.0.1:8080/health")
        .publish_all()
        .run();
    let server1 = lab.host("server1").address.clone();
    let fixed = format!("{}.100", server1.rsplit_once('.').unwrap().0);
    let web2 = lab.app("web2").ip(&fixed).run();
    assert_eq!(web2.ip(), fixed);
    assert_eq!(web1.name(), format!("consulctl-{name}-app-web1"));
    assert_eq!(lab.apps(), [web1.name(), web2.name()]);
    assert_eq!(
        inspect(web1.id(), "{{index .Config.Labels \"consulctl.lab\"}}"),
        name
    );
    assert_eq!(
        inspect(web1.id(), "{{index .Config.Labels \"consulctl.lab.app\"}}"),
        "web1"
    );
    assert!(web1.host_port("8080").is_some(), "8080 published with -P");
    assert!(web2.host_port("8080").is_none());
    assert!(
        wait_until(30, || inspect(web1.id(), "{{.State.Health.Status}}")
            == "healthy"),
        "web1 never became healthy: {}",
        inspect(web1.id(), "{{json .State.Health}}")
    );

    // The registrar's view through the socket: the app's env and labels.
    let path = format!("http://localhost/containers/{}/json", web1.id());
    let json = lab
        .exec(
            "client1",
            &[
                "curl",
                "-sS",
                "--unix-socket",
                "/var/run/docker.sock",
                &path,
            ],
        )
        .success();
    let c: serde_json::Value = serde_json::from_str(json.out()).unwrap();
    assert!(
        c["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "SERVICE_NAME=simple"),
        "{c:#}"
    );
    assert_eq!(c["Config"]["Labels"]["SERVICE_TAGS"], "x,y");

    // The apps answer HTTP on their lab address from both lab hosts.
    let get = |host: &str, ip: &str, path: &str| {
        lab.exec(
            host,
            &[
                "curl",
                "-sS",
                "--max-time",
                "3",
                &format!("http://{ip}:8080{path}"),
            ],
        )
    };
    for host in ["server1", "client1"] {
        for app in [&web1, &web2] {
            assert_eq!(get(host, app.ip(), "/health").success().out(), "ok");
            assert!(get(host, app.ip(), "/")
                .success()
                .out()
                .contains("consulctl lab app"));
        }
    }
    assert_eq!(
        get("client1", web1.ip(), "/hostname").success().out(),
        &web1.id()[..12]
    );

    // Stop (at once: the app exits on SIGTERM), start, pause, unpause.
    let t = std::time::Instant::now();
    web1.stop();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "docker stop took {:?}",
        t.elapsed()
    );
    assert_eq!(web1.status().as_deref(), Some("exited"));
    web1.start();
    assert!(wait_until(10, || get("client1", web1.ip(), "/health").ok()));
    web2.pause();
    assert_eq!(web2.status().as_deref(), Some("paused"));
    get("client1", web2.ip(), "/health").failure();
    web2.unpause();
    assert_eq!(get("client1", web2.ip(), "/health").success().out(), "ok");
    web1.kill();
    assert_eq!(web1.status().as_deref(), Some("exited"));
    web1.remove();
    assert_eq!(web1.status(), None);
    assert_eq!(lab.apps(), [web2.name()]);

    // `lab down` removes the hosts, the (paused) app container and the network.
    web2.pause();
    lab.down().success();
    assert!(labelled_containers(&name).is_empty(), "containers left");
    assert!(labelled_networks(&name).is_empty(), "networks left");
    assert_eq!(web2.status(), None);
}
