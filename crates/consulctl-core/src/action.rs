//! The actions a plan is made of. Each one is a change on a host; an empty list means the
//! host is already as the inventory describes it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::desired::{DesiredFile, FileKind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Upload the consul binary (compressed) and swap it in; the old one is kept as `.consulctl-prev`.
    InstallBinary {
        path: PathBuf,
        sha256: String,
        /// sha256 of the binary there now, if any.
        current: Option<String>,
        /// The agent runs: the new binary is staged next to the old one and swapped in when
        /// the agent restarts (in rolling order), not now.
        staged: bool,
    },
    /// Upload `consulctl-host` (compressed) and swap it in (`remote/install-binary.sh`), in the
    /// upload phase; the registrar restarts afterwards (its own `RestartHelper`).
    InstallHostBinary {
        path: PathBuf,
        sha256: String,
        /// sha256 of the binary there now, if any.
        current: Option<String>,
    },
    /// Install Consul through the OS package manager (exact commands shown by `plan`).
    InstallPackage {
        commands: Vec<Vec<String>>,
        /// The agent runs: the package is installed right before its restart (in rolling
        /// order), never under all running agents at once.
        deferred: bool,
    },
    /// Create missing directories (config, data, log).
    CreateDirs { paths: Vec<PathBuf> },
    /// Write a managed file (staged and validated first; the old file is backed up on the host).
    WriteFile {
        file: DesiredFile,
        /// sha256 of the file there now, if it exists.
        current: Option<String>,
    },
    /// Make the init system read changed unit/program files (`systemctl daemon-reload`,
    /// `supervisorctl reread`).
    ReloadInit,
    /// `systemctl enable consul`.
    Enable,
    /// The agent is not running: start it.
    Start,
    /// The agent runs with outdated binary/config/unit: restart it.
    Restart { reasons: Vec<String> },
    /// Only settings Consul re-reads changed: `consul reload`, no restart.
    Reload { keys: Vec<String> },
    /// Move a managed file that is no longer wanted (a removed service) aside into the backup
    /// dir; files without consulctl's mark are never touched.
    RemoveFile { path: PathBuf },
    /// Install missing packages (`prepare.packages`) with these commands.
    InstallPackages {
        packages: Vec<String>,
        commands: Vec<Vec<String>>,
    },
    /// `systemctl disable --now` for these units (`prepare.disable_services`).
    DisableUnits { units: Vec<String> },
    /// (Re)start a helper service whose config changed or that is not running: dnsmasq
    /// (systemd unit, or the supervisord program on hosts without systemd),
    /// systemd-resolved, NetworkManager (reload), the Docker registrar
    /// (`consulctl-registrar`: its unit or supervisord program).
    RestartHelper { service: String, supervisor: bool },
    /// Make a service run that consulctl does not configure itself (an LB's nginx or HAProxy):
    /// `systemctl enable --now`, or its supervisord program added and started; one that runs
    /// is left alone (supervisord restarts it only when its program file changed).
    StartHelper { service: String, supervisor: bool },
    /// Set `PEERDNS=no` in RHEL network scripts so DHCP stops rewriting resolv.conf.
    SetPeerDnsNo { files: Vec<PathBuf> },
    /// The agent's system user: create it (a system user with its own group, no login shell)
    /// when missing; give it these dirs (mode 0750), `recursive` ones with everything inside.
    OwnDirs {
        user: String,
        create_user: bool,
        dirs: Vec<PathBuf>,
        recursive: Vec<PathBuf>,
    },
}

impl Action {
    /// Does this action belong to the configure phase (directories and files)?
    pub fn is_configure(&self) -> bool {
        matches!(
            self,
            Action::CreateDirs { .. }
                | Action::OwnDirs { .. }
                | Action::WriteFile { .. }
                | Action::RemoveFile { .. }
                | Action::InstallPackages { .. }
                | Action::DisableUnits { .. }
                | Action::RestartHelper { .. }
                | Action::StartHelper { .. }
                | Action::SetPeerDnsNo { .. }
        )
    }

