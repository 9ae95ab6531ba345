//! A typed client for Consul's HTTP API.
//!
//! The crate describes Consul endpoints as [`Call`]s (a [`Request`] plus a parser for its
//! [`Response`]), grouped by API area: [`agent`], [`catalog`], [`health`], [`operator`], [`acl`],
//! [`kv`] and [`status`]. A [`Client`] sends calls through a [`Transport`], one at a time or
//! batched ([`Client::call2`], [`Client::call3`], [`Client::call4`], [`Client::call_all`]) so
//! that a transport with a costly round trip (such as curl run over SSH) answers several
//! requests at once.
//!
//! Pure helpers need no runtime: [`quorum`] (raft quorum arithmetic, raft addresses),
//! [`Watch`] (the blocking-query rules as a state machine), [`poll`] (wait until a condition
//! holds, with the last observation in the timeout error) and [`testing`] (a scripted
//! [`testing::FakeTransport`] that records what it was sent).
//!
//! Features:
//! - `tokio` (default, via `http`): [`poll::wait_until`] and [`Watch::wait_change`], which sleep
//!   on tokio's timer.
//! - `http` (default): [`http::HttpTransport`], Consul's API over HTTP(S) with ureq, run in
//!   tokio's blocking pool; configuration from the `CONSUL_HTTP_*` environment variables.
//!
//! With `default-features = false` the crate depends on serde, serde_json, base64 and
//! thiserror only.

pub mod acl;
pub mod agent;
pub mod catalog;
mod check;
mod client;
mod de;
mod error;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
pub mod kv;
pub mod meta;
pub mod operator;
pub mod poll;
pub mod quorum;
mod request;
pub mod status;
pub mod testing;
mod watch;

pub use client::{BoxFuture, Call, Client, Transport};
pub use error::{DecodeError, Error, TransportError};
pub use request::{
    encode_component, encode_path, request_timeout, Method, PathBuilder, QueryMeta, QueryOptions,
    Request, Response,
};
pub use watch::Watch;

pub use acl::{AclPolicy, AclPolicyLink, AclToken};
pub use agent::{AgentSelf, AgentService, CheckDefinition, Member, ServiceRegistration};
pub use catalog::{CatalogService, Node};
pub use health::{HealthCheck, ServiceEntry};
pub use kv::KvPair;
pub use operator::{AutopilotHealth, KeyringResponse, RaftConfiguration, RaftServer, ServerHealth};
