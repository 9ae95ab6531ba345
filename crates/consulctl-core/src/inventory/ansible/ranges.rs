//! Ansible host patterns: `web[01:03].example.com` (ranges of numbers or letters, with an
//! optional step) and a trailing `:PORT`.

/// More hosts than this from one pattern is taken for a mistake.
const MAX_HOSTS: usize = 10_000;

/// `pattern` without a trailing `:PORT`, and the port as written. A `:` inside brackets
/// belongs to a range; a pattern with several `:` outside brackets is an IPv6 address.
pub(super) fn split_port(pattern: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    match colons.as_slice() {
        [i] => (&pattern[..*i], Some(&pattern[i + 1..])),
        _ => (pattern, None),
    }
}

/// The host names a pattern stands for, in order; `Err` says what is wrong with a range.
pub(super) fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_owned()]);
    };
    let close = pattern[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| format!("`{pattern}`: a range `[` without `]`"))?;
    let (head, range, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let items = range_items(range).map_err(|e| format!("`{pattern}`: {e}"))?;
    let tails = expand(tail)?;
    if items.len().saturating_mul(tails.len()) > MAX_HOSTS {
        return Err(format!(
            "`{pattern}`: more than {MAX_HOSTS} hosts from one pattern"
        ));
    }
    Ok(items
        .iter()
        .flat_map(|i| tails.iter().map(move |t| format!("{head}{i}{t}")))
        .collect())
}

/// `BEGIN:END` or `BEGIN:END:STEP`: numbers (zero-padded when BEGIN has a leading zero, as
/// Ansible does) or single letters.
fn range_items(range: &str) -> Result<Vec<String>, String> {
    const FORM: &str = "expected a range such as [01:20], [1:9:2] or [a:f]";
    let parts: Vec<&str> = range.split(':').collect();
    let (begin, end, step) = match parts.as_slice() {
        [b, e] => (*b, *e, "1"),
        [b, e, s] => (*b, *e, *s),
        _ => return Err(FORM.into()),
    };
    let begin = if begin.is_empty() { "0" } else { begin };
    let step: usize = match step.parse() {
        Ok(s) if s > 0 => s,
        _ => return Err(format!("the step `{step}` is not a positive number")),
    };
    let letter = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        }
    };
    if let (Some(b), Some(e)) = (letter(begin), letter(end)) {
        if b > e {
            return Err(format!("`{b}` comes after `{e}`"));
        }
        return Ok((b..=e).step_by(step).map(String::from).collect());
    }
    let (Ok(b), Ok(e)) = (begin.parse::<u64>(), end.parse::<u64>()) else {
        return Err(FORM.into());
    };
    if b > e {
        return Err(format!("{b} is more than {e}"));
    }
    if (e - b) as usize / step >= MAX_HOSTS {
        return Err(format!("more than {MAX_HOSTS} hosts"));
    }
    let width = if begin.len() > 1 && begin.starts_with('0') {
        if begin.len() != end.len() {
            return Err(format!(
                "`{begin}` and `{end}` differ in length (a zero-padded range needs both padded)"
            ));
        }
        begin.len()
    } else {
        0
    };
    Ok((b..=e)
        .step_by(step)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_like_ansible() {
        assert_eq!(expand("web1").unwrap(), ["web1"]);
        assert_eq!(
            expand("web[01:03].example.com").unwrap(),
            [
                "web01.example.com",
                "web02.example.com",
                "web03.example.com"
            ]
        );
        assert_eq!(expand("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(expand("n[1:10:4]").unwrap(), ["n1", "n5", "n9"]);
        assert_eq!(expand("n[:2]").unwrap(), ["n0", "n1", "n2"]);
        assert_eq!(
            expand("r[1:2]-[a:b]").unwrap(),
            ["r1-a", "r1-b", "r2-a", "r2-b"]
        );
        for bad in ["w[3:1]", "w[1:x]", "w[01:100]", "w[1:3:0]", "w[1:3", "w[1]"] {
            assert!(expand(bad).is_err(), "{bad}");
        }
        assert!(expand("w[0:99999]").is_err());
    }

    #[test]
    fn a_port_is_split_off_outside_ranges() {
        assert_eq!(split_port("web1:2222"), ("web1", Some("2222")));
        assert_eq!(split_port("web[1:3]"), ("web[1:3]", None));
        assert_eq!(split_port("web[1:3]:22"), ("web[1:3]", Some("22")));
        assert_eq!(split_port("fe80::1"), ("fe80::1", None));
        assert_eq!(split_port("10.0.0.1"), ("10.0.0.1", None));
    }
}
