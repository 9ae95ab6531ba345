//! Day-to-day operations on a cluster with gossip encryption, TLS and ACLs on: `catalog`,
//! `service register|deregister` (on an agent, and external), `maint`, `reload`,
//! `force-leave`; each change read back from Consul's own API with the management token, each
//! `-o json` parsed, and no secret of the secrets file in any output.

use serde_json::Value;

use crate::harness::{wait_until, Lab, LabInit, Out};

const API: &str = "http://127.0.0.1:8500";

/// Every string of the secrets file long enough to be a secret (tokens, keys, PEM text).
fn secret_values(lab: &Lab) -> Vec<String> {
    fn walk(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::String(s) => out.extend(
                s.lines()
                    .map(str::trim)
                    .filter(|l| l.len() >= 20 && !l.starts_with("-----"))
                    .map(str::to_string),
            ),
            toml::Value::Table(t) => t.values().for_each(|v| walk(v, out)),
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let path = lab.inventory().with_extension("secrets.toml");
    let table: toml::Value = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .parse()
        .unwrap();
    let mut out = vec![];
    walk(&table, &mut out);
    out
}

struct Cx<'a> {
    lab: &'a Lab,
    token: String,
    /// (command, stdout and stderr) of every consulctl run.
    outputs: Vec<(String, String)>,
}

