//! The secrets file beside an inventory: `<dir>/<inventory stem>.secrets.toml`, mode 0600,
//! git-ignored (`*.secrets.toml`). It holds what consulctl generates and must keep: the gossip
//! key of `encrypt = "auto"` (and, during `keys rotate`, the key being rolled out).
//! Values never appear in output or logs: they are [`Secret`]s.
//!
//! Loading an inventory writes nothing: what is missing from the file ([`gossip_key`],
//! [`acl_tokens`]) is generated in memory and kept, per secrets file, until
//! [`persist_unsaved`] writes it. Commands that only read (plan, status, doctor) never call it,
//! so they leave no file behind; commands that change hosts call it before touching any. The
//! values are kept for the whole process, so that loading the same inventory twice gives the
//! same secrets whether or not they were written in between.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use base64::Engine;

use crate::model::{AclTokens, AgentToken, Secret};

pub const GOSSIP_KEY: &str = "gossip_key";
/// A new gossip key being rolled out by `keys rotate` (kept so that an interrupted rotation
/// does not lose it).
pub const GOSSIP_KEY_NEXT: &str = "gossip_key_next";

/// Where the secrets of this inventory live.
pub fn path_for(inventory: &Path) -> PathBuf {
    let stem = inventory
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "inventory".into());
    inventory
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{stem}.secrets.toml"))
}

/// Every secret value of the file, for [`crate::redact`] (accessor IDs are not secrets).
fn remember_all(table: &toml::Table) {
    for (k, v) in table {
        match v {
            toml::Value::String(s) if k != "accessor" => crate::redact::remember(s),
            toml::Value::Table(t) => remember_all(t),
            _ => {}
        }
    }
}

/// The secrets file's values (a flat table of strings).
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    path: PathBuf,
    table: toml::Table,
}

