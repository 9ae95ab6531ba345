//! Helpers shared by the registrar's tests: fixtures and a container builder.
#![allow(dead_code)]

use std::collections::BTreeMap;

use consulctl_host::registrar::container::{Container, Health, Port, Proto, Published, RunState};
use consulctl_host::registrar::conventions::{AddressMode, Settings};

/// A fixture captured by `fixtures/docker/capture.sh`, read as the daemon reads inspect JSON.
pub fn fixture(name: &str) -> Container {
    let path = format!(
        "{}/tests/fixtures/docker/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    Container::from_inspect(&json).unwrap()
}

pub fn tcp(number: u16) -> Port {
    Port {
        number,
        proto: Proto::Tcp,
    }
}

pub fn udp(number: u16) -> Port {
    Port {
        number,
        proto: Proto::Udp,
    }
}

/// A running container `web` of image `registry:5000/team/app:1.2` on the bridge network
/// (172.17.0.2), with no ports.
pub fn container() -> Container {
    Container {
        id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        name: "web".into(),
        image: "registry:5000/team/app:1.2".into(),
        env: BTreeMap::new(),
        labels: BTreeMap::new(),
        state: RunState::Running,
        health: None,
        health_output: None,
        network_mode: "default".into(),
        networks: [("bridge".to_string(), "172.17.0.2".to_string())].into(),
        exposed: vec![],
        published: vec![],
    }
}

/// Builder-style changes of a test container.
pub trait With: Sized {
    fn env(self, key: &str, value: &str) -> Self;
    fn label(self, key: &str, value: &str) -> Self;
    /// Exposed and published on `host_port` of 0.0.0.0.
    fn publish(self, port: Port, host_port: u16) -> Self;
    fn expose(self, port: Port) -> Self;
    fn health(self, health: Health, output: Option<&str>) -> Self;
}

impl With for Container {
    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
    fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    fn publish(mut self, port: Port, host_port: u16) -> Self {
        self = self.expose(port);
        self.published.push(Published {
            port,
            host_ip: "0.0.0.0".into(),
            host_port,
        });
        self.published.sort();
        self
    }
    fn expose(mut self, port: Port) -> Self {
        if !self.exposed.contains(&port) {
            self.exposed.push(port);
            self.exposed.sort();
        }
        self
    }
    fn health(mut self, health: Health, output: Option<&str>) -> Self {
        self.health = Some(health);
        self.health_output = output.map(str::to_string);
        self
    }
}

/// Published mode at 10.0.0.5, node `node1`, script checks off.
pub fn published() -> Settings {
    Settings {
        node: "node1".into(),
        mode: AddressMode::Published {
            host_ip: "10.0.0.5".into(),
        },
        explicit: false,
        script_checks: false,
        default_interval: "10s".into(),
        health_ttl: "90s".into(),
    }
}

/// Internal mode on `network` (`None`: the container's only network).
pub fn internal(network: Option<&str>) -> Settings {
    Settings {
        mode: AddressMode::Internal {
            network: network.map(str::to_string),
        },
        ..published()
    }
}
