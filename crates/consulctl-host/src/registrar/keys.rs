//! registrator's `SERVICE_*` keys, sorted out: global (`SERVICE_<KEY>`) or for one container
//! port (`SERVICE_<port>_<KEY>`), and what each is for (name, ID, tags, ignore, a check
//! setting, or meta).
//!
//! The words after `SERVICE_` are matched without regard to case (`SERVICE_name` is the name,
//! as in registrator, which lowercases them). An empty value is the same as no key.

use std::collections::BTreeMap;

/// The check settings a `CHECK_<WORD>` key may name.
pub const CHECK_WORDS: [&str; 9] = [
    "HTTP",
    "HTTPS",
    "TCP",
    "SCRIPT",
    "TTL",
    "INTERVAL",
    "TIMEOUT",
    "INITIAL_STATUS",
    "DEREGISTER_AFTER",
];

/// One setting: the key as the container spells it (for problems) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
}

/// A key that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: String,
    pub message: String,
}

/// A container's settings by scope. Words are uppercased (`NAME`, `CHECK_HTTP`, `REGION`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub global: BTreeMap<String, Setting>,
    pub per_port: BTreeMap<u16, BTreeMap<String, Setting>>,
}

/// What a key's word is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word<'a> {
    Name,
    Id,
    Tags,
    Ignore,
    /// `CHECK_HTTP` -> `HTTP` (one of [`CHECK_WORDS`]).
    Check(&'a str),
    /// `CHECK_<WORD>` with a word not in [`CHECK_WORDS`].
    UnknownCheck(&'a str),
    /// Anything else: service meta.
    Meta,
}

/// What an (uppercased) word is for.
pub fn word(w: &str) -> Word<'_> {
    match w {
        "NAME" => Word::Name,
        "ID" => Word::Id,
        "TAGS" => Word::Tags,
        "IGNORE" => Word::Ignore,
        _ => match w.strip_prefix("CHECK_") {
            Some(c) if CHECK_WORDS.contains(&c) => Word::Check(c),
            Some(c) => Word::UnknownCheck(c),
            None => Word::Meta,
        },
    }
}

