//! `--limit` selectors: which hosts of the inventory a run works on.
//!
//! A selector is a comma-separated list of terms; a host is selected when it matches any term:
//!
//! | term                          | selects                          |
//! |-------------------------------|----------------------------------|
//! | `NAME`                        | the host with that name          |
//! | `tag:NAME`                    | every host with that tag         |
//! | `role:server`, `servers`      | every server                     |
//! | `role:client`, `clients`      | every client                     |
//!
//! A host literally named `servers` or `clients` is selected by that name (names win over the
//! role shorthands; `role:server` always means the role). A term that matches no host is an
//! error naming the term and listing the valid names and tags, so a typo never silently selects
//! nothing.

use std::fmt;

use crate::model::{Cluster, Host, Role};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Name(String),
    Tag(String),
    Role(Role),
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Name(n) => f.write_str(n),
            Term::Tag(t) => write!(f, "tag:{t}"),
            Term::Role(r) => write!(f, "role:{}", r.as_str()),
        }
    }
}

/// A parsed `--limit` value, checked against one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    terms: Vec<Term>,
}

/// How many names (or tags) an error message lists before "...".
const LIST_MAX: usize = 20;

impl Selector {
    /// Parse `s` (e.g. `server1,tag:rack2,clients`) and check that every term matches at
    /// least one host of `cluster`. The error says which term is wrong and what is valid.
    pub fn parse(s: &str, cluster: &Cluster) -> Result<Selector, String> {
        if s.trim().is_empty() {
            return Err(format!(
                "--limit is empty; expected comma-separated host names, tag:NAME, role:server or \
                 role:client (hosts: {})",
                list(cluster.hosts.iter().map(|h| h.name.as_str()))
            ));
        }
        let mut terms = Vec::new();
        for raw in s.split(',') {
            let t = raw.trim();
            if t.is_empty() {
                return Err(format!(
                    "--limit `{s}` has an empty term; expected comma-separated host names, \
                     tag:NAME, role:server or role:client"
                ));
            }
            let term = Self::term(t, cluster)?;
            if !cluster.hosts.iter().any(|h| term.matches(h)) {
                return Err(no_match(t, &term, cluster));
            }
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        Ok(Selector { terms })
    }

    fn term(t: &str, cluster: &Cluster) -> Result<Term, String> {
        if let Some(tag) = t.strip_prefix("tag:") {
            if tag.is_empty() {
                return Err(format!(
                    "--limit term `{t}` names no tag; known tags: {}",
                    list(tags(cluster).iter().map(String::as_str))
                ));
            }
            return Ok(Term::Tag(tag.to_owned()));
        }
        if let Some(role) = t.strip_prefix("role:") {
            return match role {
                "server" | "servers" => Ok(Term::Role(Role::Server)),
                "client" | "clients" => Ok(Term::Role(Role::Client)),
                _ => Err(format!(
                    "--limit term `{t}`: unknown role `{role}`; expected role:server or role:client"
                )),
            };
        }
        if cluster.host(t).is_some() {
            return Ok(Term::Name(t.to_owned()));
        }
        match t {
            "servers" => Ok(Term::Role(Role::Server)),
            "clients" => Ok(Term::Role(Role::Client)),
            _ => Ok(Term::Name(t.to_owned())),
        }
    }

    /// Is `host` selected?
    /// A selector that matches no host (a playbook step for a role the inventory lacks).
    pub fn nothing() -> Selector {
        Selector { terms: Vec::new() }
    }

    pub fn matches(&self, host: &Host) -> bool {
        self.terms.iter().any(|t| t.matches(host))
    }

    /// The selected hosts of `cluster`, in inventory order.
    pub fn select<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Host> {
        cluster.hosts.iter().filter(|h| self.matches(h)).collect()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self.terms.iter().map(Term::to_string).collect();
        f.write_str(&terms.join(","))
    }
}

impl Term {
    fn matches(&self, host: &Host) -> bool {
        match self {
            Term::Name(n) => host.name == *n,
            Term::Tag(t) => host.tags.iter().any(|ht| ht == t),
            Term::Role(r) => host.role == *r,
        }
    }
}

fn tags(cluster: &Cluster) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for h in &cluster.hosts {
        for t in &h.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
    }
    tags
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        return "(none)".into();
    }
    let mut s = items
        .iter()
        .take(LIST_MAX)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_MAX {
        s.push_str(&format!(", ... ({} in all)", items.len()));
    }
    s
}

