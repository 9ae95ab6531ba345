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
    Disconnect,
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
                "Start clients",
                "Verify",
                "Disconnect"
            ]
        );
        assert_eq!(pb.steps[5].hosts, "role:server");
        assert_eq!(pb.steps[6].hosts, "role:client");
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
