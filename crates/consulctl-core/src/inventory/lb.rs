//! `[lb]`: the LB sync daemon (`consulctl-host lb`, keeping nginx or HAProxy equal to Consul's
//! catalog) on the hosts its `on` selects (default: hosts tagged `lb`), with role and host
//! `lb = { ... }` tables overriding single keys (and single keys of `balance`, `nginx`,
//! `haproxy`, single services of `ports`) and `enabled = true|false` adding or removing a
//! host whatever `on` says. Template files are read here, so a missing one stops the run
//! before any host is touched.

use std::collections::BTreeMap;

use super::helpers::{Daemon, GivenBinary, Layer, Tables};
use super::services::{go_duration_nanos, is_service_ident};
use super::*;
use crate::model::{LbBalance, LbHaproxy, LbKind, LbNginx, LbSpec, LbTemplate};

/// `on` when `[lb]` gives none.
pub(super) const DEFAULT_ON: &str = "tag:lb";

/// The balancing methods per kind: (name in the inventory, what lb.toml gets). lb.toml speaks
/// nginx's names; the daemon maps them for HAProxy, whose own names are accepted too.
const NGINX_METHODS: &[(&str, &str)] = &[
    ("least_conn", "least_conn"),
    ("round_robin", "round_robin"),
    ("ip_hash", "ip_hash"),
    ("random", "random"),
];
const HAPROXY_METHODS: &[(&str, &str)] = &[
    ("least_conn", "least_conn"),
    ("leastconn", "least_conn"),
    ("round_robin", "round_robin"),
    ("roundrobin", "round_robin"),
    ("ip_hash", "ip_hash"),
    ("source", "ip_hash"),
    ("random", "random"),
];

fn methods(kind: LbKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        LbKind::Haproxy => HAPROXY_METHODS,
        LbKind::Nginx | LbKind::None => NGINX_METHODS,
    }
}

/// A template name: letters, digits, `_` and `-`.
fn is_template_name(s: &str) -> bool {
    is_service_ident(s)
}

/// `[lb.balance]` of one table.
#[derive(Debug, Default, Clone)]
struct BalanceLayer {
    /// As given, with where (checked against the host's kind when resolving).
    method: Option<(String, KeyPath)>,
    max_fails: Option<u32>,
    fail_timeout: Option<String>,
    weight: Option<u32>,
    keepalive: Option<u32>,
    maxconn: Option<u32>,
    retries: Option<u32>,
}

#[derive(Debug, Default, Clone)]
struct NginxLayer {
    http_conf: Option<PathBuf>,
    stream_conf: Option<PathBuf>,
    stream_block: Option<bool>,
    test: Option<Vec<String>>,
    reload: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone)]
struct HaproxyLayer {
    config: Option<PathBuf>,
    test: Option<Vec<String>>,
    reload: Option<Vec<String>>,
}

/// One `lb` table's settings (each key given or not).
#[derive(Debug, Default, Clone)]
pub(super) struct LbLayer {
    kind: Option<LbKind>,
    tag: Option<String>,
    status_port: Option<(u16, KeyPath)>,
    min_wait: Option<(String, KeyPath)>,
    max_wait: Option<String>,
    publish: Option<bool>,
    balance: BalanceLayer,
    /// Service name -> (port, where).
    ports: BTreeMap<String, (u16, KeyPath)>,
    nginx: NginxLayer,
    haproxy: HaproxyLayer,
    templates: Option<Vec<LbTemplate>>,
    enabled: Option<bool>,
}

impl Layer for LbLayer {
    fn enabled(&self) -> Option<bool> {
        self.enabled
    }
}

/// The first layer (host, role, top) that gives a key.
fn first<T: Clone>(layers: &[&LbLayer; 3], get: impl Fn(&LbLayer) -> Option<&T>) -> Option<T> {
    layers.iter().find_map(|l| get(l)).cloned()
}

/// The daemon, as its tables and messages name it.
const DAEMON: Daemon = Daemon {
    name: "lb",
    what: "the LB sync daemon",
    default_on: Some(DEFAULT_ON),
};

