//! The JSON Schema (draft-07) of the inventory file, for TOML editors: taplo and Even Better
//! TOML complete keys, show each key's description on hover and flag unknown keys, wrong types
//! and values outside an enum while the file is typed. `consulctl inventory schema` prints it;
//! `docs/consulctl.schema.json` is a copy to point editors at.
//!
//! The loader stays the truth: the schema checks the shape (keys, types, enums, simple
//! patterns and ranges) and leaves to `consulctl inventory check` what needs more than one
//! value or the file system (duplicates across hosts, `on` selectors, bind addresses, local
//! files). It is written by hand in `schema.json` so that every key has a description; the
//! tests below keep it equal to the `raw` structs, key for key, and accepting every example.

/// The inventory's JSON Schema (draft-07), as a JSON document.
pub const SCHEMA: &str = include_str!("schema.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fmt;
    use std::path::{Path, PathBuf};

    use serde::de::{self, Deserialize, Visitor};
    use serde_json::Value as Json;

    use super::SCHEMA;
    use crate::inventory::raw;

    // ---- the field names of a raw struct ----------------------------------------------------

    /// Why [`Recorder`] stopped: the fields `deserialize_struct` was given, if it was called.
    #[derive(Debug)]
    struct Stop(Option<&'static [&'static str]>);

    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "stopped with fields {:?}", self.0)
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Stop(None)
        }
    }

    /// A deserializer that feeds nothing: `#[derive(Deserialize)]` on a struct calls
    /// `deserialize_struct(name, FIELDS, visitor)`, and this one answers with `FIELDS`.
    struct Recorder;

    impl<'de> de::Deserializer<'de> for Recorder {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop(None))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Stop> {
            Err(Stop(Some(fields)))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    /// The keys the loader accepts in the table `T` reads.
    fn fields<T: for<'de> Deserialize<'de>>() -> BTreeSet<String> {
        match T::deserialize(Recorder) {
            Err(Stop(Some(fields))) => fields.iter().map(|f| f.to_string()).collect(),
            _ => panic!("not a struct: {}", std::any::type_name::<T>()),
        }
    }

    /// Every table of the file: where the schema describes it, and the keys of its raw struct.
    fn tables() -> Vec<(&'static str, BTreeSet<String>)> {
        vec![
            ("", fields::<raw::Inventory>()),
            ("/definitions/cluster", fields::<raw::Cluster>()),
            ("/definitions/consul", fields::<raw::Consul>()),
            ("/definitions/source", fields::<raw::Source>()),
            ("/definitions/ssh", fields::<raw::Ssh>()),
            ("/definitions/paths", fields::<raw::Paths>()),
            ("/definitions/role", fields::<raw::Role>()),
            ("/definitions/host", fields::<raw::Host>()),
            ("/definitions/dns", fields::<raw::Dns>()),
            ("/definitions/prepare", fields::<raw::Prepare>()),
            ("/definitions/service", fields::<raw::Service>()),
            ("/definitions/check", fields::<raw::Check>()),
            ("/definitions/registrar", fields::<raw::Registrar>()),
            ("/definitions/lb", fields::<raw::Lb>()),
            ("/definitions/lb_balance", fields::<raw::LbBalance>()),
            ("/definitions/lb_nginx", fields::<raw::LbNginx>()),
            ("/definitions/lb_haproxy", fields::<raw::LbHaproxy>()),
            ("/definitions/lb_template", fields::<raw::LbTemplate>()),
        ]
    }

    fn schema() -> Json {
        serde_json::from_str(SCHEMA).expect("schema.json is JSON")
    }

    fn keys(v: &Json) -> BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every closed table (`additionalProperties: false`) in the schema, by JSON pointer.
    fn closed_tables(v: &Json, at: &str, out: &mut Vec<String>) {
        match v {
            Json::Object(o) => {
                if o.get("additionalProperties") == Some(&Json::Bool(false)) {
                    out.push(at.to_owned());
                }
                for (k, x) in o {
                    closed_tables(
                        x,
                        &format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Json::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    closed_tables(x, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_table_has_exactly_the_keys_of_its_raw_struct() {
        let schema = schema();
        let tables = tables();
        let mut problems = Vec::new();
        for (pointer, fields) in &tables {
            let table = schema
                .pointer(pointer)
                .unwrap_or_else(|| panic!("no {pointer:?}"));
            assert_eq!(
                table.get("additionalProperties"),
                Some(&Json::Bool(false)),
                "{pointer:?}: unknown keys must be refused, as the loader does"
            );
            let props = keys(&table["properties"]);
            for missing in fields.difference(&props) {
                problems.push(format!(
                    "{pointer:?}: the loader reads `{missing}`, the schema lacks it"
                ));
            }
            for extra in props.difference(fields) {
                problems.push(format!(
                    "{pointer:?}: the schema has `{extra}`, the loader refuses it"
                ));
            }
        }
        let mut closed = Vec::new();
        closed_tables(&schema, "", &mut closed);
        for pointer in closed {
            if !tables.iter().any(|(p, _)| *p == pointer) {
                problems.push(format!(
                    "{pointer:?}: a closed table no raw struct is checked against"
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "schema.json and raw.rs differ:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn constraints_name_only_keys_of_the_tables_they_constrain() {
        // `properties` beside a `$ref` in an `allOf` (`[registrar]` has no `enabled`), and
        // inside `oneOf` (the forms of `source`), may only name keys the table has.
        let schema = schema();
        let props_of = |v: &Json| -> BTreeSet<String> {
            match v.get("$ref").and_then(Json::as_str) {
                Some(r) => keys(&schema.pointer(r.trim_start_matches('#')).unwrap()["properties"]),
                None => keys(&v["properties"]),
            }
        };
        let mut checked = 0;
        let mut stack = vec![&schema];
        while let Some(v) = stack.pop() {
            match v {
                Json::Object(o) => {
                    for (word, base) in [("allOf", None), ("oneOf", Some(v))] {
                        let Some(Json::Array(parts)) = o.get(word) else {
                            continue;
                        };
                        let of: BTreeSet<String> = match base {
                            Some(b) => props_of(b),
                            None => parts
                                .iter()
                                .filter(|p| p.get("$ref").is_some())
                                .flat_map(props_of)
                                .collect(),
                        };
                        for p in parts.iter().filter(|p| p.get("$ref").is_none()) {
                            let named = keys(&p["properties"]);
                            assert!(named.is_subset(&of), "{named:?} not all in {of:?}");
                            checked += 1;
                        }
                    }
                    stack.extend(o.values());
                }
                Json::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        assert!(checked >= 7, "{checked}");
    }

    // ---- validating documents -----------------------------------------------------------

    /// The compiled schema (its draft-07 meta-schema checked on the way).
    struct Validator {
        schemas: boon::Schemas,
        index: boon::SchemaIndex,
    }

    impl Validator {
        fn new() -> Validator {
            let mut schemas = boon::Schemas::new();
            let mut compiler = boon::Compiler::new();
            let url = "https://consulctl.invalid/consulctl.schema.json";
            compiler.add_resource(url, schema()).unwrap();
            let index = compiler
                .compile(url, &mut schemas)
                .unwrap_or_else(|e| panic!("schema.json does not compile: {e:#}"));
            Validator { schemas, index }
        }

        /// Why the schema refuses the TOML `text`, if it does.
        fn errors(&self, text: &str) -> Option<String> {
            let value: toml::Value = toml::from_str(text).expect("TOML");
            let json = serde_json::to_value(value).unwrap();
            self.schemas
                .validate(&json, self.index)
                .err()
                .map(|e| format!("{e:#}"))
        }
    }

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn toml_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_inventory_the_loader_accepts_validates() {
        let v = Validator::new();
        let mut checked = Vec::new();
        for dir in [
            repo().join("inventory"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory"),
        ] {
            for path in toml_files(&dir) {
                let text = std::fs::read_to_string(&path).unwrap();
                if crate::inventory::parse(&path, &text).is_err() {
                    continue; // the fixtures made to hold errors
                }
                if let Some(e) = v.errors(&text) {
                    panic!("{} loads but the schema refuses it:\n{e}", path.display());
                }
                checked.push(path);
            }
        }
        assert!(checked.len() >= 3, "{checked:?}");
    }

    /// `[cluster]`, `[consul]` and one host: what the documentation's fragments are added to.
    const MINIMAL: &str = "[cluster]\ndatacenter = \"dc1\"\n[consul]\nversion = \"1.21.0\"\n\
                           source = { package = \"auto\" }\n[[hosts]]\nname = \"s1\"\n\
                           address = \"10.0.0.1\"\nrole = \"server\"\n";

    /// `add` into `base`: tables key by key, arrays of tables appended, values replaced.
    fn merge(base: &mut toml::Table, add: toml::Table) {
        for (k, v) in add {
            match (base.get_mut(&k), v) {
                (Some(toml::Value::Table(b)), toml::Value::Table(a)) => merge(b, a),
                (Some(toml::Value::Array(b)), toml::Value::Array(a)) => b.extend(a),
                (_, v) => {
                    base.insert(k, v);
                }
            }
        }
    }

    /// The ```toml blocks of a Markdown file, with their first line number.
    fn toml_blocks(text: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut block: Option<(usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            match &mut block {
                None if line.trim_start().starts_with("```toml") => {
                    block = Some((n + 2, String::new()))
                }
                None => {}
                Some(_) if line.trim_start().starts_with("```") => out.extend(block.take()),
                Some((_, b)) => {
                    b.push_str(line);
                    b.push('\n');
                }
            }
        }
        out
    }

    #[test]
    fn every_example_in_the_documentation_validates() {
        // Whole inventories as they are, fragments added to a minimal inventory. Blocks that
        // are not one TOML document (alternatives of one key), the outline of tables and other
        // tools' files (no inventory table at all) are not examples of an inventory.
        let v = Validator::new();
        let tables = keys(&schema()["properties"]);
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        files.push(repo().join("README.md"));
        files.sort();
        let mut checked = 0;
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for (line, block) in toml_blocks(&text) {
                let Ok(table) = block.parse::<toml::Table>() else {
                    continue;
                };
                let empty = |v: &toml::Value| v.as_table().is_some_and(toml::Table::is_empty);
                let outline = table
                    .values()
                    .all(|v| empty(v) || v.as_array().is_some_and(|a| a.iter().all(empty)));
                if outline || !table.keys().any(|k| tables.contains(k)) {
                    continue;
                }
                let whole = ["cluster", "consul", "hosts"]
                    .iter()
                    .all(|k| table.contains_key(*k));
                let doc = if whole {
                    table
                } else {
                    let mut doc: toml::Table = MINIMAL.parse().unwrap();
                    merge(&mut doc, table);
                    doc
                };
                let text = toml::to_string(&doc).unwrap();
                if let Some(e) = v.errors(&text) {
                    panic!(
                        "{}:{line}: the schema refuses this example:\n{block}\n{e}",
                        path.display()
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} examples found");
    }

    #[test]
    fn what_the_loader_refuses_for_its_shape_the_schema_refuses() {
        let v = Validator::new();
        let path = Path::new("/nonexistent/inventory.toml");
        let cases: &[(&str, &str)] = &[
            (
                "unknown key",
                "[cluster]\ndatacenter = \"dc1\"\nlog_levl = \"INFO\"\n",
            ),
            ("unknown table", "[sever]\ninit = \"systemd\"\n"),
            ("key below the wrong header", "[consul]\nhosts = []\n"),
            (
                "wrong role",
                "[[hosts]]\nname = \"c1\"\naddress = \"10.0.0.2\"\nrole = \"master\"\n",
            ),
            ("wrong init", "[servers]\ninit = \"runit\"\n"),
            ("wrong type", "[ssh]\nport = \"22\"\n"),
            ("port out of range", "[ssh]\nport = 0\n"),
            ("two sources", "[consul]\nsource = { file = \"consul\" }\n"),
            ("wrong log level", "[clients]\nlog_level = \"verbose\"\n"),
            (
                "enabled in [registrar]",
                "[registrar]\non = \"s1\"\nenabled = true\n",
            ),
            (
                "on in a host's lb",
                "[lb]\n[servers]\nlb = { on = \"s1\" }\n",
            ),
            (
                "two check kinds",
                "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n\
                 tcp = \"{{ bind_addr }}:80\"\nhttp = \"http://x/\"\ninterval = \"10s\"\n",
            ),
            ("managed config key", "[config]\ndata_dir = \"/opt/c\"\n"),
            (
                "duration without unit",
                "[registrar]\non = \"s1\"\nresync = \"10\"\n",
            ),
        ];
        for (what, add) in cases {
            let mut doc: toml::Table = MINIMAL.parse().unwrap();
            merge(&mut doc, add.parse().unwrap());
            let text = toml::to_string(&doc).unwrap();
            assert!(
                crate::inventory::parse(path, &text).is_err(),
                "{what}: the loader accepts\n{text}"
            );
            assert!(
                v.errors(&text).is_some(),
                "{what}: the schema accepts\n{text}"
            );
        }
        let url = MINIMAL.replace(
            "{ package = \"auto\" }",
            "{ url = \"https://x/consul.zip\" }",
        );
        assert!(crate::inventory::parse(path, &url).is_err());
        assert!(
            v.errors(&url).is_some(),
            "url without sha256: the schema accepts"
        );
        // And the minimal inventory itself is fine for both.
        assert!(crate::inventory::parse(path, MINIMAL).is_ok());
        assert_eq!(v.errors(MINIMAL), None);
    }

    #[test]
    fn the_copy_in_docs_is_the_schema() {
        let copy = std::fs::read_to_string(repo().join("docs/consulctl.schema.json")).unwrap();
        assert!(
            copy == SCHEMA,
            "docs/consulctl.schema.json differs from crates/consulctl-core/src/inventory/\
             schema.json: copy it over (`consulctl inventory schema > docs/consulctl.schema.json`)"
        );
    }
}
