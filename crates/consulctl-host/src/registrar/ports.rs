//! Which ports of a container become services, at which address: published mode (the host's
//! address and the host ports), internal mode (the container's address on a Docker network
//! and the container ports), and host networking (no mapping: only ports the container names).

use super::container::{Container, Port};
use super::conventions::{AddressMode, Problems, Settings};
use super::keys::Keys;

/// A container port to register, and the port the service is registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub port: Port,
    /// The host port (published mode) or the container port (internal mode, host
    /// networking).
    pub registered_port: u16,
}

/// The address of the container's services and the ports to register (before the
/// `SERVICE_<port>_IGNORE` and explicit-mode filters); `None` when there is nothing to
/// register (a problem says why, when it is not simply that there is no port).
pub fn choose(
    c: &Container,
    s: &Settings,
    keys: &Keys,
    problems: &mut Problems,
) -> Option<(String, Vec<Candidate>)> {
    if c.network_mode == "host" {
        return host_networking(c, s, keys, problems);
    }
    match &s.mode {
        AddressMode::Published { host_ip } => {
            let mut ports: Vec<Candidate> = Vec::new();
            for p in &c.published {
                match ports.iter_mut().find(|k| k.port == p.port) {
                    Some(kept) => kept.registered_port = kept.registered_port.min(p.host_port),
                    None => ports.push(Candidate {
                        port: p.port,
                        registered_port: p.host_port,
                    }),
                }
            }
            ports.sort_by_key(|k| k.port);
            for k in &ports {
                let host_ports: Vec<String> = c
                    .published
                    .iter()
                    .filter(|p| p.port == k.port && p.host_port != k.registered_port)
                    .map(|p| p.host_port.to_string())
                    .collect();
                if !host_ports.is_empty() {
                    problems.push(
                        "ports",
                        format!(
                            "port {} is published on several host ports: {} is registered, not {}",
                            k.port,
                            k.registered_port,
                            host_ports.join(", ")
                        ),
                    );
                }
            }
            (!ports.is_empty()).then(|| (host_ip.clone(), ports))
        }
        AddressMode::Internal { network } => {
            let mut ports: Vec<Port> = c.exposed.clone();
            ports.extend(c.published.iter().map(|p| p.port));
            ports.sort();
            ports.dedup();
            if ports.is_empty() {
                return None;
            }
            let address = container_address(c, network.as_deref(), problems)?;
            let ports = ports
                .into_iter()
                .map(|port| Candidate {
                    port,
                    registered_port: port.number,
                })
                .collect();
            Some((address, ports))
        }
    }
}

/// The container's address on `network`, or on its only network with an address.
fn container_address(
    c: &Container,
    network: Option<&str>,
    problems: &mut Problems,
) -> Option<String> {
    let with_address: Vec<(&String, &String)> =
        c.networks.iter().filter(|(_, ip)| !ip.is_empty()).collect();
    let listed = || {
        if with_address.is_empty() {
            "none with an address".to_string()
        } else {
            with_address
                .iter()
                .map(|(net, ip)| format!("{net} {ip}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match network {
        Some(net) => match c.networks.get(net).filter(|ip| !ip.is_empty()) {
            Some(ip) => Some(ip.clone()),
            None => {
                problems.push(
                    "network",
                    format!(
                        "the container has no address on network {net} (its networks: {}): not \
                         registered",
                        listed()
                    ),
                );
                None
            }
        },
        None => match with_address.as_slice() {
            [(_, ip)] => Some((*ip).clone()),
            [] => {
                problems.push(
                    "network",
                    format!(
                        "the container has no address on a Docker network (network mode {}): \
                         not registered",
                        c.network_mode
                    ),
                );
                None
            }
            _ => {
                problems.push(
                    "network",
                    format!(
                        "the container is on several networks ({}): set the registrar's network \
                         to choose one; not registered",
                        listed()
                    ),
                );
                None
            }
        },
    }
}

/// Host networking: no port mapping, so only ports the container names are registered (at the
/// host's address, with the container port). registrator registered every exposed port
/// (its bug #38), which for an image that exposes ports it does not serve is wrong.
fn host_networking(
    c: &Container,
    s: &Settings,
    keys: &Keys,
    problems: &mut Problems,
) -> Option<(String, Vec<Candidate>)> {
    if c.exposed.is_empty() {
        return None;
    }
    let host_ip = match &s.mode {
        AddressMode::Published { host_ip } => host_ip.clone(),
        AddressMode::Internal { .. } => {
            problems.push(
                "network",
                "the container uses host networking: it has no address on a Docker network, \
                 and the registrar (internal mode) registers containers at those; not registered",
            );
            return None;
        }
    };
    let named: Vec<Port> = c
        .exposed
        .iter()
        .copied()
        .filter(|p| keys.port_only(p.number, "NAME").is_some())
        .collect();
    let ports = if !named.is_empty() {
        named
    } else if keys.global("NAME").is_some() && c.exposed.len() == 1 {
        c.exposed.clone()
    } else {
        // Explicit mode: a container that names nothing is not meant to be registered.
        if !(s.explicit && keys.global("NAME").is_none()) {
            unnamed_host_ports(c, keys, problems);
        }
        return None;
    };
    let ports = ports
        .into_iter()
        .map(|port| Candidate {
            port,
            registered_port: port.number,
        })
        .collect();
    Some((host_ip, ports))
}

/// The problem of a container on the host network whose ports are not named.
fn unnamed_host_ports(c: &Container, keys: &Keys, problems: &mut Problems) {
    let exposed: Vec<String> = c.exposed.iter().map(Port::to_string).collect();
    let (key, why) = match keys.global("NAME") {
        Some(name) => (name.key.clone(), "SERVICE_NAME names one port only"),
        None => ("network".to_string(), "nothing names them"),
    };
    let ports = if exposed.len() == 1 {
        "a port"
    } else {
        "several ports"
    };
    problems.push(
        key,
        format!(
            "the container uses host networking and exposes {ports} ({}), and {why}: with no \
             port mapping the registrar cannot tell which are served, so none is registered; \
             name each with SERVICE_<port>_NAME (registrator registered them all, its bug #38)",
            exposed.join(", ")
        ),
    );
}
