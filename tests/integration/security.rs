//! Security: gossip encryption with a key consulctl keeps, key rotation with every member
//! alive, secrets kept out of output and logs. Checked through Consul's own API.

use serde_json::Value;

use crate::harness::{Lab, LabInit, Out};

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn api(lab: &Lab, host: &str, path: &str) -> Value {
    let body = lab.consul_api(host, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{host} {path}: not JSON ({e}): {body}"))
}

/// The LAN pool's installed keys (key -> members that have it) and the pool's member count.
fn lan_keys(lab: &Lab) -> (Vec<(String, u64)>, u64) {
    let rings = api(lab, "server1", "/v1/operator/keyring");
    let lan = rings
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["WAN"] == false)
        .unwrap_or_else(|| panic!("{rings:#}"))
        .clone();
    let keys = lan["Keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect();
    (keys, lan["NumNodes"].as_u64().unwrap())
}

fn secret_key(lab: &Lab) -> String {
    let path = lab.inventory().with_extension("secrets.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let t: toml::Table = text.parse().unwrap();
    t["gossip_key"].as_str().unwrap().to_string()
}

fn alive(lab: &Lab) -> usize {
    api(lab, "server1", "/v1/agent/members")
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Status"] == 1)
        .count()
}

/// Issue 6, acceptance 3 (and the gossip parts of 4 and 6): `encrypt = "auto"` generates a key
/// into the secrets file (0600) and the cluster runs with it; `keys rotate` leaves the new key
/// the only one installed with every member alive; the key is in no output or debug log; a
/// re-apply changes nothing.
#[test]
fn auto_gossip_key_then_rotation_keeps_every_member_alive() {
    let lab = Lab::new("keys")
        .servers(3)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    doc["cluster"]["encrypt"] = toml_edit::value("auto");
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();

    let first = lab.consulctl(&["apply", "-i", inv]).success();
    let key1 = secret_key(&lab);
    let secrets = lab.inventory().with_extension("secrets.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secrets).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o600, "{}", secrets.display());
    let (keys, nodes) = lan_keys(&lab);
    assert_eq!(
        keys,
        vec![(key1.clone(), 4)],
        "the cluster runs with the generated key"
    );
    assert_eq!(nodes, 4);

    let rotate = lab.consulctl(&["keys", "rotate", "-i", inv]).success();
    let key2 = secret_key(&lab);
    assert_ne!(key1, key2);
    let (keys, _) = lan_keys(&lab);
    assert_eq!(
        keys,
        vec![(key2.clone(), 4)],
        "only the new key is installed"
    );
    assert_eq!(alive(&lab), 4);
    // The configs hold the new key too (a fresh data dir would start with it).
    let hcl = lab
        .exec("client1", &["cat", "/etc/consul.d/consul.hcl"])
        .success();
    assert!(
        hcl.stdout.contains(&key2),
        "client1's config has the new key"
    );

    let again = json(&lab.consulctl(&["apply", "-i", inv, "-o", "json"]).success());
    assert_eq!(again["totals"]["changed"], 0, "{again:#}");
    let plan = lab.consulctl(&["plan", "-i", inv]).success();

    // Neither key appears in anything consulctl printed or logged.
    let logs_dir = lab
        .inventory()
        .parent()
        .unwrap()
        .join(".consulctl")
        .join(lab.name())
        .join("logs");
    let mut logs = String::new();
    for e in std::fs::read_dir(&logs_dir).unwrap() {
        logs.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    for key in [&key1, &key2] {
        for (what, text) in [
            ("apply", format!("{}{}", first.stdout, first.stderr)),
            ("rotate", format!("{}{}", rotate.stdout, rotate.stderr)),
            ("plan", format!("{}{}", plan.stdout, plan.stderr)),
            ("debug logs", logs.clone()),
        ] {
            assert!(
                !text.contains(key.as_str()),
                "a gossip key appears in the {what}"
            );
        }
    }
}

/// Every file under the lab's local `.consulctl/<lab>/logs`, concatenated.
fn debug_logs(lab: &Lab) -> String {
    let dir = lab
        .inventory()
        .parent()
        .unwrap()
        .join(".consulctl")
        .join(lab.name())
        .join("logs");
    let mut logs = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        logs.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    logs
}

/// The base64 body of a PEM file (what would leak if the file's text were printed).
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// Issue 6, TLS: `tls = "auto"` makes a CA and server certificates on the control host, the
/// cluster forms and verifies with RPC TLS, the HTTPS API answers on 8501 with the generated CA
/// (clients: auto_encrypt, their certificate signed by the servers' Connect CA); modes and
/// owners on hosts; no private key in any output or log; a re-apply changes nothing.
#[test]
fn auto_tls_cluster_serves_https_with_the_generated_ca() {
    let lab = Lab::new("tls")
        .servers(3)
        .clients(1)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    doc["cluster"]["tls"] = toml_edit::value("auto");
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();

    let first = lab.consulctl(&["apply", "-i", inv]).success();

    // Local files: the CA and one certificate per server, keys private.
    let tls_dir = lab
        .inventory()
        .parent()
        .unwrap()
        .join(".consulctl")
        .join(lab.name())
        .join("tls");
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&tls_dir), 0o700);
    let mut keys = Vec::new();
    for f in [
        "ca-key.pem",
        "server1-key.pem",
        "server2-key.pem",
        "server3-key.pem",
    ] {
        let p = tls_dir.join(f);
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        keys.push(pem_body(&std::fs::read_to_string(&p).unwrap()));
    }
    assert!(!tls_dir.join("client1.pem").exists());

    // HTTPS with the generated CA on a server.
    let leader = |host: &str, ca: &str| {
        lab.exec(
            host,
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                ca,
                "https://127.0.0.1:8501/v1/status/leader",
            ],
        )
    };
    for s in ["server1", "server2", "server3"] {
        let out = leader(s, "/etc/consul.d/tls/ca.pem").success();
        assert!(out.stdout.contains(":8300"), "{s}: {out}");
    }
    // The client's HTTPS certificate comes from auto_encrypt (the Connect CA): trust both.
    let roots: Value =
        serde_json::from_str(&lab.consul_api("client1", "/v1/agent/connect/ca/roots")).unwrap();
    let mut bundle = lab
        .exec("client1", &["cat", "/etc/consul.d/tls/ca.pem"])
        .success()
        .stdout;
    for r in roots["Roots"].as_array().unwrap() {
        bundle.push_str(r["RootCert"].as_str().unwrap());
        bundle.push('\n');
    }
    lab.exec(
        "client1",
        &[
            "sh",
            "-c",
            &format!("printf '%s' '{bundle}' > /tmp/consulctl-test-ca.pem"),
        ],
    )
    .success();
    let out = leader("client1", "/tmp/consulctl-test-ca.pem").success();
    assert!(out.stdout.contains(":8300"), "client1: {out}");

    // Modes and owners on hosts; no server certificate on the client.
    for s in ["server1", "server2", "server3"] {
        let st = lab
            .exec(
                s,
                &[
                    "stat",
                    "-c",
                    "%a %U %G",
                    "/etc/consul.d/tls/server-key.pem",
                    "/etc/consul.d/tls/server.pem",
                    "/etc/consul.d/tls/ca.pem",
                ],
            )
            .success();
        assert_eq!(
            st.stdout.lines().collect::<Vec<_>>(),
            ["640 root root", "644 root root", "644 root root"],
            "{s}"
        );
    }
    let ls = lab.exec("client1", &["ls", "/etc/consul.d/tls"]).success();
    assert_eq!(ls.stdout.trim(), "ca.pem", "client1 holds only the CA");

    // Re-apply: nothing changes; plan shows nothing.
    let again = lab.consulctl(&["apply", "-i", inv, "-o", "json"]).success();
    let j = json(&again);
    assert_eq!(j["totals"]["changed"], 0, "{j:#}");
    let plan = lab.consulctl(&["plan", "-i", inv]).success();

    // No private key text anywhere consulctl printed or logged.
    let logs = debug_logs(&lab);
    for key in &keys {
        assert!(key.len() > 40);
        for (what, text) in [
            ("apply", format!("{}{}", first.stdout, first.stderr)),
            ("re-apply", format!("{}{}", again.stdout, again.stderr)),
            ("plan", format!("{}{}", plan.stdout, plan.stderr)),
            ("debug logs", logs.clone()),
        ] {
            // PEM bodies are wrapped at 64 columns: look for each line.
            for line in key.as_bytes().chunks(64) {
                let line = std::str::from_utf8(line).unwrap();
                assert!(!text.contains(line), "private key text in the {what}");
            }
        }
    }
}
