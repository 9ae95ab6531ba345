//! Host plumbing: services and checks from the inventory, DNS through the system resolver,
//! resolv.conf. Everything is checked on the hosts and through Consul's own API.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{wait_until, Lab, LabInit, Out};

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn api(lab: &Lab, host: &str, path: &str) -> Value {
    let body = lab.consul_api(host, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{host} {path}: not JSON ({e}): {body}"))
}

fn edit(lab: &Lab, f: impl FnOnce(&mut toml_edit::DocumentMut)) {
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    f(&mut doc);
    std::fs::write(lab.inventory(), doc.to_string()).unwrap();
}

fn append(lab: &Lab, text: &str) {
    let mut inv = std::fs::read_to_string(lab.inventory()).unwrap();
    inv.push_str(text);
    std::fs::write(lab.inventory(), inv).unwrap();
}

/// Addresses `getent hosts NAME` returns on a host (through the system resolver), sorted.
fn getent(lab: &Lab, host: &str, name: &str) -> Vec<String> {
    let out = lab.exec(host, &["getent", "hosts", name]);
    let mut v: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn pids(lab: &Lab) -> BTreeMap<String, String> {
    lab.hosts()
        .iter()
        .map(|h| {
            let pid = lab.exec(&h.name, &["pidof", "consul"]).out().to_string();
            (h.name.clone(), pid)
        })
        .collect()
}

fn start_listener(lab: &Lab, host: &str) {
    lab.docker(&[
        "exec",
        "-d",
        &lab.container(host),
        "sh",
        "-c",
        "exec nc -lk 8080 >/dev/null 2>&1",
    ])
    .success();
}

/// Issue 5, acceptance 1, 2, 3 and 5: a `web` service with a tcp check on two clients backed by
/// real listeners resolves through the system resolver of a third host to both; a stopped
/// listener turns its check critical and drops out of the answer (only_passing); the seed's UDP
/// script check is registered and `consulctl services` shows it; removing a service deregisters
/// it with `consul reload` (same PIDs) and a second apply changes nothing.
#[test]
fn services_resolve_through_the_system_resolver_and_follow_their_checks() {
    let lab = Lab::new("svc")
        .servers(1)
        .clients(3)
        .init(LabInit::Mixed)
        .up();
    let inv = lab.inventory_str();
    edit(&lab, |doc| {
        doc["config"]["dns_config"] = toml_edit::Item::Value(
            "{ only_passing = true, enable_truncate = true }"
                .parse::<toml_edit::Value>()
                .unwrap(),
        );
    });
    append(
        &lab,
        r#"
[dns]
options = ["timeout:1", "attempts:1", "single-request-reopen", "rotate"]

[[services]]
name = "web"
on = "client1,client2"
port = 8080
address = "{{ bind_addr }}"
tags = ["http", "upyun"]

[[services.checks]]
name = "web tcp"
tcp = "{{ bind_addr }}:8080"
interval = "1s"
timeout = "1s"

[[services]]
name = "ntp"
on = "client3"

[[services.checks]]
name = "ntp udp"
args = ["nc", "-z", "-u", "127.0.0.1", "123"]
interval = "2s"
timeout = "2s"
"#,
    );
    for h in ["client1", "client2"] {
        start_listener(&lab, h);
    }
    lab.consulctl(&["apply", "-i", inv]).success();

    // resolv.conf on the third host points at the local forwarder, with the seed's options.
    let resolv = lab.exec("client3", &["cat", "/etc/resolv.conf"]).success();
    assert!(
        resolv.stdout.contains("nameserver 127.0.0.1\n")
            && resolv
                .stdout
                .contains("options timeout:1 attempts:1 single-request-reopen rotate\n"),
        "{resolv}"
    );

    let a1 = lab.host("client1").address.clone();
    let a2 = lab.host("client2").address.clone();
    let both = {
        let mut v = vec![a1.clone(), a2.clone()];
        v.sort();
        v
    };
    assert!(
        wait_until(60, || getent(&lab, "client3", "web.service.consul") == both),
        "getent hosts web.service.consul on client3: {:?}",
        getent(&lab, "client3", "web.service.consul")
    );

    // The listener on client1 goes: its check turns critical, DNS answers client2 only.
    lab.exec("client1", &["pkill", "-x", "nc"]).success();
    assert!(
        wait_until(30, || {
            api(&lab, "server1", "/v1/health/checks/web")
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["Node"] == "client1" && c["Status"] == "critical")
        }),
        "client1's web check never went critical"
    );
    assert!(
        wait_until(30, || getent(&lab, "client3", "web.service.consul")
            == vec![a2.clone()]),
        "getent after the check failed: {:?}",
        getent(&lab, "client3", "web.service.consul")
    );

    // The seed's UDP script check, as Consul and `consulctl services` see it (a UDP listener
    // on 123 stands in for the NTP server).
    let ntp_check = || -> Option<(String, String)> {
        api(&lab, "server1", "/v1/health/checks/ntp")
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Node"] == "client3" && c["Name"] == "ntp udp")
            .map(|c| {
                (
                    c["Status"].as_str().unwrap().to_string(),
                    c["Output"].as_str().unwrap_or("").to_string(),
                )
            })
    };
    assert!(
        // A check starts critical with no output; passing or any output means it ran.
        wait_until(30, || {
            ntp_check().is_some_and(|(status, out)| status == "passing" || !out.is_empty())
        }),
        "the ntp script check never ran: {:?}",
        ntp_check()
    );
    let (status, _) = ntp_check().unwrap();
    let report = json(
        &lab.consulctl(&["services", "-i", inv, "-o", "json"])
            .success(),
    );
    let ntp = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ntp")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(ntp["instances"][0]["node"], "client3", "{report:#}");
    assert_eq!(ntp["instances"][0]["checks"][0]["name"], "ntp udp");
    assert_eq!(ntp["instances"][0]["checks"][0]["status"], status.as_str());
    let text = lab.consulctl(&["services", "-i", inv]).success();
    assert!(
        text.stdout.contains(&format!("ntp udp: {status}")),
        "{text}"
    );
    assert!(text.stdout.contains("web tcp: critical"), "{text}");

    // Remove `web` from the inventory: deregistered by a reload, nobody restarted.
    let before = pids(&lab);
    let inv_text = std::fs::read_to_string(lab.inventory()).unwrap();
    let start = inv_text.find("[[services]]\nname = \"web\"").unwrap();
    let end = inv_text.find("[[services]]\nname = \"ntp\"").unwrap();
    std::fs::write(
        lab.inventory(),
        format!("{}{}", &inv_text[..start], &inv_text[end..]),
    )
    .unwrap();
    let out = lab.consulctl(&["apply", "-i", inv, "-o", "json"]).success();
    let recap = json(&out);
    assert_eq!(recap["totals"]["failed"], 0, "{recap:#}");
    let services = api(&lab, "server1", "/v1/catalog/services");
    assert!(services.get("web").is_none(), "{services:#}");
    assert!(services.get("ntp").is_some(), "{services:#}");
    assert_eq!(pids(&lab), before, "an agent was restarted");
    let gone = lab.exec(
        "client1",
        &["test", "-e", "/etc/consul.d/consulctl-service-web.hcl"],
    );
    assert!(!gone.ok(), "the service file is still there");
    let backup = lab.exec(
        "client1",
        &[
            "sh",
            "-c",
            "ls /var/backups/consulctl/*/etc/consul.d/consulctl-service-web.hcl",
        ],
    );
    assert!(backup.ok(), "the removed file was not kept: {backup}");

    let again = json(&lab.consulctl(&["apply", "-i", inv, "-o", "json"]).success());
    assert_eq!(again["totals"]["changed"], 0, "{again:#}");
    assert_eq!(pids(&lab), before);

    // A service declared in the inventory but not (yet) applied: Consul's catalog does not
    // have it, and `services` says so and exits 1.
    append(
        &lab,
        "\n[[services]]\nname = \"billing\"\non = \"client2\"\nport = 9090\n",
    );
    let catalog = api(&lab, "server1", "/v1/catalog/services");
    assert!(catalog.get("billing").is_none(), "{catalog:#}");
    let out = lab
        .consulctl(&["services", "-i", inv, "-o", "json"])
        .code(1);
    let report = json(&out);
    assert_eq!(report["ok"], false, "{report:#}");
    let by_name = |n: &str| {
        report["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {report:#}"))
            .clone()
    };
    assert_eq!(
        by_name("billing")["missing"],
        serde_json::json!(["client2"])
    );
    assert_eq!(by_name("billing")["instances"], serde_json::json!([]));
    assert_eq!(by_name("ntp")["missing"], serde_json::json!([]));
    assert!(out.stderr.contains("billing on client2"), "{out}");
    let text = lab.consulctl(&["services", "-i", inv]).code(1);
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains("client2") && l.contains("MISSING")),
        "{text}"
    );
}

