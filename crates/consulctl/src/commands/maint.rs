//! `consulctl maint on|off --on HOSTS [--service ID] [--reason TEXT]`: maintenance mode of
//! nodes or of one service instance on them, through each host's agent. Consul adds a
//! critical `_node_maintenance` (or `_service_maintenance:ID`) check: the node's services (or
//! that instance) leave DNS answers and healthy-service queries, so load balancers that follow
//! the catalog stop routing to them. Each change is confirmed in Consul's health data.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use consul_api::poll::{self, Progress};
use consulctl_core::error::Error;

use crate::cli::{MaintArgs, OnOff};
use crate::engine::agents::{settings_for, Agents, PerHostReport};
use crate::engine::output;

/// The check Consul adds for maintenance of the node, or of service `id`.
pub fn maintenance_check_id(service: Option<&str>) -> String {
    match service {
        None => "_node_maintenance".into(),
        Some(id) => format!("_service_maintenance:{id}"),
    }
}

/// What was done, as the per-host line says it.
pub fn detail(state: OnOff, service: Option<&str>, reason: Option<&str>) -> String {
    let what = match service {
        None => "node".to_string(),
        Some(id) => format!("service {id}"),
    };
    match (state, reason) {
        (OnOff::On, Some(r)) => format!("{what} in maintenance (reason: {r})"),
        (OnOff::On, None) => format!("{what} in maintenance"),
        (OnOff::Off, _) => format!("{what} out of maintenance"),
    }
}

pub async fn run(args: &MaintArgs, log: Option<&Path>) -> Result<(), Error> {
    if let Some(r) = &args.reason {
        if r.chars().any(char::is_control) {
            return Err(Error::Input(anyhow!(
                "--reason: one line of text without control characters"
            )));
        }
    }
    let a = Agents::open(settings_for(&args.cluster, &args.hosts), "maint", log).await?;
    let enable = args.state == OnOff::On;
    let service = args.service.as_deref();
    let reason = args.reason.as_deref();
    let hosts = a
        .each(|agent| async move {
            let node = agent
                .client
                .call(consul_api::agent::self_info())
                .await?
                .config
                .node_name;
            let call = match service {
                None => consul_api::agent::maintenance(enable, reason),
                Some(id) => consul_api::agent::service_maintenance(id, enable, reason),
            };
            agent.client.call(call).await.context("the agent refused")?;
            let check = maintenance_check_id(service);
            poll::wait_until(
                &format!(
                    "Consul to {} {check} on {node}",
                    if enable { "show" } else { "drop" }
                ),
                Duration::from_secs(15),
                Duration::from_millis(250),
                || async {
                    let checks = agent.client.call(consul_api::health::node(&node)).await?;
                    let there = checks.iter().any(|c| c.check_id == check);
                    Ok::<_, consul_api::Error>(if there == enable {
                        Progress::Ready(())
                    } else {
                        Progress::Pending(format!("{} checks on {node}", checks.len()))
                    })
                },
            )
            .await
            .map_err(|t| anyhow!("{t}"))?;
            Ok(detail(args.state, service, reason))
        })
        .await;
    a.close().await;
    let report = PerHostReport {
        action: format!("maint {}", if enable { "on" } else { "off" }),
        hosts,
    };
    output::print(args.output, &report);
    output::hosts_failed(report.failed(), report.hosts.len(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_service_maintenance_are_told_apart() {
        assert_eq!(maintenance_check_id(None), "_node_maintenance");
        assert_eq!(
            maintenance_check_id(Some("web-1")),
            "_service_maintenance:web-1"
        );
        assert_eq!(
            detail(OnOff::On, None, Some("disk swap")),
            "node in maintenance (reason: disk swap)"
        );
        assert_eq!(
            detail(OnOff::Off, Some("web-1"), Some("ignored")),
            "service web-1 out of maintenance"
        );
    }
}
