//! (Being written.)
use crate::cli::{ApplyArgs, PlanArgs};
use crate::error::Error;
use std::path::Path;
pub async fn run(_args: &ApplyArgs, _debug_log: Option<&Path>) -> Result<(), Error> {
    todo!()
}
pub async fn plan(_args: &PlanArgs, _debug_log: Option<&Path>) -> Result<(), Error> {
    todo!()
}
