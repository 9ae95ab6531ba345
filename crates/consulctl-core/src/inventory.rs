//! Inventory: TOML text -> raw structs (serde, `deny_unknown_fields`) -> validation ->
//! the resolved [`model::Cluster`](crate::model::Cluster).
//!
//! Everything here happens before any host is touched. Problems are collected, not stopped at:
//! every unknown key, every bad value, every duplicate is reported together, each naming the
//! file, the key path (`hosts[1].role`, host indices count from 0), the line and column, the
//! offending value and what is allowed:
//!
//! ```text
//! inventory/prod.toml:14:8: hosts[1].role = "master": expected one of "server", "client"
//! ```
//!
//! How it works:
//! 1. `toml_edit` parses the text into a document that remembers where every key and value is
//!    (a syntax error stops here, with its line and column).
//! 2. serde deserializes that document into the `raw` structs (`deny_unknown_fields`). Leaves are
//!    kept as `toml::Value` so that a wrong type is a validation error with a good message rather
//!    than a serde error. When serde rejects something (an unknown key, a table where a value is
//!    expected) the offending key is reported, removed from a copy of the document and
//!    deserialization runs again, so that every such problem is found in one run.
//! 3. Validation walks the raw structs, checks every value, resolves defaults and overrides
//!    (host > role table > cluster-wide) and looks up line:column in the document by key path.
//!
//! The reference for the format is `docs/inventory.md`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::{Map, Value as Json};
use toml_edit::{ImDocument, Item};

use crate::error::Error;
use crate::model::{
    BindAddr, CheckKind, CheckSpec, Cluster, ConsulSpec, DnsForward, DnsSpec, Host, HostKeyPolicy,
    Init, InstallSource, PackageManager, Paths, PrepareSpec, Role, Secret, ServiceSpec, SshTarget,
};
use crate::selector::Selector;
use crate::version::Version;

/// Read, parse and validate an inventory file. Every problem is an `Error::Input` naming the
/// file, the key (with line:column) and what is allowed; all problems are listed together.
/// Touches no host.
pub fn load(path: &Path) -> Result<Cluster, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::input(anyhow::anyhow!(
            "{}: cannot read the inventory: {e}",
            path.display()
        ))
    })?;
    let mut cluster =
        parse(path, &text).map_err(|diags| Error::input(anyhow::anyhow!(render(path, &diags))))?;
    if cluster.encrypt_auto {
        let key = crate::secrets::gossip_key(path).map_err(|e| {
            Error::input(e.context(format!("{}: cluster.encrypt = \"auto\"", path.display())))
        })?;
        cluster.encrypt = Some(key);
    }
    if cluster.acl {
        let names: Vec<String> = cluster.hosts.iter().map(|h| h.name.clone()).collect();
        cluster.acl_tokens = crate::secrets::acl_tokens(path, &names).map_err(|e| {
            Error::input(e.context(format!("{}: cluster.acl = true", path.display())))
        })?;
    }
    Ok(cluster)
}

/// Parse and validate inventory `text` read from `path` (used in messages and to resolve
/// relative local paths). Pure except for checking that local files (source file,
/// identity_file, known_hosts) exist.
pub fn parse(path: &Path, text: &str) -> Result<Cluster, Vec<Diagnostic>> {
    let doc = match ImDocument::parse(text.to_owned()) {
        Ok(doc) => doc,
        Err(e) => {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            let message = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(vec![Diagnostic {
                path: path.to_path_buf(),
                key: String::new(),
                line,
                column,
                message: format!("TOML syntax error: {message}"),
            }]);
        }
    };
    let mut cx = Ctx::new(path, text, &doc);
    let cluster = cx.deserialize().and_then(|raw| cx.resolve(raw));
    let mut diags = cx.diags;
    match cluster {
        Some(cluster) if diags.is_empty() => Ok(cluster),
        _ => {
            if diags.is_empty() {
                // Cannot happen: every `None` above records why. Never fail silently anyway.
                diags.push(Diagnostic {
                    path: path.to_path_buf(),
                    key: String::new(),
                    line: None,
                    column: None,
                    message: "the inventory is invalid".into(),
                });
            }
            // File-level problems (no line) first, then in file order; stable, so problems on
            // one line keep the order they were found in.
            diags.sort_by_key(|d| (d.line, d.column));
            Err(diags)
        }
    }
}

