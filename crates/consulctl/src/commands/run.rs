//! `consulctl run PLAYBOOK`: a playbook of the user's, checked before any host is touched, then
//! run like the rollout (`engine::rollout::run_playbook`).

use std::path::Path;

use anyhow::{anyhow, Context};
use consulctl_core::error::Error;
use consulctl_core::playbook::Playbook;
use consulctl_core::selector::Selector;

use crate::cli::RunArgs;
use crate::engine::{context, rollout};

/// `consulctl run PLAYBOOK`: a playbook of the user's (parsed before any host is touched).
pub async fn run(args: &RunArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let text = std::fs::read_to_string(&args.playbook)
        .with_context(|| format!("{}: cannot read the playbook", args.playbook.display()))
        .map_err(Error::Input)?;
    let playbook = Playbook::parse(&args.playbook, &text).map_err(Error::Input)?;
    for step in &playbook.steps {
        if step.hosts != "all" {
            Selector::parse(
                &step.hosts,
                &consulctl_core::inventory::load(&args.inv.cluster.inventory)?,
            )
            .map_err(|e| {
                Error::Input(anyhow!(
                    "{}: step {:?}: hosts = {:?}: {e}",
                    args.playbook.display(),
                    step.title,
                    step.hosts
                ))
            })?;
        }
    }
    let p = context::prepare(&args.inv, "run", debug_log).await?;
    rollout::run_playbook(&playbook, &p, "run", args.output, args.verify_timeout).await
}
