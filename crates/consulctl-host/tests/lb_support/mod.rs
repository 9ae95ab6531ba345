//! A catalog builder for the sync daemon's tests: what `/v1/internal/ui/nodes` answers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;

use consul_api::catalog::NodeDump;
use consul_api::{AgentService, HealthCheck};
use consulctl_host::lb::config::Config;

pub struct Catalog {
    nodes: Vec<NodeDump>,
}

fn check(node: &str, id: &str, service_id: &str, status: &str) -> HealthCheck {
    HealthCheck {
        node: node.into(),
        check_id: id.into(),
        name: id.into(),
        status: status.into(),
        service_id: service_id.into(),
        ..HealthCheck::default()
    }
}

impl Catalog {
    /// The load balancer's own node `lb1` (10.0.0.2), alive.
    pub fn new() -> Self {
        Catalog { nodes: vec![] }.node("lb1", "10.0.0.2")
    }

    /// An alive node (serfHealth passing).
    pub fn node(mut self, name: &str, address: &str) -> Self {
        self.nodes.push(NodeDump {
            node: name.into(),
            address: address.into(),
            checks: vec![check(name, "serfHealth", "", "passing")],
            ..NodeDump::default()
        });
        self
    }

    fn find(&mut self, node: &str) -> &mut NodeDump {
        self.nodes
            .iter_mut()
            .find(|n| n.node == node)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    /// A node check's status (`serfHealth`, or a new node-level check).
    pub fn node_check(mut self, node: &str, id: &str, status: &str) -> Self {
        let n = self.find(node);
        n.checks.retain(|c| c.check_id != id);
        n.checks.push(check(node, id, "", status));
        self
    }

    /// An instance on `node` at the node's address with one check of `status`.
    pub fn instance(
        self,
        node: &str,
        service: &str,
        port: u16,
        tags: &[&str],
        status: &str,
    ) -> Self {
        self.instance_at(node, service, "", port, tags, status)
    }

    /// An instance with its own address.
    pub fn instance_at(
        mut self,
        node: &str,
        service: &str,
        address: &str,
        port: u16,
        tags: &[&str],
        status: &str,
    ) -> Self {
        let n = self.find(node);
        let id = format!("{service}-{node}-{port}{}", n.services.len());
        n.services.push(AgentService {
            id: id.clone(),
            service: service.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            port,
            address: address.into(),
            ..AgentService::default()
        });
        n.checks
            .push(check(node, &format!("service:{id}"), &id, status));
        self
    }

    pub fn dump(&self) -> Vec<NodeDump> {
        self.nodes.clone()
    }
}

/// A configuration for node `lb1` with `extra` lines.
pub fn config(extra: &str) -> Config {
    Config::parse(&format!("node = \"lb1\"\n{extra}\n")).unwrap()
}

/// The seed's services: web (http, 2 passing + 1 critical), api (http, none passing),
/// redis (tcp), dns (tcp and udp), and an untagged service.
pub fn seed_catalog() -> Catalog {
    Catalog::new()
        .node("app1", "10.0.0.11")
        .node("app2", "10.0.0.12")
        .instance("app1", "web", 8080, &["http", "upyun"], "passing")
        .instance("app2", "web", 8080, &["http", "upyun"], "passing")
        .instance_at(
            "app2",
            "web",
            "10.0.1.7",
            8080,
            &["http", "upyun"],
            "critical",
        )
        .instance("app1", "api", 9000, &["http", "upyun"], "critical")
        .instance("app1", "redis", 6379, &["tcp", "upyun"], "passing")
        .instance("app2", "dns", 8600, &["tcp", "udp", "upyun"], "passing")
        .instance("app2", "internal", 7000, &["http"], "passing")
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback HTTP backend answering every request (keep-alive) with `name`; its port.
pub fn backend(name: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || loop {
                // Keep-alive: answer every request on the connection.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                    name.len()
                )
                .is_err()
                {
                    return;
                }
            });
        }
    });
    port
}
