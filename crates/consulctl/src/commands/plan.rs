//! `consulctl plan`: what `apply` would do, as actions and unified diffs. Changes nothing on
//! the hosts and writes nothing beside the inventory but the debug log.

use std::path::Path;
use std::time::Instant;

use consulctl_core::error::Error;

use crate::cli::PlanArgs;
use crate::engine::context::prepare;
use crate::engine::output;
use crate::engine::rollout::{phases, Rollout};
use consulctl_core::playbook::Playbook;

/// `consulctl plan`: connect, gather facts, plan, print actions and unified diffs. Changes nothing.
pub async fn run(args: &PlanArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let started = Instant::now();
    let p = prepare(&args.inv, "plan", debug_log).await?;
    // The rollout's phases as a dry run: connect, gather facts, validate (reading the files
    // that would change), disconnect; nothing that changes a host runs.
    let playbook = Playbook::rollout();
    let mut state = Rollout::new(&p, None, 0);
    phases(&playbook, true).run(&mut state).await?;
    let Rollout {
        runs,
        progress,
        current,
        ..
    } = state;
    for r in &runs {
        progress.finish(&r.host.name, "planned");
    }
    progress.clear();
    let secrets = crate::engine::plan_output::cluster_secrets(&p.cluster);
    let report = crate::engine::plan_output::report(
        &runs,
        &current,
        &secrets,
        started.elapsed(),
        &p.debug_log,
    );
    output::print(args.output, &report);
    let failed = runs.iter().filter(|r| r.failed.is_some()).count();
    output::hosts_failed(failed, runs.len(), Some(&p.debug_log))?;
    Ok(())
}
