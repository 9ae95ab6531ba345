//! `consulctl maint`.

use std::path::Path;

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::MaintArgs;

pub async fn run(_a: &MaintArgs, _log: Option<&Path>) -> Result<(), Error> {
    Err(Error::Input(anyhow!("not built yet")))
}
