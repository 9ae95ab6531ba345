//! The planner: a pure function from desired state and facts to actions.
//! No I/O here: everything it needs is in its arguments, so it is tested with faked facts.

use std::path::PathBuf;

use serde::Serialize;

use crate::action::Action;
use crate::desired::{DesiredFile, FileKind};
use crate::facts::Facts;
use crate::model::{Host, Init};

/// How the binary gets onto the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryPlan {
    /// Upload this binary (sha256 of the raw file) unless the host already has it.
    Upload { sha256: String },
    /// Install through the package manager with these commands unless the wanted version runs.
    Package { commands: Vec<Vec<String>> },
}

/// Everything the planner needs for one host.
pub struct PlanInput<'a> {
    pub host: &'a Host,
    pub facts: &'a Facts,
    pub desired: &'a [DesiredFile],
    pub binary: &'a BinaryPlan,
    pub version: crate::version::Version,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    pub actions: Vec<Action>,
    /// Settings written but only used after the next restart, which is deferred because
    /// nothing else needs one (e.g. `retry_join` after servers were added: gossip finds new
    /// servers anyway).
    pub pending_restart: Vec<String>,
    /// Decisions worth telling the operator (e.g. DNS configured through systemd-resolved).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl HostPlan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn binary_action(&self) -> Option<&Action> {
        self.actions.iter().find(|a| {
            matches!(
                a,
                Action::InstallBinary { .. } | Action::InstallPackage { .. }
            )
        })
    }

    /// The upload of `consulctl-host` (the registrar's binary), if any.
    pub fn host_binary_action(&self) -> Option<&Action> {
        self.actions
            .iter()
            .find(|a| matches!(a, Action::InstallHostBinary { .. }))
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::CreateDirs { paths } => Some(paths.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn file_writes(&self) -> impl Iterator<Item = &DesiredFile> {
        self.actions.iter().filter_map(|a| match a {
            Action::WriteFile { file, .. } => Some(file),
            _ => None,
        })
    }

    pub fn service_actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.is_service())
    }
}

