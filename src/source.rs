//! Install sources: local file (raw/zip/deb), URL + sha256 (cached), OS package. (Being written.)
use std::path::PathBuf;

use crate::model::Cluster;

#[derive(Debug, Clone)]
pub struct PreparedBinary {
    /// The raw consul binary in the control host's cache.
    pub raw: PathBuf,
    /// sha256 of the raw binary (hex).
    pub sha256: String,
    /// The same binary gzip-compressed, for upload (`gzip -dc` on the host).
    pub gzip: PathBuf,
}

pub async fn prepare(_cluster: &Cluster) -> anyhow::Result<Option<PreparedBinary>> {
    todo!()
}
// --- placeholder API (replaced by the facts branch) ---
pub fn package_install_commands(_m: crate::model::PackageManager, _v: &crate::version::Version) -> Vec<Vec<String>> {
    todo!()
}
pub fn resolve_package_manager(_m: crate::model::PackageManager, _f: &crate::facts::Facts) -> Result<crate::model::PackageManager, String> {
    todo!()
}
