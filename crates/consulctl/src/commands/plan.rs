//! `consulctl plan`: what `apply` would do, as actions and unified diffs. Changes nothing on
//! the hosts and writes nothing beside the inventory but the debug log.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use consulctl_core::error::Error;

use crate::cli::{Output, PlanArgs};
use crate::engine::context::{connect, disconnect, gather_facts, prepare, HostRun};
use crate::engine::progress::Progress;
use crate::engine::rollout::{refine, validate};

/// `consulctl plan`: connect, gather facts, plan, print actions and unified diffs. Changes nothing.
pub async fn run(args: &PlanArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let started = Instant::now();
    let p = prepare(&args.inv, "plan", debug_log).await?;
    let mut runs: Vec<HostRun> = p.selected.iter().cloned().map(HostRun::new).collect();
    let progress = Progress::new(runs.iter().map(|r| r.host.name.as_str()));
    connect(&mut runs, &p, &progress).await;
    gather_facts(&mut runs, &p, &progress).await;
    validate(&mut runs, &p, &progress);
    refine(&mut runs, &p, &progress).await;
    // The current contents of the files that would change, for the diffs: one read per host.
    let reads = runs
        .iter()
        .filter(|r| r.alive() && !r.plan.is_empty())
        .map(|r| async move {
            let paths: Vec<&Path> = r.plan.file_writes().map(|f| f.path.as_path()).collect();
            let conn = r.conn.as_ref().expect("connected");
            (
                r.host.name.clone(),
                crate::execute::read_files(conn, &paths).await,
            )
        });
    let current: BTreeMap<String, _> = futures::future::join_all(reads).await.into_iter().collect();
    for r in &runs {
        progress.finish(&r.host.name, "planned");
    }
    progress.clear();
    let secrets = crate::plan_output::cluster_secrets(&p.cluster);
    let report =
        crate::plan_output::report(&runs, &current, &secrets, started.elapsed(), &p.debug_log);
    match args.output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => println!("{}", report.to_json()),
    }
    disconnect(&mut runs, None).await;
    let failed = runs.iter().filter(|r| r.failed.is_some()).count();
    if failed > 0 {
        eprintln!("debug log: {}", p.debug_log.display());
        return Err(Error::HostsFailed {
            failed,
            total: runs.len(),
        });
    }
    Ok(())
}