/// One problem found in an inventory.
///
/// Displays as `FILE:LINE:COLUMN: KEY = VALUE: what is allowed` (or `FILE:LINE:COLUMN: KEY:
/// what is wrong` when no value is involved). By convention `message` starts with `= ` when it
/// quotes the offending value, so that it reads on from the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The inventory file, as given to `load`/`parse`.
    pub path: PathBuf,
    /// Key path such as `hosts[1].role` (host indices count from 0); empty for syntax errors.
    pub key: String,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// 1-based column (in characters).
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else if self.message.starts_with("= ") {
            write!(f, "{} {}", self.key, self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// All diagnostics as one message: a single one as is, several under a heading.
fn render(path: &Path, diags: &[Diagnostic]) -> String {
    match diags {
        [one] => one.to_string(),
        _ => {
            let mut s = format!("{} problems in {}:", diags.len(), path.display());
            for d in diags {
                s.push_str("\n  ");
                s.push_str(&d.to_string());
            }
            s
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw structs: the shape of the file. Leaves stay `toml::Value` and are checked in `Ctx`.

mod raw {
    use serde::Deserialize;

    pub type V = Option<toml::Value>;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "an inventory table")]
    pub struct Inventory {
        pub cluster: Option<Cluster>,
        pub consul: Option<Consul>,
        pub ssh: Option<Ssh>,
        pub paths: Option<Paths>,
        pub config: V,
        pub dns: Option<Dns>,
        pub prepare: Option<Prepare>,
        pub servers: Option<Role>,
        pub clients: Option<Role>,
        pub hosts: Option<Vec<Host>>,
        pub services: Option<Vec<Service>>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table ([cluster])")]
    pub struct Cluster {
        pub name: V,
        pub datacenter: V,
        pub domain: V,
        pub init: V,
        pub bind_cidr: V,
        pub client_addr: V,
        pub log_level: V,
        pub encrypt: V,
        pub tls: V,
        pub acl: V,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table ([consul])")]
    pub struct Consul {
        pub version: V,
        pub source: Option<Source>,
        pub user: V,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(
        deny_unknown_fields,
        expecting = r#"a table with one of "file", "url" or "package""#
    )]
    pub struct Source {
        pub file: V,
        pub url: V,
        pub sha256: V,
        pub package: V,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table of SSH settings")]
    pub struct Ssh {
        pub user: V,
        pub port: V,
        pub identity_file: V,
        pub known_hosts: V,
        pub config_file: V,
        pub jump: V,
        pub host_keys: V,
        pub connect_timeout: V,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table of remote paths")]
    pub struct Paths {
        pub binary: V,
        pub config_dir: V,
        pub data_dir: V,
        pub log_dir: V,
        pub systemd_unit: V,
        pub supervisor_program: V,
    }

    /// `[servers]` / `[clients]`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table of role-wide settings")]
    pub struct Role {
        pub init: V,
        pub log_level: V,
        pub client_addr: V,
        pub bind_cidr: V,
        pub ssh: Option<Ssh>,
        pub paths: Option<Paths>,
        pub config: V,
        pub dns: Option<Dns>,
        pub prepare: Option<Prepare>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table ([[hosts]])")]
    pub struct Host {
        pub name: V,
        pub address: V,
        pub role: V,
        pub tags: V,
        pub bind_addr: V,
        pub init: V,
        pub log_level: V,
        pub client_addr: V,
        pub ssh: Option<Ssh>,
        pub paths: Option<Paths>,
        pub config: V,
        pub dns: Option<Dns>,
        pub prepare: Option<Prepare>,
    }

    /// `[dns]`, `[servers.dns]`/`[clients.dns]`, a host's `dns`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table of DNS settings")]
    pub struct Dns {
        pub nameservers: V,
        pub search: V,
        pub options: V,
        pub forward: V,
        pub resolv_conf: V,
    }

    /// `[prepare]`, `[servers.prepare]`/`[clients.prepare]`, a host's `prepare`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(
        deny_unknown_fields,
        expecting = "a table of host preparation settings"
    )]
    pub struct Prepare {
        pub disable_services: V,
        pub packages: V,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table ([[services]])")]
    pub struct Service {
        pub name: V,
        pub id: V,
        pub on: V,
        pub port: V,
        pub address: V,
        pub tags: V,
        pub meta: V,
        pub checks: Option<Vec<Check>>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a table ([[services.checks]])")]
    pub struct Check {
        pub name: V,
        pub tcp: V,
        pub http: V,
        pub args: V,
        pub interval: V,
        pub timeout: V,
        pub deregister_critical_service_after: V,
    }
}

// ---------------------------------------------------------------------------------------------
// Key paths

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A key path into the document, e.g. `hosts[1].ssh.port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyPath(Vec<Seg>);

impl KeyPath {
    fn root() -> Self {
        KeyPath(Vec::new())
    }

    fn k(&self, key: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_owned()));
        KeyPath(v)
    }

    fn i(&self, index: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(index));
        KeyPath(v)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{}", json_quote(k))?;
                    }
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Validation context

/// Origin of a resolved value: the key it was read from.
type Src<T> = (T, KeyPath);

#[derive(Debug, Default, Clone)]
struct SshLayer {
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<PathBuf>,
    known_hosts: Option<Src<PathBuf>>,
    config_file: Option<PathBuf>,
    jump: Option<String>,
    host_keys: Option<HostKeyPolicy>,
    connect_timeout: Option<u64>,
}

#[derive(Debug, Default, Clone)]
struct PathsLayer {
    binary: Option<Src<PathBuf>>,
    config_dir: Option<Src<PathBuf>>,
    data_dir: Option<Src<PathBuf>>,
    log_dir: Option<Src<PathBuf>>,
    systemd_unit: Option<Src<PathBuf>>,
    supervisor_program: Option<Src<PathBuf>>,
}

/// Settings that can be given cluster-wide, per role and per host.
#[derive(Debug, Default, Clone)]
struct Layer {
    init: Option<Init>,
    log_level: Option<String>,
    client_addr: Option<String>,
    bind_cidr: Option<Src<IpNet>>,
    ssh: SshLayer,
    paths: PathsLayer,
    config: Map<String, Json>,
    /// `None`: this layer has no dns table.
    dns: Option<DnsLayer>,
    prepare: PrepareLayer,
}

/// One layer's `dns` table: the keys it gives.
#[derive(Debug, Default, Clone)]
struct DnsLayer {
    nameservers: Option<Src<Vec<IpAddr>>>,
    search: Option<Vec<String>>,
    options: Option<Vec<String>>,
    forward: Option<Src<DnsForward>>,
    resolv_conf: Option<PathBuf>,
}

/// One layer's `prepare` table: the keys it gives.
#[derive(Debug, Default, Clone)]
struct PrepareLayer {
    disable_services: Option<Vec<String>>,
    packages: Option<Vec<String>>,
}

/// Where a layer's keys live: scalars (`cluster.init`, `servers.init`, `hosts[0].init`) and
/// tables (`ssh`, `servers.ssh`, `hosts[0].ssh`).
struct LayerKeys {
    scalars: KeyPath,
    tables: KeyPath,
}

/// Agent config keys consulctl writes itself from dedicated inventory settings; a second source
/// for them in `config` would silently disagree with what consulctl manages (data dir moves,
/// node names, bootstrap_expect).
const MANAGED_CONFIG_KEYS: &[(&str, &str)] = &[
    ("datacenter", "cluster.datacenter"),
    ("domain", "cluster.domain"),
    ("node_name", "the host's name"),
    ("bind_addr", "bind_addr / bind_cidr"),
    ("client_addr", "client_addr"),
    ("log_level", "log_level"),
    ("data_dir", "paths.data_dir"),
    ("encrypt", "cluster.encrypt"),
    ("server", "the host's role"),
    (
        "bootstrap_expect",
        "the number of hosts with role = \"server\"",
    ),
];

/// The top-level keys, for the hint when one of them ends up inside a table.
const TOP_LEVEL_KEYS: &[&str] = &[
    "cluster", "consul", "ssh", "paths", "config", "dns", "prepare", "servers", "clients", "hosts",
    "services",
];

const LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERR"];

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    doc: &'a ImDocument<String>,
    /// Absolute directory of the inventory file: relative local paths resolve against it.
    base_dir: PathBuf,
    home: Option<PathBuf>,
    diags: Vec<Diagnostic>,
    warnings: Vec<String>,
    /// Keys removed after serde rejected them: no "missing" follow-up errors for these.
    removed: Vec<KeyPath>,
    /// Byte offset of the start of every line: diagnostics find their line by binary search
    /// (a scan from the top per diagnostic made many errors quadratic).
    line_starts: Vec<usize>,
}

impl<'a> Ctx<'a> {
    fn new(path: &'a Path, text: &'a str, doc: &'a ImDocument<String>) -> Self {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let base_dir = match parent {
            Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        };
        Ctx {
            path,
            text,
            doc,
            base_dir,
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            diags: Vec::new(),
            warnings: Vec::new(),
            removed: Vec::new(),
            line_starts: line_starts(text),
        }
    }

    /// 1-based line and column (in characters) of a byte offset, as [`line_col`].
    fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col_indexed(self.text, &self.line_starts, offset)
    }

    // ---- locating and reporting ---------------------------------------------------------

    /// The item at `key` in the original document.
    fn item_at(&self, key: &KeyPath) -> Option<&'a Item> {
        let mut item = self.doc.as_item();
        for seg in &key.0 {
            item = match seg {
                Seg::Key(k) => item.get(k.as_str())?,
                Seg::Index(i) => item.get(*i)?,
            };
        }
        Some(item)
    }

    /// Where `key` is: its value, else its key, else (when it is missing) the nearest enclosing
    /// table that exists.
    fn span_of(&self, key: &KeyPath) -> Option<Range<usize>> {
        let mut item = self.doc.as_item();
        // The root's own span is the whole file: a key missing at the top level has no place.
        let mut best = None;
        for seg in &key.0 {
            let (next, key_span) = match seg {
                Seg::Key(k) => {
                    let key_span = item
                        .as_table_like()
                        .and_then(|t| t.key(k))
                        .and_then(|k| k.span());
                    (item.get(k.as_str()), key_span)
                }
                Seg::Index(i) => (item.get(*i), None),
            };
            match next {
                Some(next) => {
                    best = next.span().or(key_span).or(best);
                    item = next;
                }
                None => break,
            }
        }
        best
    }

    fn push(&mut self, key: String, span: Option<Range<usize>>, message: String) {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = self.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        self.diags.push(Diagnostic {
            path: self.path.to_path_buf(),
            key,
            line,
            column,
            message,
        });
    }

    /// A problem with `key`, located by key path.
    fn diag(&mut self, key: &KeyPath, message: impl Into<String>) {
        let span = self.span_of(key);
        self.push(key.to_string(), span, message.into());
    }

    /// `key = VALUE: expected`.
    fn bad(&mut self, key: &KeyPath, value: &toml::Value, expected: impl fmt::Display) {
        self.diag(key, format!("= {}: {expected}", repr(value)));
    }

    fn missing(&mut self, key: &KeyPath, what: impl fmt::Display) {
        let removed = self
            .removed
            .iter()
            .any(|r| key.0.len() >= r.0.len() && key.0[..r.0.len()] == r.0[..]);
        if !removed {
            self.diag(key, format!("missing required key; {what}"));
        }
    }

    /// Line of `key` for "already used at line N" notes.
    fn line_of(&self, key: &KeyPath) -> String {
        match self.span_of(key) {
            Some(s) => format!("line {}", self.line_col(s.start).0),
            None => "an earlier line".into(),
        }
    }

    fn warn(&mut self, message: impl fmt::Display) {
        self.warnings
            .push(format!("{}: {message}", self.path.display()));
    }

    // ---- step 2: serde ------------------------------------------------------------------

    /// Deserialize the raw structs, reporting (and dropping) every key serde rejects.
    fn deserialize(&mut self) -> Option<raw::Inventory> {
        let mut root = self.doc.as_item().clone();
        for _ in 0..200 {
            let table = root.as_table()?.clone();
            let err = match toml_edit::de::from_document::<raw::Inventory>(
                toml_edit::DocumentMut::from(table),
            ) {
                Ok(raw) => return Some(raw),
                Err(e) => e,
            };
            let located = err
                .span()
                .and_then(|span| locate(&root, &span, &KeyPath::root()));
            let Some(mut at) = located else {
                let message = err.message().to_owned();
                self.push(String::new(), err.span(), message);
                return None;
            };
            let message = self.serde_message(err.message(), &at);
            self.push(at.to_string(), err.span(), message);
            // An element of an array (a host that is not a table): drop the whole array.
            while matches!(at.0.last(), Some(Seg::Index(_))) {
                at.0.pop();
            }
            if !remove(&mut root, &at) {
                return None;
            }
            self.removed.push(at);
        }
        None
    }

    fn serde_message(&self, message: &str, at: &KeyPath) -> String {
        if let Some(rest) = message.strip_prefix("unknown field `") {
            if let Some((name, rest)) = rest.split_once('`') {
                let allowed: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
                let mut m = String::from("unknown key");
                if let Some(s) = suggest(name, &allowed) {
                    m.push_str(&format!("; did you mean \"{s}\"?"));
                }
                if allowed.is_empty() {
                    m.push_str(" (no keys are allowed here)");
                } else {
                    m.push_str(&format!(" (allowed here: {})", quoted_list(&allowed)));
                }
                if at.0.len() > 1 && TOP_LEVEL_KEYS.contains(&name) {
                    m.push_str(&format!(
                        "; a key after a [table] header belongs to that table: move `{name}` \
                         above the first header, or write it as its own table"
                    ));
                }
                return m;
            }
        }
        if message.starts_with("invalid type:") || message.starts_with("invalid value:") {
            if let Some((_, expected)) = message.rsplit_once(", expected ") {
                let expected = expected.replace("a sequence", "an array of tables");
                let value = self
                    .item_at(at)
                    .map(item_repr)
                    .unwrap_or_else(|| "this".into());
                return format!("= {value}: expected {expected}");
            }
        }
        message.to_owned()
    }

    // ---- typed values -------------------------------------------------------------------

    fn string(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        match v {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.bad(key, other, "expected a string");
                None
            }
        }
    }

    fn int_in(&mut self, key: &KeyPath, v: &raw::V, lo: i64, hi: i64) -> Option<i64> {
        match v {
            None => None,
            Some(toml::Value::Integer(n)) if (lo..=hi).contains(n) => Some(*n),
            Some(other) => {
                self.bad(key, other, format!("expected an integer from {lo} to {hi}"));
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, key: &KeyPath, v: &raw::V, choices: &[(&str, T)]) -> Option<T> {
        let value = v.as_ref()?;
        if let toml::Value::String(s) = value {
            if let Some((_, t)) = choices.iter().find(|(name, _)| name == s) {
                return Some(*t);
            }
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        self.bad(
            key,
            value,
            format!("expected one of {}", quoted_list(&names)),
        );
        None
    }

    fn init(&mut self, key: &KeyPath, v: &raw::V) -> Option<Init> {
        self.choice(
            key,
            v,
            &[
                ("systemd", Init::Systemd),
                ("supervisord", Init::Supervisord),
            ],
        )
    }

    fn log_level(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.string(key, v)?;
        let up = s.to_ascii_uppercase();
        if LOG_LEVELS.contains(&up.as_str()) {
            Some(up)
        } else {
            self.bad(
                key,
                v.as_ref()?,
                format!("expected one of {} (any case)", quoted_list(LOG_LEVELS)),
            );
            None
        }
    }

    fn client_addr(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.string(key, v)?;
        // A go-sockaddr template such as `{{ GetPrivateIP }}` is Consul's to check.
        let ok = s.contains("{{")
            || (!s.trim().is_empty() && s.split_whitespace().all(|t| t.parse::<IpAddr>().is_ok()));
        if ok {
            Some(s)
        } else {
            self.bad(
                key,
                v.as_ref()?,
                "expected an IP address (several separated by spaces), such as \"127.0.0.1\", \
                 or a go-sockaddr template",
            );
            None
        }
    }

    fn cidr(&mut self, key: &KeyPath, v: &raw::V) -> Option<Src<IpNet>> {
        let s = self.string(key, v)?;
        match s.trim().parse::<IpNet>() {
            Ok(net) => Some((net.trunc(), key.clone())),
            Err(_) => {
                let hint = if s.trim().parse::<IpAddr>().is_ok() {
                    " (add the prefix length)"
                } else {
                    ""
                };
                self.bad(
                    key,
                    v.as_ref()?,
                    format!(
                        "expected a network in CIDR notation such as \"192.168.30.0/24\"{hint}"
                    ),
                );
                None
            }
        }
    }

    fn ip(&mut self, key: &KeyPath, v: &raw::V) -> Option<IpAddr> {
        let s = self.string(key, v)?;
        match s.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                self.bad(
                    key,
                    v.as_ref()?,
                    "expected the host's own address (not an unspecified or multicast address)",
                );
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                self.bad(
                    key,
                    v.as_ref()?,
                    "expected an IP address such as \"192.168.30.11\"",
                );
                None
            }
        }
    }

    /// A path on the hosts: absolute, no whitespace, no `.`/`..` parts, not `/` itself.
    fn remote_path(&mut self, key: &KeyPath, v: &raw::V) -> Option<Src<PathBuf>> {
        let s = self.string(key, v)?;
        let value = v.as_ref()?;
        let problem = if !s.starts_with('/') {
            Some("expected an absolute path (starting with \"/\")")
        } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("expected an absolute path without spaces or control characters")
        } else if s.split('/').any(|p| p == "." || p == "..") {
            Some("expected an absolute path without \".\" or \"..\" parts")
        } else if s.split('/').all(|p| p.is_empty()) {
            Some("expected an absolute path below \"/\", not \"/\" itself")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.bad(key, value, problem);
            return None;
        }
        let clean: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
        Some((PathBuf::from(format!("/{}", clean.join("/"))), key.clone()))
    }

    /// A path on the control host: `~` expanded, relative to the inventory's directory.
    fn local_path(&mut self, key: &KeyPath, v: &raw::V, must_exist: bool) -> Option<PathBuf> {
        let s = self.string(key, v)?;
        let value = v.as_ref()?;
        if s.trim().is_empty() {
            self.bad(key, value, "expected a file path");
            return None;
        }
        let expanded = match expand_tilde(&s, self.home.as_deref()) {
            Ok(p) => p,
            Err(why) => {
                self.bad(key, value, why);
                return None;
            }
        };
        let full = if expanded.is_absolute() {
            expanded
        } else {
            self.base_dir.join(expanded)
        };
        if must_exist {
            match std::fs::metadata(&full) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    self.bad(key, value, format!("{} is not a file", full.display()));
                    return None;
                }
                Err(_) => {
                    let note = if Path::new(&s).is_relative() && !s.starts_with('~') {
                        format!(
                            " (relative paths are resolved against the inventory's directory {})",
                            self.base_dir.display()
                        )
                    } else {
                        String::new()
                    };
                    self.bad(
                        key,
                        value,
                        format!("file not found: {}{note}", full.display()),
                    );
                    return None;
                }
            }
        }
        Some(full)
    }

    /// A `config` table, converted to JSON, with managed keys rejected.
    fn config(&mut self, key: &KeyPath, v: &raw::V) -> Map<String, Json> {
        let table = match v {
            None => return Map::new(),
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                self.bad(key, other, "expected a table of Consul agent settings");
                return Map::new();
            }
        };
        for (name, instead) in MANAGED_CONFIG_KEYS {
            if table.contains_key(*name) {
                self.diag(
                    &key.k(name),
                    format!("consulctl sets this itself from {instead}; remove it from config"),
                );
            }
        }
        let mut out = Map::new();
        for (k, v) in table {
            if let Some(j) = self.json_value(&key.k(k), v) {
                out.insert(k.clone(), j);
            }
        }
        out
    }

    /// `${` / `%{` in a config string: HCL2 reads them as template interpolation and HCL1
    /// does not, so consulctl cannot write them to mean the same to every Consul version.
    fn interpolation(&mut self, key: &KeyPath, s: &str, what: &str) -> bool {
        if !(s.contains("${") || s.contains("%{")) {
            return false;
        }
        // A value under a secret-bearing key is not quoted back.
        let secret = key.0.iter().any(|seg| match seg {
            Seg::Key(k) => crate::redact::is_secret_key(k),
            Seg::Index(_) => false,
        });
        let shown = if secret {
            String::new()
        } else {
            format!("= {}: ", json_quote(s))
        };
        self.diag(
            key,
            format!(
                "{shown}{what} holds \"${{\" or \"%{{\" (HCL template interpolation, which \
                 Consul's config parsers read differently); agent settings must be literal \
                 values without \"${{\" and \"%{{\""
            ),
        );
        true
    }

    fn json_value(&mut self, key: &KeyPath, v: &toml::Value) -> Option<Json> {
        Some(match v {
            toml::Value::String(s) => {
                if self.interpolation(key, s, "the value") {
                    return None;
                }
                Json::String(s.clone())
            }
            toml::Value::Integer(n) => Json::from(*n),
            toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Json::Number(n),
                None => {
                    self.bad(key, v, "expected a finite number");
                    return None;
                }
            },
            toml::Value::Boolean(b) => Json::Bool(*b),
            toml::Value::Datetime(d) => Json::String(d.to_string()),
            toml::Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, item) in a.iter().enumerate() {
                    out.push(self.json_value(&key.i(i), item)?);
                }
                Json::Array(out)
            }
            toml::Value::Table(t) => {
                let mut out = Map::new();
                for (k, item) in t {
                    if self.interpolation(&key.k(k), k, "the key") {
                        return None;
                    }
                    out.insert(k.clone(), self.json_value(&key.k(k), item)?);
                }
                Json::Object(out)
            }
        })
    }

    // ---- layers ---------------------------------------------------------------------------

    fn ssh_layer(&mut self, key: &KeyPath, r: Option<&raw::Ssh>) -> SshLayer {
        let Some(r) = r else {
            return SshLayer::default();
        };
        let user = self.string(&key.k("user"), &r.user).and_then(|u| {
            if !u.is_empty() && !u.chars().any(|c| c.is_whitespace() || c == '@' || c == ':') {
                Some(u)
            } else {
                let v = r.user.clone()?;
                self.bad(
                    &key.k("user"),
                    &v,
                    "expected a user name (not empty, without spaces, \"@\" or \":\")",
                );
                None
            }
        });
        let jump = self.string(&key.k("jump"), &r.jump).and_then(|j| {
            if valid_jump(&j) {
                Some(j)
            } else {
                let v = r.jump.clone()?;
                self.bad(
                    &key.k("jump"),
                    &v,
                    "expected a ProxyJump host such as \"ops@bastion:2222\" ([user@]host[:port], \
                     several separated by commas)",
                );
                None
            }
        });
        SshLayer {
            user,
            port: self
                .int_in(&key.k("port"), &r.port, 1, 65535)
                .map(|p| p as u16),
            identity_file: self.local_path(&key.k("identity_file"), &r.identity_file, true),
            known_hosts: self
                .local_path(&key.k("known_hosts"), &r.known_hosts, false)
                .map(|p| (p, key.k("known_hosts"))),
            config_file: self.local_path(&key.k("config_file"), &r.config_file, true),
            jump,
            host_keys: self.choice(
                &key.k("host_keys"),
                &r.host_keys,
                &[
                    ("strict", HostKeyPolicy::Strict),
                    ("accept-new", HostKeyPolicy::AcceptNew),
                ],
            ),
            connect_timeout: self
                .int_in(&key.k("connect_timeout"), &r.connect_timeout, 1, 300)
                .map(|t| t as u64),
        }
    }

    fn paths_layer(&mut self, key: &KeyPath, r: Option<&raw::Paths>) -> PathsLayer {
        let Some(r) = r else {
            return PathsLayer::default();
        };
        PathsLayer {
            binary: self.remote_path(&key.k("binary"), &r.binary),
            config_dir: self.remote_path(&key.k("config_dir"), &r.config_dir),
            data_dir: self.remote_path(&key.k("data_dir"), &r.data_dir),
            log_dir: self.remote_path(&key.k("log_dir"), &r.log_dir),
            systemd_unit: self.remote_path(&key.k("systemd_unit"), &r.systemd_unit),
            supervisor_program: self
                .remote_path(&key.k("supervisor_program"), &r.supervisor_program),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        keys: &LayerKeys,
        init: &raw::V,
        log_level: &raw::V,
        client_addr: &raw::V,
        bind_cidr: Option<&raw::V>,
        ssh: Option<&raw::Ssh>,
        paths: Option<&raw::Paths>,
        config: &raw::V,
        dns: Option<&raw::Dns>,
        prepare: Option<&raw::Prepare>,
    ) -> Layer {
        let s = &keys.scalars;
        let t = &keys.tables;
        Layer {
            init: self.init(&s.k("init"), init),
            log_level: self.log_level(&s.k("log_level"), log_level),
            client_addr: self.client_addr(&s.k("client_addr"), client_addr),
            bind_cidr: bind_cidr.and_then(|v| self.cidr(&s.k("bind_cidr"), v)),
            ssh: self.ssh_layer(&t.k("ssh"), ssh),
            paths: self.paths_layer(&t.k("paths"), paths),
            config: self.config(&t.k("config"), config),
            dns: self.dns_layer(&t.k("dns"), dns),
            prepare: self.prepare_layer(&t.k("prepare"), prepare),
        }
    }

    fn role_layer(&mut self, name: &str, r: Option<&raw::Role>) -> Layer {
        let Some(r) = r else {
            return Layer::default();
        };
        let base = KeyPath::root().k(name);
        let keys = LayerKeys {
            scalars: base.clone(),
            tables: base,
        };
        self.layer(
            &keys,
            &r.init,
            &r.log_level,
            &r.client_addr,
            Some(&r.bind_cidr),
            r.ssh.as_ref(),
            r.paths.as_ref(),
            &r.config,
            r.dns.as_ref(),
            r.prepare.as_ref(),
        )
    }

    // ---- step 3: the whole inventory ------------------------------------------------------

    fn resolve(&mut self, raw: raw::Inventory) -> Option<Cluster> {
        let root = KeyPath::root();

        // [cluster]
        let kc = root.k("cluster");
        let rc = raw.cluster.unwrap_or_default();
        let datacenter = match &rc.datacenter {
            None => {
                self.missing(
                    &kc.k("datacenter"),
                    "the Consul datacenter: lowercase letters, digits, \"_\" and \"-\"",
                );
                None
            }
            Some(v) => self
                .string(&kc.k("datacenter"), &rc.datacenter)
                .and_then(|s| {
                    if is_consul_ident(&s) {
                        Some(s)
                    } else {
                        self.bad(
                            &kc.k("datacenter"),
                            v,
                            "expected lowercase letters, digits, \"_\" and \"-\" only \
                             (Consul rejects other datacenter names)",
                        );
                        None
                    }
                }),
        };
        let name = match &rc.name {
            None => datacenter.clone(),
            Some(v) => self.string(&kc.k("name"), &rc.name).and_then(|s| {
                if is_consul_ident(&s) {
                    Some(s)
                } else {
                    self.bad(
                        &kc.k("name"),
                        v,
                        "expected lowercase letters, digits, \"_\" and \"-\" only",
                    );
                    None
                }
            }),
        };
        let domain = match &rc.domain {
            None => Some("consul".to_owned()),
            Some(v) => self.string(&kc.k("domain"), &rc.domain).and_then(|s| {
                if is_domain(&s) {
                    Some(s)
                } else {
                    self.bad(
                        &kc.k("domain"),
                        v,
                        "expected a DNS domain: labels of letters, digits and \"-\" separated \
                         by dots, such as \"consul\" or \"consul.example\"",
                    );
                    None
                }
            }),
        };
        // `encrypt = "auto"`: the key lives in the secrets file, resolved by `load`.
        let encrypt_auto = matches!(&rc.encrypt, Some(toml::Value::String(s)) if s == "auto");
        let encrypt = if encrypt_auto {
            None
        } else {
            self.encrypt(&kc.k("encrypt"), &rc.encrypt)
        };
        // `tls = "auto"`: consulctl's CA and certificates (`tls.rs`); `false` is the same as absent.
        let tls_auto = match &rc.tls {
            None | Some(toml::Value::Boolean(false)) => false,
            Some(toml::Value::String(s)) if s == "auto" => true,
            Some(v) => {
                self.bad(
                    &kc.k("tls"),
                    v,
                    "expected \"auto\" (consulctl creates a CA and server certificates) or false",
                );
                false
            }
        };
        // `acl = true`: default deny, bootstrapped by consulctl (`acl.rs`).
        let acl = match &rc.acl {
            None | Some(toml::Value::Boolean(false)) => false,
            Some(toml::Value::Boolean(true)) => true,
            Some(v) => {
                self.bad(
                    &kc.k("acl"),
                    v,
                    "expected true (default policy deny; consulctl bootstraps the ACL system and \
                     keeps the tokens in the secrets file) or false",
                );
                false
            }
        };
        let cluster_layer = self.layer(
            &LayerKeys {
                scalars: kc.clone(),
                tables: root.clone(),
            },
            &rc.init,
            &rc.log_level,
            &rc.client_addr,
            Some(&rc.bind_cidr),
            raw.ssh.as_ref(),
            raw.paths.as_ref(),
            &raw.config,
            raw.dns.as_ref(),
            raw.prepare.as_ref(),
        );

        // [consul]
        let kv = root.k("consul");
        let rcon = raw.consul.unwrap_or_default();
        let version = match &rcon.version {
            None => {
                self.missing(
                    &kv.k("version"),
                    "the Consul version to install, such as version = \"1.8.7\"",
                );
                None
            }
            Some(v) => self.string(&kv.k("version"), &rcon.version).and_then(|s| {
                match s.parse::<Version>() {
                    Ok(ver) => Some(ver),
                    Err(_) => {
                        self.bad(
                            &kv.k("version"),
                            v,
                            "expected MAJOR.MINOR.PATCH such as \"1.8.7\" or \"1.21.0\"",
                        );
                        None
                    }
                }
            }),
        };
        let source = self.source(&kv.k("source"), rcon.source.as_ref(), version);
        let consul_user = match self.string(&kv.k("user"), &rcon.user) {
            None => "consul".to_string(),
            Some(u) if valid_user_name(&u) => u,
            Some(_) => {
                let v = rcon.user.clone().unwrap_or(toml::Value::Boolean(false));
                self.bad(
                    &kv.k("user"),
                    &v,
                    "expected a system user name such as \"consul\" (created when missing) or \
                     \"root\": lower-case letters, digits, \"_\" and \"-\", starting with a letter \
                     or \"_\", at most 32 characters",
                );
                "consul".to_string()
            }
        };

        // [servers], [clients]
        let server_layer = self.role_layer("servers", raw.servers.as_ref());
        let client_layer = self.role_layer("clients", raw.clients.as_ref());

        // [[hosts]]
        // Every name given, valid or not: `on` selectors are checked against these even when
        // some host has problems of its own.
        let host_names: Vec<String> = raw
            .hosts
            .iter()
            .flatten()
            .filter_map(|h| match &h.name {
                Some(toml::Value::String(n)) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let mut hosts = self.hosts(
            raw.hosts,
            &cluster_layer,
            &server_layer,
            &client_layer,
            version,
        );

        // [[services]], attached to the hosts their `on` selects.
        let services_ok = self.services(raw.services, &host_names, hosts.as_mut());
        if !services_ok {
            return None;
        }

        let (
            Some(name),
            Some(datacenter),
            Some(domain),
            Some(version),
            Some(source),
            Some(mut hosts),
        ) = (name, datacenter, domain, version, source, hosts)
        else {
            return None;
        };
        for h in hosts.iter_mut() {
            h.user = consul_user.clone();
            h.api_tls = tls_auto && h.role == Role::Server;
        }
        Some(Cluster {
            inventory_path: self.path.to_path_buf(),
            name,
            datacenter,
            domain,
            consul: ConsulSpec { version, source },
            encrypt,
            encrypt_auto,
            tls_auto,
            acl,
            acl_tokens: Default::default(),
            hosts,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn encrypt(&mut self, key: &KeyPath, v: &raw::V) -> Option<Secret> {
        // The value is a secret: messages never quote it.
        let s = self.string(key, v)?;
        match base64_decode(s.trim()) {
            Some(bytes) if matches!(bytes.len(), 16 | 24 | 32) => Some(Secret::new(s.trim())),
            Some(bytes) => {
                self.diag(
                    key,
                    format!(
                        "the key decodes to {} bytes; expected base64 of 16, 24 or 32 bytes \
                         (generate one with `consul keygen`; value not shown)",
                        bytes.len()
                    ),
                );
                None
            }
            None => {
                self.diag(
                    key,
                    "not valid base64; expected base64 of 16, 24 or 32 bytes \
                     (generate one with `consul keygen`; value not shown)",
                );
                None
            }
        }
    }

    fn source(
        &mut self,
        key: &KeyPath,
        r: Option<&raw::Source>,
        version: Option<Version>,
    ) -> Option<InstallSource> {
        const FORMS: &str =
            "source = { file = \"...\" }, { url = \"https://...\", sha256 = \"...\" } \
                             or { package = \"auto\" }";
        let Some(r) = r else {
            self.missing(key, format!("where Consul comes from: {FORMS}"));
            return None;
        };
        let given: Vec<&str> = [("file", &r.file), ("url", &r.url), ("package", &r.package)]
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| *n)
            .collect();
        if r.sha256.is_some() && r.url.is_none() {
            self.diag(
                &key.k("sha256"),
                "only applies to a url source (a local file or a package is not checked against it)",
            );
        }
        match given.as_slice() {
            [] => {
                self.diag(
                    key,
                    format!("expected exactly one of \"file\", \"url\", \"package\": {FORMS}"),
                );
                None
            }
            ["file"] => {
                let path = self.local_path(&key.k("file"), &r.file, true)?;
                self.check_version_in_name(&key.k("file"), &path.to_string_lossy(), version);
                Some(InstallSource::File { path })
            }
            ["url"] => {
                let url = self.string(&key.k("url"), &r.url).and_then(|u| {
                    if valid_url(&u) {
                        Some(u)
                    } else {
                        let v = r.url.clone()?;
                        self.bad(&key.k("url"), &v, "expected an http:// or https:// URL");
                        None
                    }
                });
                let sha256 = match &r.sha256 {
                    None => {
                        self.missing(
                            &key.k("sha256"),
                            "a url source needs the sha256 of the file (64 hex digits)",
                        );
                        None
                    }
                    Some(v) => self.string(&key.k("sha256"), &r.sha256).and_then(|s| {
                        let s = s.trim().to_ascii_lowercase();
                        if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
                            Some(s)
                        } else {
                            self.bad(
                                &key.k("sha256"),
                                v,
                                "expected 64 hex digits (the sha256 of the file)",
                            );
                            None
                        }
                    }),
                };
                let url = url?;
                self.check_version_in_name(&key.k("url"), &url, version);
                Some(InstallSource::Url {
                    url,
                    sha256: sha256?,
                })
            }
            ["package"] => self
                .choice(
                    &key.k("package"),
                    &r.package,
                    &[
                        ("auto", PackageManager::Auto),
                        ("apt", PackageManager::Apt),
                        ("yum", PackageManager::Yum),
                        ("dnf", PackageManager::Dnf),
                    ],
                )
                .map(|manager| InstallSource::Package { manager }),
            several => {
                let names: Vec<String> = several.iter().map(|n| format!("\"{n}\"")).collect();
                self.diag(
                    key,
                    format!(
                        "{} given together; expected exactly one of \"file\", \"url\", \"package\"",
                        names.join(" and ")
                    ),
                );
                None
            }
        }
    }

    /// Warn when a release file name (`consul_1.21.0_linux_amd64.zip`) names another version.
    fn check_version_in_name(&mut self, key: &KeyPath, name: &str, version: Option<Version>) {
        let (Some(version), Some(named)) = (version, version_in_name(name)) else {
            return;
        };
        if named != version {
            let line = self.line_of(key);
            self.warn(format!(
                "{key} ({line}) names Consul {named} but consul.version is {version}; \
                 the installed binary must match consul.version"
            ));
        }
    }

    fn hosts(
        &mut self,
        raw_hosts: Option<Vec<raw::Host>>,
        cluster: &Layer,
        servers: &Layer,
        clients: &Layer,
        version: Option<Version>,
    ) -> Option<Vec<Host>> {
        let kh = KeyPath::root().k("hosts");
        let Some(raw_hosts) = raw_hosts else {
            self.missing(
                &kh,
                "at least one [[hosts]] entry (with name, address and role)",
            );
            return None;
        };
        if raw_hosts.is_empty() {
            self.diag(
                &kh,
                "no hosts; expected at least one [[hosts]] entry (with name, address and role)",
            );
            return None;
        }

        let mut out = Vec::with_capacity(raw_hosts.len());
        let mut ok = true;
        let mut roles_known = true;
        let mut names: HashMap<String, KeyPath> = HashMap::new();
        let mut addresses: HashMap<String, KeyPath> = HashMap::new();
        // Fixed bind address -> (key it came from, whether it came from `address`).
        let mut binds: HashMap<IpAddr, (KeyPath, bool)> = HashMap::new();
        let mut reported: Vec<String> = Vec::new();
        // (host, where its dns.nameservers came from), for the checks across hosts.
        let mut dns_checks: Vec<(String, KeyPath)> = Vec::new();
        let no_role = Layer::default();

        for (i, h) in raw_hosts.iter().enumerate() {
            let k = kh.i(i);

            // name
            let name = match &h.name {
                None => {
                    self.missing(
                        &k.k("name"),
                        "the Consul node name: letters, digits, \"_\", \"-\" and \".\"",
                    );
                    None
                }
                Some(v) => self.string(&k.k("name"), &h.name).and_then(|s| {
                    if is_node_name(&s) {
                        Some(s)
                    } else {
                        self.bad(
                            &k.k("name"),
                            v,
                            "expected letters, digits, \"_\", \"-\" and \".\" only \
                             (it becomes the Consul node name)",
                        );
                        None
                    }
                }),
            };
            if let Some(n) = &name {
                let norm = n.to_ascii_lowercase();
                if let Some(first) = names.get(&norm).cloned() {
                    let line = self.line_of(&first.k("name"));
                    self.diag(
                        &k.k("name"),
                        format!(
                            "= {}: duplicate host name, already used by {first} ({line}); names \
                             must be unique (compared ignoring case, as Consul's DNS does)",
                            json_quote(n)
                        ),
                    );
                } else {
                    names.insert(norm, k.clone());
                }
            }

            // address
            let address = match &h.address {
                None => {
                    self.missing(
                        &k.k("address"),
                        "the SSH address of the host (an IP address or a DNS name)",
                    );
                    None
                }
                Some(v) => self.string(&k.k("address"), &h.address).and_then(|s| {
                    match classify_address(&s) {
                        Ok(ip) => Some((s, ip)),
                        Err(why) => {
                            self.bad(&k.k("address"), v, why);
                            None
                        }
                    }
                }),
            };
            let mut duplicate_address = false;
            if let Some((a, ip)) = &address {
                let norm = match ip {
                    Some(ip) => ip.to_string(),
                    None => a.trim_end_matches('.').to_ascii_lowercase(),
                };
                if let Some(first) = addresses.get(&norm).cloned() {
                    duplicate_address = true;
                    let line = self.line_of(&first.k("address"));
                    self.diag(
                        &k.k("address"),
                        format!(
                            "= {}: duplicate host address, already used by {first} ({line}); \
                             addresses must be unique",
                            json_quote(a)
                        ),
                    );
                } else {
                    addresses.insert(norm, k.clone());
                }
            }

            // role
            let role = match &h.role {
                None => {
                    self.missing(&k.k("role"), "expected one of \"server\", \"client\"");
                    None
                }
                Some(_) => self.choice(
                    &k.k("role"),
                    &h.role,
                    &[("server", Role::Server), ("client", Role::Client)],
                ),
            };
            if role.is_none() {
                roles_known = false;
            }

            let tags = self.tags(&k.k("tags"), &h.tags);
            let bind_addr = self.ip(&k.k("bind_addr"), &h.bind_addr);
            let own = self.layer(
                &LayerKeys {
                    scalars: k.clone(),
                    tables: k.clone(),
                },
                &h.init,
                &h.log_level,
                &h.client_addr,
                None,
                h.ssh.as_ref(),
                h.paths.as_ref(),
                &h.config,
                h.dns.as_ref(),
                h.prepare.as_ref(),
            );
            let role_layer = match role {
                Some(Role::Server) => servers,
                Some(Role::Client) => clients,
                None => &no_role,
            };
            let layers = [&own, role_layer, cluster];

            // bind address: bind_addr, else bind_cidr, else an IP `address`.
            let bind_cidr = role_layer.bind_cidr.clone().or(cluster.bind_cidr.clone());
            let bind = match (bind_addr, &bind_cidr, &address) {
                // An invalid bind_addr is already reported; nothing to add about it.
                (None, _, _) if h.bind_addr.is_some() => None,
                (Some(ip), Some((net, net_key)), _) if !net.contains(&ip) => {
                    let line = self.line_of(net_key);
                    self.diag(
                        &k.k("bind_addr"),
                        format!("= \"{ip}\": not inside {net_key} = \"{net}\" ({line})"),
                    );
                    None
                }
                (Some(ip), _, _) => Some((BindAddr::Fixed(ip), k.k("bind_addr"), false)),
                (None, Some((net, _)), _) => Some((BindAddr::Cidr(*net), k.clone(), false)),
                (None, None, Some((_, Some(ip)))) => {
                    Some((BindAddr::Fixed(*ip), k.k("address"), true))
                }
                (None, None, Some((a, None))) => {
                    self.diag(
                        &k.k("address"),
                        format!(
                            "= {}: no way to find the bind address: the address is a DNS name \
                             and no bind_cidr applies; set hosts[{i}].bind_addr or a bind_cidr \
                             in [cluster] or [{}]",
                            json_quote(a),
                            match role {
                                Some(Role::Client) => "clients",
                                _ => "servers",
                            }
                        ),
                    );
                    None
                }
                (None, None, None) => None,
            };
            if let Some((BindAddr::Fixed(ip), from, from_address)) = &bind {
                if let Some((first, first_from_address)) = binds.get(ip).cloned() {
                    // Two equal addresses are already reported as such.
                    if !(*from_address && first_from_address && duplicate_address) {
                        let line = self.line_of(&first);
                        self.diag(
                            from,
                            format!(
                                "= \"{ip}\": duplicate bind address, {first} ({line}) binds to it \
                                 too; every agent needs its own address"
                            ),
                        );
                    }
                } else {
                    binds.insert(*ip, (from.clone(), *from_address));
                }
            }

            let ssh = resolve_ssh(&layers);
            let paths = resolve_paths(&layers);
            self.check_resolved(&ssh, &paths, &layers, &mut reported);

            let mut extra_config = Map::new();
            for layer in layers.iter().rev() {
                merge_deep(&mut extra_config, &layer.config);
            }
            let dns = resolve_dns(&layers);
            let nameservers_key = layers
                .iter()
                .filter_map(|l| l.dns.as_ref())
                .find_map(|d| d.nameservers.as_ref())
                .map(|(_, key)| key.clone());

            let (Some(name), Some((address, _)), Some(role), Some((bind, _, _))) =
                (name, address, role, bind)
            else {
                ok = false;
                continue;
            };
            out.push(Host {
                name,
                address,
                role,
                tags,
                init: layers.iter().find_map(|l| l.init).unwrap_or(Init::Systemd),
                bind,
                client_addr: layers
                    .iter()
                    .find_map(|l| l.client_addr.clone())
                    .unwrap_or_else(|| "127.0.0.1".into()),
                log_level: layers
                    .iter()
                    .find_map(|l| l.log_level.clone())
                    .unwrap_or_else(|| "INFO".into()),
                user: "consul".into(),
                api_tls: false,
                ssh,
                paths: paths.0,
                extra_config,
                dns,
                services: Vec::new(),
                prepare: resolve_prepare(&layers),
            });
            if let (Some(host), Some(key)) = (out.last(), nameservers_key) {
                dns_checks.push((host.name.clone(), key));
            }
        }
        self.check_dns(&out, &dns_checks);

        // Cluster shape.
        let servers_n = raw_hosts
            .iter()
            .filter(|h| matches!(&h.role, Some(toml::Value::String(r)) if r == "server"))
            .count();
        if servers_n == 0 && roles_known {
            self.diag(
                &kh,
                "no host has role = \"server\"; a cluster needs at least one server \
                 (3 or 5 to survive failures)",
            );
            return None;
        }
        if servers_n == 1 && raw_hosts.len() > 1 {
            self.warn(
                "1 server: the cluster does not survive its failure; use 3 or 5 servers \
                 for fault tolerance",
            );
        }
        if servers_n >= 2 && servers_n % 2 == 0 {
            let quorum = servers_n / 2 + 1;
            let tolerated = (servers_n - 1) / 2;
            self.warn(format!(
                "{servers_n} servers: an even number adds no fault tolerance: the quorum of \
                 {quorum} tolerates {tolerated} failed server{}, the same failures as {} servers \
                 ({} - 1); use {} or {} servers",
                if tolerated == 1 { "" } else { "s" },
                servers_n - 1,
                servers_n,
                servers_n - 1,
                servers_n + 1,
            ));
        }
        if servers_n > 7 {
            self.warn(format!(
                "{servers_n} servers: more than 7 servers slow down Raft replication without \
                 useful extra fault tolerance; HashiCorp recommends 3 or 5 (make the rest clients)"
            ));
        }
        if let Some(version) = version {
            if !version.at_least(1, 9) {
                let with_ui_config: Vec<&str> = out
                    .iter()
                    .filter(|h| h.extra_config.contains_key("ui_config"))
                    .map(|h| h.name.as_str())
                    .collect();
                if !with_ui_config.is_empty() {
                    self.warn(format!(
                        "Consul {version} does not know `ui_config` (added in 1.9), given in \
                         config for {}; `consul validate` will reject it: use `ui = true` instead",
                        with_ui_config.join(", ")
                    ));
                }
            }
        }
        if ok {
            Some(out)
        } else {
            None
        }
    }

    fn tags(&mut self, key: &KeyPath, v: &raw::V) -> Vec<String> {
        let mut tags = Vec::new();
        match v {
            None => {}
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        toml::Value::String(s) if s.is_empty() => {
                            self.diag(&key.i(i), "= \"\": tags must not be empty");
                        }
                        toml::Value::String(s) if is_tag(s) => {
                            if !tags.contains(s) {
                                tags.push(s.clone());
                            }
                        }
                        other => {
                            self.bad(
                                &key.i(i),
                                other,
                                "expected a tag of letters, digits, \"_\", \"-\" and \".\"",
                            );
                        }
                    }
                }
            }
            Some(other) => {
                self.bad(
                    key,
                    other,
                    "expected an array of strings such as [\"rack1\", \"ssd\"]",
                );
            }
        }
        tags
    }

    /// Checks on a host's resolved settings; each problem is reported once per key it comes
    /// from, not once per host.
    fn check_resolved(
        &mut self,
        ssh: &SshTarget,
        paths: &(Paths, Option<KeyPath>, Option<KeyPath>),
        layers: &[&Layer; 3],
        reported: &mut Vec<String>,
    ) {
        {
            if ssh.host_keys == HostKeyPolicy::Strict {
                if let Some((file, key)) = layers.iter().find_map(|l| l.ssh.known_hosts.clone()) {
                    let id = format!("known_hosts {key}");
                    if !file.exists() && !reported.contains(&id) {
                        reported.push(id);
                        let line = self.line_of(&key);
                        self.warn(format!(
                            "{key} ({line}): {} does not exist; with host_keys = \"strict\" every \
                             host will be refused until its key is in it (create it, set \
                             host_keys = \"accept-new\", or pass --accept-new-host-keys)",
                            file.display()
                        ));
                    }
                }
            }
        }
        let (p, data_key, config_key) = paths;
        if p.data_dir == p.config_dir {
            let key = data_key.clone().or(config_key.clone()).unwrap_or_default();
            let id = format!("data_dir {key}");
            if !reported.contains(&id) {
                reported.push(id);
                let other = config_key
                    .as_ref()
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| "the default config_dir".into());
                self.diag(
                    &key,
                    format!(
                        "= \"{}\": data_dir and config_dir must differ (config_dir comes from \
                         {other})",
                        p.data_dir.display()
                    ),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// [dns], [prepare], [[services]]

const DNS_FORWARDS: &[(&str, DnsForward)] = &[
    ("auto", DnsForward::Auto),
    ("dnsmasq", DnsForward::Dnsmasq),
    ("resolved", DnsForward::Resolved),
    ("none", DnsForward::None),
];

/// The resolv.conf options glibc knows (resolv.conf(5)), with the range of `N` for those
/// written `name:N` (glibc's RES_MAXNDOTS, RES_MAXRETRANS, RES_MAXRETRY).
const RESOLV_OPTIONS: &[(&str, Option<(u32, u32)>)] = &[
    ("ndots", Some((0, 15))),
    ("timeout", Some((1, 30))),
    ("attempts", Some((1, 5))),
    ("rotate", None),
    ("no-check-names", None),
    ("inet6", None),
    ("edns0", None),
    ("single-request", None),
    ("single-request-reopen", None),
    ("no-tld-query", None),
    ("use-vc", None),
    ("no-reload", None),
    ("trust-ad", None),
    ("no-aaaa", None),
];

/// glibc reads at most this many `nameserver` lines (MAXNS).
const MAX_NAMESERVERS: usize = 3;
/// glibc's limit on `search` domains (MAXDNSRCH).
const MAX_SEARCH: usize = 6;

/// The placeholders service strings may hold, filled in per host when rendering.
const PLACEHOLDERS: &[&str] = &["{{ bind_addr }}", "{{ node_name }}", "{{ address }}"];

/// Services consulctl itself relies on on the hosts: `prepare.disable_services` refuses them.
const NEEDED_UNITS: &[&str] = &["consul", "ssh", "sshd", "supervisord", "supervisor"];

const ON_FORMS: &str = "expected comma-separated host names, tag:NAME, role:server or role:client";

/// Consul's limits on service `meta` (agent/structs: metaMaxKeyPairs, metaKeyMaxLength,
/// metaValueMaxLength).
const META_MAX_PAIRS: usize = 64;
const META_KEY_MAX: usize = 128;
const META_VALUE_MAX: usize = 512;

/// One term of a service's `on`, checked against the host names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OnTerm {
    Name(String),
    Tag(String),
    Role(Role),
}

impl Ctx<'_> {
    /// An array of strings, each turned into a `T` by `rule` (`Err`: what is allowed), with no
    /// two the `same`. `None` (after reporting every problem) when anything is wrong.
    fn list<T>(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
        example: &str,
        rule: impl Fn(&str) -> Result<T, String>,
        same: impl Fn(&T, &T) -> bool,
    ) -> Option<Vec<T>> {
        let value = v.as_ref()?;
        let toml::Value::Array(items) = value else {
            self.bad(
                key,
                value,
                format!("expected an array of strings such as {example}"),
            );
            return None;
        };
        let mut out: Vec<(T, usize)> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let toml::Value::String(s) = item else {
                self.bad(&key.i(i), item, "expected a string");
                ok = false;
                continue;
            };
            match rule(s) {
                Ok(t) => {
                    if let Some((_, first)) = out.iter().find(|(o, _)| same(o, &t)) {
                        let first = key.i(*first);
                        self.diag(
                            &key.i(i),
                            format!(
                                "= {}: given twice (also {first}); remove one",
                                json_quote(s)
                            ),
                        );
                        ok = false;
                    } else {
                        out.push((t, i));
                    }
                }
                Err(why) => {
                    self.bad(&key.i(i), item, why);
                    ok = false;
                }
            }
        }
        ok.then(|| out.into_iter().map(|(t, _)| t).collect())
    }

    fn dns_layer(&mut self, key: &KeyPath, r: Option<&raw::Dns>) -> Option<DnsLayer> {
        let r = r?;
        let nameservers = self
            .list(
                &key.k("nameservers"),
                &r.nameservers,
                "[\"10.0.0.2\", \"10.0.0.3\"]",
                nameserver,
                |a, b| a == b,
            )
            .map(|v| (v, key.k("nameservers")));
        let mut search = self.list(
            &key.k("search"),
            &r.search,
            "[\"example.com\"]",
            |s| {
                if is_domain(s) {
                    Ok(s.to_owned())
                } else {
                    Err(
                        "expected a DNS domain such as \"example.com\": labels of letters, \
                         digits and \"-\" separated by dots"
                            .into(),
                    )
                }
            },
            |a, b| {
                a.trim_end_matches('.')
                    .eq_ignore_ascii_case(b.trim_end_matches('.'))
            },
        );
        if search.as_ref().is_some_and(|s| s.len() > MAX_SEARCH) {
            let n = search.as_ref().map_or(0, Vec::len);
            self.diag(
                &key.k("search"),
                format!("{n} search domains; at most {MAX_SEARCH} are allowed (glibc's limit)"),
            );
            search = None;
        }
        let options = self
            .list(
                &key.k("options"),
                &r.options,
                "[\"timeout:1\", \"attempts:1\", \"rotate\"]",
                resolv_option,
                |a, b| a.0 == b.0,
            )
            .map(|v| v.into_iter().map(|(_, full)| full).collect());
        Some(DnsLayer {
            nameservers,
            search,
            options,
            forward: self
                .choice(&key.k("forward"), &r.forward, DNS_FORWARDS)
                .map(|f| (f, key.k("forward"))),
            resolv_conf: self
                .remote_path(&key.k("resolv_conf"), &r.resolv_conf)
                .map(|(p, _)| p),
        })
    }

    fn prepare_layer(&mut self, key: &KeyPath, r: Option<&raw::Prepare>) -> PrepareLayer {
        let Some(r) = r else {
            return PrepareLayer::default();
        };
        PrepareLayer {
            disable_services: self.list(
                &key.k("disable_services"),
                &r.disable_services,
                "[\"cups\", \"rpcbind\"]",
                unit_name,
                |a, b| a == b,
            ),
            packages: self.list(
                &key.k("packages"),
                &r.packages,
                "[\"dnsmasq\"]",
                package_name,
                |a, b| a == b,
            ),
        }
    }

    /// Checks across hosts on the resolved DNS settings; `nameservers` pairs each host with
    /// where its `dns.nameservers` came from.
    fn check_dns(&mut self, hosts: &[Host], nameservers: &[(String, KeyPath)]) {
        // More nameservers than glibc reads, going into resolv.conf as they are.
        let mut too_many: Vec<(KeyPath, usize, Vec<&str>)> = Vec::new();
        for (name, key) in nameservers {
            let Some(dns) = hosts
                .iter()
                .find(|h| h.name == *name)
                .and_then(|h| h.dns.as_ref())
            else {
                continue;
            };
            if dns.forward != DnsForward::None || dns.nameservers.len() <= MAX_NAMESERVERS {
                continue;
            }
            match too_many.iter_mut().find(|(k, _, _)| k == key) {
                Some((_, _, names)) => names.push(name),
                None => too_many.push((key.clone(), dns.nameservers.len(), vec![name])),
            }
        }
        for (key, n, names) in too_many {
            let line = self.line_of(&key);
            self.warn(format!(
                "{key} ({line}): {n} nameservers with forward = \"none\" for {}: glibc uses only \
                 the first {MAX_NAMESERVERS} in resolv.conf, the rest are ignored",
                names.join(", ")
            ));
        }

        // Forwarding the Consul domain to an agent whose DNS port is off.
        let dns_off: Vec<&str> = hosts
            .iter()
            .filter(|h| {
                h.dns
                    .as_ref()
                    .is_some_and(|d| d.forward != DnsForward::None)
                    && h.extra_config
                        .get("ports")
                        .and_then(|p| p.get("dns"))
                        .and_then(Json::as_i64)
                        .is_some_and(|p| p < 0)
            })
            .map(|h| h.name.as_str())
            .collect();
        if !dns_off.is_empty() {
            self.warn(format!(
                "dns.forward sends the Consul domain to the local agent's DNS port on {}, but \
                 their config sets ports.dns = -1 (DNS off): queries for the Consul domain will \
                 fail there; set forward = \"none\" for them or turn the DNS port on",
                dns_off.join(", ")
            ));
        }
    }

    /// Validate `[[services]]` and attach each to the hosts its `on` selects (when `hosts` is
    /// known). `host_names`: every host name the inventory gives. False when anything is
    /// wrong (reported).
    fn services(
        &mut self,
        raw: Option<Vec<raw::Service>>,
        host_names: &[String],
        hosts: Option<&mut Vec<Host>>,
    ) -> bool {
        let Some(raw) = raw else {
            return true;
        };
        let ks = KeyPath::root().k("services");
        // The hosts as a cluster, for `Selector`; the other fields are not looked at.
        let probe = hosts.as_ref().map(|hosts| Cluster {
            inventory_path: self.path.to_path_buf(),
            name: String::new(),
            datacenter: String::new(),
            domain: String::new(),
            consul: ConsulSpec {
                version: Version::new(0, 0, 0),
                source: InstallSource::Package {
                    manager: PackageManager::Auto,
                },
            },
            encrypt: None,
            encrypt_auto: false,
            tls_auto: false,
            acl: false,
            acl_tokens: Default::default(),
            hosts: hosts.to_vec(),
            warnings: Vec::new(),
        });

        let mut ok = true;
        // Per entry: the spec and which hosts (indices into `hosts`) it goes to.
        let mut resolved: Vec<Option<(ServiceSpec, Vec<usize>)>> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let k = ks.i(i);
            let spec = self.service(&k, r);
            let on = match &r.on {
                None => {
                    self.missing(
                        &k.k("on"),
                        format!(
                            "which hosts get the service: {ON_FORMS}, e.g. on = \"role:client\""
                        ),
                    );
                    None
                }
                Some(_) => self
                    .string(&k.k("on"), &r.on)
                    .and_then(|s| self.on_terms(&k.k("on"), &s, host_names)),
            };
            let (Some(spec), Some(on)) = (spec, on) else {
                ok = false;
                resolved.push(None);
                continue;
            };
            let Some(probe) = &probe else {
                resolved.push(None);
                continue;
            };
            let on_text = match &r.on {
                Some(toml::Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            let selected = self.select(&k.k("on"), &on_text, &on, &spec.name, probe);
            resolved.push(Some((spec, selected)));
        }
        let Some(hosts) = hosts else {
            return ok;
        };

        // Two entries with one id on one host: Consul keeps only the last.
        let mut clashes: Vec<(usize, usize, Vec<&str>)> = Vec::new();
        for (h, host) in hosts.iter().enumerate() {
            let mut ids: Vec<(&str, usize)> = Vec::new();
            for (i, entry) in resolved.iter().enumerate() {
                let Some((spec, on)) = entry else {
                    continue;
                };
                if !on.contains(&h) {
                    continue;
                }
                match ids.iter().find(|(id, _)| *id == spec.id()) {
                    Some(&(_, first)) => {
                        match clashes.iter_mut().find(|(f, s, _)| *f == first && *s == i) {
                            Some((_, _, names)) => names.push(&host.name),
                            None => clashes.push((first, i, vec![&host.name])),
                        }
                    }
                    None => ids.push((spec.id(), i)),
                }
            }
        }
        let clashes: Vec<(usize, usize, String)> = clashes
            .into_iter()
            .map(|(f, s, names)| (f, s, names.join(", ")))
            .collect();
        for (first, second, names) in &clashes {
            let id_key = |i: usize| {
                if raw[i].id.is_some() {
                    ks.i(i).k("id")
                } else {
                    ks.i(i).k("name")
                }
            };
            let id = resolved[*second]
                .as_ref()
                .map(|(s, _)| s.id().to_owned())
                .unwrap_or_default();
            let first_key = id_key(*first);
            let line = self.line_of(&first_key);
            let hosts_word = if names.contains(", ") {
                "hosts"
            } else {
                "host"
            };
            self.diag(
                &id_key(*second),
                format!(
                    "= {}: duplicate service id on {hosts_word} {names}: services[{first}] \
                     ({line}) has the same id and is attached there too; give one of them its \
                     own id = \"...\"",
                    json_quote(&id)
                ),
            );
            ok = false;
        }
        if !ok {
            return false;
        }

        // Attach, in inventory order.
        for (h, host) in hosts.iter_mut().enumerate() {
            for (spec, on) in resolved.iter().flatten() {
                if on.contains(&h) {
                    host.services.push(spec.clone());
                }
            }
        }

        // Script checks need the agent to allow them.
        for (i, (spec, _)) in resolved
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i, e)))
        {
            let Some(j) = spec
                .checks
                .iter()
                .position(|c| matches!(c.kind, CheckKind::Script(_)))
            else {
                continue;
            };
            let refusing: Vec<&str> = hosts
                .iter()
                .filter(|h| h.services.iter().any(|s| s == spec) && !allows_scripts(h))
                .map(|h| h.name.as_str())
                .collect();
            if !refusing.is_empty() {
                let key = ks.i(i).k("checks").i(j).k("args");
                let line = self.line_of(&key);
                self.warn(format!(
                    "{key} ({line}): a script check, but the config of {} sets \
                     enable_local_script_checks = false: Consul refuses script checks there",
                    refusing.join(", ")
                ));
            }
        }
        true
    }

    /// One `[[services]]` entry, without `on`.
    fn service(&mut self, k: &KeyPath, r: &raw::Service) -> Option<ServiceSpec> {
        let mut ok = true;
        let name = match &r.name {
            None => {
                self.missing(
                    &k.k("name"),
                    "the Consul service name: letters, digits, \"-\" and \"_\"",
                );
                None
            }
            Some(v) => self.string(&k.k("name"), &r.name).and_then(|s| {
                if is_service_ident(&s) {
                    Some(s)
                } else {
                    self.bad(
                        &k.k("name"),
                        v,
                        "expected a service name of letters, digits, \"-\" and \"_\"",
                    );
                    None
                }
            }),
        };
        if let Some(n) = &name {
            let mut why = Vec::new();
            if n.contains('_') {
                why.push("\"_\" is not allowed in DNS names, so Consul DNS cannot answer for it");
            } else if !is_dns_label(n) {
                why.push(
                    "it is not a valid DNS label (at most 63 characters, no \"-\" at either end)",
                );
            }
            if n.chars().any(|c| c.is_ascii_uppercase()) {
                why.push(
                    "DNS ignores case while the catalog API does not, so it has two spellings",
                );
            }
            if !why.is_empty() {
                let key = k.k("name");
                let line = self.line_of(&key);
                self.warn(format!(
                    "{key} ({line}) = {} is not DNS-friendly: {}; use lowercase letters, digits \
                     and \"-\"",
                    json_quote(n),
                    why.join("; ")
                ));
            }
        }
        let id = self.string(&k.k("id"), &r.id).and_then(|s| {
            if is_service_ident(&s) {
                Some(s)
            } else {
                let v = r.id.clone()?;
                self.bad(
                    &k.k("id"),
                    &v,
                    "expected a service id of letters, digits, \"-\" and \"_\"",
                );
                ok = false;
                None
            }
        });
        let port = self
            .int_in(&k.k("port"), &r.port, 1, 65535)
            .map(|p| p as u16);
        if r.port.is_some() && port.is_none() {
            ok = false;
        }
        let address = self.templated(&k.k("address"), &r.address);
        if r.address.is_some() && address.is_none() {
            ok = false;
        }
        let tags = match &r.tags {
            None => Some(Vec::new()),
            Some(_) => self.list(
                &k.k("tags"),
                &r.tags,
                "[\"http\", \"upyun\"]",
                |s| {
                    if s.is_empty() {
                        Err("tags must not be empty".into())
                    } else {
                        placeholders(s).map(|()| s.to_owned())
                    }
                },
                |a, b| a == b,
            ),
        };
        let meta = self.meta(&k.k("meta"), &r.meta);
        let mut checks = Vec::new();
        for (j, c) in r.checks.iter().flatten().enumerate() {
            match self.check(&k.k("checks").i(j), c) {
                Some(c) => checks.push(c),
                None => ok = false,
            }
        }
        let (Some(name), Some(tags), Some(meta)) = (name, tags, meta) else {
            return None;
        };
        ok.then_some(ServiceSpec {
            name,
            id,
            port,
            address,
            tags,
            meta,
            checks,
        })
    }

    /// A string that may hold placeholders; not empty.
    fn templated(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.string(key, v)?;
        let value = v.as_ref()?;
        if s.trim().is_empty() {
            self.bad(key, value, "expected a value, not an empty string");
            return None;
        }
        match placeholders(&s) {
            Ok(()) => Some(s),
            Err(why) => {
                self.bad(key, value, why);
                None
            }
        }
    }

    fn meta(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let mut out = std::collections::BTreeMap::new();
        let table = match v {
            None => return Some(out),
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                self.bad(
                    key,
                    other,
                    "expected a table of strings such as { team = \"db\" }",
                );
                return None;
            }
        };
        let mut ok = true;
        if table.len() > META_MAX_PAIRS {
            self.diag(
                key,
                format!(
                    "{} entries; Consul allows at most {META_MAX_PAIRS}",
                    table.len()
                ),
            );
            ok = false;
        }
        for (name, value) in table {
            let k = key.k(name);
            let name_ok = !name.is_empty()
                && name.len() <= META_KEY_MAX
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                self.diag(
                    &k,
                    format!(
                        "invalid meta key {}: expected 1 to {META_KEY_MAX} letters, digits, \"_\" \
                         and \"-\"",
                        json_quote(name)
                    ),
                );
                ok = false;
                continue;
            }
            if name.starts_with("consul-") {
                self.diag(
                    &k,
                    "meta keys starting with \"consul-\" are reserved for Consul",
                );
                ok = false;
                continue;
            }
            match value {
                toml::Value::String(s) if s.len() > META_VALUE_MAX => {
                    self.bad(
                        &k,
                        value,
                        format!("expected at most {META_VALUE_MAX} bytes (Consul's limit)"),
                    );
                    ok = false;
                }
                toml::Value::String(s) => match placeholders(s) {
                    Ok(()) => {
                        out.insert(name.clone(), s.clone());
                    }
                    Err(why) => {
                        self.bad(&k, value, why);
                        ok = false;
                    }
                },
                other => {
                    self.bad(&k, other, "expected a string");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// One `[[services.checks]]` entry.
    fn check(&mut self, k: &KeyPath, r: &raw::Check) -> Option<CheckSpec> {
        const KINDS: &str = "expected exactly one of \"tcp\" (host:port), \"http\" (a URL) or \
                             \"args\" (a script and its arguments)";
        let mut ok = true;
        let name = match &r.name {
            None => None,
            Some(_) => {
                let n = self.templated(&k.k("name"), &r.name);
                ok &= n.is_some();
                n
            }
        };
        let given: Vec<&str> = [("tcp", &r.tcp), ("http", &r.http), ("args", &r.args)]
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| *n)
            .collect();
        let kind = match given.as_slice() {
            [] => {
                self.diag(k, format!("no check kind; {KINDS}"));
                None
            }
            ["tcp"] => self.tcp_target(&k.k("tcp"), &r.tcp).map(CheckKind::Tcp),
            ["http"] => self.http_target(&k.k("http"), &r.http).map(CheckKind::Http),
            ["args"] => self
                .script_args(&k.k("args"), &r.args)
                .map(CheckKind::Script),
            several => {
                let names: Vec<String> = several.iter().map(|n| format!("\"{n}\"")).collect();
                self.diag(
                    k,
                    format!("{} given together; {KINDS}", names.join(" and ")),
                );
                None
            }
        };
        let interval = match &r.interval {
            None => {
                self.missing(
                    &k.k("interval"),
                    "how often the check runs, a Go duration such as \"10s\"",
                );
                None
            }
            Some(_) => self.duration(&k.k("interval"), &r.interval, true),
        };
        let timeout = self.duration(&k.k("timeout"), &r.timeout, false);
        ok &= r.timeout.is_none() || timeout.is_some();
        let deregister = self.duration(
            &k.k("deregister_critical_service_after"),
            &r.deregister_critical_service_after,
            false,
        );
        ok &= r.deregister_critical_service_after.is_none() || deregister.is_some();
        let (Some(kind), Some(interval), true) = (kind, interval, ok) else {
            return None;
        };
        Some(CheckSpec {
            name,
            kind,
            interval,
            timeout,
            deregister_critical_service_after: deregister,
        })
    }

    /// `host:port`, placeholders allowed in the host.
    fn tcp_target(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.templated(key, v)?;
        let sample = fill_placeholders(&s);
        let valid = match sample.rsplit_once(':') {
            Some((host, port)) => {
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                !host.is_empty()
                    && !host.chars().any(|c| c.is_whitespace() || c == '/')
                    && port.parse::<u16>().is_ok_and(|p| p > 0)
            }
            None => false,
        };
        if valid {
            Some(s)
        } else {
            self.bad(
                key,
                v.as_ref()?,
                "expected host:port such as \"{{ bind_addr }}:80\" or \"127.0.0.1:3306\"",
            );
            None
        }
    }

    /// An http(s) URL, placeholders allowed.
    fn http_target(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.templated(key, v)?;
        if valid_url(&fill_placeholders(&s)) {
            Some(s)
        } else {
            self.bad(
                key,
                v.as_ref()?,
                "expected an http:// or https:// URL such as \
                 \"http://{{ bind_addr }}:80/health\"",
            );
            None
        }
    }

    /// A script check's argv: a non-empty array of strings, the first one not empty.
    fn script_args(&mut self, key: &KeyPath, v: &raw::V) -> Option<Vec<String>> {
        let value = v.as_ref()?;
        const WHAT: &str = "expected the script and its arguments as a non-empty array of \
                            strings, such as [\"/usr/local/consul/script/check_udp.sh\"]";
        let toml::Value::Array(items) = value else {
            self.bad(key, value, WHAT);
            return None;
        };
        if items.is_empty() {
            self.bad(key, value, WHAT);
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item {
                toml::Value::String(s) if i == 0 && s.trim().is_empty() => {
                    self.bad(
                        &key.i(i),
                        item,
                        "expected the script to run, not an empty string",
                    );
                    ok = false;
                }
                toml::Value::String(s) => match placeholders(s) {
                    Ok(()) => out.push(s.clone()),
                    Err(why) => {
                        self.bad(&key.i(i), item, why);
                        ok = false;
                    }
                },
                other => {
                    self.bad(&key.i(i), other, "expected a string");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A Go duration (`10s`, `1m30s`, `500ms`); `positive`: not zero.
    fn duration(&mut self, key: &KeyPath, v: &raw::V, positive: bool) -> Option<String> {
        let s = self.string(key, v)?;
        let value = v.as_ref()?;
        match go_duration_nanos(&s) {
            Some(n) if positive && n <= 0.0 => {
                self.bad(key, value, "expected a duration above zero");
                None
            }
            Some(_) => Some(s),
            None => {
                let hint = if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
                    " (add a unit)"
                } else {
                    ""
                };
                self.bad(
                    key,
                    value,
                    format!(
                        "expected a Go duration such as \"10s\", \"500ms\" or \"1m30s\": numbers \
                         each followed by a unit: \"ns\", \"us\", \"ms\", \"s\", \"m\", \"h\"{hint}"
                    ),
                );
                None
            }
        }
    }

    /// The terms of a service's `on`: syntax, and every host name must exist.
    fn on_terms(&mut self, key: &KeyPath, s: &str, host_names: &[String]) -> Option<Vec<OnTerm>> {
        let value = toml::Value::String(s.to_owned());
        if s.trim().is_empty() {
            self.bad(key, &value, format!("empty; {ON_FORMS}"));
            return None;
        }
        let names: Vec<&str> = host_names.iter().map(String::as_str).collect();
        let mut terms = Vec::new();
        let mut ok = true;
        for raw in s.split(',') {
            let t = raw.trim();
            let term = if t.is_empty() {
                Err(format!("has an empty term; {ON_FORMS}"))
            } else if let Some(tag) = t.strip_prefix("tag:") {
                if tag.is_empty() {
                    Err(format!("term `{t}` names no tag; {ON_FORMS}"))
                } else {
                    Ok(OnTerm::Tag(tag.to_owned()))
                }
            } else if let Some(role) = t.strip_prefix("role:") {
                match role {
                    "server" | "servers" => Ok(OnTerm::Role(Role::Server)),
                    "client" | "clients" => Ok(OnTerm::Role(Role::Client)),
                    _ => Err(format!(
                        "term `{t}`: unknown role `{role}`; expected role:server or role:client"
                    )),
                }
            } else if names.contains(&t) {
                Ok(OnTerm::Name(t.to_owned()))
            } else if t == "servers" {
                Ok(OnTerm::Role(Role::Server))
            } else if t == "clients" {
                Ok(OnTerm::Role(Role::Client))
            } else {
                let hint = match suggest(t, &names) {
                    Some(n) => format!(" (did you mean \"{n}\"?)"),
                    None => String::new(),
                };
                Err(format!(
                    "no host is named `{t}`{hint}; {ON_FORMS} (host names: {})",
                    names_list(&names)
                ))
            };
            match term {
                Ok(term) => {
                    if !terms.contains(&term) {
                        terms.push(term);
                    }
                }
                Err(why) => {
                    self.bad(key, &value, why);
                    ok = false;
                }
            }
        }
        ok.then_some(terms)
    }

    /// Which hosts of `probe` a checked `on` selects (indices); warns about terms that match
    /// no host.
    fn select(
        &mut self,
        key: &KeyPath,
        on: &str,
        terms: &[OnTerm],
        service: &str,
        probe: &Cluster,
    ) -> Vec<usize> {
        let mut selected = vec![false; probe.hosts.len()];
        let mut empty: Vec<String> = Vec::new();
        for term in terms {
            let text = match term {
                OnTerm::Name(n) => n.clone(),
                OnTerm::Tag(t) => format!("tag:{t}"),
                OnTerm::Role(r) => format!("role:{}", r.as_str()),
            };
            // The selector refuses a term that matches no host: that is only a warning here.
            match Selector::parse(&text, probe) {
                Ok(sel) => {
                    for (h, host) in probe.hosts.iter().enumerate() {
                        selected[h] |= sel.matches(host);
                    }
                }
                Err(_) => empty.push(text),
            }
        }
        if !empty.is_empty() {
            let line = self.line_of(key);
            let mut tags: Vec<&str> = Vec::new();
            for t in probe.hosts.iter().flat_map(|h| &h.tags) {
                if !tags.contains(&t.as_str()) {
                    tags.push(t);
                }
            }
            let terms = empty
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let outcome = if selected.iter().any(|s| *s) {
                String::new()
            } else {
                format!("; service {} is on no host", json_quote(service))
            };
            self.warn(format!(
                "{key} ({line}) = {}: {terms} matches no host{outcome} (tags: {})",
                json_quote(on),
                names_list(&tags)
            ));
        }
        selected
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(h, _)| h)
            .collect()
    }
}

fn resolve_dns(layers: &[&Layer; 3]) -> Option<DnsSpec> {
    let tables: Vec<&DnsLayer> = layers.iter().filter_map(|l| l.dns.as_ref()).collect();
    if tables.is_empty() {
        return None;
    }
    Some(DnsSpec {
        nameservers: tables
            .iter()
            .find_map(|d| d.nameservers.clone())
            .map(|(v, _)| v)
            .unwrap_or_default(),
        search: tables
            .iter()
            .find_map(|d| d.search.clone())
            .unwrap_or_default(),
        options: tables
            .iter()
            .find_map(|d| d.options.clone())
            .unwrap_or_default(),
        forward: tables
            .iter()
            .find_map(|d| d.forward.clone())
            .map_or(DnsForward::Auto, |(f, _)| f),
        resolv_conf: tables
            .iter()
            .find_map(|d| d.resolv_conf.clone())
            .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf")),
    })
}

fn resolve_prepare(layers: &[&Layer; 3]) -> PrepareSpec {
    PrepareSpec {
        disable_services: layers
            .iter()
            .find_map(|l| l.prepare.disable_services.clone())
            .unwrap_or_default(),
        packages: layers
            .iter()
            .find_map(|l| l.prepare.packages.clone())
            .unwrap_or_default(),
    }
}

/// Does the host's agent config allow script checks from config files? consulctl writes
/// `enable_local_script_checks = true` for hosts with script checks; only an explicit
/// `enable_local_script_checks = false` in the extra config (without `enable_script_checks =
/// true`) switches them off.
fn allows_scripts(host: &Host) -> bool {
    let get = |k: &str| host.extra_config.get(k);
    get("enable_local_script_checks") != Some(&Json::Bool(false))
        || get("enable_script_checks") == Some(&Json::Bool(true))
}

/// A nameserver: an IP address (not unspecified or multicast).
fn nameserver(s: &str) -> Result<IpAddr, String> {
    match s.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
            Err("expected a nameserver's address (not an unspecified or multicast address)".into())
        }
        Ok(ip) => Ok(ip),
        Err(_) => Err(
            "expected an IP address such as \"10.0.0.2\" (resolv.conf takes addresses, not names)"
                .into(),
        ),
    }
}

