//! Which Ansible hosts become consulctl hosts, and with what: the servers group's hosts are
//! servers, the clients group's clients (each group with its children); a host's address is
//! `ansible_host`, its SSH user and port `ansible_user` and `ansible_port` (the older
//! `ansible_ssh_*` spellings too), its tags the other groups it is in, and `consulctl_KEY`
//! variables set a few host keys. Every problem names the Ansible file and line.

use std::collections::BTreeMap;
use std::path::Path;

use super::groups::{Groups, Var, ALL, UNGROUPED};
use super::problem;
use crate::inventory::validators::{classify_address, is_node_name, is_tag};
use crate::inventory::Diagnostic;

/// A per-host setting the import carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    SshUser,
    SshPort,
    Init,
    LogLevel,
    ClientAddr,
    BindAddr,
}

impl Key {
    pub(super) const ALL: [Key; 6] = [
        Key::SshUser,
        Key::SshPort,
        Key::Init,
        Key::LogLevel,
        Key::ClientAddr,
        Key::BindAddr,
    ];

    /// Where it is given on a host and in a role table: (sub-table, key).
    pub(super) fn host(self) -> (Option<&'static str>, &'static str) {
        match self {
            Key::SshUser => (Some("ssh"), "user"),
            Key::SshPort => (Some("ssh"), "port"),
            Key::Init => (None, "init"),
            Key::LogLevel => (None, "log_level"),
            Key::ClientAddr => (None, "client_addr"),
            Key::BindAddr => (None, "bind_addr"),
        }
    }

    /// Where it is given for every host: (table, key); `None`: only per host.
    pub(super) fn cluster(self) -> Option<(&'static str, &'static str)> {
        match self {
            Key::SshUser => Some(("ssh", "user")),
            Key::SshPort => Some(("ssh", "port")),
            Key::Init => Some(("cluster", "init")),
            Key::LogLevel => Some(("cluster", "log_level")),
            Key::ClientAddr => Some(("cluster", "client_addr")),
            Key::BindAddr => None,
        }
    }
}

/// A setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Setting {
    Str(String),
    Int(i64),
}

/// One imported host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Host {
    pub(super) name: String,
    /// `"server"` or `"client"`.
    pub(super) role: &'static str,
    pub(super) address: String,
    pub(super) tags: Vec<String>,
    /// Each key at most once.
    pub(super) settings: Vec<(Key, Setting)>,
}

impl Host {
    pub(super) fn setting(&self, key: Key) -> Option<&Setting> {
        self.settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| s)
    }
}

/// The hosts, servers first, each group's in file order; and what was left out, to warn about.
#[derive(Debug)]
pub(super) struct Selected {
    pub(super) hosts: Vec<Host>,
    pub(super) warnings: Vec<String>,
}

/// The variables of the address, user and port, in the order Ansible prefers them.
const ADDRESS_VARS: &[&str] = &["ansible_host", "ansible_ssh_host"];
const USER_VARS: &[&str] = &["ansible_user", "ansible_ssh_user"];
const PORT_VARS: &[&str] = &["ansible_port", "ansible_ssh_port"];

/// `consulctl_KEY` variables: the host keys they set.
const PREFIX: &str = "consulctl_";
const HOST_KEYS: &[(&str, Key)] = &[
    ("init", Key::Init),
    ("log_level", Key::LogLevel),
    ("client_addr", Key::ClientAddr),
    ("bind_addr", Key::BindAddr),
];

/// Ansible connection variables with no per-host place in a consulctl inventory: left out,
/// with a warning saying where their setting goes instead.
const NOT_IMPORTED: &[(&str, &str)] = &[
    ("ansible_ssh_private_key_file", "ssh.identity_file"),
    ("ansible_private_key_file", "ssh.identity_file"),
    (
        "ansible_ssh_common_args",
        "ssh.jump or an ssh_config file (ssh.config_file)",
    ),
    (
        "ansible_ssh_extra_args",
        "ssh.jump or an ssh_config file (ssh.config_file)",
    ),
    (
        "ansible_password",
        "an SSH key: consulctl never types a password",
    ),
    (
        "ansible_ssh_pass",
        "an SSH key: consulctl never types a password",
    ),
    (
        "ansible_become_password",
        "passwordless sudo: consulctl runs `sudo -n`",
    ),
    (
        "ansible_become_pass",
        "passwordless sudo: consulctl runs `sudo -n`",
    ),
];

