//! The load-balancer sync daemon: Consul's catalog -> nginx or HAProxy configuration.
//!
//! - [`config`]: the daemon's configuration file;
//! - [`view`]: one catalog answer -> the services and instances to route (the template data);
//! - [`render`] with [`nginx`] and [`haproxy`]: the built-in outputs and user templates;
//! - [`sync`]: stage, validate, swap, test, reload, confirm, or put the previous files back;
//! - [`daemon`]: the watch, the coalescing, the check and the KV record.

pub mod config;
pub mod daemon;
pub mod haproxy;
pub mod nginx;
pub mod render;
pub mod runtime;
pub mod sync;
pub mod view;

use std::path::Path;

use crate::log;

/// What `consulctl-host lb` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Mode {
    /// Only check the configuration file.
    pub check: bool,
    /// Read the catalog once, render, sync once, exit.
    pub once: bool,
    /// With `once`: print instead of writing.
    pub dry: bool,
    /// With `dry`: print only this output (its name or path), exactly as it would be written.
    pub only: Option<String>,
    /// With `dry`: print a unified diff against the live files.
    pub diff: bool,
}

/// `consulctl-host lb`: exit code 0, 1 (run-time failure) or 2 (bad configuration).
pub fn main(config_path: &Path, mode: Mode) -> i32 {
    let config = if config_path == Path::new("-") {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            log::error(&format!("stdin: {e}"));
            return 2;
        }
        config::Config::parse(&text).map_err(|e| format!("<stdin>: {e}"))
    } else {
        config::Config::load(config_path)
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            log::error(&e);
            return 2;
        }
    };
    if mode.check {
        println!("{}: ok", config_path.display());
        return 0;
    }
    let (consul, runtime) = match crate::start(2) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut daemon = daemon::Daemon::new(config, consul, Box::new(sync::RealSystem));
    runtime.block_on(async move {
        if !mode.once {
            return match daemon.run().await {
                Ok(()) => 0,
                Err(e) => {
                    log::error(&format!("{e:#}"));
                    1
                }
            };
        }
        let read_started = std::time::Instant::now();
        if let Err(e) = daemon.read_once().await {
            log::error(&e);
            return 1;
        }
        let read_time = read_started.elapsed();
        if mode.dry {
            let render_started = std::time::Instant::now();
            let rendered = daemon.render_current();
            let render_time = render_started.elapsed();
            let rendered = match rendered {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    log::error(&e);
                    return 1;
                }
                None => return 1,
            };
            log::info(&format!(
                "rendered {} services, {} instances in {:.1} ms (catalog read in {:.0} ms)",
                rendered.routes.len(),
                render::routed_instances(&rendered.routes),
                render_time.as_secs_f64() * 1000.0,
                read_time.as_secs_f64() * 1000.0
            ));
            for p in &rendered.problems {
                log::warn(p);
            }
            return print_dry(&rendered, &mode);
        }
        match daemon.sync_now().await {
            Some(sync::Outcome::Failed { step, message }) => {
                log::error(&format!("{step}: {message}"));
                1
            }
            Some(o) => {
                println!("{o:?}");
                0
            }
            None => 1,
        }
    })
}

/// `--once --dry`: every output after a `==> path <==` line, one output exactly, or diffs.
fn print_dry(rendered: &render::Rendered, mode: &Mode) -> i32 {
    let chosen: Vec<&render::Output> = rendered
        .outputs
        .iter()
        .filter(|o| match &mode.only {
            Some(x) => o.name == *x || o.path.to_string_lossy() == *x,
            None => true,
        })
        .collect();
    if chosen.is_empty() {
        let names: Vec<String> = rendered
            .outputs
            .iter()
            .map(|o| format!("{} ({})", o.name, o.path.display()))
            .collect();
        log::error(&format!(
            "--only {:?}: no such output; the outputs are {}",
            mode.only.clone().unwrap_or_default(),
            names.join(", ")
        ));
        return 2;
    }
    for o in &chosen {
        if mode.diff {
            let live = std::fs::read_to_string(&o.path).unwrap_or_default();
            if live != o.content {
                let diff = similar::TextDiff::from_lines(&live, &o.content);
                print!(
                    "{}",
                    diff.unified_diff()
                        .context_radius(3)
                        .header(&o.path.to_string_lossy(), &o.path.to_string_lossy())
                );
            }
        } else if mode.only.is_some() {
            print!("{}", o.content);
        } else {
            println!("==> {} <==", o.path.display());
            print!("{}", o.content);
        }
    }
    0
}