impl Secrets {
    /// Read the secrets file (missing: empty). Refuses a file others can read.
    pub fn load(inventory: &Path) -> Result<Secrets> {
        let path = path_for(inventory);
        let table = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    bail!(
                        "{} is readable by others (mode {mode:o}); it holds secrets: chmod 600 it",
                        path.display()
                    );
                }
                text.parse::<toml::Table>()
                    .with_context(|| format!("{}: not valid TOML", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        remember_all(&table);
        Ok(Secrets { path, table })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<Secret> {
        self.table
            .get(key)
            .and_then(|v| v.as_str())
            .map(|s| Secret::new(s.to_string()))
    }

    pub fn set(&mut self, key: &str, value: &Secret) {
        self.table
            .insert(key.into(), toml::Value::String(value.expose().to_string()));
    }

    pub fn remove(&mut self, key: &str) {
        self.table.remove(key);
    }

    /// Write the file: created 0600, replaced atomically (a temp file renamed over it).
    pub fn save(&self) -> Result<()> {
        let text = format!(
            "# consulctl secrets for {}: keep private (mode 0600), never commit.\n{}",
            self.path.display(),
            toml::to_string(&self.table)?
        );
        write_file(&self.path, text.as_bytes(), 0o600)
    }
}

pub const ACL_MANAGEMENT_TOKEN: &str = "acl_management_token";
/// Table of node -> { accessor, secret }: each agent's ACL token.
pub const ACL_AGENT_TOKENS: &str = "acl_agent_tokens";
/// Table of node -> { accessor, secret }: the token of each host's Docker registrar.
pub const ACL_REGISTRAR_TOKENS: &str = "acl_registrar_tokens";
/// Table of node -> { accessor, secret }: the token of each host's LB sync daemon.
pub const ACL_LB_TOKENS: &str = "acl_lb_tokens";
/// The tables of per-node tokens, in the order [`acl_tokens`] fills them.
const TOKEN_TABLES: [&str; 3] = [ACL_AGENT_TOKENS, ACL_REGISTRAR_TOKENS, ACL_LB_TOKENS];

impl Secrets {
    /// The agent tokens table (node -> (accessor, secret)).
    pub fn agent_tokens(&self) -> std::collections::BTreeMap<String, AgentToken> {
        self.tokens(ACL_AGENT_TOKENS)
    }

    pub fn set_agent_token(&mut self, node: &str, token: &AgentToken) {
        self.set_token(ACL_AGENT_TOKENS, node, token)
    }

    /// A table of node -> (accessor, secret) tokens.
    pub fn tokens(&self, table: &str) -> std::collections::BTreeMap<String, AgentToken> {
        let mut out = std::collections::BTreeMap::new();
        if let Some(t) = self.table.get(table).and_then(|v| v.as_table()) {
            for (node, v) in t {
                let acc = v.get("accessor").and_then(|x| x.as_str());
                let sec = v.get("secret").and_then(|x| x.as_str());
                if let (Some(a), Some(s)) = (acc, sec) {
                    out.insert(
                        node.clone(),
                        AgentToken {
                            accessor: a.to_string(),
                            secret: Secret::new(s.to_string()),
                        },
                    );
                }
            }
        }
        out
    }

    pub fn set_token(&mut self, table: &str, node: &str, token: &AgentToken) {
        let entry = self
            .table
            .entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let mut t = toml::Table::new();
        t.insert(
            "accessor".into(),
            toml::Value::String(token.accessor.clone()),
        );
        t.insert(
            "secret".into(),
            toml::Value::String(token.secret.expose().to_string()),
        );
        entry
            .as_table_mut()
            .expect("table")
            .insert(node.to_string(), toml::Value::Table(t));
    }
}

/// A random UUID (version 4), as Consul's ACL accessor and secret IDs are.
pub fn new_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The ACL tokens of `acl = true`: the management token once bootstrapped, and an agent token
/// for every node (generated the first time a node is seen, before its agent ever starts, so
/// that its config is written once). Tokens not in the file yet are kept unsaved (see the
/// module docs) until [`persist_unsaved`].
pub fn acl_tokens(
    inventory: &Path,
    nodes: &[String],
    registrar_nodes: &[String],
    lb_nodes: &[String],
) -> Result<AclTokens> {
    let s = Secrets::load(inventory)?;
    let mut unsaved = unsaved_lock();
    let pending = unsaved_entry(&mut unsaved, inventory);
    let mut tables = Vec::new();
    for (table, nodes) in TOKEN_TABLES
        .into_iter()
        .zip([nodes, registrar_nodes, lb_nodes])
    {
        let mut tokens = s.tokens(table);
        for (n, t) in pending.tokens(table) {
            tokens.entry(n).or_insert(t);
        }
        for n in nodes {
            if !tokens.contains_key(n) {
                let t = AgentToken {
                    accessor: new_uuid()?,
                    secret: Secret::new(new_uuid()?),
                };
                pending.set_token(table, n, &t);
                tokens.insert(n.clone(), t);
            }
        }
        tables.push(tokens);
    }
    let lbs = tables.pop().unwrap_or_default();
    let registrars = tables.pop().unwrap_or_default();
    let agents = tables.pop().unwrap_or_default();
    Ok(AclTokens {
        management: s.get(ACL_MANAGEMENT_TOKEN),
        agents,
        registrars,
        lbs,
    })
}

/// Store the management token returned by the ACL bootstrap.
pub fn save_management_token(inventory: &Path, token: &Secret) -> Result<()> {
    let mut s = Secrets::load(inventory)?;
    s.set(ACL_MANAGEMENT_TOKEN, token);
    s.save()
}

/// Write a file atomically (a temp file created with `mode`, synced, renamed over it): never
/// readable by others in between, never half-written. The secrets file, TLS files.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// A new gossip key: 32 random bytes, standard base64 (what `consul keygen` prints).
pub fn new_gossip_key() -> Result<Secret> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow::anyhow!("reading random bytes for a gossip key: {e}"))?;
    Ok(Secret::new(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

/// The gossip key of `encrypt = "auto"`: from the secrets file, else generated the first time
/// and kept unsaved (see the module docs) until [`persist_unsaved`].
pub fn gossip_key(inventory: &Path) -> Result<Secret> {
    let s = Secrets::load(inventory)?;
    if let Some(k) = s.get(GOSSIP_KEY) {
        return Ok(k);
    }
    let mut unsaved = unsaved_lock();
    let pending = unsaved_entry(&mut unsaved, inventory);
    if let Some(k) = pending.get(GOSSIP_KEY) {
        return Ok(k);
    }
    let key = new_gossip_key()?;
    pending.set(GOSSIP_KEY, &key);
    Ok(key)
}

/// Secrets generated for an inventory and not written yet, by secrets file (absolute path).
static UNSAVED: Mutex<BTreeMap<PathBuf, Secrets>> = Mutex::new(BTreeMap::new());

fn unsaved_lock() -> MutexGuard<'static, BTreeMap<PathBuf, Secrets>> {
    UNSAVED.lock().unwrap_or_else(|e| e.into_inner())
}

fn unsaved_key(inventory: &Path) -> PathBuf {
    let path = path_for(inventory);
    std::path::absolute(&path).unwrap_or(path)
}

fn unsaved_entry<'m>(
    unsaved: &'m mut BTreeMap<PathBuf, Secrets>,
    inventory: &Path,
) -> &'m mut Secrets {
    unsaved
        .entry(unsaved_key(inventory))
        .or_insert_with(|| Secrets {
            path: path_for(inventory),
            table: toml::Table::new(),
        })
}

