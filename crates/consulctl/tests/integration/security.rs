//! Security (issue 6): gossip encryption, TLS and ACLs all made by consulctl, key rotation,
//! certificate renewal, a client with a wrong gossip key, strict host keys, least privilege on
//! hosts, and no secret in any output, debug log or process list. Checked through Consul's own
//! API inside the containers.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{wait_until, Lab, LabInit, Out};

/// The lab's local state dir (`<inventory dir>/.consulctl/<lab>`).
fn state_dir(lab: &Lab) -> PathBuf {
    lab.inventory()
        .parent()
        .unwrap()
        .join(".consulctl")
        .join(lab.name())
}

/// Every file under the lab's debug log dir, concatenated.
fn debug_logs(lab: &Lab) -> String {
    let mut logs = String::new();
    for e in std::fs::read_dir(state_dir(lab).join("logs")).unwrap() {
        logs.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    logs
}

fn secrets(lab: &Lab) -> toml::Table {
    let path = lab.inventory().with_extension("secrets.toml");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .parse()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
}

/// The base64 lines of a PEM file (what would leak if its text were printed).
fn pem_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_string)
        .collect()
}

const API: &str = "http://127.0.0.1:8500";

/// GET through server1's agent with the management token; panics unless 200.
#[track_caller]
fn get(lab: &Lab, token: &str, path: &str) -> Value {
    let (code, body) = lab.consul_api_token("server1", &format!("{API}{path}"), token, &[]);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

/// Members Consul reports alive.
fn alive(lab: &Lab, token: &str) -> Vec<String> {
    let mut v: Vec<String> = get(lab, token, "/v1/agent/members")
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Status"] == 1)
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The LAN pool's installed keys (key -> members that have it).
fn lan_keys(lab: &Lab, token: &str) -> Vec<(String, u64)> {
    let rings = get(lab, token, "/v1/operator/keyring");
    let lan = rings
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["WAN"] == false)
        .unwrap_or_else(|| panic!("{rings:#}"))
        .clone();
    lan["Keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

/// `start date` of the certificate the HTTPS API serves on a server (curl -v).
fn served_cert_start(lab: &Lab, host: &str) -> String {
    let out = lab.exec(
        host,
        &[
            "sh",
            "-c",
            "curl -sv --max-time 10 --cacert /etc/consul.d/tls/ca.pem \
             https://127.0.0.1:8501/v1/status/leader 2>&1 | grep 'start date'",
        ],
    );
    assert!(out.ok(), "{out}");
    out.out().to_string()
}

/// The HTTP status of an anonymous request (curl `args`, the URL last) on a host.
#[track_caller]
fn anon_status(lab: &Lab, host: &str, args: &[&str]) -> String {
    let mut argv = vec!["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"];
    argv.extend_from_slice(args);
    lab.exec(host, &argv).success().out().to_string()
}

fn text(out: &Out) -> String {
    format!("{}\n{}", out.stdout, out.stderr)
}

/// Issue 6, acceptance 1-6 on one cluster of 3 servers and 1 client (systemd and supervisord):
/// `encrypt = "auto"`, `tls = "auto"`, `acl = true` from the first apply; ACLs deny anonymous
/// KV reads while the management token reads them; HTTPS with the generated CA; the client's
/// service registered through its own agent token; modes and owners on hosts; `tls renew`
/// without restarts; `keys rotate` leaves only the new key with every member alive; a client
/// with a wrong gossip key does not join and the run names it; a changed host key stops that
/// host with both fingerprints; a re-apply changes nothing; and no gossip key, token or private
/// key appears in any consulctl output, debug log, or in `ps` captured on every host throughout.
/// `plan` (text and JSON) runs on the fresh hosts (every node token and the key in its diffs)
/// and after the gossip key changed (the old key on the host side of the diffs); `keys rotate`
/// runs with JSON output and restarts no agent (same consul PIDs on every host).
#[test]
fn encrypt_tls_and_acl_auto_cluster_is_locked_down_and_keeps_secrets() {
    let lab = Lab::new("sec")
        .servers(3)
        .clients(2)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    // client2 stays out for now: it comes later with a wrong gossip key.
    lab.keep_hosts(&["server1", "server2", "server3", "client1"]);
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

    // Capture the process list on every host, 10 times a second, for the whole test.
    let all = ["server1", "server2", "server3", "client1", "client2"];
    for h in all {
        lab.docker(&[
            "exec",
            "-d",
            &lab.container(h),
            "sh",
            "-c",
            "while :; do ps -eww -o user=,args= >> /tmp/consulctl-test-ps.log; sleep 0.1; done",
        ])
        .success();
    }
    let mut outputs: Vec<(&str, Out)> = Vec::new();

    // --- 0. plan on fresh hosts: every node's ACL token and the gossip key are in the diffs,
    // redacted (text and JSON) ----------------------------------------------------------------
    let fresh_plan = lab.consulctl(&["plan", "-i", inv]).success();
    assert!(
        fresh_plan.stdout.contains("4 hosts: 4 to change"),
        "{fresh_plan}"
    );
    for want in [
        "+encrypt = \"<redacted ",
        "+    agent = \"<redacted ",
        "+    default = \"<redacted ",
    ] {
        assert!(
            fresh_plan.stdout.contains(want),
            "no `{want}`: {fresh_plan}"
        );
    }
    outputs.push(("plan on fresh hosts", fresh_plan));
    let fresh_json = lab.consulctl(&["plan", "-i", inv, "-o", "json"]).success();
    let j: Value =
        serde_json::from_str(&fresh_json.stdout).unwrap_or_else(|e| panic!("{e}: {fresh_json}"));
    assert_eq!(
        j["totals"],
        serde_json::json!({"hosts": 4, "to_change": 4, "unchanged": 0, "failed": 0}),
        "{j:#}"
    );
    for h in j["hosts"].as_array().unwrap() {
        assert_eq!(h["status"], "change", "{h:#}");
        let cfg = h["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "/etc/consul.d/consul.hcl")
            .unwrap_or_else(|| panic!("no consul.hcl in {h:#}"));
        assert_eq!(cfg["secret"], true);
        let diff = cfg["diff"].as_str().unwrap();
        assert!(
            diff.starts_with("--- /dev/null") && diff.contains("+    agent = \"<redacted "),
            "{diff}"
        );
        assert!(
            h["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["action"] == "start"),
            "{h:#}"
        );
    }
    outputs.push(("plan -o json on fresh hosts", fresh_json));

    // --- 1. the cluster forms and verifies ------------------------------------------------
    let first = lab.consulctl(&["apply", "-i", inv]).success();
    assert!(first.stdout.contains("cluster healthy"), "{first}");
    outputs.push(("apply", first));
    let s = secrets(&lab);
    let token = s["acl_management_token"].as_str().unwrap().to_string();
    let key1 = s["gossip_key"].as_str().unwrap().to_string();
    let secrets_file = lab.inventory().with_extension("secrets.toml");
    assert_eq!(mode(&secrets_file), 0o600);
    assert_eq!(
        alive(&lab, &token),
        ["client1", "server1", "server2", "server3"]
    );

    // ACLs: the management token writes and reads KV; anonymous requests are denied.
    let (code, body) = lab.consul_api_token(
        "server1",
        &format!("{API}/v1/kv/consulctl-test/probe"),
        &token,
        &["-X", "PUT", "--data", "v1"],
    );
    assert_eq!((code, body.trim()), (200, "true"));
    let (code, body) =
        lab.consul_api_token("server1", &format!("{API}/v1/kv/?recurse"), &token, &[]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("consulctl-test/probe"), "{body}");
    for host in ["server1", "client1"] {
        let anon = lab
            .exec(
                host,
                &[
                    "curl",
                    "-sS",
                    "-w",
                    "\n%{http_code}",
                    &format!("{API}/v1/kv/?recurse"),
                ],
            )
            .success();
        assert!(
            !anon.stdout.contains("consulctl-test/probe"),
            "{host}: anonymous list shows the key: {anon}"
        );
        let code = anon
            .stdout
            .trim_end()
            .rsplit('\n')
            .next()
            .unwrap()
            .to_string();
        assert!(code == "403" || code == "404", "{host}: {anon}");
        assert_eq!(
            anon_status(&lab, host, &[&format!("{API}/v1/kv/consulctl-test/probe")]),
            "403",
            "{host}: anonymous read of a key"
        );
    }
    // HTTPS with the generated CA, with the token and without.
    for srv in ["server1", "server2", "server3"] {
        let (code, body) = lab.consul_api_token(
            srv,
            "https://127.0.0.1:8501/v1/kv/consulctl-test/probe?raw",
            &token,
            &["--cacert", "/etc/consul.d/tls/ca.pem"],
        );
        assert_eq!((code, body.as_str()), (200, "v1"), "{srv} over HTTPS");
        assert_eq!(
            anon_status(
                &lab,
                srv,
                &[
                    "--cacert",
                    "/etc/consul.d/tls/ca.pem",
                    "https://127.0.0.1:8501/v1/kv/consulctl-test/probe",
                ],
            ),
            "403",
            "{srv}: anonymous over HTTPS"
        );
    }
    // The client's agent token works: its service reached the catalog through it.
    assert!(
        wait_until(60, || {
            get(&lab, &token, "/v1/catalog/service/web")
                .as_array()
                .is_some_and(|a| a.iter().any(|i| i["Node"] == "client1"))
        }),
        "web on client1 never reached the catalog"
    );
    let policies = get(&lab, &token, "/v1/acl/policies");
    for n in ["server1", "server2", "server3", "client1"] {
        let name = format!("consulctl-agent-{n}");
        assert!(
            policies
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["Name"] == name.as_str()),
            "no policy {name}: {policies:#}"
        );
    }

    // --- 5. modes and owners ----------------------------------------------------------------
    let stat = |host: &str, paths: &[&str]| -> Vec<String> {
        let mut argv = vec!["stat", "-c", "%a %U %G"];
        argv.extend_from_slice(paths);
        lab.exec(host, &argv)
            .success()
            .stdout
            .lines()
            .map(str::to_string)
            .collect()
    };
    for srv in ["server1", "server2", "server3"] {
        assert_eq!(
            stat(
                srv,
                &[
                    "/etc/consul.d",
                    "/etc/consul.d/consul.hcl",
                    "/etc/consul.d/tls",
                    "/etc/consul.d/tls/server-key.pem",
                    "/etc/consul.d/tls/server.pem",
                    "/etc/consul.d/tls/ca.pem",
                    "/opt/consul",
                    "/opt/consul/serf/local.keyring",
                ]
            ),
            [
                "750 consul consul",
                "640 consul consul",
                "750 consul consul",
                "640 consul consul",
                "644 consul consul",
                "644 consul consul",
                "750 consul consul",
                "600 consul consul"
            ],
            "{srv}"
        );
    }
    assert_eq!(
        stat(
            "client1",
            &[
                "/etc/consul.d/consul.hcl",
                "/etc/consul.d/consulctl-service-web.hcl",
                "/opt/consul"
            ]
        ),
        [
            "640 consul consul",
            "640 consul consul",
            "750 consul consul"
        ]
    );
    let tls_files = lab.exec("client1", &["ls", "/etc/consul.d/tls"]).success();
    assert_eq!(
        tls_files.out(),
        "ca.pem",
        "server certificates never go to clients"
    );
    for h in ["server1", "server2", "client1"] {
        let user = lab
            .exec(h, &["ps", "-o", "user=", "-C", "consul"])
            .success();
        assert_eq!(user.out(), "consul", "{h}: the agent runs as consul");
        // Nothing secret is readable by others: world-readable files are certificates only.
        let readable = lab
            .exec(h, &["find", "/etc/consul.d", "-type", "f", "-perm", "-o+r"])
            .success();
        for f in readable.stdout.lines() {
            assert!(
                f.ends_with("/ca.pem") || f.ends_with("/server.pem"),
                "{h}: {f} is world-readable"
            );
        }
    }
    let tls_dir = state_dir(&lab).join("tls");
    assert_eq!(mode(&tls_dir), 0o700);
    for f in ["ca-key.pem", "server1-key.pem"] {
        assert_eq!(mode(&tls_dir.join(f)), 0o600, "{f}");
    }

    // --- tls renew: new certificates, served after a reload, same agent processes ------------
    let pids = |hosts: &[&str]| -> Vec<String> {
        hosts
            .iter()
            .map(|h| {
                lab.exec(h, &["pidof", "consul"])
                    .success()
                    .out()
                    .to_string()
            })
            .collect()
    };
    let servers = ["server1", "server2", "server3"];
    let pids_before = pids(&servers);
    let start_before = served_cert_start(&lab, "server1");
    let mut private_keys: Vec<String> = Vec::new();
    for e in std::fs::read_dir(&tls_dir).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("-key.pem") {
            private_keys.extend(pem_lines(&std::fs::read_to_string(&p).unwrap()));
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(1)); // a new not_before second
    let renew = lab
        .consulctl(&["tls", "renew", "-i", inv, "--within", "400", "-o", "json"])
        .success();
    assert!(
        renew.stderr.contains("renewing the certificate of server1"),
        "{renew}"
    );
    let j: Value = serde_json::from_str(&renew.stdout).unwrap_or_else(|e| panic!("{e}: {renew}"));
    let renewed: Vec<&str> = j["renewed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(renewed, servers, "{j:#}");
    assert!(
        Path::new(j["retired_dir"].as_str().unwrap()).is_dir(),
        "{j:#}"
    );
    assert_eq!(j["apply"]["totals"]["failed"], 0, "{j:#}");
    assert_eq!(j["apply"]["verify"]["healthy"], true, "{j:#}");
    assert_eq!(pids(&servers), pids_before, "tls renew restarted an agent");
    assert_ne!(
        served_cert_start(&lab, "server1"),
        start_before,
        "server1 still serves the old certificate"
    );
    outputs.push(("tls renew -o json", renew));
    for e in std::fs::read_dir(&tls_dir).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("-key.pem") {
            private_keys.extend(pem_lines(&std::fs::read_to_string(&p).unwrap()));
        }
    }

    // --- 3. keys rotate (JSON): no agent restarts ---------------------------------------------
    let members = ["server1", "server2", "server3", "client1"];
    let pids_before = pids(&members);
    let rotate = lab
        .consulctl(&["keys", "rotate", "-i", inv, "-o", "json"])
        .success();
    let key2 = secrets(&lab)["gossip_key"].as_str().unwrap().to_string();
    assert_ne!(key1, key2);
    assert_eq!(lan_keys(&lab, &token), vec![(key2.clone(), 4)]);
    assert_eq!(alive(&lab, &token).len(), 4);
    assert_eq!(
        pids(&members),
        pids_before,
        "keys rotate restarted an agent (consul PIDs on {members:?})"
    );
    let j: Value = serde_json::from_str(&rotate.stdout).unwrap_or_else(|e| panic!("{e}: {rotate}"));
    assert_eq!(j["rotated"], true, "{j:#}");
    assert_eq!(j["resumed"], false, "{j:#}");
    assert_eq!(
        j["old_key_fingerprint"].as_str(),
        Some(&consulctl::commands::keys::fingerprint(&key1)[..]),
        "{j:#}"
    );
    assert_eq!(
        j["new_key_fingerprint"].as_str(),
        Some(&consulctl::commands::keys::fingerprint(&key2)[..]),
        "{j:#}"
    );
    assert_eq!(j["steps"].as_array().unwrap().len(), 3, "{j:#}");
    assert_eq!(j["apply"]["totals"]["hosts"], 4, "{j:#}");
    assert_eq!(j["apply"]["totals"]["failed"], 0, "{j:#}");
    assert_eq!(j["apply"]["verify"]["healthy"], true, "{j:#}");
    assert!(j.get("error").is_none(), "{j:#}");
    outputs.push(("keys rotate -o json", rotate));
    // The configs on the hosts hold the new key (read on the hosts).
    for h in members {
        let hcl = lab.exec(h, &["cat", "/etc/consul.d/consul.hcl"]).success();
        assert!(
            hcl.stdout.contains(&key2),
            "{h}: the config lacks the new key"
        );
    }

    // --- plan after the gossip key changed: the old key is on the host side of the diff -------
    let secrets_text = std::fs::read_to_string(&secrets_file).unwrap();
    let key3 = "cGxhbm5lZC1idXQtbmV2ZXItYXBwbGllZC1rZXktMzI="; // 32 bytes, only planned
    assert_eq!(key3.len(), 44);
    let mut changed: toml::Table = secrets_text.parse().unwrap();
    changed.insert("gossip_key".into(), toml::Value::String(key3.into()));
    std::fs::write(&secrets_file, toml::to_string(&changed).unwrap()).unwrap();
    let key_plan = lab.consulctl(&["plan", "-i", inv]).success();
    let key_plan_json = lab.consulctl(&["plan", "-i", inv, "-o", "json"]).success();
    std::fs::write(&secrets_file, &secrets_text).unwrap();
    let minus: Vec<&str> = key_plan
        .stdout
        .lines()
        .filter(|l| l.starts_with("-encrypt = \"<redacted "))
        .collect();
    let plus: Vec<&str> = key_plan
        .stdout
        .lines()
        .filter(|l| l.starts_with("+encrypt = \"<redacted "))
        .collect();
    assert_eq!((minus.len(), plus.len()), (4, 4), "{key_plan}");
    assert_ne!(minus[0][1..], plus[0][1..], "{key_plan}");
    let j: Value = serde_json::from_str(&key_plan_json.stdout)
        .unwrap_or_else(|e| panic!("{e}: {key_plan_json}"));
    assert_eq!(j["totals"]["to_change"], 4, "{j:#}");
    for h in j["hosts"].as_array().unwrap() {
        let diffs: String = h["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["diff"].as_str())
            .collect();
        assert!(diffs.contains("\n-encrypt = \"<redacted "), "{h:#}");
        assert!(diffs.contains("\n+encrypt = \"<redacted "), "{h:#}");
    }
    outputs.push(("plan after the key changed", key_plan));
    outputs.push(("plan -o json after the key changed", key_plan_json));

    // --- 2. a client with a wrong gossip key ---------------------------------------------------
    let wrong = "bG9va3MgbGlrZSBhIGtleSBidXQgaXMgbm90IG9uZSE="; // 32 bytes, not the cluster's
    assert_eq!(wrong.len(), 44);
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .parse()
        .unwrap();
    let mut c2 = toml_edit::Table::new();
    c2["name"] = toml_edit::value("client2");
    c2["address"] = toml_edit::value(lab.host("client2").address.as_str());
    c2["role"] = toml_edit::value("client");
    c2["init"] = toml_edit::value(lab.host("client2").init.as_str());
    if lab.host("client2").ssh_user != "root" {
        let mut ssh = toml_edit::InlineTable::new();
        ssh.insert("user", lab.host("client2").ssh_user.as_str().into());
        c2["ssh"] = toml_edit::value(ssh);
    }
    // The wrong key comes from a hand-written file left in client2's config dir (the seed's
    // hosts have hand-written HCL): Consul merges it over consulctl's config.
    lab.exec("client2", &["mkdir", "-p", "/etc/consul.d"])
        .success();
    lab.exec_stdin(
        "client2",
        &["sh", "-c", "cat > /etc/consul.d/zz-local.hcl"],
        &format!("encrypt = \"{wrong}\"\n"),
    )
    .success();
    doc["hosts"].as_array_of_tables_mut().unwrap().push(c2);
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();
    let bad = lab
        .consulctl(&["apply", "-i", inv, "--verify-timeout", "20"])
        .code(1);
    let said = text(&bad);
    eprintln!("--- apply with client2's wrong gossip key ---\n{bad}");
    assert!(
        said.lines()
            .any(|l| l.contains("client2") && l.contains("gossip") && l.contains("key")),
        "the run does not name client2's gossip key: {bad}"
    );
    assert!(
        !alive(&lab, &token).contains(&"client2".to_string()),
        "client2 joined with a wrong key"
    );
    outputs.push(("apply with a wrong key", bad));
    lab.keep_hosts(&["server1", "server2", "server3", "client1"]);

    // --- 6. a re-apply changes nothing; plan agrees -------------------------------------------
    let again = lab.consulctl(&["apply", "-i", inv, "-o", "json"]).success();
    let j: Value = serde_json::from_str(&again.stdout).unwrap_or_else(|e| panic!("{e}: {again}"));
    assert_eq!(j["totals"]["changed"], 0, "{j:#}");
    assert_eq!(j["verify"]["healthy"], true, "{j:#}");
    outputs.push(("re-apply", again));
    let plan = lab.consulctl(&["plan", "-i", inv]).success();
    assert!(plan.stdout.contains("0 to change"), "{plan}");
    outputs.push(("plan", plan));
    let status = lab
        .consulctl(&["status", "-i", inv, "-o", "json"])
        .success();
    outputs.push(("status", status));

    // --- strict host keys: a changed key stops that host, with both fingerprints --------------
    let kh = state_dir(&lab).join("known_hosts.changed");
    let fake = state_dir(&lab).join("fake_host_key");
    crate::harness::run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            fake.to_str().unwrap(),
        ],
    )
    .success();
    let fake_pub = std::fs::read_to_string(fake.with_extension("pub")).unwrap();
    let fake_fp = crate::harness::run(
        "ssh-keygen",
        &["-l", "-f", fake.with_extension("pub").to_str().unwrap()],
    )
    .success()
    .stdout
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_string();
    let addr = lab.host("server1").address.clone();
    let mut lines: Vec<String> = std::fs::read_to_string(lab.known_hosts())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(&format!("{addr} ")))
        .map(str::to_string)
        .collect();
    let mut parts = fake_pub.split_whitespace();
    lines.push(format!(
        "{addr} {} {}",
        parts.next().unwrap(),
        parts.next().unwrap()
    ));
    std::fs::write(&kh, lines.join("\n") + "\n").unwrap();
    let kh_inv = lab
        .inventory()
        .with_file_name(format!("{}-kh.toml", lab.name()));
    let inv_text = std::fs::read_to_string(lab.inventory()).unwrap().replace(
        &lab.known_hosts().display().to_string(),
        &kh.display().to_string(),
    );
    std::fs::write(&kh_inv, inv_text).unwrap();
    std::fs::copy(&secrets_file, kh_inv.with_extension("secrets.toml")).unwrap();
    let mismatch = lab
        .consulctl(&["apply", "-i", kh_inv.to_str().unwrap()])
        .code(1);
    let said = text(&mismatch);
    assert!(
        said.contains("host key of") && said.contains("CHANGED") && said.contains(&fake_fp),
        "no expected fingerprint {fake_fp}: {mismatch}"
    );
    assert!(
        said.lines()
            .any(|l| l.contains("CHANGED") && l.matches("SHA256:").count() == 2),
        "expected and seen fingerprints: {mismatch}"
    );
    std::fs::remove_file(kh_inv.with_extension("secrets.toml")).ok();
    std::fs::remove_file(&kh_inv).ok();
    outputs.push(("apply with a changed host key", mismatch));

    // --- 4. no secret anywhere ------------------------------------------------------------------
    let s = secrets(&lab);
    let mut needles: Vec<(String, String)> = vec![
        ("gossip key before rotation".into(), key1.clone()),
        ("gossip key".into(), key2.clone()),
        ("planned gossip key".into(), key3.to_string()),
        ("client2's wrong gossip key".into(), wrong.to_string()),
        ("management token".into(), token.clone()),
    ];
    for (node, t) in s["acl_agent_tokens"].as_table().unwrap() {
        needles.push((
            format!("agent token of {node}"),
            t["secret"].as_str().unwrap().to_string(),
        ));
    }
    for (i, l) in private_keys.iter().enumerate() {
        needles.push((format!("private key line {i}"), l.clone()));
    }
    let mut ps = String::new();
    for h in all {
        let out = lab
            .exec(h, &["cat", "/tmp/consulctl-test-ps.log"])
            .success();
        ps.push_str(&out.stdout);
    }
    // The capture saw consulctl at work (its scripts run as `sh -c ...`) and the agents.
    assert!(ps.contains("consul agent"), "ps capture saw no agent");
    assert!(
        ps.lines().filter(|l| l.contains("sh -c")).count() > 10,
        "ps capture saw no consulctl scripts"
    );
    let logs = debug_logs(&lab);
    let mut haystacks: Vec<(String, String)> = outputs
        .iter()
        .map(|(what, out)| (what.to_string(), text(out)))
        .collect();
    haystacks.push(("debug logs".into(), logs));
    haystacks.push(("ps on the hosts".into(), ps));
    for (what, hay) in &haystacks {
        for (name, needle) in &needles {
            assert!(needle.len() >= 20, "{name} is too short to search for");
            assert!(
                !hay.contains(needle.as_str()),
                "the {name} appears in the {what}"
            );
        }
    }
}
