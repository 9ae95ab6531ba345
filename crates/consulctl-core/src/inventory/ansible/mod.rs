//! `consulctl inventory import ansible`: an Ansible inventory (INI or YAML) made into a
//! consulctl inventory, so that a team that lists its machines for Ansible lists them once.
//!
//! The hosts of the servers group (default `consul_servers`) become servers, those of the
//! clients group (default `consul_clients`) clients: name, address (`ansible_host`), SSH user
//! and port (`ansible_user`, `ansible_port`, from the host, its groups' `vars` or `all`'s, by
//! Ansible's precedence), tags (the other groups each host is in) and the host keys
//! `consulctl_init`, `consulctl_log_level`, `consulctl_client_addr`, `consulctl_bind_addr`.
//! The other tables come from a `--base` consulctl inventory (whose own `[[hosts]]` are
//! dropped), else from defaults. The result must load: [`import`] runs the loader on it.
//!
//! Layout: `ini` and `yaml` read the two formats into `groups` (with `ranges` for host
//! patterns), `hosts` picks and checks the hosts, `render` writes the TOML.

use std::path::Path;

use anyhow::anyhow;

use super::diagnostics::render as render_diagnostics;
use super::Diagnostic;
use crate::error::Error;

mod groups;
mod hosts;
mod ini;
mod ranges;
mod render;
mod yaml;

/// The group of the servers when none is named.
pub const DEFAULT_SERVERS_GROUP: &str = "consul_servers";
/// The group of the clients when none is named; an inventory without it has no clients.
pub const DEFAULT_CLIENTS_GROUP: &str = "consul_clients";

/// How to import.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub servers_group: &'a str,
    /// `None`: [`DEFAULT_CLIENTS_GROUP`] when the Ansible inventory has it, else no clients.
    /// A group named here must exist.
    pub clients_group: Option<&'a str>,
    /// A consulctl inventory (path, text) whose tables, all but `hosts`, are kept.
    pub base: Option<(&'a Path, &'a str)>,
    /// Where the result is meant to be: it is checked as if it were there (relative local
    /// paths of the base resolve against that directory) and messages name it.
    pub dest: &'a Path,
}

/// An imported inventory.
#[derive(Debug)]
pub struct Imported {
    /// The TOML text; it loads.
    pub toml: String,
    pub servers: usize,
    pub clients: usize,
    /// Ansible variables that were left out, with where their setting goes instead.
    pub warnings: Vec<String>,
}

/// Import the Ansible inventory `text` read from `path` (used in messages and to tell INI from
/// YAML). Every problem is an `Error::Input` naming the file and line where there is one.
pub fn import(path: &Path, text: &str, options: &Options<'_>) -> Result<Imported, Error> {
    let input = |file: &Path, diags: Vec<Diagnostic>| {
        Error::input(anyhow!(render_diagnostics(file, &diags)))
    };
    let groups = if is_yaml(path, text) {
        yaml::parse(path, text)
    } else {
        ini::parse(path, text)
    }
    .map_err(|d| input(path, d))?;
    let clients_group = match options.clients_group {
        Some(g) => (g, true),
        None => (DEFAULT_CLIENTS_GROUP, false),
    };
    let selected = hosts::select(path, &groups, options.servers_group, clients_group)
        .map_err(|d| input(path, d))?;
    let header = header(path, options);
    let toml = render::document(&selected.hosts, options.base, &header)
        .map_err(|d| input(options.base.map_or(path, |b| b.0), d))?;
    if let Err(mut diags) = super::parse(options.dest, &toml) {
        // Lines of a text nobody has seen yet would mislead; the keys say where.
        for d in &mut diags {
            (d.line, d.column) = (None, None);
        }
        return Err(Error::input(anyhow!(
            "{}: the inventory imported from it does not load (checked as {}; fix the Ansible \
             variables{}):\n{}",
            path.display(),
            options.dest.display(),
            if options.base.is_some() {
                " or the --base inventory"
            } else {
                ", or give --base an inventory with the settings it needs"
            },
            render_diagnostics(options.dest, &diags)
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )));
    }
    let count = |role| selected.hosts.iter().filter(|h| h.role == role).count();
    Ok(Imported {
        servers: count("server"),
        clients: count("client"),
        toml,
        warnings: selected.warnings,
    })
}

/// YAML by extension (`.yml`, `.yaml`), INI by extension (`.ini`, `.cfg`); otherwise YAML when
/// the first line that says something is `---`, a `{`, or a key with a colon and no `=`.
fn is_yaml(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yml" | "yaml") => return true,
        Some("ini" | "cfg") => return false,
        _ => {}
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'));
    match first {
        Some(l) => {
            l == "---"
                || l.starts_with('{')
                || (!l.starts_with('[')
                    && !l.contains('=')
                    && (l.ends_with(':') || l.contains(": ")))
        }
        None => false,
    }
}

