//! `consulctl inventory`: check, schema, import ansible (no host is touched).

use anyhow::anyhow;
use consulctl_core::error::Error;

use crate::cli::{InventoryCheckArgs, InventoryImportAnsibleArgs};

pub fn check(_args: &InventoryCheckArgs) -> Result<(), Error> {
    Err(Error::Input(anyhow!("inventory check: not built yet")))
}

pub fn schema() -> Result<(), Error> {
    Err(Error::Input(anyhow!("inventory schema: not built yet")))
}

pub fn import_ansible(_args: &InventoryImportAnsibleArgs) -> Result<(), Error> {
    Err(Error::Input(anyhow!(
        "inventory import ansible: not built yet"
    )))
}
