//! Ansible's YAML inventory: groups at the top (usually `all`), each a mapping with `hosts`
//! (host name or pattern -> its variables), `vars` and `children` (group name -> the same
//! shape).
//!
//! serde_yaml_ng gives no positions for values, so the line of a group, a host or a variable
//! is found in the text: the first line at or below its parent's line that starts with the
//! key and a colon. Right for the way inventories are written (one key per line).

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::groups::{Groups, Var, Vars};
use super::{problem, ranges};
use crate::inventory::Diagnostic;

struct Reader<'a> {
    path: &'a Path,
    lines: Vec<&'a str>,
    groups: Groups,
    diags: Vec<Diagnostic>,
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Groups, Vec<Diagnostic>> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let mut d = problem(
            path,
            e.location().map(|l| l.line()),
            "",
            format!("YAML: {e}"),
        );
        d.column = e.location().map(|l| l.column());
        vec![d]
    })?;
    let mut r = Reader {
        path,
        lines: text.lines().collect(),
        groups: Groups::default(),
        diags: Vec::new(),
    };
    match doc {
        Value::Mapping(top) => {
            for (name, body) in &top {
                match key_text(name) {
                    Some(name) => r.group(&name, body, None, 0),
                    None => r.bad(None, "", "expected group names at the top, such as `all:`"),
                }
            }
        }
        Value::Null => r.bad(None, "", "an empty inventory: no groups"),
        _ => r.bad(
            Some(1),
            "",
            "expected a mapping of groups at the top, such as `all:`",
        ),
    }
    if r.diags.is_empty() {
        Ok(r.groups)
    } else {
        Err(r.diags)
    }
}

