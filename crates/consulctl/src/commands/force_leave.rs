//! `consulctl force_leave`.

use std::path::Path;

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::ForceLeaveArgs;

pub async fn run(_a: &ForceLeaveArgs, _log: Option<&Path>) -> Result<(), Error> {
    Err(Error::Input(anyhow!("not built yet")))
}
