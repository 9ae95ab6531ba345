//! The top-level modules of each checked crate import one another without a cycle.
//!
//! Every `.rs` file under a crate's `src/` belongs to one top-level module (`src/foo.rs` and
//! `src/foo/**` are `foo`; `src/lib.rs` and `src/main.rs` are the crate root). A file that names
//! `crate::bar::...` (or `crate::{bar, ...}`, or `super::...` resolving to `bar`, or an item the
//! crate root re-exports from `bar`) makes an edge `foo -> bar`. The graph must be acyclic, so
//! that each module can be read, tested and moved knowing only the modules below it.
//!
//! What is read: code only. Comments are skipped, and so is every item under `#[cfg(test)]`
//! (the unit tests of a module may use any other module, for instance a fake transport). String
//! literals are skipped too, except one that holds nothing but a path (serde's
//! `deserialize_with = "crate::de::..."`), which counts as a reference. The crate root is not a
//! node: it declares every module, so it is above all of them.
//!
//! [`siblings_importing_each_other`] is a stricter check for a folder whose modules must stay
//! independent of one another (one file per command, say): see [`checked_sibling_folders`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The crates whose top-level modules must form an acyclic graph, as `src` directories relative
/// to the `crates/` directory.
fn checked_src_dirs() -> Vec<&'static str> {
    vec![
        "consulctl-core/src",
        "consul-api/src",
        "consulctl-lab/src",
        "consulctl/src",
    ]
}

