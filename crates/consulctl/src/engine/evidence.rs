//! Evidence about each host's agent for diagnosis: its state, its view of members and leader
//! (through the API client) and its recent log (`remote/doctor.sh`, read-only), made into
//! `diagnose` observations. Used by `doctor` and by the rollout when verify fails (to say why).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::engine::context::HostRun;
use crate::engine::execute::path_arg;
use crate::engine::verify::{self, Member, RaftServer};
use consulctl_core::diagnose::{self, AgentApi, Expected, ExpectedHost, Observation};
use consulctl_core::model::{Cluster, Host};

pub const HEADER: &str = "consulctl-doctor 1";

/// What `doctor.sh` printed, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub clock_ms: Option<i64>,
    pub agent_pid: Option<u32>,
    pub init_state: Option<String>,
    pub restarts: Option<u32>,
    pub agent_user: Option<String>,
    pub node_id: Option<String>,
    /// sha256 of each key in `serf/local.keyring`; None when the file is missing.
    pub keyring: Option<Vec<String>>,
    /// (exists, writable)
    pub data_dir: Option<(bool, bool)>,
    /// (port, process) listening on Consul's ports.
    pub listeners: Vec<(u16, String)>,
    /// What the agent answered on its API (read through the API client, not the script).
    pub api: AgentAnswers,
    pub log: Vec<String>,
}

/// Parse `doctor.sh` output. Lines before the header are ignored (login noise); a missing
/// trailer means the output was cut off.
pub fn parse_output(stdout: &str) -> Result<Evidence> {
    let mut ev = Evidence::default();
    let mut lines = stdout.lines().skip_while(|l| *l != HEADER);
    if lines.next().is_none() {
        bail!("the doctor script printed no header");
    }
    let mut complete = false;
    for line in lines {
        let (key, val) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "end" => {
                complete = true;
                break;
            }
            "clock_ms" => ev.clock_ms = val.trim().parse().ok(),
            "agent_pid" => ev.agent_pid = val.trim().parse().ok(),
            "init_state" if !val.trim().is_empty() => ev.init_state = Some(val.trim().into()),
            "restarts" => ev.restarts = val.trim().parse().ok(),
            "agent_user" => ev.agent_user = Some(val.trim().into()),
            "node_id" if !val.trim().is_empty() => ev.node_id = Some(val.trim().into()),
            "keyring" => ev
                .keyring
                .get_or_insert_with(Vec::new)
                .push(val.trim().into()),
            "keyring_missing" => ev.keyring = None,
            "data_dir" => {
                let mut it = val.split_whitespace();
                let exists = it.next() == Some("1");
                let writable = it.next() == Some("1");
                ev.data_dir = Some((exists, writable));
            }
            "listen" => {
                let mut it = val.splitn(2, ' ');
                if let Some(Ok(port)) = it.next().map(str::parse::<u16>) {
                    ev.listeners
                        .push((port, it.next().unwrap_or("?").trim().to_string()));
                }
            }
            "log" => ev.log.push(val.to_string()),
            _ => {}
        }
    }
    if !complete {
        bail!("the doctor script's output was cut off (no `end` line)");
    }
    Ok(ev)
}

/// The agent's answers to leader, raft configuration (stale) and members: each None (raft:
/// empty) when the agent did not give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentAnswers {
    /// `IP:8300` of the leader the agent knows.
    pub leader: Option<String>,
    pub raft: Vec<RaftServer>,
    pub members: Option<Vec<Member>>,
    /// The self checks of consulctl-host's daemons (registrar, LB sync) the agent has, by
    /// CheckID.
    pub daemon_checks: std::collections::BTreeMap<String, consul_api::HealthCheck>,
    /// Every check of the datacenter: read through servers only (see [`read_all_checks`]).
    pub all_checks: Vec<consul_api::HealthCheck>,
}

/// Every check of the datacenter (`/v1/health/state/any`), for the checks nothing runs (of
/// nodes without an agent); empty when the agent does not answer.
pub async fn read_all_checks(client: &consul_api::Client) -> Vec<consul_api::HealthCheck> {
    client
        .call(consul_api::health::state("any"))
        .await
        .unwrap_or_else(|e| {
            tracing::debug!(via = %client.describe(), error = %e, "reading every check");
            vec![]
        })
}

