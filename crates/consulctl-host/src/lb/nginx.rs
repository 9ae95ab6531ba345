//! The built-in nginx output: the seed's layout (`conf.d/http.conf` included in `http {}`,
//! a stream file for tcp and udp) with what makes reloads and dying backends cost no request:
//! upstream keepalive pools, `proxy_next_upstream`, a status server that confirms reloads and
//! answers 503 for a service without a passing instance.

use std::fmt::Write;

use super::config::{Config, Method};
use super::render::{header, ident, Listener, Output, Proto, GENERATION};
use super::view::{Service, View};

/// The path nginx answers 200 on when it serves a generation (the reload confirmation).
pub fn generation_path(generation: &str) -> String {
    format!("/consulctl/generation/{generation}")
}

fn secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn upstream(out: &mut String, name: &str, s: &Service, config: &Config, proto: Proto) {
    let b = &config.balance;
    let _ = writeln!(out, "upstream {name} {{");
    match (b.method, proto) {
        (Method::LeastConn, _) => out.push_str("    least_conn;\n"),
        (Method::RoundRobin, _) => {}
        (Method::IpHash, Proto::Http) => out.push_str("    ip_hash;\n"),
        (Method::IpHash, _) => out.push_str("    hash $remote_addr consistent;\n"),
        (Method::Random, _) => out.push_str("    random two least_conn;\n"),
    }
    if s.instances.is_empty() {
        match proto {
            // The status server answers 503 with a reason.
            Proto::Http => {
                let _ = writeln!(
                    out,
                    "    # no instance of {} passes its checks: the status server answers 503",
                    s.name
                );
                let _ = writeln!(out, "    server 127.0.0.1:{};", config.status_port);
            }
            _ => {
                let _ = writeln!(
                    out,
                    "    # no instance of {} passes its checks: connections are refused",
                    s.name
                );
                out.push_str("    server 127.0.0.1:1 down;\n");
            }
        }
    }
    for i in &s.instances {
        let _ = writeln!(
            out,
            "    server {} max_fails={} fail_timeout={} weight={};  # {} on {}",
            i.endpoint(),
            b.max_fails,
            secs(b.fail_timeout),
            b.weight,
            ident(&i.id),
            ident(&i.node)
        );
    }
    if proto == Proto::Http && b.keepalive > 0 {
        let _ = writeln!(out, "    keepalive {};", b.keepalive);
    }
    out.push_str("}\n\n");
}

/// `conf.d` (http) and the stream file.
pub fn render(view: &View, listeners: &[Listener<'_>], config: &Config) -> Vec<Output> {
    let b = &config.balance;
    let mut http = header("#", &view.node);
    http.push('\n');
    for l in listeners.iter().filter(|l| l.proto == Proto::Http) {
        for s in &l.services {
            upstream(&mut http, &ident(&s.name), s, config, Proto::Http);
        }
    }
    for l in listeners.iter().filter(|l| l.proto == Proto::Http) {
        for s in &l.services {
            let name = ident(&s.name);
            let _ = write!(
                http,
                "server {{\n    listen {port};\n    server_name {name};\n    location / {{\n        \
                 proxy_pass http://{name};\n        proxy_http_version 1.1;\n        \
                 proxy_set_header Connection \"\";\n        proxy_set_header Host $host;\n        \
                 proxy_set_header X-Real-IP $remote_addr;\n        \
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        \
                 proxy_next_upstream error timeout http_502 http_503 http_504;\n        \
                 proxy_next_upstream_tries {tries};\n        proxy_connect_timeout 2s;\n    }}\n}}\n\n",
                port = l.port,
                tries = b.retries + 1,
            );
        }
    }
    let _ = write!(
        http,
        "# Status: consulctl-host lb confirms a reload by asking for its generation here; an\n\
         # upstream without a passing instance points here for a 503.\n\
         server {{\n    listen 127.0.0.1:{port};\n    server_name consulctl-lb-status;\n    \
         access_log off;\n    location = {path} {{\n        return 200 \"{GENERATION}\\n\";\n    }}\n    \
         location / {{\n        return 503 \"no instance of this service passes its checks in Consul\\n\";\n    }}\n}}\n",
        port = config.status_port,
        path = generation_path(GENERATION),
    );

    let mut stream = header("#", &view.node);
    let stream_listeners: Vec<_> = listeners
        .iter()
        .filter(|l| l.proto != Proto::Http)
        .collect();
    if stream_listeners.is_empty() {
        stream.push_str("# No tcp or udp service carries the selector tag.\n");
    } else {
        let indent = if config.nginx.stream_block {
            stream.push_str("\nstream {\n\n");
            "    "
        } else {
            stream.push('\n');
            ""
        };
        let mut body = String::new();
        for l in &stream_listeners {
            let s = l.services[0];
            let name = match l.proto {
                Proto::Udp => format!("{}_udp", ident(&s.name)),
                _ => ident(&s.name),
            };
            upstream(&mut body, &name, s, config, l.proto);
            let listen = match l.proto {
                Proto::Udp => format!("{} udp", l.port),
                _ => l.port.to_string(),
            };
            let _ = write!(
                body,
                "server {{\n    listen {listen};\n    proxy_pass {name};\n    proxy_connect_timeout 1s;\n"
            );
            if l.proto == Proto::Udp {
                body.push_str("    proxy_timeout 3s;\n");
            }
            let _ = write!(
                body,
                "    proxy_next_upstream_tries {};\n}}\n\n",
                b.retries + 1
            );
        }
        for line in body.lines() {
            if line.is_empty() {
                stream.push('\n');
            } else {
                let _ = writeln!(stream, "{indent}{line}");
            }
        }
        if config.nginx.stream_block {
            stream.push_str("}\n");
        }
    }
    vec![
        Output {
            name: "nginx-http".into(),
            path: config.nginx.http_conf.clone(),
            content: http,
            validate: vec![],
            reload: vec![],
        },
        Output {
            name: "nginx-stream".into(),
            path: config.nginx.stream_conf.clone(),
            content: stream,
            validate: vec![],
            reload: vec![],
        },
    ]
}
