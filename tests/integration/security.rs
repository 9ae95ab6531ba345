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
