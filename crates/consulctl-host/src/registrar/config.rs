//! The registrar's configuration file (TOML; `consulctl apply` writes it from the
//! inventory's `[registrar]` section).
//!
//! ```toml
//! node = "docker1"                       # Consul node name: first part of service IDs
//! docker = "unix:///var/run/docker.sock" # the Docker Engine API socket
//! mode = "published"                     # "published" (host address + host port) | "internal"
//! host_ip = "10.0.0.5"                   # published mode: the address registered
//! network = "apps"                       # internal mode: the Docker network whose address is registered
//! networks = ["apps"]                    # only containers attached to one of these (empty: all)
//! explicit = false                       # only containers that name their service
//! script_checks = false                  # the agent runs script checks (enable_local_script_checks)
//! resync = "30s"                         # full resync period (also after any Docker or agent outage)
//! drain = "0s"                           # > 0: a gone container's services go into maintenance first
//! ```
//!
//! The Consul agent is reached the way Consul's own CLI does it: `CONSUL_HTTP_ADDR`,
//! `CONSUL_HTTP_TOKEN_FILE` (or `CONSUL_HTTP_TOKEN`), `CONSUL_CACERT`, ...

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::conventions::{AddressMode, Settings};
use super::duration::parse_duration;

/// The configuration, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub settings: Settings,
    /// Path of the Docker socket (without `unix://`).
    pub docker_socket: String,
    /// Only containers on one of these networks (empty: every container).
    pub networks: Vec<String>,
    pub resync: Duration,
    pub drain: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    node: String,
    #[serde(default = "default_docker")]
    docker: String,
    #[serde(default = "default_mode")]
    mode: String,
    #[serde(default)]
    host_ip: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    explicit: bool,
    #[serde(default)]
    script_checks: bool,
    #[serde(default = "default_resync")]
    resync: String,
    #[serde(default = "default_drain")]
    drain: String,
}

fn default_docker() -> String {
    "unix:///var/run/docker.sock".into()
}
fn default_mode() -> String {
    "published".into()
}
fn default_resync() -> String {
    "30s".into()
}
fn default_drain() -> String {
    "0s".into()
}

/// Default interval of checks that set none (registrator's).
pub const DEFAULT_CHECK_INTERVAL: &str = "10s";

impl Config {
    /// Read and check the file; the error names the file and the key.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse and check the text of a configuration file.
    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if raw.node.trim().is_empty() {
            return Err("node: must not be empty (the Consul node name)".into());
        }
        let Some(docker_socket) = raw.docker.strip_prefix("unix://") else {
            return Err(format!(
                "docker = {:?}: only a unix socket is supported (\"unix:///var/run/docker.sock\")",
                raw.docker
            ));
        };
        let mode = match raw.mode.as_str() {
            "published" => {
                let Some(ip) = raw.host_ip.filter(|ip| !ip.trim().is_empty()) else {
                    return Err(
                        "host_ip: required with mode = \"published\" (the address clients reach \
                         published ports at)"
                            .into(),
                    );
                };
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("host_ip = {ip:?}: not an IP address"));
                }
                AddressMode::Published { host_ip: ip }
            }
            "internal" => AddressMode::Internal {
                network: raw.network.filter(|n| !n.is_empty()),
            },
            other => {
                return Err(format!(
                    "mode = {other:?}: allowed are \"published\" and \"internal\""
                ))
            }
        };
        let resync = parse_duration(&raw.resync).map_err(|e| format!("resync: {e}"))?;
        if resync < Duration::from_secs(1) {
            return Err(format!("resync = {:?}: at least 1s", raw.resync));
        }
        let drain = parse_duration(&raw.drain).map_err(|e| format!("drain: {e}"))?;
        // The mirrored HEALTHCHECK state is refreshed at every resync: three periods of slack.
        let health_ttl = format!("{}s", (resync.as_secs() * 3).max(30));
        Ok(Config {
            settings: Settings {
                node: raw.node,
                mode,
                explicit: raw.explicit,
                script_checks: raw.script_checks,
                default_interval: DEFAULT_CHECK_INTERVAL.into(),
                health_ttl,
            },
            docker_socket: docker_socket.to_string(),
            networks: raw.networks,
            resync,
            drain: (!drain.is_zero()).then_some(drain),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_needs_an_address_and_internal_takes_a_network() {
        let c = Config::parse("node = \"d1\"\nhost_ip = \"10.0.0.5\"\n").unwrap();
        assert_eq!(
            c.settings.mode,
            AddressMode::Published {
                host_ip: "10.0.0.5".into()
            }
        );
        assert_eq!(c.docker_socket, "/var/run/docker.sock");
        assert_eq!((c.resync, c.drain), (Duration::from_secs(30), None));
        assert_eq!(c.settings.health_ttl, "90s");
        let err = Config::parse("node = \"d1\"\n").unwrap_err();
        assert!(err.starts_with("host_ip: required"), "{err}");
        let c = Config::parse(
            "node = \"d1\"\nmode = \"internal\"\nnetwork = \"apps\"\nnetworks = [\"apps\"]\ndrain = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(
            c.settings.mode,
            AddressMode::Internal {
                network: Some("apps".into())
            }
        );
        assert_eq!(c.drain, Some(Duration::from_secs(5)));
        assert_eq!(c.networks, ["apps"]);
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let cases = [
            (
                "node = \"d1\"\nmode = \"bridge\"\n",
                "mode = \"bridge\": allowed are",
            ),
            (
                "node = \"d1\"\nmode = \"internal\"\nresync = \"10\"\n",
                "resync: ",
            ),
            (
                "node = \"d1\"\nmode = \"internal\"\nresync = \"100ms\"\n",
                "at least 1s",
            ),
            ("node = \"d1\"\nhost_ip = \"x\"\n", "not an IP address"),
            (
                "node = \"d1\"\nmode = \"internal\"\ndocker = \"tcp://x:2375\"\n",
                "only a unix socket",
            ),
            (
                "node = \"\"\nmode = \"internal\"\n",
                "node: must not be empty",
            ),
            (
                "node = \"d1\"\nmode = \"internal\"\nnetwrk = []\n",
                "unknown field `netwrk`",
            ),
        ];
        for (text, want) in cases {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
