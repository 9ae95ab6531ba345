//! `consulctl catalog`.

use std::path::Path;

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::{CatalogNodesArgs, CatalogServiceArgs, CatalogServicesArgs};

pub async fn services(_a: &CatalogServicesArgs, _log: Option<&Path>) -> Result<(), Error> {
    Err(Error::Input(anyhow!("not built yet")))
}
pub async fn service(_a: &CatalogServiceArgs, _log: Option<&Path>) -> Result<(), Error> {
    Err(Error::Input(anyhow!("not built yet")))
}
pub async fn nodes(_a: &CatalogNodesArgs, _log: Option<&Path>) -> Result<(), Error> {
    Err(Error::Input(anyhow!("not built yet")))
}
