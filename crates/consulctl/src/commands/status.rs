//! `consulctl status`: Consul's view (leader, raft peers, members) and each host's agent, as
//! `engine::status` reads them.

use std::path::Path;

use consulctl_core::error::Error;

use crate::cli::{Settings, StatusArgs};

pub async fn run(args: &StatusArgs, debug_log: Option<&Path>) -> Result<(), Error> {
    crate::engine::status::show(Settings::from(&args.inv), args.output, debug_log).await
}
