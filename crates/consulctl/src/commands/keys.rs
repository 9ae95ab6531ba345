//! `consulctl keys rotate`: a new gossip key for a running cluster, with every member alive
//! throughout. Through one live server's agent (Consul spreads keyring operations to every
//! member): install the new key, wait until every member has it, use it, remove the old one,
//! check that the new key is the only one. Then the agent configs get the new key (`apply`; a
//! changed key on an agent with a keyring needs no restart) and the secrets file is updated
//! last. The new key is kept in the secrets file as `gossip_key_next` from the start, so an
//! interrupted rotation resumes with it.
//!
//! Keys travel only in request bodies on stdin and are never logged: keyring answers are read
//! as bytes (`Connection::run_bytes` logs their length only) and reported as fingerprints.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::apply;
use crate::cli::{InventoryArgs, KeysRotateArgs, Output};
use crate::recap::Recap;
use crate::ssh::Connection;
use crate::verify;
use consulctl_core::error::Error;
use consulctl_core::model::{Role, Secret};
use consulctl_core::secrets::{self, Secrets, GOSSIP_KEY, GOSSIP_KEY_NEXT};

pub use crate::remote::KEYRING;

/// One pool's keyring (`GET /v1/operator/keyring`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Pool {
    #[serde(rename = "WAN", default)]
    pub wan: bool,
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    /// key -> how many members have it installed.
    #[serde(rename = "Keys", default)]
    pub keys: BTreeMap<String, usize>,
    #[serde(rename = "NumNodes", default)]
    pub num_nodes: usize,
}

/// Every pool has `key` installed on all its members.
pub fn everywhere(pools: &[Pool], key: &str) -> bool {
    !pools.is_empty()
        && pools
            .iter()
            .all(|p| p.keys.get(key).copied() == Some(p.num_nodes) && p.num_nodes > 0)
}

/// Every pool holds `key` and nothing else.
pub fn only(pools: &[Pool], key: &str) -> bool {
    everywhere(pools, key) && pools.iter().all(|p| p.keys.len() == 1)
}

/// Short fingerprint of a key for messages (never the key itself).
pub fn fingerprint(key: &str) -> String {
    crate::doctor::key_fingerprint(key)[..12].to_string()
}

fn parse_answer(bytes: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.splitn(2, '\n');
    let head = lines.next().unwrap_or("");
    let code = head
        .strip_prefix("=== ")
        .and_then(|c| c.trim().parse().ok())
        .context("the keyring script printed no status line")?;
    Ok((code, lines.next().unwrap_or("").to_string()))
}

struct Agent<'a> {
    name: String,
    conn: &'a Connection,
    http: String,
}

impl Agent<'_> {
    async fn call(&self, method: &str, key: Option<&Secret>) -> Result<(u16, String)> {
        let body = key.map(|k| serde_json::json!({ "Key": k.expose() }).to_string());
        let (out, bytes) = self
            .conn
            .run_bytes(
                &format!("keyring {method}"),
                KEYRING,
                &[self.http.clone(), method.to_string()],
                body.as_deref().map(str::as_bytes),
            )
            .await?;
        if !out.success() {
            bail!("the keyring script failed: {}", out.tail(4));
        }
        parse_answer(&bytes)
    }

    async fn pools(&self) -> Result<Vec<Pool>> {
        let (code, body) = self.call("GET", None).await?;
        if code != 200 {
            bail!("GET /v1/operator/keyring answered HTTP {code}");
        }
        serde_json::from_str(&body).context("parsing the keyring")
    }

    async fn change(&self, method: &str, key: &Secret, what: &str) -> Result<()> {
        let (code, body) = self.call(method, Some(key)).await?;
        if code != 200 {
            // Consul's error text names no key; keep it short anyway.
            let body: String = body.chars().take(300).collect();
            bail!(
                "{what} failed: HTTP {code}: {}",
                body.replace(key.expose(), "<key>")
            );
        }
        Ok(())
    }
}

/// What `keys rotate --output json` prints: the fingerprints of the old and the new key (never
/// the keys), the keyring steps done in order, whether the rotation completed, and the recap of
/// the rollout that writes the new key into the agent configs (`apply`: hosts, totals, verify).
#[derive(Debug, Default, Serialize)]
pub struct RotateOutput {
    pub old_key_fingerprint: Option<String>,
    pub new_key_fingerprint: Option<String>,
    /// An interrupted rotation was resumed with its saved next key.
    pub resumed: bool,
    /// The server whose agent ran the keyring operations.
    pub through: Option<String>,
    /// Keyring steps done, in order.
    pub steps: Vec<String>,
    /// The keyring holds only the new key and the secrets file has it.
    pub rotated: bool,
    pub secrets_file: String,
    /// The rollout of the new key into the agent configs.
    pub apply: Option<Recap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    pub debug_log: String,
}

/// Progress lines: printed (text), or kept for the JSON object and shown on stderr (json).
struct Say {
    json: bool,
    out: RotateOutput,
}

