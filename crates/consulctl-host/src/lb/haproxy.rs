//! The built-in HAProxy output: the whole `haproxy.cfg`. The connection pool the seed wanted:
//! backends reuse idle server connections (`http-reuse`), each server takes at most `maxconn`
//! at once (the rest queue), servers are health-checked, failed connections are retried on
//! another server (`retries`, `option redispatch`, `retry-on`). The master-worker reload with
//! `expose-fd listeners` hands the listening sockets to the new process: a reload drops no
//! connection.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::config::{Config, Method};
use super::nginx::generation_path;
use super::render::{header, ident, Listener, Output, Proto, GENERATION};
use super::view::{Service, View};

fn balance(m: Method) -> &'static str {
    match m {
        Method::LeastConn => "leastconn",
        Method::RoundRobin => "roundrobin",
        Method::IpHash => "source",
        Method::Random => "random",
    }
}

fn backend_name(s: &Service, proto: Proto) -> String {
    format!("{}_{}", ident(&s.name), proto.as_str())
}

fn backend(out: &mut String, s: &Service, proto: Proto, config: &Config) {
    let b = &config.balance;
    let mode = if proto == Proto::Http { "http" } else { "tcp" };
    let _ = writeln!(out, "backend {}", backend_name(s, proto));
    let _ = writeln!(out, "    mode {mode}");
    let _ = writeln!(out, "    balance {}", balance(b.method));
    if proto == Proto::Http {
        out.push_str("    http-reuse safe\n");
        out.push_str("    option forwardfor\n");
        out.push_str(
            "    retry-on conn-failure empty-response junk-response response-timeout 0rtt-rejected 502 503 504\n",
        );
    }
    if s.instances.is_empty() {
        let _ = writeln!(
            out,
            "    # no instance of {} passes its checks in Consul: HAProxy answers 503",
            s.name
        );
    }
    let mut used = BTreeSet::new();
    for i in &s.instances {
        let mut name = ident(&i.id);
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{}-{n}", ident(&i.id));
            n += 1;
        }
        let _ = writeln!(
            out,
            "    server {name} {} check inter 2s fall {} rise 2 maxconn {} weight {}",
            i.endpoint(),
            b.max_fails.max(1),
            b.maxconn.max(1),
            b.weight.min(256)
        );
    }
    out.push('\n');
}

pub fn render(view: &View, listeners: &[Listener<'_>], config: &Config) -> Output {
    let b = &config.balance;
    let mut out = header("#", &view.node);
    let _ = write!(
        out,
        "\nglobal\n    log /dev/log local0\n    maxconn 4096\n    user haproxy\n    group haproxy\n    \
         stats socket {sock} mode 600 level admin expose-fd listeners\n\n\
         defaults\n    log global\n    option dontlognull\n    timeout connect 2s\n    \
         timeout client 60s\n    timeout server 60s\n    timeout queue 10s\n    \
         timeout http-keep-alive 10s\n    retries {retries}\n    option redispatch\n\n\
         # Status: consulctl-host lb confirms a reload by asking for its generation here.\n\
         frontend consulctl_status\n    mode http\n    bind 127.0.0.1:{port}\n    monitor-uri {path}\n\n",
        sock = config.haproxy.stats_socket,
        retries = b.retries,
        port = config.status_port,
        path = generation_path(GENERATION),
    );
    for l in listeners {
        let mode = if l.proto == Proto::Http {
            "http"
        } else {
            "tcp"
        };
        let _ = writeln!(out, "frontend {}_{}", l.proto.as_str(), l.port);
        let _ = writeln!(out, "    mode {mode}");
        let _ = writeln!(out, "    bind :{}", l.port);
        if l.proto == Proto::Http {
            out.push_str("    option httplog\n");
            if l.services.len() > 1 {
                for s in &l.services {
                    let _ = writeln!(
                        out,
                        "    use_backend {} if {{ hdr(host),field(1,:) -i {} }}",
                        backend_name(s, l.proto),
                        s.name
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "    default_backend {}\n",
            backend_name(l.services[0], l.proto)
        );
    }
    for l in listeners {
        for s in &l.services {
            backend(&mut out, s, l.proto, config);
        }
    }
    Output {
        name: "haproxy".into(),
        path: config.haproxy.config.clone(),
        content: out,
        // Validated with the configured test command, the staged file in place of the live one.
        validate: vec![],
        reload: vec![],
    }
}