/// Ask the agent for leader, raft configuration, members and its checks (one round trip).
pub async fn read_api(client: &consul_api::Client) -> AgentAnswers {
    let (leader, raft, members, checks) = client
        .call4(
            consul_api::status::leader(),
            consul_api::operator::raft_configuration(true),
            consul_api::agent::members(false),
            consul_api::agent::checks(),
        )
        .await;
    if let Err(e) = &members {
        tracing::debug!(via = %client.describe(), error = %e, "the agent did not answer");
    }
    AgentAnswers {
        leader: leader.ok().flatten(),
        raft: raft.map(|c| c.servers).unwrap_or_default(),
        members: members.ok(),
        daemon_checks: checks
            .map(|c| {
                c.into_iter()
                    .filter(|(id, _)| {
                        consulctl_core::diagnose::DAEMON_CHECKS.contains(&id.as_str())
                    })
                    .collect()
            })
            .unwrap_or_default(),
        all_checks: vec![],
    }
}

/// The agent's answers, from the API part of the evidence. None when it did not answer.
pub fn agent_api(host: &Host, bind: Option<IpAddr>, ev: &Evidence) -> Option<AgentApi> {
    let members = ev.api.members.clone()?;
    let leader = ev.api.leader.clone().filter(|l| !l.is_empty());
    let raft = ev.api.raft.clone();
    // The agent's own member entry: by name, else by its bind address.
    let own = members.iter().find(|m| m.name == host.name).or_else(|| {
        let ip = bind?.to_string();
        members.iter().find(|m| m.addr == ip)
    });
    Some(AgentApi {
        node_name: own.map(|m| m.name.clone()),
        datacenter: own.and_then(|m| m.tags.get("dc").cloned()),
        node_id: own.and_then(|m| m.tags.get("id").cloned()),
        leader,
        raft,
        members,
        daemon_checks: ev.api.daemon_checks.clone(),
        all_checks: ev.api.all_checks.clone(),
    })
}

/// The log lines of the last `window_ms` before `now_ms` (the host's clock). Consul stamps its
/// lines `2024-01-02T03:04:05.678Z [INFO] ...` (1.8+) or `2019/01/02 03:04:05 [INFO] ...`
/// (older); a line without a stamp (a continuation, `==> ...`) goes with the line before it.
/// Old lines describe problems that may be long fixed: doctor judges the present.
pub fn recent(lines: Vec<String>, now_ms: i64, window_ms: i64) -> Vec<String> {
    let cutoff = now_ms - window_ms;
    let mut keep = true;
    lines
        .into_iter()
        .filter(|l| {
            if let Some(ms) = log_time_ms(l) {
                keep = ms >= cutoff;
            }
            keep
        })
        .collect()
}

/// The time stamp at the start of a Consul log line, in ms since the epoch (UTC).
pub fn log_time_ms(line: &str) -> Option<i64> {
    let line = line.trim_start();
    let head = line.get(..19)?;
    let fmt = if head.as_bytes().get(4) == Some(&b'/') {
        "%Y/%m/%d %H:%M:%S"
    } else {
        "%Y-%m-%dT%H:%M:%S"
    };
    let t = chrono::NaiveDateTime::parse_from_str(head, fmt).ok()?;
    Some(t.and_utc().timestamp_millis())
}