impl Say {
    fn line(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn step(&mut self, line: &str) {
        self.line(&format!("  {line}"));
        self.out.steps.push(line.to_string());
    }
}

/// `consulctl keys rotate`.
pub async fn rotate(args: &KeysRotateArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let started = Instant::now();
    let inv = InventoryArgs::all_hosts(&args.cluster.inventory, args.cluster.accept_new_host_keys);
    let p = apply::prepare(&inv, "keys-rotate", debug_log).await?;
    if !p.cluster.encrypt_auto {
        return Err(Error::Input(anyhow!(
            "{}: keys rotate manages the key of cluster.encrypt = \"auto\" (kept in {}); this inventory {}. \
             Set encrypt = \"auto\" to let consulctl keep and rotate the key",
            args.cluster.inventory.display(),
            secrets::path_for(&args.cluster.inventory).display(),
            if p.cluster.encrypt.is_some() {
                "gives the key itself"
            } else {
                "has no gossip encryption"
            }
        )));
    }
    let old = p
        .cluster
        .encrypt
        .clone()
        .expect("load resolved the auto key");
    let mut store = Secrets::load(&args.cluster.inventory).map_err(Error::Input)?;
    let lock = crate::lock::RunLock::acquire(&p.cluster.state_dir(), "keys rotate")?;
    let json = args.output == Output::Json;
    let mut say = Say {
        json,
        out: RotateOutput {
            secrets_file: store.path().display().to_string(),
            debug_log: p.debug_log.display().to_string(),
            ..Default::default()
        },
    };
    let print_json = |out: &mut RotateOutput| {
        out.duration_ms = started.elapsed().as_millis() as u64;
        if json {
            println!(
                "{}",
                consulctl_core::redact::values(
                    &serde_json::to_string_pretty(out).unwrap_or_default(),
                    &[]
                )
            );
        }
    };

    let (mut runs, _progress) = apply::connect_and_gather(&p).await;
    let binds = apply::bind_addrs(&p.cluster, &runs);
    let agents: Vec<Agent> = runs
        .iter()
        .filter(|r| r.host.role == Role::Server && r.failed.is_none())
        .filter(|r| {
            r.facts
                .as_ref()
                .is_some_and(|f| f.agent_running(r.host.init))
        })
        .filter_map(|r| {
            Some(Agent {
                name: r.host.name.clone(),
                conn: r.conn.as_ref()?,
                http: verify::http_addr(&r.host, *binds.get(&r.host.name)?),
            })
        })
        .collect();
    let result = rotate_keys(
        args, &p.cluster, &binds, &agents, &old, &mut store, &mut say,
    )
    .await;
    drop(agents);
    apply::disconnect(&mut runs, None).await;
    if let Err(e) = result {
        let e = e.context(format!(
            "keys rotate failed (debug log: {}); the new key is kept in {} as {GOSSIP_KEY_NEXT}: \
             run keys rotate again to finish",
            p.debug_log.display(),
            store.path().display()
        ));
        say.out.error = Some(consulctl_core::redact::redact(&format!("{e:#}"), &[]));
        print_json(&mut say.out);
        return Err(Error::Runtime(e));
    }
    say.out.rotated = true;
    // The configs get the new key: a key change on agents with a keyring is no restart.
    drop(lock);
    say.line("==> write the new key into the agent configs (no restart)");
    let settings = crate::cli::Settings::from(&inv);
    let rollout = crate::cli::RolloutSettings::default();
    let applied = if json {
        let (result, recap) =
            crate::recap::capture(crate::engine::rollout::apply(&settings, rollout, debug_log))
                .await;
        say.out.apply = recap;
        result
    } else {
        crate::engine::rollout::apply(&settings, rollout, debug_log).await
    };
    if let Err(e) = &applied {
        say.out.error = Some(consulctl_core::redact::redact(&e.to_string(), &[]));
    }
    print_json(&mut say.out);
    applied?;
    if !json {
        println!(
            "keys rotate: done in {:.1}s; the cluster uses only the new key (fingerprint {}), kept in {}",
            started.elapsed().as_secs_f64(),
            fingerprint(store.get(GOSSIP_KEY).expect("saved").expose()),
            store.path().display()
        );
    }
    Ok(())
}

async fn rotate_keys(
    args: &KeysRotateArgs,
    cluster: &consulctl_core::model::Cluster,
    binds: &BTreeMap<String, std::net::IpAddr>,
    agents: &[Agent<'_>],
    old: &Secret,
    store: &mut Secrets,
    say: &mut Say,
) -> Result<()> {
    say.out.old_key_fingerprint = Some(fingerprint(old.expose()));
    let agent = agents
        .first()
        .context("no server is reachable over SSH with its agent running")?;
    let timeout = Duration::from_secs(args.timeout);
    // Every member alive before anything changes (and after every step).
    let alive = || async {
        let view = verify::read_view(agent.conn, &agent.http).await?;
        let problems = verify::check(cluster, binds, &view);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(
                "the cluster is not healthy: {}",
                problems.join("; ")
            ))
        }
    };
    alive().await.context("refusing to rotate")?;