/// The comment at the top of the result: where it came from and what to check.
fn header(path: &Path, options: &Options<'_>) -> String {
    let clients = options.clients_group.unwrap_or(DEFAULT_CLIENTS_GROUP);
    let rest = match options.base {
        Some((base, _)) => format!("# The other settings are {}'s.", base.display()),
        None => "# [cluster] and [consul] are defaults: review them.".to_owned(),
    };
    format!(
        "# Imported from the Ansible inventory {} by `consulctl inventory import ansible`\n\
         # (servers: group {}, clients: group {clients}).\n{rest}\n\
         # Check it with `consulctl inventory check -i FILE`; every key: docs/inventory.md.\n",
        path.display(),
        options.servers_group
    )
}

/// A problem at `line` of `path`; `key` is the host or group it is about (or empty).
fn problem(path: &Path, line: Option<usize>, key: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        path: path.to_path_buf(),
        key: key.to_owned(),
        line,
        column: None,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::model::{Init, Role};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible")
    }

    fn read(name: &str) -> (PathBuf, String) {
        let path = fixtures().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text)
    }

    /// Import `text` (from `path`) with the default groups and `base`, checked as `dest`.
    fn run(
        path: &Path,
        text: &str,
        base: Option<(&Path, &str)>,
        dest: &Path,
    ) -> Result<Imported, String> {
        let options = Options {
            servers_group: DEFAULT_SERVERS_GROUP,
            clients_group: None,
            base,
            dest,
        };
        import(path, text, &options).map_err(|e| e.to_string())
    }

    #[test]
    fn ini_fixture_becomes_an_inventory_that_loads() {
        let (_, text) = read("hosts.ini");
        let dest = fixtures().join("consulctl.toml");
        let imported = run(Path::new("hosts.ini"), &text, None, &dest).unwrap();
        assert_eq!(
            imported.toml,
            r#"# Imported from the Ansible inventory hosts.ini by `consulctl inventory import ansible`
# (servers: group consul_servers, clients: group consul_clients).
# [cluster] and [consul] are defaults: review them.
# Check it with `consulctl inventory check -i FILE`; every key: docs/inventory.md.

[cluster]
datacenter = "dc1"

[consul]
version = "1.21.0"
source = { package = "auto" }

[ssh]
user = "centos"

[[hosts]]
name = "10.0.1.11"
address = "10.0.1.11"
role = "server"
tags = ["consul"]

[[hosts]]
name = "10.0.1.12"
address = "10.0.1.12"
role = "server"
tags = ["consul"]

[[hosts]]
name = "10.0.1.13"
address = "10.0.1.13"
role = "server"
tags = ["consul"]

[[hosts]]
name = "web1"
address = "10.0.1.21"
role = "client"
tags = ["web", "consul"]

[[hosts]]
name = "web2"
address = "10.0.1.22"
role = "client"
tags = ["web", "consul"]
ssh = { port = 2222 }

[[hosts]]
name = "db1"
address = "10.0.1.31"
role = "client"
tags = ["consul"]
init = "supervisord"
ssh = { user = "dba", port = 2200 }
"#
        );
        assert_eq!((imported.servers, imported.clients), (3, 3));
        assert_eq!(
            imported.warnings,
            ["hosts.ini: ansible_ssh_private_key_file (set for 10.0.1.11, 10.0.1.12, 10.0.1.13, \
              web1, web2, db1) is not imported; in a consulctl inventory this is \
              ssh.identity_file (put it in --base)"]
        );
        let c = crate::inventory::parse(&dest, &imported.toml).unwrap();
        let db1 = c.host("db1").unwrap();
        assert_eq!(db1.role, Role::Client);
        assert_eq!(db1.init, Init::Supervisord);
        assert_eq!(db1.ssh.user.as_deref(), Some("dba"));
        assert_eq!(db1.ssh.port, Some(2200));
        let s = c.host("10.0.1.12").unwrap();
        assert_eq!(
            (s.role, s.ssh.user.as_deref(), s.ssh.port),
            (Role::Server, Some("centos"), None)
        );
    }

    #[test]
    fn yaml_fixture_becomes_an_inventory_that_loads() {
        let (path, text) = read("hosts.yml");
        let dest = fixtures().join("consulctl.toml");
        let imported = run(&path, &text, None, &dest).unwrap();
        assert_eq!((imported.servers, imported.clients), (3, 3));
        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
        let c = crate::inventory::parse(&dest, &imported.toml).unwrap();
        let names: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["server1", "server2", "server3", "kafka1", "es1", "es2"]
        );
        let user = |n: &str| c.host(n).unwrap().ssh.user.clone();
        assert_eq!(user("server1").as_deref(), Some("ubuntu"));
        assert_eq!(user("es2").as_deref(), Some("elastic"));
        assert_eq!(c.host("server3").unwrap().ssh.port, Some(2222));
        assert_eq!(c.host("server2").unwrap().ssh.port, None);
        assert_eq!(c.host("kafka1").unwrap().log_level, "ERR");
        assert_eq!(c.host("kafka1").unwrap().tags, ["rack1"]);
        assert_eq!(c.host("es1").unwrap().tags, ["es"]);
        assert_eq!(c.host("es1").unwrap().address, "192.168.30.22");
        // The common user once in [ssh], the others on their hosts.
        assert!(
            imported.toml.contains("\n[ssh]\nuser = \"ubuntu\"\n"),
            "{}",
            imported.toml
        );
        assert_eq!(
            imported
                .toml
                .matches("ssh = { user = \"elastic\" }")
                .count(),
            2
        );
    }

    #[test]
    fn lab_hosts_keep_the_lab_base_settings() {
        // What the lab's inventory holds besides its hosts (consulctl-lab's render_inventory):
        // local files by absolute path, root as the SSH user, per-host init and users.
        let dir = tempfile::tempdir().unwrap();
        for f in ["consul.deb", "id_ed25519", "known_hosts"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let d = dir.path().display();
        let base_path = dir.path().join("lab.toml");
        let base = format!(
            "# Generated by `consulctl lab up --name lab`; machine-specific, git-ignored.\n\
             [cluster]\nname = \"lab\"\ndatacenter = \"lab\"\ndomain = \"consul\"\n\
             init = \"systemd\"\nlog_level = \"INFO\"\n\n\
             [consul]\nversion = \"1.8.7\"\nsource = {{ file = \"{d}/consul.deb\" }}\n\n\
             [ssh]\nuser = \"root\"\nidentity_file = \"{d}/id_ed25519\"\n\
             known_hosts = \"{d}/known_hosts\"\nhost_keys = \"strict\"\n\n\
             [config]\nperformance = {{ raft_multiplier = 1 }}\n\n\
             [[hosts]]\nname = \"old1\"\naddress = \"10.213.9.11\"\nrole = \"server\"\n"
        );
        let (path, text) = read("lab.ini");
        let dest = dir.path().join("imported.toml");
        let imported = run(&path, &text, Some((&base_path, &base)), &dest).unwrap();
        let c = crate::inventory::parse(&dest, &imported.toml).unwrap();
        assert_eq!(c.name, "lab");
        assert_eq!(c.consul.version, crate::version::Version::new(1, 8, 7));
        assert_eq!(c.hosts.len(), 4);
        assert!(c.host("old1").is_none());
        assert_eq!(c.hosts[0].extra_config["performance"]["raft_multiplier"], 1);
        let host = |n: &str| c.host(n).unwrap();
        assert_eq!(host("server1").ssh.user.as_deref(), Some("root"));
        assert_eq!(host("server1").init, Init::Systemd);
        assert_eq!(host("server2").ssh.user.as_deref(), Some("deploy"));
        assert_eq!(host("server2").init, Init::Supervisord);
        assert_eq!(host("client2").role, Role::Client);
        assert_eq!(host("client1").tags, ["docker", "lab"]);
        assert_eq!(host("server1").tags, ["lab"]);
        assert_eq!(
            host("client1").ssh.identity_file.as_deref(),
            Some(dir.path().join("id_ed25519").as_path())
        );
        // Only what differs from the base is on a host; the base's comments stay.
        assert_eq!(
            imported.toml.matches("ssh = ").count(),
            2,
            "{}",
            imported.toml
        );
        assert_eq!(imported.toml.matches("init = \"supervisord\"").count(), 2);
        assert!(imported.toml.contains("# Generated by `consulctl lab up"));
        assert!(imported
            .toml
            .starts_with("# Imported from the Ansible inventory "));
    }

    #[test]
    fn every_problem_names_the_file_and_line() {
        let (_, text) = read("bad.ini");
        let e = run(Path::new("bad.ini"), &text, None, Path::new("x.toml")).unwrap_err();
        assert_eq!(
            e,
            "4 problems in bad.ini:\n  \
             bad.ini:5: both: in both consul_servers and consul_clients: a host is a server or \
             a client\n  \
             bad.ini:9: noaddr: no address: no ansible_host, and the name is not an IP address \
             or a fully qualified DNS name; give it ansible_host=ADDRESS\n  \
             bad.ini:10: S1: ansible_port = ssh: expected a port from 1 to 65535\n  \
             bad.ini:10: S1: the same name as `s1` (line 4) ignoring case; Consul node names \
             must differ ignoring case"
        );
        let dup = "[consul_servers]\na ansible_host=10.0.0.1\nb ansible_host=10.0.0.1\n";
        let e = run(Path::new("d.ini"), dup, None, Path::new("x.toml")).unwrap_err();
        assert_eq!(
            e,
            "d.ini:3: b: address 10.0.0.1 is also `a`'s (line 2); each host needs an address \
             of its own"
        );
        let e = run(
            Path::new("y.yml"),
            "all:\n  hosts:\n    a: [1]\n",
            None,
            Path::new("x"),
        )
        .unwrap_err();
        assert_eq!(e, "y.yml:3: a: expected a mapping of variables");
    }

    #[test]
    fn groups_must_exist_and_hold_servers() {
        let (_, text) = read("hosts.ini");
        let dest = fixtures().join("consulctl.toml");
        let with = |servers: &str, clients: Option<&str>| {
            let options = Options {
                servers_group: servers,
                clients_group: clients,
                base: None,
                dest: &dest,
            };
            import(Path::new("hosts.ini"), &text, &options).map_err(|e| e.to_string())
        };
        assert_eq!(
            with("servers", None).unwrap_err(),
            "hosts.ini: no group `servers` for the servers (--servers-group); its groups: \
             `consul_servers`, `consul_clients`, `web`, `consul`"
        );
        assert_eq!(
            with("consul_servers", Some("agents")).unwrap_err(),
            "hosts.ini: no group `agents` for the clients (--clients-group); its groups: \
             `consul_servers`, `consul_clients`, `web`, `consul`"
        );
        // Other groups for the roles; the default clients group may be missing.
        let i = with("consul_servers", Some("web")).unwrap();
        assert_eq!((i.servers, i.clients), (3, 2));
        let servers_only = "[consul_servers]\n10.0.0.1\n";
        let i = run(Path::new("s.ini"), servers_only, None, &dest).unwrap();
        assert_eq!((i.servers, i.clients), (1, 0));
        let e = run(
            Path::new("s.ini"),
            "[consul_servers]\n[web]\n10.0.0.2\n",
            None,
            &dest,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "s.ini:1: consul_servers: no hosts in this group (nor in its children); a cluster \
             needs a server"
        );
    }

    #[test]
    fn a_result_that_would_not_load_is_refused() {
        // A DNS name gives no bind address: the loader wants a bind_cidr, which a base gives.
        let text = "[consul_servers]\ns1.example.net\n";
        let dest = Path::new("/nonexistent/consulctl.toml");
        let e = run(Path::new("h.ini"), text, None, dest).unwrap_err();
        assert!(
            e.starts_with(
                "h.ini: the inventory imported from it does not load (checked as \
                               /nonexistent/consulctl.toml; fix the Ansible variables, or give \
                               --base an inventory with the settings it needs):\n"
            ),
            "{e}"
        );
        assert!(
            e.contains(
                "\n  /nonexistent/consulctl.toml: hosts[0].address = \"s1.example.net\": no way \
                 to find the bind address"
            ),
            "{e}"
        );
        let base = "[cluster]\ndatacenter = \"dc1\"\nbind_cidr = \"10.0.0.0/8\"\n\
                    [consul]\nversion = \"1.8.7\"\nsource = { package = \"apt\" }\n";
        let i = run(
            Path::new("h.ini"),
            text,
            Some((Path::new("b.toml"), base)),
            dest,
        )
        .unwrap();
        assert!(i.toml.contains("bind_cidr = \"10.0.0.0/8\""));
        let e = run(
            Path::new("h.ini"),
            text,
            Some((Path::new("b.toml"), "[cluster\n")),
            dest,
        )
        .unwrap_err();
        assert!(e.starts_with("b.toml:1: TOML syntax error: "), "{e}");
    }

    #[test]
    fn ini_and_yaml_are_told_apart() {
        let yaml = [
            "all:\n  hosts:\n",
            "---\nall:\n",
            "# c\nall: {hosts: {a: }}\n",
            "{all: {}}",
        ];
        for t in yaml {
            assert!(is_yaml(Path::new("hosts"), t), "{t:?}");
        }
        let ini = [
            "[all]\na\n",
            "a ansible_host=1.2.3.4\n",
            "a:2222\n",
            "web1\n",
            "",
        ];
        for t in ini {
            assert!(!is_yaml(Path::new("hosts"), t), "{t:?}");
        }
        assert!(is_yaml(Path::new("hosts.yaml"), "[x]\n"));
        assert!(!is_yaml(Path::new("hosts.ini"), "all:\n"));
    }
}
