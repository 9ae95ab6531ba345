//! The inventory loader on inputs nobody wrote on purpose: arbitrary bytes, TOML-looking text,
//! and the valid (and deliberately invalid) fixture inventories with lines deleted, duplicated
//! and swapped, values turned into other types and random keys inserted. Whatever it is given,
//! loading never panics, its error names the file, and it writes nothing.
//!
//! Deterministic: a fixed seed, a bounded number of cases and no failure persistence, so that a
//! run in CI takes a few seconds and a failure is the same on every machine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const CASES: u32 = 256;
const SEED: [u8; 32] = *b"consulctl inventory loader seed!";

fn runner() -> TestRunner {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED))
}

/// The fixture inventories: the valid ones of the tests and of the repository, and those made
/// to hold many errors.
fn fixtures() -> Vec<(String, String)> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        manifest.join("tests/fixtures/inventory"),
        manifest.join("../../inventory"),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            out.push((f.file_name().unwrap().to_string_lossy().into_owned(), text));
        }
    }
    assert!(out.len() >= 3, "fixtures not found: {out:?}");
    out
}

/// A directory to load inventories in, holding the local files the fixtures name (`dist/consul`,
/// `keys/...`), so that valid fixtures load.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Workdir {
        let dir = tempfile::tempdir().unwrap();
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory");
        for sub in ["dist", "keys"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            for e in std::fs::read_dir(from.join(sub)).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
            }
        }
        Workdir { dir }
    }

    /// Every path under the directory.
    fn listing(&self) -> BTreeSet<PathBuf> {
        fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                out.insert(p.clone());
                if p.is_dir() {
                    walk(&p, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self.dir.path(), &mut out);
        out
    }

    /// Write `bytes` as an inventory and load it: no panic (the runner reports one as a
    /// failure), an error that names the file, no file written.
    fn check(&self, bytes: &[u8]) -> Result<(), TestCaseError> {
        let path = self.dir.path().join("inventory.toml");
        std::fs::write(&path, bytes).unwrap();
        let before = self.listing();
        let result = consulctl_core::inventory::load(&path);
        let after = self.listing();
        prop_assert_eq!(&before, &after, "loading wrote or removed files");
        if let Err(e) = result {
            let message = e.to_string();
            prop_assert!(
                message.contains(&path.display().to_string()),
                "the error does not name the file: {}",
                message
            );
        }
        Ok(())
    }
}

/// A TOML value of some type, or something that is not one.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("\"auto\"".to_string()),
        Just("\"\"".to_string()),
        Just("[]".to_string()),
        Just("[1, \"two\", 3.0]".to_string()),
        Just("{}".to_string()),
        Just("{ a = 1, b = \"c\" }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("\"${HOME}\"".to_string()),
        Just("\"{{ bind_addr }}\"".to_string()),
        Just("-0".to_string()),
        Just("99999999999999999999".to_string()),
        Just("nan".to_string()),
        "[a-z=\\[\\]{}\",.]{0,8}",
    ]
}

