//! Inventory: parse TOML -> validate -> resolved `model::Cluster`. (Being written.)
use std::path::Path;

use crate::error::Error;
use crate::model::Cluster;

/// Read, parse and validate an inventory file. Every problem is an `Error::Input` naming the
/// file, the key (with line:column) and what is allowed. Touches no host.
pub fn load(path: &Path) -> Result<Cluster, Error> {
    let _ = path;
    todo!("inventory::load")
}
