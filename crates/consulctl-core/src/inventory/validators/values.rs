//! Typed scalar values: strings, bounded integers, choices, lists.

use super::*;

pub(in crate::inventory) const LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERR"];

impl Ctx<'_> {
    pub(in crate::inventory) fn string(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        match v {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.bad(key, other, "expected a string");
                None
            }
        }
    }

    pub(in crate::inventory) fn int_in(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
        lo: i64,
        hi: i64,
    ) -> Option<i64> {
        match v {
            None => None,
            Some(toml::Value::Integer(n)) if (lo..=hi).contains(n) => Some(*n),
            Some(other) => {
                self.bad(key, other, format!("expected an integer from {lo} to {hi}"));
                None
            }
        }
    }

    pub(in crate::inventory) fn choice<T: Copy>(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let value = v.as_ref()?;
        if let toml::Value::String(s) = value {
            if let Some((_, t)) = choices.iter().find(|(name, _)| name == s) {
                return Some(*t);
            }
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        self.bad(
            key,
            value,
            format!("expected one of {}", quoted_list(&names)),
        );
        None
    }

    pub(in crate::inventory) fn init(&mut self, key: &KeyPath, v: &raw::V) -> Option<Init> {
        self.choice(
            key,
            v,
            &[
                ("systemd", Init::Systemd),
                ("supervisord", Init::Supervisord),
            ],
        )
    }

    pub(in crate::inventory) fn log_level(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.string(key, v)?;
        let up = s.to_ascii_uppercase();
        if LOG_LEVELS.contains(&up.as_str()) {
            Some(up)
        } else {
            self.bad(
                key,
                v.as_ref()?,
                format!("expected one of {} (any case)", quoted_list(LOG_LEVELS)),
            );
            None
        }
    }

    /// An array of strings, each turned into a `T` by `rule` (`Err`: what is allowed), with no
    /// two the `same`. `None` (after reporting every problem) when anything is wrong.
    pub(in crate::inventory) fn list<T>(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
        example: &str,
        rule: impl Fn(&str) -> Result<T, String>,
        same: impl Fn(&T, &T) -> bool,
    ) -> Option<Vec<T>> {
        let value = v.as_ref()?;
        let toml::Value::Array(items) = value else {
            self.bad(
                key,
                value,
                format!("expected an array of strings such as {example}"),
            );
            return None;
        };
        let mut out: Vec<(T, usize)> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let toml::Value::String(s) = item else {
                self.bad(&key.i(i), item, "expected a string");
                ok = false;
                continue;
            };
            match rule(s) {
                Ok(t) => {
                    if let Some((_, first)) = out.iter().find(|(o, _)| same(o, &t)) {
                        let first = key.i(*first);
                        self.diag(
                            &key.i(i),
                            format!(
                                "= {}: given twice (also {first}); remove one",
                                json_quote(s)
                            ),
                        );
                        ok = false;
                    } else {
                        out.push((t, i));
                    }
                }
                Err(why) => {
                    self.bad(&key.i(i), item, why);
                    ok = false;
                }
            }
        }
        ok.then(|| out.into_iter().map(|(t, _)| t).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::test_support::*;

    #[test]
    fn log_level_is_case_insensitive_and_stored_uppercase() {
        let c = ok(&doc(
            "[clients]\nlog_level = \"err\"\n[servers]\nlog_level = \"Debug\"\n",
        ));
        assert!(c.hosts.iter().all(|h| h.log_level == "DEBUG"));
    }

    #[test]
    fn invalid_log_level_is_rejected() {
        only(
            &doc("[servers]\nlog_level = \"verbose\"\n"),
            "servers.log_level",
            13,
            "servers.log_level = \"verbose\": expected one of \"TRACE\", \"DEBUG\", \"INFO\", \
             \"WARN\", \"ERR\"",
        );
    }

    #[test]
    fn invalid_init_is_rejected() {
        let text = hosts_doc(&s2_with("init = \"runit\""));
        only(
            &text,
            "hosts[1].init",
            3,
            "hosts[1].init = \"runit\": expected one of \"systemd\", \"supervisord\"",
        );
    }
}