/// sha256 (hex) of a gossip key's base64 text: what `doctor.sh` prints per keyring entry.
pub fn key_fingerprint(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

pub fn expected(cluster: &Cluster, binds: &BTreeMap<String, IpAddr>) -> Expected {
    Expected {
        inventory: cluster.inventory_path.display().to_string(),
        datacenter: cluster.datacenter.clone(),
        hosts: cluster
            .hosts
            .iter()
            .map(|h| ExpectedHost {
                name: h.name.clone(),
                role: h.role,
                address: h.address.clone(),
                bind: binds.get(&h.name).copied(),
                registrar: h.registrar.is_some(),
                lb: h.lb.is_some(),
            })
            .collect(),
        encrypt_fingerprint: cluster
            .encrypt
            .as_ref()
            .map(|k| key_fingerprint(k.expose())),
    }
}

/// How long the agent may take to answer the doctor's API reads.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Read one host: `doctor.sh`, timed for the clock offset, then the agent's API (a second
/// round trip).
async fn read_host(r: &HostRun, bind: Option<IpAddr>, log_lines: u32) -> Result<(Evidence, i64)> {
    let conn = r.conn.as_ref().context("not connected")?;
    let host = &r.host;
    let http = verify::agent_url(host, bind);
    let args = vec![
        host.init.as_str().to_string(),
        path_arg(&host.paths.data_dir),
        path_arg(&host.paths.log_dir),
        http.clone(),
        log_lines.to_string(),
    ];
    let before = chrono::Utc::now().timestamp_millis();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        conn.run_ok("doctor", crate::remote::DOCTOR, &args, None),
    )
    .await
    .map_err(|_| anyhow!("the doctor script did not finish within 60s"))??;
    let after = chrono::Utc::now().timestamp_millis();
    let mut ev = parse_output(&out.stdout)?;
    let client = crate::remote::consul::client(conn, &http);
    ev.api = tokio::time::timeout(API_TIMEOUT, read_api(&client))
        .await
        .unwrap_or_else(|_| {
            tracing::debug!(host = %host.name, "the agent's API did not answer in time");
            AgentAnswers::default()
        });
    if host.role == consulctl_core::model::Role::Server && ev.api.members.is_some() {
        ev.api.all_checks = tokio::time::timeout(API_TIMEOUT, read_all_checks(&client))
            .await
            .unwrap_or_default();
    }
    // The script reads its clock first thing, one SSH one-way trip (milliseconds on a
    // multiplexed connection) after `before`: far below the 5 s that count as skew.
    let offset = ev.clock_ms.map(|c| c - before).unwrap_or(0);
    tracing::debug!(host = %host.name, offset_ms = offset, round_trip_ms = after - before, "clock");
    Ok((ev, offset))
}

fn observation(
    r: &HostRun,
    bind: Option<IpAddr>,
    read: Result<(Evidence, i64)>,
    window_ms: i64,
) -> Observation {
    let mut obs = Observation {
        host: r.host.name.clone(),
        ..Default::default()
    };
    // A host that failed a later phase (start, acl ...) was still reached: read it.
    if let Some((phase, err)) = &r.failed {
        if r.conn.is_none() || phase == "connect" || phase == "gather facts" {
            obs.unreachable = Some(format!("{phase}: {err}"));
            return obs;
        }
    }
    if let Some(f) = &r.facts {
        obs.addresses = f.addresses.clone();
        obs.agent_pid = f.consul_pid;
        obs.installed = Some(f.consul.is_some() || f.consul_pid.is_some());
    }
    match read {
        Err(e) => obs.unreachable = Some(format!("doctor: {e:#}")),
        Ok((ev, offset)) => {
            obs.agent_pid = ev.agent_pid.or(obs.agent_pid);
            if obs.agent_pid.is_some() {
                obs.installed = Some(true);
            }
            obs.init_state = ev.init_state.clone();
            obs.restarts = ev.restarts;
            obs.node_id = ev.node_id.clone();
            obs.keyring = ev.keyring.clone();
            obs.data_dir_writable = ev.data_dir.map(|(exists, w)| exists && w);
            obs.clock_offset_ms = ev.clock_ms.map(|_| offset);
            obs.foreign_listeners = ev
                .listeners
                .iter()
                // "?": ss could not tell the process (no ptrace access to another user's
                // process, as in containers): not evidence of a foreign program.
                .filter(|(_, p)| p != "consul" && p != "?")
                .cloned()
                .collect();
            obs.api = agent_api(&r.host, bind, &ev);
            obs.log = match ev.clock_ms {
                Some(now) => recent(ev.log, now, window_ms),
                None => ev.log,
            };
        }
    }
    obs
}

/// Read every connected host with the doctor script (one round trip each, `concurrency` at
/// a time) into observations for [`diagnose::diagnose`].
pub async fn observe(
    runs: &[HostRun],
    binds: &BTreeMap<String, IpAddr>,
    concurrency: usize,
    lines: u32,
    since_min: u32,
) -> Vec<Observation> {
    observe_except(runs, binds, concurrency, lines, since_min, &BTreeMap::new()).await
}

