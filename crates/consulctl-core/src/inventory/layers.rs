//! Settings given cluster-wide, per role (`[servers]`, `[clients]`) and per host: each table
//! read into a layer, and the layers merged (host > role > cluster-wide > default).

use super::*;

/// Origin of a resolved value: the key it was read from.
pub(super) type Src<T> = (T, KeyPath);

#[derive(Debug, Default, Clone)]
pub(super) struct SshLayer {
    pub(super) user: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) identity_file: Option<PathBuf>,
    pub(super) known_hosts: Option<Src<PathBuf>>,
    pub(super) config_file: Option<PathBuf>,
    pub(super) jump: Option<String>,
    pub(super) host_keys: Option<HostKeyPolicy>,
    pub(super) connect_timeout: Option<u64>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct PathsLayer {
    pub(super) binary: Option<Src<PathBuf>>,
    pub(super) config_dir: Option<Src<PathBuf>>,
    pub(super) data_dir: Option<Src<PathBuf>>,
    pub(super) log_dir: Option<Src<PathBuf>>,
    pub(super) systemd_unit: Option<Src<PathBuf>>,
    pub(super) supervisor_program: Option<Src<PathBuf>>,
}

/// Settings that can be given cluster-wide, per role and per host.
#[derive(Debug, Default, Clone)]
pub(super) struct Layer {
    pub(super) init: Option<Init>,
    pub(super) log_level: Option<String>,
    pub(super) client_addr: Option<String>,
    pub(super) bind_cidr: Option<Src<IpNet>>,
    pub(super) ssh: SshLayer,
    pub(super) paths: PathsLayer,
    pub(super) config: Map<String, Json>,
    /// `None`: this layer has no dns table.
    pub(super) dns: Option<DnsLayer>,
    pub(super) prepare: PrepareLayer,
}

/// Where a layer's keys live: scalars (`cluster.init`, `servers.init`, `hosts[0].init`) and
/// tables (`ssh`, `servers.ssh`, `hosts[0].ssh`).
pub(super) struct LayerKeys {
    pub(super) scalars: KeyPath,
    pub(super) tables: KeyPath,
}

pub(super) fn resolve_ssh(layers: &[&Layer; 3]) -> SshTarget {
    SshTarget {
        user: layers.iter().find_map(|l| l.ssh.user.clone()),
        port: layers.iter().find_map(|l| l.ssh.port),
        identity_file: layers.iter().find_map(|l| l.ssh.identity_file.clone()),
        known_hosts: layers
            .iter()
            .find_map(|l| l.ssh.known_hosts.clone())
            .map(|(p, _)| p),
        config_file: layers.iter().find_map(|l| l.ssh.config_file.clone()),
        jump: layers.iter().find_map(|l| l.ssh.jump.clone()),
        host_keys: layers
            .iter()
            .find_map(|l| l.ssh.host_keys)
            .unwrap_or(HostKeyPolicy::Strict),
        connect_timeout_secs: layers
            .iter()
            .find_map(|l| l.ssh.connect_timeout)
            .unwrap_or(10),
    }
}

/// Resolved paths plus where data_dir and config_dir came from (None: the default).
pub(super) fn resolve_paths(layers: &[&Layer; 3]) -> (Paths, Option<KeyPath>, Option<KeyPath>) {
    let d = Paths::vendor_default();
    let pick = |f: fn(&PathsLayer) -> &Option<Src<PathBuf>>| {
        layers.iter().find_map(|l| f(&l.paths).clone())
    };
    let data = pick(|p| &p.data_dir);
    let config = pick(|p| &p.config_dir);
    let paths = Paths {
        binary: pick(|p| &p.binary).map(|x| x.0).unwrap_or(d.binary),
        config_dir: config.clone().map(|x| x.0).unwrap_or(d.config_dir),
        data_dir: data.clone().map(|x| x.0).unwrap_or(d.data_dir),
        log_dir: pick(|p| &p.log_dir).map(|x| x.0).unwrap_or(d.log_dir),
        systemd_unit: pick(|p| &p.systemd_unit)
            .map(|x| x.0)
            .unwrap_or(d.systemd_unit),
        supervisor_program: pick(|p| &p.supervisor_program)
            .map(|x| x.0)
            .or(d.supervisor_program),
    };
    (paths, data.map(|x| x.1), config.map(|x| x.1))
}

/// `dst` <- `src`: tables merge key by key (recursively), every other value replaces.
pub(super) fn merge_deep(dst: &mut Map<String, Json>, src: &Map<String, Json>) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Json::Object(d)), Json::Object(s)) => merge_deep(d, s),
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

