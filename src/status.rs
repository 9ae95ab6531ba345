//! (Being written.)
use std::path::Path;
use crate::cli::StatusArgs;
use crate::error::Error;
pub async fn run(_args: &StatusArgs, _debug_log: Option<&Path>) -> Result<(), Error> { todo!() }
