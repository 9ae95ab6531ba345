//! What `consulctl plan` prints: per host its actions, notes and a unified diff of every file it
//! would write, as text or one JSON object. Both sides of every diff are redacted
//! ([`consulctl_core::redact`]): the inventory's secrets and whatever secret the host's current file holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::engine::context::HostRun;
use consulctl_core::desired::{DesiredFile, FileKind};
use consulctl_core::model::Cluster;
use consulctl_core::redact::Marks;

impl crate::engine::output::Report for PlanReport {
    fn to_text(&self) -> String {
        PlanReport::to_text(self)
    }
    fn to_json(&self) -> String {
        PlanReport::to_json(self)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub hosts: Vec<PlanHost>,
    pub totals: PlanTotals,
    pub duration_ms: u64,
    pub debug_log: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanHost {
    pub name: String,
    /// `change`, `unchanged` or `failed`.
    pub status: &'static str,
    pub actions: Vec<PlanAction>,
    pub notes: Vec<String>,
    pub files: Vec<PlanFile>,
    /// Why the files on the host could not be read for the diffs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
    /// The phase and error the host failed with (then nothing else is planned for it).
    pub failed: Option<PlanFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanAction {
    /// The action's kind (`write_file`, `restart`, ...).
    pub action: String,
    /// What it does, in words (as the text output prints it).
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanFile {
    pub path: String,
    pub kind: FileKind,
    /// The file holds secrets (their values are redacted on both sides of the diff).
    pub secret: bool,
    /// Unified diff against the file on the host (`--- /dev/null` when it is new); None when
    /// the content is not shown (TLS files).
    pub diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanFailure {
    pub phase: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanTotals {
    pub hosts: usize,
    pub to_change: usize,
    pub unchanged: usize,
    pub failed: usize,
}

/// Every secret value the cluster's model holds (gossip key, ACL tokens), for value redaction
/// besides the structural one.
pub fn cluster_secrets(cluster: &Cluster) -> Vec<String> {
    let mut s: Vec<String> = Vec::new();
    s.extend(cluster.encrypt.iter().map(|k| k.expose().to_string()));
    s.extend(
        cluster
            .acl_tokens
            .management
            .iter()
            .map(|k| k.expose().to_string()),
    );
    s.extend(
        cluster
            .acl_tokens
            .agents
            .values()
            .chain(cluster.acl_tokens.registrars.values())
            .chain(cluster.acl_tokens.lbs.values())
            .map(|t| t.secret.expose().to_string()),
    );
    s
}

/// One file's entry: its diff with both sides redacted (numbered marks: a changed secret shows
/// as `-... <redacted 1>` / `+... <redacted 2>`).
fn file_entry(f: &DesiredFile, old: &str, secrets: &[String], marks: &mut Marks) -> PlanFile {
    let path = f.path.display().to_string();
    if f.kind == FileKind::TlsFile {
        // Certificates are noise in a diff, private keys must never be shown.
        return PlanFile {
            path,
            kind: f.kind,
            secret: f.secret,
            diff: None,
            note: Some("TLS file changed (content not shown)".into()),
        };
    }
    if f.secret && f.kind == FileKind::HelperConfig {
        // A token file (the registrar's): nothing but the secret, whatever the host holds now.
        return PlanFile {
            path,
            kind: f.kind,
            secret: f.secret,
            diff: None,
            note: Some("secret file changed (content not shown)".into()),
        };
    }
    let old_r = marks.redact(old, secrets);
    let new_r = marks.redact(&f.content, secrets);
    let note = (old_r == new_r && old != f.content.as_str())
        .then(|| "only secret values change (not shown)".to_string());
    let diff = if old_r == new_r {
        String::new()
    } else {
        crate::engine::rollout::unified_diff(&path, &old_r, &new_r)
    };
    PlanFile {
        path,
        kind: f.kind,
        secret: f.secret,
        diff: Some(diff),
        note,
    }
}

/// The plan of every host as data: `current` holds, per host, the files read from it (path ->
/// content), `secrets` every secret value known locally.
pub fn report(
    runs: &[HostRun],
    current: &BTreeMap<String, anyhow::Result<BTreeMap<String, String>>>,
    secrets: &[String],
    elapsed: Duration,
    debug_log: &Path,
) -> PlanReport {
    let red = |s: &str| consulctl_core::redact::redact(s, secrets);
    let mut marks = Marks::default();
    let mut hosts = Vec::new();
    for r in runs {
        let mut h = PlanHost {
            name: r.host.name.clone(),
            status: "unchanged",
            actions: Vec::new(),
            notes: r.plan.notes.iter().map(|n| red(n)).collect(),
            files: Vec::new(),
            read_error: None,
            failed: None,
        };
        if let Some((phase, err)) = &r.failed {
            h.status = "failed";
            h.notes.clear();
            h.failed = Some(PlanFailure {
                phase: phase.clone(),
                error: red(err),
            });
            hosts.push(h);
            continue;
        }
        if r.plan.is_empty() {
            hosts.push(h);
            continue;
        }
        h.status = "change";
        h.actions = r
            .plan
            .actions
            .iter()
            .map(|a| PlanAction {
                action: serde_json::to_value(a)
                    .ok()
                    .and_then(|v| v["action"].as_str().map(str::to_string))
                    .unwrap_or_default(),
                text: red(&a.to_string()),
            })
            .collect();
        let empty = BTreeMap::new();
        let files = match current.get(&r.host.name) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                h.read_error = Some(red(&format!("{e:#}")));
                &empty
            }
            None => &empty,
        };
        for f in r.plan.file_writes() {
            let old = files
                .get(&f.path.display().to_string())
                .map(String::as_str)
                .unwrap_or("");
            h.files.push(file_entry(f, old, secrets, &mut marks));
        }
        hosts.push(h);
    }
    let count = |s: &str| hosts.iter().filter(|h| h.status == s).count();
    let totals = PlanTotals {
        hosts: hosts.len(),
        to_change: count("change"),
        unchanged: count("unchanged"),
        failed: count("failed"),
    };
    PlanReport {
        hosts,
        totals,
        duration_ms: elapsed.as_millis() as u64,
        debug_log: debug_log.display().to_string(),
    }
}

impl PlanReport {
    /// The text `plan` prints: per host its actions and a unified diff per file, then a summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for h in &self.hosts {
            if let Some(f) = &h.failed {
                out.push_str(&format!(
                    "{}: FAILED in {}: {}\n\n",
                    h.name, f.phase, f.error
                ));
                continue;
            }
            if h.actions.is_empty() {
                out.push_str(&format!("{}: no changes\n", h.name));
            } else {
                out.push_str(&format!("{}: {} actions\n", h.name, h.actions.len()));
                for a in &h.actions {
                    out.push_str(&format!("  - {}\n", a.text));
                }
            }
            for n in &h.notes {
                out.push_str(&format!("  note: {n}\n"));
            }
            if let Some(e) = &h.read_error {
                out.push_str(&format!("  (cannot read the current files: {e})\n"));
            }
            for f in &h.files {
                match (&f.diff, &f.note) {
                    (None, Some(note)) => out.push_str(&format!("  {}: {note}\n", f.path)),
                    (Some(d), note) => {
                        if let Some(note) = note {
                            out.push_str(&format!("  {}: {note}\n", f.path));
                        }
                        out.push_str(d);
                    }
                    (None, None) => {}
                }
            }
            out.push('\n');
        }
        let t = &self.totals;
        out.push_str(&format!(
            "{} hosts: {} to change, {} unchanged, {} failed ({:.1}s)\n",
            t.hosts,
            t.to_change,
            t.unchanged,
            t.failed,
            self.duration_ms as f64 / 1000.0
        ));
        out
    }

    /// One JSON object (pretty): `hosts`, `totals`, `duration_ms`, `debug_log`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::context::HostRun;
    use consulctl_core::agent_config::{self, HostContext};
    use consulctl_core::model::{AgentToken, BindAddr, Secret};
    use consulctl_core::plan::{BinaryPlan, PlanInput};
    use consulctl_core::templates::Templates;

    /// Secrets held by the cluster (the inventory side). Each is unique to this test.
    const NEW_KEY: &str = "cGxhbi1vdXRwdXQtdGVzdC1uZXcta2V5LTMyYnl0ZXM=";
    const AGENT_TOKEN: &str = "a9e1c3f0-0000-4aaa-8bbb-000000000001";
    const MGMT_TOKEN: &str = "a9e1c3f0-0000-4aaa-8bbb-000000000002";
    /// ACL tokens given through `[config]` (inventory side, never `Secret`s: only structural
    /// redaction can hide them).
    const CONFIG_TOKENS: &[(&str, &str)] = &[
        ("initial_management", "c0f1c0f1-0000-4aaa-8bbb-000000000001"),
        ("agent_recovery", "c0f1c0f1-0000-4aaa-8bbb-000000000002"),
        ("replication", "c0f1c0f1-0000-4aaa-8bbb-000000000003"),
        (
            "config_file_service_registration",
            "c0f1c0f1-0000-4aaa-8bbb-000000000004",
        ),
    ];
    /// What the host's current files hold (the host side): an old gossip key, tokens of every
    /// kind, a private key. consulctl knows none of these values.
    const OLD_KEY: &str = "b2xkLWtleS1vbmx5LW9uLXRoZS1ob3N0LTMyYnl0ZXM=";
    const OLD_TOKENS: &[(&str, &str)] = &[
        ("agent", "0d0d0d0d-1111-4aaa-8bbb-000000000001"),
        ("default", "0d0d0d0d-1111-4aaa-8bbb-000000000002"),
        ("master", "0d0d0d0d-1111-4aaa-8bbb-000000000003"),
        ("initial_management", "0d0d0d0d-1111-4aaa-8bbb-000000000004"),
        ("agent_master", "0d0d0d0d-1111-4aaa-8bbb-000000000005"),
        ("agent_recovery", "0d0d0d0d-1111-4aaa-8bbb-000000000006"),
        ("replication", "0d0d0d0d-1111-4aaa-8bbb-000000000007"),
    ];
    const OLD_PEM_LINE: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgT2xkUGVt";

    fn old_config() -> String {
        let mut s = format!(
            "datacenter = \"dc1\"\nencrypt = \"{OLD_KEY}\"\nacl {{\n  enabled = true\n  tokens {{\n"
        );
        for (k, v) in OLD_TOKENS {
            s.push_str(&format!("    {k} = \"{v}\"\n"));
        }
        s.push_str("  }\n}\nacl_token = \"0d0d0d0d-1111-4aaa-8bbb-0000000000aa\"\n");
        s.push_str(&format!(
            "# -----BEGIN EC PRIVATE KEY-----\n# {OLD_PEM_LINE}\n# -----END EC PRIVATE KEY-----\n"
        ));
        s
    }

    fn needles() -> Vec<String> {
        let mut v = vec![
            NEW_KEY.to_string(),
            AGENT_TOKEN.to_string(),
            MGMT_TOKEN.to_string(),
            OLD_KEY.to_string(),
            OLD_PEM_LINE.to_string(),
            "0d0d0d0d-1111-4aaa-8bbb-0000000000aa".to_string(),
        ];
        v.extend(CONFIG_TOKENS.iter().map(|(_, t)| t.to_string()));
        v.extend(OLD_TOKENS.iter().map(|(_, t)| t.to_string()));
        v
    }

    /// A one-server cluster; with `secrets`: the gossip key, `acl = true` with the server's
    /// agent token and a management token, `tls = "auto"`, and tokens of other kinds through
    /// `[config]`.
    fn cluster(dir: &Path, secrets: bool) -> consulctl_core::model::Cluster {
        let mut text = String::from(
            "[cluster]\ndatacenter = \"dc1\"\n[consul]\nversion = \"1.12.9\"\n\
             source = { package = \"auto\" }\n",
        );
        if secrets {
            text = text.replace(
                "[cluster]\n",
                &format!("[cluster]\nencrypt = \"{NEW_KEY}\"\n"),
            );
            text.push_str("[config.acl.tokens]\n");
            for (k, v) in CONFIG_TOKENS {
                text.push_str(&format!("{k} = \"{v}\"\n"));
            }
        }
        text.push_str(
            "[[hosts]]\nname = \"server1\"\naddress = \"10.0.0.11\"\nrole = \"server\"\n",
        );
        let path = dir.join("inv.toml");
        let mut c = consulctl_core::inventory::parse(&path, &text)
            .unwrap_or_else(|d| panic!("{d:?}\n{text}"));
        if secrets {
            c.acl = true;
            c.tls_auto = true;
            c.acl_tokens.management = Some(Secret::new(MGMT_TOKEN));
            c.acl_tokens.agents.insert(
                "server1".into(),
                AgentToken {
                    accessor: "acc".into(),
                    secret: Secret::new(AGENT_TOKEN),
                },
            );
        }
        c
    }

    /// The plan of server1 on a fresh host (pure planning with faked facts), with `current`
    /// as the host's files, rendered as text and JSON.
    fn render(secrets_in_inventory: bool, current: BTreeMap<String, String>) -> (String, String) {
        let tmp = tempfile::tempdir().unwrap();
        let c = cluster(tmp.path(), secrets_in_inventory);
        let host = c.host("server1").unwrap().clone();
        let BindAddr::Fixed(bind_addr) = host.bind else {
            unreachable!()
        };
        let ctx = HostContext {
            cluster: &c,
            host: &host,
            bind_addr,
            retry_join: vec![bind_addr],
            supervisor_program: Default::default(),
        };
        let desired = agent_config::render_host(&Templates::load(None).unwrap(), &ctx).unwrap();
        let facts = consulctl_core::facts::Facts {
            pid1: "systemd".into(),
            ..Default::default()
        };
        let mut run = HostRun::new_pub(host.clone());
        run.plan = consulctl_core::plan::plan_host(&PlanInput {
            host: &host,
            facts: &facts,
            desired: &desired,
            binary: &BinaryPlan::Upload {
                sha256: "a".repeat(64),
            },
            version: c.consul.version,
        });
        let mut failed = HostRun::new_pub(host.clone());
        failed.host.name = "server9".into();
        failed.failed = Some((
            "validate".into(),
            format!("consul validate: encrypt = \"{OLD_KEY}\" is bad"),
        ));
        let mut cur = BTreeMap::new();
        cur.insert("server1".to_string(), Ok(current));
        let r = report(
            &[run, failed],
            &cur,
            &cluster_secrets(&c),
            Duration::from_millis(1200),
            Path::new("/tmp/plan.log"),
        );
        (r.to_text(), r.to_json())
    }

    fn assert_no_secret(case: &str, text: &str, json: &str) {
        for n in needles() {
            assert!(!text.contains(&n), "{case}: {n} in the text:\n{text}");
            assert!(!json.contains(&n), "{case}: {n} in the JSON:\n{json}");
        }
        assert!(
            text.contains("<redacted"),
            "{case}: nothing redacted:\n{text}"
        );
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["totals"]["hosts"], 2, "{json}");
    }

    #[test]
    fn plans_never_show_a_secret_on_either_side_of_a_diff() {
        let config = "/etc/consul.d/consul.hcl".to_string();
        let key_file = "/etc/consul.d/tls/server-key.pem".to_string();
        let host_files = BTreeMap::from([
            (config.clone(), old_config()),
            (
                key_file.clone(),
                format!("-----BEGIN PRIVATE KEY-----\n{OLD_PEM_LINE}\n-----END PRIVATE KEY-----\n"),
            ),
        ]);

        // Host side only: the inventory holds no secret, the host's file does.
        let (text, json) = render(false, host_files.clone());
        assert_no_secret("host side", &text, &json);
        assert!(text.contains("-encrypt = \"<redacted "), "{text}");
        assert!(text.contains("-    replication = \"<redacted "), "{text}");
        assert!(text.contains("server9: FAILED in validate"), "{text}");

        // Inventory side only: a fresh host (nothing there yet).
        let (text, json) = render(true, BTreeMap::new());
        assert_no_secret("inventory side", &text, &json);
        assert!(text.contains("--- /dev/null"), "{text}");
        assert!(text.contains("+encrypt = \"<redacted "), "{text}");
        assert!(text.contains("+    agent = \"<redacted "), "{text}");
        assert!(text.contains("+    replication = \"<redacted "), "{text}");
        assert!(
            text.contains("/etc/consul.d/tls/server-key.pem: TLS file changed (content not shown)"),
            "{text}"
        );

        // Both sides.
        let (text, json) = render(true, host_files);
        assert_no_secret("both sides", &text, &json);
        assert!(text.contains("-encrypt = \"<redacted "), "{text}");

        // Only the key changed: the diff hides both values and says so.
        let tmp = tempfile::tempdir().unwrap();
        let c = cluster(tmp.path(), true);
        let host = c.host("server1").unwrap();
        let BindAddr::Fixed(bind_addr) = host.bind else {
            unreachable!()
        };
        let ctx = HostContext {
            cluster: &c,
            host,
            bind_addr,
            retry_join: vec![bind_addr],
            supervisor_program: Default::default(),
        };
        let desired = agent_config::render_host(&Templates::load(None).unwrap(), &ctx).unwrap();
        let old = desired[0].content.replace(NEW_KEY, OLD_KEY);
        let f = file_entry(
            &desired[0],
            &desired[0].content,
            &cluster_secrets(&c),
            &mut Marks::default(),
        );
        assert_eq!(f.diff.as_deref(), Some(""));
        assert!(f.note.is_none());
        let f = file_entry(
            &desired[0],
            &old,
            &cluster_secrets(&c),
            &mut Marks::default(),
        );
        let d = f.diff.unwrap();
        let line = |sign: char| {
            d.lines()
                .find(|l| l.starts_with(&format!("{sign}encrypt = \"<redacted ")))
                .unwrap_or_else(|| panic!("no {sign}encrypt line: {d}"))
                .to_string()
        };
        assert_ne!(line('-')[1..], line('+')[1..], "{d}");
        assert!(!d.contains(OLD_KEY) && !d.contains(NEW_KEY), "{d}");
        assert_eq!(
            d.lines()
                .filter(|l| l.starts_with('+') || l.starts_with('-'))
                .count(),
            4,
            "{d}"
        );
    }

    #[test]
    fn the_registrar_token_file_is_never_diffed() {
        let f = DesiredFile {
            path: "/etc/consulctl/registrar.token".into(),
            content: "new-registrar-secret\n".into(),
            mode: 0o600,
            kind: FileKind::HelperConfig,
            secret: true,
            owner: None,
        };
        let e = file_entry(&f, "an-old-unknown-secret\n", &[], &mut Marks::default());
        assert!(e.diff.is_none());
        assert_eq!(
            e.note.as_deref(),
            Some("secret file changed (content not shown)")
        );
        let shown = serde_json::to_string(&e).unwrap();
        assert!(
            !shown.contains("new-registrar") && !shown.contains("an-old"),
            "{shown}"
        );
    }

    #[test]
    fn json_shape() {
        let (_, json) = render(true, BTreeMap::new());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let h = &v["hosts"][0];
        assert_eq!(h["name"], "server1");
        assert_eq!(h["status"], "change");
        assert!(h["failed"].is_null());
        let actions = h["actions"].as_array().unwrap();
        assert!(actions.iter().any(|a| a["action"] == "write_file"
            && a["text"]
                .as_str()
                .unwrap()
                .contains("/etc/consul.d/consul.hcl")));
        assert!(actions.iter().any(|a| a["action"] == "start"), "{json}");
        let files = h["files"].as_array().unwrap();
        let cfg = files
            .iter()
            .find(|f| f["path"] == "/etc/consul.d/consul.hcl")
            .unwrap();
        assert_eq!(cfg["kind"], "agent_config");
        assert_eq!(cfg["secret"], true);
        assert!(cfg["diff"]
            .as_str()
            .unwrap()
            .starts_with("--- /dev/null\n+++ /etc/consul.d/consul.hcl\n"));
        let key = files
            .iter()
            .find(|f| f["path"] == "/etc/consul.d/tls/server-key.pem")
            .unwrap();
        assert!(key["diff"].is_null());
        let f = &v["hosts"][1];
        assert_eq!(f["status"], "failed");
        assert_eq!(f["failed"]["phase"], "validate");
        assert!(f["failed"]["error"]
            .as_str()
            .unwrap()
            .contains("<redacted>"));
        assert_eq!(
            v["totals"],
            serde_json::json!({"hosts": 2, "to_change": 1, "unchanged": 0, "failed": 1})
        );
        assert_eq!(v["duration_ms"], 1200);
        assert_eq!(v["debug_log"], "/tmp/plan.log");
    }
}
