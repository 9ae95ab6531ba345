//! What the host daemons of `consulctl-host` (`[registrar]`, `[lb]`) share: a top-level table
//! with `on` (which hosts) and `binary`, role and host tables of the same settings that
//! override single keys, `enabled = true|false` in those adding or removing a host whatever
//! `on` says, and the one `consulctl-host` binary every such host gets.

use super::services::{OnTerm, ON_FORMS};
use super::*;

/// How to get the host binary, for the message when it is missing.
pub(super) const BUILD_HINT: &str = "build it with `cargo build --release -p consulctl-host` \
     (or scripts/build-host-binary for hosts with glibc 2.17), or set registrar.binary \
     (or lb.binary)";

/// Where `cargo build --release` puts `consulctl-host`: next to the running consulctl.
pub(super) fn default_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("consulctl-host"))
}

/// Where one daemon's raw tables are: the top-level table, `[servers]`/`[clients]`, each
/// host's (in file order).
pub(super) struct Tables<R> {
    pub(super) top: Option<R>,
    pub(super) servers: Option<R>,
    pub(super) clients: Option<R>,
    pub(super) hosts: Vec<Option<R>>,
}

impl<R> Tables<R> {
    /// Take one daemon's tables out of the raw inventory (`role` and `host` pick its table).
    pub(super) fn take(
        top: Option<R>,
        raw: &mut raw::Inventory,
        role: impl Fn(&mut raw::Role) -> Option<R>,
        host: impl Fn(&mut raw::Host) -> Option<R>,
    ) -> Tables<R> {
        Tables {
            top,
            servers: raw.servers.as_mut().and_then(&role),
            clients: raw.clients.as_mut().and_then(&role),
            hosts: raw.hosts.iter_mut().flatten().map(host).collect(),
        }
    }
}

/// A daemon's raw table: where its top-level-only keys are.
pub(super) trait Table {
    fn on(&self) -> &raw::V;
    fn binary(&self) -> &raw::V;
}

impl Table for raw::Registrar {
    fn on(&self) -> &raw::V {
        &self.on
    }
    fn binary(&self) -> &raw::V {
        &self.binary
    }
}

impl Table for raw::Lb {
    fn on(&self) -> &raw::V {
        &self.on
    }
    fn binary(&self) -> &raw::V {
        &self.binary
    }
}

/// A daemon's validated settings per table (each key given or not).
pub(super) trait Layer: Default + Clone {
    /// `enabled` of a role or host table.
    fn enabled(&self) -> Option<bool>;
}

/// Every table of one daemon, validated.
pub(super) struct Layers<L> {
    pub(super) top: L,
    servers: L,
    clients: L,
    hosts: Vec<L>,
}

impl<L: Layer> Layers<L> {
    /// Per host (in `hosts` order): its tables, host first, when the daemon runs there:
    /// `enabled` of the host's table, else of its role's, else whether `on` selects it.
    pub(super) fn placed(&self, hosts: &[Host], selected: &[usize]) -> Vec<Option<[&L; 3]>> {
        let empty = &self.top;
        hosts
            .iter()
            .enumerate()
            .map(|(h, host)| {
                let own = self.hosts.get(h);
                let role = match host.role {
                    Role::Server => &self.servers,
                    Role::Client => &self.clients,
                };
                let enabled = own
                    .and_then(Layer::enabled)
                    .or(role.enabled())
                    .unwrap_or(selected.contains(&h));
                // A host without its own table: the role's twice changes nothing.
                enabled.then(|| [own.unwrap_or(role), role, empty])
            })
            .collect()
    }
}

/// One daemon, as its tables and messages name it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Daemon<'a> {
    /// Its tables' name (`registrar`: `[registrar]`, `servers.registrar`, ...).
    pub(super) name: &'a str,
    /// For messages (`the registrar`).
    pub(super) what: &'a str,
    /// `on` when the top table gives none (None: `on` is required there).
    pub(super) default_on: Option<&'a str>,
}

/// What the top-level table says besides the settings: its `on`, and `binary` when given.
pub(super) struct Top {
    /// The text of `on` and its terms (None: no top-level table, or a bad `on`).
    pub(super) on: Option<(String, Vec<OnTerm>)>,
    pub(super) binary: Option<GivenBinary>,
}

