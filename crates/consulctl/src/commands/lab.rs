//! `consulctl lab up|down`: the lab's hosts come from `consulctl_lab`; `up` then rolls Consul
//! out on them with `apply` and prints `status`.

use std::path::Path;

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::{InventoryArgs, LabDownArgs, LabUpArgs, Output, RolloutSettings, Settings};

/// `consulctl lab up`: hosts and inventory, then `apply` and `status` unless `--no-apply`.
pub async fn up(args: &LabUpArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    if args.servers == 0 {
        return Err(Error::input(anyhow!("--servers must be at least 1")));
    }
    let lab = consulctl_lab::create(&consulctl_lab::UpSpec {
        name: args.name.clone(),
        servers: args.servers,
        clients: args.clients,
        init: args.init,
        subnet: args.subnet,
        inventory: args.inventory.clone(),
        resolved_hosts: args.dns.resolved_hosts.clone(),
        docker_hosts: args.docker_hosts.clone(),
        lb_hosts: args.lb_hosts.clone(),
    })
    .await?;
    if !args.no_apply {
        let inv = InventoryArgs::all_hosts(&lab.inventory, false);
        crate::engine::rollout::apply(&Settings::from(&inv), RolloutSettings::default(), debug_log)
            .await?;
        crate::engine::status::show(&Settings::from(&inv), Output::Text, debug_log).await?;
    }
    println!();
    println!("next:");
    for line in lab.next_steps(!args.no_apply) {
        println!("  {line}");
    }
    Ok(())
}

/// `consulctl lab down`: removes the lab's containers and network, its state dir and the
/// inventory it generated. Idempotent.
pub async fn down(args: &LabDownArgs) -> Result<(), Error> {
    consulctl_lab::down(&args.name).await
}