/// Desired state + facts -> actions. Empty when the host is already right.
pub fn plan_host(input: &PlanInput) -> HostPlan {
    let PlanInput {
        host,
        facts,
        desired,
        binary,
        version,
    } = input;
    let mut actions = Vec::new();
    let mut restart_reasons = Vec::new();
    let mut reload_keys: Vec<String> = Vec::new();

    // The binary.
    match binary {
        BinaryPlan::Upload { sha256 } => {
            let current = facts.consul.as_ref().map(|b| b.sha256.clone());
            if current.as_deref() != Some(sha256.as_str()) {
                if current.is_some() {
                    restart_reasons.push("binary changed".to_string());
                }
                let staged = current.is_some() && facts.agent_running(host.init);
                actions.push(Action::InstallBinary {
                    path: host.paths.binary.clone(),
                    sha256: sha256.clone(),
                    current,
                    staged,
                });
            }
        }
        BinaryPlan::Package { commands } => {
            let installed = facts.consul.as_ref().and_then(|b| b.version);
            if installed != Some(*version) {
                if installed.is_some() {
                    restart_reasons.push("version changed".to_string());
                }
                actions.push(Action::InstallPackage {
                    commands: commands.clone(),
                    deferred: installed.is_some() && facts.agent_running(host.init),
                });
            }
        }
    }

    // Directories.
    let missing: Vec<PathBuf> = [
        &host.paths.config_dir,
        &host.paths.data_dir,
        &host.paths.log_dir,
    ]
    .into_iter()
    .filter(|d| facts.dirs.get(*d) != Some(&true))
    .cloned()
    .collect();
    if !missing.is_empty() {
        actions.push(Action::CreateDirs { paths: missing });
    }

    // The agent's user and the dirs it owns.
    if let Some(a) = own_dirs(host, facts, desired) {
        actions.push(a);
    }

    // Files.
    let mut init_files_changed = false;
    for file in desired.iter() {
        let current = facts.files.get(&file.path);
        let same_content = current.map(|c| c.sha256 == file.sha256()).unwrap_or(false);
        let same_mode = current
            .map(|c| c.mode == format!("{:o}", file.mode) && file.owner_matches(&c.owner, &c.group))
            .unwrap_or(false);
        if same_content && same_mode {
            continue;
        }
        if !same_content {
            match file.kind {
                FileKind::AgentConfig => restart_reasons.push("config changed".to_string()),
                // A new certificate where TLS is on already: `consul reload` swaps it in
                // (Consul >= 1.4.3 reloads TLS files; turning TLS on is a config change, a
                // restart). A file that was not there before: a restart.
                FileKind::TlsFile => {
                    if current.is_some() {
                        if !reload_keys.iter().any(|k| k == "tls") {
                            reload_keys.push("tls".into());
                        }
                    } else {
                        restart_reasons.push("tls changed".to_string());
                    }
                }
                FileKind::SystemdUnit | FileKind::SupervisorProgram => {
                    init_files_changed = true;
                    restart_reasons.push(format!("{} changed", kind_word(file.kind)));
                }
                FileKind::ServiceDefinition => {
                    if !reload_keys.iter().any(|k| k == "services") {
                        reload_keys.push("services".into());
                    }
                }
                // Not the agent's: their own services are restarted by plumbing's actions.
                FileKind::ResolvConf | FileKind::HelperConfig => {}
            }
        }
        actions.push(Action::WriteFile {
            file: file.clone(),
            current: current.map(|c| c.sha256.clone()),
        });
    }

    // The service.
    let running = facts.agent_running(host.init);
    let init_knows_program = match host.init {
        Init::Systemd => facts
            .systemd
            .as_ref()
            .map(|s| s.enabled != "not-found" && !s.enabled.is_empty())
            .unwrap_or(false),
        Init::Supervisord => facts
            .supervisor
            .as_ref()
            .and_then(|s| s.program.as_ref())
            .is_some(),
    };
    if init_files_changed || !init_knows_program {
        actions.push(Action::ReloadInit);
    }
    if host.init == Init::Systemd {
        let enabled = facts
            .systemd
            .as_ref()
            .map(|s| s.enabled == "enabled")
            .unwrap_or(false);
        if !enabled {
            actions.push(Action::Enable);
        }
    }
    if !running {
        actions.push(Action::Start);
    } else if !restart_reasons.is_empty() {
        restart_reasons.dedup();
        actions.push(Action::Restart {
            reasons: restart_reasons,
        });
    } else if !reload_keys.is_empty() {
        actions.push(Action::Reload { keys: reload_keys });
    }

    HostPlan {
        actions,
        pending_restart: Vec::new(),
        notes: Vec::new(),
    }
}

/// The dirs the agent's user must own (config dir, its `tls` subdir when TLS files go there,
/// data dir), mode 0750; the data dir recursively when anything inside belongs to someone
/// else (an agent that ran as root before). Nothing for agents that run as root.
fn own_dirs(host: &Host, facts: &Facts, desired: &[DesiredFile]) -> Option<Action> {
    if host.user == "root" {
        return None;
    }
    let user = host.user.clone();
    let create_user = facts.user_exists == Some(false);
    let tls_dir = host.paths.config_dir.join("tls");
    let mut wanted = vec![host.paths.config_dir.clone(), host.paths.data_dir.clone()];
    if desired.iter().any(|f| f.path.starts_with(&tls_dir)) {
        wanted.push(tls_dir);
    }
    let dirs: Vec<PathBuf> = wanted
        .into_iter()
        .filter(|d| match facts.dir_stats.get(d) {
            Some((u, g, m)) => !(u == &user && g == &user && m == "750"),
            None => true,
        })
        .collect();
    let recursive = if facts.data_foreign_owner || create_user {
        vec![host.paths.data_dir.clone()]
    } else {
        Vec::new()
    };
    if !create_user && dirs.is_empty() && recursive.is_empty() {
        return None;
    }
    Some(Action::OwnDirs {
        user,
        create_user,
        dirs,
        recursive,
    })
}