/// `binary` as the inventory gives it (None in `path` when the value is bad: reported).
#[derive(Debug, Clone)]
pub(super) struct GivenBinary {
    pub(super) key: KeyPath,
    pub(super) path: Option<PathBuf>,
}

impl Ctx<'_> {
    pub(super) fn boolean(&mut self, key: &KeyPath, v: &raw::V) -> Option<bool> {
        match v {
            None => None,
            Some(toml::Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.bad(key, other, "expected true or false");
                None
            }
        }
    }

    /// `on` and `binary` only in the top-level table `[name]`, `enabled` only in the others.
    /// `here`: the keys role and host tables take, for the message. False when misplaced.
    pub(super) fn helper_scope(
        &mut self,
        key: &KeyPath,
        name: &str,
        top: bool,
        given: [(&str, bool); 3],
        here: &str,
    ) -> bool {
        let [on, binary, enabled] = given;
        let mut ok = true;
        if !top {
            for (k, given) in [on, binary] {
                if given {
                    self.diag(
                        &key.k(k),
                        format!(
                            "only in the top-level [{name}] table (here: {here}, enabled); use \
                             enabled = true|false to add or remove hosts"
                        ),
                    );
                    ok = false;
                }
            }
        } else if enabled.1 {
            self.diag(
                &key.k(enabled.0),
                format!(
                    "only in a role table or on a host (servers.{name}, hosts[N].{name}); \
                     [{name}] selects its hosts with `on`"
                ),
            );
            ok = false;
        }
        ok
    }

    /// Validate every table of daemon `d` with `layer(cx, key, table, top)` (false in the
    /// second value: a problem, reported) and, when the hosts are known and all is well, give
    /// the daemon to the hosts it runs on: `assign(cx, layers, host)` (host first; false: a
    /// problem, reported). Returns the top table's `binary` when given, and whether all is well.
    pub(super) fn helper_place<R: Table, L: Layer>(
        &mut self,
        d: Daemon,
        tables: &Tables<R>,
        host_names: &[String],
        hosts: Option<&mut Vec<Host>>,
        layer: impl FnMut(&mut Self, &KeyPath, &R, bool) -> (L, bool),
        mut assign: impl FnMut(&mut Self, [&L; 3], &mut Host) -> bool,
    ) -> (Option<GivenBinary>, bool) {
        let (layers, top, ok) = self.helper_layers(d, tables, host_names, layer);
        let Some(hosts) = hosts else {
            return (None, ok);
        };
        if !ok {
            return (None, false);
        }
        let selected = self.helper_selected(d, &top, hosts);
        let placed = layers.placed(hosts, &selected);
        let mut ok = true;
        for (host, l) in hosts.iter_mut().zip(placed) {
            if let Some(l) = l {
                ok &= assign(self, l, host);
            }
        }
        (top.binary.filter(|_| ok), ok)
    }

    /// Validate every table of daemon `d` with `layer(cx, key, table, top)` (false in the
    /// second value: a problem, reported), then the top table's `on` (missing: the daemon's
    /// default, or an error) and `binary`.
    fn helper_layers<R: Table, L: Layer>(
        &mut self,
        d: Daemon,
        tables: &Tables<R>,
        host_names: &[String],
        mut layer: impl FnMut(&mut Self, &KeyPath, &R, bool) -> (L, bool),
    ) -> (Layers<L>, Top, bool) {
        let (name, what, default_on) = (d.name, d.what, d.default_on);
        let root = KeyPath::root();
        let kt = root.k(name);
        let mut ok = true;
        let mut top = Top {
            on: None,
            binary: None,
        };
        let top_layer = match &tables.top {
            None => L::default(),
            Some(r) => {
                let (l, good) = layer(self, &kt, r, true);
                ok &= good;
                let (on, binary) = (r.on(), r.binary());
                match (on, default_on) {
                    (None, Some(d)) => {
                        top.on = self
                            .on_terms(&kt.k("on"), d, host_names)
                            .map(|t| (d.to_string(), t));
                    }
                    (None, None) => {
                        self.missing(
                            &kt.k("on"),
                            format!("which hosts run {what}: {ON_FORMS}, e.g. on = \"tag:docker\""),
                        );
                        ok = false;
                    }
                    (Some(_), _) => {
                        top.on = self.string(&kt.k("on"), on).and_then(|s| {
                            Some((s.clone(), self.on_terms(&kt.k("on"), &s, host_names)?))
                        });
                        ok &= top.on.is_some();
                    }
                }
                if binary.is_some() {
                    let path = self.local_path(&kt.k("binary"), binary, false);
                    ok &= path.is_some();
                    top.binary = Some(GivenBinary {
                        key: kt.k("binary"),
                        path,
                    });
                }
                l
            }
        };
        let mut table = |cx: &mut Self, key: KeyPath, r: &Option<R>| match r {
            None => L::default(),
            Some(r) => {
                let (l, good) = layer(cx, &key, r, false);
                ok &= good;
                l
            }
        };
        let servers = table(self, root.k("servers").k(name), &tables.servers);
        let clients = table(self, root.k("clients").k(name), &tables.clients);
        let hosts = tables
            .hosts
            .iter()
            .enumerate()
            .map(|(i, r)| table(self, root.k("hosts").i(i).k(name), r))
            .collect();
        (
            Layers {
                top: top_layer,
                servers,
                clients,
                hosts,
            },
            top,
            ok,
        )
    }

    /// Which hosts the top table's `on` selects (indices), warning about terms that match
    /// none; nothing without a top table.
    fn helper_selected(&mut self, d: Daemon, top: &Top, hosts: &[Host]) -> Vec<usize> {
        match &top.on {
            Some((text, terms)) => {
                let probe = self.probe(hosts);
                let key = KeyPath::root().k(d.name).k("on");
                self.select(&key, text, terms, d.what, &probe)
            }
            None => Vec::new(),
        }
    }

    /// The `consulctl-host` binary the hosts with a daemon get (None: no host has one).
    /// `given`: each daemon's top table (`name`, whether the table is there, its `binary`).
    /// The binary must be a file here; two daemons naming different ones is an error.
    pub(super) fn host_binary(
        &mut self,
        needed: bool,
        given: &[(&str, bool, Option<GivenBinary>)],
    ) -> (Option<PathBuf>, bool) {
        if !needed {
            return (None, true);
        }
        let named: Vec<&GivenBinary> = given.iter().filter_map(|(_, _, b)| b.as_ref()).collect();
        if named.iter().any(|b| b.path.is_none()) {
            return (None, false);
        }
        if let [a, b, ..] = named.as_slice() {
            if a.path != b.path {
                self.diag(
                    &b.key,
                    format!(
                        "names another file than {} ({}); every daemon runs the same \
                         consulctl-host: give it once",
                        a.key,
                        a.path.as_deref().unwrap_or(Path::new("")).display()
                    ),
                );
                return (None, false);
            }
        }
        let (path, key, given_here) = match named.first() {
            Some(b) => (b.path.clone().unwrap_or_default(), b.key.clone(), true),
            None => {
                let (name, table, _) = given
                    .iter()
                    .find(|(_, table, _)| *table)
                    .or(given.first())
                    .expect("a daemon");
                let key = if *table {
                    KeyPath::root().k(name).k("binary")
                } else {
                    KeyPath::root().k(name)
                };
                match default_binary() {
                    Some(p) => (p, key, false),
                    None => {
                        self.diag(
                            &key,
                            format!(
                                "not given, and the directory of the running consulctl is \
                                 unknown; {BUILD_HINT}"
                            ),
                        );
                        return (None, false);
                    }
                }
            }
        };
        if !path.is_file() {
            let whence = if given_here {
                format!("{key} names")
            } else {
                "the default is consulctl-host next to the running consulctl:".into()
            };
            self.diag(
                &key,
                format!(
                    "the consulctl-host binary is missing: {whence} {}, which is not a file; \
                     {BUILD_HINT}",
                    path.display()
                ),
            );
            return (None, false);
        }
        (Some(path), true)
    }
}
