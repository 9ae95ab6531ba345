//! The Docker registrar: containers on this host -> services on the local Consul agent.
//!
//! - [`container`]: a container as read from Docker's inspect JSON;
//! - [`conventions`]: registrator's `SERVICE_*` conventions -> desired services (pure), with
//!   its parts: `keys` (the settings sorted by scope and word), `ports` (which ports, at which
//!   address), `checks`, `meta`, and [`duration`] (Go durations);
//! - [`reconcile`]: desired services + the agent's state -> actions (pure);
//! - [`config`]: the daemon's configuration file;
//! - [`docker`]: the Docker Engine API (list, inspect, events with reconnect);
//! - [`daemon`]: the loop that ties them together.

pub mod container;
pub mod conventions;
pub mod reconcile;

mod checks;
pub mod duration;
mod keys;
mod meta;
mod ports;
