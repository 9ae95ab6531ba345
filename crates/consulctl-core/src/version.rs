//! Consul versions and the config features that depend on them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Is this version at least `major.minor`?
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Parse the first line of `consul version` output, e.g. `Consul v1.8.7`
    /// (Debian builds print `Consul v1.8.7` too; dev builds add `-dev`).
    pub fn from_consul_output(out: &str) -> Option<Version> {
        let line = out.lines().next()?;
        let v = line.trim().strip_prefix("Consul v")?;
        let v = v
            .split(|c: char| c == '-' || c == '+' || c.is_whitespace())
            .next()?;
        v.parse().ok()
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}` is not a Consul version; expected MAJOR.MINOR.PATCH such as 1.8.7 or 1.21.0"
            )
        };
        let s = s.trim().trim_start_matches('v');
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, String> {
            parts
                .next()
                .ok_or_else(bad)?
                .parse::<u32>()
                .map_err(|_| bad())
        };
        let v = Version::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_prefixed() {
        assert_eq!("1.8.7".parse::<Version>().unwrap(), Version::new(1, 8, 7));
        assert_eq!(
            "v1.21.0".parse::<Version>().unwrap(),
            Version::new(1, 21, 0)
        );
        assert!("1.8".parse::<Version>().is_err());
        assert!("1.8.7.1".parse::<Version>().is_err());
        assert!("one.two.three".parse::<Version>().is_err());
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(Version::new(1, 12, 0) > Version::new(1, 9, 9));
        assert!(Version::new(1, 21, 0).at_least(1, 14));
        assert!(!Version::new(1, 8, 7).at_least(1, 9));
    }

    #[test]
    fn reads_consul_version_output() {
        let out = "Consul v1.8.7\nRevision \nProtocol 2 spoken by default, understands 2 to 3\n";
        assert_eq!(
            Version::from_consul_output(out),
            Some(Version::new(1, 8, 7))
        );
        assert_eq!(
            Version::from_consul_output("Consul v1.15.0-dev\n"),
            Some(Version::new(1, 15, 0))
        );
        assert_eq!(Version::from_consul_output("bash: consul: not found"), None);
    }
}
