//! The sync daemon's pure part: catalog -> view -> nginx / HAProxy files, golden-tested, and
//! the files checked by the real `nginx -t` and `haproxy -c` where they are installed (CI
//! installs both; elsewhere a missing tool is said and its check skipped).

mod lb_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use consulctl_host::lb::render::{render, Rendered};
use consulctl_host::lb::view::{build, trustworthy};
use lb_support::{config, seed_catalog, Catalog};

fn rendered(extra: &str) -> Rendered {
    let c = config(extra);
    render(&build(&seed_catalog().dump(), &c), &c).unwrap()
}

fn content(r: &Rendered, name: &str) -> String {
    r.outputs
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no output {name}"))
        .content
        .clone()
}

#[test]
fn only_tagged_passing_instances_are_routed_and_health_includes_the_node() {
    let c = config("");
    let v = build(&seed_catalog().dump(), &c);
    let names: Vec<&str> = v.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "dns", "redis", "web"]);
    assert!(
        v.all_services.is_empty(),
        "the whole catalog is copied for user templates only"
    );
    let web = v.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web.all.len(), 3);
    let routed: Vec<&str> = web.instances.iter().map(|i| i.address.as_str()).collect();
    assert_eq!(routed, ["10.0.0.11", "10.0.0.12"]);
    assert_eq!(web.listen, 8080);
    let dns = v.services.iter().find(|s| s.name == "dns").unwrap();
    assert_eq!(dns.protocols, ["tcp", "udp"]);

    // A failing node check (serf: the node is dead) takes every instance on it out.
    let dump = seed_catalog()
        .node_check("app1", "serfHealth", "critical")
        .dump();
    let v = build(&dump, &c);
    let web = v.services.iter().find(|s| s.name == "web").unwrap();
    let routed: Vec<&str> = web.instances.iter().map(|i| i.node.as_str()).collect();
    assert_eq!(routed, ["app2"]);
    let redis = v.services.iter().find(|s| s.name == "redis").unwrap();
    assert!(redis.instances.is_empty());
    assert_eq!(redis.all[0].health, "critical");
}

#[test]
fn bad_instances_are_left_out_with_a_reason_and_the_rest_is_routed() {
    let dump = Catalog::new()
        .node("app1", "10.0.0.11")
        .instance_at(
            "app1",
            "web",
            "10.0.0.11;evil",
            8080,
            &["http", "upyun"],
            "passing",
        )
        .instance("app1", "web", 8080, &["http", "upyun"], "passing")
        .instance("app1", "noport", 0, &["http", "upyun"], "passing")
        .instance("app1", "plain", 80, &["upyun"], "passing")
        .dump();
    let c = config("");
    let v = build(&dump, &c);
    let web = v.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web.instances.len(), 1);
    let problems = v.problems.join("\n");
    assert!(
        problems.contains("\"10.0.0.11;evil\" is no IP address"),
        "{problems}"
    );
    assert!(problems.contains("service noport: instance"), "{problems}");
    assert!(
        problems.contains("service plain: tagged upyun but not http, tcp or udp"),
        "{problems}"
    );
    let r = render(&v, &c).unwrap();
    assert!(!content(&r, "nginx-http").contains("evil"));
}

#[test]
fn an_empty_catalog_or_one_without_this_node_is_not_trusted() {
    assert!(trustworthy(&[], "lb1")
        .unwrap_err()
        .contains("empty catalog"));
    let other = Catalog::new().node("app1", "10.0.0.11").dump();
    assert!(trustworthy(&other, "lb1").is_ok());
    let err = trustworthy(&other[1..], "lb1").unwrap_err();
    assert!(err.contains("does not hold this node (lb1)"), "{err}");
}