    /// Does this action belong to the phase that starts or restarts agents?
    pub fn is_service(&self) -> bool {
        matches!(
            self,
            Action::ReloadInit
                | Action::Enable
                | Action::Start
                | Action::Restart { .. }
                | Action::Reload { .. }
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::InstallBinary {
                path,
                sha256,
                current,
                staged,
            } => match current {
                Some(cur) => write!(
                    f,
                    "{} binary {} (sha256 {} -> {})",
                    if *staged {
                        "stage (swap at restart)"
                    } else {
                        "replace"
                    },
                    path.display(),
                    short(cur),
                    short(sha256)
                ),
                None => write!(
                    f,
                    "install binary {} (sha256 {})",
                    path.display(),
                    short(sha256)
                ),
            },
            Action::InstallHostBinary {
                path,
                sha256,
                current,
            } => match current {
                Some(cur) => write!(
                    f,
                    "replace consulctl-host {} (sha256 {} -> {})",
                    path.display(),
                    short(cur),
                    short(sha256)
                ),
                None => write!(
                    f,
                    "install consulctl-host {} (sha256 {})",
                    path.display(),
                    short(sha256)
                ),
            },
            Action::InstallPackage { commands, deferred } => {
                if *deferred {
                    write!(f, "install consul package at the agent's restart:")?;
                } else {
                    write!(f, "install consul package:")?;
                }
                for c in commands {
                    write!(f, "\n      $ {}", shell_words(c))?;
                }
                Ok(())
            }
            Action::CreateDirs { paths } => {
                let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "create directories {}", list.join(", "))
            }
            Action::WriteFile { file, current } => {
                let what = match file.kind {
                    FileKind::AgentConfig => "agent config",
                    FileKind::SystemdUnit => "systemd unit",
                    FileKind::SupervisorProgram => "supervisord program",
                    FileKind::ServiceDefinition => "service definition",
                    FileKind::ResolvConf => "resolv.conf",
                    FileKind::HelperConfig => "helper config",
                    FileKind::TlsFile => "tls file",
                };
                let verb = if current.is_some() {
                    "update"
                } else {
                    "create"
                };
                write!(
                    f,
                    "{verb} {what} {} (mode {:o})",
                    file.path.display(),
                    file.mode
                )
            }
            Action::ReloadInit => write!(f, "reload init system configuration"),
            Action::Enable => write!(f, "enable consul at boot"),
            Action::Start => write!(f, "start consul"),
            Action::Restart { reasons } => write!(f, "restart consul ({})", reasons.join(", ")),
            Action::Reload { keys } => write!(f, "reload consul ({} changed)", keys.join(", ")),
            Action::RemoveFile { path } => {
                write!(f, "remove {} (moved to the backup dir)", path.display())
            }
            Action::InstallPackages { packages, commands } => {
                write!(f, "install packages {}:", packages.join(", "))?;
                for c in commands {
                    write!(f, "\n      $ {}", shell_words(c))?;
                }
                Ok(())
            }
            Action::DisableUnits { units } => {
                write!(f, "stop and disable {}", units.join(", "))
            }
            Action::RestartHelper {
                service,
                supervisor,
            } => {
                if *supervisor {
                    write!(
                        f,
                        "(re)start {service} (supervisord program {})",
                        crate::managed_paths::supervisor_program_name(service)
                    )
                } else {
                    write!(f, "enable and (re)start {service}")
                }
            }
            Action::StartHelper {
                service,
                supervisor,
            } => {
                if *supervisor {
                    write!(f, "start {service} (supervisord program {service})")
                } else {
                    write!(f, "enable and start {service}")
                }
            }
            Action::SetPeerDnsNo { files } => {
                let list: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(f, "set PEERDNS=no in {}", list.join(", "))
            }
            Action::OwnDirs {
                user,
                create_user,
                dirs,
                recursive,
            } => {
                if *create_user {
                    write!(f, "create system user {user}; ")?;
                }
                let mut list: Vec<String> = dirs.iter().map(|p| p.display().to_string()).collect();
                list.extend(
                    recursive
                        .iter()
                        .map(|p| format!("{} (recursively)", p.display())),
                );
                write!(f, "owner {user}:{user}, mode 750: {}", list.join(", "))
            }
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Show an argv the way a shell user would type it.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `Reload` was not a service action, so the start phase skipped it and a
    /// reloadable change was written but never applied.
    #[test]
    fn reload_is_a_service_action() {
        assert!(Action::Reload {
            keys: vec!["log_level".into()]
        }
        .is_service());
        assert!(Action::Restart { reasons: vec![] }.is_service());
        assert!(!Action::CreateDirs { paths: vec![] }.is_service());
    }
}
