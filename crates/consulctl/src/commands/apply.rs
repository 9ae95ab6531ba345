//! `consulctl apply`: the shipped rollout playbook (`engine::rollout`).

use std::path::Path;

use consulctl_core::error::Error;

use crate::cli::{ApplyArgs, RolloutSettings, Settings};
use crate::engine::rollout;

pub async fn run(args: &ApplyArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    rollout::apply(
        &Settings::from(&args.inv),
        RolloutSettings {
            output: args.output,
            verify_timeout_secs: args.verify_timeout,
        },
        debug_log,
    )
    .await
}