/// A resolv.conf option: `(name, as written)`.
fn resolv_option(s: &str) -> Result<(String, String), String> {
    let (name, arg) = match s.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let Some((_, range)) = RESOLV_OPTIONS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = RESOLV_OPTIONS.iter().map(|(n, _)| *n).collect();
        let mut m = String::from("unknown resolv.conf option");
        if let Some(n) = suggest(name, &names) {
            m.push_str(&format!("; did you mean \"{n}\"?"));
        }
        let allowed: Vec<String> = RESOLV_OPTIONS
            .iter()
            .map(|(n, r)| match r {
                Some((lo, hi)) => format!("\"{n}:N\" (N {lo}-{hi})"),
                None => format!("\"{n}\""),
            })
            .collect();
        m.push_str(&format!(" (allowed: {})", allowed.join(", ")));
        return Err(m);
    };
    match (range, arg) {
        (Some((lo, hi)), Some(a)) => match a.parse::<u32>() {
            Ok(n) if (*lo..=*hi).contains(&n) && !a.starts_with('+') => {
                Ok((name.to_owned(), s.to_owned()))
            }
            _ => Err(format!(
                "expected {name}:N with N a whole number from {lo} to {hi} (glibc's limits)"
            )),
        },
        (Some((lo, hi)), None) => Err(format!(
            "\"{name}\" takes a number: {name}:N with N from {lo} to {hi}"
        )),
        (None, Some(_)) => Err(format!("\"{name}\" takes no value; write \"{name}\"")),
        (None, None) => Ok((name.to_owned(), s.to_owned())),
    }
}

