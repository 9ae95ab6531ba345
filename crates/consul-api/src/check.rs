//! The health check type that the health, agent and catalog endpoints all return, apart from
//! any of them so that each can use it.

use serde::{Deserialize, Serialize};

/// A health check as the health, agent and catalog endpoints return it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HealthCheck {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    /// `passing`, `warning`, `critical` (or `maintenance` in some answers).
    pub status: String,
    pub notes: String,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    #[serde(deserialize_with = "crate::de::null_default")]
    pub service_tags: Vec<String>,
    /// `http`, `tcp`, `ttl`, ... (empty for serfHealth and on old versions).
    #[serde(rename = "Type")]
    pub check_type: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl HealthCheck {
    pub fn is_passing(&self) -> bool {
        self.status == "passing"
    }
}
