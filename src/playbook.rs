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