/// The hosts of `servers_group` and of `clients` (a group, and whether it was named on the
/// command line), checked.
pub(super) fn select(
    path: &Path,
    groups: &Groups,
    servers_group: &str,
    clients: (&str, bool),
) -> Result<Selected, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let known = || {
        let names: Vec<String> = groups
            .names()
            .into_iter()
            .filter(|n| *n != ALL)
            .map(|n| format!("`{n}`"))
            .collect();
        if names.is_empty() {
            "it has none".to_owned()
        } else {
            format!("its groups: {}", names.join(", "))
        }
    };
    if groups.get(servers_group).is_none() {
        diags.push(problem(
            path,
            None,
            "",
            format!(
                "no group `{servers_group}` for the servers (--servers-group); {}",
                known()
            ),
        ));
    }
    // A clients group not named on the command line may be absent: a cluster of servers.
    let (clients_group, named) = clients;
    if clients_group == servers_group {
        diags.push(problem(
            path,
            None,
            "",
            format!("`{clients_group}` is both the servers and the clients group; give two groups"),
        ));
    } else if named && groups.get(clients_group).is_none() {
        diags.push(problem(
            path,
            None,
            "",
            format!(
                "no group `{clients_group}` for the clients (--clients-group); {}",
                known()
            ),
        ));
    }
    let clients_group = groups.get(clients_group).map(|_| clients_group);
    if !diags.is_empty() {
        return Err(diags);
    }
    let servers = groups.members(servers_group);
    let clients = clients_group.map_or_else(Vec::new, |g| groups.members(g));
    if servers.is_empty() {
        let line = groups.get(servers_group).and_then(|g| g.line);
        diags.push(problem(
            path,
            line,
            servers_group,
            "no hosts in this group (nor in its children); a cluster needs a server",
        ));
    }
    let lines = groups.host_lines();
    let line_of = |h: &str| lines.get(h).copied().flatten();
    let mut hosts = Vec::new();
    let mut left_out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let roles = servers
        .iter()
        .map(|h| (*h, "server"))
        .chain(clients.iter().map(|h| (*h, "client")));
    for (name, role) in roles {
        if role == "client" && servers.contains(&name) {
            diags.push(problem(
                path,
                line_of(name),
                name,
                format!(
                    "in both {servers_group} and {}: a host is a server or a client",
                    clients_group.unwrap_or_default()
                ),
            ));
            continue;
        }
        let vars = groups.vars(name);
        for (var, _) in NOT_IMPORTED {
            if vars.contains_key(*var) {
                left_out.entry(var).or_default().push(name);
            }
        }
        let mut host = read_host(path, name, role, &vars, line_of(name), &mut diags);
        for g in groups.groups_of(name) {
            let n = g.name.as_str();
            if n != UNGROUPED && n != servers_group && Some(n) != clients_group && is_tag(n) {
                host.tags.push(n.to_owned());
            }
        }
        hosts.push(host);
    }
    unique(path, &hosts, &line_of, &mut diags);
    if !diags.is_empty() {
        diags.sort_by_key(|d| d.line);
        return Err(diags);
    }
    let warnings = left_out
        .into_iter()
        .map(|(var, names)| {
            let instead = NOT_IMPORTED.iter().find(|(v, _)| *v == var).map_or("", |x| x.1);
            format!(
                "{}: {var} (set for {}) is not imported; in a consulctl inventory this is {instead} (put it in --base)",
                path.display(),
                names.join(", ")
            )
        })
        .collect();
    Ok(Selected { hosts, warnings })
}

