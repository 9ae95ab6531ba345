//! `consulctl completions SHELL`.

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::CompletionsArgs;

pub fn run(_args: &CompletionsArgs) -> Result<(), Error> {
    Err(Error::Input(anyhow!("completions: not built yet")))
}