fn no_match(t: &str, term: &Term, cluster: &Cluster) -> String {
    let names = list(cluster.hosts.iter().map(|h| h.name.as_str()));
    let tags = tags(cluster);
    let tags = list(tags.iter().map(String::as_str));
    match term {
        Term::Role(r) => format!(
            "--limit term `{t}` matches no host: the inventory has no {}s",
            r.as_str()
        ),
        Term::Tag(_) => format!("--limit term `{t}` matches no host; known tags: {tags}"),
        Term::Name(_) => format!(
            "--limit term `{t}` matches no host; host names: {names}; tags (use tag:NAME): {tags}; \
             roles: servers, clients"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cluster() -> Cluster {
        let text = r#"
[cluster]
datacenter = "dc1"
[consul]
version = "1.8.7"
source = { package = "auto" }
[[hosts]]
name = "server1"
address = "10.0.0.1"
role = "server"
tags = ["rack1"]
[[hosts]]
name = "server2"
address = "10.0.0.2"
role = "server"
tags = ["rack2", "ssd"]
[[hosts]]
name = "server3"
address = "10.0.0.3"
role = "server"
tags = ["rack1"]
[[hosts]]
name = "agent1"
address = "10.0.0.4"
role = "client"
tags = ["rack2"]
"#;
        crate::inventory::parse(Path::new("t.toml"), text).expect("valid inventory")
    }

    fn names(sel: &Selector, c: &Cluster) -> Vec<String> {
        sel.select(c).iter().map(|h| h.name.clone()).collect()
    }

    #[test]
    fn host_names_select_those_hosts() {
        let c = cluster();
        let s = Selector::parse("server2, agent1", &c).unwrap();
        assert_eq!(names(&s, &c), ["server2", "agent1"]);
        assert!(!s.matches(c.host("server1").unwrap()));
    }

    #[test]
    fn tag_term_selects_every_tagged_host() {
        let c = cluster();
        let s = Selector::parse("tag:rack1", &c).unwrap();
        assert_eq!(names(&s, &c), ["server1", "server3"]);
    }

    #[test]
    fn role_terms_and_shorthands_select_by_role() {
        let c = cluster();
        for sel in ["role:server", "servers"] {
            let s = Selector::parse(sel, &c).unwrap();
            assert_eq!(names(&s, &c), ["server1", "server2", "server3"], "{sel}");
        }
        for sel in ["role:client", "clients"] {
            let s = Selector::parse(sel, &c).unwrap();
            assert_eq!(names(&s, &c), ["agent1"], "{sel}");
        }
    }

    #[test]
    fn terms_are_a_union_in_inventory_order() {
        let c = cluster();
        let s = Selector::parse("clients,tag:ssd,server1,server1", &c).unwrap();
        assert_eq!(names(&s, &c), ["server1", "server2", "agent1"]);
        assert_eq!(s.to_string(), "role:client,tag:ssd,server1");
    }

    #[test]
    fn unknown_host_name_is_an_error_listing_names_and_tags() {
        let c = cluster();
        let e = Selector::parse("server1,server9", &c).unwrap_err();
        assert!(e.contains("`server9` matches no host"), "{e}");
        assert!(e.contains("server1, server2, server3, agent1"), "{e}");
        assert!(e.contains("rack1, rack2, ssd"), "{e}");
    }

    #[test]
    fn unknown_tag_is_an_error_listing_tags() {
        let c = cluster();
        let e = Selector::parse("tag:rack9", &c).unwrap_err();
        assert!(e.contains("`tag:rack9` matches no host"), "{e}");
        assert!(e.contains("known tags: rack1, rack2, ssd"), "{e}");
    }

    #[test]
    fn unknown_role_is_an_error() {
        let c = cluster();
        let e = Selector::parse("role:master", &c).unwrap_err();
        assert!(e.contains("unknown role `master`"), "{e}");
    }

    #[test]
    fn role_without_hosts_is_an_error() {
        let text = r#"
[cluster]
datacenter = "dc1"
[consul]
version = "1.8.7"
source = { package = "auto" }
[[hosts]]
name = "s1"
address = "10.0.0.1"
role = "server"
"#;
        let c = crate::inventory::parse(Path::new("t.toml"), text).unwrap();
        let e = Selector::parse("clients", &c).unwrap_err();
        assert!(e.contains("`clients` matches no host"), "{e}");
        assert!(e.contains("no clients"), "{e}");
    }

    #[test]
    fn empty_selector_and_empty_terms_are_errors() {
        let c = cluster();
        assert!(Selector::parse("", &c)
            .unwrap_err()
            .contains("--limit is empty"));
        assert!(Selector::parse("server1,,server2", &c)
            .unwrap_err()
            .contains("empty term"));
        assert!(Selector::parse("tag:", &c)
            .unwrap_err()
            .contains("names no tag"));
    }

    #[test]
    fn host_named_like_a_role_shorthand_is_selected_by_name() {
        let text = r#"
[cluster]
datacenter = "dc1"
[consul]
version = "1.8.7"
source = { package = "auto" }
[[hosts]]
name = "servers"
address = "10.0.0.1"
role = "server"
[[hosts]]
name = "s2"
address = "10.0.0.2"
role = "server"
"#;
        let c = crate::inventory::parse(Path::new("t.toml"), text).unwrap();
        let s = Selector::parse("servers", &c).unwrap();
        assert_eq!(names(&s, &c), ["servers"]);
        let s = Selector::parse("role:server", &c).unwrap();
        assert_eq!(names(&s, &c), ["servers", "s2"]);
    }

    #[test]
    fn names_are_case_sensitive() {
        let c = cluster();
        let e = Selector::parse("Server1", &c).unwrap_err();
        assert!(e.contains("`Server1` matches no host"), "{e}");
    }
}
