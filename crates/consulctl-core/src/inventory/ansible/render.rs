//! The imported hosts as a consulctl inventory (toml_edit): the `--base` inventory's tables
//! (or the defaults below) with its `[[hosts]]` replaced by the imported ones.
//!
//! A setting every host has a value for (the SSH user, say) goes once into `[ssh]` or
//! `[cluster]` with its most common value, unless the base gives it there or in a role table
//! already; each host whose value differs from what it would inherit gets it on its own entry.

use std::path::Path;

use toml_edit::{value, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::hosts::{Host, Key, Setting};
use super::problem;
use crate::inventory::diagnostics::line_col;
use crate::inventory::Diagnostic;

/// The Consul version of the documentation's examples.
const DEFAULT_VERSION: &str = "1.21.0";

/// What an import without `--base` starts from: Consul's default datacenter, the version of
/// the examples, from the hosts' package manager.
fn defaults() -> String {
    format!(
        "[cluster]\ndatacenter = \"dc1\"\n\n[consul]\nversion = \"{DEFAULT_VERSION}\"\n\
         source = {{ package = \"auto\" }}\n"
    )
}

/// The inventory text: `header`, then `base`'s tables (or the defaults) and the hosts.
pub(super) fn document(
    hosts: &[Host],
    base: Option<(&Path, &str)>,
    header: &str,
) -> Result<String, Vec<Diagnostic>> {
    let defaults = defaults();
    let (path, text) = base.unwrap_or((Path::new("(defaults)"), &defaults));
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let line = e.span().map(|s| line_col(text, s.start).0);
        let message = e.message().lines().next().unwrap_or("").trim().to_owned();
        vec![problem(
            path,
            line,
            "",
            format!("TOML syntax error: {message}"),
        )]
    })?;
    doc.remove("hosts");

    let role_table = |h: &Host| {
        if h.role == "server" {
            "servers"
        } else {
            "clients"
        }
    };
    // What a host would get from the base without a value of its own.
    let inherited = |doc: &DocumentMut, key: Key, role: &str| -> Option<Setting> {
        let (sub, k) = key.host();
        let in_role = match sub {
            Some(sub) => lookup(doc, &[role, sub, k]),
            None => lookup(doc, &[role, k]),
        };
        in_role.or_else(|| key.cluster().and_then(|(t, k)| lookup(doc, &[t, k])))
    };
    for key in Key::ALL {
        let Some((table, k)) = key.cluster() else {
            continue;
        };
        let values: Option<Vec<&Setting>> = hosts.iter().map(|h| h.setting(key)).collect();
        let Some(values) = values else {
            continue; // a host without a value keeps ssh_config's or the default
        };
        let inherits = hosts
            .iter()
            .any(|h| inherited(&doc, key, role_table(h)).is_some());
        // A base whose `ssh` is no table is the loader's to report.
        if inherits || !doc.get(table).map_or(true, Item::is_table_like) {
            continue;
        }
        if let Some(most) = most_common(&values) {
            if doc.get(table).is_none() {
                let t = new_table(&doc);
                doc.insert(table, Item::Table(t));
            }
            doc[table][k] = setting_item(most);
        }
    }

    let mut entries = ArrayOfTables::new();
    for h in hosts {
        let mut t = Table::new();
        t.decor_mut().set_prefix("\n");
        t["name"] = value(&h.name);
        t["address"] = value(&h.address);
        t["role"] = value(h.role);
        if !h.tags.is_empty() {
            t["tags"] = value(h.tags.iter().collect::<toml_edit::Array>());
        }
        let mut ssh = InlineTable::new();
        for key in Key::ALL {
            let Some(s) = h.setting(key) else {
                continue;
            };
            if inherited(&doc, key, role_table(h)).as_ref() == Some(s) {
                continue;
            }
            match key.host() {
                (Some(_), k) => {
                    ssh.insert(k, setting_value(s));
                }
                (None, k) => t[k] = setting_item(s),
            }
        }
        if !ssh.is_empty() {
            t["ssh"] = value(ssh);
        }
        entries.push(t);
    }
    doc.insert("hosts", Item::ArrayOfTables(entries));
    Ok(format!("{header}\n{}", doc.to_string().trim_start()))
}

/// A table to add: printed after `[consul]` (where the defaults and most inventories have
/// `[ssh]`), else at the end.
fn new_table(doc: &DocumentMut) -> Table {
    let mut t = Table::new();
    t.decor_mut().set_prefix("\n");
    if let Some(p) = doc
        .get("consul")
        .and_then(Item::as_table)
        .and_then(Table::position)
    {
        t.set_position(p);
    }
    t
}

/// The value most hosts have; on a tie, the one listed first.
fn most_common<'a>(values: &[&'a Setting]) -> Option<&'a Setting> {
    let mut best: Option<(&Setting, usize)> = None;
    for v in values {
        let n = values.iter().filter(|w| *w == v).count();
        if best.map_or(true, |(_, m)| n > m) {
            best = Some((v, n));
        }
    }
    best.map(|(v, _)| v)
}

/// The string or integer at `path` (tables and inline tables alike); other types: none.
fn lookup(doc: &DocumentMut, path: &[&str]) -> Option<Setting> {
    let mut item = doc.as_item();
    for k in path {
        item = item.get(k)?;
    }
    match item.as_value()? {
        Value::String(s) => Some(Setting::Str(s.value().clone())),
        Value::Integer(i) => Some(Setting::Int(*i.value())),
        _ => None,
    }
}

fn setting_value(s: &Setting) -> Value {
    match s {
        Setting::Str(s) => Value::from(s.as_str()),
        Setting::Int(i) => Value::from(*i),
    }
}

fn setting_item(s: &Setting) -> Item {
    Item::Value(setting_value(s))
}
