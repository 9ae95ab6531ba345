//! The Docker registrar: containers on this host -> services on the local Consul agent.
//!
//! - [`container`]: a container as read from Docker's inspect JSON;
//! - [`conventions`]: registrator's `SERVICE_*` conventions -> desired services (pure), with
//!   its parts: `keys` (the settings sorted by scope and word), `ports` (which ports, at which
//!   address), `checks`, `meta`, and [`duration`] (Go durations);
//! - [`reconcile`]: desired services + the agent's state -> actions (pure);
//! - [`config`]: the daemon's configuration file;
//! - [`docker`]: the Docker Engine API (list, inspect, events with reconnect);
//! - [`daemon`]: the loop that ties them together.

pub mod config;
pub mod container;
pub mod conventions;
pub mod daemon;
pub mod docker;
pub mod duration;
pub mod reconcile;

mod checks;
mod keys;
mod meta;
mod ports;

use std::path::Path;

use crate::log;

/// `consulctl-host registrar`: exit code 0, 1 (run-time failure) or 2 (bad configuration).
pub fn main(config_path: &Path, dry_run: bool, check: bool) -> i32 {
    let config = match config::Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            log::error(&e);
            return 2;
        }
    };
    if check {
        println!("{}: ok", config_path.display());
        return 0;
    }
    let (consul, runtime) = match crate::start(4) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let registrar = daemon::Registrar::new(config, consul);
    runtime.block_on(async move {
        if dry_run {
            let mut registrar = registrar;
            match registrar.dry_run().await {
                Ok(d) => {
                    println!("{}", dry_run_json(&d));
                    0
                }
                Err(e) => {
                    log::error(&e);
                    1
                }
            }
        } else {
            match registrar.run().await {
                Ok(()) => 0,
                Err(e) => {
                    log::error(&format!("{e:#}"));
                    1
                }
            }
        }
    })
}

/// The dry run as JSON: services (registrations, maintenance, mirrored health), problems and
/// the actions a pass would take.
fn dry_run_json(d: &daemon::DryRun) -> String {
    use serde_json::json;
    let services: Vec<_> = d
        .desired
        .iter()
        .map(|s| {
            json!({
                "registration": s.registration,
                "maintenance": s.maintenance,
                "health": s.ttl.iter().map(|t| json!({"check_id": t.check_id, "status": t.status, "note": t.note})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let actions: Vec<String> = d.actions.iter().map(|a| format!("{a:?}")).collect();
    let problems: Vec<String> = d.problems.iter().map(|p| p.to_string()).collect();
    serde_json::to_string_pretty(&json!({
        "services": services,
        "problems": problems,
        "actions": actions,
    }))
    .unwrap_or_default()
}
