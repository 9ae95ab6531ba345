//! Remote paths (absolute, normalized) and local paths (relative to the inventory, `~`).

use super::*;

/// `~` and `~/x` expand to $HOME; `~user` is not supported.
pub(in crate::inventory) fn expand_tilde(s: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    if s == "~" || s.starts_with("~/") {
        let Some(home) = home else {
            return Err("cannot expand \"~\": $HOME is not set".into());
        };
        Ok(match s.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => home.to_path_buf(),
        })
    } else if s.starts_with('~') {
        Err("\"~user\" is not supported; write the path out or use \"~/\"".into())
    } else {
        Ok(PathBuf::from(s))
    }
}

impl Ctx<'_> {
    /// A path on the hosts: absolute, no whitespace, no `.`/`..` parts, not `/` itself.
    pub(in crate::inventory) fn remote_path(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
    ) -> Option<Src<PathBuf>> {
        let s = self.string(key, v)?;
        let value = v.as_ref()?;
        let problem = if !s.starts_with('/') {
            Some("expected an absolute path (starting with \"/\")")
        } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("expected an absolute path without spaces or control characters")
        } else if s.split('/').any(|p| p == "." || p == "..") {
            Some("expected an absolute path without \".\" or \"..\" parts")
        } else if s.split('/').all(|p| p.is_empty()) {
            Some("expected an absolute path below \"/\", not \"/\" itself")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.bad(key, value, problem);
            return None;
        }
        let clean: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
        Some((PathBuf::from(format!("/{}", clean.join("/"))), key.clone()))
    }

    /// A path on the control host: `~` expanded, relative to the inventory's directory.
    pub(in crate::inventory) fn local_path(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
        must_exist: bool,
    ) -> Option<PathBuf> {
        let s = self.string(key, v)?;
        let value = v.as_ref()?;
        if s.trim().is_empty() {
            self.bad(key, value, "expected a file path");
            return None;
        }
        let expanded = match expand_tilde(&s, self.home.as_deref()) {
            Ok(p) => p,
            Err(why) => {
                self.bad(key, value, why);
                return None;
            }
        };
        let full = if expanded.is_absolute() {
            expanded
        } else {
            self.base_dir.join(expanded)
        };
        if must_exist {
            match std::fs::metadata(&full) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    self.bad(key, value, format!("{} is not a file", full.display()));
                    return None;
                }
                Err(_) => {
                    let note = if Path::new(&s).is_relative() && !s.starts_with('~') {
                        format!(
                            " (relative paths are resolved against the inventory's directory {})",
                            self.base_dir.display()
                        )
                    } else {
                        String::new()
                    };
                    self.bad(
                        key,
                        value,
                        format!("file not found: {}{note}", full.display()),
                    );
                    return None;
                }
            }
        }
        Some(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::test_support::*;

    #[test]
    fn relative_local_paths_resolve_against_the_inventory_directory() {
        let text = format!(
            r#"{THREE}[cluster]
datacenter = "dc1"
[consul]
version = "1.8.7"
source = {{ file = "dist/consul" }}
[ssh]
identity_file = "keys/../keys/id_placeholder"
known_hosts = "nowhere/known_hosts"
host_keys = "accept-new"
"#
        );
        let c = ok(&text);
        assert_eq!(
            c.consul.source,
            InstallSource::File {
                path: fixtures().join("dist/consul")
            }
        );
        let ssh = &c.hosts[0].ssh;
        assert_eq!(
            ssh.identity_file,
            Some(fixtures().join("keys/../keys/id_placeholder"))
        );
        // accept-new: need not exist.
        assert_eq!(
            ssh.known_hosts,
            Some(fixtures().join("nowhere/known_hosts"))
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn tilde_expands_to_home() {
        let home = Path::new("/home/op");
        assert_eq!(
            expand_tilde("~/.ssh/id_ed25519", Some(home)).unwrap(),
            PathBuf::from("/home/op/.ssh/id_ed25519")
        );
        assert_eq!(
            expand_tilde("~", Some(home)).unwrap(),
            PathBuf::from("/home/op")
        );
        assert_eq!(
            expand_tilde("keys/x", Some(home)).unwrap(),
            PathBuf::from("keys/x")
        );
        assert!(expand_tilde("~root/x", Some(home))
            .unwrap_err()
            .contains("~user"));
        assert!(expand_tilde("~/x", None).unwrap_err().contains("HOME"));
    }

    #[test]
    fn relative_remote_path_is_rejected() {
        only(
            &doc("[paths]\ndata_dir = \"opt/consul\"\n"),
            "paths.data_dir",
            13,
            "paths.data_dir = \"opt/consul\": expected an absolute path",
        );
    }

    #[test]
    fn non_absolute_remote_paths_are_rejected_at_every_level() {
        let text = format!(
            "{}{HEAD}[servers]\npaths = {{ config_dir = \"/etc/../consul.d\" }}\n",
            s2_with("paths = { data_dir = \"/\" }")
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 2, "{}", render(&inv_path(), &diags));
        check(&diags, "hosts[1].paths.data_dir", 3, "not \"/\" itself");
        check(
            &diags,
            "servers.paths.config_dir",
            13,
            "without \".\" or \"..\" parts",
        );
    }

    #[test]
    fn remote_paths_are_normalized() {
        let c = ok(&doc("[paths]\ndata_dir = \"/disk//ssd1/consul/\"\n"));
        assert_eq!(
            c.hosts[0].paths.data_dir,
            PathBuf::from("/disk/ssd1/consul")
        );
    }

    #[test]
    fn missing_source_file_is_rejected() {
        let text = custom(
            "",
            "version = \"1.8.7\"\nsource = { file = \"dist/consul_1.8.7.deb\" }\n",
        );
        let d = only(
            &text,
            "consul.source.file",
            10,
            "consul.source.file = \"dist/consul_1.8.7.deb\": file not found: ",
        );
        let full = fixtures().join("dist/consul_1.8.7.deb");
        assert!(d.message.contains(&full.display().to_string()), "{d}");
        assert!(
            d.message
                .contains("resolved against the inventory's directory"),
            "{d}"
        );
    }

    #[test]
    fn missing_identity_file_is_rejected() {
        let text = hosts_doc(&s2_with("ssh = { identity_file = \"keys/id_missing\" }"));
        only(&text, "hosts[1].ssh.identity_file", 3, "file not found");
    }
}
