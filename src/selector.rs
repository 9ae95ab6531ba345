//! `--limit` selectors. (Being written.)
use crate::model::{Cluster, Host};

#[derive(Debug, Clone)]
pub struct Selector {}

impl Selector {
    pub fn parse(_s: &str, _cluster: &Cluster) -> Result<Selector, String> {
        todo!()
    }
    pub fn matches(&self, _host: &Host) -> bool {
        todo!()
    }
}