#[test]
fn port_clashes_leave_the_later_service_out() {
    let dump = Catalog::new()
        .node("app1", "10.0.0.11")
        .instance("app1", "alpha", 9000, &["http", "upyun"], "passing")
        .instance("app1", "beta", 9000, &["tcp", "upyun"], "passing")
        .instance("app1", "gamma", 9000, &["http", "upyun"], "passing")
        .instance("app1", "delta", 9000, &["udp", "upyun"], "passing")
        .instance("app1", "status", 18900, &["tcp", "upyun"], "passing")
        .dump();
    let c = config("");
    let r = render(&build(&dump, &c), &c).unwrap();
    let p = r.problems.join("\n");
    assert!(
        p.contains("service beta (tcp): port 9000 is taken by alpha (http)"),
        "{p}"
    );
    assert!(
        p.contains("service status: port 18900 is the status port"),
        "{p}"
    );
    let http = content(&r, "nginx-http");
    assert!(http.contains("server_name alpha;") && http.contains("server_name gamma;"));
    assert!(content(&r, "nginx-stream").contains("listen 9000 udp;"));
    assert!(!r.routes.contains_key("beta"));
    // HAProxy: udp is said to be unsupported.
    let c = config("kind = \"haproxy\"");
    let r = render(&build(&dump, &c), &c).unwrap();
    assert!(r
        .problems
        .join("\n")
        .contains("service delta: tagged udp, which HAProxy does not proxy"));
    assert!(content(&r, "haproxy")
        .contains("use_backend gamma_http if { hdr(host),field(1,:) -i gamma }"));
}

#[test]
fn ports_from_the_inventory_win_and_the_generation_follows_the_content() {
    let a = rendered("[ports]\nweb = 80");
    assert!(content(&a, "nginx-http").contains("listen 80;\n    server_name web;"));
    let b = rendered("");
    assert_ne!(a.generation, b.generation);
    assert_eq!(
        b.generation,
        rendered("").generation,
        "same input, same generation"
    );
    assert!(content(&b, "nginx-http").contains(&format!(
        "location = /consulctl/generation/{} {{",
        b.generation
    )));
    assert!(!content(&b, "nginx-http").contains("@@"));
}

#[test]
fn nginx_golden() {
    let r = rendered("");
    insta::assert_snapshot!("nginx_http", content(&r, "nginx-http"));
    insta::assert_snapshot!("nginx_stream", content(&r, "nginx-stream"));
    let inner = rendered("[nginx]\nstream_block = false\n[balance]\nmethod = \"ip_hash\"");
    insta::assert_snapshot!(
        "nginx_stream_inner_ip_hash",
        content(&inner, "nginx-stream")
    );
}

#[test]
fn haproxy_golden() {
    let r = rendered("kind = \"haproxy\"");
    assert_eq!(r.outputs.len(), 1);
    insta::assert_snapshot!("haproxy", content(&r, "haproxy"));
}

#[test]
fn user_templates_see_the_documented_data_model() {
    let t = r#"
[[template]]
name = "upstreams"
destination = "/etc/nginx/conf.d/upstreams.conf"
reload = ["nginx", "-s", "reload"]
text = """
{% for s in services %}{{ s.name }} {{ s.protocols | join(sep=",") }} {{ s.listen }}:{% for i in s.instances %} {{ i.node }}/{{ i.address }}:{{ i.port }}/{{ i.health }}{% endfor %} ({{ s.all | length }} in all)
{% endfor %}node={{ node }} tag={{ tag }} all={{ all_services | length }}
"""
"#;
    let r = rendered(t);
    assert_eq!(
        content(&r, "upstreams"),
        "api http 9000: (1 in all)\n\
         dns tcp,udp 8600: app2/10.0.0.12:8600/passing (1 in all)\n\
         redis tcp 6379: app1/10.0.0.11:6379/passing (1 in all)\n\
         web http 8080: app1/10.0.0.11:8080/passing app2/10.0.0.12:8080/passing (3 in all)\n\
         node=lb1 tag=upyun all=5\n"
    );
    // A template that fails at render time (unknown variable) is an error naming it.
    let bad = "[[template]]\nname = \"bad\"\ndestination = \"/tmp/x\"\ntext = \"{{ nope.x }}\"";
    let c = config(bad);
    let err = render(&build(&seed_catalog().dump(), &c), &c).unwrap_err();
    assert!(err.starts_with("template bad: "), "{err}");
}

