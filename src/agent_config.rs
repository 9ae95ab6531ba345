//! Version-aware agent config, systemd unit and supervisord program for one host. (Being written.)
use std::net::IpAddr;
use std::path::PathBuf;

use crate::desired::DesiredFile;
use crate::model::{Cluster, Host};
use crate::templates::Templates;

pub struct HostContext<'a> {
    pub cluster: &'a Cluster,
    pub host: &'a Host,
    /// The resolved bind address (fixed, or picked from the CIDR using facts).
    pub bind_addr: IpAddr,
    /// Bind addresses of all servers in the inventory (for `retry_join`), inventory order.
    pub retry_join: Vec<IpAddr>,
    /// Resolved supervisord program file path (only used when host.init is supervisord).
    pub supervisor_program: PathBuf,
}

pub fn render_host(_t: &Templates, _ctx: &HostContext) -> anyhow::Result<Vec<DesiredFile>> {
    todo!()
}
