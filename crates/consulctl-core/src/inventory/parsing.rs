//! Step 2: TOML document -> raw structs with serde, reporting (and dropping) every key serde
//! rejects so that all of them are found in one run.

use super::*;

/// The top-level keys, for the hint when one of them ends up inside a table.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &[
    "cluster",
    "consul",
    "ssh",
    "paths",
    "config",
    "dns",
    "prepare",
    "servers",
    "clients",
    "hosts",
    "services",
    "registrar",
    "lb",
];

/// The key path of the key or value at exactly `span`.
pub(super) fn locate(item: &Item, span: &Range<usize>, path: &KeyPath) -> Option<KeyPath> {
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
pub(super) fn remove(root: &mut Item, path: &KeyPath) -> bool {
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

impl Ctx<'_> {
    /// Deserialize the raw structs, reporting (and dropping) every key serde rejects.
    pub(super) fn deserialize(&mut self) -> Option<raw::Inventory> {
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

    pub(super) fn serde_message(&self, message: &str, at: &KeyPath) -> String {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::test_support::*;

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
}