    let new = match store.get(GOSSIP_KEY_NEXT) {
        Some(k) if k != *old => {
            say.line(&format!(
                "resuming an interrupted rotation (key {})",
                fingerprint(k.expose())
            ));
            say.out.resumed = true;
            k
        }
        _ => {
            let k = secrets::new_gossip_key()?;
            store.set(GOSSIP_KEY_NEXT, &k);
            store.save()?;
            k
        }
    };
    say.out.new_key_fingerprint = Some(fingerprint(new.expose()));
    say.out.through = Some(agent.name.clone());
    say.line(&format!(
        "rotating the gossip key {} -> {} through {}",
        fingerprint(old.expose()),
        fingerprint(new.expose()),
        agent.name
    ));

    let wait = |want: fn(&[Pool], &str) -> bool, key: Secret, what: &'static str| async move {
        let deadline = Instant::now() + timeout;
        loop {
            let pools = agent.pools().await?;
            if want(&pools, key.expose()) {
                return anyhow::Ok(());
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = pools
                    .iter()
                    .map(|p| {
                        format!(
                            "{} pool: {}",
                            if p.wan { "WAN" } else { "LAN" },
                            p.keys
                                .iter()
                                .map(|(k, n)| format!("{} on {n}/{}", fingerprint(k), p.num_nodes))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .collect();
                bail!("{what} within {}s: {}", timeout.as_secs(), seen.join("; "));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };

    agent.change("POST", &new, "installing the new key").await?;
    wait(everywhere, new.clone(), "not every member has the new key").await?;
    alive().await?;
    say.step("installed the new key on every member");
    agent
        .change("PUT", &new, "switching to the new key")
        .await?;
    alive().await?;
    say.step("every member encrypts with the new key");
    agent.change("DELETE", old, "removing the old key").await?;
    wait(only, new.clone(), "the old key is still installed").await?;
    alive().await?;
    say.step("removed the old key: the new key is the only one installed");

    // Last: the secrets file.
    store.set(GOSSIP_KEY, &new);
    store.remove(GOSSIP_KEY_NEXT);
    store.save()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools(lan: &[(&str, usize)], nodes: usize) -> Vec<Pool> {
        vec![Pool {
            wan: false,
            datacenter: "dc1".into(),
            keys: lan.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            num_nodes: nodes,
        }]
    }

    #[test]
    fn a_key_is_everywhere_only_when_every_member_has_it() {
        assert!(everywhere(&pools(&[("a", 5), ("b", 5)], 5), "b"));
        assert!(!everywhere(&pools(&[("a", 5), ("b", 4)], 5), "b"));
        assert!(!everywhere(&[], "b"));
        assert!(!only(&pools(&[("a", 5), ("b", 5)], 5), "b"));
        assert!(only(&pools(&[("b", 5)], 5), "b"));
    }

    #[test]
    fn parses_the_keyring_answer() {
        let body = b"=== 200\n[{\"WAN\":false,\"Datacenter\":\"dc1\",\"Segment\":\"\",\"Keys\":{\"k1\":3},\"NumNodes\":3}]\n";
        let (code, text) = parse_answer(body).unwrap();
        assert_eq!(code, 200);
        let p: Vec<Pool> = serde_json::from_str(&text).unwrap();
        assert_eq!(p[0].keys["k1"], 3);
        assert!(parse_answer(b"nothing").is_err());
    }

    #[test]
    fn rotate_json_shape() {
        let recap = Recap::new(Vec::new(), None, Duration::from_millis(5), "/l".into());
        let out = RotateOutput {
            old_key_fingerprint: Some("aaaaaaaaaaaa".into()),
            new_key_fingerprint: Some("bbbbbbbbbbbb".into()),
            resumed: false,
            through: Some("server1".into()),
            steps: vec!["installed the new key on every member".into()],
            rotated: true,
            secrets_file: "/inv.secrets.toml".into(),
            apply: Some(recap),
            error: None,
            duration_ms: 7,
            debug_log: "/l".into(),
        };
        let v = serde_json::to_value(&out).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "old_key_fingerprint",
                "new_key_fingerprint",
                "resumed",
                "through",
                "steps",
                "rotated",
                "secrets_file",
                "apply",
                "duration_ms",
                "debug_log"
            ]
        );
        assert_eq!(v["apply"]["totals"]["hosts"], 0);
        assert_eq!(v["steps"][0], "installed the new key on every member");
        let failed = RotateOutput {
            error: Some("x".into()),
            ..Default::default()
        };
        let v = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            (v["error"].as_str(), v["apply"].is_null()),
            (Some("x"), true)
        );
    }

    #[test]
    fn fingerprints_do_not_show_the_key() {
        let f = fingerprint("pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=");
        assert_eq!(f.len(), 12);
        assert!(!"pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=".contains(&f));
    }
}