/// A systemd unit name to disable (`cups`, `rpcbind.socket`); not one consulctl needs.
fn unit_name(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | ':' | '-'));
    if !valid {
        return Err(
            "expected a systemd unit name: letters, digits, \"@\", \".\", \"_\", \":\" and \"-\""
                .into(),
        );
    }
    let base = s.strip_suffix(".service").unwrap_or(s);
    if NEEDED_UNITS.contains(&base) {
        return Err(format!(
            "consulctl needs this service (one of {}): disabling it would stop the agent or \
             consulctl's own access",
            quoted_list(NEEDED_UNITS)
        ));
    }
    Ok(s.to_owned())
}

/// A package name as apt and yum/dnf take it: `[A-Za-z0-9][A-Za-z0-9+._-]*` (RPM names may
/// hold capitals and `_`: `NetworkManager`), no version.
fn package_name(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-' | '_'));
    if valid {
        Ok(s.to_owned())
    } else {
        Err(
            "expected a package name: letters, digits, \"+\", \".\", \"_\" and \"-\", \
             starting with a letter or digit (no version)"
                .into(),
        )
    }
}

/// Consul service name or id: `[A-Za-z0-9_-]+`.
fn is_service_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Every `{{ ... }}` in `s` must be one of [`PLACEHOLDERS`], spelled exactly.
fn placeholders(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "\"{{{{\" without a closing \"}}}}\"; allowed placeholders: {}",
                quoted_list(PLACEHOLDERS)
            ));
        };
        let found = &rest[start..start + 2 + end + 2];
        if !PLACEHOLDERS.contains(&found) {
            let inner = after[..end].trim();
            let hint = match PLACEHOLDERS.iter().find(|p| p[3..p.len() - 3] == *inner) {
                Some(p) => format!(" (write it as \"{p}\", one space inside the braces)"),
                None => String::new(),
            };
            return Err(format!(
                "unknown placeholder \"{found}\"{hint}; allowed: {}",
                quoted_list(PLACEHOLDERS)
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// `s` with sample values in place of the placeholders, to check what is around them.
fn fill_placeholders(s: &str) -> String {
    s.replace("{{ bind_addr }}", "192.0.2.1")
        .replace("{{ address }}", "host.example")
        .replace("{{ node_name }}", "node")
}

/// Length in nanoseconds of a Go duration (`time.ParseDuration`) without a sign: one or more
/// `<number><unit>`, the number with an optional fraction. `None` when malformed.
fn go_duration_nanos(s: &str) -> Option<f64> {
    const UNITS: &[(&str, f64)] = &[
        ("ns", 1.0),
        ("us", 1e3),
        ("\u{b5}s", 1e3),
        ("\u{3bc}s", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let (_, scale) = UNITS.iter().find(|(u, _)| *u == unit)?;
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Names for a message: all, or the first 20 and a count.
fn names_list(names: &[&str]) -> String {
    if names.is_empty() {
        return "(none)".into();
    }
    let mut s = names
        .iter()
        .take(20)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 20 {
        s.push_str(&format!(", ... ({} in all)", names.len()));
    }
    s
}

fn resolve_ssh(layers: &[&Layer; 3]) -> SshTarget {
    SshTarget {
        user: layers.iter().find_map(|l| l.ssh.user.clone()),
        port: layers.iter().find_map(|l| l.ssh.port),
        identity_file: layers.iter().find_map(|l| l.ssh.identity_file.clone()),
        known_hosts: layers
            .iter()
            .find_map(|l| l.ssh.known_hosts.clone())
            .map(|(p, _)| p),
        config_file: layers.iter().find_map(|l| l.ssh.config_file.clone()),
        jump: layers.iter().find_map(|l| l.ssh.jump.clone()),
        host_keys: layers
            .iter()
            .find_map(|l| l.ssh.host_keys)
            .unwrap_or(HostKeyPolicy::Strict),
        connect_timeout_secs: layers
            .iter()
            .find_map(|l| l.ssh.connect_timeout)
            .unwrap_or(10),
    }
}

/// Resolved paths plus where data_dir and config_dir came from (None: the default).
fn resolve_paths(layers: &[&Layer; 3]) -> (Paths, Option<KeyPath>, Option<KeyPath>) {
    let d = Paths::vendor_default();
    let pick = |f: fn(&PathsLayer) -> &Option<Src<PathBuf>>| {
        layers.iter().find_map(|l| f(&l.paths).clone())
    };
    let data = pick(|p| &p.data_dir);
    let config = pick(|p| &p.config_dir);
    let paths = Paths {
        binary: pick(|p| &p.binary).map(|x| x.0).unwrap_or(d.binary),
        config_dir: config.clone().map(|x| x.0).unwrap_or(d.config_dir),
        data_dir: data.clone().map(|x| x.0).unwrap_or(d.data_dir),
        log_dir: pick(|p| &p.log_dir).map(|x| x.0).unwrap_or(d.log_dir),
        systemd_unit: pick(|p| &p.systemd_unit)
            .map(|x| x.0)
            .unwrap_or(d.systemd_unit),
        supervisor_program: pick(|p| &p.supervisor_program)
            .map(|x| x.0)
            .or(d.supervisor_program),
    };
    (paths, data.map(|x| x.1), config.map(|x| x.1))
}

/// `dst` <- `src`: tables merge key by key (recursively), every other value replaces.
fn merge_deep(dst: &mut Map<String, Json>, src: &Map<String, Json>) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Json::Object(d)), Json::Object(s)) => merge_deep(d, s),
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Document helpers

/// The key path of the key or value at exactly `span`.
fn locate(item: &Item, span: &Range<usize>, path: &KeyPath) -> Option<KeyPath> {
    if let Some(table) = item.as_table_like() {
        for (k, child) in table.iter() {
            let key_span = table.key(k).and_then(|k| k.span());
            let p = path.k(k);
            if key_span.as_ref() == Some(span) || child.span().as_ref() == Some(span) {
                return Some(p);
            }
            if let Some(found) = locate(child, span, &p) {
                return Some(found);
            }
        }
    } else if item.is_array() || item.is_array_of_tables() {
        let mut i = 0;
        while let Some(child) = item.get(i) {
            let p = path.i(i);
            if child.span().as_ref() == Some(span) {
                return Some(p);
            }
            if let Some(found) = locate(child, span, &p) {
                return Some(found);
            }
            i += 1;
        }
    }
    None
}

/// Remove the key at `path` (which ends in a key) from `root`.
fn remove(root: &mut Item, path: &KeyPath) -> bool {
    let Some((Seg::Key(last), parents)) = path.0.split_last() else {
        return false;
    };
    let mut item = root;
    for seg in parents {
        let next = match seg {
            Seg::Key(k) => item.get_mut(k.as_str()),
            Seg::Index(i) => item.get_mut(*i),
        };
        match next {
            Some(next) => item = next,
            None => return false,
        }
    }
    item.as_table_like_mut()
        .and_then(|t| t.remove(last))
        .is_some()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Byte offsets where the lines of `text` start.
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// [`line_col`] with the line starts of `text` known: O(log lines + line length).
fn line_col_indexed(text: &str, starts: &[usize], offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // The last line start at or before `end`.
    let line = starts.partition_point(|&s| s <= end).max(1);
    let column = text[starts[line - 1]..end].chars().count() + 1;
    (line, column)
}

const REPR_MAX: usize = 60;

fn shorten(s: String) -> String {
    if s.chars().count() > REPR_MAX {
        let mut t: String = s.chars().take(REPR_MAX - 3).collect();
        t.push_str("...");
        t
    } else {
        s
    }
}

/// A value as it would be written in TOML, shortened.
fn repr(v: &toml::Value) -> String {
    let s = match v {
        toml::Value::String(s) => json_quote(s),
        toml::Value::Table(_) => "a table".into(),
        other => other.to_string(),
    };
    shorten(s.replace('\n', " "))
}

fn item_repr(item: &Item) -> String {
    match item {
        Item::Value(toml_edit::Value::InlineTable(_)) | Item::Table(_) => "a table".into(),
        Item::ArrayOfTables(_) => "an array of tables".into(),
        Item::Value(v) => shorten(v.to_string().trim().replace('\n', " ")),
        Item::None => "nothing".into(),
    }
}

fn json_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The allowed name closest to a mistyped one, if it is close.
fn suggest<'n>(name: &str, allowed: &[&'n str]) -> Option<&'n str> {
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4) && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Value rules

/// Consul datacenter (and our cluster name): `[a-z0-9_-]+`.
fn is_consul_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Node name: `[A-Za-z0-9_.-]+` (the seed uses IP addresses as names).
fn is_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_tag(s: &str) -> bool {
    is_node_name(s)
}

fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A DNS domain such as `consul` or `consul.example.` (one trailing dot allowed).
fn is_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// An SSH address: `Ok(Some(ip))`, `Ok(None)` for a DNS name, or why it is neither.
fn classify_address(s: &str) -> Result<Option<IpAddr>, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let ip_like =
        s.contains(':') || (s.contains('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if ip_like {
        let hint = if s.contains(':') && s.contains('.') {
            " (give the SSH port as ssh.port, not in the address)"
        } else {
            ""
        };
        return Err(format!("not a valid IP address{hint}"));
    }
    if s.contains('@') {
        return Err("expected an IP address or a DNS name (give the user as ssh.user)".into());
    }
    if is_domain(s) {
        Ok(None)
    } else {
        Err("expected an IP address or a DNS name (letters, digits, \"-\" and dots)".into())
    }
}

/// `[user@]host[:port]`, several separated by commas.
fn valid_jump(s: &str) -> bool {
    !s.is_empty()
        && s.split(',').all(|hop| {
            let host_port = match hop.rsplit_once('@') {
                Some((user, rest)) if !user.is_empty() => rest,
                Some(_) => return false,
                None => hop,
            };
            let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
                // [v6]:port
                match inner.split_once(']') {
                    Some((h, rest)) => (h, rest.strip_prefix(':')),
                    None => return false,
                }
            } else if host_port.matches(':').count() == 1 {
                let (h, p) = host_port.split_once(':').unwrap_or((host_port, ""));
                (h, Some(p))
            } else {
                (host_port, None)
            };
            !host.is_empty()
                && !host.chars().any(|c| c.is_whitespace() || c == '/')
                && port.map_or(true, |p| p.parse::<u16>().is_ok_and(|p| p > 0))
        })
}

fn valid_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// `~` and `~/x` expand to $HOME; `~user` is not supported.
fn expand_tilde(s: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    if s == "~" || s.starts_with("~/") {
        let Some(home) = home else {
            return Err("cannot expand \"~\": $HOME is not set".into());
        };
        Ok(match s.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => home.to_path_buf(),
        })
    } else if s.starts_with('~') {
        Err("\"~user\" is not supported; write the path out or use \"~/\"".into())
    } else {
        Ok(PathBuf::from(s))
    }
}

