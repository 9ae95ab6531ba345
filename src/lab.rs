//! `consulctl lab up|down`: Docker containers with sshd as lab hosts. (Being written.)
use std::path::Path;

use crate::cli::{LabDownArgs, LabUpArgs};
use crate::error::Error;

pub async fn up(_args: &LabUpArgs, _debug_log: Option<&Path>) -> Result<(), Error> {
    todo!()
}

pub async fn down(_args: &LabDownArgs) -> Result<(), Error> {
    todo!()
}
