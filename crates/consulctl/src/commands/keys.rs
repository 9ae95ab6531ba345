//! `consulctl keys rotate`: a new gossip key for a running cluster, with every member alive
//! throughout. Through one live server's agent (Consul spreads keyring operations to every
//! member): install the new key, wait until every member has it, use it, remove the old one,
//! check that the new key is the only one. Then the agent configs get the new key (`apply`; a
//! changed key on an agent with a keyring needs no restart) and the secrets file is updated
//! last. The new key is kept in the secrets file as `gossip_key_next` from the start, so an
//! interrupted rotation resumes with it.
//!
//! The keyring is read and changed through a `consul_api::Client` of that server's agent
//! ([`rotate_keyring`] takes one, so the order of the steps is tested against recorded
//! answers). Keys travel only in request bodies (on the SSH transport's stdin) and are never
//! logged: keyring answers print as member counts and are reported as fingerprints.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::cli::{InventoryArgs, KeysRotateArgs, Output};
use crate::engine::context;
use crate::engine::recap::Recap;
use crate::engine::verify::{self, ClusterView};
use crate::engine::via::Via;
use consul_api::poll::{wait_until_with, Clock, Last, Progress as Poll, TokioClock};
use consul_api::{operator, Call, Client, KeyringResponse};
use consulctl_core::error::Error;
use consulctl_core::model::{Role, Secret};
use consulctl_core::secrets::{self, Secrets, GOSSIP_KEY, GOSSIP_KEY_NEXT};

/// How often a wait re-reads the keyring.
const POLL: Duration = Duration::from_millis(500);

/// Every pool has `key` installed on all its members.
pub fn everywhere(pools: &[KeyringResponse], key: &str) -> bool {
    !pools.is_empty() && pools.iter().all(|p| p.num_nodes > 0 && p.everyone_has(key))
}

/// Every pool holds `key` and nothing else.
pub fn only(pools: &[KeyringResponse], key: &str) -> bool {
    everywhere(pools, key) && pools.iter().all(|p| p.keys.len() == 1)
}

/// Short fingerprint of a key for messages (never the key itself).
pub fn fingerprint(key: &str) -> String {
    crate::engine::evidence::key_fingerprint(key)[..12].to_string()
}

/// The keys of every pool as fingerprints with their member counts, for messages.
fn seen(pools: &[KeyringResponse]) -> String {
    pools
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
        .collect::<Vec<_>>()
        .join("; ")
}

/// The keyring of every pool, through `client`.
async fn pools(client: &Client) -> Result<Vec<KeyringResponse>> {
    match client.call(operator::keyring_list()).await {
        Ok(p) => Ok(p),
        Err(consul_api::Error::Status { status, body, .. }) => {
            bail!("GET /v1/operator/keyring answered HTTP {status}: {body}")
        }
        Err(e) => Err(anyhow::Error::from(e).context("reading the keyring")),
    }
}

/// One keyring change (install, use, remove) through `client`. Consul's error text names no
/// key; it is hidden anyway.
async fn change(client: &Client, call: Call<()>, key: &Secret, what: &str) -> Result<()> {
    match client.call(call).await {
        Ok(()) => Ok(()),
        Err(consul_api::Error::Status { status, body, .. }) => {
            let body: String = body.chars().take(300).collect();
            bail!(
                "{what} failed: HTTP {status}: {}",
                body.replace(key.expose(), "<key>")
            )
        }
        Err(e) => Err(anyhow::Error::from(e).context(format!("{what} failed"))),
    }
}

/// What makes Consul's view unhealthy for a rotation (every member alive, ...); empty: healthy.
pub type HealthCheck<'a> = &'a (dyn Fn(&ClusterView) -> Vec<String> + Sync);

/// Whether the cluster, as Consul reports it through `via`, is healthy by `check`.
pub async fn healthy(via: &Via, check: HealthCheck<'_>) -> Result<()> {
    let view = verify::read_view_with(&via.client, &via.host).await?;
    let problems = check(&view);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "the cluster is not healthy: {}",
            problems.join("; ")
        ))
    }
}

/// Before a rotation: an unhealthy cluster is refused ([`Error::Locked`], exit 2; nothing
/// was changed).
pub async fn refuse_unless_healthy(via: &Via, check: HealthCheck<'_>) -> Result<(), Error> {
    healthy(via, check)
        .await
        .map_err(|e| Error::Locked(e.context("refusing to rotate")))
}

