//! Raw arguments become settings once: what the engine needs from the command line, as plain
//! values. Nothing below the CLI sees a clap type, and a command that runs a rollout of its
//! own (`keys rotate`, `tls renew`, `lab up`) asks for one with settings, not by building
//! another command's arguments.

use std::path::{Path, PathBuf};

use super::{InventoryArgs, Output};

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
