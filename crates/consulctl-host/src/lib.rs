//! consulctl's host-side daemons. `consulctl apply` installs this binary on the hosts the
//! inventory names and runs it next to the Consul agent (systemd unit or supervisord program).
//!
//! Exit codes: 0 ok (a daemon stopped by SIGTERM/SIGINT), 1 a run-time failure, 2 bad
//! configuration or usage.

pub mod lb;
pub mod log;
pub mod memory;
pub mod registrar;
pub mod selfcheck;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "consulctl-host",
    version,
    about = "consulctl's daemons on managed hosts",
    long_about = "consulctl's daemons on managed hosts. `consulctl apply` installs and configures \
                  them from the inventory; run them by hand only to debug."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register this host's Docker containers with the local Consul agent (registrator's
    /// SERVICE_* conventions)
    #[command(after_help = "Examples:\n  \
        consulctl-host registrar --config /etc/consulctl/registrar.toml\n  \
        consulctl-host registrar --config /etc/consulctl/registrar.toml --dry-run\n  \
        consulctl-host registrar --config /etc/consulctl/registrar.toml --check\n\n\
        The agent is reached as Consul's CLI reaches it: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN_FILE, \
        CONSUL_CACERT, ...")]
    Registrar {
        /// The registrar's configuration file (TOML)
        #[arg(long, default_value = "/etc/consulctl/registrar.toml")]
        config: PathBuf,
        /// Read containers and the agent once, print what would be registered and changed
        /// (JSON), change nothing
        #[arg(long, conflicts_with = "check")]
        dry_run: bool,
        /// Only check the configuration file
        #[arg(long)]
        check: bool,
    },
    /// Keep nginx or HAProxy equal to the passing instances in Consul's catalog (services
    /// with the selector tag plus http, tcp or udp), validating before every reload
    #[command(after_help = "Examples:\n  \
        consulctl-host lb --config /etc/consulctl/lb.toml\n  \
        consulctl-host lb --config /etc/consulctl/lb.toml --once --dry\n  \
        consulctl-host lb --config /etc/consulctl/lb.toml --once --dry --only nginx-http\n\n\
        The agent is reached as Consul's CLI reaches it: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN_FILE, \
        CONSUL_CACERT, ...")]
    Lb {
        /// The daemon's configuration file (TOML); `-` reads it from stdin
        #[arg(long, default_value = "/etc/consulctl/lb.toml")]
        config: PathBuf,
        /// Read the catalog once, render, put the files in place and reload once, then exit
        #[arg(long)]
        once: bool,
        /// With --once: print what would be written from the live catalog, write nothing
        #[arg(long, requires = "once")]
        dry: bool,
        /// With --dry: print only this output (`nginx-http`, `nginx-stream`, `haproxy`, a
        /// template's name, or a path), byte for byte as it would be written
        #[arg(long, requires = "dry")]
        only: Option<String>,
        /// With --dry: print a unified diff against the files in place
        #[arg(long, requires = "dry")]
        diff: bool,
        /// Only check the configuration file
        #[arg(long, conflicts_with = "once")]
        check: bool,
    },
    /// Print `consulctl-host <version>` (consulctl's installer runs it to prove the uploaded
    /// binary runs on the host)
    Version,
}

/// What every daemon starts with: the local agent's client, configured like Consul's CLI
/// (`CONSUL_HTTP_*`), and a current-thread runtime. `Err` is the exit code, the cause logged.
pub(crate) fn start(
    blocking_threads: usize,
) -> Result<(consul_api::Client, tokio::runtime::Runtime), i32> {
    let transport = consul_api::http::HttpTransport::from_env().map_err(|e| {
        log::error(&format!("Consul agent settings (CONSUL_HTTP_*): {e}"));
        2
    })?;
    memory::one_arena();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
        .map_err(|e| {
            log::error(&format!("cannot start the runtime: {e}"));
            1
        })?;
    Ok((consul_api::Client::new(transport), runtime))
}

/// Run the command line; returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Registrar {
            config,
            dry_run,
            check,
        } => registrar::main(&config, dry_run, check),
        Command::Lb {
            config,
            once,
            dry,
            only,
            diff,
            check,
        } => lb::main(
            &config,
            lb::Mode {
                check,
                once,
                dry,
                only,
                diff,
            },
        ),
        Command::Version => {
            println!("consulctl-host {}", env!("CARGO_PKG_VERSION"));
            0
        }
    }
}
