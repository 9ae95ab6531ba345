//! Desired state of one host, rendered from the model: the files consulctl manages there.

use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Agent config in the config dir (`consul.hcl`): validated with `consul validate` before install.
    AgentConfig,
    /// systemd unit.
    SystemdUnit,
    /// supervisord program file.
    SupervisorProgram,
    /// A service definition in the config dir (`consulctl-service-<id>.hcl`): validated with
    /// the agent config; a change is applied with `consul reload`.
    ServiceDefinition,
    /// resolv.conf: written in place (it may be a bind mount that cannot be renamed over).
    ResolvConf,
    /// Config of a helper service (dnsmasq, systemd-resolved, NetworkManager): a change
    /// restarts that service, never the agent.
    HelperConfig,
    /// A certificate or key of `tls = "auto"` (`<config dir>/tls/`): installed before the
    /// agent config is validated (it names them); a change restarts the agent.
    TlsFile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredFile {
    pub path: PathBuf,
    #[serde(skip)]
    pub content: String,
    /// Unix mode, e.g. 0o640.
    pub mode: u32,
    pub kind: FileKind,
    /// Holds secrets: its content and diffs are never printed or logged.
    pub secret: bool,
    /// Owner (user and group of the same name) the file must have; None: root's, unchecked.
    /// The agent's config files belong to its user (`[consul] user`).
    pub owner: Option<String>,
}

impl DesiredFile {
    /// Does the file on the host (as the facts saw it) have this file's owner?
    pub fn owner_matches(&self, user: &str, group: &str) -> bool {
        match &self.owner {
            None => true,
            Some(o) => o == user && o == group,
        }
    }

    pub fn sha256(&self) -> String {
        crate::hash::sha256_hex(self.content.as_bytes())
    }
}
