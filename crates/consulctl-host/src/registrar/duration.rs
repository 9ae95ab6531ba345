//! Go durations (`10s`, `1m30s`, `500ms`, `1.5h`), as Consul reads check intervals, timeouts
//! and TTLs, and a short rendering of a [`Duration`] for messages.

use std::time::Duration;

/// What a Go duration looks like, for messages.
pub const DURATION_HELP: &str =
    "a Go duration is a number with a unit (ns, us, ms, s, m, h), e.g. 10s, 1m30s, 500ms or 1.5h";

/// The longest duration Go represents (about 292 years), in nanoseconds.
const MAX_NANOS: f64 = i64::MAX as f64;

/// A duration setting of the daemon's configuration: a Go duration, or `"0"` (none). The
/// error quotes the value and says what is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    parse_go_duration(s).ok_or_else(|| format!("{text:?} is not a Go duration: {DURATION_HELP}"))
}

/// Parse a Go duration as `time.ParseDuration` does, except that a sign and the bare `0` are
/// refused (a duration here is always a positive amount of time with a unit).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(after) => {
                let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(frac_len)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .char_indices()
            .find(|&(_, ch)| !(ch.is_ascii_lowercase() || ch == 'µ' || ch == 'μ'))
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        let number: f64 = format!("{}.{}0", if int.is_empty() { "0" } else { int }, frac)
            .parse()
            .ok()?;
        nanos += number * scale;
        if !nanos.is_finite() || nanos > MAX_NANOS {
            return None;
        }
        rest = after;
    }
    Some(Duration::from_nanos(nanos as u64))
}

/// A Go duration that is more than zero.
pub fn parse_positive(s: &str) -> Option<Duration> {
    parse_go_duration(s).filter(|d| !d.is_zero())
}

/// `1h`, `1m30s`, `45s`, `1.5s`, `500ms`: short, in the units a person would use.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let millis = d.subsec_millis();
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if millis > 0 {
        let frac = format!("{millis:03}");
        out += &format!("{s}.{}s", frac.trim_end_matches('0'));
    } else if s > 0 {
        out += &format!("{s}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Option<u128> {
        parse_go_duration(s).map(|d| d.as_millis())
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(ms("10s"), Some(10_000));
        assert_eq!(ms("1m30s"), Some(90_000));
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("1.5h"), Some(5_400_000));
        assert_eq!(ms(".5s"), Some(500));
        assert_eq!(ms("1.s"), Some(1000));
        assert_eq!(ms("2h45m"), Some(9_900_000));
        assert_eq!(ms("0s"), Some(0));
        assert_eq!(
            parse_go_duration("1500us"),
            Some(Duration::from_micros(1500))
        );
        assert_eq!(parse_go_duration("3µs"), Some(Duration::from_micros(3)));
        assert_eq!(parse_go_duration("3μs"), Some(Duration::from_micros(3)));
        assert_eq!(parse_go_duration("7ns"), Some(Duration::from_nanos(7)));
    }

    #[test]
    fn non_durations_are_refused() {
        for bad in [
            "",
            "10",
            "0",
            "s",
            ".s",
            "-5s",
            "+5s",
            "10 s",
            "10sec",
            "5d",
            "1m30",
            "1..5s",
            "ten",
            "10S",
            "1e3s",
            "99999999999h",
            "µ",
            "5s ",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_positive("0s"), None);
        assert_eq!(parse_positive("0.0001ns"), None);
        assert!(parse_positive("1ns").is_some());
    }

    #[test]
    fn durations_format_shortly() {
        let f = |ms| format_duration(Duration::from_millis(ms));
        assert_eq!(f(500), "500ms");
        assert_eq!(f(0), "0ms");
        assert_eq!(f(1500), "1.5s");
        assert_eq!(f(45_000), "45s");
        assert_eq!(f(90_000), "1m30s");
        assert_eq!(f(3_600_000), "1h");
        assert_eq!(f(3_660_250), "1h1m0.25s");
        assert_eq!(f(7_200_000 + 5_000), "2h5s");
    }
}