/// Wait until the keyring, read through `client`, is as `want` says for `key`. An error
/// reading it stops the wait.
async fn wait_keyring(
    client: &Client,
    want: fn(&[KeyringResponse], &str) -> bool,
    key: &Secret,
    what: &str,
    clock: &dyn Clock,
    timeout: Duration,
) -> Result<()> {
    let waited = wait_until_with(clock, what, timeout, POLL, || async move {
        let pools = match pools(client).await {
            Ok(p) => p,
            Err(e) => return Ok(Poll::Ready(Err(e))),
        };
        Ok::<_, String>(if want(&pools, key.expose()) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending(seen(&pools))
        })
    })
    .await;
    match waited {
        Ok(r) => r,
        Err(t) => {
            let last = match t.last {
                Last::Pending(s) | Last::Error(s) => s,
            };
            bail!("{what} within {}s: {last}", timeout.as_secs())
        }
    }
}

/// The keyring steps of a rotation from `old` to `new`, in this order, through one server's
/// agent (Consul spreads keyring operations to every member): install `new`; wait until every
/// member of every pool has it; use it; remove `old`; wait until `new` is the only key. The
/// cluster must be healthy by `check` after each of the three steps, and `step` hears each one
/// done. Anything else stops the rotation where it is: in particular the new key is not used
/// while a member lacks it.
pub async fn rotate_keyring(
    via: &Via,
    old: &Secret,
    new: &Secret,
    check: HealthCheck<'_>,
    clock: &dyn Clock,
    timeout: Duration,
    step: &mut dyn FnMut(&str),
) -> Result<()> {
    let c = &via.client;
    change(
        c,
        operator::keyring_install(new.expose()),
        new,
        "installing the new key",
    )
    .await?;
    wait_keyring(
        c,
        everywhere,
        new,
        "not every member has the new key",
        clock,
        timeout,
    )
    .await?;
    healthy(via, check).await?;
    step("installed the new key on every member");
    change(
        c,
        operator::keyring_use(new.expose()),
        new,
        "switching to the new key",
    )
    .await?;
    healthy(via, check).await?;
    step("every member encrypts with the new key");
    change(
        c,
        operator::keyring_remove(old.expose()),
        old,
        "removing the old key",
    )
    .await?;
    wait_keyring(
        c,
        only,
        new,
        "the old key is still installed",
        clock,
        timeout,
    )
    .await?;
    healthy(via, check).await?;
    step("removed the old key: the new key is the only one installed");
    Ok(())
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
    let p = context::prepare(&inv, "keys-rotate", debug_log).await?;
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
    let lock = crate::engine::lock::RunLock::acquire(&p.cluster.state_dir(), "keys rotate")?;
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

    let (mut runs, _progress) = context::connect_and_gather(&p).await;
    let binds = context::bind_addrs(&p.cluster, &runs);
    let agents: Vec<Via> = runs
        .iter()
        .filter(|r| r.host.role == Role::Server && r.failed.is_none())
        .filter(|r| {
            r.facts
                .as_ref()
                .is_some_and(|f| f.agent_running(r.host.init))
        })
        .filter_map(|r| {
            let http = verify::http_addr(&r.host, *binds.get(&r.host.name)?);
            Some(Via::new(
                r.host.name.clone(),
                crate::remote::consul::client(r.conn.as_ref()?, &http),
            ))
        })
        .collect();
    let result = rotate_keys(
        args, &p.cluster, &binds, &agents, &old, &mut store, &mut say,
    )
    .await;
    drop(agents);
    context::disconnect(&mut runs, None).await;
    if let Err(e) = result {
        // A refusal changed nothing (exit 2); anything else stopped the rotation (exit 1).
        let (refused, e) = match e {
            Error::Locked(e) => (true, e),
            Error::Input(e) | Error::Runtime(e) => (false, e),
            e @ Error::HostsFailed { .. } => (false, anyhow!("{e}")),
        };
        let e = e.context(format!(
            "keys rotate failed (debug log: {}); the new key is kept in {} as {GOSSIP_KEY_NEXT}: \
             run keys rotate again to finish",
            p.debug_log.display(),
            store.path().display()
        ));
        say.out.error = Some(consulctl_core::redact::redact(&format!("{e:#}"), &[]));
        print_json(&mut say.out);
        return Err(if refused {
            Error::Locked(e)
        } else {
            Error::Runtime(e)
        });
    }
    say.out.rotated = true;
    // The configs get the new key: a key change on agents with a keyring is no restart.
    drop(lock);
    say.line("==> write the new key into the agent configs (no restart)");
    let settings = crate::cli::Settings::from(&inv);
    let rollout = crate::cli::RolloutSettings::default();
    let applied = if json {
        let (result, recap) = crate::engine::recap::capture(crate::engine::rollout::apply(
            &settings, rollout, debug_log,
        ))
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
    agents: &[Via],
    old: &Secret,
    store: &mut Secrets,
    say: &mut Say,
) -> Result<(), Error> {
    say.out.old_key_fingerprint = Some(fingerprint(old.expose()));
    let agent = agents
        .first()
        .context("no server is reachable over SSH with its agent running")?;
    let timeout = Duration::from_secs(args.timeout);
    // Every member alive before anything changes (and after every step).
    let check = |view: &ClusterView| verify::check(cluster, binds, view);
    refuse_unless_healthy(agent, &check).await?;

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
    say.out.through = Some(agent.host.clone());
    say.line(&format!(
        "rotating the gossip key {} -> {} through {}",
        fingerprint(old.expose()),
        fingerprint(new.expose()),
        agent.host
    ));
    rotate_keyring(
        agent,
        old,
        &new,
        &check,
        &TokioClock,
        timeout,
        &mut |line| say.step(line),
    )
    .await?;

    // Last: the secrets file.
    store.set(GOSSIP_KEY, &new);
    store.remove(GOSSIP_KEY_NEXT);
    store.save()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_api::testing::{FakeTransport, ManualClock};
    use consul_api::Response;

    fn pools(lan: &[(&str, u32)], nodes: u32) -> Vec<KeyringResponse> {
        vec![KeyringResponse {
            wan: false,
            datacenter: "dc1".into(),
            keys: lan.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            num_nodes: nodes,
            ..Default::default()
        }]
    }

    #[test]
    fn a_key_is_everywhere_only_when_every_member_has_it() {
        assert!(everywhere(&pools(&[("a", 5), ("b", 5)], 5), "b"));
        assert!(!everywhere(&pools(&[("a", 5), ("b", 4)], 5), "b"));
        assert!(!everywhere(&[], "b"));
        assert!(!everywhere(&pools(&[], 0), "b"));
        assert!(!only(&pools(&[("a", 5), ("b", 5)], 5), "b"));
        assert!(only(&pools(&[("b", 5)], 5), "b"));
    }

    #[test]
    fn parses_the_keyring_answer() {
        let body = "[{\"WAN\":false,\"Datacenter\":\"dc1\",\"Segment\":\"\",\"Keys\":{\"k1\":3},\"NumNodes\":3}]\n";
        let p = operator::keyring_list()
            .finish(&Response::new(200, body))
            .unwrap();
        assert_eq!(p[0].keys["k1"], 3);
        assert!(everywhere(&p, "k1"));
        assert!(operator::keyring_list()
            .finish(&Response::new(200, "nothing"))
            .is_err());
    }

    // --- the rotation over Consul's answers (fixtures in tests/fixtures/consul) ------------

    const OLD: &str = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
    const NEW: &str = "Z3Nq9wTtXQ3bq2cXmZq6x6vD4XxH2yRZlY3n4nQk8hE=";

    fn fixtures(names: &[&str]) -> FakeTransport {
        names.iter().fold(FakeTransport::new(), |f, n| {
            f.load_file(format!(
                "{}/tests/fixtures/consul/{n}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        })
    }

    fn via(fake: &FakeTransport) -> Via {
        Via::new("server1", Client::new(fake.clone()))
    }

    /// Every member alive (what `verify::check` asks of members, without an inventory).
    fn all_alive(view: &ClusterView) -> Vec<String> {
        view.members
            .iter()
            .filter(|m| !m.is_alive())
            .map(|m| format!("{} is {}", m.name, m.status_word()))
            .collect()
    }

    const VIEW: [&str; 3] = [
        "GET /v1/status/leader",
        "GET /v1/operator/raft/configuration?stale",
        "GET /v1/agent/members",
    ];

    #[tokio::test]
    async fn rotation_installs_then_uses_then_removes() {
        let fake = fixtures(&["healthy-3-servers.json", "keyring-rotation.json"]);
        let v = via(&fake);
        refuse_unless_healthy(&v, &all_alive).await.unwrap();
        fake.clear_record();
        let mut steps = Vec::new();
        rotate_keyring(
            &v,
            &Secret::new(OLD),
            &Secret::new(NEW),
            &all_alive,
            &ManualClock::new(),
            Duration::from_secs(60),
            &mut |s| steps.push(s.to_string()),
        )
        .await
        .unwrap();
        assert_eq!(
            steps,
            [
                "installed the new key on every member",
                "every member encrypts with the new key",
                "removed the old key: the new key is the only one installed",
            ]
        );
        let mut want = vec!["POST /v1/operator/keyring", "GET /v1/operator/keyring"];
        want.extend(VIEW);
        want.push("PUT /v1/operator/keyring");
        want.extend(VIEW);
        want.push("DELETE /v1/operator/keyring");
        want.push("GET /v1/operator/keyring");
        want.extend(VIEW);
        assert_eq!(fake.sent(), want);
        // The key of each change is in its body: the new one installed and used, the old one
        // removed.
        let bodies: Vec<String> = fake
            .requests()
            .iter()
            .filter(|r| r.body.is_some())
            .map(|r| r.body_text())
            .collect();
        assert_eq!(
            bodies,
            [
                format!("{{\"Key\":\"{NEW}\"}}"),
                format!("{{\"Key\":\"{NEW}\"}}"),
                format!("{{\"Key\":\"{OLD}\"}}"),
            ]
        );
    }

    #[tokio::test]
    async fn rotation_stops_before_use_while_a_member_lacks_the_new_key() {
        let fake = fixtures(&[
            "healthy-3-servers.json",
            "keyring-new-key-missing-on-one-member.json",
        ]);
        let clock = ManualClock::new();
        let mut steps = Vec::new();
        let e = rotate_keyring(
            &via(&fake),
            &Secret::new(OLD),
            &Secret::new(NEW),
            &all_alive,
            &clock,
            Duration::from_secs(60),
            &mut |s| steps.push(s.to_string()),
        )
        .await
        .unwrap_err();
        let msg = format!("{e:#}");
        assert_eq!(
            msg,
            format!(
                "not every member has the new key within 60s: WAN pool: {n} on 3/3, {o} on 3/3; \
                 LAN pool: {n} on 3/4, {o} on 4/4",
                o = fingerprint(OLD),
                n = fingerprint(NEW)
            )
        );
        assert!(!msg.contains(NEW) && !msg.contains(OLD), "{msg}");
        assert!(steps.is_empty());
        // Installed, then only keyring reads for the whole timeout: never used, nothing removed.
        let sent = fake.sent();
        assert_eq!(sent[0], "POST /v1/operator/keyring");
        assert!(
            sent[1..].iter().all(|l| l == "GET /v1/operator/keyring"),
            "{sent:?}"
        );
        assert_eq!(sent.len(), 1 + 121);
        assert_eq!(fake.count("PUT", "/v1/operator/keyring"), 0);
        assert_eq!(fake.count("DELETE", "/v1/operator/keyring"), 0);
        assert_eq!(clock.slept(), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn rotation_is_refused_with_exit_2_while_a_member_is_down() {
        let fake = fixtures(&["one-server-failed.json", "keyring-rotation.json"]);
        let e = refuse_unless_healthy(&via(&fake), &all_alive)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e:?}");
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.to_string(),
            "refusing to rotate\n  caused by: the cluster is not healthy: server3 is failed"
        );
        assert_eq!(fake.sent(), VIEW, "no keyring request");
    }

    #[tokio::test]
    async fn a_refused_keyring_change_hides_the_key_and_stops() {
        // The PUT's first answer is a refusal (the fixture's 200 comes after it).
        let fake = ["healthy-3-servers.json", "keyring-rotation.json"]
            .iter()
            .fold(
                FakeTransport::new().on(
                    "PUT",
                    "/v1/operator/keyring",
                    500,
                    &format!("1/4 nodes reported failure: key {NEW} is not installed"),
                ),
                |f, n| {
                    f.load_file(format!(
                        "{}/tests/fixtures/consul/{n}",
                        env!("CARGO_MANIFEST_DIR")
                    ))
                    .unwrap()
                },
            );
        let mut steps = Vec::new();
        let e = rotate_keyring(
            &via(&fake),
            &Secret::new(OLD),
            &Secret::new(NEW),
            &all_alive,
            &ManualClock::new(),
            Duration::from_secs(60),
            &mut |s| steps.push(s.to_string()),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "switching to the new key failed: HTTP 500: 1/4 nodes reported failure: key <key> is not installed"
        );
        assert_eq!(steps, ["installed the new key on every member"]);
        assert_eq!(fake.count("DELETE", "/v1/operator/keyring"), 0);
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