/// A key as text: strings as they are, numbers and booleans written out.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Reader<'_> {
    fn bad(&mut self, line: Option<usize>, key: &str, why: impl Into<String>) {
        self.diags.push(problem(self.path, line, key, why));
    }

    /// The 1-based line of `key:` at or below line `from` (0: the top).
    fn line_of(&self, key: &str, from: usize) -> Option<usize> {
        let quoted = [format!("\"{key}\":"), format!("'{key}':")];
        self.lines
            .iter()
            .enumerate()
            .skip(from.saturating_sub(1))
            .find(|(_, l)| {
                let t = l.trim_start().trim_start_matches("? ");
                t.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
                    || quoted.iter().any(|q| t.starts_with(q.as_str()))
            })
            .map(|(i, _)| i + 1)
    }

    /// The group `name` with `body` (a mapping or nothing), a child of `parent`.
    fn group(&mut self, name: &str, body: &Value, parent: Option<&str>, from: usize) {
        let line = self.line_of(name, from);
        self.groups.group(name, line);
        if let Some(p) = parent {
            self.groups.child(p, name, line);
        }
        let here = line.unwrap_or(from);
        let body = match body {
            Value::Null => return,
            Value::Mapping(m) => m,
            _ => {
                self.bad(
                    line,
                    name,
                    "expected a mapping with hosts, vars and children (or nothing)",
                );
                return;
            }
        };
        for (k, v) in body {
            match k.as_str() {
                Some("hosts") => self.hosts(name, v, here),
                Some("vars") => {
                    let vars = self.vars(name, v, here);
                    self.groups.group(name, None).vars.extend(vars);
                }
                Some("children") => match v {
                    Value::Null => {}
                    Value::Mapping(children) => {
                        for (child, body) in children {
                            match key_text(child) {
                                Some(child) => self.group(&child, body, Some(name), here),
                                None => self.bad(line, name, "expected group names in children"),
                            }
                        }
                    }
                    _ => self.bad(line, name, "children: expected a mapping of group names"),
                },
                _ => {
                    let k = key_text(k).unwrap_or_else(|| format!("{k:?}"));
                    self.bad(
                        self.line_of(&k, here),
                        name,
                        format!("unknown key `{k}` (allowed here: hosts, vars, children)"),
                    );
                }
            }
        }
    }

    fn hosts(&mut self, group: &str, v: &Value, from: usize) {
        let hosts: &Mapping = match v {
            Value::Null => return,
            Value::Mapping(m) => m,
            _ => {
                let line = self.line_of("hosts", from);
                self.bad(line, group, "hosts: expected a mapping of host names");
                return;
            }
        };
        for (k, vars) in hosts {
            let Some(pattern) = key_text(k) else {
                self.bad(
                    self.line_of("hosts", from),
                    group,
                    "expected host names in hosts",
                );
                continue;
            };
            let line = self.line_of(&pattern, from);
            let mut own = self.vars(&pattern, vars, line.unwrap_or(from));
            let (names, port) = ranges::split_port(&pattern);
            if let Some(port) = port {
                own.insert(
                    0,
                    (
                        "ansible_port".to_owned(),
                        Var {
                            value: Some(port.to_owned()),
                            line,
                        },
                    ),
                );
            }
            match ranges::expand(names) {
                Ok(names) => {
                    for name in names {
                        self.groups.host(group, &name, line, own.clone());
                    }
                }
                Err(why) => self.bad(line, group, why),
            }
        }
    }

    /// The variables of a mapping (nothing: none); nulls are left out.
    fn vars(&mut self, owner: &str, v: &Value, from: usize) -> Vars {
        let m = match v {
            Value::Null => return Vec::new(),
            Value::Mapping(m) => m,
            _ => {
                let line = self.line_of(owner, from);
                self.bad(line, owner, "expected a mapping of variables");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (k, v) in m {
            let Some(k) = key_text(k) else {
                continue;
            };
            let value = match v {
                Value::Null => continue,
                Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => None,
                other => key_text(other),
            };
            let line = self.line_of(&k, from);
            out.push((k, Var { value, line }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let d = parse(Path::new("hosts.yml"), text).unwrap_err();
        d.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn groups_hosts_vars_children_with_lines() {
        let text = "all:\n\
                    \x20 vars:\n\
                    \x20   ansible_user: centos\n\
                    \x20 children:\n\
                    \x20   consul_servers:\n\
                    \x20     hosts:\n\
                    \x20       s[1:2]:\n\
                    \x20         ansible_port: 2222\n\
                    \x20       s3:2200:\n\
                    \x20   web:\n\
                    \x20     hosts:\n\
                    \x20       s3: {ansible_host: 10.0.0.3, tags: [a, b], none: ~}\n";
        let g = parse(Path::new("hosts.yml"), text).unwrap();
        assert_eq!(g.members("consul_servers"), ["s1", "s2", "s3"]);
        assert_eq!(g.members("web"), ["s3"]);
        assert_eq!(g.get("web").unwrap().line, Some(10));
        let v = g.vars("s2");
        assert_eq!(v["ansible_user"].value.as_deref(), Some("centos"));
        assert_eq!(v["ansible_user"].line, Some(3));
        assert_eq!(v["ansible_port"].value.as_deref(), Some("2222"));
        assert_eq!(v["ansible_port"].line, Some(8));
        let v = g.vars("s3");
        assert_eq!(v["ansible_port"].value.as_deref(), Some("2200"));
        assert_eq!(v["ansible_host"].value.as_deref(), Some("10.0.0.3"));
        assert_eq!(v["tags"].value, None);
        assert!(!v.contains_key("none"));
        assert_eq!(g.host_entry("s3").unwrap().line, Some(9));
    }

    #[test]
    fn bad_shapes_name_the_line() {
        let e = err("all:\n  children:\n    web:\n      host:\n        w1:\n");
        assert!(
            e.contains(
                "hosts.yml:4: web: unknown key `host` (allowed here: hosts, vars, children)"
            ),
            "{e}"
        );
        let e = err("all:\n  hosts:\n    - w1\n");
        assert!(
            e.contains("hosts.yml:2: all: hosts: expected a mapping of host names"),
            "{e}"
        );
        let e = err("all:\n  hosts: {w1: 1\n");
        assert!(e.starts_with("hosts.yml:"), "{e}");
        assert!(e.contains("YAML: "), "{e}");
        let e = err("- a\n- b\n");
        assert!(e.contains("expected a mapping of groups at the top"), "{e}");
    }
}
