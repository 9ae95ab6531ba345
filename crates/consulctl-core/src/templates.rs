//! Tera templates, embedded from `templates/`, overridable from a directory.
//!
//! The three templates consulctl renders are compiled into the binary. An operator may replace
//! any of them by putting a file with the same name into an override directory
//! (`Templates::load(Some(dir))`); any other file name there is an error, so a typo never
//! silently falls back to the embedded template.
//!
//! This module also owns the HCL writer ([`hcl_body`]), registered as the Tera filter `hcl`:
//! `{{ config | hcl }}` turns a JSON object into an HCL body that Consul's HCL1 parser and
//! HCL2 parsers (hcl-rs) read the same way.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde_json::{Map, Value};
use tera::Tera;

/// Agent config (`consul.hcl`). Context: `config` (object, rendered with the `hcl` filter),
/// `version`, `role`.
pub const AGENT_CONFIG: &str = "consul.hcl.tera";
/// systemd unit. Context: `binary`, `config_dir`, `config_file`, `user`, `group`.
pub const SYSTEMD_UNIT: &str = "consul.service.tera";
/// supervisord program. Context: `binary`, `config_dir`, `log_dir`, `user`.
pub const SUPERVISOR_PROGRAM: &str = "supervisor-consul.conf.tera";

/// The embedded templates, by file name.
const EMBEDDED: &[(&str, &str)] = &[
    (AGENT_CONFIG, include_str!("../templates/consul.hcl.tera")),
    (
        SYSTEMD_UNIT,
        include_str!("../templates/consul.service.tera"),
    ),
    (
        SUPERVISOR_PROGRAM,
        include_str!("../templates/supervisor-consul.conf.tera"),
    ),
];

pub struct Templates {
    tera: Tera,
    /// Templates replaced from the override directory: name -> file.
    overridden: BTreeMap<String, PathBuf>,
}

impl Templates {
    /// The template names consulctl knows (and that an override directory may contain).
    pub fn names() -> impl Iterator<Item = &'static str> {
        EMBEDDED.iter().map(|(name, _)| *name)
    }

    /// Loads the embedded templates, then replaces each one that has a file of the same name in
    /// `override_dir`. Unknown names in the directory, unreadable files and template syntax
    /// errors are errors naming the file.
    pub fn load(override_dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut sources: BTreeMap<String, (String, Option<PathBuf>)> = EMBEDDED
            .iter()
            .map(|(name, text)| (name.to_string(), (text.to_string(), None)))
            .collect();

        if let Some(dir) = override_dir {
            let entries = std::fs::read_dir(dir).with_context(|| {
                format!(
                    "cannot read the template override directory {}",
                    dir.display()
                )
            })?;
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.with_context(|| {
                    format!(
                        "cannot read the template override directory {}",
                        dir.display()
                    )
                })?;
                found.push(entry.path());
            }
            found.sort();
            for path in found {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| sources.contains_key(*n))
                    .ok_or_else(|| {
                        anyhow!(
                            "unknown template override {}: the files in {} must be named like \
                             one of the embedded templates ({})",
                            path.display(),
                            dir.display(),
                            Self::names().collect::<Vec<_>>().join(", ")
                        )
                    })?
                    .to_string();
                if !path.is_file() {
                    bail!("template override {} is not a regular file", path.display());
                }
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read template override {}", path.display()))?;
                sources.insert(name, (text, Some(path)));
            }
        }

        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        tera.register_filter("hcl", hcl_filter);
        let mut overridden = BTreeMap::new();
        for (name, (text, path)) in sources {
            tera.add_raw_template(&name, &text).map_err(|e| {
                anyhow!(
                    "template {}: {}",
                    describe(&name, path.as_deref()),
                    error_chain(&e)
                )
            })?;
            if let Some(path) = path {
                overridden.insert(name, path);
            }
        }
        Ok(Templates { tera, overridden })
    }

    /// The override file that replaced template `name`, if any.
    pub fn override_path(&self, name: &str) -> Option<&Path> {
        self.overridden.get(name).map(|p| p.as_path())
    }

    /// Renders template `name`. Errors name the template (and its override file if it has one)
    /// and carry Tera's full message (undefined variable, filter error, ...).
    pub fn render(&self, name: &str, ctx: &tera::Context) -> anyhow::Result<String> {
        if !EMBEDDED.iter().any(|(n, _)| *n == name) {
            bail!(
                "no template named {name}; known templates: {}",
                Self::names().collect::<Vec<_>>().join(", ")
            );
        }
        self.tera.render(name, ctx).map_err(|e| {
            anyhow!(
                "cannot render template {}: {}",
                self.describe(name),
                error_chain(&e)
            )
        })
    }

    /// `name` or `name (overridden by /path)`, for messages.
    pub fn describe(&self, name: &str) -> String {
        describe(name, self.override_path(name))
    }
}

