//! `consulctl reload`: `consul reload` on the selected agents (they re-read their config
//! files; nothing restarts). An agent that refuses its new config answers with the error and
//! keeps running on the old one: that host is reported failed, the others go on.

use std::path::Path;

use anyhow::Context;
use consulctl_core::error::Error;

use crate::cli::{ReloadArgs, Settings};
use crate::engine::agents::{Agents, PerHostReport};
use crate::engine::output;

pub async fn run(args: &ReloadArgs, log: Option<&Path>) -> Result<(), Error> {
    let a = Agents::open(Settings::from(&args.inv), "reload", log).await?;
    let hosts = a
        .each(|agent| async move {
            agent
                .client
                .call(consul_api::agent::reload())
                .await
                .context("the agent refused to reload (it keeps its running config)")?;
            Ok("reloaded".to_string())
        })
        .await;
    a.close().await;
    let report = PerHostReport {
        action: "reload".into(),
        hosts,
    };
    output::print(args.output, &report);
    output::hosts_failed(report.failed(), report.hosts.len(), None)
}