impl Ctx<'_> {
    pub(super) fn ssh_layer(&mut self, key: &KeyPath, r: Option<&raw::Ssh>) -> SshLayer {
        let Some(r) = r else {
            return SshLayer::default();
        };
        let user = self.string(&key.k("user"), &r.user).and_then(|u| {
            if !u.is_empty() && !u.chars().any(|c| c.is_whitespace() || c == '@' || c == ':') {
                Some(u)
            } else {
                let v = r.user.clone()?;
                self.bad(
                    &key.k("user"),
                    &v,
                    "expected a user name (not empty, without spaces, \"@\" or \":\")",
                );
                None
            }
        });
        let jump = self.string(&key.k("jump"), &r.jump).and_then(|j| {
            if valid_jump(&j) {
                Some(j)
            } else {
                let v = r.jump.clone()?;
                self.bad(
                    &key.k("jump"),
                    &v,
                    "expected a ProxyJump host such as \"ops@bastion:2222\" ([user@]host[:port], \
                     several separated by commas)",
                );
                None
            }
        });
        SshLayer {
            user,
            port: self
                .int_in(&key.k("port"), &r.port, 1, 65535)
                .map(|p| p as u16),
            identity_file: self.local_path(&key.k("identity_file"), &r.identity_file, true),
            known_hosts: self
                .local_path(&key.k("known_hosts"), &r.known_hosts, false)
                .map(|p| (p, key.k("known_hosts"))),
            config_file: self.local_path(&key.k("config_file"), &r.config_file, true),
            jump,
            host_keys: self.choice(
                &key.k("host_keys"),
                &r.host_keys,
                &[
                    ("strict", HostKeyPolicy::Strict),
                    ("accept-new", HostKeyPolicy::AcceptNew),
                ],
            ),
            connect_timeout: self
                .int_in(&key.k("connect_timeout"), &r.connect_timeout, 1, 300)
                .map(|t| t as u64),
        }
    }

    pub(super) fn paths_layer(&mut self, key: &KeyPath, r: Option<&raw::Paths>) -> PathsLayer {
        let Some(r) = r else {
            return PathsLayer::default();
        };
        PathsLayer {
            binary: self.remote_path(&key.k("binary"), &r.binary),
            config_dir: self.remote_path(&key.k("config_dir"), &r.config_dir),
            data_dir: self.remote_path(&key.k("data_dir"), &r.data_dir),
            log_dir: self.remote_path(&key.k("log_dir"), &r.log_dir),
            systemd_unit: self.remote_path(&key.k("systemd_unit"), &r.systemd_unit),
            supervisor_program: self
                .remote_path(&key.k("supervisor_program"), &r.supervisor_program),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn layer(
        &mut self,
        keys: &LayerKeys,
        init: &raw::V,
        log_level: &raw::V,
        client_addr: &raw::V,
        bind_cidr: Option<&raw::V>,
        ssh: Option<&raw::Ssh>,
        paths: Option<&raw::Paths>,
        config: &raw::V,
        dns: Option<&raw::Dns>,
        prepare: Option<&raw::Prepare>,
    ) -> Layer {
        let s = &keys.scalars;
        let t = &keys.tables;
        Layer {
            init: self.init(&s.k("init"), init),
            log_level: self.log_level(&s.k("log_level"), log_level),
            client_addr: self.client_addr(&s.k("client_addr"), client_addr),
            bind_cidr: bind_cidr.and_then(|v| self.cidr(&s.k("bind_cidr"), v)),
            ssh: self.ssh_layer(&t.k("ssh"), ssh),
            paths: self.paths_layer(&t.k("paths"), paths),
            config: self.config(&t.k("config"), config),
            dns: self.dns_layer(&t.k("dns"), dns),
            prepare: self.prepare_layer(&t.k("prepare"), prepare),
        }
    }

    pub(super) fn role_layer(&mut self, name: &str, r: Option<&raw::Role>) -> Layer {
        let Some(r) = r else {
            return Layer::default();
        };
        let base = KeyPath::root().k(name);
        let keys = LayerKeys {
            scalars: base.clone(),
            tables: base,
        };
        self.layer(
            &keys,
            &r.init,
            &r.log_level,
            &r.client_addr,
            Some(&r.bind_cidr),
            r.ssh.as_ref(),
            r.paths.as_ref(),
            &r.config,
            r.dns.as_ref(),
            r.prepare.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::test_support::*;

    #[test]
    fn ssh_config_file_resolves_and_user_and_port_are_left_to_it() {
        // Nothing given: no user, no port (ssh_config decides), no config file.
        let c = ok(&doc(""));
        assert_eq!(c.hosts[0].ssh.user, None);
        assert_eq!(c.hosts[0].ssh.port, None);
        assert_eq!(c.hosts[0].ssh.config_file, None);
        // Relative to the inventory's directory; a host's own value wins.
        let c = ok(&format!(
            "{}{HEAD}[ssh]\nconfig_file = \"keys/known_hosts\"\n",
            s2_with("ssh = { config_file = \"keys/id_placeholder\" }")
        ));
        assert_eq!(
            c.host("s1").unwrap().ssh.config_file,
            Some(fixtures().join("keys/known_hosts"))
        );
        assert_eq!(
            c.host("s2").unwrap().ssh.config_file,
            Some(fixtures().join("keys/id_placeholder"))
        );
        assert_eq!(c.host("s1").unwrap().ssh.user, None);
        // A missing file is an input error naming the key and line.
        only(
            &doc("[ssh]\nconfig_file = \"keys/no_such_config\"\n"),
            "ssh.config_file",
            13,
            "file not found",
        );
    }

    #[test]
    fn invalid_port_is_rejected() {
        for bad in ["0", "65536", "-1"] {
            only(
                &doc(&format!("[ssh]\nport = {bad}\n")),
                "ssh.port",
                13,
                &format!("ssh.port = {bad}: expected an integer from 1 to 65535"),
            );
        }
    }

    #[test]
    fn invalid_connect_timeout_and_host_keys_are_rejected() {
        let diags = errs(&doc("[ssh]\nconnect_timeout = 301\nhost_keys = \"yes\"\n"));
        assert_eq!(diags.len(), 2);
        check(
            &diags,
            "ssh.connect_timeout",
            13,
            "expected an integer from 1 to 300",
        );
        check(
            &diags,
            "ssh.host_keys",
            14,
            "expected one of \"strict\", \"accept-new\"",
        );
    }

    #[test]
    fn invalid_ssh_user_and_jump_are_rejected() {
        let diags = errs(&doc("[ssh]\nuser = \"ops@x\"\njump = \"bastion:port\"\n"));
        assert_eq!(diags.len(), 2);
        check(&diags, "ssh.user", 13, "expected a user name");
        check(&diags, "ssh.jump", 14, "expected a ProxyJump host");
    }
}
