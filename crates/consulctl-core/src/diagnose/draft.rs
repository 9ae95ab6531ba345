//! One finding under construction: hosts, facts and log lines gathered by a rule, trimmed to
//! the latest distinct lines per host when the finding is made.

use super::*;

/// Log lines kept as evidence per host and finding (the latest distinct ones).
pub(super) const LINES_PER_HOST: usize = 3;

/// Longest evidence entry, in characters.
pub(super) const EVIDENCE_CHARS: usize = 300;

pub(super) struct Draft {
    pub(super) code: FindingCode,
    pub(super) hosts: BTreeSet<String>,
    /// API answers and file facts, each already prefixed with its host.
    pub(super) facts: Vec<String>,
    /// (host, log line); trimmed to the latest distinct lines per host at the end.
    pub(super) logs: Vec<(String, String)>,
    pub(super) cause: String,
    pub(super) fix: Vec<String>,
}

impl Draft {
    pub(super) fn new(code: FindingCode) -> Self {
        Draft {
            code,
            hosts: BTreeSet::new(),
            facts: Vec::new(),
            logs: Vec::new(),
            cause: String::new(),
            fix: Vec::new(),
        }
    }

    pub(super) fn host(&mut self, name: &str) {
        if !name.is_empty() {
            self.hosts.insert(name.to_string());
        }
    }

    /// A fact read on `host` (an API answer, a file on the host).
    pub(super) fn fact(&mut self, host: &str, text: &str) {
        self.note(&format!("{host}: {text}"));
    }

    /// A fact about the whole cluster.
    pub(super) fn note(&mut self, text: &str) {
        let text = clip(text);
        if !self.facts.contains(&text) {
            self.facts.push(text);
        }
    }

    pub(super) fn log(&mut self, host: &str, line: &str) {
        self.logs.push((host.to_string(), line.to_string()));
    }

    pub(super) fn fix(&mut self, fix: String) {
        if !self.fix.contains(&fix) {
            self.fix.push(fix);
        }
    }

    pub(super) fn has_evidence(&self) -> bool {
        !self.facts.is_empty() || !self.logs.is_empty()
    }

    /// The finding, or None when it names no host.
    pub(super) fn done(self) -> Option<Finding> {
        (!self.hosts.is_empty()).then(|| self.finish())
    }

    pub(super) fn finish(self) -> Finding {
        let Draft {
            code,
            hosts,
            facts,
            logs,
            cause,
            fix,
        } = self;
        let mut evidence = facts;
        let mut order: Vec<&str> = Vec::new();
        for (h, _) in &logs {
            if !order.contains(&h.as_str()) {
                order.push(h);
            }
        }
        for host in order {
            // The latest distinct lines (timestamps and ephemeral ports aside), oldest first.
            let mut keys = BTreeSet::new();
            let mut kept: Vec<&str> = Vec::new();
            for (_, line) in logs.iter().rev().filter(|(h, _)| h == host) {
                if kept.len() == LINES_PER_HOST {
                    break;
                }
                if keys.insert(dedup_key(line)) {
                    kept.push(line);
                }
            }
            for line in kept.into_iter().rev() {
                let e = clip(&format!("{host}: {}", line.trim()));
                if !evidence.contains(&e) {
                    evidence.push(e);
                }
            }
        }
        Finding {
            code,
            hosts: hosts.into_iter().collect(),
            evidence,
            cause,
            fix,
        }
    }
}

/// What makes two log lines the same message: the text from the level on, without the
/// timestamp, and `from=` without its (ephemeral) port.
pub(super) fn dedup_key(line: &str) -> String {
    let line = line.trim();
    let body = LEVELS
        .iter()
        .filter_map(|l| line.find(l))
        .min()
        .map_or(line, |i| &line[i..]);
    match body.find("from=") {
        Some(i) => {
            let rest = &body[i + "from=".len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            format!(
                "{}from={}{}",
                &body[..i],
                strip_port(&rest[..end]),
                &rest[end..]
            )
        }
        None => body.to_string(),
    }
}

/// At most [`EVIDENCE_CHARS`] characters, `…` marking a cut.
pub(super) fn clip(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(EVIDENCE_CHARS) {
        None => text.to_string(),
        Some(_) => {
            let cut = text
                .char_indices()
                .nth(EVIDENCE_CHARS - 1)
                .map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_clipped_deduplicated_and_capped_per_host() {
        let mut d = Draft::new(FindingCode::AgentDown);
        d.host("h");
        for i in 1..=5 {
            d.log(
                "h",
                &format!("2024-01-02T03:04:0{i}.000Z [ERROR] agent: failure number {i}"),
            );
        }
        d.log(
            "h",
            "2024-01-02T03:05:00.000Z [ERROR] agent: failure number 5",
        );
        d.log("g", &"x".repeat(400));
        d.fact("h", "a fact");
        d.fact("h", "a fact");
        let f = d.finish();
        assert_eq!(
            f.evidence[..4],
            [
                "h: a fact",
                "h: 2024-01-02T03:04:03.000Z [ERROR] agent: failure number 3",
                "h: 2024-01-02T03:04:04.000Z [ERROR] agent: failure number 4",
                "h: 2024-01-02T03:05:00.000Z [ERROR] agent: failure number 5",
            ]
        );
        assert_eq!(f.evidence.len(), 5);
        assert_eq!(f.evidence[4].chars().count(), EVIDENCE_CHARS);
        assert!(f.evidence[4].starts_with("g: xxx") && f.evidence[4].ends_with('…'));
    }
}
