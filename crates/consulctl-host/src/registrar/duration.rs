//! Go durations, the form Consul (and registrator's `SERVICE_CHECK_INTERVAL`) takes:
//! one or more numbers (a fraction is fine), each followed by a unit `ns`, `us`/`µs`, `ms`,
//! `s`, `m`, `h`: `"500ms"`, `"10s"`, `"1m30s"`, `"1.5h"`. A bare number other than `0` is
//! refused, as Go refuses it.

use std::time::Duration;

/// What is allowed, for error messages.
pub const ALLOWED: &str =
    "a Go duration: numbers with units ns, us, ms, s, m, h (\"10s\", \"1m30s\", \"500ms\")";

/// Parse a Go duration; the error quotes the value and says what is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not {ALLOWED}");
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let nanos = match unit {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * nanos;
        rest = next;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms_parse() {
        let ok = [
            ("10s", 10_000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("0", 0),
            ("2us", 0),
            (" 3s ", 3000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s).unwrap().as_millis(), ms, "{s}");
        }
    }

    #[test]
    fn other_forms_are_refused_with_what_is_allowed() {
        for s in ["", "10", "abc", "10x", "s", "-1s", "1.2.3s", "5 s", "."] {
            let err = parse_duration(s).unwrap_err();
            assert!(err.contains("Go duration"), "{s}: {err}");
        }
    }
}