/// A key: one the format knows, or any other.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "address",
            "role",
            "datacenter",
            "encrypt",
            "acl",
            "tls",
            "version",
            "source",
            "port",
            "bind_addr",
            "bind_cidr",
            "tags",
            "on",
            "checks",
            "config",
            "dns",
            "prepare",
            "hosts",
            "services",
            "cluster",
            "ssh",
            "paths",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,10}",
        "\"[ -~]{0,6}\"",
        Just("a.b.c".to_string()),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    /// The value of a `key = value` line becomes another value (of another type, often).
    ChangeValue(usize, String),
    InsertKey(usize, String, String),
    /// A header (`[cluster]`, `[[hosts]]`, ...) of its own.
    InsertTable(usize, String),
    /// Ask for generated secrets, so that the no-write check covers them.
    Generated(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        1 => at.prop_map(Mutation::Delete),
        1 => at.prop_map(Mutation::Duplicate),
        1 => (at, any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        3 => (at, value()).prop_map(|(a, v)| Mutation::ChangeValue(a, v)),
        2 => (at, key(), value()).prop_map(|(a, k, v)| Mutation::InsertKey(a, k, v)),
        1 => (
            at,
            prop_oneof![
            key().prop_map(|k| format!("[{k}]")),
            key().prop_map(|k| format!("[[{k}]]")),
            Just("[[hosts]]".to_string()),
            Just("[[services.checks]]".to_string()),
        ])
            .prop_map(|(a, t)| Mutation::InsertTable(a, t)),
        1 => at.prop_map(Mutation::Generated),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in mutations {
        let n = lines.len().max(1);
        match m {
            Mutation::Delete(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Mutation::Duplicate(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Mutation::Swap(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Mutation::ChangeValue(i, v) if !lines.is_empty() => {
                // The first `key = value` line from i on, wrapping around.
                let found = (0..n)
                    .map(|k| (i + k) % n)
                    .find(|&k| !lines[k].trim_start().starts_with('#') && lines[k].contains(" = "));
                if let Some(k) = found {
                    let key = lines[k].split(" = ").next().unwrap().to_string();
                    lines[k] = format!("{key} = {v}");
                }
            }
            Mutation::InsertKey(i, k, v) => {
                lines.insert(i % (lines.len() + 1), format!("{k} = {v}"))
            }
            Mutation::InsertTable(i, t) => lines.insert(i % (lines.len() + 1), t.clone()),
            Mutation::Generated(i) => {
                let extra = match i % 3 {
                    0 => "encrypt = \"auto\"",
                    1 => "acl = true",
                    _ => "tls = \"auto\"",
                };
                match lines.iter().position(|l| l.trim() == "[cluster]") {
                    Some(c) => lines.insert(c + 1, extra.to_string()),
                    None => lines.insert(0, format!("[cluster]\n{extra}")),
                }
            }
            _ => {}
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[test]
fn arbitrary_bytes_never_panic_name_the_file_and_write_nothing() {
    let work = Workdir::new();
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024),
        // TOML-looking text gets further than random bytes.
        "[\\[\\]a-z_=\"{}., 0-9\n#-]{0,600}".prop_map(String::into_bytes),
    ];
    runner().run(&strategy, |bytes| work.check(&bytes)).unwrap();
}

#[test]
fn mutated_fixtures_never_panic_name_the_file_and_write_nothing() {
    let work = Workdir::new();
    let fixtures = fixtures();
    // Unmutated, the valid fixtures load (so mutations start from inventories that get deep).
    let mut loaded = 0;
    for (_, text) in &fixtures {
        std::fs::write(work.dir.path().join("inventory.toml"), text).unwrap();
        if consulctl_core::inventory::load(&work.dir.path().join("inventory.toml")).is_ok() {
            loaded += 1;
        }
    }
    assert!(loaded >= 2, "at least two fixtures should load as they are");
    let strategy = (0..fixtures.len(), prop::collection::vec(mutation(), 1..6));
    runner()
        .run(&strategy, |(which, mutations)| {
            work.check(apply(&fixtures[which].1, &mutations).as_bytes())
        })
        .unwrap();
}

#[test]
fn mutations_do_what_they_say() {
    let text = "a = 1\nb = 2\nc = 3\n";
    assert_eq!(apply(text, &[Mutation::Delete(4)]), "a = 1\nc = 3\n");
    assert_eq!(
        apply(text, &[Mutation::Duplicate(0)]),
        "a = 1\na = 1\nb = 2\nc = 3\n"
    );
    assert_eq!(
        apply(text, &[Mutation::Swap(0, 2)]),
        "c = 3\nb = 2\na = 1\n"
    );
    assert_eq!(
        apply(text, &[Mutation::ChangeValue(1, "true".into())]),
        "a = 1\nb = true\nc = 3\n"
    );
    assert_eq!(
        apply(text, &[Mutation::InsertKey(3, "d".into(), "[]".into())]),
        "a = 1\nb = 2\nc = 3\nd = []\n"
    );
    assert_eq!(
        apply("[cluster]\nx = 1\n", &[Mutation::Generated(1)]),
        "[cluster]\nacl = true\nx = 1\n"
    );
}
