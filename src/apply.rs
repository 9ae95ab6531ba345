//! (Being written.)
use std::path::Path;
use crate::cli::{ApplyArgs, PlanArgs};
use crate::error::Error;
pub async fn run(_args: &ApplyArgs, _debug_log: Option<&Path>) -> Result<(), Error> { todo!() }
pub async fn plan(_args: &PlanArgs, _debug_log: Option<&Path>) -> Result<(), Error> { todo!() }