fn describe(name: &str, path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("{name} (overridden by {})", p.display()),
        None => format!("{name} (embedded)"),
    }
}

/// Tera's errors keep the useful part (which variable, which filter) in their sources.
fn error_chain(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(msg, ": {s}");
        source = s.source();
    }
    msg
}

fn hcl_filter(value: &Value, _args: &HashMap<String, Value>) -> tera::Result<Value> {
    let map = value
        .as_object()
        .ok_or_else(|| tera::Error::msg("the hcl filter needs an object (a map of config keys)"))?;
    hcl_body(map)
        .map(Value::String)
        .map_err(|e| tera::Error::msg(format!("{e:#}")))
}

// ---------------------------------------------------------------------------------------------
// HCL writer

/// Writes a JSON object as an HCL body (attributes and blocks), deterministically, in the map's
/// order, in the subset of HCL that Consul's HCL1 parser and HCL2 parsers read the same way:
///
/// - objects whose keys are all identifiers become blocks (`ports {` ... `}`), set off by blank
///   lines; objects with other keys (e.g. `node_meta` with `rack.id`) become object
///   expressions with quoted keys (`node_meta = {` ... `}`);
/// - lists of scalars are written inline (`["a", "b"]`), lists holding objects or lists one
///   element per line;
/// - strings are quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\uXXXX` escapes. Strings
///   holding `${` or `%{` are refused: HCL2 reads them as template interpolation, HCL1 does not,
///   so they cannot be written to mean the same thing to both;
/// - `null` is refused (HCL1 has no null).
///
/// The result ends with a newline (unless the map is empty).
pub fn hcl_body(map: &Map<String, Value>) -> anyhow::Result<String> {
    let mut out = String::new();
    write_body(&mut out, map, 0, "")?;
    Ok(out)
}

fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// An HCL identifier both HCL1 and HCL2 accept as an attribute or block name.
fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Keys that HCL2 would read as something else at the start of an object expression item.
fn is_keyword(key: &str) -> bool {
    matches!(key, "true" | "false" | "null" | "for" | "in" | "if")
}