/// [`observe`], except for the hosts in `skip` (name -> why): not read, their observation
/// says why (see [`Observation::skipped`]).
async fn observe_except(
    runs: &[HostRun],
    binds: &BTreeMap<String, IpAddr>,
    concurrency: usize,
    lines: u32,
    since_min: u32,
    skip: &BTreeMap<String, String>,
) -> Vec<Observation> {
    let window_ms = i64::from(since_min) * 60_000;
    let reads: Vec<(usize, Result<(Evidence, i64)>)> = futures::stream::iter(
        runs.iter()
            .enumerate()
            .filter(|(_, r)| r.conn.is_some() && !skip.contains_key(&r.host.name)),
    )
    .map(|(i, r)| {
        let bind = binds.get(&r.host.name).copied();
        async move { (i, read_host(r, bind, lines).await) }
    })
    .buffer_unordered(concurrency)
    .collect()
    .await;
    let mut reads: BTreeMap<usize, Result<(Evidence, i64)>> = reads.into_iter().collect();
    runs.iter()
        .enumerate()
        .map(|(i, r)| {
            if let Some(why) = skip.get(&r.host.name) {
                return Observation {
                    host: r.host.name.clone(),
                    skipped: Some(why.clone()),
                    ..Default::default()
                };
            }
            let read = reads.remove(&i).unwrap_or_else(|| Err(anyhow!("not read")));
            observation(r, binds.get(&r.host.name).copied(), read, window_ms)
        })
        .collect()
}

/// Phases of a rollout before any agent is (re)started: a host that failed in one of them is
/// not what keeps the cluster from verifying (this run never started anything there), and its
/// error in the recap is the whole story. Doctor's findings would only describe what it looks
/// like before a rollout (no agent yet, no data dir, not a member).
const PHASES_BEFORE_START: [&str; 6] = [
    "connect",
    "gather facts",
    "validate",
    "lock",
    "upload",
    "configure",
];

/// The hosts [`explain`] does not read: those that failed before the start phase.
pub fn failed_before_start(runs: &[HostRun]) -> BTreeMap<String, String> {
    runs.iter()
        .filter_map(|r| {
            let (phase, err) = r.failed.as_ref()?;
            PHASES_BEFORE_START
                .contains(&phase.as_str())
                .then(|| (r.host.name.clone(), format!("{phase}: {err}")))
        })
        .collect()
}

