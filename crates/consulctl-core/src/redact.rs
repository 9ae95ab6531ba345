//! Redaction of secrets in everything consulctl prints or logs: `plan` diffs (both sides), text
//! and JSON output, the debug log.
//!
//! Two layers, so that a secret is hidden whichever side of a diff it is on and whether or not
//! consulctl knows its value:
//!
//! - **structural**: the value of every secret-bearing key in HCL, JSON or `key=value` text is
//!   replaced, whatever the value (`encrypt`, any key naming a token or a secret, everything
//!   inside a `tokens { }` block, the keys of a keyring answer), and the body of every PEM
//!   private key block;
//! - **by value**: every secret consulctl holds (each [`crate::model::Secret`] made in this
//!   process registers its value here: gossip keys, ACL tokens, private keys line by line) and
//!   any extra values a caller passes are replaced wherever they appear.

use std::collections::{HashMap, HashSet};
use std::sync::{OnceLock, RwLock};

/// What a hidden value is replaced with.
pub const MARK: &str = "<redacted>";

/// Values shorter than this are not registered (no real secret is that short; a very short
/// value would redact ordinary words).
const MIN_LEN: usize = 16;

/// The remembered secrets, indexed by their first 8 bytes: a text is searched in one pass,
/// however many secrets there are (an ACL cluster has one token per node).
#[derive(Default)]
struct Known {
    all: HashSet<String>,
    by_prefix: HashMap<[u8; 8], Vec<String>>,
}

impl Known {
    fn add(&mut self, v: &str) {
        if v.len() < MIN_LEN || self.all.contains(v) {
            return;
        }
        self.all.insert(v.to_string());
        let list = self.by_prefix.entry(prefix(v.as_bytes())).or_default();
        list.push(v.to_string());
        // Longest first: a value that contains another is replaced whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

fn prefix(b: &[u8]) -> [u8; 8] {
    let mut p = [0u8; 8];
    p.copy_from_slice(&b[..8]);
    p
}

static KNOWN: OnceLock<RwLock<Known>> = OnceLock::new();

fn known() -> &'static RwLock<Known> {
    KNOWN.get_or_init(|| RwLock::new(Known::default()))
}

/// Remember a secret value for [`redact`]. A multi-line value (a PEM key) is remembered line by
/// line too, so that any part of it that reaches output is hidden.
pub fn remember(value: &str) {
    let v = value.trim();
    if v.len() < MIN_LEN {
        return;
    }
    if let Ok(mut k) = known().write() {
        k.add(v);
        if value.contains('\n') {
            for line in value.lines().map(str::trim) {
                if !line.starts_with("-----") {
                    k.add(line);
                }
            }
        }
    }
}

/// Hide every secret in `text`: structurally, then every remembered value and `extra`.
pub fn redact(text: &str, extra: &[String]) -> String {
    let mut plain = |_: &str| MARK.to_string();
    let t = values_with(text, extra, &mut plain);
    structural_with(&t, &mut plain)
}

/// Numbered marks for one output (a plan): each distinct hidden value gets its own
/// `<redacted N>`, so that a diff still shows that a secret changes (and which lines hold the
/// same one) without showing any value. The numbers mean nothing outside that output.
#[derive(Debug, Default)]
pub struct Marks(std::collections::BTreeMap<String, usize>);

impl Marks {
    fn mark(&mut self, value: &str) -> String {
        if value.starts_with("<redacted") {
            return value.to_string();
        }
        let next = self.0.len() + 1;
        let n = *self.0.entry(value.to_string()).or_insert(next);
        format!("<redacted {n}>")
    }

