//! Ansible's INI inventory: `[group]` sections of host lines (`name key=value ...`, host
//! ranges, `name:PORT`), `[group:vars]` sections of `key=value` lines and `[group:children]`
//! sections of group names. Hosts above the first section are `ungrouped`.

use std::path::Path;

use super::groups::{Groups, Var, Vars, UNGROUPED};
use super::{problem, ranges};
use crate::inventory::Diagnostic;

/// The section a line belongs to.
enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
    /// After a header that could not be read: its lines are not taken for another section's.
    Unknown,
}

impl Section {
    fn group(&self) -> Option<&str> {
        match self {
            Section::Hosts(g) | Section::Vars(g) | Section::Children(g) => Some(g),
            Section::Unknown => None,
        }
    }
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Groups, Vec<Diagnostic>> {
    let mut groups = Groups::default();
    let mut diags = Vec::new();
    let mut section = Section::Hosts(UNGROUPED.to_owned());
    for (i, raw) in text.lines().enumerate() {
        let n = Some(i + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = match header(line) {
                Ok(s) => {
                    if let Some(g) = s.group() {
                        groups.group(g, n);
                    }
                    s
                }
                Err(why) => {
                    diags.push(problem(path, n, "", why));
                    Section::Unknown
                }
            };
            continue;
        }
        let result = match &section {
            Section::Hosts(group) => host_line(line, n).map(|(names, vars)| {
                for name in names {
                    groups.host(group, &name, n, vars.clone());
                }
            }),
            Section::Vars(group) => var_line(line, n).map(|(k, v)| {
                groups.group(group, n).vars.push((k, v));
            }),
            Section::Children(group) => match split(line) {
                Ok(words) if words.len() == 1 => {
                    groups.child(group, &words[0], n);
                    Ok(())
                }
                Ok(_) => Err(format!(
                    "`{line}`: expected one group name per line in [{group}:children]"
                )),
                Err(e) => Err(e),
            },
            Section::Unknown => Ok(()),
        };
        if let Err(why) = result {
            diags.push(problem(path, n, "", why));
        }
    }
    if diags.is_empty() {
        Ok(groups)
    } else {
        Err(diags)
    }
}

/// `[group]`, `[group:vars]` or `[group:children]`, a comment allowed after it.
fn header(line: &str) -> Result<Section, String> {
    const FORMS: &str = "expected [GROUP], [GROUP:vars] or [GROUP:children]";
    let Some(close) = line.find(']') else {
        return Err(format!("`{line}`: a section header without `]`; {FORMS}"));
    };
    let rest = line[close + 1..].trim_start();
    if !(rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')) {
        return Err(format!("`{line}`: text after the section header; {FORMS}"));
    }
    let inner = &line[1..close];
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inner, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("`{line}`: not a group name; {FORMS}"));
    }
    let name = name.to_owned();
    match kind {
        None => Ok(Section::Hosts(name)),
        Some("vars") => Ok(Section::Vars(name)),
        Some("children") => Ok(Section::Children(name)),
        Some(other) => Err(format!("`{line}`: unknown section kind `{other}`; {FORMS}")),
    }
}

/// A host line: the host names its pattern stands for, and its variables (a `:PORT` in the
/// pattern is `ansible_port`).
fn host_line(line: &str, n: Option<usize>) -> Result<(Vec<String>, Vars), String> {
    let words = split(line)?;
    let Some((pattern, rest)) = words.split_first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let (pattern, port) = ranges::split_port(pattern);
    let names = ranges::expand(pattern)?;
    let mut vars = Vec::new();
    if let Some(port) = port {
        vars.push(("ansible_port".to_owned(), text_var(port, n)));
    }
    for word in rest {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "`{word}`: expected key=value after the host name `{pattern}`"
            ));
        };
        vars.push((k.to_owned(), text_var(v, n)));
    }
    Ok((names, vars))
}

