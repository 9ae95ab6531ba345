//! consulctl's pure core: everything that decides, nothing that connects.
//!
//! inventory (parse -> validate -> [`model`]) -> [`facts`] (parsed from what one read-only
//! script printed on a host) -> [`plan`] (desired state + facts -> actions) -> rendering
//! ([`agent_config`], [`plumbing`], [`pki`]) -> [`view`] / [`diagnose`] (Consul's answers and
//! host logs -> findings). No SSH, no async runtime: the CLI and the host daemons drive it.

pub mod action;
pub mod agent_config;
pub mod desired;
pub mod diagnose;
pub mod error;
pub mod facts;
pub mod hash;
pub mod inventory;
pub mod lb;
pub mod managed_paths;
pub mod model;
pub mod pki;
pub mod plan;
pub mod playbook;
pub mod plumbing;
pub mod redact;
pub mod registrar;
pub mod secrets;
pub mod selector;
pub mod templates;
pub mod version;
pub mod view;
