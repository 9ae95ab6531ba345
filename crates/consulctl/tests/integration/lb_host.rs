//! `lab up --lb-hosts`: load-balancer hosts are tagged `lb`; every lab host has Debian's nginx
//! (with the stream module) and haproxy installed but not running after boot, under systemd and
//! under supervisord; started by hand, nginx serves Debian's default site to this machine.

use crate::harness::{docker, wait_until, Lab, LabInit};

#[test]
fn lb_hosts_have_nginx_and_haproxy_installed_not_running() {
    // Mixed: server1 systemd, client1 supervisord, client2 systemd.
    let lab = Lab::new("lbhost")
        .servers(1)
        .clients(2)
        .init(LabInit::Mixed)
        .lb_hosts(&["client1", "client2"])
        .up();
    assert_eq!(lab.host("server1").tags, ["lab"]);
    for (host, init) in [("client1", "supervisord"), ("client2", "systemd")] {
        assert_eq!(lab.host(host).init, init);
        assert_eq!(lab.host(host).tags, ["lab", "lb"], "{host}");
        let label = docker(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"consulctl.lab.lb\"}}",
            &lab.container(host),
        ])
        .success();
        assert_eq!(label.out(), "1", "{host}");
    }

    for host in ["server1", "client1", "client2"] {
        // Installed ...
        let status = lab
            .exec(
                host,
                &[
                    "dpkg-query",
                    "-W",
                    "-f",
                    "${Package} ${Status}\\n",
                    "nginx",
                    "libnginx-mod-stream",
                    "haproxy",
                ],
            )
            .success();
        let mut lines: Vec<&str> = status.out().lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "haproxy install ok installed",
                "libnginx-mod-stream install ok installed",
                "nginx install ok installed"
            ],
            "{host}"
        );
        lab.exec(host, &["ls", "/etc/nginx/modules-enabled/"])
            .success()
            .contains("mod-stream.conf");
        lab.exec(host, &["haproxy", "-v"])
            .success()
            .contains("HAProxy version 2.6");
        // ... with configs that pass their checks (Debian's defaults) ...
        lab.exec(host, &["nginx", "-t"])
            .success()
            .contains("test is successful");
        lab.exec(host, &["haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"])
            .success();
        // ... and not running after boot.
        for program in ["nginx", "haproxy"] {
            let ps = lab.exec(host, &["pgrep", "-x", program]);
            assert_eq!(ps.code, Some(1), "{host}: {program} runs\n{ps}");
        }
    }
    // The systemd image disables the units: nothing starts them at boot.
    for host in ["server1", "client2"] {
        for unit in ["nginx.service", "haproxy.service"] {
            let enabled = lab.exec(host, &["systemctl", "is-enabled", unit]);
            assert_eq!(enabled.out(), "disabled", "{host} {unit}\n{enabled}");
            let active = lab.exec(host, &["systemctl", "is-active", unit]);
            assert_eq!(active.out(), "inactive", "{host} {unit}\n{active}");
        }
    }

    // Started by hand the way each init would run it, nginx answers this machine on port 80.
    lab.exec("client1", &["nginx"]).success();
    lab.exec("client2", &["systemctl", "start", "nginx.service"])
        .success();
    for host in ["client1", "client2"] {
        let ip = lab.host_ip(host);
        let mut last = None;
        let ok = wait_until(15, || {
            let got = lab.http_get(ip, 80, "/", Some("lb.test"));
            let ok = matches!(&got, Ok((200, _)));
            last = Some(got);
            ok
        });
        assert!(ok, "{host}: GET http://{ip}/ gave {last:?}");
        let (_, body) = last.unwrap().unwrap();
        assert!(body.contains("Welcome to nginx"), "{host}: {body}");
        let (status, _) = lab.http_get(ip, 80, "/nothing-here", None).unwrap();
        assert_eq!(status, 404, "{host}");
    }
    // haproxy starts too (Debian's default config has no listener): under systemd (the image's
    // drop-in lets the unit run in an unprivileged container), and by hand in master-worker
    // mode as a supervisord program would run it (here daemonized).
    lab.exec("client2", &["systemctl", "start", "haproxy.service"])
        .success();
    lab.exec("client2", &["systemctl", "is-active", "haproxy.service"])
        .success();
    lab.exec(
        "client1",
        &[
            "haproxy",
            "-D",
            "-W",
            "-f",
            "/etc/haproxy/haproxy.cfg",
            "-p",
            "/run/haproxy.pid",
        ],
    )
    .success();
    for host in ["client1", "client2"] {
        lab.exec(host, &["pgrep", "-x", "haproxy"]).success();
    }
    // The server (not an LB host) still runs neither.
    for program in ["nginx", "haproxy"] {
        assert_eq!(lab.exec("server1", &["pgrep", "-x", program]).code, Some(1));
    }
}
