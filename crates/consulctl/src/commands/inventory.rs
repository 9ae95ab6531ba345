//! `consulctl inventory`: the inventory on its own, before any host: `check` loads it as every
//! command does, `schema` prints its JSON Schema for editors, `import ansible` makes one from
//! an Ansible inventory. No SSH, no host touched; nothing is written but `--out`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use consulctl_core::error::Error;
use consulctl_core::inventory::{self, ansible};
use consulctl_core::model::{Cluster, Host};
use serde::Serialize;

use crate::cli::settings::DEFAULT_INVENTORY;
use crate::cli::{InventoryCheckArgs, InventoryImportAnsibleArgs};
use crate::engine::output::{self, Report};

/// What `check` says about a valid inventory (an invalid one is an input error, exit 2).
#[derive(Debug, Serialize)]
pub struct Checked {
    pub valid: bool,
    /// The inventory file, as given.
    pub inventory: String,
    pub cluster: String,
    pub datacenter: String,
    pub servers: Vec<CheckedHost>,
    pub clients: Vec<CheckedHost>,
    /// How many services the hosts register (distinct names).
    pub services: usize,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckedHost {
    pub name: String,
    pub address: String,
}

impl Checked {
    pub fn of(path: &Path, cluster: &Cluster) -> Checked {
        let hosts = |of: &mut dyn Iterator<Item = &Host>| -> Vec<CheckedHost> {
            of.map(|h| CheckedHost {
                name: h.name.clone(),
                address: h.address.clone(),
            })
            .collect()
        };
        let services: BTreeSet<&str> = cluster
            .hosts
            .iter()
            .flat_map(|h| h.services.iter().map(|s| s.name.as_str()))
            .collect();
        Checked {
            valid: true,
            inventory: path.display().to_string(),
            cluster: cluster.name.clone(),
            datacenter: cluster.datacenter.clone(),
            servers: hosts(&mut cluster.servers()),
            clients: hosts(&mut cluster.clients()),
            services: services.len(),
            warnings: cluster.warnings.clone(),
        }
    }
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

impl Report for Checked {
    fn to_text(&self) -> String {
        let warnings = match self.warnings.len() {
            0 => "no warnings".to_owned(),
            n => count(n, "warning"),
        };
        let mut s = format!(
            "{}: valid: cluster {} (datacenter {}), {}, {}, {}, {warnings}\n",
            self.inventory,
            self.cluster,
            self.datacenter,
            count(self.servers.len(), "server"),
            count(self.clients.len(), "client"),
            count(self.services, "service"),
        );
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }
}

/// `inventory check`: [`inventory::load`], as every command loads it (secrets the inventory
/// has generated are made in memory only; `persist_secrets` is never called).
pub fn check(args: &InventoryCheckArgs) -> Result<(), Error> {
    let path = &args.cluster.inventory;
    let cluster = inventory::load(path)?;
    output::print(args.output, &Checked::of(path, &cluster));
    Ok(())
}

/// `inventory schema`: the JSON Schema on stdout.
pub fn schema() -> Result<(), Error> {
    write_stdout(inventory::SCHEMA, "the schema")
}

/// `inventory import ansible`: the imported inventory on stdout or into `--out` (a new file).
/// It is checked as if it were where it goes: `--out`, else the `--base` file it would
/// replace, else `./consulctl.toml`.
pub fn import_ansible(args: &InventoryImportAnsibleArgs) -> Result<(), Error> {
    let text = read(&args.file, "the Ansible inventory")?;
    let base = match &args.base {
        Some(p) => Some((p.as_path(), read(p, "the --base inventory")?)),
        None => None,
    };
    if let Some(out) = &args.out {
        if out.exists() {
            return Err(exists(out));
        }
    }
    let dest: PathBuf = match (&args.out, &args.base) {
        (Some(out), _) => out.clone(),
        (None, Some(base)) => base.clone(),
        (None, None) => PathBuf::from(DEFAULT_INVENTORY),
    };
    let options = ansible::Options {
        servers_group: &args.servers_group,
        clients_group: args.clients_group.as_deref(),
        base: base.as_ref().map(|(p, t)| (*p, t.as_str())),
        dest: &dest,
    };
    let imported = ansible::import(&args.file, &text, &options)?;
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    let Some(out) = &args.out else {
        return write_stdout(&imported.toml, "the inventory");
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .and_then(|mut f| f.write_all(imported.toml.as_bytes()))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => exists(out),
            _ => Error::Runtime(anyhow!(
                "{}: cannot write the inventory: {e}",
                out.display()
            )),
        })?;
    eprintln!(
        "wrote {}: {}, {} from {}",
        out.display(),
        count(imported.servers, "server"),
        count(imported.clients, "client"),
        args.file.display()
    );
    Ok(())
}

fn read(path: &Path, what: &str) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Input(anyhow!("{}: cannot read {what}: {e}", path.display())))
}

fn exists(out: &Path) -> Error {
    Error::Input(anyhow!(
        "{}: already exists; --out writes a new file only (remove it, or name another)",
        out.display()
    ))
}

fn write_stdout(text: &str, what: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Runtime(anyhow!("cannot write {what}: {e}")))
}