/// A `key=value` line of a `:vars` section: the value is the rest of the line (spaces
/// included, as Ansible reads it), or one quoted string; a `#` after a space starts a comment.
fn var_line(line: &str, n: Option<usize>) -> Result<(String, Var), String> {
    let Some((k, v)) = line.split_once('=') else {
        return Err(format!("`{line}`: expected key=value"));
    };
    let key = k.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("`{line}`: expected key=value"));
    }
    let v = v.trim();
    let value = if v.starts_with('"') || v.starts_with('\'') {
        match split(v)?.as_slice() {
            [one] => one.clone(),
            _ => return Err(format!("`{line}`: text after the quoted value")),
        }
    } else {
        match v.find(" #").or_else(|| v.find("\t#")) {
            Some(i) => v[..i].trim_end().to_owned(),
            None => v.to_owned(),
        }
    };
    Ok((key.to_owned(), text_var(&value, n)))
}

fn text_var(value: &str, line: Option<usize>) -> Var {
    Var {
        value: Some(value.to_owned()),
        line,
    }
}

/// Words as a POSIX shell splits them (what Ansible's `shlex.split(line, comments=True)`
/// does): blanks separate, `'...'` and `"..."` quote, `\` escapes, `#` starting a word starts
/// a comment.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => word.push(x),
                        None => return Err(format!("`{line}`: a ' without its closing '")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => word.push(x),
                            Some(x) => {
                                word.push('\\');
                                word.push(x);
                            }
                            None => return Err(format!("`{line}`: a \" without its closing \"")),
                        },
                        Some(x) => word.push(x),
                        None => return Err(format!("`{line}`: a \" without its closing \"")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    word.push(x);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Groups {
        parse(Path::new("hosts.ini"), text).unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn err(text: &str) -> String {
        let d = parse(Path::new("hosts.ini"), text).unwrap_err();
        d.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn value(g: &Groups, host: &str, key: &str) -> Option<String> {
        g.vars(host).get(key).and_then(|v| v.value.clone())
    }

    #[test]
    fn words_split_as_a_shell_does() {
        assert_eq!(
            split(r#"h1 a=1 b="two words" c='x y'  # comment"#).unwrap(),
            ["h1", "a=1", "b=two words", "c=x y"]
        );
        assert_eq!(split(r#"a=x\ y b="q\"q""#).unwrap(), ["a=x y", "b=q\"q"]);
        assert_eq!(split("a=b#c").unwrap(), ["a=b#c"]);
        assert!(split("a='b").is_err());
    }

    #[test]
    fn sections_hosts_vars_and_children() {
        let g = p("loose1\n\
                   [web]  # the web tier\n\
                   web[1:2] ansible_user=deploy\n\
                   db1:2222\n\
                   ; a comment\n\
                   [web:vars]\n\
                   ansible_port = 2200  # inline\n\
                   note=two words\n\
                   [app:children]\n\
                   web\n");
        assert_eq!(g.members(UNGROUPED), ["loose1"]);
        assert_eq!(g.members("app"), ["web1", "web2", "db1"]);
        assert_eq!(value(&g, "web2", "ansible_user").as_deref(), Some("deploy"));
        assert_eq!(value(&g, "web1", "ansible_port").as_deref(), Some("2200"));
        assert_eq!(value(&g, "db1", "ansible_port").as_deref(), Some("2222"));
        assert_eq!(value(&g, "db1", "note").as_deref(), Some("two words"));
        assert_eq!(g.get("web").unwrap().line, Some(2));
        assert_eq!(g.vars("web1")["ansible_user"].line, Some(3));
    }

    #[test]
    fn bad_lines_name_their_line() {
        let e = err("[web]\nw1 ansible_user\n[web:hosts]\nx\n[ok]\ny\n[web:vars]\nnovalue\n");
        assert!(
            e.contains("hosts.ini:2: `ansible_user`: expected key=value"),
            "{e}"
        );
        assert!(
            e.contains("hosts.ini:3: `[web:hosts]`: unknown section kind"),
            "{e}"
        );
        assert!(
            e.contains("hosts.ini:8: `novalue`: expected key=value"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 3, "{e}");
        let e = err("[web\n");
        assert!(
            e.contains("hosts.ini:1: `[web`: a section header without `]`"),
            "{e}"
        );
        let e = err("[a:children]\nb c\n");
        assert!(
            e.contains("hosts.ini:2: `b c`: expected one group name per line"),
            "{e}"
        );
    }
}
