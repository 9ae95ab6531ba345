//! `consulctl reload`.

use std::path::Path;

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::ReloadArgs;

pub async fn run(_a: &ReloadArgs, _log: Option<&Path>) -> Result<(), Error> {
    Err(Error::Input(anyhow!("not built yet")))
}
