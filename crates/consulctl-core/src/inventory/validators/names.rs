//! Names Consul and the hosts accept: datacenters, node names, tags, system users, versions
//! in release file names.

use super::*;

/// Consul datacenter (and our cluster name): `[a-z0-9_-]+`.
pub(in crate::inventory) fn is_consul_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Node name: `[A-Za-z0-9_.-]+` (the seed uses IP addresses as names).
pub(in crate::inventory) fn is_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(in crate::inventory) fn is_tag(s: &str) -> bool {
    is_node_name(s)
}

/// The version in a release file name such as `consul_1.21.0_linux_amd64.zip`,
/// `consul_1.8.7+dfsg1-1_amd64.deb` or `.../consul/1.21.0/...`.
pub(in crate::inventory) fn version_in_name(name: &str) -> Option<Version> {
    let base = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    for prefix in ["consul_", "consul-"] {
        if let Some(pos) = base.find(prefix) {
            let rest = &base[pos + prefix.len()..];
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            if let Ok(v) = v.trim_end_matches('.').parse::<Version>() {
                return Some(v);
            }
        }
    }
    None
}

/// A system user name `useradd` accepts on every distribution (the portable subset).
pub(in crate::inventory) fn valid_user_name(u: &str) -> bool {
    let mut chars = u.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && u.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
