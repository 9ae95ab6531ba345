//! From a [`View`] to the files the load balancer reads: the built-in nginx or HAProxy output
//! and the user templates. Pure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::config::{error_chain, Config, Kind};
use super::view::{Service, View};
use super::{haproxy, nginx};

/// Where the generation is written in the built-in outputs before it is known.
pub const GENERATION: &str = "@@CONSULCTL_GENERATION@@";

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `nginx-http`, `nginx-stream`, `haproxy` or the template's name.
    pub name: String,
    pub path: PathBuf,
    pub content: String,
    /// Run on the staged file before the swap (`{staged}` replaced by its path).
    pub validate: Vec<String>,
    /// Run after the swap (user templates; the built-ins reload once for all).
    pub reload: Vec<String>,
}

/// How clients reach a service through the load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Http,
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A listening port and the services behind it (several only for http, told apart by the
/// Host header).
#[derive(Debug, Clone)]
pub struct Listener<'a> {
    pub port: u16,
    pub proto: Proto,
    pub services: Vec<&'a Service>,
}

/// Which service listens where. A port goes to the first service (by name) that asks for it:
/// http services share a port; a tcp or udp port is one service's; http and tcp exclude each
/// other on a port, and nothing takes the status port.
pub fn listeners<'a>(
    view: &'a View,
    status_port: u16,
    udp: bool,
    problems: &mut Vec<String>,
) -> Vec<Listener<'a>> {
    let mut out: Vec<Listener<'a>> = Vec::new();
    for s in &view.services {
        for p in &s.protocols {
            let proto = match p.as_str() {
                "http" => Proto::Http,
                "tcp" => Proto::Tcp,
                _ => Proto::Udp,
            };
            if proto == Proto::Udp && !udp {
                problems.push(format!(
                    "service {}: tagged udp, which HAProxy does not proxy: not load balanced",
                    s.name
                ));
                continue;
            }
            if proto != Proto::Udp && s.listen == status_port {
                problems.push(format!(
                    "service {}: port {} is the status port: not load balanced (set [lb.ports])",
                    s.name, s.listen
                ));
                continue;
            }
            let clash = out
                .iter_mut()
                .find(|l| l.port == s.listen && ((l.proto == Proto::Udp) == (proto == Proto::Udp)));
            match clash {
                Some(l) if l.proto == Proto::Http && proto == Proto::Http => l.services.push(s),
                Some(l) => problems.push(format!(
                    "service {} ({}): port {} is taken by {} ({}): not load balanced (set [lb.ports])",
                    s.name,
                    proto.as_str(),
                    s.listen,
                    l.services[0].name,
                    l.proto.as_str()
                )),
                None => out.push(Listener {
                    port: s.listen,
                    proto,
                    services: vec![s],
                }),
            }
        }
    }
    out.sort_by_key(|l| (l.proto, l.port));
    out
}

/// What one load balancer routes for a service (published for `consulctl services`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub protocol: Proto,
    pub listen: u16,
    pub instances: Vec<RoutedInstance>,
    /// Set when `instances` was left empty because the record would not fit in one Consul KV
    /// value: how many instances it routes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances_omitted: Option<usize>,
}

/// How many instances some routes lead to (a service tagged tcp and udp counts twice).
pub fn routed_instances(routes: &BTreeMap<String, Vec<Route>>) -> usize {
    routes.values().flatten().map(|r| r.instances.len()).sum()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutedInstance {
    pub node: String,
    pub id: String,
    pub address: String,
    pub port: u16,
}

/// The files and what they route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub outputs: Vec<Output>,
    /// A short hash of every output: changes when any file changes.
    pub generation: String,
    /// service name -> its routes (built-in outputs only).
    pub routes: BTreeMap<String, Vec<Route>>,
    /// What was left out, and why.
    pub problems: Vec<String>,
}

/// The user templates, parsed once (the daemon keeps them for every render).
pub fn templates(config: &Config) -> Result<tera::Tera, String> {
    let mut tera = tera::Tera::default();
    for t in &config.templates {
        tera.add_raw_template(&t.name, &t.text)
            .map_err(|e| format!("template {}: {}", t.name, error_chain(&e)))?;
    }
    Ok(tera)
}

/// Render every output, parsing the templates first (see [`render_with`]).
pub fn render(view: &View, config: &Config) -> Result<Rendered, String> {
    render_with(view, config, &templates(config)?)
}

/// Render every output with the templates already parsed. A template that fails to render is
/// an error naming it; the view's problems and the listeners' become `problems`.
pub fn render_with(view: &View, config: &Config, tera: &tera::Tera) -> Result<Rendered, String> {
    let mut problems = view.problems.clone();
    let mut outputs = Vec::new();
    let mut routes: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    let listeners = match config.kind {
        Kind::Nginx => listeners(view, config.status_port, true, &mut problems),
        Kind::Haproxy => listeners(view, config.status_port, false, &mut problems),
        Kind::None => vec![],
    };
    for l in &listeners {
        for s in &l.services {
            routes.entry(s.name.clone()).or_default().push(Route {
                protocol: l.proto,
                listen: l.port,
                instances: s
                    .instances
                    .iter()
                    .map(|i| RoutedInstance {
                        node: i.node.clone(),
                        id: i.id.clone(),
                        address: i.address.clone(),
                        port: i.port,
                    })
                    .collect(),
                instances_omitted: None,
            });
        }
    }
    match config.kind {
        Kind::Nginx => outputs.extend(nginx::render(view, &listeners, config)),
        Kind::Haproxy => outputs.push(haproxy::render(view, &listeners, config)),
        Kind::None => {}
    }
    if !config.templates.is_empty() {
        let context = tera::Context::from_serialize(view)
            .map_err(|e| format!("template data: {}", error_chain(&e)))?;
        for t in &config.templates {
            let content = tera
                .render(&t.name, &context)
                .map_err(|e| format!("template {}: {}", t.name, error_chain(&e)))?;
            outputs.push(Output {
                name: t.name.clone(),
                path: t.destination.clone(),
                content,
                validate: t.validate.clone(),
                reload: t.reload.clone(),
            });
        }
    }
    let generation = {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for o in &outputs {
            hasher.update(o.path.to_string_lossy().as_bytes());
            hasher.update(b"\0");
            hasher.update(o.content.as_bytes());
            hasher.update(b"\0");
        }
        hex::encode(hasher.finalize())[..12].to_string()
    };
    for o in &mut outputs {
        o.content = o.content.replace(GENERATION, &generation);
    }
    Ok(Rendered {
        outputs,
        generation,
        routes,
        problems,
    })
}

/// The first lines of every built-in output.
pub fn header(comment: &str, node: &str) -> String {
    format!(
        "{comment} Written by consulctl-host lb on {node} (generation {GENERATION}) from Consul's catalog.\n\
         {comment} Rewritten on every change: edit the inventory's [lb] settings or templates, not this file.\n"
    )
}

/// A name usable as an nginx upstream or HAProxy backend/server name.
pub fn ident(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