/// Folders (`src` directory relative to `crates/`, folder inside it) whose modules must not
/// import each other.
fn checked_sibling_folders() -> Vec<(&'static str, &'static str)> {
    vec![("consulctl/src", "commands")]
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let mut failures = Vec::new();
    for dir in checked_src_dirs() {
        let src = crates_dir().join(dir);
        assert!(src.is_dir(), "{} is not a directory", src.display());
        let graph = ModuleGraph::of(&src);
        assert!(
            !graph.modules.is_empty() || dir == "consulctl-lab/src",
            "{dir}: no module found"
        );
        if let Some(report) = graph.describe_cycles() {
            failures.push(format!("{dir}:\n{report}"));
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles between top-level modules:\n\n{}",
        failures.join("\n")
    );
}

#[test]
fn modules_of_checked_folders_do_not_import_each_other() {
    let mut failures = Vec::new();
    for (dir, folder) in checked_sibling_folders() {
        for (from, to) in siblings_importing_each_other(&crates_dir().join(dir), folder) {
            failures.push(format!("{dir}/{folder}: {from} uses {to}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The modules under `src/<folder>/` that name another module of the same folder
/// (`crate::<folder>::x`, `super::x`, ...), as `(user, used)` pairs, sorted. Code under
/// `#[cfg(test)]` and comments do not count, as for the module graph.
#[allow(dead_code)] // used by the test below and by folders listed in checked_sibling_folders
fn siblings_importing_each_other(src: &Path, folder: &str) -> Vec<(String, String)> {
    let root = src.join(folder);
    let mut members = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                members.insert(name);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                if stem != "mod" {
                    members.insert(stem.to_string());
                }
            }
        }
    }
    let mut pairs = BTreeSet::new();
    for file in rust_files(src) {
        let module = module_path_of(src, &file);
        if module.len() < 2 || module[0] != folder {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source file");
        for reference in references(&text, &module) {
            if reference.path.len() >= 2
                && reference.path[0] == folder
                && reference.path[1] != module[1]
                && members.contains(&reference.path[1])
            {
                pairs.insert((module[1].clone(), reference.path[1].clone()));
            }
        }
    }
    pairs.into_iter().collect()
}

/// Edges between the top-level modules of one crate, each with where it was first seen.
struct ModuleGraph {
    modules: BTreeSet<String>,
    /// from -> to -> "file:line"
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

impl ModuleGraph {
    fn of(src: &Path) -> ModuleGraph {
        let files = rust_files(src);
        let modules: BTreeSet<String> = files
            .iter()
            .map(|f| module_path_of(src, f))
            .filter_map(|p| p.first().cloned())
            .collect();
        let reexports = root_reexports(src, &modules);
        let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for file in &files {
            let module = module_path_of(src, file);
            let Some(from) = module.first() else {
                continue;
            };
            let text = std::fs::read_to_string(file).expect("read source file");
            for reference in references(&text, &module) {
                let Some(first) = reference.path.first() else {
                    continue;
                };
                let to = if modules.contains(first) {
                    first
                } else if let Some(m) = reexports.get(first) {
                    m
                } else {
                    continue;
                };
                if to != from {
                    let shown = file.strip_prefix(src).unwrap_or(file).display();
                    edges
                        .entry(from.clone())
                        .or_default()
                        .entry(to.clone())
                        .or_insert_with(|| format!("src/{shown}:{}", reference.line));
                }
            }
        }
        ModuleGraph { modules, edges }
    }

    /// One line per edge of each strongly connected component with more than one module, or
    /// `None` when the graph is acyclic.
    fn describe_cycles(&self) -> Option<String> {
        let components = self.cyclic_components();
        if components.is_empty() {
            return None;
        }
        let mut out = String::new();
        for component in components {
            let cycle = self.one_cycle(&component);
            let _ = writeln!(out, "  cycle: {}", cycle.join(" -> "));
            for from in &component {
                for (to, at) in self.edges.get(from).into_iter().flatten() {
                    if component.contains(to) {
                        let _ = writeln!(out, "    {from} -> {to} ({at})");
                    }
                }
            }
        }
        Some(out)
    }

    fn successors<'a>(&'a self, m: &str) -> impl Iterator<Item = &'a String> {
        self.edges.get(m).into_iter().flat_map(|e| e.keys())
    }

    /// Strongly connected components of two or more modules (Tarjan), sorted.
    fn cyclic_components(&self) -> Vec<BTreeSet<String>> {
        struct State<'a> {
            graph: &'a ModuleGraph,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            out: Vec<BTreeSet<String>>,
        }
        fn visit<'a>(s: &mut State<'a>, v: &'a str) {
            let i = s.index.len();
            s.index.insert(v, i);
            s.low.insert(v, i);
            s.stack.push(v);
            s.on_stack.insert(v);
            for w in s.graph.successors(v) {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = BTreeSet::new();
                loop {
                    let w = s.stack.pop().unwrap();
                    s.on_stack.remove(w);
                    component.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    s.out.push(component);
                }
            }
        }
        let mut s = State {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for m in &self.modules {
            if !s.index.contains_key(m.as_str()) {
                visit(&mut s, m);
            }
        }
        s.out.sort();
        s.out
    }

    /// A shortest cycle through the first module of a cyclic component (breadth-first).
    fn one_cycle(&self, component: &BTreeSet<String>) -> Vec<String> {
        let start = component.iter().next().unwrap();
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.as_str()]);
        while let Some(v) = queue.pop_front() {
            for w in self.successors(v).filter(|w| component.contains(*w)) {
                if w == start {
                    let mut back = vec![start.clone()];
                    let mut at = v;
                    while at != start {
                        back.push(at.to_string());
                        at = parent[at];
                    }
                    back.push(start.clone());
                    back.reverse();
                    return back;
                }
                if !parent.contains_key(w.as_str()) {
                    parent.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        component.iter().cloned().collect()
    }
}

fn rust_files(src: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read source directory")
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(src, &mut out);
    out
}

/// `src/foo/bar.rs` and `src/foo/bar/mod.rs` -> `[foo, bar]`; `src/lib.rs` -> `[]`.
fn module_path_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("file under src");
    let mut path: Vec<String> = relative
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = path.pop().unwrap_or_default();
    let stem = last.strip_suffix(".rs").unwrap_or(&last).to_string();
    let at_root = path.is_empty();
    if stem != "mod" && !(at_root && (stem == "lib" || stem == "main")) {
        path.push(stem);
    }
    path
}

/// The names the crate root re-exports (`pub use foo::{Bar, Baz as Qux}`) -> the top-level
/// module they come from.
fn root_reexports(src: &Path, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for root in ["lib.rs", "main.rs"] {
        let Ok(text) = std::fs::read_to_string(src.join(root)) else {
            continue;
        };
        let tokens = tokens(&strip(&text));
        let mut i = 0;
        while i < tokens.len() {
            if tokens[i].text == "use" {
                let (trees, next) = parse_use_tree(&tokens, i + 1);
                for (path, alias) in trees {
                    let path: Vec<&str> = path
                        .iter()
                        .map(String::as_str)
                        .skip_while(|s| *s == "crate" || *s == "self")
                        .collect();
                    if let (Some(first), Some(name)) = (path.first(), alias) {
                        if modules.contains(*first) && path.len() > 1 {
                            out.insert(name, first.to_string());
                        }
                    }
                }
                i = next;
            } else {
                i += 1;
            }
        }
    }
    out
}

/// One path named by the source, resolved from the crate root (`crate::`, `super::` and
/// `self::` removed), with the line it is on.
#[derive(Debug)]
struct Reference {
    path: Vec<String>,
    line: usize,
}

/// The crate-relative paths a file of module `module` names.
fn references(text: &str, module: &[String]) -> Vec<Reference> {
    let tokens = tokens(&strip(text));
    let mut out = Vec::new();
    // The inline modules (`mod tests { ... }`) we are inside, as (name, brace depth inside).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match t.text.as_str() {
            "{" => {
                depth += 1;
                if i >= 2 && tokens[i - 2].text == "mod" && tokens[i - 1].is_ident() {
                    inline.push((tokens[i - 1].text.clone(), depth));
                }
                i += 1;
            }
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            "crate" | "super" | "self"
                if tokens.get(i + 1).is_some_and(|n| n.text == "::")
                    && !(i > 0 && tokens[i - 1].text == "::") =>
            {
                let mut here: Vec<String> = module.to_vec();
                here.extend(inline.iter().map(|(name, _)| name.clone()));
                let (trees, next) = parse_use_tree(&tokens, i);
                for (path, _) in trees {
                    if let Some(resolved) = resolve(&path, &here) {
                        out.push(Reference {
                            path: resolved,
                            line: t.line,
                        });
                    }
                }
                i = next.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// `crate::a::b` -> `[a, b]`; `super::x` from `[m, n]` -> `[m, x]`; `self::x` -> `[m, n, x]`.
fn resolve(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = here.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(
        rest.iter()
            .take_while(|s| *s != "self" && *s != "*")
            .cloned(),
    );
    Some(base)
}

/// A leaf of a use tree: its full path and the name it binds (`None` for `*`).
type UseLeaf = (Vec<String>, Option<String>);

/// Parses a path or use tree starting at `tokens[i]`: `a::b::{c, d::{e as f}, *}`. Returns
/// every leaf path with its alias (the last segment, or the `as` name) and the index after it.
fn parse_use_tree(tokens: &[Token], mut i: usize) -> (Vec<UseLeaf>, usize) {
    let mut prefix = Vec::new();
    loop {
        match tokens.get(i) {
            Some(t) if t.is_ident() || t.text == "*" => {
                prefix.push(t.text.clone());
                i += 1;
                if tokens.get(i).is_some_and(|t| t.text == "::") {
                    i += 1;
                    continue;
                }
                let alias = if tokens.get(i).is_some_and(|t| t.text == "as") {
                    i += 2;
                    tokens.get(i - 1).map(|t| t.text.clone())
                } else if prefix.last().is_some_and(|s| s == "self") {
                    prefix.iter().rev().nth(1).cloned()
                } else {
                    prefix.last().cloned().filter(|s| s != "*")
                };
                return (vec![(prefix, alias)], i);
            }
            Some(t) if t.text == "{" => {
                i += 1;
                let mut out = Vec::new();
                while i < tokens.len() && tokens[i].text != "}" {
                    if tokens[i].text == "," {
                        i += 1;
                        continue;
                    }
                    let (trees, next) = parse_use_tree(tokens, i);
                    if next == i {
                        i += 1; // something this parser does not know: skip it
                        continue;
                    }
                    for (path, alias) in trees {
                        let mut full = prefix.clone();
                        full.extend(path);
                        out.push((full, alias));
                    }
                    i = next;
                }
                return (out, i + 1);
            }
            _ => return (vec![(prefix.clone(), prefix.last().cloned())], i),
        }
    }
}

#[derive(Debug)]
struct Token {
    text: String,
    line: usize,
}

impl Token {
    fn is_ident(&self) -> bool {
        self.text
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
    }
}

/// Identifiers, `::`, and single punctuation characters of code already stripped of comments
/// and literals.
fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let text = text.strip_prefix("r#").map(str::to_string).unwrap_or(text);
            out.push(Token { text, line });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

/// The code of `text` with comments, literals and `#[cfg(test)]` items replaced by blanks (line
/// breaks kept, so that line numbers still hold). A string literal holding only a path is kept.
fn strip(text: &str) -> String {
    let code = strip_comments_and_literals(text);
    strip_cfg_test(&code)
}

fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &[char]| {
        for c in s {
            out.push(if *c == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let start = i;
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            blank(&mut out, &chars[start..i]);
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut nesting = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    nesting += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    nesting -= 1;
                    i += 2;
                    if nesting == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            blank(&mut out, &chars[start..i.min(chars.len())]);
        } else if (c == 'r' || c == 'b')
            && !chars[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
            && raw_string_start(&chars, i).is_some()
        {
            let (hashes, body) = raw_string_start(&chars, i).unwrap();
            let mut j = body;
            while j < chars.len() {
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            blank(&mut out, &chars[i..j.min(chars.len())]);
            i = j;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            let body: String = chars[start + 1..i.saturating_sub(1).max(start + 1)]
                .iter()
                .collect();
            if is_path(&body) {
                out.push(' ');
                out.push_str(&body);
                out.push(' ');
            } else {
                blank(&mut out, &chars[start..i]);
            }
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a): blank the former.
            let end = if next == Some('\\') {
                chars
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|c| *c == '\''))
                    .map(|p| i + 3 + p + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, &chars[i..end]);
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `r"`, `r#"`, `br"`, `br#"` at `i`: (number of `#`, index of the body).
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

fn is_path(s: &str) -> bool {
    let mut parts = s.split("::");
    matches!(parts.next(), Some("crate" | "super" | "self"))
        && s.contains("::")
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

/// Blanks every item that follows `#[cfg(test)]`: up to its `;` or its closing brace.
fn strip_cfg_test(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let pattern: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + pattern.len() <= chars.len() {
        if chars[i..i + pattern.len()] != pattern[..] {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + pattern.len();
        let mut depth = 0usize;
        while j < chars.len() {
            match chars[j] {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let end = j.min(chars.len());
        for c in &mut chars[start..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = j;
    }
    chars.into_iter().collect()
}

// The checker's own tests, on small crates written to a temporary directory.

fn write_crate(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn a_cycle_is_found_and_printed_with_where_each_edge_is() {
    let dir = write_crate(&[
        (
            "lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub use c::Thing;\n",
        ),
        ("a.rs", "use crate::b::x;\n"),
        ("b/mod.rs", "mod inner;\n"),
        (
            "b/inner.rs",
            "// crate::a is only a comment here\nfn f() {\n    crate::Thing::new();\n}\n",
        ),
        ("c.rs", "use crate::{d, a::y};\n"),
        ("d.rs", "const S: &str = \"crate::a is a string\";\n"),
    ]);
    let graph = ModuleGraph::of(dir.path());
    let report = graph.describe_cycles().expect("a cycle");
    assert!(report.contains("cycle: a -> b -> c -> a"), "{report}");
    assert!(report.contains("b -> c (src/b/inner.rs:3)"), "{report}");
    assert!(report.contains("c -> a (src/c.rs:1)"), "{report}");
    assert!(!report.contains("d"), "{report}");
}

#[test]
fn test_code_comments_and_strings_make_no_edge() {
    let dir = write_crate(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::x;\n"),
        (
            "b.rs",
            concat!(
                "/* crate::a */\n",
                "const C: char = '{';\n",
                "const R: &str = r#\"crate::a \"# ;\n",
                "#[cfg(test)]\nuse crate::a::z;\n",
                "#[cfg(test)]\nmod tests {\n    use crate::a::y;\n    fn f() { if true { super::super::a::g(); } }\n}\n",
                "pub fn x<'a>(s: &'a str) -> &'a str { s }\n",
            ),
        ),
    ]);
    let graph = ModuleGraph::of(dir.path());
    assert_eq!(graph.describe_cycles(), None);
    assert_eq!(graph.edges.len(), 1, "{:?}", graph.edges);

    // The same use outside #[cfg(test)], through `super::`, is a cycle.
    let dir = write_crate(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "#[serde(with = \"crate::b::x\")]\nstruct S;\n"),
        ("b.rs", "mod inner {\n    use super::super::a::y;\n}\n"),
    ]);
    let report = ModuleGraph::of(dir.path())
        .describe_cycles()
        .expect("a cycle");
    assert!(report.contains("a -> b (src/a.rs:1)"), "{report}");
    assert!(report.contains("b -> a (src/b.rs:2)"), "{report}");
}

#[test]
fn siblings_importing_each_other_are_listed() {
    let dir = write_crate(&[
        ("lib.rs", "mod commands;\nmod util;\n"),
        (
            "commands/mod.rs",
            "pub mod apply;\npub mod plan;\npub mod status;\npub use plan::Plan;\n",
        ),
        (
            "commands/apply.rs",
            "use crate::util::x;\nuse super::plan::Plan;\n",
        ),
        (
            "commands/plan.rs",
            "use crate::commands::{status::{self, Status}};\n",
        ),
        (
            "commands/status.rs",
            "use super::Helper;\n#[cfg(test)]\nmod tests { use super::super::apply; }\n",
        ),
        ("util.rs", "use crate::commands::apply;\n"),
    ]);
    assert_eq!(
        siblings_importing_each_other(dir.path(), "commands"),
        vec![
            ("apply".to_string(), "plan".to_string()),
            ("plan".to_string(), "status".to_string()),
        ]
    );
    assert!(siblings_importing_each_other(dir.path(), "absent").is_empty());
}