/// The version in a release file name such as `consul_1.21.0_linux_amd64.zip`,
/// `consul_1.8.7+dfsg1-1_amd64.deb` or `.../consul/1.21.0/...`.
fn version_in_name(name: &str) -> Option<Version> {
    let base = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    for prefix in ["consul_", "consul-"] {
        if let Some(pos) = base.find(prefix) {
            let rest = &base[pos + prefix.len()..];
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            if let Ok(v) = v.trim_end_matches('.').parse::<Version>() {
                return Some(v);
            }
        }
    }
    None
}

/// Standard base64 with padding (Go's `base64.StdEncoding`, which Consul uses for keys).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (n, chunk) in bytes.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && n + 1 != chunks) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &chunk[..4 - pad] {
            acc = (acc << 6) | val(c)?;
        }
        acc <<= 6 * pad as u32;
        let decoded = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// A system user name `useradd` accepts on every distribution (the portable subset).
fn valid_user_name(u: &str) -> bool {
    let mut chars = u.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && u.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory")
    }

    /// Inventories in tests "live" in the fixture directory, so relative local paths resolve
    /// against it.
    fn inv_path() -> PathBuf {
        fixtures().join("test.toml")
    }

    fn ok(text: &str) -> Cluster {
        parse(&inv_path(), text).unwrap_or_else(|diags| {
            panic!(
                "expected a valid inventory, got:\n{}",
                render(&inv_path(), &diags)
            )
        })
    }

    fn errs(text: &str) -> Vec<Diagnostic> {
        match parse(&inv_path(), text) {
            Ok(_) => panic!("expected errors, the inventory was accepted"),
            Err(d) => d,
        }
    }

    /// The one diagnostic for `key`; fails when there is none or several.
    fn one<'d>(diags: &'d [Diagnostic], key: &str) -> &'d Diagnostic {
        let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.key == key).collect();
        assert_eq!(
            found.len(),
            1,
            "expected exactly one diagnostic for `{key}`, got:\n{}",
            render(&inv_path(), diags)
        );
        found[0]
    }

    /// Exactly one diagnostic, for `key`, at `line`, whose message contains `needle`.
    #[track_caller]
    fn only(text: &str, key: &str, line: usize, needle: &str) -> Diagnostic {
        let diags = errs(text);
        assert_eq!(
            diags.len(),
            1,
            "expected one diagnostic, got:\n{}",
            render(&inv_path(), &diags)
        );
        check(&diags, key, line, needle).clone()
    }

    /// A diagnostic for `key` at `line` whose message contains `needle` is among `diags`.
    #[track_caller]
    fn check<'d>(diags: &'d [Diagnostic], key: &str, line: usize, needle: &str) -> &'d Diagnostic {
        let d = one(diags, key);
        assert_eq!(d.line, Some(line), "line of {d}");
        let shown = d.to_string();
        assert!(shown.contains(needle), "`{needle}` not in: {shown}");
        assert!(
            shown.contains(&format!(":{line}:")),
            "line not shown in: {shown}"
        );
        d
    }

    // Test inventories put the hosts first, as an inline array at the top level (lines 1-5,
    // one host per line: s1 on line 2, s2 on 3, s3 on 4), then `HEAD` (lines 6-11), then
    // whatever the test adds (from line 12).

    /// Three servers: s1 on line 2, s2 on line 3, s3 on line 4.
    const THREE: &str = r#"hosts = [
  { name = "s1", address = "10.0.0.1", role = "server" },
  { name = "s2", address = "10.0.0.2", role = "server" },
  { name = "s3", address = "10.0.0.3", role = "server" },
]
"#;

    /// Lines 6-11 after `THREE`; lines 1-6 on its own.
    const HEAD: &str = r#"[cluster]
datacenter = "dc1"