/// One host from its name and variables (its tags aside); problems go to `diags`.
fn read_host(
    path: &Path,
    name: &str,
    role: &'static str,
    vars: &BTreeMap<String, Var>,
    line: Option<usize>,
    diags: &mut Vec<Diagnostic>,
) -> Host {
    let mut host = Host {
        name: name.to_owned(),
        role,
        address: String::new(),
        tags: Vec::new(),
        settings: Vec::new(),
    };
    let mut bad = |at: Option<usize>, why: String| diags.push(problem(path, at, name, why));
    if !is_node_name(name) {
        bad(
            line,
            "not a Consul node name: letters, digits, \"_\", \"-\" and \".\" only".into(),
        );
    }
    match address(name, vars) {
        Ok(a) => host.address = a,
        Err((at, why)) => bad(at.or(line), why),
    }
    if let Some((var, v)) = first(vars, USER_VARS) {
        match &v.value {
            Some(u) => set(&mut host, Key::SshUser, Setting::Str(u.clone())),
            None => bad(v.line, format!("{var}: expected a user name")),
        }
    }
    if let Some((var, v)) = first(vars, PORT_VARS) {
        match v.value.as_deref().map(str::parse::<u16>) {
            Some(Ok(p)) if p > 0 => set(&mut host, Key::SshPort, Setting::Int(p.into())),
            _ => bad(
                v.line,
                format!(
                    "{var} = {}: expected a port from 1 to 65535",
                    v.value.as_deref().unwrap_or("(a list or mapping)")
                ),
            ),
        }
    }
    for (var, v) in vars.iter().filter(|(k, _)| k.starts_with(PREFIX)) {
        let Some((_, key)) = HOST_KEYS.iter().find(|(n, _)| *n == &var[PREFIX.len()..]) else {
            let allowed: Vec<String> = HOST_KEYS
                .iter()
                .map(|(n, _)| format!("{PREFIX}{n}"))
                .collect();
            bad(
                v.line,
                format!(
                    "{var}: not a host key an Ansible variable sets (allowed: {})",
                    allowed.join(", ")
                ),
            );
            continue;
        };
        match &v.value {
            Some(value) => set(&mut host, *key, Setting::Str(value.clone())),
            None => bad(v.line, format!("{var}: expected one value")),
        }
    }
    host
}

/// The first of `names` that `vars` has.
fn first<'a>(
    vars: &'a BTreeMap<String, Var>,
    names: &[&'static str],
) -> Option<(&'static str, &'a Var)> {
    names.iter().find_map(|n| vars.get(*n).map(|v| (*n, v)))
}

fn set(host: &mut Host, key: Key, value: Setting) {
    host.settings.retain(|(k, _)| *k != key);
    host.settings.push((key, value));
}

/// `ansible_host`, else the name when it is an IP address or a fully qualified DNS name (what
/// ssh would connect to); `Err` with the line to blame and why.
fn address(name: &str, vars: &BTreeMap<String, Var>) -> Result<String, (Option<usize>, String)> {
    match first(vars, ADDRESS_VARS) {
        Some((var, v)) => {
            let Some(a) = &v.value else {
                return Err((
                    v.line,
                    format!("{var}: expected an IP address or a DNS name"),
                ));
            };
            classify_address(a)
                .map(|_| a.clone())
                .map_err(|why| (v.line, format!("{var} = {a}: {why}")))
        }
        None => match classify_address(name) {
            Ok(Some(_)) => Ok(name.to_owned()),
            Ok(None) if name.trim_end_matches('.').contains('.') => Ok(name.to_owned()),
            _ => Err((
                None,
                "no address: no ansible_host, and the name is not an IP address or a fully \
                 qualified DNS name; give it ansible_host=ADDRESS"
                    .to_owned(),
            )),
        },
    }
}

/// Names unique ignoring case (Consul's DNS ignores it) and addresses unique, as the loader
/// wants them; said here with the Ansible lines.
fn unique(
    path: &Path,
    hosts: &[Host],
    line_of: &dyn Fn(&str) -> Option<usize>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    let mut addresses: BTreeMap<String, &str> = BTreeMap::new();
    let at = |h: &str| line_of(h).map_or(String::new(), |l| format!(" (line {l})"));
    for h in hosts {
        if let Some(other) = names.insert(h.name.to_ascii_lowercase(), &h.name) {
            diags.push(problem(
                path,
                line_of(&h.name),
                &h.name,
                format!(
                    "the same name as `{other}`{} ignoring case; Consul node names must differ \
                     ignoring case",
                    at(other)
                ),
            ));
        }
        if h.address.is_empty() {
            continue;
        }
        let norm = h.address.trim_end_matches('.').to_ascii_lowercase();
        if let Some(other) = addresses.insert(norm, &h.name) {
            diags.push(problem(
                path,
                line_of(&h.name),
                &h.name,
                format!(
                    "address {} is also `{other}`'s{}; each host needs an address of its own",
                    h.address,
                    at(other)
                ),
            ));
        }
    }
}