/// Names of the secrets generated for `inventory` and not written yet (`gossip_key`,
/// `acl_agent_tokens.<node>`), sorted.
pub fn unsaved(inventory: &Path) -> Vec<String> {
    let unsaved = unsaved_lock();
    let Some(pending) = unsaved.get(&unsaved_key(inventory)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = pending
        .get(GOSSIP_KEY)
        .map(|_| GOSSIP_KEY.into())
        .into_iter()
        .collect();
    for table in TOKEN_TABLES {
        names.extend(
            pending
                .tokens(table)
                .into_keys()
                .map(|n| format!("{table}.{n}")),
        );
    }
    names
}

/// Write the secrets generated for `inventory` by loading it (and not written yet) into its
/// secrets file, keeping what the file already holds. Nothing to write: the file is left
/// alone (not even created).
pub fn persist_unsaved(inventory: &Path) -> Result<()> {
    let mut unsaved = unsaved_lock();
    let Some(pending) = unsaved.remove(&unsaved_key(inventory)) else {
        return Ok(());
    };
    let result = (|| {
        let mut s = Secrets::load(inventory)?;
        let mut changed = false;
        let mut new_gossip_key = false;
        if let (None, Some(k)) = (s.get(GOSSIP_KEY), pending.get(GOSSIP_KEY)) {
            s.set(GOSSIP_KEY, &k);
            changed = true;
            new_gossip_key = true;
        }
        for table in TOKEN_TABLES {
            let kept = s.tokens(table);
            for (node, t) in pending.tokens(table) {
                if !kept.contains_key(&node) {
                    s.set_token(table, &node, &t);
                    changed = true;
                }
            }
        }
        if changed {
            s.save()?;
        }
        if new_gossip_key {
            eprintln!(
                "generated a gossip encryption key into {} (mode 0600; keep it, never commit it)",
                s.path().display()
            );
        }
        Ok(())
    })();
    if result.is_err() {
        unsaved.insert(unsaved_key(inventory), pending);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_key_is_generated_once_stored_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("prod.toml");
        let k1 = gossip_key(&inv).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(k1.expose())
            .unwrap();
        assert_eq!(bytes.len(), 32);
        let file = dir.path().join("prod.secrets.toml");
        // Generated in memory: nothing written until persisted, the same key meanwhile.
        assert!(!file.exists());
        assert_eq!(unsaved(&inv), ["gossip_key"]);
        assert_eq!(gossip_key(&inv).unwrap(), k1);
        persist_unsaved(&inv).unwrap();
        assert!(unsaved(&inv).is_empty());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = gossip_key(&inv).unwrap();
        assert_eq!(k1, k2);
        assert_ne!(new_gossip_key().unwrap(), k1);
    }

    #[test]
    fn a_secrets_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("prod.toml");
        let file = dir.path().join("prod.secrets.toml");
        std::fs::write(&file, "gossip_key = \"x\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Secrets::load(&inv).unwrap_err();
        assert!(format!("{e:#}").contains("chmod 600"), "{e:#}");
    }

    #[test]
    fn acl_agent_tokens_are_generated_once_per_node_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("prod.toml");
        let names = vec!["s1".to_string(), "c1".to_string()];
        let a = acl_tokens(&inv, &names, &[], &[]).unwrap();
        assert!(a.management.is_none());
        assert_eq!(a.agents.len(), 2);
        let t = &a.agents["s1"];
        assert_eq!(t.accessor.len(), 36);
        assert_eq!(&t.accessor[14..15], "4");
        assert_ne!(t.accessor, t.secret.expose());
        let b = acl_tokens(&inv, &["s1".to_string(), "c2".to_string()], &[], &[]).unwrap();
        assert_eq!(b.agents["s1"], a.agents["s1"]);
        assert_eq!(b.agents.len(), 3, "c1 kept, c2 added");
        // Generated in memory: nothing written until persisted.
        assert!(!dir.path().join("prod.secrets.toml").exists());
        persist_unsaved(&inv).unwrap();
        let b = acl_tokens(&inv, &["s1".to_string(), "c2".to_string()], &[], &[]).unwrap();
        assert_eq!(
            b.agents,
            acl_tokens(&inv, &names, &[], &[]).unwrap().agents,
            "all three written"
        );
        save_management_token(&inv, &Secret::new("m-1")).unwrap();
        let c = acl_tokens(&inv, &names, &[], &[]).unwrap();
        assert_eq!(c.management, Some(Secret::new("m-1")));
        assert_eq!(c.agents["c1"], a.agents["c1"]);
        let mode = std::fs::metadata(dir.path().join("prod.secrets.toml"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn registrar_tokens_are_their_own_table_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("prod.toml");
        let names = vec!["s1".to_string(), "d1".to_string()];
        let a = acl_tokens(&inv, &names, &["d1".to_string()], &[]).unwrap();
        assert_eq!(a.registrars.len(), 1);
        let r = &a.registrars["d1"];
        assert_ne!(r.accessor, a.agents["d1"].accessor, "not the agent's token");
        assert_ne!(r.secret, a.agents["d1"].secret);
        assert_eq!(
            unsaved(&inv),
            [
                "acl_agent_tokens.d1",
                "acl_agent_tokens.s1",
                "acl_registrar_tokens.d1"
            ]
        );
        persist_unsaved(&inv).unwrap();
        let text = std::fs::read_to_string(dir.path().join("prod.secrets.toml")).unwrap();
        assert!(text.contains("[acl_registrar_tokens.d1]"), "{text}");
        let b = acl_tokens(&inv, &names, &["d1".to_string()], &[]).unwrap();
        assert_eq!(b.registrars["d1"], *r);
        assert!(unsaved(&inv).is_empty());
    }

    #[test]
    fn lb_tokens_are_their_own_table_next_to_the_registrars() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("prod.toml");
        let names = vec!["s1".to_string(), "lb1".to_string()];
        let one = ["lb1".to_string()];
        let a = acl_tokens(&inv, &names, &one, &one).unwrap();
        let (r, l) = (&a.registrars["lb1"], &a.lbs["lb1"]);
        assert_ne!(
            r.accessor, l.accessor,
            "the LB daemon has a token of its own"
        );
        assert!(unsaved(&inv).contains(&"acl_lb_tokens.lb1".to_string()));
        persist_unsaved(&inv).unwrap();
        let b = acl_tokens(&inv, &names, &[], &one).unwrap();
        assert_eq!(b.lbs["lb1"], *l);
        assert!(unsaved(&inv).is_empty());
    }
}
