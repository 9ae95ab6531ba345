//! consulctl: roll out and operate HashiCorp Consul clusters over SSH from one TOML inventory.
//!
//! The pipeline, one module per stage:
//! inventory (parse -> validate -> `model`) -> `facts` (one read-only command per host) ->
//! `plan` (pure: desired state + facts -> actions) -> `execute` -> `verify` (ask Consul).

pub mod cli;
pub mod commands;
pub mod engine;
pub mod local;
pub mod remote;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{
    CatalogCommand, Cli, Command, InventoryCommand, InventoryImportCommand, KeysCommand,
    LabCommand, NodeCommand, ServiceCommand, TlsCommand,
};
use crate::commands::{
    catalog, completions, doctor, force_leave, inventory, keys, lab, maint, man, node, recover,
    reload, restart, service, services, status, tls, unlock,
};
use consulctl_core::error::Error;

/// Entry point: parse arguments, run the command, print the error once, return the exit code.
pub fn run() -> i32 {
    cli::settings::ignore_empty_inventory_env();
    let mut command = Cli::command();
    let matches = command.get_matches_mut();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut command).exit(),
    };
    // -i, CONSULCTL_INVENTORY or ./consulctl.toml: checked once here, before any command runs
    if let Err(e) = cli::settings::check_inventory(&command, &matches) {
        eprintln!(
            "error: {}",
            consulctl_core::redact::redact(&e.to_string(), &[])
        );
        return e.code();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "error: {}",
                consulctl_core::redact::redact(&e.to_string(), &[])
            );
            e.code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Error> {
    let log = cli.debug_log.as_deref();
    match cli.command {
        Command::Apply(args) => commands::apply::run(&args, cli.debug_log.as_deref()).await,
        Command::Plan(args) => commands::plan::run(&args, cli.debug_log.as_deref()).await,
        Command::Status(args) => status::run(&args, cli.debug_log.as_deref()).await,
        Command::Run(args) => commands::run::run(&args, cli.debug_log.as_deref()).await,
        Command::Restart(args) => restart::run(&args, cli.debug_log.as_deref()).await,
        Command::Services(args) => services::run(&args, cli.debug_log.as_deref()).await,
        Command::Doctor(args) => doctor::run(&args, cli.debug_log.as_deref()).await,
        Command::Recover(args) => recover::run(&args, cli.debug_log.as_deref()).await,
        Command::Keys { command } => match command {
            KeysCommand::Rotate(args) => keys::rotate(&args, cli.debug_log.as_deref()).await,
        },
        Command::Tls { command } => match command {
            TlsCommand::Renew(args) => tls::renew(&args, cli.debug_log.as_deref()).await,
        },
        Command::Node { command } => match command {
            NodeCommand::Remove(args) => node::remove(&args, cli.debug_log.as_deref()).await,
        },
        Command::Unlock(args) => unlock::run(&args, cli.debug_log.as_deref()).await,
        Command::Lab { command } => match command {
            LabCommand::Up(args) => lab::up(&args, cli.debug_log.as_deref()).await,
            LabCommand::Down(args) => lab::down(&args).await,
        },
        Command::Catalog { command } => match command {
            CatalogCommand::Services(args) => catalog::services(&args, log).await,
            CatalogCommand::Service(args) => catalog::service(&args, log).await,
            CatalogCommand::Nodes(args) => catalog::nodes(&args, log).await,
        },
        Command::Service { command } => match command {
            ServiceCommand::Register(args) => service::register(&args, log).await,
            ServiceCommand::Deregister(args) => service::deregister(&args, log).await,
        },
        Command::Maint(args) => maint::run(&args, log).await,
        Command::Reload(args) => reload::run(&args, log).await,
        Command::ForceLeave(args) => force_leave::run(&args, log).await,
        Command::Inventory { command } => match command {
            InventoryCommand::Check(args) => inventory::check(&args),
            InventoryCommand::Schema => inventory::schema(),
            InventoryCommand::Import { command } => match command {
                InventoryImportCommand::Ansible(args) => inventory::import_ansible(&args),
            },
        },
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
    }
}