impl Ctx<'_> {
    /// An argv: a non-empty array of strings whose first (the program) is not empty.
    fn argv(&mut self, key: &KeyPath, v: &raw::V, example: &str) -> Option<Vec<String>> {
        let words = self.list(key, v, example, |s| Ok(s.to_owned()), |_, _| false)?;
        if words.first().map_or(true, |w| w.trim().is_empty()) {
            let value = v.clone()?;
            self.bad(
                key,
                &value,
                format!("expected a command: an array of strings such as {example}"),
            );
            return None;
        }
        Some(words)
    }

    /// An integer `lo..=hi` as u32.
    fn count(&mut self, key: &KeyPath, v: &raw::V, lo: i64, hi: i64) -> Option<u32> {
        self.int_in(key, v, lo, hi).map(|n| n as u32)
    }

    /// One `lb` table. False in the second value when anything is wrong (reported).
    fn lb_layer(&mut self, key: &KeyPath, r: &raw::Lb, top: bool) -> (LbLayer, bool) {
        let mut ok = self.helper_scope(
            key,
            "lb",
            top,
            [
                ("on", r.on.is_some()),
                ("binary", r.binary.is_some()),
                ("enabled", r.enabled.is_some()),
            ],
            "kind, tag, status_port, min_wait, max_wait, publish, balance, ports, nginx, \
             haproxy, templates",
        );
        let mut l = LbLayer::default();
        // Each given value that does not come out is a problem (reported by its validator).
        macro_rules! take {
            ($given:expr, $field:expr, $value:expr) => {{
                let v = $value;
                if $given.is_some() && v.is_none() {
                    ok = false;
                }
                $field = v;
            }};
        }
        take!(
            r.kind,
            l.kind,
            self.choice(
                &key.k("kind"),
                &r.kind,
                &[
                    ("nginx", LbKind::Nginx),
                    ("haproxy", LbKind::Haproxy),
                    ("none", LbKind::None),
                ],
            )
        );
        take!(
            r.tag,
            l.tag,
            self.string(&key.k("tag"), &r.tag).and_then(|s| {
                if is_tag(&s) {
                    Some(s)
                } else {
                    self.bad(
                        &key.k("tag"),
                        r.tag.as_ref()?,
                        "expected a Consul service tag: no spaces or control characters, not \
                         empty",
                    );
                    None
                }
            })
        );
        take!(
            r.status_port,
            l.status_port,
            self.int_in(&key.k("status_port"), &r.status_port, 1, 65535)
                .map(|p| (p as u16, key.k("status_port")))
        );
        take!(
            r.min_wait,
            l.min_wait,
            self.duration(&key.k("min_wait"), &r.min_wait, false)
                .map(|d| (d, key.k("min_wait")))
        );
        take!(
            r.max_wait,
            l.max_wait,
            self.duration(&key.k("max_wait"), &r.max_wait, true)
        );
        take!(
            r.publish,
            l.publish,
            self.boolean(&key.k("publish"), &r.publish)
        );
        take!(
            r.enabled,
            l.enabled,
            self.boolean(&key.k("enabled"), &r.enabled)
        );

        if let Some(b) = &r.balance {
            let k = key.k("balance");
            let all: Vec<&str> = HAPROXY_METHODS.iter().map(|(n, _)| *n).collect();
            take!(
                b.method,
                l.balance.method,
                self.string(&k.k("method"), &b.method).and_then(|s| {
                    if all.contains(&s.as_str()) {
                        Some((s, k.k("method")))
                    } else {
                        self.bad(
                            &k.k("method"),
                            b.method.as_ref()?,
                            format!(
                                "expected one of {} (nginx), or for kind = \"haproxy\" also {}",
                                quoted_list(
                                    &NGINX_METHODS.iter().map(|(n, _)| *n).collect::<Vec<_>>()
                                ),
                                quoted_list(&["leastconn", "roundrobin", "source"])
                            ),
                        );
                        None
                    }
                })
            );
            take!(
                b.max_fails,
                l.balance.max_fails,
                self.count(&k.k("max_fails"), &b.max_fails, 0, 1000)
            );
            take!(
                b.fail_timeout,
                l.balance.fail_timeout,
                self.duration(&k.k("fail_timeout"), &b.fail_timeout, true)
            );
            take!(
                b.weight,
                l.balance.weight,
                self.count(&k.k("weight"), &b.weight, 1, 256)
            );
            take!(
                b.keepalive,
                l.balance.keepalive,
                self.count(&k.k("keepalive"), &b.keepalive, 0, 10_000)
            );
            take!(
                b.maxconn,
                l.balance.maxconn,
                self.count(&k.k("maxconn"), &b.maxconn, 0, 1_000_000)
            );
            take!(
                b.retries,
                l.balance.retries,
                self.count(&k.k("retries"), &b.retries, 0, 100)
            );
        }

        match &r.ports {
            None => {}
            Some(toml::Value::Table(t)) => {
                let kp = key.k("ports");
                let mut seen: BTreeMap<u16, String> = BTreeMap::new();
                for (name, v) in t {
                    let k = kp.k(name);
                    if !is_service_ident(name) {
                        self.diag(
                            &k,
                            format!(
                                "{}: expected a Consul service name (letters, digits, \"_\" and \
                                 \"-\")",
                                json_quote(name)
                            ),
                        );
                        ok = false;
                        continue;
                    }
                    let Some(port) = self.int_in(&k, &Some(v.clone()), 1, 65535) else {
                        ok = false;
                        continue;
                    };
                    let port = port as u16;
                    if let Some(other) = seen.get(&port) {
                        self.diag(
                            &k,
                            format!(
                                "= {port}: also the port of {other}; each service needs a \
                                 listen port of its own"
                            ),
                        );
                        ok = false;
                        continue;
                    }
                    seen.insert(port, name.clone());
                    l.ports.insert(name.clone(), (port, k));
                }
            }
            Some(other) => {
                self.bad(
                    &key.k("ports"),
                    other,
                    "expected a table of service name = listen port, e.g. { web = 8080 }",
                );
                ok = false;
            }
        }

        if let Some(n) = &r.nginx {
            let k = key.k("nginx");
            take!(
                n.http_conf,
                l.nginx.http_conf,
                self.remote_path(&k.k("http_conf"), &n.http_conf)
                    .map(|(p, _)| p)
            );
            take!(
                n.stream_conf,
                l.nginx.stream_conf,
                self.remote_path(&k.k("stream_conf"), &n.stream_conf)
                    .map(|(p, _)| p)
            );
            take!(
                n.stream_block,
                l.nginx.stream_block,
                self.boolean(&k.k("stream_block"), &n.stream_block)
            );
            take!(
                n.test,
                l.nginx.test,
                self.argv(&k.k("test"), &n.test, "[\"nginx\", \"-t\"]")
            );
            take!(
                n.reload,
                l.nginx.reload,
                self.argv(&k.k("reload"), &n.reload, "[\"nginx\", \"-s\", \"reload\"]")
            );
        }
        if let Some(h) = &r.haproxy {
            let k = key.k("haproxy");
            take!(
                h.config,
                l.haproxy.config,
                self.remote_path(&k.k("config"), &h.config).map(|(p, _)| p)
            );
            take!(
                h.test,
                l.haproxy.test,
                self.argv(
                    &k.k("test"),
                    &h.test,
                    "[\"haproxy\", \"-c\", \"-f\", \"/etc/haproxy/haproxy.cfg\"]"
                )
            );
            take!(
                h.reload,
                l.haproxy.reload,
                self.argv(
                    &k.k("reload"),
                    &h.reload,
                    "[\"systemctl\", \"reload\", \"haproxy\"]"
                )
            );
        }
        if let Some(ts) = &r.templates {
            let templates = self.lb_templates(&key.k("templates"), ts);
            ok &= templates.is_some();
            l.templates = templates;
        }
        (l, ok)
    }

    /// `[[lb.templates]]`: each file read (and parsed as a Tera template) now.
    fn lb_templates(&mut self, key: &KeyPath, ts: &[raw::LbTemplate]) -> Option<Vec<LbTemplate>> {
        let mut out: Vec<LbTemplate> = Vec::new();
        let mut ok = true;
        for (i, t) in ts.iter().enumerate() {
            let k = key.i(i);
            let name = match &t.name {
                None => {
                    self.missing(
                        &k.k("name"),
                        "the template's name: letters, digits, \"_\", \"-\"",
                    );
                    None
                }
                Some(v) => self.string(&k.k("name"), &t.name).and_then(|s| {
                    if !is_template_name(&s) {
                        self.bad(&k.k("name"), v, "expected letters, digits, \"_\" and \"-\"");
                        None
                    } else if out.iter().any(|o| o.name == s) {
                        self.bad(&k.k("name"), v, "given twice; template names are unique");
                        None
                    } else {
                        Some(s)
                    }
                }),
            };
            let source = match &t.source {
                None => {
                    self.missing(
                        &k.k("source"),
                        "the Tera template file, relative to the inventory's directory",
                    );
                    None
                }
                Some(_) => self.local_path(&k.k("source"), &t.source, true),
            };
            let text = source.as_ref().and_then(|p| {
                let shown = p.display();
                match std::fs::read_to_string(p) {
                    Err(e) => {
                        self.diag(&k.k("source"), format!("cannot read {shown}: {e}"));
                        None
                    }
                    Ok(text) => match tera::Tera::default()
                        .add_raw_template(name.as_deref().unwrap_or("template"), &text)
                    {
                        Ok(_) => Some(text),
                        Err(e) => {
                            let mut why = e.to_string();
                            let mut src = std::error::Error::source(&e);
                            while let Some(s) = src {
                                why = format!("{why}: {s}");
                                src = s.source();
                            }
                            self.diag(
                                &k.k("source"),
                                format!("{shown} is not a valid Tera template: {why}"),
                            );
                            None
                        }
                    },
                }
            });
            let destination = match &t.destination {
                None => {
                    self.missing(&k.k("destination"), "the absolute path the daemon writes");
                    None
                }
                Some(v) => self
                    .remote_path(&k.k("destination"), &t.destination)
                    .and_then(|(p, _)| {
                        if out.iter().any(|o| o.destination == p) {
                            self.bad(
                                &k.k("destination"),
                                v,
                                "the destination of another template; each writes its own file",
                            );
                            None
                        } else {
                            Some(p)
                        }
                    }),
            };
            let validate = self.argv(
                &k.k("validate"),
                &t.validate,
                "[\"nginx\", \"-t\", \"-c\", \"{staged}\"]",
            );
            let reload = self.argv(&k.k("reload"), &t.reload, "[\"nginx\", \"-s\", \"reload\"]");
            let bad_optional = (t.validate.is_some() && validate.is_none())
                || (t.reload.is_some() && reload.is_none());
            match (name, source, text, destination) {
                (Some(name), Some(source), Some(text), Some(destination)) if !bad_optional => out
                    .push(LbTemplate {
                        name,
                        source,
                        text,
                        destination,
                        validate,
                        reload,
                    }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Host > role > `[lb]` > the defaults of the host's init system, key by key; the balance
    /// method checked against the kind, min_wait against max_wait, the ports against the status
    /// port. Problems are reported once per key (`reported`).
    fn lb_resolve(
        &mut self,
        layers: &[&LbLayer; 3],
        init: Init,
        reported: &mut Vec<KeyPath>,
    ) -> Option<LbSpec> {
        let d = LbSpec::defaults(init);
        let kind = first(layers, |l| l.kind.as_ref()).unwrap_or(d.kind);
        let mut ok = true;
        let mut problem = |cx: &mut Self, key: &KeyPath, message: String| {
            ok = false;
            if !reported.contains(key) {
                reported.push(key.clone());
                cx.diag(key, message);
            }
        };
        let method = match first(layers, |l| l.balance.method.as_ref()) {
            None => d.balance.method.clone(),
            Some((m, key)) => match methods(kind).iter().find(|(n, _)| *n == m) {
                Some((_, canonical)) => canonical.to_string(),
                None => {
                    let names: Vec<&str> = methods(kind).iter().map(|(n, _)| *n).collect();
                    problem(
                        self,
                        &key,
                        format!(
                            "= {}: not a method of kind = \"{}\"; expected one of {}",
                            json_quote(&m),
                            kind.as_str(),
                            quoted_list(&names)
                        ),
                    );
                    String::new()
                }
            },
        };
        let min_wait = first(layers, |l| l.min_wait.as_ref());
        let max_wait = first(layers, |l| l.max_wait.as_ref()).unwrap_or(d.max_wait.clone());
        if let Some((min, key)) = &min_wait {
            if go_duration_nanos(min) > go_duration_nanos(&max_wait) {
                problem(
                    self,
                    key,
                    format!(
                        "= {}: longer than max_wait ({}); the daemon waits at least min_wait \
                         and at most max_wait after a change",
                        json_quote(min),
                        json_quote(&max_wait)
                    ),
                );
            }
        }
        let status_port = first(layers, |l| l.status_port.as_ref());
        // Ports: per service, host over role over top.
        let mut ports: BTreeMap<String, (u16, KeyPath)> = BTreeMap::new();
        for l in layers.iter().rev() {
            for (name, p) in &l.ports {
                ports.insert(name.clone(), p.clone());
            }
        }
        let status = status_port
            .as_ref()
            .map(|(p, _)| *p)
            .unwrap_or(d.status_port);
        let mut by_port: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, (port, key)) in &ports {
            if *port == status {
                problem(
                    self,
                    key,
                    format!(
                        "= {port}: the daemon's status_port; give the service another port (or \
                         move lb.status_port)"
                    ),
                );
            } else if let Some(other) = by_port.insert(*port, name) {
                problem(
                    self,
                    key,
                    format!(
                        "= {port}: also the port of {other} on the same host; each service \
                         needs a listen port of its own"
                    ),
                );
            }
        }
        if !ok {
            return None;
        }
        let b = &d.balance;
        Some(LbSpec {
            kind,
            tag: first(layers, |l| l.tag.as_ref()).unwrap_or(d.tag),
            status_port: status,
            min_wait: min_wait.map(|(m, _)| m).unwrap_or(d.min_wait),
            max_wait,
            publish: first(layers, |l| l.publish.as_ref()).unwrap_or(d.publish),
            balance: LbBalance {
                method,
                max_fails: first(layers, |l| l.balance.max_fails.as_ref()).unwrap_or(b.max_fails),
                fail_timeout: first(layers, |l| l.balance.fail_timeout.as_ref())
                    .unwrap_or(b.fail_timeout.clone()),
                weight: first(layers, |l| l.balance.weight.as_ref()).unwrap_or(b.weight),
                keepalive: first(layers, |l| l.balance.keepalive.as_ref()).unwrap_or(b.keepalive),
                maxconn: first(layers, |l| l.balance.maxconn.as_ref()).unwrap_or(b.maxconn),
                retries: first(layers, |l| l.balance.retries.as_ref()).unwrap_or(b.retries),
            },
            ports: ports.into_iter().map(|(n, (p, _))| (n, p)).collect(),
            nginx: LbNginx {
                http_conf: first(layers, |l| l.nginx.http_conf.as_ref())
                    .unwrap_or(d.nginx.http_conf),
                stream_conf: first(layers, |l| l.nginx.stream_conf.as_ref())
                    .unwrap_or(d.nginx.stream_conf),
                stream_block: first(layers, |l| l.nginx.stream_block.as_ref())
                    .unwrap_or(d.nginx.stream_block),
                test: first(layers, |l| l.nginx.test.as_ref()).unwrap_or(d.nginx.test),
                reload: first(layers, |l| l.nginx.reload.as_ref()).unwrap_or(d.nginx.reload),
            },
            haproxy: LbHaproxy {
                config: first(layers, |l| l.haproxy.config.as_ref()).unwrap_or(d.haproxy.config),
                test: first(layers, |l| l.haproxy.test.as_ref()).unwrap_or(d.haproxy.test),
                reload: first(layers, |l| l.haproxy.reload.as_ref()).unwrap_or(d.haproxy.reload),
            },
            templates: first(layers, |l| l.templates.as_ref()).unwrap_or_default(),
        })
    }

    /// Validate every `lb` table and give each host its LB daemon (when `hosts` is known).
    /// Returns `[lb] binary` when given and whether all is well (problems are reported).
    pub(super) fn lb(
        &mut self,
        tables: Tables<raw::Lb>,
        host_names: &[String],
        hosts: Option<&mut Vec<Host>>,
    ) -> (Option<GivenBinary>, bool) {
        // A problem shared by several hosts (a method given once) is reported once.
        let mut reported = Vec::new();
        self.helper_place(
            DAEMON,
            &tables,
            host_names,
            hosts,
            |cx, key, r, top| cx.lb_layer(key, r, top),
            |cx, layers, host| {
                host.lb = cx.lb_resolve(&layers, host.init, &mut reported);
                host.lb.is_some()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::test_support::*;
    use crate::model::{Init, LbKind, LbSpec};

    /// `with_client` (c1 tagged web, line 5), an `[lb]` table from line 13 (`binary` on 14).
    fn lb(table: &str) -> String {
        with_client(&format!("[lb]\nbinary = \"dist/consul\"\n{table}"))
    }

    /// `lb(table)` with c1 tagged `lb` too.
    fn tagged(table: &str) -> String {
        lb(table).replace("tags = [\"web\"]", "tags = [\"web\", \"lb\"]")
    }

    #[test]
    fn default_on_is_the_hosts_tagged_lb_and_every_default_applies() {
        let c = ok(&tagged(""));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let with: Vec<&str> = c
            .hosts
            .iter()
            .filter(|h| h.lb.is_some())
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(with, ["c1"]);
        assert_eq!(c.registrar_binary, Some(fixtures().join("dist/consul")));
        let spec = c.host("c1").unwrap().lb.clone().unwrap();
        assert_eq!(spec, LbSpec::defaults(Init::Systemd));
        assert_eq!(spec.kind, LbKind::Nginx);
        assert_eq!(
            (
                spec.tag.as_str(),
                spec.status_port,
                spec.min_wait.as_str(),
                spec.max_wait.as_str()
            ),
            ("upyun", 18900, "0s", "1s")
        );
        assert!(spec.publish);
        let b = &spec.balance;
        assert_eq!(
            (
                b.method.as_str(),
                b.max_fails,
                b.fail_timeout.as_str(),
                b.weight
            ),
            ("least_conn", 3, "60s", 1)
        );
        assert_eq!((b.keepalive, b.maxconn, b.retries), (32, 100, 3));
        assert_eq!(spec.nginx.reload, ["systemctl", "reload", "nginx"]);
        assert_eq!(spec.haproxy.reload, ["systemctl", "reload", "haproxy"]);
        assert_eq!(spec.nginx.test, ["nginx", "-t"]);
        // No [lb] at all: nobody, even tagged lb.
        let c = ok(&with_client("").replace("tags = [\"web\"]", "tags = [\"lb\"]"));
        assert!(c.hosts.iter().all(|h| h.lb.is_none()));
        assert_eq!(c.registrar_binary, None);
    }

    #[test]
    fn reload_defaults_follow_the_hosts_init() {
        let text = tagged("").replace(
            "role = \"client\", tags",
            "role = \"client\", init = \"supervisord\", tags",
        );
        let spec = ok(&text).host("c1").unwrap().lb.clone().unwrap();
        assert_eq!(spec.nginx.reload, ["nginx", "-s", "reload"]);
        assert_eq!(
            spec.haproxy.reload,
            ["pkill", "-USR2", "-F", "/run/haproxy.pid"]
        );
    }

    #[test]
    fn every_key_resolves_host_over_role_over_table() {
        let text = with_client(
            r#"[servers]
lb = { kind = "haproxy", balance = { method = "roundrobin" }, ports = { db = 5433 }, enabled = true }
[lb]
on = "c1"
binary = "dist/consul"
kind = "nginx"
tag = "edge"
status_port = 19000
min_wait = "50ms"
max_wait = "2s"
publish = false
ports = { web = 8080, db = 5432 }
[lb.balance]
method = "ip_hash"
max_fails = 5
fail_timeout = "30s"
weight = 2
keepalive = 0
maxconn = 50
retries = 1
[lb.nginx]
http_conf = "/etc/nginx/http.d/lb.conf"
stream_conf = "/etc/nginx/stream.d/lb.conf"
stream_block = false
test = ["/usr/sbin/nginx", "-t"]
reload = ["/usr/sbin/nginx", "-s", "reload"]
[lb.haproxy]
config = "/etc/haproxy/lb.cfg"
test = ["haproxy", "-c", "-f", "/etc/haproxy/lb.cfg"]
[[lb.templates]]
name = "status"
source = "lb/status.conf.tera"
destination = "/etc/nginx/conf.d/status.conf"
validate = ["nginx", "-t", "-c", "{staged}"]
reload = ["nginx", "-s", "reload"]
"#,
        )
        .replace(
            "{ name = \"s2\", address = \"10.0.0.2\", role = \"server\" }",
            "{ name = \"s2\", address = \"10.0.0.2\", role = \"server\", lb = { enabled = false } }",
        )
        .replace(
            "{ name = \"s3\", address = \"10.0.0.3\", role = \"server\" }",
            "{ name = \"s3\", address = \"10.0.0.3\", role = \"server\", lb = { tag = \"s3only\", balance = { retries = 9 }, haproxy = { reload = [\"kill\", \"-USR2\", \"1\"] } } }",
        );
        let c = ok(&text);
        let c1 = c.host("c1").unwrap().lb.clone().unwrap();
        assert_eq!(c1.kind, LbKind::Nginx);
        assert_eq!(
            (
                c1.tag.as_str(),
                c1.status_port,
                c1.min_wait.as_str(),
                c1.max_wait.as_str()
            ),
            ("edge", 19000, "50ms", "2s")
        );
        assert!(!c1.publish);
        assert_eq!(c1.balance.method, "ip_hash");
        assert_eq!(
            (
                c1.balance.max_fails,
                c1.balance.weight,
                c1.balance.keepalive,
                c1.balance.maxconn,
                c1.balance.retries
            ),
            (5, 2, 0, 50, 1)
        );
        assert_eq!(c1.balance.fail_timeout, "30s");
        assert_eq!(c1.ports.get("web"), Some(&8080));
        assert_eq!(
            c1.nginx.http_conf,
            std::path::PathBuf::from("/etc/nginx/http.d/lb.conf")
        );
        assert!(!c1.nginx.stream_block);
        assert_eq!(c1.nginx.reload, ["/usr/sbin/nginx", "-s", "reload"]);
        assert_eq!(c1.templates.len(), 1);
        let t = &c1.templates[0];
        assert_eq!(t.name, "status");
        assert!(t.text.contains("{{"), "the file's text: {}", t.text);
        assert_eq!(t.validate.as_deref().unwrap()[3], "{staged}");
        // [servers] enables every server as HAProxy (roundrobin -> the daemon's name); s2 opts
        // out; s3 overrides single keys.
        let s1 = c.host("s1").unwrap().lb.clone().unwrap();
        assert_eq!(s1.kind, LbKind::Haproxy);
        assert_eq!(s1.balance.method, "round_robin");
        assert_eq!(s1.balance.max_fails, 5, "from [lb.balance]");
        assert_eq!((s1.ports["db"], s1.ports["web"]), (5433, 8080));
        assert_eq!(s1.haproxy.reload, ["systemctl", "reload", "haproxy"]);
        assert_eq!(c.host("s2").unwrap().lb, None);
        let s3 = c.host("s3").unwrap().lb.clone().unwrap();
        assert_eq!((s3.tag.as_str(), s3.balance.retries), ("s3only", 9));
        assert_eq!(s3.haproxy.reload, ["kill", "-USR2", "1"]);
        assert_eq!(
            s3.haproxy.config,
            std::path::PathBuf::from("/etc/haproxy/lb.cfg")
        );
    }

    #[test]
    fn a_registrar_and_an_lb_share_the_one_binary() {
        let text = tagged("[registrar]\non = \"c1\"\nbinary = \"dist/consul\"\n");
        let c = ok(&text);
        assert_eq!(c.registrar_binary, Some(fixtures().join("dist/consul")));
        let text = tagged("[registrar]\non = \"c1\"\nbinary = \"dist/other\"\n");
        let d = errs(&text);
        check(
            &d,
            "lb.binary",
            14,
            "names another file than registrar.binary",
        );
        // Neither given: the default, missing next to the test binary, named under [lb].
        let text = with_client("[lb]\non = \"c1\"\n");
        only(&text, "lb.binary", 13, "next to the running consulctl");
    }

    #[test]
    fn a_template_file_is_read_at_load_and_must_exist() {
        let t = |src: &str| {
            tagged(&format!(
                "[[lb.templates]]\nname = \"x\"\nsource = \"{src}\"\ndestination = \"/etc/x.conf\"\n"
            ))
        };
        let d = only(
            &t("lb/nope.tera"),
            "lb.templates[0].source",
            17,
            "file not found",
        );
        assert!(d.message.contains("lb/nope.tera"), "{d}");
        only(
            &t("lb/broken.tera"),
            "lb.templates[0].source",
            17,
            "not a valid Tera template",
        );
        // name and destination are required.
        let d = errs(&tagged(
            "[[lb.templates]]\nsource = \"lb/status.conf.tera\"\n",
        ));
        assert!(d.iter().any(|d| d.key == "lb.templates[0].name"), "{d:?}");
        assert!(
            d.iter().any(|d| d.key == "lb.templates[0].destination"),
            "{d:?}"
        );
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "kind = \"traefik\"",
                "lb.kind",
                "expected one of \"nginx\", \"haproxy\", \"none\"",
            ),
            ("tag = \"a b\"", "lb.tag", "expected a Consul service tag"),
            (
                "status_port = 0",
                "lb.status_port",
                "expected an integer from 1 to 65535",
            ),
            ("status_port = 70000", "lb.status_port", "from 1 to 65535"),
            ("min_wait = \"1\"", "lb.min_wait", "expected a Go duration"),
            ("max_wait = \"0s\"", "lb.max_wait", "above zero"),
            ("min_wait = \"5s\"", "lb.min_wait", "longer than max_wait"),
            ("publish = \"yes\"", "lb.publish", "expected true or false"),
            (
                "balance = { method = \"fastest\" }",
                "lb.balance.method",
                "expected one of \"least_conn\"",
            ),
            (
                "balance = { method = \"leastconn\" }",
                "lb.balance.method",
                "not a method of kind = \"nginx\"",
            ),
            (
                "balance = { max_fails = -1 }",
                "lb.balance.max_fails",
                "from 0 to 1000",
            ),
            (
                "balance = { fail_timeout = \"0s\" }",
                "lb.balance.fail_timeout",
                "above zero",
            ),
            (
                "balance = { weight = 0 }",
                "lb.balance.weight",
                "from 1 to 256",
            ),
            (
                "balance = { retries = \"3\" }",
                "lb.balance.retries",
                "expected an integer",
            ),
            (
                "balance = { colour = 1 }",
                "lb.balance.colour",
                "unknown key",
            ),
            ("ports = { web = 0 }", "lb.ports.web", "from 1 to 65535"),
            (
                "ports = { \"a b\" = 80 }",
                "lb.ports.\"a b\"",
                "expected a Consul service name",
            ),
            (
                "ports = { web = 80, api = 80 }",
                "lb.ports.api",
                "also the port of web",
            ),
            (
                "ports = { web = 18900 }",
                "lb.ports.web",
                "the daemon's status_port",
            ),
            (
                "ports = 8080",
                "lb.ports",
                "expected a table of service name = listen port",
            ),
            (
                "nginx = { http_conf = \"conf.d/x\" }",
                "lb.nginx.http_conf",
                "absolute path",
            ),
            (
                "nginx = { test = [] }",
                "lb.nginx.test",
                "expected a command",
            ),
            (
                "nginx = { reload = \"nginx -s reload\" }",
                "lb.nginx.reload",
                "expected an array of strings",
            ),
            (
                "nginx = { stream_block = 1 }",
                "lb.nginx.stream_block",
                "expected true or false",
            ),
            (
                "haproxy = { config = \"/\" }",
                "lb.haproxy.config",
                "not \"/\" itself",
            ),
            (
                "haproxy = { reload = [1] }",
                "lb.haproxy.reload[0]",
                "expected a string",
            ),
            (
                "enabled = true",
                "lb.enabled",
                "only in a role table or on a host",
            ),
            ("colour = 1", "lb.colour", "unknown key"),
        ];
        for (line, key, needle) in cases {
            let text = doc(&format!(
                "[lb]\non = \"s1\"\nbinary = \"dist/consul\"\n{line}\n"
            ));
            only(&text, key, 15, needle);
        }
        // HAProxy takes its own method names too.
        let c = ok(&doc(
            "[lb]\non = \"s1\"\nbinary = \"dist/consul\"\nkind = \"haproxy\"\nbalance = { method = \"source\" }\n",
        ));
        assert_eq!(
            c.host("s1").unwrap().lb.as_ref().unwrap().balance.method,
            "ip_hash"
        );
        // `on`, `binary` only at the top; `on` checked like the registrar's.
        only(
            &doc("[servers]\nlb = { on = \"s1\" }\n"),
            "servers.lb.on",
            13,
            "only in the top-level [lb] table",
        );
        only(
            &doc("[lb]\non = \"s1,db9\"\n"),
            "lb.on",
            13,
            "no host is named `db9`",
        );
        only(
            &(s2_with("lb = { enabled = 1 }") + HEAD),
            "hosts[1].lb.enabled",
            3,
            "expected true or false",
        );
        // A method that fits the table's kind but not a host's override of it.
        only(
            &doc("[lb]\non = \"s1\"\nbinary = \"dist/consul\"\nkind = \"haproxy\"\nbalance = { method = \"leastconn\" }\n[servers]\nlb = { kind = \"nginx\" }\n"),
            "lb.balance.method",
            16,
            "not a method of kind = \"nginx\"",
        );
    }
}
