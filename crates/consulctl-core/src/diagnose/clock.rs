//! `clock-skew`: hosts whose clock is far from the others'.

use super::*;

/// Clock offsets further than this from the hosts' median are reported.
pub(super) const CLOCK_SKEW_MS: i64 = 5000;

impl<'a> Cx<'a> {
    pub(super) fn clock_skew(&self) -> Option<Finding> {
        let offsets: Vec<(&str, i64)> = self
            .reachable()
            .filter_map(|o| o.clock_offset_ms.map(|ms| (o.host.as_str(), ms)))
            .collect();
        if offsets.len() < 2 {
            return None;
        }
        let mut sorted: Vec<i64> = offsets.iter().map(|(_, ms)| *ms).collect();
        sorted.sort_unstable();
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 0 {
            (sorted[mid - 1] + sorted[mid]) / 2
        } else {
            sorted[mid]
        };
        let mut d = Draft::new(FindingCode::ClockSkew);
        for (host, ms) in offsets {
            let diff = ms - median;
            if diff.abs() <= CLOCK_SKEW_MS {
                continue;
            }
            d.host(host);
            let side = if diff > 0 { "ahead of" } else { "behind" };
            d.fact(
                host,
                &format!(
                    "clock is {:.1} s {side} the median of the hosts",
                    diff.abs() as f64 / 1000.0
                ),
            );
            d.fix(format!(
                "sync the clock of {host}: enable NTP (`timedatectl set-ntp true`, or chrony/ntpd)"
            ));
        }
        d.cause = format!(
            "host clocks differ by more than {} s: TLS certificate checks, ACL token expiry and \
             the logs' timeline need agreeing clocks",
            CLOCK_SKEW_MS / 1000
        );
        d.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

    #[test]
    fn clock_far_from_the_median() {
        let mut obs = healthy();
        at(&mut obs, "client2").clock_offset_ms = Some(9000);
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["clock-skew"]);
        assert_eq!(findings[0].hosts, ["client2"]);
        assert_eq!(
            findings[0].evidence,
            ["client2: clock is 9.0 s ahead of the median of the hosts"]
        );
    }
}
