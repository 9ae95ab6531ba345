//! `consulctl service`.

use std::path::Path;

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::{ServiceDeregisterArgs, ServiceRegisterArgs};

pub async fn register(_a: &ServiceRegisterArgs, _log: Option<&Path>) -> Result<(), Error> {
    Err(Error::Input(anyhow!("not built yet")))
}
pub async fn deregister(_a: &ServiceDeregisterArgs, _log: Option<&Path>) -> Result<(), Error> {
    Err(Error::Input(anyhow!("not built yet")))
}
