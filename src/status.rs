//! (Being written.)
use crate::cli::StatusArgs;
use crate::error::Error;
use std::path::Path;
pub async fn run(_args: &StatusArgs, _debug_log: Option<&Path>) -> Result<(), Error> {
    todo!()
}