// ---- the real tools ----

fn tool(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("{name} is required in CI (.ci/run installs it)");
    }
    eprintln!("{name} is not installed: its check of the rendered files is skipped");
    None
}

/// `nginx -t` on a main config that includes the two rendered files as nginx.conf would.
pub fn nginx_test(dir: &Path, http: &str, stream: &str, stream_block: bool) -> Result<(), String> {
    let nginx = tool("nginx").ok_or("no nginx")?;
    std::fs::write(dir.join("http.conf"), http).unwrap();
    std::fs::write(dir.join("stream.conf"), stream).unwrap();
    let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
    let load = if Path::new(module).exists() {
        format!("load_module {module};\n")
    } else {
        String::new()
    };
    let stream_include = if stream_block {
        format!("include {}/stream.conf;", dir.display())
    } else {
        format!("stream {{ include {}/stream.conf; }}", dir.display())
    };
    let main = format!(
        "{load}error_log stderr;\npid {d}/nginx.pid;\nevents {{}}\nhttp {{ access_log off; include {d}/http.conf; }}\n{stream_include}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let out = Command::new(nginx)
        .args(["-t", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-e", "stderr"])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[test]
fn nginx_accepts_what_is_rendered_including_services_without_passing_instances() {
    if tool("nginx").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for extra in [
        "",
        "[nginx]\nstream_block = false\n[balance]\nmethod = \"ip_hash\"",
        "[balance]\nmethod = \"random\"\nkeepalive = 0",
        "[balance]\nmethod = \"round_robin\"",
    ] {
        let r = rendered(extra);
        let block = !extra.contains("stream_block = false");
        nginx_test(
            dir.path(),
            &content(&r, "nginx-http"),
            &content(&r, "nginx-stream"),
            block,
        )
        .unwrap_or_else(|e| panic!("{extra:?}: nginx -t: {e}"));
    }
    // A catalog with no tagged service still validates (no stream block at all).
    let c = config("");
    let r = render(&build(&Catalog::new().dump(), &c), &c).unwrap();
    nginx_test(
        dir.path(),
        &content(&r, "nginx-http"),
        &content(&r, "nginx-stream"),
        true,
    )
    .unwrap();
    // And the check can fail: a broken file is refused with nginx's message.
    let err = nginx_test(dir.path(), "bogus_directive on;\n", "", true).unwrap_err();
    assert!(
        err.contains("unknown directive \"bogus_directive\""),
        "{err}"
    );
}

#[test]
fn haproxy_accepts_what_is_rendered() {
    let Some(haproxy) = tool("haproxy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for extra in ["", "[balance]\nmethod = \"ip_hash\"\nmaxconn = 5"] {
        let r = rendered(&format!("kind = \"haproxy\"\n{extra}"));
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, content(&r, "haproxy")).unwrap();
        let out = Command::new(&haproxy)
            .args(["-c", "-f"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{extra:?}: haproxy -c: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(dir.path().join("bad.cfg"), "frontend x\n    bogus 1\n").unwrap();
    let out = Command::new(&haproxy)
        .args(["-c", "-f"])
        .arg(dir.path().join("bad.cfg"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn the_kv_record_is_what_consulctl_services_reads() {
    // The fixture is also parsed by consulctl's `services` tests: one format on both sides.
    use consulctl_host::lb::daemon::{Record, Serving};
    let c = config("");
    let r = render(&build(&seed_catalog().dump(), &c), &c).unwrap();
    let record = Record {
        node: "lb1".into(),
        kind: "nginx".into(),
        updated: "2026-12-03T10:00:00Z".into(),
        serving: Some(Serving {
            generation: r.generation.clone(),
            since: "2026-12-03T10:00:00Z".into(),
            services: r.routes.clone(),
        }),
        error: None,
        problems: vec![],
    };
    let json = serde_json::to_string_pretty(&record).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lb/record.json");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(path, &json).unwrap();
    }
    assert_eq!(
        json,
        std::fs::read_to_string(path).unwrap(),
        "UPDATE_FIXTURES=1 rewrites it"
    );
}