/// Settings Consul only reads at start, but that need no restart of a running agent: the join
/// list (gossip spreads new members anyway) and `bootstrap_expect` (used once, at bootstrap).
pub const PENDING_KEYS: &[&str] = &["retry_join", "bootstrap_expect"];

/// Settings `consul reload` applies to a running agent (Consul's "reloadable configuration").
pub const RELOADABLE_KEYS: &[&str] = &[
    "log_level",
    "services",
    "service",
    "checks",
    "check",
    "watches",
    "discard_check_output",
];

/// What a change of the agent config needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Nothing Consul reads changed (e.g. only comments).
    Nothing,
    /// Only settings that can wait for the next restart.
    Pending(Vec<String>),
    /// Only settings `consul reload` applies (and maybe pending ones).
    Reload(Vec<String>),
    /// Anything else: a restart.
    Restart(Vec<String>),
}

/// Compare the old and new agent config (HCL) by their top-level settings.
pub fn classify_config_change(old: &str, new: &str) -> ConfigChange {
    let parse = |text: &str| -> Option<serde_json::Map<String, serde_json::Value>> {
        let body: hcl::Body = hcl::from_str(text).ok()?;
        match serde_json::to_value(hcl::Value::from(body)).ok()? {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        }
    };
    let (Some(old), Some(new)) = (parse(old), parse(new)) else {
        return ConfigChange::Restart(vec!["config (unparsable before or after)".into()]);
    };
    let mut changed: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    changed.sort();
    changed.dedup();
    if changed.is_empty() {
        return ConfigChange::Nothing;
    }
    // A new gossip key on an agent that has one: the agent's keyring (serf/local.keyring)
    // wins over the config at every start, so the config value only matters for a fresh data
    // dir (`keys rotate` changes the keyring itself). Turning encryption on or off is a restart.
    let key_swap =
        |k: &String| k == "encrypt" && old.contains_key("encrypt") && new.contains_key("encrypt");
    let pending = |k: &String| PENDING_KEYS.contains(&k.as_str()) || key_swap(k);
    let reloadable = |k: &String| RELOADABLE_KEYS.contains(&k.as_str());
    if changed.iter().all(pending) {
        ConfigChange::Pending(changed)
    } else if changed.iter().all(|k| pending(k) || reloadable(k)) {
        ConfigChange::Reload(changed.into_iter().filter(|k| reloadable(k)).collect())
    } else {
        ConfigChange::Restart(changed)
    }
}

/// Turn a restart that only the agent config asked for into a reload, a pending restart or
/// nothing, given the config the host runs now. Other reasons (binary, unit) keep the restart.
pub fn refine_with_current_config(plan: &mut HostPlan, old_config: &str, new_config: &str) {
    let Some(pos) = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::Restart { reasons } if reasons == &["config changed"]))
    else {
        return;
    };
    match classify_config_change(old_config, new_config) {
        ConfigChange::Restart(_) => {}
        ConfigChange::Reload(keys) => {
            plan.actions[pos] = Action::Reload { keys };
            merge_reloads(plan);
        }
        ConfigChange::Pending(keys) => {
            plan.actions.remove(pos);
            plan.pending_restart = keys;
        }
        ConfigChange::Nothing => {
            plan.actions.remove(pos);
        }
    }
}