impl Cx<'_> {
    /// consulctl with the lab's inventory; the output is kept for the secrets check.
    fn run(&mut self, args: &[&str]) -> Out {
        let mut argv = args.to_vec();
        argv.extend(["-i", self.lab.inventory_str()]);
        let out = self.lab.consulctl(&argv);
        self.outputs
            .push((args.join(" "), format!("{}\n{}", out.stdout, out.stderr)));
        out
    }

    /// `run` with `-o json`, exit 0, the JSON document.
    #[track_caller]
    fn json(&mut self, args: &[&str]) -> Value {
        let mut argv = args.to_vec();
        argv.extend(["-o", "json"]);
        self.run(&argv).success().json()
    }

    /// GET through server1's agent with the management token.
    #[track_caller]
    fn get(&self, path: &str) -> Value {
        let (code, body) =
            self.lab
                .consul_api_token("server1", &format!("{API}{path}"), &self.token, &[]);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// (node, service ID) of a service's catalog instances.
    fn instances(&self, service: &str) -> Vec<(String, String)> {
        self.get(&format!("/v1/catalog/service/{service}"))
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["Node"].as_str().unwrap().to_string(),
                    e["ServiceID"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The check IDs Consul has for a node.
    fn node_checks(&self, node: &str) -> Vec<Value> {
        self.get(&format!("/v1/health/node/{node}"))
            .as_array()
            .unwrap()
            .clone()
    }

    fn member_status(&self, node: &str) -> Option<u64> {
        self.get("/v1/agent/members")
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Name"] == node)
            .map(|m| m["Status"].as_u64().unwrap())
    }
}

#[test]
fn day_two_operations_change_what_consul_reports_with_acl_and_tls_on() {
    let lab = Lab::new("day2")
        .servers(1)
        .clients(2)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .parse()
        .unwrap();
    doc["cluster"]["encrypt"] = toml_edit::value("auto");
    doc["cluster"]["tls"] = toml_edit::value("auto");
    doc["cluster"]["acl"] = toml_edit::value(true);
    let mut svc = toml_edit::Table::new();
    svc["name"] = toml_edit::value("web");
    svc["port"] = toml_edit::value(8080);
    svc["on"] = toml_edit::value("client1");
    let mut services = toml_edit::ArrayOfTables::new();
    services.push(svc);
    doc["services"] = toml_edit::Item::ArrayOfTables(services);
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();
    let apply = lab.consulctl(&["apply", "-i", inv]).success();
    let secrets = secret_values(&lab);
    let token = toml::from_str::<toml::Table>(
        &std::fs::read_to_string(lab.inventory().with_extension("secrets.toml")).unwrap(),
    )
    .unwrap()["acl_management_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cx = Cx {
        lab: &lab,
        token,
        outputs: vec![(
            "apply".into(),
            format!("{}\n{}", apply.stdout, apply.stderr),
        )],
    };

    // --- service register on an agent; it survives the agent's restart ---------------------
    let reg = cx.json(&[
        "service",
        "register",
        "api",
        "--on",
        "client1",
        "--port",
        "9000",
        "--tag",
        "v1",
        "--meta",
        "team=ops",
        "--check-tcp",
        "127.0.0.1:22",
        "--check-interval",
        "2s",
    ]);
    assert_eq!(
        (reg["node"].as_str(), reg["external"].as_bool()),
        (Some("client1"), Some(false)),
        "{reg:#}"
    );
    assert_eq!(cx.instances("api"), [("client1".into(), "api".into())]);
    let catalog_api = cx.get("/v1/catalog/service/api");
    assert_eq!(catalog_api[0]["ServiceMeta"]["team"], "ops");
    assert_eq!(catalog_api[0]["ServiceMeta"]["managed-by"], "consulctl");
    cx.run(&["restart", "--limit", "client1"]).success();
    assert!(
        wait_until(30, || cx.instances("api")
            == [("client1".to_string(), "api".to_string())]),
        "api is gone after client1's agent restarted: {:?}",
        cx.instances("api")
    );

    // A service the inventory declares is refused, pointing to the inventory.
    let refused = cx
        .run(&[
            "service", "register", "web", "--on", "client2", "--port", "1",
        ])
        .code(2);
    assert!(
        refused.stderr.contains("declared in the inventory"),
        "{refused}"
    );
    assert_eq!(cx.instances("web"), [("client1".into(), "web".into())]);

    // --- catalog: services with counts, one service's instances, nodes; filters -------------
    assert!(wait_until(30, || {
        let s = cx.json(&["catalog", "service", "api", "--health", "passing"]);
        s["instances"].as_array().unwrap().len() == 1
    }));
    let one = cx.json(&["catalog", "service", "api"]);
    let inst = &one["instances"][0];
    assert_eq!(
        (
            inst["node"].as_str(),
            inst["port"].as_u64(),
            inst["health"].as_str()
        ),
        (Some("client1"), Some(9000), Some("passing")),
        "{one:#}"
    );
    assert_eq!(inst["address"], lab.host_ip("client1"), "{one:#}");
    let services = cx.json(&["catalog", "services"]);
    let by_name = |v: &Value, name: &str| {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
    };
    let api = by_name(&services, "api").unwrap_or_else(|| panic!("{services:#}"));
    assert_eq!(
        (api["instances"].as_u64(), api["passing"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(api["tags"], serde_json::json!(["v1"]));
    assert_eq!(by_name(&services, "consul").unwrap()["instances"], 1);
    let tagged = cx.json(&["catalog", "services", "--tag", "v1"]);
    let names: Vec<&str> = tagged["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api"]);
    let text = cx.run(&["catalog", "service", "api"]).success();
    assert!(text.stdout.contains("1 instance of api in "), "{text}");
    let nodes = cx.json(&["catalog", "nodes"]);
    let mut names: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["client1", "client2", "server1"]);

    // --- an external service with a check: the warning, and doctor's finding ---------------
    let ext = cx
        .run(&[
            "service",
            "register",
            "redis",
            "--external",
            "redis-master",
            "--address",
            "10.99.0.5",
            "--port",
            "6379",
            "--tag",
            "db",
            "--check-tcp",
            "10.99.0.5:6379",
            "-o",
            "json",
        ])
        .success();
    assert!(
        ext.stderr
            .contains("warning: Consul runs no checks for services of a node without an agent"),
        "{ext}"
    );
    let ext_json = ext.json();
    assert_eq!(ext_json["external"], true);
    let node = cx.get("/v1/catalog/node/redis-master");
    assert_eq!(node["Node"]["Meta"]["external-node"], "true", "{node:#}");
    assert_eq!(node["Services"]["redis"]["Port"], 6379, "{node:#}");
    let checks = cx.node_checks("redis-master");
    assert_eq!(
        checks[0]["Status"], "passing",
        "never run: still as registered"
    );
    let ext_nodes = cx.json(&["catalog", "nodes"]);
    let redis_node = ext_nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "redis-master")
        .cloned()
        .unwrap();
    assert_eq!(redis_node["external"], true);
    let doctor = cx.run(&["doctor", "-o", "json"]).code(1);
    let findings = doctor.json()["findings"].clone();
    let finding = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "external-check-never-run")
        .unwrap_or_else(|| panic!("{findings:#}"));
    assert_eq!(
        finding["hosts"],
        serde_json::json!(["redis-master"]),
        "{finding:#}"
    );

    // --- maintenance: node and service instance, on and off ---------------------------------
    let has = |cx: &Cx, node: &str, id: &str| {
        cx.node_checks(node)
            .iter()
            .find(|c| c["CheckID"] == id)
            .cloned()
    };
    let on = cx.json(&["maint", "on", "--on", "client2", "--reason", "disk swap"]);
    assert_eq!(on["hosts"][0]["ok"], true, "{on:#}");
    let m = has(&cx, "client2", "_node_maintenance").expect("node maintenance check");
    assert!(m["Notes"].as_str().unwrap().contains("disk swap"), "{m:#}");
    cx.json(&["maint", "on", "--on", "client1", "--service", "api"]);
    assert!(has(&cx, "client1", "_service_maintenance:api").is_some());
    let critical = cx.json(&["catalog", "service", "api", "--health", "critical"]);
    assert_eq!(
        critical["instances"].as_array().unwrap().len(),
        1,
        "{critical:#}"
    );
    cx.json(&["maint", "off", "--on", "client1,client2"]);
    assert!(has(&cx, "client2", "_node_maintenance").is_none());
    cx.json(&["maint", "off", "--on", "client1", "--service", "api"]);
    assert!(has(&cx, "client1", "_service_maintenance:api").is_none());

    // --- reload: a check dropped into client2's config dir appears after the reload --------
    lab.exec(
        "client2",
        &[
            "sh",
            "-c",
            "printf 'check {\\n  id = \"reload-probe\"\\n  name = \"reload probe\"\\n  ttl = \"10m\"\\n}\\n' \
             > /etc/consul.d/reload-probe.hcl && chmod 644 /etc/consul.d/reload-probe.hcl",
        ],
    )
    .success();
    assert!(has(&cx, "client2", "reload-probe").is_none());
    let reload = cx.json(&["reload", "--limit", "client2"]);
    assert_eq!(reload["hosts"][0]["ok"], true, "{reload:#}");
    assert!(
        wait_until(20, || has(&cx, "client2", "reload-probe").is_some()),
        "the reloaded check is not in Consul"
    );
    lab.exec("client2", &["rm", "-f", "/etc/consul.d/reload-probe.hcl"])
        .success();
    cx.json(&["reload", "--limit", "client2"]);

    // --- deregister: from the agent, and the external node with its last service ------------
    let dereg = cx.json(&["service", "deregister", "api", "--on", "client1"]);
    assert_eq!(dereg["node"], "client1");
    assert!(cx.instances("api").is_empty());
    let dereg = cx.json(&[
        "service",
        "deregister",
        "redis",
        "--external",
        "redis-master",
    ]);
    assert_eq!(dereg["node_removed"], true, "{dereg:#}");
    let (code, body) = lab.consul_api_token(
        "server1",
        &format!("{API}/v1/catalog/node/redis-master"),
        &cx.token,
        &[],
    );
    assert!(code == 200 && body.trim() == "null", "{code} {body}");

    // --- force-leave: refused while alive; a stopped node is pruned -------------------------
    let alive = cx.run(&["force-leave", "client2"]).code(2);
    assert!(alive.stderr.contains("client2 is alive"), "{alive}");
    assert_eq!(cx.member_status("client2"), Some(1));
    // SIGKILL: a stopped agent would leave gracefully (`left`); a killed one is `failed`.
    lab.docker(&["kill", &lab.container("client2")]).success();
    assert!(
        wait_until(60, || cx.member_status("client2") == Some(4)),
        "client2 not failed: {:?}",
        cx.member_status("client2")
    );
    let left = cx.json(&["force-leave", "client2", "--prune"]);
    assert_eq!(
        (left["was"].as_str(), left["now"].as_str()),
        (Some("failed"), Some("gone"))
    );
    assert_eq!(cx.member_status("client2"), None);

    // --- no secret in any output ------------------------------------------------------------
    assert!(secrets.len() >= 3, "{} secrets", secrets.len());
    for (what, out) in &cx.outputs {
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "`{what}` printed a secret");
        }
    }
}
