//! `consulctl man --dir DIR`.

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::ManArgs;

pub fn run(_args: &ManArgs) -> Result<(), Error> {
    Err(Error::Input(anyhow!("man: not built yet")))
}