/// One `consul reload` for all reloadable changes.
fn merge_reloads(plan: &mut HostPlan) {
    let mut keys: Vec<String> = Vec::new();
    let mut first = None;
    plan.actions.retain(|a| match a {
        Action::Reload { keys: k } => {
            keys.extend(
                k.iter()
                    .filter(|x| !keys.contains(x))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            if first.is_none() {
                first = Some(());
                true
            } else {
                false
            }
        }
        _ => true,
    });
    for a in plan.actions.iter_mut() {
        if let Action::Reload { keys: k } = a {
            *k = keys.clone();
        }
    }
}

/// Add the host plumbing (services removed, packages, units, helper restarts) to a plan.
/// Removed service definitions need a `consul reload` unless the agent starts or restarts
/// anyway. Package installs and unit changes come first, helper restarts last.
pub fn add_plumbing(plan: &mut HostPlan, p: &crate::plumbing::Plumbing, running: bool) {
    let mut front: Vec<Action> = Vec::new();
    let mut back: Vec<Action> = Vec::new();
    for a in &p.actions {
        match a {
            Action::InstallPackages { .. }
            | Action::DisableUnits { .. }
            | Action::InstallHostBinary { .. } => front.push(a.clone()),
            _ => back.push(a.clone()),
        }
    }
    for path in &p.remove {
        back.push(Action::RemoveFile { path: path.clone() });
    }
    let agent_restarts = plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::Start | Action::Restart { .. }));
    let has_reload_for_services = plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::Reload { keys } if keys.iter().any(|k| k == "services")));
    // Service actions stay last: helpers (configure phase) go before them.
    let service_at = plan
        .actions
        .iter()
        .position(|a| a.is_service())
        .unwrap_or(plan.actions.len());
    let tail = plan.actions.split_off(service_at);
    let mut actions = front;
    actions.append(&mut plan.actions);
    actions.extend(back);
    actions.extend(tail);
    plan.actions = actions;
    plan.notes.extend(p.notes.iter().cloned());
    if running && !p.remove.is_empty() && !agent_restarts && !has_reload_for_services {
        plan.actions.push(Action::Reload {
            keys: vec!["services".into()],
        });
        merge_reloads(plan);
    }
}