fn is_block(value: &Value) -> bool {
    matches!(value, Value::Object(m) if m.keys().all(|k| is_identifier(k)))
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_body(
    out: &mut String,
    map: &Map<String, Value>,
    level: usize,
    path: &str,
) -> anyhow::Result<()> {
    let mut previous_was_block = false;
    for (i, (key, value)) in map.iter().enumerate() {
        let key_path = join_path(path, key);
        if !is_identifier(key) {
            bail!(
                "config key `{key_path}` cannot be written as HCL: keys must start with a letter \
                 or `_` and hold only letters, digits, `_` and `-`"
            );
        }
        let block = is_block(value);
        if i > 0 && (block || previous_was_block) {
            out.push('\n');
        }
        indent(out, level);
        out.push_str(key);
        match value {
            Value::Object(inner) if block => {
                if inner.is_empty() {
                    out.push_str(" {}\n");
                } else {
                    out.push_str(" {\n");
                    write_body(out, inner, level + 1, &key_path)?;
                    indent(out, level);
                    out.push_str("}\n");
                }
            }
            _ => {
                out.push_str(" = ");
                write_expr(out, value, level, &key_path)?;
                out.push('\n');
            }
        }
        previous_was_block = block;
    }
    Ok(())
}

fn write_expr(out: &mut String, value: &Value, level: usize, path: &str) -> anyhow::Result<()> {
    match value {
        Value::Null => bail!("config key `{path}` is null: HCL has no null value"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s, path)?,
        Value::Array(items) => {
            let simple = items
                .iter()
                .all(|v| !matches!(v, Value::Array(_) | Value::Object(_)));
            if simple {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_expr(out, item, level, &format!("{path}[{i}]"))?;
                }
                out.push(']');
            } else {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    indent(out, level + 1);
                    write_expr(out, item, level + 1, &format!("{path}[{i}]"))?;
                    out.push_str(",\n");
                }
                indent(out, level);
                out.push(']');
            }
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push_str("{\n");
            for (key, item) in map {
                indent(out, level + 1);
                if is_identifier(key) && !is_keyword(key) {
                    out.push_str(key);
                } else {
                    write_string(out, key, &join_path(path, key))?;
                }
                out.push_str(" = ");
                write_expr(out, item, level + 1, &join_path(path, key))?;
                out.push('\n');
            }
            indent(out, level);
            out.push('}');
        }
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str, path: &str) -> anyhow::Result<()> {
    if s.contains("${") || s.contains("%{") {
        bail!(
            "config key `{path}`: the value {s:?} holds `${{` or `%{{`, which Consul's HCL1 \
             parser and HCL2 read differently; consulctl does not write such strings"
        );
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn writes_blocks_lists_and_quoted_strings() {
        let map = obj(json!({
            "datacenter": "dc1",
            "retry_join": ["10.0.0.1", "10.0.0.2"],
            "server": true,
            "bootstrap_expect": 3,
            "ports": {"dns": -1},
            "node_meta": {"rack.id": "r1", "zone": "a"},
            "empty": {},
            "log_file": "a \"quoted\" \\ path\n",
            "checks": [{"tcp": "127.0.0.1:22", "interval": "10s"}],
            "after": "x",
        }));
        let text = hcl_body(&map).unwrap();
        insta::assert_snapshot!("hcl_body_shapes", text);
        // hcl-rs reads it back to the same data.
        let back: Value = hcl::from_str(&text).unwrap();
        assert_eq!(back, Value::Object(map));
    }

    #[test]
    fn refuses_null_interpolation_and_bad_keys() {
        let err = hcl_body(&obj(json!({"dns_config": {"x": null}}))).unwrap_err();
        assert!(err.to_string().contains("`dns_config.x` is null"), "{err}");
        let err = hcl_body(&obj(json!({"node_meta": {"a": "${foo}"}}))).unwrap_err();
        assert!(err.to_string().contains("`node_meta.a`"), "{err}");
        let err = hcl_body(&obj(json!({"bad key": 1}))).unwrap_err();
        assert!(err.to_string().contains("`bad key`"), "{err}");
    }

    #[test]
    fn keywords_and_odd_keys_are_quoted_in_object_expressions() {
        let map = obj(json!({"meta": {"for": "x", "a b": "y"}}));
        let text = hcl_body(&map).unwrap();
        assert!(text.contains("\"for\" = \"x\""), "{text}");
        let back: Value = hcl::from_str(&text).unwrap();
        assert_eq!(back, Value::Object(map));
    }

    #[test]
    fn embedded_templates_load_and_render() {
        let t = Templates::load(None).unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("binary", "/usr/local/bin/consul");
        ctx.insert("config_dir", "/etc/consul.d");
        ctx.insert("config_file", "/etc/consul.d/consul.hcl");
        let unit = t.render(SYSTEMD_UNIT, &ctx).unwrap();
        assert!(unit.starts_with("# Managed by consulctl"), "{unit}");
        assert!(unit.contains("User=root\n"), "{unit}");
        assert!(t.override_path(SYSTEMD_UNIT).is_none());
    }

    #[test]
    fn render_errors_name_the_template() {
        let t = Templates::load(None).unwrap();
        let err = t.render(SYSTEMD_UNIT, &tera::Context::new()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("consul.service.tera (embedded)"), "{msg}");
        assert!(msg.contains("not found in context"), "{msg}");
        let err = t.render("nope.tera", &tera::Context::new()).unwrap_err();
        assert!(err.to_string().contains("known templates"), "{err}");
    }

    #[test]
    fn a_file_in_the_override_dir_replaces_the_embedded_template() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SYSTEMD_UNIT);
        std::fs::write(&path, "# custom unit for {{ binary }}\n").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(t.override_path(SYSTEMD_UNIT), Some(path.as_path()));
        let mut ctx = tera::Context::new();
        ctx.insert("binary", "/opt/consul/bin/consul");
        let unit = t.render(SYSTEMD_UNIT, &ctx).unwrap();
        assert_eq!(unit, "# custom unit for /opt/consul/bin/consul\n");
        // The others stay embedded.
        assert!(t.override_path(AGENT_CONFIG).is_none());

        // Errors in an overridden template name the override file.
        let err = t.render(SYSTEMD_UNIT, &tera::Context::new()).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_file_in_the_override_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("consul.servce.tera"), "x").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("consul.servce.tera"), "{msg}");
        for name in Templates::names() {
            assert!(msg.contains(name), "{msg}");
        }
    }

    #[test]
    fn a_syntax_error_in_an_override_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SUPERVISOR_PROGRAM);
        std::fs::write(&path, "{{ binary ").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let missing = dir.path().join("does-not-exist");
        let err = Templates::load(Some(&missing)).err().unwrap();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }
}
