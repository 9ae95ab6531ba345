//! Playbooks: ordered steps over built-in tasks, as TOML. `playbooks/rollout.toml` is embedded
//! and is what `apply` runs.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

pub const ROLLOUT: &str = include_str!("../playbooks/rollout.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub title: String,
    pub task: Task,
    /// Selector (`--limit` syntax) or "all".
    #[serde(default = "all")]
    pub hosts: String,
    /// Batch size for `command` steps: a number of hosts (`1`) or a share (`"25%"`); all at
    /// once when absent.
    #[serde(default)]
    pub serial: Option<Serial>,
    /// For `task = "command"`: the argv to run on each host (as root; every argument is
    /// escaped, none is interpreted by a shell).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// For `task = "command"`: a failing command does not fail the host.
    #[serde(default)]
    pub ignore_errors: bool,
}

/// A batch size: a count of hosts or a percentage of the step's hosts (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Serial {
    Count(usize),
    Percent(#[serde(deserialize_with = "percent")] u8),
}

fn percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let s = String::deserialize(d)?;
    s.strip_suffix('%')
        .and_then(|n| n.trim().parse::<u8>().ok())
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "serial = {s:?}: expected a host count like 1 or a share like \"25%\""
            ))
        })
}

impl Serial {
    /// The batch size for `n` hosts.
    pub fn batch(self, n: usize) -> usize {
        match self {
            Serial::Count(c) => c.max(1),
            Serial::Percent(p) => (n * p as usize).div_ceil(100).max(1),
        }
    }
}

fn all() -> String {
    "all".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Connect,
    GatherFacts,
    Validate,
    Upload,
    Configure,
    Start,
    Verify,
    /// `acl = true`: bootstrap the ACL system once, create each node's agent policy and token.
    Acl,
    Disconnect,
    /// Run `command` (an argv) on each host, `serial` at a time.
    Command,
}

fn task_name(t: Task) -> &'static str {
    match t {
        Task::Connect => "connect",
        Task::GatherFacts => "gather_facts",
        Task::Validate => "validate",
        Task::Upload => "upload",
        Task::Configure => "configure",
        Task::Start => "start",
        Task::Verify => "verify",
        Task::Acl => "acl",
        Task::Disconnect => "disconnect",
        Task::Command => "command",
    }
}

/// Whether a step of this task can act on a subset of the run's hosts (`hosts`).
///
/// validate, upload, configure, start and command work host by host: a host outside the step's
/// selector is left as it is for that step (not planned, nothing uploaded or installed, not
/// started, the command not run) and a later step may still act on it. The other tasks cannot
/// honour a subset, so a `hosts` other than "all" on them is refused rather than ignored:
/// - connect and gather_facts decide which hosts the run has at all: every later step needs
///   the connection and the facts (the bind addresses of all servers go into every config);
///   a host left out here could take part in no step, which is what `--limit` says;
/// - disconnect closes the connections and releases the host locks of the whole run;
/// - acl bootstraps the cluster's ACL system once and makes the agent tokens of every
///   inventory node, through one server: it acts on the cluster, not on hosts;
/// - verify asks Consul whether the whole cluster is what the inventory describes.
pub fn takes_hosts(task: Task) -> bool {
    matches!(
        task,
        Task::Validate | Task::Upload | Task::Configure | Task::Start | Task::Command
    )
}

fn why_all_hosts(task: Task) -> &'static str {
    match task {
        Task::Connect | Task::GatherFacts => {
            "every later step needs the connection and facts of all the run's hosts"
        }
        Task::Disconnect => "it closes the connections and releases the locks of the whole run",
        Task::Acl => "it bootstraps ACLs and makes the agent tokens of the whole cluster",
        Task::Verify => "it checks the whole cluster against the inventory",
        _ => "",
    }
}

/// Line and column (1-based) of `key` in `[[steps]]` number `step` of a playbook's text.
fn key_position(text: &str, step: usize, key: &str) -> Option<(usize, usize)> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let span = doc
        .get("steps")?
        .as_array_of_tables()?
        .get(step)?
        .key(key)?
        .span()?;
    let before = text.get(..span.start)?;
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    Some((line, col))
}

impl Playbook {
    pub fn parse(origin: &Path, text: &str) -> Result<Playbook> {
        let pb: Playbook = toml::from_str(text)
            .with_context(|| format!("{}: invalid playbook", origin.display()))?;
        anyhow::ensure!(
            !pb.steps.is_empty(),
            "{}: a playbook needs at least one step",
            origin.display()
        );
        for (i, step) in pb.steps.iter().enumerate() {
            match (step.task, &step.command) {
                (Task::Command, None) => anyhow::bail!(
                    "{}: steps[{i}] ({:?}): task = \"command\" needs command = [\"program\", \"arg\", ...]",
                    origin.display(),
                    step.title
                ),
                (Task::Command, Some(argv)) if argv.is_empty() => anyhow::bail!(
                    "{}: steps[{i}] ({:?}): command must name a program",
                    origin.display(),
                    step.title
                ),
                (t, Some(_)) if t != Task::Command => anyhow::bail!(
                    "{}: steps[{i}] ({:?}): command is only allowed with task = \"command\"",
                    origin.display(),
                    step.title
                ),
                _ => {}
            }
            if step.hosts != "all" && !takes_hosts(step.task) {
                let at = key_position(text, i, "hosts")
                    .map(|(l, c)| format!(":{l}:{c}"))
                    .unwrap_or_default();
                anyhow::bail!(
                    "{}{at}: steps[{i}] ({:?}): hosts = {:?} is not allowed with task = {:?}: {}; \
                     `hosts` is allowed with the tasks validate, upload, configure, start and \
                     command (use --limit to run the whole playbook on fewer hosts)",
                    origin.display(),
                    step.title,
                    step.hosts,
                    task_name(step.task),
                    why_all_hosts(step.task)
                );
            }
            // Each task needs what earlier steps produce.
            let before = |t: Task| pb.steps[..i].iter().any(|s| s.task == t);
            let needs: &[Task] = match step.task {
                Task::Connect => &[],
                Task::GatherFacts | Task::Command | Task::Disconnect => &[Task::Connect],
                Task::Validate => &[Task::Connect, Task::GatherFacts],
                Task::Upload | Task::Configure | Task::Start | Task::Verify | Task::Acl => {
                    &[Task::Connect, Task::GatherFacts, Task::Validate]
                }
            };
            if let Some(missing) = needs.iter().find(|t| !before(**t)) {
                anyhow::bail!(
                    "{}: steps[{i}] ({:?}): task {:?} needs an earlier step with task = {:?}",
                    origin.display(),
                    step.title,
                    task_name(step.task),
                    task_name(*missing)
                );
            }
        }
        Ok(pb)
    }

