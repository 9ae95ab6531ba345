//! What both Ansible formats are read into: groups (their hosts, child groups and variables)
//! and hosts (their own variables), each with the line that named it; and Ansible's rules for
//! which groups a host is in and which value of a variable wins.

use std::collections::{BTreeMap, HashMap, HashSet};

/// The group every host is in; its variables are the weakest.
pub(super) const ALL: &str = "all";
/// Where Ansible puts hosts listed outside any group.
pub(super) const UNGROUPED: &str = "ungrouped";

/// Variables in file order (a later one wins).
pub(super) type Vars = Vec<(String, Var)>;

/// A variable's value and the line that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Var {
    /// The value as text; `None` for a list or a mapping (YAML), which no imported variable
    /// takes.
    pub(super) value: Option<String>,
    pub(super) line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Group {
    pub(super) name: String,
    /// The line that first named the group (its header, or where it is a child).
    pub(super) line: Option<usize>,
    /// Hosts listed in the group itself, in file order.
    pub(super) hosts: Vec<String>,
    /// Groups listed as its children, in file order.
    pub(super) children: Vec<String>,
    pub(super) vars: Vars,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostEntry {
    pub(super) name: String,
    /// The line that first listed the host.
    pub(super) line: Option<usize>,
    /// Its own variables, from every line that lists it.
    pub(super) vars: Vars,
}

/// An Ansible inventory: groups and hosts in the order the file names them.
#[derive(Debug, Default)]
pub(super) struct Groups {
    groups: Vec<Group>,
    hosts: Vec<HostEntry>,
}

impl Groups {
    /// The group `name`, added when new. `line` is kept when it is the first one known.
    pub(super) fn group(&mut self, name: &str, line: Option<usize>) -> &mut Group {
        let i = match self.groups.iter().position(|g| g.name == name) {
            Some(i) => i,
            None => {
                self.groups.push(Group {
                    name: name.to_owned(),
                    line: None,
                    hosts: Vec::new(),
                    children: Vec::new(),
                    vars: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[i];
        if g.line.is_none() {
            g.line = line;
        }
        g
    }

    /// `host` listed in `group` on `line` with `vars`.
    pub(super) fn host(&mut self, group: &str, host: &str, line: Option<usize>, vars: Vars) {
        let g = self.group(group, line);
        if !g.hosts.iter().any(|h| h == host) {
            g.hosts.push(host.to_owned());
        }
        match self.hosts.iter_mut().find(|h| h.name == host) {
            Some(h) => h.vars.extend(vars),
            None => self.hosts.push(HostEntry {
                name: host.to_owned(),
                line,
                vars,
            }),
        }
    }

    /// `child` listed as a child group of `parent` on `line`.
    pub(super) fn child(&mut self, parent: &str, child: &str, line: Option<usize>) {
        self.group(child, line);
        let p = self.group(parent, line);
        if !p.children.iter().any(|c| c == child) {
            p.children.push(child.to_owned());
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub(super) fn host_entry(&self, name: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The names of the groups, in file order (`all` and `ungrouped` when the file has them).
    pub(super) fn names(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.name.as_str()).collect()
    }

    /// The hosts of `group` and of its children, recursively, in file order, each once.
    /// `all` holds every host.
    pub(super) fn members(&self, group: &str) -> Vec<&str> {
        if group == ALL {
            return self.hosts.iter().map(|h| h.name.as_str()).collect();
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.collect(group, &mut seen, &mut out);
        out
    }

    fn collect<'a>(&'a self, group: &str, seen: &mut HashSet<&'a str>, out: &mut Vec<&'a str>) {
        let Some(g) = self.get(group) else {
            return;
        };
        if !seen.insert(g.name.as_str()) {
            return; // a cycle of children
        }
        for h in &g.hosts {
            if !out.contains(&h.as_str()) {
                out.push(h);
            }
        }
        for c in &g.children {
            self.collect(c, seen, out);
        }
    }

    /// The groups `host` is in, directly or through children, in file order; `all` aside.
    pub(super) fn groups_of(&self, host: &str) -> Vec<&Group> {
        self.groups
            .iter()
            .filter(|g| g.name != ALL && self.members(&g.name).contains(&host))
            .collect()
    }

    /// Ansible's depth of a group: `all` 0, a group 1 more than its deepest parent (a group
    /// without parents is a child of `all`). Deeper groups' variables win.
    fn depth(&self, group: &str, visiting: &mut Vec<String>) -> usize {
        if group == ALL || visiting.iter().any(|v| v == group) {
            return 0;
        }
        visiting.push(group.to_owned());
        let deepest = self
            .groups
            .iter()
            .filter(|p| p.children.iter().any(|c| c == group))
            .map(|p| self.depth(&p.name, visiting))
            .max()
            .unwrap_or(0);
        visiting.pop();
        deepest + 1
    }

    /// The variables of `host` as Ansible resolves them: `all`'s, then its groups' from the
    /// shallowest to the deepest (alphabetically within one depth), then its own; later wins.
    pub(super) fn vars(&self, host: &str) -> BTreeMap<String, Var> {
        let mut groups: Vec<(usize, &Group)> = self
            .groups_of(host)
            .into_iter()
            .map(|g| (self.depth(&g.name, &mut Vec::new()), g))
            .collect();
        groups.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        let mut out = BTreeMap::new();
        let layers = self
            .get(ALL)
            .into_iter()
            .chain(groups.into_iter().map(|(_, g)| g))
            .map(|g| &g.vars)
            .chain(self.host_entry(host).map(|h| &h.vars));
        for vars in layers {
            for (k, v) in vars {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// Lines where the hosts were first listed, by name.
    pub(super) fn host_lines(&self) -> HashMap<&str, Option<usize>> {
        self.hosts
            .iter()
            .map(|h| (h.name.as_str(), h.line))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(v: &str) -> Var {
        Var {
            value: Some(v.to_owned()),
            line: None,
        }
    }

    fn value(g: &Groups, host: &str, key: &str) -> Option<String> {
        g.vars(host).get(key).and_then(|v| v.value.clone())
    }

    #[test]
    fn members_follow_children_and_keep_file_order() {
        let mut g = Groups::default();
        g.host("web", "w1", Some(1), vec![]);
        g.host("db", "d1", Some(3), vec![]);
        g.host("web", "w2", Some(2), vec![]);
        g.child("app", "web", Some(5));
        g.child("app", "db", Some(6));
        g.child("db", "app", Some(7)); // a cycle does not hang
        assert_eq!(g.members("app"), ["w1", "w2", "d1"]);
        assert_eq!(g.members(ALL), ["w1", "d1", "w2"]);
        let names: Vec<&str> = g.groups_of("d1").iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["db", "app"]);
    }

    #[test]
    fn deeper_groups_then_the_host_win() {
        let mut g = Groups::default();
        g.group(ALL, None)
            .vars
            .push(("ansible_user".into(), var("all")));
        g.group("parent", None)
            .vars
            .push(("ansible_user".into(), var("parent")));
        g.group("b_child", None)
            .vars
            .push(("ansible_user".into(), var("b")));
        g.group("a_child", None)
            .vars
            .push(("ansible_user".into(), var("a")));
        g.child("parent", "a_child", None);
        g.child("parent", "b_child", None);
        g.host("a_child", "h1", None, vec![]);
        g.host("b_child", "h1", None, vec![]);
        // Same depth: alphabetical, so b_child wins over a_child; both over parent and all.
        assert_eq!(value(&g, "h1", "ansible_user").as_deref(), Some("b"));
        g.host("parent", "h2", None, vec![]);
        assert_eq!(value(&g, "h2", "ansible_user").as_deref(), Some("parent"));
        g.host(
            "other",
            "h3",
            None,
            vec![("ansible_port".into(), var("2222"))],
        );
        assert_eq!(value(&g, "h3", "ansible_user").as_deref(), Some("all"));
        g.host(
            "other",
            "h3",
            None,
            vec![("ansible_port".into(), var("2200"))],
        );
        assert_eq!(value(&g, "h3", "ansible_port").as_deref(), Some("2200"));
    }
}