/// Why a rollout did not verify: the doctor's findings on the hosts of this run (the last
/// 5 minutes of logs), one line each: "CODE (HOSTS): cause; fix: ...".
pub async fn explain(
    cluster: &Cluster,
    runs: &[HostRun],
    binds: &BTreeMap<String, IpAddr>,
    concurrency: usize,
) -> Vec<String> {
    let skip = failed_before_start(runs);
    let obs = observe_except(runs, binds, concurrency, 200, 5, &skip).await;
    let findings = diagnose::diagnose(&expected(cluster, binds), &obs);
    findings
        .iter()
        // Why the cluster is not healthy: checks of agentless nodes are doctor's business.
        .filter(|f| f.code != diagnose::FindingCode::ExternalCheckNeverRun)
        .map(|f| {
            let mut line = format!("{} ({}): {}", f.code, f.hosts.join(", "), f.cause);
            if !f.fix.is_empty() {
                line.push_str(&format!("; fix: {}", f.fix.join("; ")));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_api::testing::{block_on, FakeTransport};
    use consul_api::Client;

    const SAMPLE: &str =
        "motd noise\nconsulctl-doctor 1\nclock_ms 1700000000123\ninit_state active\nrestarts 0\n\
agent_pid 4242\nagent_user root\nnode_id 0b9d7d0e-3c56-4a5e-8f0f-111111111111\n\
keyring 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\ndata_dir 1 1\n\
listen 8500 consul\nlisten 8600 dnsmasq\n\
log 2024-01-01T00:00:00.000Z [INFO]  agent: Consul agent running!\n\
log ==> Starting Consul agent...\nend\n";

    const MEMBERS: &str = r#"[{"Name":"server1","Addr":"10.0.0.1","Status":1,"Tags":{"dc":"dc1","id":"0b9d","role":"consul"}}]"#;

    /// The agent of the sample host, healthy.
    fn sample_agent() -> FakeTransport {
        FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
            .on(
                "GET",
                "/v1/operator/raft/configuration?stale",
                200,
                r#"{"Servers":[{"ID":"x","Node":"server1","Address":"10.0.0.1:8300","Leader":true,"Voter":true}]}"#,
            )
            .on("GET", "/v1/agent/members", 200, MEMBERS)
            .on(
                "GET",
                "/v1/agent/checks",
                200,
                r#"{"consulctl-registrar":{"CheckID":"consulctl-registrar","Status":"warning","Output":"container web3: SERVICE_CHECK_INTERVAL"},
                    "consulctl-lb":{"CheckID":"consulctl-lb","Status":"critical","Output":"nginx: [emerg] unknown directive \"bogus\""},
                    "service:web1":{"CheckID":"service:web1","Status":"passing","Output":""}}"#,
            )
    }

    /// The sample script output with the answers of `agent`.
    fn sample(agent: FakeTransport) -> Evidence {
        let mut ev = parse_output(SAMPLE).unwrap();
        ev.api = block_on(read_api(&Client::new(agent)));
        ev
    }

    #[test]
    fn parses_the_doctor_output() {
        let ev = parse_output(SAMPLE).unwrap();
        assert_eq!(ev.api, AgentAnswers::default(), "the script reads no API");
        let fake = sample_agent();
        let ev = sample(fake.clone());
        assert_eq!(fake.batches(), [4], "one round trip");
        let checks = &ev.api.daemon_checks;
        assert_eq!(
            checks.keys().collect::<Vec<_>>(),
            ["consulctl-lb", "consulctl-registrar"],
            "only the daemons' checks"
        );
        assert_eq!(checks["consulctl-registrar"].status, "warning");
        assert!(checks["consulctl-lb"].output.contains("bogus"));
        assert_eq!(ev.clock_ms, Some(1_700_000_000_123));
        assert_eq!(ev.agent_pid, Some(4242));
        assert_eq!(ev.init_state.as_deref(), Some("active"));
        assert_eq!(ev.restarts, Some(0));
        assert_eq!(
            ev.node_id.as_deref(),
            Some("0b9d7d0e-3c56-4a5e-8f0f-111111111111")
        );
        assert_eq!(ev.keyring.as_ref().map(Vec::len), Some(1));
        assert_eq!(ev.data_dir, Some((true, true)));
        assert_eq!(
            ev.listeners,
            vec![(8500, "consul".into()), (8600, "dnsmasq".into())]
        );
        assert_eq!(ev.api.leader.as_deref(), Some("10.0.0.1:8300"));
        assert_eq!(ev.api.raft.len(), 1);
        assert_eq!(ev.api.members.as_ref().map(Vec::len), Some(1));
        assert_eq!(ev.log.len(), 2);
        assert_eq!(ev.log[1], "==> Starting Consul agent...");
    }

    #[test]
    fn cut_off_output_is_an_error() {
        let cut = SAMPLE.replace("end\n", "");
        assert!(parse_output(&cut).is_err());
        assert!(parse_output("nothing").is_err());
    }

    #[test]
    fn agent_api_finds_its_own_member_entry() {
        let ev = sample(sample_agent());
        let host = server1_host();
        let api = agent_api(&host, Some("10.0.0.1".parse().unwrap()), &ev).unwrap();
        assert_eq!(api.leader.as_deref(), Some("10.0.0.1:8300"));
        assert_eq!(api.datacenter.as_deref(), Some("dc1"));
        assert_eq!(api.raft.len(), 1);
        assert_eq!(api.members.len(), 1);
    }

    #[test]
    fn no_members_answer_means_the_agent_did_not_answer() {
        let host = server1_host();
        let ev = sample(
            FakeTransport::new()
                .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
                .on("GET", "/v1/agent/members", 500, "rpc error"),
        );
        assert_eq!(ev.api.leader.as_deref(), Some("10.0.0.1:8300"));
        assert!(agent_api(&host, None, &ev).is_none());
        // Nothing listens: no answer at all.
        let ev = sample(FakeTransport::new().fail_all(
            "GET http://127.0.0.1:8500/v1/status/leader: (7) Failed to connect to 127.0.0.1 port 8500",
        ));
        assert_eq!(ev.api, AgentAnswers::default());
        assert!(agent_api(&host, None, &ev).is_none());
        // No leader: the members still answer.
        let ev = sample(
            FakeTransport::new()
                .on("GET", "/v1/status/leader", 200, "\"\"")
                .on(
                    "GET",
                    "/v1/operator/raft/configuration",
                    500,
                    "No cluster leader",
                )
                .on("GET", "/v1/agent/members", 200, MEMBERS),
        );
        let api = agent_api(&host, None, &ev).unwrap();
        assert_eq!(api.leader, None);
        assert!(api.raft.is_empty());
        assert_eq!(api.node_name.as_deref(), Some("server1"));
    }

    #[test]
    fn recent_keeps_the_window_and_unstamped_lines_follow_their_predecessor() {
        let now = log_time_ms("2024-01-02T03:10:00.000Z").unwrap();
        let lines: Vec<String> = [
            "2024-01-02T02:00:00.000Z [ERROR] agent: old problem",
            "    continuation of the old problem",
            "==> Starting Consul agent...",
            "2024-01-02T03:05:00.000Z [INFO]  agent: recent",
            "    continuation of the recent line",
            "2019/01/02 03:04:05 [ERR] memberlist: very old format",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let kept = recent(lines, now, 10 * 60_000);
        assert_eq!(
            kept,
            vec![
                "2024-01-02T03:05:00.000Z [INFO]  agent: recent".to_string(),
                "    continuation of the recent line".to_string(),
            ]
        );
        assert_eq!(
            log_time_ms("2019/01/02 03:04:05 [ERR] x"),
            Some(1_546_398_245_000)
        );
        assert_eq!(log_time_ms("==> Starting"), None);
    }

    const FRESH_HOST: &str = include_str!("../../tests/fixtures/doctor/fresh-host.doctor");

    fn expected_lab() -> Expected {
        let host = |name: &str, role, address: &str| ExpectedHost {
            name: name.into(),
            role,
            address: address.into(),
            bind: Some(address.parse().unwrap()),
            registrar: false,
            lb: false,
        };
        Expected {
            inventory: "lab.toml".into(),
            datacenter: "dc1".into(),
            hosts: vec![
                host("server1", consulctl_core::model::Role::Server, "10.0.0.1"),
                host("client1", consulctl_core::model::Role::Client, "10.0.0.2"),
            ],
            encrypt_fingerprint: None,
        }
    }

    /// The systemd server the fixtures were read from.
    fn server1_host() -> Host {
        Host::minimal(
            "server1",
            "10.0.0.1",
            consulctl_core::model::Role::Server,
            consulctl_core::model::Init::Systemd,
            consulctl_core::model::BindAddr::Fixed("10.0.0.1".parse().unwrap()),
        )
    }

    /// server1 healthy and alone in its member list: client1 never joined.
    fn healthy_server1() -> Observation {
        let ev = sample(sample_agent());
        let host = server1_host();
        Observation {
            host: "server1".into(),
            agent_pid: ev.agent_pid,
            init_state: ev.init_state.clone(),
            restarts: Some(0),
            data_dir_writable: Some(true),
            installed: Some(true),
            api: agent_api(&host, Some("10.0.0.1".parse().unwrap()), &ev),
            ..Default::default()
        }
    }

    fn client1_run(failed: Option<(&str, &str)>) -> HostRun {
        let mut r = HostRun::new_pub(Host::minimal(
            "client1",
            "10.0.0.2",
            consulctl_core::model::Role::Client,
            consulctl_core::model::Init::Systemd,
            consulctl_core::model::BindAddr::Fixed("10.0.0.2".parse().unwrap()),
        ));
        r.facts = Some(consulctl_core::facts::Facts::default()); // no binary, no agent
        r.failed = failed.map(|(p, e)| (p.to_string(), e.to_string()));
        r
    }

    #[test]
    fn a_host_without_consul_is_reported_as_such_not_as_a_data_dir_problem() {
        let ev = parse_output(FRESH_HOST).unwrap();
        assert_eq!(ev.data_dir, Some((false, false)));
        assert_eq!(ev.agent_pid, None);
        let r = client1_run(None);
        let obs = observation(&r, None, Ok((ev, 0)), 600_000);
        assert_eq!(obs.installed, Some(false));
        assert_eq!(obs.data_dir_writable, Some(false));
        let findings = diagnose::diagnose(&expected_lab(), &[healthy_server1(), obs]);
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["no-agent"], "{findings:#?}");
        assert_eq!(findings[0].hosts, ["client1"]);
        assert!(findings[0].cause.contains("not installed"), "{findings:#?}");
        let text = diagnose::to_text(&findings);
        assert!(
            !text.contains("data dir") && !text.contains("SSH"),
            "{text}"
        );
    }

    #[test]
    fn a_host_that_failed_before_start_is_not_diagnosed_again() {
        // The rollout's own error names it; doctor adds nothing about it (not "cannot write its
        // data dir", not "not a member").
        let runs = [client1_run(Some((
            "validate",
            "bind_cidr 192.0.2.0/24: no address of this host is in 192.0.2.0/24",
        )))];
        let skip = failed_before_start(&runs);
        assert_eq!(
            skip.get("client1").map(String::as_str),
            Some("validate: bind_cidr 192.0.2.0/24: no address of this host is in 192.0.2.0/24")
        );
        let skipped = Observation {
            host: "client1".into(),
            skipped: skip.get("client1").cloned(),
            ..Default::default()
        };
        let findings = diagnose::diagnose(&expected_lab(), &[healthy_server1(), skipped]);
        assert!(findings.is_empty(), "{findings:#?}");
        // Failures from the start phase on are diagnosed (the agent this run started).
        for phase in ["start", "acl", "start servers"] {
            assert!(failed_before_start(&[client1_run(Some((phase, "x")))]).is_empty());
        }
        for phase in ["connect", "gather facts", "lock", "upload", "configure"] {
            assert_eq!(
                failed_before_start(&[client1_run(Some((phase, "x")))]).len(),
                1
            );
        }
    }

    #[test]
    fn sudo_wanting_a_password_is_not_an_ssh_login_failure() {
        let run = client1_run(Some((
            "gather facts",
            "client1: the SSH user cannot run `sudo -n` without a password; give it passwordless \
             sudo (NOPASSWD) or connect as root",
        )));
        let obs = observation(&run, None, Err(anyhow!("not read")), 1);
        let findings = diagnose::diagnose(&expected_lab(), &[healthy_server1(), obs]);
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["sudo-password"], "{findings:#?}");
        let text = diagnose::to_text(&findings);
        assert!(text.contains("SSH works"), "{text}");
        assert!(text.contains("NOPASSWD"), "{text}");
        assert!(!text.contains("could not log in"), "{text}");
    }

    #[test]
    fn a_host_that_does_not_answer_is_not_told_it_is_up() {
        let run = client1_run(Some((
            "connect",
            "cannot connect to root@10.0.0.2:22: ssh: connect to host 10.0.0.2 port 22: \
             Connection timed out",
        )));
        let obs = observation(&run, None, Err(anyhow!("not read")), 1);
        let findings = diagnose::diagnose(&expected_lab(), &[healthy_server1(), obs]);
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["unreachable"], "{findings:#?}");
        let fix = findings[0].fix.join("\n");
        assert!(!fix.contains("(the host is up;"), "{fix}");
        assert!(
            fix.contains("client1 (10.0.0.2) did not answer over SSH: check that the host is up"),
            "{fix}"
        );
        // A refused login: the host answers, the credentials are what to check.
        let run = client1_run(Some((
            "connect",
            "cannot connect to root@10.0.0.2:22: root@10.0.0.2: Permission denied (publickey).",
        )));
        let obs = observation(&run, None, Err(anyhow!("not read")), 1);
        let findings = diagnose::diagnose(&expected_lab(), &[healthy_server1(), obs]);
        assert!(
            findings[0].fix[0].contains("answers but refused the SSH login"),
            "{findings:#?}"
        );
    }

    #[test]
    fn key_fingerprint_matches_sha256sum_of_the_base64_text() {
        // printf %s 'test' | sha256sum
        assert_eq!(
            key_fingerprint("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