    pub fn rollout() -> Playbook {
        Playbook::parse(Path::new("playbooks/rollout.toml"), ROLLOUT)
            .expect("the embedded rollout playbook parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_has_the_titled_phases_in_order() {
        let pb = Playbook::rollout();
        let titles: Vec<&str> = pb.steps.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Connect",
                "Gather facts",
                "Validate",
                "Upload",
                "Configure",
                "Start servers",
                "ACLs",
                "Start clients",
                "Verify",
                "Disconnect"
            ]
        );
        assert_eq!(pb.steps[5].hosts, "role:server");
        assert_eq!(pb.steps[7].hosts, "role:client");
    }

    #[test]
    fn command_steps_need_an_argv_and_serial_is_a_count_or_a_share() {
        let pb = Playbook::parse(
            Path::new("p.toml"),
            "name='x'\n[[steps]]\ntitle='k'\ntask='connect'\n[[steps]]\ntitle='c'\ntask='command'\ncommand=['systemctl','disable','--now','cups']\nserial='25%'\n",
        )
        .unwrap();
        assert_eq!(pb.steps[1].serial, Some(Serial::Percent(25)));
        assert_eq!(Serial::Percent(25).batch(8), 2);
        assert_eq!(Serial::Percent(25).batch(3), 1);
        assert_eq!(Serial::Count(0).batch(3), 1);
        let err = Playbook::parse(
            Path::new("p.toml"),
            "name='x'\n[[steps]]\ntitle='c'\ntask='command'\n",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("steps[0]"), "{err:#}");
        let err = Playbook::parse(
            Path::new("p.toml"),
            "name='x'\n[[steps]]\ntitle='c'\ntask='command'\ncommand=['x']\nserial='150%'\n",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("serial"), "{err:#}");
    }

    #[test]
    fn a_step_before_what_it_needs_is_rejected() {
        let err = Playbook::parse(
            Path::new("p.toml"),
            "name='x'\n[[steps]]\ntitle='c'\ntask='command'\ncommand=['true']\n",
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("steps[0]") && msg.contains("\"connect\""),
            "{msg}"
        );
    }

    #[test]
    fn shipped_example_playbooks_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Playbook::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
            }
        }
    }

    #[test]
    fn hosts_is_refused_where_a_task_acts_on_all_hosts_or_the_cluster() {
        let head = "name='x'\n[[steps]]\ntitle='k'\ntask='connect'\n[[steps]]\ntitle='f'\ntask='gather_facts'\n[[steps]]\ntitle='v'\ntask='validate'\n";
        for (task, line) in [
            ("acl", 14),
            ("verify", 14),
            ("disconnect", 14),
            ("gather_facts", 14),
        ] {
            let text = format!("{head}[[steps]]\ntitle='Last'\ntask='{task}'\nhosts = 'server1'\n");
            let err = Playbook::parse(Path::new("pb.toml"), &text).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.starts_with(&format!("pb.toml:{line}:1: steps[3] (\"Last\")")),
                "{msg}"
            );
            assert!(msg.contains("hosts = \"server1\""), "{msg}");
            assert!(msg.contains(&format!("task = \"{task}\"")), "{msg}");
        }
        let err = Playbook::parse(
            Path::new("pb.toml"),
            "name='x'\n[[steps]]\ntitle='k'\ntask='connect'\nhosts='tag:web'\n",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").starts_with("pb.toml:5:1: steps[0]"),
            "{err:#}"
        );
        // "all" is what no `hosts` means: allowed everywhere.
        Playbook::parse(
            Path::new("pb.toml"),
            &format!("{head}[[steps]]\ntitle='Verify'\ntask='verify'\nhosts='all'\n"),
        )
        .unwrap();
        // The host-by-host tasks take it.
        let pb = Playbook::parse(
            Path::new("pb.toml"),
            &format!(
                "{}[[steps]]\ntitle='u'\ntask='upload'\nhosts='server1'\n[[steps]]\ntitle='c'\ntask='configure'\nhosts='tag:web'\n",
                head.replace("task='validate'\n", "task='validate'\nhosts='server1,client1'\n")
            ),
        )
        .unwrap();
        let hosts: Vec<&str> = pb.steps.iter().map(|s| s.hosts.as_str()).collect();
        assert_eq!(
            hosts,
            ["all", "all", "server1,client1", "server1", "tag:web"]
        );
        assert!(takes_hosts(Task::Start) && takes_hosts(Task::Command));
    }

    #[test]
    fn unknown_task_is_rejected_with_its_name() {
        let err = Playbook::parse(
            Path::new("x.toml"),
            "name='x'\n[[steps]]\ntitle='a'\ntask='reboot'\n",
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("x.toml"), "{msg}");
        assert!(msg.contains("reboot"), "{msg}");
    }
}