fn kind_word(kind: FileKind) -> &'static str {
    match kind {
        FileKind::AgentConfig => "config",
        FileKind::SystemdUnit => "unit",
        FileKind::SupervisorProgram => "program",
        FileKind::ServiceDefinition => "service definition",
        FileKind::ResolvConf => "resolv.conf",
        FileKind::HelperConfig => "helper config",
        FileKind::TlsFile => "tls",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{FileFact, InstalledBinary, SupervisorState, SystemdUnitState};
    use crate::model::{BindAddr, Role};
    use crate::version::Version;

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn host(init: Init) -> Host {
        let ip = "10.0.0.11";
        Host::minimal(
            "server1",
            ip,
            Role::Server,
            init,
            BindAddr::Fixed(ip.parse().unwrap()),
        )
    }

    fn desired(init: Init) -> Vec<DesiredFile> {
        let (path, kind) = match init {
            Init::Systemd => ("/etc/systemd/system/consul.service", FileKind::SystemdUnit),
            Init::Supervisord => (
                "/etc/supervisor/conf.d/consul.conf",
                FileKind::SupervisorProgram,
            ),
        };
        vec![
            DesiredFile {
                path: "/etc/consul.d/consul.hcl".into(),
                content: "datacenter = \"dc1\"\n".into(),
                mode: 0o640,
                kind: FileKind::AgentConfig,
                secret: false,
                owner: None,
            },
            DesiredFile {
                path: path.into(),
                content: "[unit]\n".into(),
                mode: 0o644,
                kind,
                secret: false,
                owner: None,
            },
        ]
    }

    /// A host where everything already matches `desired(init)` and the agent runs.
    fn converged(init: Init) -> Facts {
        let mut f = Facts {
            pid1: if init == Init::Systemd {
                "systemd".into()
            } else {
                "supervisord".into()
            },
            consul: Some(InstalledBinary {
                sha256: SHA.into(),
                version: Some(Version::new(1, 8, 7)),
            }),
            consul_pid: Some(4242),
            ..Facts::default()
        };
        for d in desired(init) {
            f.files.insert(
                d.path.clone(),
                FileFact {
                    sha256: d.sha256(),
                    mode: format!("{:o}", d.mode),
                    owner: "root".into(),
                    group: "root".into(),
                },
            );
        }
        for d in ["/etc/consul.d", "/opt/consul", "/var/log/consul"] {
            f.dirs.insert(d.into(), true);
        }
        // The agent's user exists and owns its dirs.
        f.user_exists = Some(true);
        for d in ["/etc/consul.d", "/opt/consul"] {
            f.dir_stats
                .insert(d.into(), ("consul".into(), "consul".into(), "750".into()));
        }
        match init {
            Init::Systemd => {
                f.systemd = Some(SystemdUnitState {
                    active: "active".into(),
                    enabled: "enabled".into(),
                })
            }
            Init::Supervisord => {
                f.supervisor = Some(SupervisorState {
                    running: true,
                    program: Some("RUNNING".into()),
                });
                f.supervisor_include_dir = Some("/etc/supervisor/conf.d".into());
            }
        }
        f
    }

    fn fresh(init: Init) -> Facts {
        let mut f = Facts {
            pid1: converged(init).pid1,
            user_exists: Some(false),
            ..Facts::default()
        };
        match init {
            Init::Systemd => {
                f.systemd = Some(SystemdUnitState {
                    active: "inactive".into(),
                    enabled: "not-found".into(),
                })
            }
            Init::Supervisord => {
                f.supervisor = Some(SupervisorState {
                    running: true,
                    program: None,
                });
                f.supervisor_include_dir = Some("/etc/supervisor/conf.d".into());
            }
        }
        f
    }

    fn plan(init: Init, facts: &Facts, desired: &[DesiredFile]) -> HostPlan {
        let h = host(init);
        plan_host(&PlanInput {
            host: &h,
            facts,
            desired,
            binary: &BinaryPlan::Upload { sha256: SHA.into() },
            version: Version::new(1, 8, 7),
        })
    }

    fn kinds(p: &HostPlan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| match a {
                Action::InstallBinary { .. } => "install_binary".to_string(),
                Action::InstallPackage { .. } => "install_package".into(),
                Action::CreateDirs { paths } => format!("dirs:{}", paths.len()),
                Action::WriteFile { file, .. } => format!("write:{}", file.path.display()),
                Action::ReloadInit => "reload_init".into(),
                Action::Enable => "enable".into(),
                Action::Start => "start".into(),
                Action::Restart { reasons } => format!("restart:{}", reasons.join("+")),
                Action::Reload { keys } => format!("reload:{}", keys.join("+")),
                Action::RemoveFile { path } => format!("remove:{}", path.display()),
                Action::InstallPackages { packages, .. } => {
                    format!("packages:{}", packages.join("+"))
                }
                Action::DisableUnits { units } => format!("disable:{}", units.join("+")),
                Action::RestartHelper { service, .. } => format!("helper:{service}"),
                Action::StartHelper { service, .. } => format!("start_helper:{service}"),
                Action::InstallHostBinary { .. } => "host_binary".into(),
                Action::SetPeerDnsNo { files } => format!("peerdns:{}", files.len()),
                Action::OwnDirs {
                    create_user,
                    dirs,
                    recursive,
                    ..
                } => format!(
                    "own:{}{}{}",
                    if *create_user { "user+" } else { "" },
                    dirs.len(),
                    if recursive.is_empty() { "" } else { "+r" }
                ),
            })
            .collect()
    }

    #[test]
    fn fresh_systemd_host_gets_everything_and_a_start() {
        let p = plan(
            Init::Systemd,
            &fresh(Init::Systemd),
            &desired(Init::Systemd),
        );
        assert_eq!(
            kinds(&p),
            [
                "install_binary",
                "dirs:3",
                "own:user+2+r",
                "write:/etc/consul.d/consul.hcl",
                "write:/etc/systemd/system/consul.service",
                "reload_init",
                "enable",
                "start"
            ]
        );
    }

    #[test]
    fn fresh_supervisord_host_is_not_enabled_through_systemctl() {
        let p = plan(
            Init::Supervisord,
            &fresh(Init::Supervisord),
            &desired(Init::Supervisord),
        );
        let k = kinds(&p);
        assert!(!k.contains(&"enable".to_string()), "{k:?}");
        assert!(k.contains(&"reload_init".to_string()), "{k:?}");
        assert_eq!(k.last().map(String::as_str), Some("start"));
    }

    #[test]
    fn converged_host_has_an_empty_plan() {
        for init in [Init::Systemd, Init::Supervisord] {
            let p = plan(init, &converged(init), &desired(init));
            assert!(p.is_empty(), "{init:?}: {:?}", kinds(&p));
        }
    }

    #[test]
    fn changed_agent_config_restarts_without_reloading_init() {
        let mut d = desired(Init::Systemd);
        d[0].content = "datacenter = \"dc1\"\nlog_level = \"DEBUG\"\n".into();
        let p = plan(Init::Systemd, &converged(Init::Systemd), &d);
        assert_eq!(
            kinds(&p),
            ["write:/etc/consul.d/consul.hcl", "restart:config changed"]
        );
    }

    #[test]
    fn changed_unit_reloads_init_and_restarts() {
        let mut d = desired(Init::Systemd);
        d[1].content = "[unit]\nLimitNOFILE=1\n".into();
        let p = plan(Init::Systemd, &converged(Init::Systemd), &d);
        assert_eq!(
            kinds(&p),
            [
                "write:/etc/systemd/system/consul.service",
                "reload_init",
                "restart:unit changed"
            ]
        );
    }

    #[test]
    fn stopped_but_converged_agent_is_started_not_rewritten() {
        let mut f = converged(Init::Supervisord);
        f.supervisor = Some(SupervisorState {
            running: true,
            program: Some("STOPPED".into()),
        });
        f.consul_pid = None;
        let p = plan(Init::Supervisord, &f, &desired(Init::Supervisord));
        assert_eq!(kinds(&p), ["start"]);
    }

    #[test]
    fn different_binary_is_uploaded_and_restarts() {
        let mut f = converged(Init::Systemd);
        f.consul.as_mut().unwrap().sha256 = "b".repeat(64);
        let p = plan(Init::Systemd, &f, &desired(Init::Systemd));
        assert_eq!(kinds(&p), ["install_binary", "restart:binary changed"]);
    }

    #[test]
    fn mode_drift_rewrites_the_file_without_restart() {
        let mut f = converged(Init::Systemd);
        f.files
            .get_mut(std::path::Path::new("/etc/consul.d/consul.hcl"))
            .unwrap()
            .mode = "644".into();
        let p = plan(Init::Systemd, &f, &desired(Init::Systemd));
        assert_eq!(kinds(&p), ["write:/etc/consul.d/consul.hcl"]);
    }

    #[test]
    fn package_source_skips_install_when_version_matches() {
        let h = host(Init::Systemd);
        let f = converged(Init::Systemd);
        let d = desired(Init::Systemd);
        let binary = BinaryPlan::Package {
            commands: vec![vec!["apt-get".into(), "install".into()]],
        };
        let same = plan_host(&PlanInput {
            host: &h,
            facts: &f,
            desired: &d,
            binary: &binary,
            version: Version::new(1, 8, 7),
        });
        assert!(same.is_empty());
        let newer = plan_host(&PlanInput {
            host: &h,
            facts: &f,
            desired: &d,
            binary: &binary,
            version: Version::new(1, 21, 0),
        });
        assert_eq!(
            kinds(&newer),
            ["install_package", "restart:version changed"]
        );
        // The agent runs: the package waits for the agent's turn in the roll.
        assert!(matches!(
            newer.binary_action(),
            Some(Action::InstallPackage { deferred: true, .. })
        ));
        let mut stopped = f.clone();
        stopped.systemd.as_mut().unwrap().active = "inactive".into();
        let fresh = plan_host(&PlanInput {
            host: &h,
            facts: &stopped,
            desired: &d,
            binary: &binary,
            version: Version::new(1, 21, 0),
        });
        assert!(
            matches!(
                fresh.binary_action(),
                Some(Action::InstallPackage {
                    deferred: false,
                    ..
                })
            ),
            "{fresh:?}"
        );
    }

    fn fixture(name: &str) -> Facts {
        let path = format!(
            "{}/tests/fixtures/facts/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        Facts::parse(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// An agent that ran as root (the seed's layout) moving to the `consul` user: the user is
    /// there, but the data dir holds root's files: chowned recursively; the config file's
    /// owner drifts: rewritten in place (same content: no restart).
    #[test]
    fn agent_user_takes_over_root_owned_dirs_and_files() {
        let mut f = converged(Init::Systemd);
        f.data_foreign_owner = true;
        f.dir_stats.insert(
            "/etc/consul.d".into(),
            ("root".into(), "root".into(), "755".into()),
        );
        let mut d = desired(Init::Systemd);
        d[0].owner = Some("consul".into());
        let p = plan(Init::Systemd, &f, &d);
        assert_eq!(
            kinds(&p),
            ["own:1+r", "write:/etc/consul.d/consul.hcl"],
            "{p:#?}"
        );
        match &p.actions[0] {
            Action::OwnDirs {
                dirs, recursive, ..
            } => {
                assert_eq!(dirs, &[PathBuf::from("/etc/consul.d")]);
                assert_eq!(recursive, &[PathBuf::from("/opt/consul")]);
            }
            a => panic!("{a:?}"),
        }
        // Converged with the owner right: nothing.
        let mut f = converged(Init::Systemd);
        f.files
            .get_mut(&PathBuf::from("/etc/consul.d/consul.hcl"))
            .unwrap()
            .owner = "consul".into();
        f.files
            .get_mut(&PathBuf::from("/etc/consul.d/consul.hcl"))
            .unwrap()
            .group = "consul".into();
        assert!(plan(Init::Systemd, &f, &d).is_empty());
    }

    /// `[consul] user = "root"`: no user, no ownership changes.
    #[test]
    fn root_agents_get_no_user_or_ownership_actions() {
        let mut f = fresh(Init::Systemd);
        f.user_exists = Some(false);
        let mut h = host(Init::Systemd);
        h.user = "root".into();
        let d = desired(Init::Systemd);
        let p = plan_host(&PlanInput {
            host: &h,
            facts: &f,
            desired: &d,
            binary: &BinaryPlan::Upload { sha256: SHA.into() },
            version: Version::new(1, 8, 7),
        });
        assert!(!kinds(&p).iter().any(|k| k.starts_with("own")), "{p:#?}");
    }

    /// pyinfra-style: facts parsed from a real capture of a fresh Debian 12 host.
    #[test]
    fn captured_fresh_debian_host_plans_a_full_install() {
        let f = fixture("debian12-fresh");
        let p = plan(Init::Supervisord, &f, &desired(Init::Supervisord));
        assert_eq!(
            kinds(&p),
            [
                "install_binary",
                "dirs:3",
                "own:2",
                "write:/etc/consul.d/consul.hcl",
                "write:/etc/supervisor/conf.d/consul.conf",
                "reload_init",
                "start"
            ]
        );
    }

    /// A captured host running an older config under supervisord: config and program are
    /// rewritten, the binary (same sha) is not, and the running agent is restarted, not started.
    #[test]
    fn captured_running_supervisord_host_with_other_config_is_restarted() {
        let f = fixture("debian12-supervisord-running");
        let sha = f.consul.as_ref().unwrap().sha256.clone();
        let h = host(Init::Supervisord);
        let d = desired(Init::Supervisord);
        let p = plan_host(&PlanInput {
            host: &h,
            facts: &f,
            desired: &d,
            binary: &BinaryPlan::Upload { sha256: sha },
            version: Version::new(1, 8, 7),
        });
        assert_eq!(
            kinds(&p),
            [
                "own:2",
                "write:/etc/consul.d/consul.hcl",
                "write:/etc/supervisor/conf.d/consul.conf",
                "reload_init",
                "restart:config changed+program changed"
            ]
        );
    }

    #[test]
    fn captured_stopped_supervisord_program_is_started() {
        let f = fixture("debian12-supervisord-stopped");
        assert!(!f.agent_running(Init::Supervisord));
        let p = plan(Init::Supervisord, &f, &desired(Init::Supervisord));
        assert_eq!(kinds(&p).last().map(String::as_str), Some("start"));
        assert!(!kinds(&p).iter().any(|k| k.starts_with("restart")));
    }

    const BASE: &str = "datacenter = \"dc1\"\nlog_level = \"INFO\"\nretry_join = [\"10.0.0.1\"]\nbootstrap_expect = 3\nserver = true\n";

    #[test]
    fn a_new_gossip_key_waits_for_the_next_restart_but_turning_encryption_on_restarts() {
        assert_eq!(
            classify_config_change("encrypt = \"a\"\n", "encrypt = \"b\"\n"),
            ConfigChange::Pending(vec!["encrypt".into()])
        );
        assert_eq!(
            classify_config_change(
                "log_level = \"INFO\"\n",
                "log_level = \"INFO\"\nencrypt = \"b\"\n"
            ),
            ConfigChange::Restart(vec!["encrypt".into()])
        );
    }

    #[test]
    fn join_list_only_change_is_a_pending_restart() {
        let new = BASE
            .replace("[\"10.0.0.1\"]", "[\"10.0.0.1\", \"10.0.0.2\"]")
            .replace("= 3", "= 5");
        assert_eq!(
            classify_config_change(BASE, &new),
            ConfigChange::Pending(vec!["bootstrap_expect".into(), "retry_join".into()])
        );
    }

    #[test]
    fn log_level_change_is_a_reload() {
        let new = BASE.replace("INFO", "DEBUG");
        assert_eq!(
            classify_config_change(BASE, &new),
            ConfigChange::Reload(vec!["log_level".into()])
        );
    }

    #[test]
    fn other_changes_need_a_restart() {
        let new =
            format!("{BASE}performance {{\n  raft_multiplier = 1\n}}\n").replace("INFO", "DEBUG");
        assert_eq!(
            classify_config_change(BASE, &new),
            ConfigChange::Restart(vec!["log_level".into(), "performance".into()])
        );
    }

    #[test]
    fn comment_only_change_needs_nothing() {
        let new = format!("# a new comment\n{BASE}");
        assert_eq!(classify_config_change(BASE, &new), ConfigChange::Nothing);
    }

    #[test]
    fn refine_keeps_restart_for_binary_changes() {
        let mut p = HostPlan {
            actions: vec![Action::Restart {
                reasons: vec!["binary changed".into(), "config changed".into()],
            }],
            pending_restart: vec![],
            notes: vec![],
        };
        refine_with_current_config(&mut p, BASE, &BASE.replace("INFO", "DEBUG"));
        assert!(matches!(p.actions[0], Action::Restart { .. }));
    }

    #[test]
    fn refine_turns_config_restart_into_reload_or_pending() {
        let restart = || HostPlan {
            actions: vec![Action::Restart {
                reasons: vec!["config changed".into()],
            }],
            pending_restart: vec![],
            notes: vec![],
        };
        let mut p = restart();
        refine_with_current_config(&mut p, BASE, &BASE.replace("INFO", "DEBUG"));
        assert_eq!(
            p.actions,
            vec![Action::Reload {
                keys: vec!["log_level".into()]
            }]
        );
        let mut p = restart();
        refine_with_current_config(&mut p, BASE, &BASE.replace("= 3", "= 5"));
        assert!(p.actions.is_empty());
        assert_eq!(p.pending_restart, vec!["bootstrap_expect".to_string()]);
    }
}
