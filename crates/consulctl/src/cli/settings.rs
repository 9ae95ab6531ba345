//! Raw arguments become settings once: what the engine needs from the command line, as plain
//! values. Nothing below the CLI sees a clap type, and a command that runs a rollout of its
//! own (`keys rotate`, `tls renew`, `lab up`) asks for one with settings, not by building
//! another command's arguments.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::parser::ValueSource;
use consulctl_core::error::Error;

use super::{InventoryArgs, Output};

/// The environment variable that names the inventory when `-i` is not given.
pub const INVENTORY_ENV: &str = "CONSULCTL_INVENTORY";
/// The inventory looked for in the current directory when neither `-i` nor
/// [`INVENTORY_ENV`] names one.
pub const DEFAULT_INVENTORY: &str = "consulctl.toml";

/// An empty `CONSULCTL_INVENTORY` counts as unset (as empty variables do elsewhere in
/// consulctl), not as `-i ""`. Call before parsing, while the process has one thread.
pub fn ignore_empty_inventory_env() {
    if std::env::var_os(INVENTORY_ENV).is_some_and(|v| v.is_empty()) {
        std::env::remove_var(INVENTORY_ENV);
    }
}

/// Before any command runs: the inventory the command line resolved to (`-i FILE`, else
/// `CONSULCTL_INVENTORY`, else `./consulctl.toml`) exists. An Input error (exit 2) otherwise,
/// saying which of the three named it, or, when none did, all three ways to give one.
///
/// `cmd` is the command `matches` came from; only the command that was run is looked at, and
/// only its `ClusterArgs` inventory (the `-i` whose env is [`INVENTORY_ENV`]): `lab up
/// --inventory` names a file to write, `inventory import` has none.
pub fn check_inventory(cmd: &clap::Command, matches: &clap::ArgMatches) -> Result<(), Error> {
    let mut cmd = cmd;
    let mut matches = matches;
    let mut path = vec![cmd.get_name().to_string()];
    while let Some((name, sub)) = matches.subcommand() {
        let Some(next) = cmd.find_subcommand(name) else {
            return Ok(());
        };
        cmd = next;
        matches = sub;
        path.push(name.to_string());
    }
    let Some(arg) = cmd
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|env| env == INVENTORY_ENV))
    else {
        return Ok(());
    };
    let id = arg.get_id().as_str();
    let Ok(Some(inventory)) = matches.try_get_one::<PathBuf>(id) else {
        return Ok(());
    };
    let named_by = match matches.value_source(id) {
        Some(ValueSource::CommandLine) => "given with -i/--inventory",
        Some(ValueSource::EnvVariable) => "named by CONSULCTL_INVENTORY",
        _ => {
            if inventory.exists() {
                return Ok(());
            }
            return Err(Error::Input(anyhow!(
                "no inventory: give -i/--inventory <FILE>, set {INVENTORY_ENV}, or put \
                 {DEFAULT_INVENTORY} in the current directory\n\n{}",
                usage(&path)
            )));
        }
    };
    match std::fs::metadata(inventory) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Input(anyhow!(
            "{}: cannot read the inventory {named_by}: {e}",
            inventory.display()
        ))),
    }
}

/// `Usage: consulctl plan [OPTIONS]` of the command at `path` (names from the root down).
fn usage(path: &[String]) -> String {
    let mut root = <super::Cli as clap::CommandFactory>::command();
    root.build();
    let mut cmd = &root;
    for name in &path[1..] {
        match cmd.find_subcommand(name) {
            Some(sub) => cmd = sub,
            None => break,
        }
    }
    cmd.clone().render_usage().to_string()
}

/// Which inventory, which hosts and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub inventory: PathBuf,
    /// `--limit`: checked against the inventory when it is loaded.
    pub limit: Option<String>,
    pub templates: Option<PathBuf>,
    pub accept_new_host_keys: bool,
    pub allow_downgrade: bool,
    pub concurrency: usize,
}

impl Settings {
    /// All hosts of `inventory` with the defaults.
    pub fn all_hosts(inventory: &Path, accept_new_host_keys: bool) -> Settings {
        Settings::from(&InventoryArgs::all_hosts(inventory, accept_new_host_keys))
    }
}

impl From<&InventoryArgs> for Settings {
    fn from(a: &InventoryArgs) -> Settings {
        Settings {
            inventory: a.cluster.inventory.clone(),
            limit: a.limit.clone(),
            templates: a.templates.clone(),
            accept_new_host_keys: a.cluster.accept_new_host_keys,
            allow_downgrade: a.allow_downgrade,
            concurrency: a.concurrency as usize,
        }
    }
}

impl From<&Settings> for Settings {
    fn from(s: &Settings) -> Settings {
        s.clone()
    }
}

/// How a rollout reports: the text or JSON recap, and how long it waits for a healthy cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutSettings {
    pub output: Output,
    pub verify_timeout_secs: u64,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        RolloutSettings {
            output: Output::Text,
            verify_timeout_secs: 90,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn check(args: &[&str]) -> Result<(), String> {
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        let matches = cmd.clone().try_get_matches_from(args).unwrap();
        check_inventory(&cmd, &matches).map_err(|e| {
            assert_eq!(e.code(), 2, "{e}");
            e.to_string()
        })
    }

    #[test]
    fn the_inventory_must_exist_before_a_command_runs() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("prod.toml");
        std::fs::write(&inv, "").unwrap();
        let inv = inv.to_str().unwrap();
        check(&["consulctl", "plan", "-i", inv]).unwrap();
        check(&["consulctl", "catalog", "service", "web", "-i", inv]).unwrap();

        let missing = dir.path().join("nope.toml");
        let missing = missing.to_str().unwrap();
        let e = check(&["consulctl", "keys", "rotate", "--inventory", missing]).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{missing}: cannot read the inventory given with -i/--inventory: "
            )),
            "{e}"
        );

        // commands without a ClusterArgs inventory are not checked (lab up's names a file
        // to write)
        check(&["consulctl", "lab", "up", "--inventory", missing]).unwrap();
        check(&["consulctl", "completions", "bash"]).unwrap();
        check(&["consulctl", "inventory", "import", "ansible", missing]).unwrap();

        // none given: ./consulctl.toml (not in the crate's directory, where tests run)
        if std::env::var_os(INVENTORY_ENV).is_none() && !Path::new(DEFAULT_INVENTORY).exists() {
            let e = check(&["consulctl", "node", "remove", "client1"]).unwrap_err();
            assert!(
                e.starts_with(
                    "no inventory: give -i/--inventory <FILE>, set CONSULCTL_INVENTORY, or put \
                     consulctl.toml in the current directory\n\nUsage: consulctl node remove "
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn arguments_become_settings_once() {
        let cli = crate::cli::Cli::try_parse_from([
            "consulctl",
            "apply",
            "-i",
            "inv.toml",
            "--limit",
            "role:server",
            "-c",
            "3",
            "--allow-downgrade",
            "--accept-new-host-keys",
        ])
        .unwrap();
        let crate::cli::Command::Apply(args) = cli.command else {
            panic!("apply expected");
        };
        let s = Settings::from(&args.inv);
        assert_eq!(
            s,
            Settings {
                inventory: PathBuf::from("inv.toml"),
                limit: Some("role:server".into()),
                templates: None,
                accept_new_host_keys: true,
                allow_downgrade: true,
                concurrency: 3,
            }
        );
        let all = Settings::all_hosts(Path::new("x.toml"), false);
        assert_eq!(all.limit, None);
        assert_eq!(all.concurrency, 64);
    }
}