[consul]
version = "1.8.7"
source = { package = "auto" }
"#;

    /// `THREE`, `HEAD`, then `extra` from line 12.
    fn doc(extra: &str) -> String {
        format!("{THREE}{HEAD}{extra}")
    }

    /// `hosts`, then `HEAD`.
    fn hosts_doc(hosts: &str) -> String {
        format!("{hosts}{HEAD}")
    }

    /// `THREE`, `[cluster]` (line 6) with `datacenter` (line 7) and `cluster` from line 8, then
    /// `[consul]` and `consul`.
    fn custom(cluster: &str, consul: &str) -> String {
        format!("{THREE}[cluster]\ndatacenter = \"dc1\"\n{cluster}[consul]\n{consul}")
    }

    /// `consul.source` on line 10.
    fn with_source(source: &str) -> String {
        custom("", &format!("version = \"1.21.0\"\nsource = {source}\n"))
    }

    /// s2 (line 3) with extra inline keys.
    fn s2_with(extra: &str) -> String {
        THREE.replace(
            "{ name = \"s2\", address = \"10.0.0.2\", role = \"server\" }",
            &format!("{{ name = \"s2\", address = \"10.0.0.2\", role = \"server\", {extra} }}"),
        )
    }

    // ---- valid inventories ----------------------------------------------------------------

    #[test]
    fn minimal_inventory_gets_every_default() {
        let c = ok(&doc(""));
        assert_eq!(c.name, "dc1");
        assert_eq!(c.datacenter, "dc1");
        assert_eq!(c.domain, "consul");
        assert_eq!(c.inventory_path, inv_path());
        assert_eq!(c.consul.version, Version::new(1, 8, 7));
        assert_eq!(
            c.consul.source,
            InstallSource::Package {
                manager: PackageManager::Auto
            }
        );
        assert!(c.encrypt.is_none());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.hosts.len(), 3);
        let h = &c.hosts[0];
        assert_eq!(h.name, "s1");
        assert_eq!(h.address, "10.0.0.1");
        assert_eq!(h.role, Role::Server);
        assert_eq!(h.init, Init::Systemd);
        assert_eq!(h.bind, BindAddr::Fixed("10.0.0.1".parse().unwrap()));
        assert_eq!(h.client_addr, "127.0.0.1");
        assert_eq!(h.log_level, "INFO");
        assert_eq!(h.paths, Paths::vendor_default());
        assert_eq!(h.ssh, SshTarget::default());
        assert!(h.extra_config.is_empty());
        assert!(h.tags.is_empty());
        assert_eq!(h.dns, None);
        assert!(h.services.is_empty());
        assert_eq!(h.prepare, PrepareSpec::default());
    }

    #[test]
    fn full_fixture_resolves_every_override() {
        let path = fixtures().join("full.toml");
        let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.name, "prod-a");
        assert_eq!(c.datacenter, "dc_1");
        assert_eq!(c.domain, "consul.example");
        assert_eq!(
            c.encrypt.as_ref().map(Secret::expose),
            Some("pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=")
        );
        assert_eq!(
            c.consul.source,
            InstallSource::File {
                path: fixtures().join("dist/consul")
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let s1 = c.host("s1").unwrap();
        // Role table over cluster.
        assert_eq!(s1.log_level, "INFO");
        assert_eq!(s1.client_addr, "127.0.0.1");
        assert_eq!(s1.bind, BindAddr::Cidr("10.1.1.0/24".parse().unwrap()));
        assert_eq!(s1.ssh.user.as_deref(), Some("root"));
        assert_eq!(s1.ssh.port, Some(2200));
        assert_eq!(
            s1.ssh.identity_file,
            Some(fixtures().join("keys/id_placeholder"))
        );
        assert_eq!(
            s1.ssh.known_hosts,
            Some(fixtures().join("keys/known_hosts"))
        );
        assert_eq!(s1.ssh.jump.as_deref(), Some("ops@bastion.example:2222"));
        assert_eq!(s1.ssh.connect_timeout_secs, 15);
        assert_eq!(s1.paths.data_dir, PathBuf::from("/var/lib/consul-server"));
        assert_eq!(s1.paths.config_dir, PathBuf::from("/usr/local/consul/conf"));
        assert_eq!(
            s1.paths.supervisor_program,
            Some(PathBuf::from("/etc/supervisord.d/consul.ini"))
        );
        assert_eq!(s1.tags, ["rack1", "ssd"]);
        assert_eq!(
            Json::Object(s1.extra_config.clone()),
            serde_json::json!({
                "performance": { "raft_multiplier": 1 },
                "dns_config": { "enable_truncate": true, "only_passing": false },
                "telemetry": { "disable_hostname": true },
                "enable_local_script_checks": true,
                "ui_config": { "enabled": true },
            })
        );

        // Host over role over cluster.
        let s2 = c.host("s2").unwrap();
        assert_eq!(s2.address, "s2.example");
        assert_eq!(s2.bind, BindAddr::Fixed("10.1.1.12".parse().unwrap()));
        assert_eq!(s2.init, Init::Supervisord);
        assert_eq!(s2.log_level, "DEBUG");
        assert_eq!(s2.ssh.port, Some(22));
        assert_eq!(s2.ssh.connect_timeout_secs, 30);
        assert_eq!(s2.ssh.user.as_deref(), Some("root"));
        assert_eq!(s2.paths.log_dir, PathBuf::from("/var/log/consul-s2"));
        assert_eq!(s2.paths.data_dir, PathBuf::from("/var/lib/consul-server"));
        assert_eq!(
            s2.extra_config["dns_config"],
            serde_json::json!({ "enable_truncate": false, "only_passing": false })
        );
        assert_eq!(
            s2.extra_config["node_meta"],
            serde_json::json!({ "rack": "r2" })
        );

        // A client: [clients] and the cluster.
        let a = c.host("10.1.2.21").unwrap();
        assert_eq!(a.role, Role::Client);
        assert_eq!(a.init, Init::Supervisord);
        assert_eq!(a.log_level, "WARN");
        assert_eq!(a.client_addr, "10.1.2.21");
        assert_eq!(a.bind, BindAddr::Cidr("10.1.0.0/16".parse().unwrap()));
        assert_eq!(a.ssh.user.as_deref(), Some("ops"));
        assert_eq!(a.ssh.jump.as_deref(), Some("bastion2.example"));
        assert_eq!(a.ssh.host_keys, HostKeyPolicy::AcceptNew);
        assert_eq!(a.paths.data_dir, PathBuf::from("/disk/ssd1/consul/data"));
        assert_eq!(
            Json::Object(a.extra_config.clone()),
            serde_json::json!({
                "performance": { "raft_multiplier": 1 },
                "dns_config": { "enable_truncate": true, "only_passing": true },
                "telemetry": { "disable_hostname": true },
                "enable_local_script_checks": true,
                "ports": { "dns": -1, "http": 8501 },
            })
        );

        // DNS: host over role over cluster, key by key.
        let ns: Vec<IpAddr> = ["10.1.0.2", "10.1.0.3", "2001:db8::53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let options = ["timeout:1", "attempts:1", "single-request-reopen", "rotate"];
        assert_eq!(
            s1.dns,
            Some(DnsSpec {
                nameservers: ns.clone(),
                search: vec!["servers.example.com".into()],
                options: options.iter().map(|o| o.to_string()).collect(),
                forward: DnsForward::None,
                resolv_conf: "/etc/resolv.conf".into(),
            })
        );
        let d2 = s2.dns.as_ref().unwrap();
        assert_eq!(d2.options, ["ndots:2"]);
        assert_eq!(d2.search, ["servers.example.com"]);
        assert_eq!(d2.forward, DnsForward::None);
        assert_eq!(d2.resolv_conf, PathBuf::from("/etc/resolv.conf.consul"));
        let da = a.dns.as_ref().unwrap();
        assert_eq!(da.forward, DnsForward::None);
        assert_eq!(da.search, ["example.com", "corp.example."]);
        assert_eq!(da.nameservers, ns);

        // prepare: the most specific list wins whole.
        assert_eq!(
            s1.prepare,
            PrepareSpec {
                disable_services: vec!["cups".into(), "rpcbind".into()],
                packages: vec![],
            }
        );
        assert_eq!(s2.prepare.packages, ["dnsmasq", "bind-utils"]);
        assert_eq!(s2.prepare.disable_services, ["cups", "rpcbind"]);
        assert_eq!(
            a.prepare.disable_services,
            ["cups", "rpcbind", "postfix.service"]
        );
        assert_eq!(a.prepare.packages, ["dnsmasq"]);

        // services: web on the client and s1, ntp on the host tagged ssd (s1), in file order.
        let names = |h: &Host| {
            h.services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(s1), ["web", "ntp"]);
        assert_eq!(names(s2), Vec::<String>::new());
        assert_eq!(names(a), ["web"]);
        let web = &a.services[0];
        assert_eq!(web.id(), "web-80");
        assert_eq!(web.port, Some(80));
        assert_eq!(web.address.as_deref(), Some("{{ bind_addr }}"));
        assert_eq!(web.tags, ["http", "upyun"]);
        assert_eq!(
            web.meta,
            [("node", "{{ node_name }}"), ("team", "web")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        assert_eq!(
            web.checks,
            [
                CheckSpec {
                    name: Some("web tcp".into()),
                    kind: CheckKind::Tcp("{{ bind_addr }}:80".into()),
                    interval: "10s".into(),
                    timeout: Some("1s".into()),
                    deregister_critical_service_after: None,
                },
                CheckSpec {
                    name: None,
                    kind: CheckKind::Http("http://{{ address }}:80/health".into()),
                    interval: "1m30s".into(),
                    timeout: None,
                    deregister_critical_service_after: Some("90m".into()),
                },
            ]
        );
        assert_eq!(&s1.services[0], web);
        let ntp = &s1.services[1];
        assert_eq!(ntp.id(), "ntp");
        assert!(ntp.has_script_check());
        assert_eq!(
            ntp.checks[0].kind,
            CheckKind::Script(vec![
                "/usr/local/consul/script/check_udp.sh".into(),
                "123".into()
            ])
        );
    }

    #[test]
    fn example_inventory_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/example.toml");
        let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.servers().count(), 3);
        assert!(c.clients().count() >= 1);
        assert_eq!(c.host("server1").unwrap().paths, Paths::vendor_default());
        assert_eq!(c.host("server1").unwrap().init, Init::Systemd);
        // [dns], [prepare] and [[services]] are commented out there.
        assert!(c
            .hosts
            .iter()
            .all(|h| h.dns.is_none() && h.services.is_empty()));
        assert_eq!(c.host("web1").unwrap().prepare, PrepareSpec::default());
    }

    #[test]
    fn example_production_inventory_mirrors_the_seed() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/example-production.toml");
        let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.datacenter, "upyun");
        assert_eq!(c.domain, "consul");
        assert_eq!(c.servers().count(), 3);
        assert!(c.clients().count() >= 2);
        let net: IpNet = "192.168.30.0/24".parse().unwrap();
        for h in &c.hosts {
            assert_eq!(h.init, Init::Supervisord, "{}", h.name);
            assert_eq!(h.bind, BindAddr::Cidr(net), "{}", h.name);
            assert_eq!(h.paths.binary, PathBuf::from("/usr/local/consul/consul"));
            assert_eq!(h.paths.config_dir, PathBuf::from("/usr/local/consul/conf"));
            assert_eq!(h.paths.data_dir, PathBuf::from("/disk/ssd1/consul/data"));
            assert_eq!(h.paths.log_dir, PathBuf::from("/disk/ssd1/logs/supervisor"));
            assert_eq!(
                h.paths.supervisor_program,
                Some(PathBuf::from("/etc/supervisord.d/consul.ini"))
            );
            let x = &h.extra_config;
            assert_eq!(x["leave_on_terminate"], Json::Bool(true));
            assert_eq!(x["rejoin_after_leave"], Json::Bool(true));
            assert_eq!(x["enable_local_script_checks"], Json::Bool(true));
            assert_eq!(
                x["dns_config"],
                serde_json::json!({ "enable_truncate": true, "only_passing": true })
            );
            match h.role {
                Role::Server => {
                    assert_eq!(x["ui_config"], serde_json::json!({ "enabled": true }));
                    assert!(!x.contains_key("ports"));
                }
                Role::Client => {
                    assert_eq!(x["ports"], serde_json::json!({ "dns": -1 }));
                    assert!(!x.contains_key("ui_config"));
                }
            }
            // The seed's resolv.conf and install script.
            let dns = h.dns.as_ref().expect("dns");
            assert_eq!(dns.forward, DnsForward::None, "{}", h.name);
            assert_eq!(
                dns.options,
                ["timeout:1", "attempts:1", "single-request-reopen", "rotate"]
            );
            assert!(!dns.nameservers.is_empty() && dns.nameservers.len() <= 3);
            assert_eq!(dns.resolv_conf, PathBuf::from("/etc/resolv.conf"));
            assert_eq!(h.prepare.disable_services, ["cups", "rpcbind"]);
        }
        let services = |name: &str| -> Vec<&str> {
            c.host(name)
                .unwrap()
                .services
                .iter()
                .map(|s| s.name.as_str())
                .collect()
        };
        assert!(services("192.168.30.17").is_empty());
        assert_eq!(services("192.168.30.7"), ["mysql", "ntp", "ssh"]);
        assert_eq!(services("192.168.30.21"), ["kafka", "ntp", "ssh"]);
        assert_eq!(services("192.168.30.22"), ["es", "ssh"]);
        let mysql = &c.host("192.168.30.7").unwrap().services[0];
        assert_eq!(mysql.tags, ["tcp", "upyun"]);
        assert_eq!(
            mysql.checks,
            [CheckSpec {
                name: None,
                kind: CheckKind::Tcp("{{ bind_addr }}:3306".into()),
                interval: "10s".into(),
                timeout: Some("1s".into()),
                deregister_critical_service_after: None,
            }]
        );
        assert_eq!(
            c.host("192.168.30.22").unwrap().services[0].tags,
            ["http", "upyun"]
        );
        let ntp = &c.host("192.168.30.7").unwrap().services[1];
        assert_eq!(
            ntp.checks[0].kind,
            CheckKind::Script(vec!["/usr/local/consul/script/check_udp.sh".into()])
        );
        assert_eq!(
            (
                ntp.checks[0].interval.as_str(),
                ntp.checks[0].timeout.as_deref()
            ),
            ("60s", Some("10s"))
        );
        let ssh = &c.host("192.168.30.21").unwrap().services[2];
        assert_eq!(ssh.port, Some(22));
        assert_eq!(
            ssh.checks[0].kind,
            CheckKind::Tcp("{{ bind_addr }}:22".into())
        );
    }

    #[test]
    fn relative_local_paths_resolve_against_the_inventory_directory() {
        let text = format!(
            r#"{THREE}[cluster]
datacenter = "dc1"
[consul]
version = "1.8.7"
source = {{ file = "dist/consul" }}
[ssh]
identity_file = "keys/../keys/id_placeholder"
known_hosts = "nowhere/known_hosts"
host_keys = "accept-new"
"#
        );
        let c = ok(&text);
        assert_eq!(
            c.consul.source,
            InstallSource::File {
                path: fixtures().join("dist/consul")
            }
        );
        let ssh = &c.hosts[0].ssh;
        assert_eq!(
            ssh.identity_file,
            Some(fixtures().join("keys/../keys/id_placeholder"))
        );
        // accept-new: need not exist.
        assert_eq!(
            ssh.known_hosts,
            Some(fixtures().join("nowhere/known_hosts"))
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn ssh_config_file_resolves_and_user_and_port_are_left_to_it() {
        // Nothing given: no user, no port (ssh_config decides), no config file.
        let c = ok(&doc(""));
        assert_eq!(c.hosts[0].ssh.user, None);
        assert_eq!(c.hosts[0].ssh.port, None);
        assert_eq!(c.hosts[0].ssh.config_file, None);
        // Relative to the inventory's directory; a host's own value wins.
        let c = ok(&format!(
            "{}{HEAD}[ssh]\nconfig_file = \"keys/known_hosts\"\n",
            s2_with("ssh = { config_file = \"keys/id_placeholder\" }")
        ));
        assert_eq!(
            c.host("s1").unwrap().ssh.config_file,
            Some(fixtures().join("keys/known_hosts"))
        );
        assert_eq!(
            c.host("s2").unwrap().ssh.config_file,
            Some(fixtures().join("keys/id_placeholder"))
        );
        assert_eq!(c.host("s1").unwrap().ssh.user, None);
        // A missing file is an input error naming the key and line.
        only(
            &doc("[ssh]\nconfig_file = \"keys/no_such_config\"\n"),
            "ssh.config_file",
            13,
            "file not found",
        );
    }

    #[test]
    fn tilde_expands_to_home() {
        let home = Path::new("/home/op");
        assert_eq!(
            expand_tilde("~/.ssh/id_ed25519", Some(home)).unwrap(),
            PathBuf::from("/home/op/.ssh/id_ed25519")
        );
        assert_eq!(
            expand_tilde("~", Some(home)).unwrap(),
            PathBuf::from("/home/op")
        );
        assert_eq!(
            expand_tilde("keys/x", Some(home)).unwrap(),
            PathBuf::from("keys/x")
        );
        assert!(expand_tilde("~root/x", Some(home))
            .unwrap_err()
            .contains("~user"));
        assert!(expand_tilde("~/x", None).unwrap_err().contains("HOME"));
    }

    #[test]
    fn dns_address_with_bind_cidr_is_accepted() {
        let text = r#"[cluster]
datacenter = "dc1"
bind_cidr = "192.168.30.0/24"
[consul]
version = "1.8.7"
source = { package = "apt" }
[[hosts]]
name = "db1"
address = "db1.example.net"
role = "server"
"#;
        let c = ok(text);
        assert_eq!(
            c.hosts[0].bind,
            BindAddr::Cidr("192.168.30.0/24".parse().unwrap())
        );
    }

    #[test]
    fn log_level_is_case_insensitive_and_stored_uppercase() {
        let c = ok(&doc(
            "[clients]\nlog_level = \"err\"\n[servers]\nlog_level = \"Debug\"\n",
        ));
        assert!(c.hosts.iter().all(|h| h.log_level == "DEBUG"));
    }

    #[test]
    fn secret_is_never_printed() {
        let c = ok(&custom(
            "encrypt = \"pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=\"\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        ));
        assert!(c.encrypt.is_some());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("pUqJ"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        assert!(!serde_json::to_string(&c).unwrap().contains("pUqJ"));
    }

    #[test]
    fn base64_decoding_follows_go_std_encoding() {
        assert_eq!(base64_decode("AAAA").unwrap(), [0, 0, 0]);
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aA==").unwrap(), b"h");
        assert_eq!(
            base64_decode("pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=")
                .unwrap()
                .len(),
            32
        );
        for bad in ["", "aGk", "aG=k", "a===", "aA==aA==", "aGk*", "aGk=\n"] {
            assert!(base64_decode(bad).is_none(), "{bad:?}");
        }
    }

    // ---- syntax and shape -----------------------------------------------------------------

    #[test]
    fn toml_syntax_error_reports_line_and_column() {
        let text = "[cluster]\ndatacenter = \"dc1\nname = \"x\"\n";
        let d = only(text, "", 2, "TOML syntax error");
        assert_eq!(d.column, Some(18));
        assert!(
            d.to_string().starts_with(&format!(
                "{}:2:18: TOML syntax error: ",
                inv_path().display()
            )),
            "{d}"
        );
    }

    #[test]
    fn duplicate_toml_key_is_a_syntax_error() {
        let text = "[cluster]\ndatacenter = \"dc1\"\ndatacenter = \"dc2\"\n";
        let d = only(text, "", 3, "duplicate key");
        assert_eq!(d.column, Some(1));
    }

    #[test]
    fn unknown_top_level_key_is_rejected() {
        let d = only(
            &doc("[sever]\nlog_level = \"INFO\"\n"),
            "sever",
            12,
            "unknown key",
        );
        assert_eq!(d.column, Some(2));
        assert!(d.message.contains("did you mean \"servers\"?"), "{d}");
        assert!(d.message.contains("\"cluster\", \"consul\""), "{d}");
    }

    #[test]
    fn unknown_key_in_a_table_is_rejected() {
        let text = custom(
            "log_levl = \"INFO\"\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        );
        let d = only(
            &text,
            "cluster.log_levl",
            8,
            "unknown key; did you mean \"log_level\"?",
        );
        assert_eq!(d.column, Some(1));
    }

    #[test]
    fn unknown_key_in_a_host_is_rejected() {
        // A mistyped required key: the unknown key and the missing one are both reported.
        let text =
            format!("{HEAD}[[hosts]]\nname = \"s1\"\nadress = \"10.0.0.1\"\nrole = \"server\"\n");
        let diags = errs(&text);
        assert_eq!(diags.len(), 2, "{}", render(&inv_path(), &diags));
        check(&diags, "hosts[0].adress", 9, "did you mean \"address\"?");
        check(&diags, "hosts[0].address", 7, "missing required key");
    }

    #[test]
    fn unknown_key_in_a_host_ssh_table_is_rejected() {
        let text = format!(
            "{HEAD}[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
             [hosts.ssh]\nprot = 2222\n"
        );
        only(&text, "hosts[0].ssh.prot", 12, "did you mean \"port\"?");
    }

    #[test]
    fn top_level_key_inside_a_table_gets_a_hint() {
        // `hosts = [...]` written after [consul] belongs to [consul].
        let text = format!("{HEAD}{THREE}");
        let diags = errs(&text);
        let d = check(
            &diags,
            "consul.hosts",
            7,
            "a key after a [table] header belongs to that table",
        );
        assert_eq!(d.column, Some(1));
        // And, truthfully, the top level has no hosts.
        assert_eq!(diags.len(), 2, "{}", render(&inv_path(), &diags));
        assert_eq!(one(&diags, "hosts").line, None);
    }

    #[test]
    fn unknown_keys_everywhere_are_reported_together() {
        let text = r#"[cluster]
datacenter = "dc1"
colour = "blue"

[consul]
version = "1.8.7"
source = { package = "auto", mirror = "x" }

[servers]
ssh = { usr = "ops" }

[[hosts]]
name = "s1"
address = "10.0.0.1"
role = "server"
rack = 3

[extras]
x = 1
"#;
        let diags = errs(text);
        assert_eq!(diags.len(), 5, "{}", render(&inv_path(), &diags));
        check(&diags, "cluster.colour", 3, "unknown key");
        check(&diags, "consul.source.mirror", 7, "unknown key");
        check(&diags, "servers.ssh.usr", 10, "did you mean \"user\"?");
        check(&diags, "hosts[0].rack", 16, "unknown key");
        check(&diags, "extras", 18, "unknown key");
        // Sorted by line.
        let lines: Vec<_> = diags.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(3), Some(7), Some(10), Some(16), Some(18)]);
    }

    #[test]
    fn table_where_a_value_is_expected_is_rejected() {
        let text = format!("{THREE}ssh = \"root\"\n{HEAD}");
        only(
            &text,
            "ssh",
            6,
            "ssh = \"root\": expected a table of SSH settings",
        );
    }

    #[test]
    fn host_that_is_not_a_table_is_rejected() {
        let text = hosts_doc("hosts = [\"s1\"]\n");
        let d = only(
            &text,
            "hosts[0]",
            1,
            "hosts[0] = \"s1\": expected a table ([[hosts]])",
        );
        assert_eq!(d.column, Some(10));
    }

    #[test]
    fn value_of_the_wrong_type_is_rejected() {
        only(
            &doc("[ssh]\nport = \"22\"\n"),
            "ssh.port",
            13,
            "ssh.port = \"22\": expected an integer from 1 to 65535",
        );
    }

    // ---- required keys --------------------------------------------------------------------

    #[test]
    fn missing_datacenter_is_rejected() {
        let text = format!(
            "{THREE}[cluster]\nname = \"prod\"\n[consul]\nversion = \"1.8.7\"\n\
             source = {{ package = \"auto\" }}\n"
        );
        let d = only(&text, "cluster.datacenter", 6, "missing required key");
        assert_eq!(d.column, Some(1), "points at the [cluster] header");
    }

    #[test]
    fn missing_cluster_table_has_no_line() {
        let text =
            format!("{THREE}[consul]\nversion = \"1.8.7\"\nsource = {{ package = \"auto\" }}\n");
        let diags = errs(&text);
        assert_eq!(diags.len(), 1);
        let d = one(&diags, "cluster.datacenter");
        assert_eq!(d.line, None);
        assert_eq!(
            d.to_string(),
            format!(
                "{}: cluster.datacenter: missing required key; the Consul datacenter: lowercase \
                 letters, digits, \"_\" and \"-\"",
                inv_path().display()
            )
        );
    }

    #[test]
    fn missing_consul_version_is_rejected() {
        let text = custom("", "source = { package = \"auto\" }\n");
        only(&text, "consul.version", 8, "missing required key");
    }

    #[test]
    fn missing_consul_source_is_rejected() {
        let text = custom("", "version = \"1.8.7\"\n");
        only(
            &text,
            "consul.source",
            8,
            "missing required key; where Consul comes from",
        );
    }

    #[test]
    fn missing_hosts_is_rejected() {
        let diags = errs(HEAD);
        assert_eq!(diags.len(), 1);
        let d = one(&diags, "hosts");
        assert_eq!(
            d.line, None,
            "no [[hosts]] at all: the whole file is concerned"
        );
        assert!(d.message.contains("missing required key"), "{d}");
        only(&hosts_doc("hosts = []\n"), "hosts", 1, "no hosts");
    }

    #[test]
    fn missing_host_name_address_and_role_are_rejected() {
        let text = format!(
            "{HEAD}[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
             [[hosts]]\ntags = [\"x\"]\n"
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 3, "{}", render(&inv_path(), &diags));
        // All point at the second [[hosts]] header.
        check(&diags, "hosts[1].name", 11, "missing required key");
        check(&diags, "hosts[1].address", 11, "missing required key");
        check(
            &diags,
            "hosts[1].role",
            11,
            "missing required key; expected one of \"server\", \"client\"",
        );
    }

    // ---- uniqueness and cluster shape -----------------------------------------------------

    #[test]
    fn interpolation_in_config_is_an_input_error() {
        // Line 12 on: a value, a nested value, a key, a host's config, a secret (not quoted).
        let text = doc(
            "[config]\nnode_meta = { rack = \"${env.RACK}\" }\nui_dir = \"/srv/%{ if x }ui\"\n\
             [config.limits]\n\"${k}\" = 1\n\
             [servers.config]\nacl = { tokens = { agent = \"${TOKEN_VALUE}\" } }\n",
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 4, "{}", render(&inv_path(), &diags));
        let d = check(
            &diags,
            "config.node_meta.rack",
            13,
            "config.node_meta.rack = \"${env.RACK}\": the value holds \"${\" or \"%{\"",
        );
        assert_eq!(d.column, Some(22));
        check(
            &diags,
            "config.ui_dir",
            14,
            "the value holds \"${\" or \"%{\"",
        );
        check(&diags, "config.limits.\"${k}\"", 16, "the key holds");
        let secret = check(
            &diags,
            "servers.config.acl.tokens.agent",
            18,
            "the value holds",
        );
        assert!(
            !secret.to_string().contains("TOKEN_VALUE"),
            "a token's value is not quoted back: {secret}"
        );
        // What is allowed is said, and the file is named.
        assert!(d.to_string().contains("literal values"), "{d}");
        assert!(d.to_string().contains("test.toml:13:22"), "{d}");
        // A lone `$` or `%` is fine.
        ok(&doc("[config]\nnode_meta = { cost = \"$5 or 5%\" }\n"));
    }

    /// Many errors are reported in linear time: 20k hosts that all repeat the first one's
    /// name and address (one error per name and per address, each with its line). This took
    /// ~49 s when every diagnostic counted lines from the top of the file.
    #[test]
    fn twenty_thousand_duplicate_hosts_report_every_duplicate() {
        let n = 20_000;
        let mut text = String::from(HEAD);
        for _ in 0..n {
            text.push_str("[[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n");
        }
        let diags = errs(&text);
        let names = diags
            .iter()
            .filter(|d| d.message.contains("duplicate host name"))
            .count();
        let addresses = diags
            .iter()
            .filter(|d| d.message.contains("duplicate host address"))
            .count();
        assert_eq!((names, addresses), (n - 1, n - 1));
        // Each is located: the last host's name is on the file's last host's line.
        let last = diags
            .iter()
            .find(|d| d.key == format!("hosts[{}].name", n - 1))
            .unwrap();
        assert_eq!(last.line, Some(7 + 4 * (n - 1) + 1), "{last}");
        assert!(
            last.to_string()
                .contains("already used by hosts[0] (line 8)"),
            "{last}"
        );
    }

    #[test]
    fn duplicate_host_name_is_rejected() {
        let text = hosts_doc(&THREE.replace("name = \"s3\"", "name = \"S1\""));
        let d = only(
            &text,
            "hosts[2].name",
            4,
            "hosts[2].name = \"S1\": duplicate host name, already used by hosts[0] (line 2)",
        );
        assert_eq!(d.column, Some(12));
    }

    #[test]
    fn duplicate_host_address_is_rejected() {
        let text = hosts_doc(&THREE.replace("10.0.0.3", "10.0.0.1"));
        only(
            &text,
            "hosts[2].address",
            4,
            "hosts[2].address = \"10.0.0.1\": duplicate host address, already used by hosts[0] \
             (line 2)",
        );
    }

    #[test]
    fn duplicate_bind_address_is_rejected() {
        let text = hosts_doc(&THREE.replace(
            "address = \"10.0.0.3\", role = \"server\"",
            "address = \"s3.example\", role = \"server\", bind_addr = \"10.0.0.2\"",
        ));
        only(
            &text,
            "hosts[2].bind_addr",
            4,
            "hosts[2].bind_addr = \"10.0.0.2\": duplicate bind address, hosts[1].address (line 3) \
             binds to it too",
        );
    }

    #[test]
    fn zero_servers_is_rejected() {
        let text = hosts_doc(&THREE.replace("\"server\"", "\"client\""));
        only(&text, "hosts", 1, "no host has role = \"server\"");
    }

    #[test]
    fn even_server_count_is_a_warning_not_an_error() {
        let text = hosts_doc(&THREE.replace(
            "]\n",
            "  { name = \"s4\", address = \"10.0.0.4\", role = \"server\" },\n]\n",
        ));
        let c = ok(&text);
        assert_eq!(c.servers().count(), 4);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(
            w.starts_with(&format!("{}: 4 servers", inv_path().display())),
            "{w}"
        );
        assert!(
            w.contains(
                "the quorum of 3 tolerates 1 failed server, the same failures as 3 servers (4 - 1)"
            ),
            "{w}"
        );
    }

    #[test]
    fn more_than_seven_servers_is_a_warning() {
        let mut hosts = String::from("hosts = [\n");
        for i in 1..=9 {
            hosts.push_str(&format!(
                "  {{ name = \"s{i}\", address = \"10.0.0.{i}\", role = \"server\" }},\n"
            ));
        }
        hosts.push_str("]\n");
        let c = ok(&hosts_doc(&hosts));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("9 servers: more than 7"),
            "{:?}",
            c.warnings
        );
    }

    // ---- names ----------------------------------------------------------------------------

    #[test]
    fn invalid_datacenter_is_rejected() {
        for bad in ["Upyun", "up.yun", "up yun", ""] {
            let text = format!(
                "{THREE}[cluster]\ndatacenter = \"{bad}\"\n[consul]\nversion = \"1.8.7\"\n\
                 source = {{ package = \"auto\" }}\n"
            );
            let d = only(
                &text,
                "cluster.datacenter",
                7,
                "expected lowercase letters, digits",
            );
            assert!(
                d.to_string()
                    .contains(&format!("cluster.datacenter = \"{bad}\": ")),
                "{d}"
            );
            assert_eq!(d.column, Some(14));
        }
    }

    #[test]
    fn invalid_cluster_name_is_rejected() {
        let text = custom(
            "name = \"Prod/1\"\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        );
        only(
            &text,
            "cluster.name",
            8,
            "cluster.name = \"Prod/1\": expected lowercase letters",
        );
    }

    #[test]
    fn invalid_domain_is_rejected() {
        for bad in ["consul..local", "-consul", "con sul", "consul_"] {
            let text = custom(
                &format!("domain = \"{bad}\"\n"),
                "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
            );
            only(&text, "cluster.domain", 8, "expected a DNS domain");
        }
    }

    #[test]
    fn invalid_node_name_is_rejected() {
        let text = hosts_doc(&THREE.replace("\"s2\"", "\"s2/web\""));
        only(
            &text,
            "hosts[1].name",
            3,
            "hosts[1].name = \"s2/web\": expected letters, digits",
        );
    }

    // ---- addresses ------------------------------------------------------------------------

    #[test]
    fn malformed_ip_address_is_rejected() {
        let text = hosts_doc(&THREE.replace("10.0.0.2", "10.0.0.256"));
        only(
            &text,
            "hosts[1].address",
            3,
            "hosts[1].address = \"10.0.0.256\": not a valid IP address",
        );
        let text = hosts_doc(&THREE.replace("10.0.0.2", "10.0.0.2:22"));
        only(
            &text,
            "hosts[1].address",
            3,
            "give the SSH port as ssh.port",
        );
    }

    #[test]
    fn malformed_bind_addr_is_rejected() {
        let text = hosts_doc(&s2_with("bind_addr = \"10.0.0.x\""));
        only(
            &text,
            "hosts[1].bind_addr",
            3,
            "hosts[1].bind_addr = \"10.0.0.x\": expected an IP address",
        );
        // With a DNS address too: no "no way to find the bind address" on top of it.
        let text = hosts_doc(
            &s2_with("bind_addr = \"0.0.0.0\"").replace("\"10.0.0.2\"", "\"s2.example\""),
        );
        only(
            &text,
            "hosts[1].bind_addr",
            3,
            "hosts[1].bind_addr = \"0.0.0.0\": expected the host's own address",
        );
    }

    #[test]
    fn malformed_bind_cidr_is_rejected() {
        for bad in ["192.168.30.0/33", "192.168.30.0", "lan"] {
            let text = custom(
                &format!("bind_cidr = \"{bad}\"\n"),
                "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
            );
            only(
                &text,
                "cluster.bind_cidr",
                8,
                "expected a network in CIDR notation",
            );
        }
    }

    #[test]
    fn bind_addr_outside_bind_cidr_is_rejected() {
        let text = format!(
            "{HEAD}[servers]\nbind_cidr = \"192.168.30.0/24\"\n\
             [[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\
             bind_addr = \"192.168.31.5\"\n"
        );
        only(
            &text,
            "hosts[0].bind_addr",
            13,
            "= \"192.168.31.5\": not inside servers.bind_cidr = \"192.168.30.0/24\" (line 8)",
        );
    }

    #[test]
    fn dns_address_without_bind_cidr_is_rejected() {
        let text = hosts_doc(&THREE.replace("\"10.0.0.3\"", "\"s3.example.net\""));
        only(
            &text,
            "hosts[2].address",
            4,
            "hosts[2].address = \"s3.example.net\": no way to find the bind address",
        );
    }

    #[test]
    fn empty_tag_is_rejected() {
        let text = hosts_doc(&s2_with("tags = [\"ok\", \"\"]"));
        let d = only(
            &text,
            "hosts[1].tags[1]",
            3,
            "hosts[1].tags[1] = \"\": tags must not be empty",
        );
        assert_eq!(d.column, Some(71));
    }

    // ---- enumerations and numbers ---------------------------------------------------------

    #[test]
    fn invalid_log_level_is_rejected() {
        only(
            &doc("[servers]\nlog_level = \"verbose\"\n"),
            "servers.log_level",
            13,
            "servers.log_level = \"verbose\": expected one of \"TRACE\", \"DEBUG\", \"INFO\", \
             \"WARN\", \"ERR\"",
        );
    }

    #[test]
    fn invalid_init_is_rejected() {
        let text = hosts_doc(&s2_with("init = \"runit\""));
        only(
            &text,
            "hosts[1].init",
            3,
            "hosts[1].init = \"runit\": expected one of \"systemd\", \"supervisord\"",
        );
    }

    #[test]
    fn invalid_role_is_rejected() {
        let text = hosts_doc(&THREE.replace(
            "address = \"10.0.0.2\", role = \"server\"",
            "address = \"10.0.0.2\", role = \"master\"",
        ));
        let d = only(
            &text,
            "hosts[1].role",
            3,
            "hosts[1].role = \"master\": expected one of \"server\", \"client\"",
        );
        assert_eq!(
            d.to_string(),
            format!(
                "{}:3:47: hosts[1].role = \"master\": expected one of \"server\", \"client\"",
                inv_path().display()
            )
        );
    }

    #[test]
    fn invalid_port_is_rejected() {
        for bad in ["0", "65536", "-1"] {
            only(
                &doc(&format!("[ssh]\nport = {bad}\n")),
                "ssh.port",
                13,
                &format!("ssh.port = {bad}: expected an integer from 1 to 65535"),
            );
        }
    }

    #[test]
    fn invalid_connect_timeout_and_host_keys_are_rejected() {
        let diags = errs(&doc("[ssh]\nconnect_timeout = 301\nhost_keys = \"yes\"\n"));
        assert_eq!(diags.len(), 2);
        check(
            &diags,
            "ssh.connect_timeout",
            13,
            "expected an integer from 1 to 300",
        );
        check(
            &diags,
            "ssh.host_keys",
            14,
            "expected one of \"strict\", \"accept-new\"",
        );
    }

    #[test]
    fn invalid_ssh_user_and_jump_are_rejected() {
        let diags = errs(&doc("[ssh]\nuser = \"ops@x\"\njump = \"bastion:port\"\n"));
        assert_eq!(diags.len(), 2);
        check(&diags, "ssh.user", 13, "expected a user name");
        check(&diags, "ssh.jump", 14, "expected a ProxyJump host");
    }

    // ---- paths ----------------------------------------------------------------------------

    #[test]
    fn relative_remote_path_is_rejected() {
        only(
            &doc("[paths]\ndata_dir = \"opt/consul\"\n"),
            "paths.data_dir",
            13,
            "paths.data_dir = \"opt/consul\": expected an absolute path",
        );
    }

    #[test]
    fn non_absolute_remote_paths_are_rejected_at_every_level() {
        let text = format!(
            "{}{HEAD}[servers]\npaths = {{ config_dir = \"/etc/../consul.d\" }}\n",
            s2_with("paths = { data_dir = \"/\" }")
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 2, "{}", render(&inv_path(), &diags));
        check(&diags, "hosts[1].paths.data_dir", 3, "not \"/\" itself");
        check(
            &diags,
            "servers.paths.config_dir",
            13,
            "without \".\" or \"..\" parts",
        );
    }

    #[test]
    fn remote_paths_are_normalized() {
        let c = ok(&doc("[paths]\ndata_dir = \"/disk//ssd1/consul/\"\n"));
        assert_eq!(
            c.hosts[0].paths.data_dir,
            PathBuf::from("/disk/ssd1/consul")
        );
    }

    #[test]
    fn data_dir_equal_to_config_dir_is_rejected() {
        only(
            &doc("[paths]\ndata_dir = \"/etc/consul.d\"\n"),
            "paths.data_dir",
            13,
            "data_dir and config_dir must differ",
        );
    }

    #[test]
    fn missing_source_file_is_rejected() {
        let text = custom(
            "",
            "version = \"1.8.7\"\nsource = { file = \"dist/consul_1.8.7.deb\" }\n",
        );
        let d = only(
            &text,
            "consul.source.file",
            10,
            "consul.source.file = \"dist/consul_1.8.7.deb\": file not found: ",
        );
        let full = fixtures().join("dist/consul_1.8.7.deb");
        assert!(d.message.contains(&full.display().to_string()), "{d}");
        assert!(
            d.message
                .contains("resolved against the inventory's directory"),
            "{d}"
        );
    }

    #[test]
    fn missing_identity_file_is_rejected() {
        let text = hosts_doc(&s2_with("ssh = { identity_file = \"keys/id_missing\" }"));
        only(&text, "hosts[1].ssh.identity_file", 3, "file not found");
    }

    #[test]
    fn missing_known_hosts_with_strict_host_keys_is_a_warning() {
        let c = ok(&doc("[ssh]\nknown_hosts = \"keys/nope\"\n"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("ssh.known_hosts (line 13)"),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings[0].contains("--accept-new-host-keys"),
            "{:?}",
            c.warnings
        );
    }

    // ---- source ---------------------------------------------------------------------------

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn url_source_is_accepted_with_sha256() {
        let c = ok(&with_source(&format!(
            "{{ url = \"https://releases.example/consul_1.21.0_linux_amd64.zip\", sha256 = \"{}\" }}",
            SHA.to_uppercase()
        )));
        assert_eq!(
            c.consul.source,
            InstallSource::Url {
                url: "https://releases.example/consul_1.21.0_linux_amd64.zip".into(),
                sha256: SHA.into()
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn url_without_sha256_is_rejected() {
        let text = with_source("{ url = \"https://releases.example/consul.zip\" }");
        only(
            &text,
            "consul.source.sha256",
            10,
            "missing required key; a url source needs the sha256",
        );
    }

    #[test]
    fn bad_sha256_is_rejected() {
        for bad in ["abc".to_owned(), format!("{}g", &SHA[..63])] {
            let text = with_source(&format!(
                "{{ url = \"https://releases.example/consul.zip\", sha256 = \"{bad}\" }}"
            ));
            only(&text, "consul.source.sha256", 10, "expected 64 hex digits");
        }
    }

    #[test]
    fn non_http_url_is_rejected() {
        for bad in [
            "ftp://mirror/consul.zip",
            "releases.example/consul.zip",
            "https://",
        ] {
            let text = with_source(&format!("{{ url = \"{bad}\", sha256 = \"{SHA}\" }}"));
            only(
                &text,
                "consul.source.url",
                10,
                &format!("consul.source.url = \"{bad}\": expected an http:// or https:// URL"),
            );
        }
    }

    #[test]
    fn two_source_forms_are_rejected() {
        let text = with_source("{ package = \"auto\", file = \"dist/consul\" }");
        only(
            &text,
            "consul.source",
            10,
            "\"file\" and \"package\" given together; expected exactly one of",
        );
    }

    #[test]
    fn empty_source_is_rejected() {
        only(
            &with_source("{}"),
            "consul.source",
            10,
            "expected exactly one of \"file\", \"url\", \"package\"",
        );
    }

    #[test]
    fn sha256_without_url_is_rejected() {
        let text = with_source(&format!("{{ package = \"auto\", sha256 = \"{SHA}\" }}"));
        only(
            &text,
            "consul.source.sha256",
            10,
            "only applies to a url source",
        );
    }

    #[test]
    fn invalid_package_manager_is_rejected() {
        only(
            &with_source("{ package = \"zypper\" }"),
            "consul.source.package",
            10,
            "consul.source.package = \"zypper\": expected one of \"auto\", \"apt\", \"yum\", \"dnf\"",
        );
    }

    #[test]
    fn version_mismatch_in_a_release_name_is_a_warning() {
        let c = ok(&with_source(&format!(
            "{{ url = \"https://releases.example/consul_1.8.7_linux_amd64.zip\", sha256 = \"{SHA}\" }}"
        )));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "consul.source.url (line 10) names Consul 1.8.7 but consul.version is 1.21.0"
            ),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn bad_version_is_rejected() {
        for bad in ["\"1.8\"", "\"latest\"", "1.8"] {
            let text = custom(
                "",
                &format!("version = {bad}\nsource = {{ package = \"auto\" }}\n"),
            );
            let d = only(
                &text,
                "consul.version",
                9,
                &format!("consul.version = {bad}: expected"),
            );
            assert_eq!(d.column, Some(11));
        }
    }

    // ---- encrypt ----------------------------------------------------------------------------

    #[test]
    fn encrypt_auto_leaves_the_key_to_the_secrets_file() {
        let c = ok(&doc("").replace("[cluster]\n", "[cluster]\nencrypt = \"auto\"\n"));
        assert!(c.encrypt_auto);
        assert!(
            c.encrypt.is_none(),
            "parse is pure: load() fills the key in"
        );
    }

    #[test]
    fn malformed_encrypt_key_is_rejected() {
        for (bad, needle) in [
            ("not base64!", "not valid base64"),
            ("aGVsbG8=", "decodes to 5 bytes"),
        ] {
            let text = custom(
                &format!("encrypt = \"{bad}\"\n"),
                "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
            );
            let d = only(&text, "cluster.encrypt", 8, needle);
            assert!(!d.to_string().contains(bad), "the key is a secret: {d}");
        }
    }

    // ---- tls --------------------------------------------------------------------------------

    #[test]
    fn tls_auto_is_parsed_and_false_is_off() {
        let c = ok(&doc("").replace("[cluster]\n", "[cluster]\ntls = \"auto\"\n"));
        assert!(c.tls_auto);
        let c = ok(&doc("").replace("[cluster]\n", "[cluster]\ntls = false\n"));
        assert!(!c.tls_auto);
        assert!(!ok(&doc("")).tls_auto);
    }

    #[test]
    fn other_tls_values_are_rejected() {
        for bad in ["\"yes\"", "true", "1"] {
            let text = custom(
                &format!("tls = {bad}\n"),
                "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
            );
            only(&text, "cluster.tls", 8, "expected \"auto\"");
        }
    }

    #[test]
    fn acl_is_a_boolean_and_the_agent_user_a_system_user_name() {
        let c = ok(&doc("").replace("[cluster]\n", "[cluster]\nacl = true\n"));
        assert!(c.acl);
        assert!(!ok(&doc("")).acl);
        assert!(ok(&doc("")).hosts.iter().all(|h| h.user == "consul"));
        let text = custom(
            "acl = \"yes\"\n",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\n",
        );
        only(&text, "cluster.acl", 8, "expected true");
        let text = custom(
            "",
            "version = \"1.8.7\"\nsource = { package = \"auto\" }\nuser = \"root\"\n",
        );
        assert!(ok(&text).hosts.iter().all(|h| h.user == "root"));
        for bad in ["Consul User", "9lives", "a:b", ""] {
            let text = custom(
                "",
                &format!(
                    "version = \"1.8.7\"\nsource = {{ package = \"auto\" }}\nuser = {bad:?}\n"
                ),
            );
            only(&text, "consul.user", 11, "expected a system user name");
        }
    }

    // ---- config -----------------------------------------------------------------------------

    #[test]
    fn config_merges_deeply_cluster_role_host() {
        let text = format!(
            "{}{HEAD}[config]\ndns_config = {{ enable_truncate = true, only_passing = true }}\n\
             retry_join = [\"a\"]\n[servers]\nconfig = {{ dns_config = {{ only_passing = false }}, \
             retry_join = [\"b\"] }}\n",
            s2_with("config = { dns_config = { a_record_limit = 3 } }")
        );
        let c = ok(&text);
        assert_eq!(
            Json::Object(c.hosts[1].extra_config.clone()),
            serde_json::json!({
                "dns_config": { "enable_truncate": true, "only_passing": false, "a_record_limit": 3 },
                "retry_join": ["b"],
            })
        );
        assert_eq!(
            c.hosts[0].extra_config["dns_config"],
            serde_json::json!({ "enable_truncate": true, "only_passing": false })
        );
    }

    #[test]
    fn config_values_pass_through_unchecked() {
        // Whether Consul wants a table there is Consul's business (`consul validate` later).
        let c = ok(&doc("[config]\nports = 5\nstart_join = \"x\"\n"));
        assert_eq!(c.hosts[0].extra_config["ports"], serde_json::json!(5));
    }

    #[test]
    fn config_that_is_not_a_table_is_rejected() {
        let text = format!("{THREE}config = \"ui = true\"\n{HEAD}");
        only(
            &text,
            "config",
            6,
            "config = \"ui = true\": expected a table of Consul agent settings",
        );
    }

    #[test]
    fn managed_config_key_is_rejected() {
        let text = hosts_doc(&s2_with("config = { data_dir = \"/x\" }"));
        only(
            &text,
            "hosts[1].config.data_dir",
            3,
            "consulctl sets this itself from paths.data_dir",
        );
    }

    #[test]
    fn ui_config_on_consul_1_8_is_a_warning() {
        let c = ok(&doc(
            "[servers]\nconfig = { ui_config = { enabled = true } }\n",
        ));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("does not know `ui_config`"),
            "{:?}",
            c.warnings
        );
        assert!(c.warnings[0].contains("s1, s2, s3"), "{:?}", c.warnings);
    }

    // ---- dns ----------------------------------------------------------------------------

    /// `THREE` plus a client c1 (line 5, tagged "web"), `HEAD` on lines 7-12, then `extra`
    /// from line 13.
    fn with_client(extra: &str) -> String {
        let hosts = THREE.replace(
            "]\n",
            "  { name = \"c1\", address = \"10.0.0.21\", role = \"client\", tags = [\"web\"] },\n]\n",
        );
        format!("{hosts}{HEAD}{extra}")
    }

    #[test]
    fn dns_table_gives_defaults() {
        let c = ok(&doc("[dns]\n"));
        for h in &c.hosts {
            assert_eq!(
                h.dns,
                Some(DnsSpec {
                    nameservers: vec![],
                    search: vec![],
                    options: vec![],
                    forward: DnsForward::Auto,
                    resolv_conf: "/etc/resolv.conf".into(),
                })
            );
        }
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn dns_keys_layer_host_over_role_over_cluster() {
        let text = format!(
            "{}{HEAD}[dns]\nnameservers = [\"10.0.0.53\"]\nsearch = [\"example.com\"]\n\
             options = [\"timeout:1\"]\n[servers.dns]\nforward = \"none\"\n\
             search = [\"srv.example.com\"]\n",
            s2_with("dns = { search = [\"s2.example.com\"], resolv_conf = \"/run/resolv.conf\" }")
        );
        let c = ok(&text);
        let s1 = c.host("s1").unwrap().dns.clone().unwrap();
        assert_eq!(s1.nameservers, ["10.0.0.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(s1.search, ["srv.example.com"]);
        assert_eq!(s1.options, ["timeout:1"]);
        assert_eq!(s1.forward, DnsForward::None);
        assert_eq!(s1.resolv_conf, PathBuf::from("/etc/resolv.conf"));
        let s2 = c.host("s2").unwrap().dns.clone().unwrap();
        assert_eq!(s2.search, ["s2.example.com"]);
        assert_eq!(s2.forward, DnsForward::None);
        assert_eq!(s2.nameservers, s1.nameservers);
        assert_eq!(s2.resolv_conf, PathBuf::from("/run/resolv.conf"));
    }

    #[test]
    fn dns_only_for_hosts_with_a_dns_table() {
        let c = ok(&with_client("[clients.dns]\nforward = \"resolved\"\n"));
        assert_eq!(c.host("s1").unwrap().dns, None);
        assert_eq!(
            c.host("c1").unwrap().dns.as_ref().map(|d| d.forward),
            Some(DnsForward::Resolved)
        );
        let c = ok(&hosts_doc(&s2_with("dns = {}")));
        assert_eq!(c.host("s1").unwrap().dns, None);
        assert!(c.host("s2").unwrap().dns.is_some());
    }

    #[test]
    fn bad_nameserver_is_rejected() {
        let d = only(
            &doc("[dns]\nnameservers = [\"10.0.0.2\", \"ns1.example\"]\n"),
            "dns.nameservers[1]",
            13,
            "dns.nameservers[1] = \"ns1.example\": expected an IP address",
        );
        assert_eq!(d.column, Some(28));
        only(
            &doc("[dns]\nnameservers = [\"0.0.0.0\"]\n"),
            "dns.nameservers[0]",
            13,
            "not an unspecified or multicast address",
        );
        only(
            &doc("[dns]\nnameservers = [\"10.0.0.2\", \"10.0.0.2\"]\n"),
            "dns.nameservers[1]",
            13,
            "given twice (also dns.nameservers[0])",
        );
        only(
            &doc("[dns]\nnameservers = \"10.0.0.2\"\n"),
            "dns.nameservers",
            13,
            "expected an array of strings such as [\"10.0.0.2\", \"10.0.0.3\"]",
        );
    }

    #[test]
    fn unknown_resolv_conf_option_is_rejected() {
        let d = only(
            &doc("[dns]\noptions = [\"rotate\", \"timout:1\"]\n"),
            "dns.options[1]",
            13,
            "dns.options[1] = \"timout:1\": unknown resolv.conf option; did you mean \"timeout\"?",
        );
        for allowed in [
            "\"ndots:N\" (N 0-15)",
            "\"single-request-reopen\"",
            "\"no-aaaa\"",
        ] {
            assert!(d.message.contains(allowed), "{allowed} not in {d}");
        }
    }

    #[test]
    fn resolv_conf_option_values_are_checked() {
        for (bad, needle) in [
            (
                "attempts:9",
                "expected attempts:N with N a whole number from 1 to 5",
            ),
            ("ndots:16", "from 0 to 15"),
            ("timeout:x", "from 1 to 30"),
            ("timeout", "\"timeout\" takes a number"),
            ("rotate:1", "\"rotate\" takes no value"),
        ] {
            only(
                &doc(&format!("[dns]\noptions = [\"{bad}\"]\n")),
                "dns.options[0]",
                13,
                needle,
            );
        }
        only(
            &doc("[dns]\noptions = [\"timeout:1\", \"timeout:2\"]\n"),
            "dns.options[1]",
            13,
            "given twice (also dns.options[0])",
        );
        let c = ok(&doc(
            "[dns]\noptions = [\"ndots:0\", \"timeout:30\", \"attempts:5\", \"edns0\", \"trust-ad\"]\n",
        ));
        assert_eq!(c.hosts[0].dns.as_ref().unwrap().options.len(), 5);
    }

    #[test]
    fn bad_search_domain_is_rejected() {
        only(
            &doc("[dns]\nsearch = [\"example.com\", \"exa mple.com\"]\n"),
            "dns.search[1]",
            13,
            "dns.search[1] = \"exa mple.com\": expected a DNS domain",
        );
        let seven: Vec<String> = (1..=7).map(|i| format!("\"d{i}.example\"")).collect();
        only(
            &doc(&format!("[dns]\nsearch = [{}]\n", seven.join(", "))),
            "dns.search",
            13,
            "7 search domains; at most 6 are allowed (glibc's limit)",
        );
    }

    #[test]
    fn bad_forward_is_rejected() {
        only(
            &hosts_doc(&s2_with("dns = { forward = \"systemd\" }")),
            "hosts[1].dns.forward",
            3,
            "hosts[1].dns.forward = \"systemd\": expected one of \"auto\", \"dnsmasq\", \
             \"resolved\", \"none\"",
        );
    }

    #[test]
    fn relative_resolv_conf_is_rejected() {
        only(
            &doc("[servers.dns]\nresolv_conf = \"etc/resolv.conf\"\n"),
            "servers.dns.resolv_conf",
            13,
            "servers.dns.resolv_conf = \"etc/resolv.conf\": expected an absolute path",
        );
    }

    #[test]
    fn unknown_dns_key_is_rejected() {
        only(
            &doc("[dns]\nnameserver = [\"10.0.0.2\"]\n"),
            "dns.nameserver",
            13,
            "unknown key; did you mean \"nameservers\"?",
        );
    }

    #[test]
    fn more_than_three_nameservers_with_forward_none_is_a_warning() {
        let four = "nameservers = [\"10.0.0.2\", \"10.0.0.3\", \"10.0.0.4\", \"10.0.0.5\"]\n";
        let c = ok(&with_client(&format!(
            "[dns]\n{four}[servers.dns]\nforward = \"none\"\n"
        )));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(
            w.contains(
                "dns.nameservers (line 14): 4 nameservers with forward = \"none\" for s1, s2, s3: \
                 glibc uses only the first 3"
            ),
            "{w}"
        );
        // Forwarded through dnsmasq or resolved, they are upstreams: no limit.
        let c = ok(&doc(&format!("[dns]\n{four}forward = \"dnsmasq\"\n")));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.hosts[0].dns.as_ref().unwrap().nameservers.len(), 4);
    }

    #[test]
    fn forwarding_to_a_disabled_dns_port_is_a_warning() {
        let c = ok(&with_client(
            "[dns]\n[clients]\nconfig = { ports = { dns = -1 } }\n",
        ));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("DNS port on c1, but their config sets ports.dns = -1"),
            "{:?}",
            c.warnings
        );
        let c = ok(&with_client(
            "[dns]\n[clients]\nconfig = { ports = { dns = -1 } }\ndns = { forward = \"none\" }\n",
        ));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    // ---- prepare --------------------------------------------------------------------------

    #[test]
    fn prepare_lists_layer_whole() {
        let text = format!(
            "{}{HEAD}[prepare]\ndisable_services = [\"cups\", \"rpcbind\"]\n\
             packages = [\"dnsmasq\"]\n[servers.prepare]\npackages = [\"bind-utils\", \"g++\"]\n",
            s2_with("prepare = { disable_services = [\"avahi-daemon.socket\"] }")
        );
        let c = ok(&text);
        let s1 = &c.host("s1").unwrap().prepare;
        assert_eq!(s1.disable_services, ["cups", "rpcbind"]);
        assert_eq!(s1.packages, ["bind-utils", "g++"]);
        let s2 = &c.host("s2").unwrap().prepare;
        assert_eq!(s2.disable_services, ["avahi-daemon.socket"]);
        assert_eq!(s2.packages, ["bind-utils", "g++"]);
    }

    #[test]
    fn bad_package_name_is_rejected() {
        for bad in ["-x", "dnsmasq=2.80", ""] {
            only(
                &doc(&format!("[prepare]\npackages = [\"dnsmasq\", \"{bad}\"]\n")),
                "prepare.packages[1]",
                13,
                &format!("prepare.packages[1] = \"{bad}\": expected a package name"),
            );
        }
        only(
            &doc("[prepare]\npackages = [\"dnsmasq\", \"dnsmasq\"]\n"),
            "prepare.packages[1]",
            13,
            "given twice",
        );
    }

    #[test]
    fn bad_unit_name_is_rejected() {
        only(
            &doc("[clients.prepare]\ndisable_services = [\"cups service\"]\n"),
            "clients.prepare.disable_services[0]",
            13,
            "clients.prepare.disable_services[0] = \"cups service\": expected a systemd unit name",
        );
        for needed in ["sshd", "consul.service", "supervisord"] {
            only(
                &doc(&format!("[prepare]\ndisable_services = [\"{needed}\"]\n")),
                "prepare.disable_services[0]",
                13,
                "consulctl needs this service",
            );
        }
        let c = ok(&doc(
            "[prepare]\ndisable_services = [\"getty@tty1\", \"rpcbind.socket\", \"sys-kernel-debug.mount\"]\n",
        ));
        assert_eq!(c.hosts[0].prepare.disable_services.len(), 3);
    }

    // ---- services -------------------------------------------------------------------------

    #[test]
    fn service_is_attached_to_exactly_the_hosts_on_selects() {
        let text = with_client(
            r#"[config]
enable_local_script_checks = true
[[services]]
name = "web"
on = "tag:web,s2"
port = 80
checks = [{ tcp = "{{ bind_addr }}:80", interval = "10s", timeout = "1s" }]
[[services]]
name = "ssh"
on = "role:client"
address = "{{ address }}"
[[services.checks]]
name = "sshd on {{ node_name }}"
tcp = "{{ bind_addr }}:22"
interval = "500ms"
[[services.checks]]
http = "https://{{ bind_addr }}:8443/health?full=1"
interval = "1h"
[[services.checks]]
args = ["/usr/local/consul/script/check_udp.sh"]
interval = "60s"
timeout = "10s"
deregister_critical_service_after = "1m"
[[services]]
name = "ui"
on = "servers"
"#,
        );
        let c = ok(&text);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let on = |name: &str| -> Vec<String> {
            c.hosts
                .iter()
                .filter(|h| h.services.iter().any(|s| s.name == name))
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(on("web"), ["s2", "c1"]);
        assert_eq!(on("ssh"), ["c1"]);
        assert_eq!(on("ui"), ["s1", "s2", "s3"]);
        // Inventory order on each host.
        let c1: Vec<&str> = c
            .host("c1")
            .unwrap()
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(c1, ["web", "ssh"]);

        let ssh = &c.host("c1").unwrap().services[1];
        assert_eq!(ssh.id, None);
        assert_eq!(ssh.id(), "ssh");
        assert_eq!(ssh.port, None);
        assert_eq!(ssh.address.as_deref(), Some("{{ address }}"));
        let kinds: Vec<&CheckKind> = ssh.checks.iter().map(|c| &c.kind).collect();
        assert_eq!(
            kinds,
            [
                &CheckKind::Tcp("{{ bind_addr }}:22".into()),
                &CheckKind::Http("https://{{ bind_addr }}:8443/health?full=1".into()),
                &CheckKind::Script(vec!["/usr/local/consul/script/check_udp.sh".into()]),
            ]
        );
        assert_eq!(
            ssh.checks[0].name.as_deref(),
            Some("sshd on {{ node_name }}")
        );
        assert_eq!(ssh.checks[0].interval, "500ms");
        assert_eq!(ssh.checks[2].timeout.as_deref(), Some("10s"));
        assert_eq!(
            ssh.checks[2].deregister_critical_service_after.as_deref(),
            Some("1m")
        );
        assert!(ssh.has_script_check());
        let web = &c.host("s2").unwrap().services[0];
        assert_eq!(web.port, Some(80));
        assert_eq!(web.checks[0].timeout.as_deref(), Some("1s"));
        assert!(!web.has_script_check());
    }

    #[test]
    fn service_without_on_is_rejected() {
        only(
            &doc("[[services]]\nname = \"web\"\n"),
            "services[0].on",
            12,
            "services[0].on: missing required key; which hosts get the service",
        );
        only(
            &doc("[[services]]\non = \"s1\"\n"),
            "services[0].name",
            12,
            "missing required key; the Consul service name",
        );
    }

    #[test]
    fn on_naming_an_unknown_host_is_rejected() {
        let d = only(
            &doc("[[services]]\nname = \"web\"\non = \"s1,s9\"\n"),
            "services[0].on",
            14,
            "services[0].on = \"s1,s9\": no host is named `s9`",
        );
        assert!(d.message.contains("did you mean \"s1\"?"), "{d}");
        assert!(d.message.contains("(host names: s1, s2, s3)"), "{d}");
        for (bad, needle) in [
            ("role:master", "unknown role `master`"),
            ("tag:", "names no tag"),
            ("s1,,s2", "has an empty term"),
            ("", "empty;"),
        ] {
            only(
                &doc(&format!("[[services]]\nname = \"web\"\non = \"{bad}\"\n")),
                "services[0].on",
                14,
                needle,
            );
        }
    }

    #[test]
    fn on_matching_no_host_is_a_warning() {
        let c = ok(&doc(
            "[[services]]\nname = \"web\"\non = \"tag:nope\"\n[[services]]\nname = \"api\"\n\
             on = \"s1,role:client\"\n",
        ));
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "services[0].on (line 14) = \"tag:nope\": `tag:nope` matches no host; service \
                 \"web\" is on no host"
            ),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings[1].contains("services[1].on (line 17) = \"s1,role:client\": `role:client` matches no host (tags:"),
            "{:?}",
            c.warnings
        );
        assert!(c
            .hosts
            .iter()
            .all(|h| h.services.iter().all(|s| s.name != "web")));
        assert_eq!(c.host("s1").unwrap().services[0].name, "api");
    }

    #[test]
    fn non_dns_friendly_service_name_is_a_warning() {
        let c = ok(&doc("[[services]]\nname = \"web_api\"\non = \"s1\"\n"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "services[0].name (line 13) = \"web_api\" is not DNS-friendly: \"_\" is not \
                 allowed in DNS names"
            ),
            "{:?}",
            c.warnings
        );
        let c = ok(&doc("[[services]]\nname = \"Web\"\non = \"s1\"\n"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("DNS ignores case"),
            "{:?}",
            c.warnings
        );
        only(
            &doc("[[services]]\nname = \"web.api\"\non = \"s1\"\n"),
            "services[0].name",
            13,
            "expected a service name of letters, digits",
        );
        only(
            &doc("[[services]]\nname = \"web\"\nid = \"web 1\"\non = \"s1\"\n"),
            "services[0].id",
            14,
            "expected a service id of letters, digits",
        );
    }

    #[test]
    fn check_with_two_kinds_or_none_is_rejected() {
        let svc = "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n";
        only(
            &doc(&format!(
                "{svc}tcp = \"{{{{ bind_addr }}}}:80\"\nhttp = \"http://x/\"\ninterval = \"10s\"\n"
            )),
            "services[0].checks[0]",
            15,
            "services[0].checks[0]: \"tcp\" and \"http\" given together; expected exactly one of",
        );
        only(
            &doc(&format!("{svc}interval = \"10s\"\n")),
            "services[0].checks[0]",
            15,
            "no check kind; expected exactly one of \"tcp\" (host:port), \"http\" (a URL) or \
             \"args\"",
        );
    }

    #[test]
    fn bad_check_values_are_rejected() {
        let svc = "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n";
        for (body, key, needle) in [
            ("tcp = \"{{ bind_addr }}\"", "tcp", "expected host:port"),
            ("tcp = \"{{ bind_addr }}:0\"", "tcp", "expected host:port"),
            (
                "http = \"{{ bind_addr }}/health\"",
                "http",
                "expected an http:// or https:// URL",
            ),
            ("args = []", "args", "non-empty array of strings"),
            (
                "args = \"/bin/check\"",
                "args",
                "non-empty array of strings",
            ),
            ("args = [\"\"]", "args[0]", "expected the script to run"),
            ("args = [\"/bin/check\", 1]", "args[1]", "expected a string"),
        ] {
            only(
                &doc(&format!("{svc}{body}\ninterval = \"10s\"\n")),
                &format!("services[0].checks[0].{key}"),
                16,
                needle,
            );
        }
        only(
            &doc(&format!("{svc}tcp = \"127.0.0.1:22\"\n")),
            "services[0].checks[0].interval",
            15,
            "missing required key; how often the check runs",
        );
    }

    #[test]
    fn bad_duration_is_rejected() {
        let svc = "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n\
                   tcp = \"127.0.0.1:22\"\n";
        for (key, bad) in [
            ("interval", "10"),
            ("interval", "10sec"),
            ("interval", "-5s"),
            ("interval", "0s"),
            ("timeout", "1.5.0s"),
            ("timeout", "s"),
            ("deregister_critical_service_after", "1 m"),
        ] {
            let extra = if key == "interval" {
                String::new()
            } else {
                "interval = \"10s\"\n".into()
            };
            only(
                &doc(&format!("{svc}{extra}{key} = \"{bad}\"\n")),
                &format!("services[0].checks[0].{key}"),
                if key == "interval" { 17 } else { 18 },
                &format!("= \"{bad}\": expected a "),
            );
        }
        let d = only(
            &doc(&format!("{svc}interval = \"10\"\n")),
            "services[0].checks[0].interval",
            17,
            "(add a unit)",
        );
        assert!(
            d.message.contains("expected a Go duration such as \"10s\""),
            "{d}"
        );
    }

    #[test]
    fn go_durations_parse_like_go() {
        for (s, nanos) in [
            ("10s", 10e9),
            ("500ms", 0.5e9),
            ("1m30s", 90e9),
            ("1h", 3600e9),
            ("1.5h", 5400e9),
            ("2h45m0.5s", 9900.5e9),
            ("100us", 1e5),
            ("100\u{b5}s", 1e5),
            ("7ns", 7.0),
            (".5s", 0.5e9),
            ("0s", 0.0),
        ] {
            assert_eq!(go_duration_nanos(s), Some(nanos), "{s}");
        }
        for bad in [
            "", "10", "s", "1x", "1.2.3s", "-1s", "1 s", "1s ", ".s", "1d",
        ] {
            assert_eq!(go_duration_nanos(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unknown_placeholder_is_rejected() {
        let d = only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\naddress = \"{{ bind_ip }}\"\n"),
            "services[0].address",
            15,
            "services[0].address = \"{{ bind_ip }}\": unknown placeholder \"{{ bind_ip }}\"; \
             allowed: \"{{ bind_addr }}\", \"{{ node_name }}\", \"{{ address }}\"",
        );
        assert_eq!(d.column, Some(11));
        only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\ntags = [\"{{bind_addr}}\"]\n"),
            "services[0].tags[0]",
            15,
            "(write it as \"{{ bind_addr }}\", one space inside the braces)",
        );
        only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\nmeta = { at = \"{{ node_name \" }\n"),
            "services[0].meta.at",
            15,
            "\"{{\" without a closing \"}}\"",
        );
        only(
            &doc(
                "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n\
                 tcp = \"{{ GetPrivateIP }}:80\"\ninterval = \"10s\"\n",
            ),
            "services[0].checks[0].tcp",
            16,
            "unknown placeholder \"{{ GetPrivateIP }}\"",
        );
    }

    #[test]
    fn bad_service_values_are_rejected() {
        let svc = "[[services]]\nname = \"web\"\non = \"s1\"\n";
        for (body, key, needle) in [
            ("port = 0", "port", "expected an integer from 1 to 65535"),
            (
                "tags = [\"http\", \"http\"]",
                "tags[1]",
                "given twice (also services[0].tags[0])",
            ),
            ("tags = [\"\"]", "tags[0]", "tags must not be empty"),
            (
                "meta = { \"te am\" = \"x\" }",
                "meta.\"te am\"",
                "invalid meta key \"te am\"",
            ),
            (
                "meta = { consul-x = \"x\" }",
                "meta.consul-x",
                "reserved for Consul",
            ),
            ("meta = { team = 1 }", "meta.team", "expected a string"),
            ("meta = \"team=db\"", "meta", "expected a table of strings"),
            ("address = \"\"", "address", "not an empty string"),
        ] {
            only(
                &doc(&format!("{svc}{body}\n")),
                &format!("services[0].{key}"),
                15,
                needle,
            );
        }
    }

    #[test]
    fn unknown_service_key_is_rejected() {
        only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\ncheck = []\n"),
            "services[0].check",
            15,
            "unknown key; did you mean \"checks\"?",
        );
        only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\ntcp = \"x:1\"\ninterval = \"1s\"\nttl = \"5s\"\n"),
            "services[0].checks[0].ttl",
            18,
            "unknown key",
        );
        only(
            &doc("[services]\nname = \"web\"\n"),
            "services",
            12,
            "services = a table: expected an array of tables",
        );
    }

    #[test]
    fn duplicate_service_id_on_a_host_is_rejected() {
        let text = with_client(
            "[[services]]\nname = \"web\"\non = \"role:server\"\n\
             [[services]]\nname = \"api\"\nid = \"web\"\non = \"s2,c1\"\n\
             [[services]]\nname = \"web\"\non = \"c1\"\n",
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 2, "{}", render(&inv_path(), &diags));
        let d = check(
            &diags,
            "services[1].id",
            18,
            "services[1].id = \"web\": duplicate service id on host s2: services[0] (line 14) \
             has the same id and is attached there too",
        );
        assert_eq!(d.column, Some(6));
        // Without an id, the name is the id.
        check(
            &diags,
            "services[2].name",
            21,
            "services[2].name = \"web\": duplicate service id on host c1: services[1] (line 18)",
        );
        // The same id on different hosts is fine.
        let c = ok(&with_client(
            "[[services]]\nname = \"web\"\non = \"role:server\"\n\
             [[services]]\nname = \"web\"\non = \"c1\"\nport = 8080\n",
        ));
        assert_eq!(c.host("c1").unwrap().services[0].port, Some(8080));
        // Several hosts in one message.
        let diags = errs(&doc(
            "[[services]]\nname = \"web\"\non = \"s1,s2\"\n[[services]]\nname = \"web\"\n\
             on = \"role:server\"\n",
        ));
        check(
            &diags,
            "services[1].name",
            16,
            "duplicate service id on hosts s1, s2: services[0] (line 13)",
        );
    }

    #[test]
    fn script_check_with_script_checks_switched_off_is_a_warning() {
        let text = doc(
            "[[services]]\nname = \"ntp\"\non = \"s1\"\n[[services.checks]]\n\
             args = [\"/usr/local/consul/script/check_udp.sh\"]\ninterval = \"60s\"\n",
        );
        // consulctl switches local script checks on by itself.
        let c = ok(&text);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let off = format!("{text}[servers]\nconfig = {{ enable_local_script_checks = false }}\n");
        let c = ok(&off);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "services[0].checks[0].args (line 16): a script check, but the config of s1 \
                 sets enable_local_script_checks = false"
            ),
            "{:?}",
            c.warnings
        );
        let c = ok(&format!(
            "{text}[servers]\nconfig = {{ enable_local_script_checks = false, enable_script_checks = true }}\n"
        ));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn service_problems_are_reported_even_when_a_host_has_problems() {
        let text = format!(
            "{}{HEAD}[[services]]\nname = \"web\"\non = \"s9\"\n",
            THREE.replace("10.0.0.2", "10.0.0.256")
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 2, "{}", render(&inv_path(), &diags));
        check(&diags, "hosts[1].address", 3, "not a valid IP address");
        check(&diags, "services[0].on", 14, "no host is named `s9`");
    }

    #[test]
    fn load_reports_every_dns_prepare_and_service_problem() {
        let path = fixtures().join("services-errors.toml");
        let err = load(&path).unwrap_err();
        assert_eq!(err.code(), 2);
        let shown = err.to_string();
        let p = path.display();
        let expected = [
            format!("16 problems in {p}:"),
            format!("  {p}:13:28: dns.nameservers[1] = \"ns1.example\": expected an IP address"),
            format!("  {p}:14:26: dns.search[1] = \"bad_domain.example\": expected a DNS domain"),
            format!(
                "  {p}:15:25: dns.options[1] = \"timout:2\": unknown resolv.conf option; did you \
                 mean \"timeout\"?"
            ),
            format!(
                "  {p}:15:37: dns.options[2] = \"attempts:9\": expected attempts:N with N a whole \
                 number from 1 to 5"
            ),
            format!(
                "  {p}:16:11: dns.forward = \"systemd\": expected one of \"auto\", \"dnsmasq\""
            ),
            format!(
                "  {p}:17:15: dns.resolv_conf = \"etc/resolv.conf\": expected an absolute path"
            ),
            format!(
                "  {p}:20:29: prepare.disable_services[1] = \"rpc bind\": expected a systemd unit \
                 name"
            ),
            format!("  {p}:21:24: prepare.packages[1] = \"dnsmasq=2.80\": expected a package name"),
            format!("  {p}:28:1: services[0].on: missing required key"),
            format!("  {p}:33:6: services[1].on = \"s1,db9\": no host is named `db9`"),
            format!("  {p}:34:8: services[1].port = 70000: expected an integer from 1 to 65535"),
            format!(
                "  {p}:35:11: services[1].address = \"{{{{ bind_ip }}}}\": unknown placeholder"
            ),
            format!("  {p}:37:1: services[1].checks[0]: \"tcp\" and \"http\" given together"),
            format!("  {p}:42:1: services[1].checks[1]: no check kind"),
            format!("  {p}:43:12: services[1].checks[1].interval = \"10\": expected a Go duration"),
            format!(
                "  {p}:50:8: services[3].name = \"api\": duplicate service id on host s1: \
                 services[2] (line 46)"
            ),
        ];
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{shown}");
        for (got, want) in lines.iter().zip(&expected) {
            assert!(
                got.starts_with(want.as_str()),
                "want `{want}`, got `{got}`\nall:\n{shown}"
            );
        }
    }

    // ---- collecting, rendering, load ------------------------------------------------------

    #[test]
    fn load_reports_every_problem_as_one_input_error() {
        let path = fixtures().join("many-errors.toml");
        let err = load(&path).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(matches!(err, Error::Input(_)));
        let shown = err.to_string();
        let p = path.display();
        let expected = [
            format!("9 problems in {p}:"),
            format!("  {p}:5:14: cluster.datacenter = \"Up Yun\": expected lowercase letters"),
            format!("  {p}:6:1: cluster.log_levl: unknown key; did you mean \"log_level\"?"),
            format!("  {p}:9:11: consul.version = \"1.8\": expected MAJOR.MINOR.PATCH"),
            format!("  {p}:10:10: consul.source.sha256: missing required key"),
            format!(
                "  {p}:10:18: consul.source.url = \"ftp://mirror/consul.zip\": expected an \
                 http:// or https:// URL"
            ),
            format!(
                "  {p}:15:8: hosts[0].role = \"master\": expected one of \"server\", \"client\""
            ),
            format!(
                "  {p}:18:8: hosts[1].name = \"server1\": duplicate host name, already used by \
                 hosts[0] (line 13)"
            ),
            format!("  {p}:19:11: hosts[1].address = \"192.168.30.11\": duplicate host address"),
            format!("  {p}:21:16: hosts[1].ssh.port = 0: expected an integer from 1 to 65535"),
        ];
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{shown}");
        for (got, want) in lines.iter().zip(&expected) {
            assert!(
                got.starts_with(want.as_str()),
                "want `{want}`, got `{got}`\nall:\n{shown}"
            );
        }
    }

    #[test]
    fn load_of_a_missing_file_is_an_input_error() {
        let err = load(&fixtures().join("does-not-exist.toml")).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err
            .to_string()
            .contains("does-not-exist.toml: cannot read the inventory"));
    }
}
