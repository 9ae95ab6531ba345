//! `consulctl unlock`: break the host locks a consulctl run left behind when it is gone for good
//! (killed on another machine, or that machine is down). Runs under the control lock (so never
//! beside a live run of this machine), names each lock's holder, and refuses a lock whose
//! process still runs on this machine. Hosts SSH cannot reach are reported and skipped.

use std::path::Path;

use crate::cli::UnlockArgs;
use crate::engine::context;
use consulctl_core::error::Error;

pub async fn run(args: &UnlockArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    let p = context::prepare(&args.inv, "unlock", debug_log).await?;
    let _lock = crate::engine::lock::RunLock::acquire(&p.cluster.state_dir(), "unlock")?;
    let (mut runs, _progress) = context::connect_and_gather(&p).await;
    let mut failed = 0;
    let total = runs.len();
    for r in &runs {
        let name = &r.host.name;
        let Some(conn) = r.conn.as_ref() else {
            failed += 1;
            let why = r.failed.as_ref().map(|(_, e)| e.as_str()).unwrap_or("");
            println!("{name}: not reached: {why}");
            continue;
        };
        match crate::engine::lock::break_host_lock(conn).await {
            Ok(Some(h)) => {
                tracing::warn!(host = %name, holder = %h.describe(), "broke the host lock");
                println!("{name}: broke the lock held by {}", h.describe());
            }
            Ok(None) => println!("{name}: not locked"),
            Err(e) => {
                failed += 1;
                println!("{name}: {e:#}");
            }
        }
    }
    context::disconnect(&mut runs, None).await;
    crate::engine::output::hosts_failed(failed, total, None)
}