    /// [`redact`] with numbered marks.
    pub fn redact(&mut self, text: &str, extra: &[String]) -> String {
        let mut mark = |v: &str| self.mark(v);
        let t = values_with(text, extra, &mut mark);
        structural_with(&t, &mut mark)
    }
}

/// Replace every remembered secret value and every value of `extra` (empty ones and ones
/// shorter than 8 characters are ignored) with [`MARK`].
pub fn values(text: &str, extra: &[String]) -> String {
    values_with(text, extra, &mut |_: &str| MARK.to_string())
}

fn values_with(text: &str, extra: &[String], mark: &mut dyn FnMut(&str) -> String) -> String {
    // Values long enough are remembered (they are secrets too) and found with the index.
    let mut t: Option<String> = None;
    for s in extra.iter().map(|s| s.trim()) {
        if s.len() >= MIN_LEN {
            remember(s);
        } else if s.len() >= 8 {
            let cur = t.as_deref().unwrap_or(text);
            if cur.contains(s) {
                t = Some(cur.replace(s, &mark(s)));
            }
        }
    }
    let text = t.as_deref().unwrap_or(text);
    let Ok(k) = known().read() else {
        return text.to_string();
    };
    if k.all.is_empty() {
        return text.to_string();
    }
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut copied = 0;
    while i + MIN_LEN <= b.len() {
        let hit = k
            .by_prefix
            .get(&prefix(&b[i..]))
            .and_then(|list| list.iter().find(|s| b[i..].starts_with(s.as_bytes())));
        match hit {
            Some(s) => {
                out.extend_from_slice(&b[copied..i]);
                out.extend_from_slice(mark(s).as_bytes());
                i += s.len();
                copied = i;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return text.to_string();
    }
    out.extend_from_slice(&b[copied..]);
    // Matches start and end on character boundaries (they are whole UTF-8 strings).
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Is `key` (a config key, JSON field or variable name) one whose value is a secret?
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "encrypt"
        || k == "key"
        || k == "keys"
        || k == "primarykeys"
        || k == "primary_keys"
        || k.contains("token")
        || k.contains("secret")
        || k.contains("private_key")
        || k.contains("privatekey")
        || k.contains("password")
}

#[derive(Default)]
struct State {
    /// Inside a PEM private key block (lines until `-----END`).
    pem: bool,
    /// Nesting depth inside the value of a secret key (`tokens { ... }`, `"Keys": { ... }`):
    /// every quoted string there is hidden.
    depth: usize,
}

/// Hide the value of every secret-bearing key and the body of every PEM private key, line by
/// line, whatever the values are.
pub fn structural(text: &str) -> String {
    structural_with(text, &mut |_: &str| MARK.to_string())
}

fn structural_with(text: &str, mark: &mut dyn FnMut(&str) -> String) -> String {
    let mut st = State::default();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        out.push_str(&redact_line(body, &mut st, mark));
        out.push_str(nl);
    }
    out
}

const PEM_END: &str = "-----END";
const PEM_PRIVATE: &str = "PRIVATE KEY-----";

fn redact_line(line: &str, st: &mut State, mark: &mut dyn FnMut(&str) -> String) -> String {
    if st.pem {
        return match line.find(PEM_END) {
            Some(at) => {
                st.pem = false;
                format!("{}{MARK}{}", diff_prefix(line), &line[at..])
            }
            None => format!("{}{MARK}", diff_prefix(line)),
        };
    }
    if let Some(at) = line.find(PEM_PRIVATE) {
        let start = at + PEM_PRIVATE.len();
        let (head, rest) = line.split_at(start);
        let head = scan(head, st, mark);
        return match rest.find(PEM_END) {
            // A key on one line (escaped newlines in a log field).
            Some(end) => format!("{head}{MARK}{}", scan(&rest[end..], st, mark)),
            None => {
                st.pem = true;
                format!("{head}{MARK}")
            }
        };
    }
    scan(line, st, mark)
}

/// A unified diff's line marker, kept so that a redacted diff stays a diff.
fn diff_prefix(line: &str) -> &str {
    match line.chars().next() {
        Some(c @ ('+' | '-' | ' ')) => &line[..c.len_utf8()],
        _ => "",
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Where the quoted string starting at `i` (`"` or an escaped `\"`) ends (the index after its
/// closing quote, or the end of the line), and where its content starts and ends.
fn quoted(b: &[u8], i: usize) -> Option<(usize, usize, usize)> {
    if b[i] == b'"' {
        let start = i + 1;
        let mut j = start;
        while j < b.len() {
            match b[j] {
                b'\\' => j += 2,
                b'"' => return Some((start, j, j + 1)),
                _ => j += 1,
            }
        }
        Some((start, b.len(), b.len()))
    } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'"') {
        // An escaped string inside a quoted log field: ends at the next `\"`.
        let start = i + 2;
        let mut j = start;
        while j + 1 < b.len() {
            if b[j] == b'\\' && b[j + 1] == b'"' {
                return Some((start, j, j + 2));
            }
            if b[j] == b'\\' {
                j += 2;
            } else {
                j += 1;
            }
        }
        Some((start, b.len(), b.len()))
    } else {
        None
    }
}

/// Push the quoted string at `i` of `b` with its content hidden; returns the index after it
/// (None: no string starts at `i`).
fn hide_quoted(
    b: &[u8],
    out: &mut Vec<u8>,
    i: usize,
    mark: &mut dyn FnMut(&str) -> String,
) -> Option<usize> {
    let (start, end, next) = quoted(b, i)?;
    out.extend_from_slice(&b[i..start]);
    if end > start {
        let value = String::from_utf8_lossy(&b[start..end]);
        out.extend_from_slice(mark(&value).as_bytes());
    }
    out.extend_from_slice(&b[end..next]);
    Some(next)
}

/// Redact one line (no PEM inside) given the state carried from the lines before.
fn scan(line: &str, st: &mut State, mark: &mut dyn FnMut(&str) -> String) -> String {
    let b = line.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if st.depth > 0 {
            match b[i] {
                b'{' | b'[' => st.depth += 1,
                b'}' | b']' => st.depth -= 1,
                _ => {}
            }
            if let Some(next) = hide_quoted(b, &mut out, i, mark) {
                i = next;
                continue;
            }
            out.push(b[i]);
            i += 1;
            continue;
        }
        let starts_ident =
            (b[i].is_ascii_alphabetic() || b[i] == b'_') && (i == 0 || !is_ident(b[i - 1]));
        if !starts_ident {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let ident = &line[start..i];
        out.extend_from_slice(ident.as_bytes());
        if !is_secret_key(ident) {
            continue;
        }
        // After the key: its closing quote (`"key":`, `\"key\":`), blanks, `=` or `:`.
        let mut j = i;
        if b.get(j) == Some(&b'\\') && b.get(j + 1) == Some(&b'"') {
            j += 2;
        } else if b.get(j) == Some(&b'"') {
            j += 1;
        }
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let assigned = matches!(b.get(j), Some(b'=' | b':'));
        if assigned {
            j += 1;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
        }
        match b.get(j) {
            // `tokens {` (an HCL block) or `key = {` / `"Keys": {` / `= [`.
            Some(b'{') | Some(b'[') if assigned || b[j] == b'{' => {
                out.extend_from_slice(&b[i..=j]);
                st.depth = 1;
                i = j + 1;
            }
            Some(b'"') | Some(b'\\') if assigned => {
                out.extend_from_slice(&b[i..j]);
                match hide_quoted(b, &mut out, j, mark) {
                    Some(next) => i = next,
                    None => i = j,
                }
            }
            Some(_) if assigned => {
                // An unquoted value (`CONSUL_HTTP_TOKEN=...`): hidden when it looks like a
                // secret (long, not a number or a boolean).
                let mut k = j;
                while k < b.len() && !b" \t,;}])'\"".contains(&b[k]) {
                    k += 1;
                }
                let value = &line[j..k];
                out.extend_from_slice(&b[i..j]);
                if value.len() >= MIN_LEN && value.parse::<f64>().is_err() {
                    out.extend_from_slice(mark(value).as_bytes());
                } else {
                    out.extend_from_slice(value.as_bytes());
                }
                i = k;
            }
            _ => {}
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
    const TOKEN: &str = "6f1c0a2e-1111-4222-8333-444455556666";

    #[test]
    fn hcl_secrets_are_hidden_whatever_their_value() {
        let hcl = format!(
            "datacenter = \"dc1\"\nencrypt = \"{KEY}\"\nacl {{\n  enabled = true\n  \
             enable_token_persistence = false\n\n  tokens {{\n    agent = \"{TOKEN}\"\n    \
             default = \"{TOKEN}\"\n    master = \"m-{TOKEN}\"\n  }}\n}}\nlog_level = \"info\"\n"
        );
        let r = structural(&hcl);
        assert!(!r.contains(KEY) && !r.contains(TOKEN), "{r}");
        assert!(r.contains("encrypt = \"<redacted>\""), "{r}");
        assert!(r.contains("    agent = \"<redacted>\""), "{r}");
        assert!(r.contains("enable_token_persistence = false"), "{r}");
        // Outside the block everything is kept.
        assert!(r.contains("datacenter = \"dc1\""), "{r}");
        assert!(r.contains("log_level = \"info\""), "{r}");
        assert_eq!(r.lines().count(), hcl.lines().count());
    }

    #[test]
    fn every_token_kind_and_inline_forms_are_hidden() {
        for key in [
            "agent",
            "default",
            "master",
            "initial_management",
            "agent_master",
            "agent_recovery",
            "replication",
            "config_file_service_registration",
        ] {
            let hcl = format!("acl {{ tokens {{ {key} = \"{TOKEN}\" }} }}\nx = \"{TOKEN}x\"\n");
            let r = structural(&hcl);
            assert!(!r.contains(&format!("\"{TOKEN}\"")), "{key}: {r}");
            let hcl = format!("acl = {{ tokens = {{ {key} = \"{TOKEN}\" }} }}\n");
            assert!(!structural(&hcl).contains(TOKEN), "{key}: {hcl}");
        }
        for line in [
            format!("acl_agent_token = \"{TOKEN}\""),
            format!("token = \"{TOKEN}\""),
            format!(
                "{{\"encrypt\": \"{KEY}\", \"acl\": {{\"tokens\": {{\"agent\": \"{TOKEN}\"}}}}}}"
            ),
            format!("CONSUL_HTTP_TOKEN={TOKEN}"),
            format!("args=[\"x\"] stdout=encrypt = \\\"{KEY}\\\" other"),
            format!("{{\"AccessorID\":\"a\",\"SecretID\":\"{TOKEN}\"}}"),
            format!("[{{\"WAN\":false,\"Keys\":{{\"{KEY}\":4}},\"PrimaryKeys\":{{\"{KEY}\":4}}}}]"),
            format!("header = {{ \"X-Consul-Token\" = [\"{TOKEN}\"] }}"),
        ] {
            let r = structural(&line);
            assert!(!r.contains(TOKEN) && !r.contains(KEY), "{line} -> {r}");
            assert!(r.contains(MARK), "{r}");
        }
        // Not secret: paths of key files, booleans, ordinary words.
        let kept = "key_file = \"/etc/consul.d/tls/server-key.pem\"\nverify_incoming = true\n\
                    the token: was refused\n";
        assert_eq!(structural(kept), kept);
    }

    #[test]
    fn pem_private_keys_are_hidden_multi_and_single_line() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n\
                   aGVsbG8gd29ybGQgdGhpcyBpcyBhIHRlc3Qga2V5IQ==\n-----END PRIVATE KEY-----\n\
                   after\n";
        let r = structural(pem);
        assert!(
            !r.contains("MIGHAgEAMBMG") && !r.contains("aGVsbG8g"),
            "{r}"
        );
        assert!(r.contains("-----END PRIVATE KEY-----\nafter\n"), "{r}");
        let diff = "+-----BEGIN EC PRIVATE KEY-----\n+MIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n\
                    +-----END EC PRIVATE KEY-----\n";
        let r = structural(diff);
        assert!(!r.contains("MIGHAgEAMBMG"), "{r}");
        assert!(r.contains("\n+<redacted>\n"), "{r}");
        let one = "stdout=\"-----BEGIN PRIVATE KEY-----\\nMIGHAgEAMBMGByqGSM49\\n-----END PRIVATE KEY-----\\n\"";
        let r = structural(one);
        assert!(!r.contains("MIGHAgEAMBMG"), "{r}");
        // Certificates are not secret.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";
        assert_eq!(structural(cert), cert);
    }

    #[test]
    fn remembered_and_extra_values_are_hidden_anywhere() {
        let mine = "bXktcmVtZW1iZXJlZC1zZWNyZXQta2V5LTMyYnl0ZXM=";
        remember(mine);
        remember("short");
        let pem = "-----BEGIN PRIVATE KEY-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n-----END PRIVATE KEY-----\n";
        remember(pem);
        let text = format!(
            "error: consul said {mine} and QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo= and {TOKEN} short"
        );
        let r = redact(&text, &[TOKEN.to_string(), String::new()]);
        assert!(
            !r.contains(mine) && !r.contains("QUJDREVG") && !r.contains(TOKEN),
            "{r}"
        );
        assert!(
            r.ends_with(" short"),
            "short values are not registered: {r}"
        );
    }

    #[test]
    fn numbered_marks_tell_values_apart_without_showing_them() {
        let other = "6f1c0a2e-1111-4222-8333-777777777777";
        let mut m = Marks::default();
        let a = m.redact(&format!("encrypt = \"{KEY}\"\ntoken = \"{TOKEN}\"\n"), &[]);
        let b = m.redact(
            &format!("encrypt = \"{KEY}\"\ntoken = \"{other}\"\nx = \"{other}\"\n"),
            &[other.to_string()],
        );
        assert_eq!(a, "encrypt = \"<redacted 1>\"\ntoken = \"<redacted 2>\"\n");
        assert_eq!(
            b,
            "encrypt = \"<redacted 1>\"\ntoken = \"<redacted 3>\"\nx = \"<redacted 3>\"\n"
        );
    }

    #[test]
    fn many_remembered_secrets_are_found_in_one_pass() {
        let tokens: Vec<String> = (0..20_000)
            .map(|i| format!("5eed{i:04x}-aaaa-4bbb-8ccc-{i:012x}"))
            .collect();
        for t in &tokens {
            remember(t);
        }
        let text = format!(
            "first {} middle {}{} last {}",
            tokens[0], tokens[7], tokens[19_999], tokens[12_345]
        );
        let started = std::time::Instant::now();
        let mut r = String::new();
        for _ in 0..100 {
            r = values(&text, &[]);
        }
        eprintln!("100 redactions with 20k secrets: {:?}", started.elapsed());
        assert_eq!(
            r,
            "first <redacted> middle <redacted><redacted> last <redacted>"
        );
    }
}