impl Keys {
    /// Sort out `settings` (`SERVICE_*` keys, as [`Container::service_settings`] gives them).
    /// Keys that cannot be read (a port number out of range, an unknown check word) are
    /// problems and left out.
    ///
    /// [`Container::service_settings`]: super::container::Container::service_settings
    pub fn parse(settings: &BTreeMap<String, String>) -> (Keys, Vec<KeyProblem>) {
        let mut keys = Keys::default();
        let mut problems = Vec::new();
        for (key, value) in settings {
            let Some(rest) = key.strip_prefix("SERVICE_") else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let setting = Setting {
                key: key.clone(),
                value: value.clone(),
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let scoped = (digits > 0 && rest.as_bytes().get(digits) == Some(&b'_'))
                .then(|| (&rest[..digits], &rest[digits + 1..]));
            let (port, w) = match scoped {
                Some((number, w)) => match number.parse::<u16>() {
                    Ok(port) if port > 0 => (Some(port), w.to_ascii_uppercase()),
                    _ => {
                        problems.push(KeyProblem {
                            key: key.clone(),
                            message: format!("{number} is not a port number (1-65535)"),
                        });
                        continue;
                    }
                },
                None => (None, rest.to_ascii_uppercase()),
            };
            if let Word::UnknownCheck(c) = word(&w) {
                problems.push(KeyProblem {
                    key: key.clone(),
                    message: format!(
                        "unknown check type {c}: a check setting is CHECK_ followed by one of {}",
                        CHECK_WORDS.join(", ")
                    ),
                });
                continue;
            }
            let scope = match port {
                Some(port) => keys.per_port.entry(port).or_default(),
                None => &mut keys.global,
            };
            // Two spellings of one word (`SERVICE_NAME`, `SERVICE_name`): the first in key
            // order (upper case) is kept.
            scope.entry(w).or_insert(setting);
        }
        (keys, problems)
    }

    /// The setting `word` for container port `port`: the port's own, else the global one.
    pub fn get(&self, port: u16, word: &str) -> Option<&Setting> {
        self.port_only(port, word).or_else(|| self.global.get(word))
    }

    /// The port's own setting `word`, not the global one.
    pub fn port_only(&self, port: u16, word: &str) -> Option<&Setting> {
        self.per_port.get(&port).and_then(|s| s.get(word))
    }

    /// The global setting `word`.
    pub fn global(&self, word: &str) -> Option<&Setting> {
        self.global.get(word)
    }

    /// The meta settings of container port `port` (its own over the global ones), by word.
    pub fn meta(&self, port: u16) -> BTreeMap<&str, &Setting> {
        let mut meta: BTreeMap<&str, &Setting> = BTreeMap::new();
        let port_scope = self.per_port.get(&port).into_iter().flatten();
        for (w, setting) in self.global.iter().chain(port_scope) {
            if word(w) == Word::Meta {
                meta.insert(w.as_str(), setting);
            }
        }
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> (Keys, Vec<KeyProblem>) {
        let settings = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Keys::parse(&settings)
    }

    fn value(s: Option<&Setting>) -> Option<&str> {
        s.map(|s| s.value.as_str())
    }

    #[test]
    fn keys_are_sorted_by_scope_and_word() {
        let (keys, problems) = parse(&[
            ("SERVICE_NAME", "web"),
            ("SERVICE_80_NAME", "http"),
            ("SERVICE_443_check_http", "/health"),
            ("SERVICE_REGION", "eu"),
            ("SERVICE_80", "bare"),
            ("SERVICE_EMPTY", ""),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(value(keys.get(80, "NAME")), Some("http"));
        assert_eq!(value(keys.get(443, "NAME")), Some("web"));
        assert_eq!(value(keys.port_only(443, "NAME")), None);
        assert_eq!(value(keys.get(443, "CHECK_HTTP")), Some("/health"));
        assert_eq!(
            keys.get(443, "CHECK_HTTP").unwrap().key,
            "SERVICE_443_check_http"
        );
        // `SERVICE_80` has no word after the port: it is the global meta key `80`.
        assert_eq!(value(keys.global("80")), Some("bare"));
        assert_eq!(keys.global("EMPTY"), None);
        let meta: Vec<_> = keys.meta(80).into_keys().collect();
        assert_eq!(meta, ["80", "REGION"]);
    }

    #[test]
    fn port_meta_overrides_global_meta() {
        let (keys, _) = parse(&[("SERVICE_ZONE", "a"), ("SERVICE_81_ZONE", "b")]);
        assert_eq!(keys.meta(81)["ZONE"].value, "b");
        assert_eq!(keys.meta(80)["ZONE"].value, "a");
    }

    #[test]
    fn bad_ports_and_unknown_checks_are_problems() {
        let (keys, problems) = parse(&[
            ("SERVICE_70000_NAME", "x"),
            ("SERVICE_0_NAME", "x"),
            ("SERVICE_8080_CHECK_FOO", "1"),
            ("SERVICE_CHECK_", "1"),
        ]);
        let bad: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            bad,
            [
                "SERVICE_0_NAME",
                "SERVICE_70000_NAME",
                "SERVICE_8080_CHECK_FOO",
                "SERVICE_CHECK_"
            ]
        );
        assert!(problems[2].message.contains("unknown check type FOO"));
        assert!(problems[2]
            .message
            .contains("HTTP, HTTPS, TCP, SCRIPT, TTL"));
        assert_eq!(keys, Keys::default());
    }

    #[test]
    fn words_are_classified() {
        assert_eq!(word("NAME"), Word::Name);
        assert_eq!(word("ID"), Word::Id);
        assert_eq!(word("TAGS"), Word::Tags);
        assert_eq!(word("IGNORE"), Word::Ignore);
        assert_eq!(word("CHECK_TTL"), Word::Check("TTL"));
        assert_eq!(word("CHECK_X"), Word::UnknownCheck("X"));
        assert_eq!(word("CHECKS"), Word::Meta);
        assert_eq!(word("VERSION"), Word::Meta);
    }
}
