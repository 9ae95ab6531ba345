//! Problems found in an inventory and where they are: [`Diagnostic`] (`FILE:LINE:COLUMN: KEY
//! ...`), key paths into the document, and the validation context [`Ctx`] that collects
//! problems and warnings while the other modules read the raw structs.

use super::*;

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
pub(super) fn render(path: &Path, diags: &[Diagnostic]) -> String {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path into the document, e.g. `hosts[1].ssh.port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct KeyPath(pub(super) Vec<Seg>);

impl KeyPath {
    pub(super) fn root() -> Self {
        KeyPath(Vec::new())
    }

    pub(super) fn k(&self, key: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_owned()));
        KeyPath(v)
    }

    pub(super) fn i(&self, index: usize) -> Self {
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

pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    pub(super) doc: &'a ImDocument<String>,
    /// Absolute directory of the inventory file: relative local paths resolve against it.
    pub(super) base_dir: PathBuf,
    pub(super) home: Option<PathBuf>,
    pub(super) diags: Vec<Diagnostic>,
    pub(super) warnings: Vec<String>,
    /// Keys removed after serde rejected them: no "missing" follow-up errors for these.
    pub(super) removed: Vec<KeyPath>,
    /// Byte offset of the start of every line: diagnostics find their line by binary search
    /// (a scan from the top per diagnostic made many errors quadratic).
    pub(super) line_starts: Vec<usize>,
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
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
pub(super) fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// [`line_col`] with the line starts of `text` known: O(log lines + line length).
pub(super) fn line_col_indexed(text: &str, starts: &[usize], offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // The last line start at or before `end`.
    let line = starts.partition_point(|&s| s <= end).max(1);
    let column = text[starts[line - 1]..end].chars().count() + 1;
    (line, column)
}

pub(super) const REPR_MAX: usize = 60;

pub(super) fn shorten(s: String) -> String {
    if s.chars().count() > REPR_MAX {
        let mut t: String = s.chars().take(REPR_MAX - 3).collect();
        t.push_str("...");
        t
    } else {
        s
    }
}

/// A value as it would be written in TOML, shortened.
pub(super) fn repr(v: &toml::Value) -> String {
    let s = match v {
        toml::Value::String(s) => json_quote(s),
        toml::Value::Table(_) => "a table".into(),
        other => other.to_string(),
    };
    shorten(s.replace('\n', " "))
}

pub(super) fn item_repr(item: &Item) -> String {
    match item {
        Item::Value(toml_edit::Value::InlineTable(_)) | Item::Table(_) => "a table".into(),
        Item::ArrayOfTables(_) => "an array of tables".into(),
        Item::Value(v) => shorten(v.to_string().trim().replace('\n', " ")),
        Item::None => "nothing".into(),
    }
}

pub(super) fn json_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

pub(super) fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The allowed name closest to a mistyped one, if it is close.
pub(super) fn suggest<'n>(name: &str, allowed: &[&'n str]) -> Option<&'n str> {
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4) && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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

impl<'a> Ctx<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str, doc: &'a ImDocument<String>) -> Self {
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
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col_indexed(self.text, &self.line_starts, offset)
    }

    /// The item at `key` in the original document.
    pub(super) fn item_at(&self, key: &KeyPath) -> Option<&'a Item> {
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
    pub(super) fn span_of(&self, key: &KeyPath) -> Option<Range<usize>> {
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

    pub(super) fn push(&mut self, key: String, span: Option<Range<usize>>, message: String) {
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
    pub(super) fn diag(&mut self, key: &KeyPath, message: impl Into<String>) {
        let span = self.span_of(key);
        self.push(key.to_string(), span, message.into());
    }

    /// `key = VALUE: expected`.
    pub(super) fn bad(&mut self, key: &KeyPath, value: &toml::Value, expected: impl fmt::Display) {
        self.diag(key, format!("= {}: {expected}", repr(value)));
    }

    pub(super) fn missing(&mut self, key: &KeyPath, what: impl fmt::Display) {
        let removed = self
            .removed
            .iter()
            .any(|r| key.0.len() >= r.0.len() && key.0[..r.0.len()] == r.0[..]);
        if !removed {
            self.diag(key, format!("missing required key; {what}"));
        }
    }

    /// Line of `key` for "already used at line N" notes.
    pub(super) fn line_of(&self, key: &KeyPath) -> String {
        match self.span_of(key) {
            Some(s) => format!("line {}", self.line_col(s.start).0),
            None => "an earlier line".into(),
        }
    }

    pub(super) fn warn(&mut self, message: impl fmt::Display) {
        self.warnings
            .push(format!("{}: {message}", self.path.display()));
    }
}
