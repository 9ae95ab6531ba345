//! Helpers shared by the inventory tests: fixture paths, short test inventories, and
//! assertions on diagnostics.

use super::*;

pub(super) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory")
}

/// Inventories in tests "live" in the fixture directory, so relative local paths resolve
/// against it.
pub(super) fn inv_path() -> PathBuf {
    fixtures().join("test.toml")
}

pub(super) fn ok(text: &str) -> Cluster {
    parse(&inv_path(), text).unwrap_or_else(|diags| {
        panic!(
            "expected a valid inventory, got:\n{}",
            render(&inv_path(), &diags)
        )
    })
}

pub(super) fn errs(text: &str) -> Vec<Diagnostic> {
    match parse(&inv_path(), text) {
        Ok(_) => panic!("expected errors, the inventory was accepted"),
        Err(d) => d,
    }
}

/// The one diagnostic for `key`; fails when there is none or several.
pub(super) fn one<'d>(diags: &'d [Diagnostic], key: &str) -> &'d Diagnostic {
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
pub(super) fn only(text: &str, key: &str, line: usize, needle: &str) -> Diagnostic {
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
pub(super) fn check<'d>(
    diags: &'d [Diagnostic],
    key: &str,
    line: usize,
    needle: &str,
) -> &'d Diagnostic {
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

/// Three servers: s1 on line 2, s2 on line 3, s3 on line 4.
pub(super) const THREE: &str = r#"hosts = [
  { name = "s1", address = "10.0.0.1", role = "server" },
  { name = "s2", address = "10.0.0.2", role = "server" },
  { name = "s3", address = "10.0.0.3", role = "server" },
]
"#;

/// Lines 6-11 after `THREE`; lines 1-6 on its own.
pub(super) const HEAD: &str = r#"[cluster]
datacenter = "dc1"

[consul]
version = "1.8.7"
source = { package = "auto" }
"#;

/// `THREE`, `HEAD`, then `extra` from line 12.
pub(super) fn doc(extra: &str) -> String {
    format!("{THREE}{HEAD}{extra}")
}

/// `hosts`, then `HEAD`.
pub(super) fn hosts_doc(hosts: &str) -> String {
    format!("{hosts}{HEAD}")
}

/// `THREE`, `[cluster]` (line 6) with `datacenter` (line 7) and `cluster` from line 8, then
/// `[consul]` and `consul`.
pub(super) fn custom(cluster: &str, consul: &str) -> String {
    format!("{THREE}[cluster]\ndatacenter = \"dc1\"\n{cluster}[consul]\n{consul}")
}

/// `consul.source` on line 10.
pub(super) fn with_source(source: &str) -> String {
    custom("", &format!("version = \"1.21.0\"\nsource = {source}\n"))
}

/// s2 (line 3) with extra inline keys.
pub(super) fn s2_with(extra: &str) -> String {
    THREE.replace(
        "{ name = \"s2\", address = \"10.0.0.2\", role = \"server\" }",
        &format!("{{ name = \"s2\", address = \"10.0.0.2\", role = \"server\", {extra} }}"),
    )
}

/// `THREE` plus a client c1 (line 5, tagged "web"), `HEAD` on lines 7-12, then `extra`
/// from line 13.
pub(super) fn with_client(extra: &str) -> String {
    let hosts = THREE.replace(
        "]\n",
        "  { name = \"c1\", address = \"10.0.0.21\", role = \"client\", tags = [\"web\"] },\n]\n",
    );
    format!("{hosts}{HEAD}{extra}")
}