/// Issue 5, acceptance 4: resolv.conf holds what the inventory says, the previous one is kept,
/// more than 3 nameservers are warned about; a host whose resolv.conf is systemd-resolved's
/// stub symlink is configured through resolved and resolves the Consul domain through it.
#[test]
fn resolv_conf_as_configured_and_resolved_hosts_through_resolved() {
    let lab = Lab::new("resolv")
        .servers(1)
        .clients(2)
        .init(LabInit::Systemd)
        .arg("--resolved-hosts")
        .arg("client2")
        .up();
    let inv = lab.inventory_str();
    // Nameservers on the lab's own network (nothing is sent to them in this test).
    let mut ns: Vec<String> = lab.hosts().iter().map(|h| h.address.clone()).collect();
    let spare = ns[0].rsplit_once('.').unwrap().0.to_string() + ".250";
    ns.push(spare);
    let original = lab
        .exec("client1", &["cat", "/etc/resolv.conf"])
        .success()
        .stdout;
    append(
        &lab,
        &format!(
            r#"
[dns]
nameservers = ["{}", "{}", "{}", "{}"]
search = ["lab.internal"]
options = ["timeout:1", "attempts:1", "single-request-reopen", "rotate"]
"#,
            ns[0], ns[1], ns[2], ns[3]
        ),
    );
    // client1 writes resolv.conf itself; client2 (resolved stub) forwards through resolved.
    edit(&lab, |doc| {
        let hosts = doc["hosts"].as_array_of_tables_mut().unwrap();
        for t in hosts.iter_mut() {
            if t["name"].as_str() == Some("client1") {
                t["dns"] = toml_edit::Item::Value(
                    "{ forward = \"none\" }"
                        .parse::<toml_edit::Value>()
                        .unwrap(),
                );
            }
        }
    });
    // client1 as a RHEL-style host under NetworkManager: a running NetworkManager unit (a
    // stand-in process: the lab image has no NetworkManager) and network scripts, one with
    // PEERDNS=yes, one without the key, one already PEERDNS=no.
    let nm_unit = "[Unit]\nDescription=NetworkManager stand-in\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n";
    lab.exec_stdin(
        "client1",
        &[
            "sh",
            "-c",
            "cat > /etc/systemd/system/NetworkManager.service",
        ],
        nm_unit,
    )
    .success();
    lab.exec(
        "client1",
        &[
            "sh",
            "-c",
            "systemctl daemon-reload && systemctl enable --now NetworkManager \
             && mkdir -p /etc/NetworkManager/conf.d /etc/sysconfig/network-scripts \
             && printf '[main]\\nplugins=ifcfg-rh\\n' > /etc/NetworkManager/NetworkManager.conf \
             && printf 'DEVICE=eth0\\nBOOTPROTO=dhcp\\nPEERDNS=yes\\nONBOOT=yes\\n' > /etc/sysconfig/network-scripts/ifcfg-eth0 \
             && printf 'DEVICE=eth1\\nBOOTPROTO=dhcp\\n' > /etc/sysconfig/network-scripts/ifcfg-eth1 \
             && printf 'DEVICE=eth2\\nPEERDNS=no\\n' > /etc/sysconfig/network-scripts/ifcfg-eth2 \
             && printf 'DEVICE=lo\\n' > /etc/sysconfig/network-scripts/ifcfg-lo",
        ],
    )
    .success();
    let nm_pid = |lab: &Lab| {
        lab.exec(
            "client1",
            &[
                "systemctl",
                "show",
                "-p",
                "MainPID",
                "--value",
                "NetworkManager",
            ],
        )
        .success()
        .out()
        .to_string()
    };
    let nm_before = nm_pid(&lab);
    let ifcfg_before: Vec<String> = ["eth0", "eth1", "eth2", "lo"]
        .iter()
        .map(|i| {
            lab.exec(
                "client1",
                &["cat", &format!("/etc/sysconfig/network-scripts/ifcfg-{i}")],
            )
            .success()
            .stdout
        })
        .collect();

    let out = lab.consulctl(&["apply", "-i", inv]).success();
    assert!(
        out.stderr.contains("nameservers") && out.stderr.contains("3"),
        "no warning about more than 3 nameservers:\n{out}"
    );

    // NetworkManager told to keep out of resolv.conf, and restarted to read it; its own
    // config file untouched.
    let dropin = lab
        .exec(
            "client1",
            &["cat", "/etc/NetworkManager/conf.d/consulctl-dns.conf"],
        )
        .success()
        .stdout;
    assert!(dropin.contains("[main]\ndns=none\n"), "{dropin}");
    assert_eq!(
        lab.exec(
            "client1",
            &["cat", "/etc/NetworkManager/NetworkManager.conf"]
        )
        .success()
        .stdout,
        "[main]\nplugins=ifcfg-rh\n"
    );
    let nm_after = nm_pid(&lab);
    assert!(
        nm_after != "0" && nm_after != nm_before,
        "NetworkManager not restarted: {nm_before} -> {nm_after}"
    );
    // PEERDNS=no in each network script that lacked it, the originals kept as backups.
    let script = |i: &str| {
        lab.exec(
            "client1",
            &["cat", &format!("/etc/sysconfig/network-scripts/ifcfg-{i}")],
        )
        .success()
        .stdout
    };
    assert_eq!(
        script("eth0"),
        "DEVICE=eth0\nBOOTPROTO=dhcp\nPEERDNS=no\nONBOOT=yes\n"
    );
    assert_eq!(script("eth1"), "DEVICE=eth1\nBOOTPROTO=dhcp\nPEERDNS=no\n");
    assert_eq!(script("eth2"), ifcfg_before[2], "already PEERDNS=no");
    assert_eq!(script("lo"), ifcfg_before[3], "loopback is left alone");
    for (i, before) in [("eth0", &ifcfg_before[0]), ("eth1", &ifcfg_before[1])] {
        let backup = lab
            .exec(
                "client1",
                &[
                    "sh",
                    "-c",
                    &format!(
                        "cat /var/backups/consulctl/*/etc/sysconfig/network-scripts/ifcfg-{i}"
                    ),
                ],
            )
            .success()
            .stdout;
        assert_eq!(&backup, before, "backup of ifcfg-{i}");
    }
    lab.exec(
        "client1",
        &[
            "sh",
            "-c",
            "! ls /var/backups/consulctl/*/etc/sysconfig/network-scripts/ifcfg-eth2 2>/dev/null",
        ],
    )
    .success();
    // client2 (systemd-resolved) gets no NetworkManager drop-in: resolved owns resolv.conf.
    lab.exec(
        "client2",
        &[
            "test",
            "!",
            "-e",
            "/etc/NetworkManager/conf.d/consulctl-dns.conf",
        ],
    )
    .success();

    let resolv = lab
        .exec("client1", &["cat", "/etc/resolv.conf"])
        .success()
        .stdout;
    let want = format!(
        "nameserver {}\nnameserver {}\nnameserver {}\nnameserver {}\nsearch lab.internal\noptions timeout:1 attempts:1 single-request-reopen rotate\n",
        ns[0], ns[1], ns[2], ns[3]
    );
    assert!(resolv.ends_with(&want), "client1 resolv.conf:\n{resolv}");
    let backup = lab
        .exec(
            "client1",
            &["sh", "-c", "cat /var/backups/consulctl/*/etc/resolv.conf"],
        )
        .success()
        .stdout;
    assert_eq!(backup, original, "the previous resolv.conf is kept");

    // client2: still resolved's symlink, a drop-in forwards *.consul to the agent.
    let link = lab
        .exec("client2", &["readlink", "/etc/resolv.conf"])
        .success();
    assert!(link.stdout.contains("systemd/resolve"), "{link}");
    lab.exec(
        "client2",
        &[
            "test",
            "-f",
            "/etc/systemd/resolved.conf.d/consulctl-consul.conf",
        ],
    )
    .success();
    let server_ip = lab.host("server1").address.clone();
    assert!(
        wait_until(30, || getent(&lab, "client2", "consul.service.consul")
            == vec![server_ip.clone()]),
        "getent through resolved: {:?}",
        getent(&lab, "client2", "consul.service.consul")
    );

    let plan = lab.consulctl(&["plan", "-i", inv]).success();
    assert!(plan.stdout.contains("0 to change"), "{plan}");
    assert!(
        plan.stdout.contains("systemd-resolved"),
        "the note about resolved: {plan}"
    );
}
