//! Checks on single values, by family. Each reads a raw TOML value, reports what is wrong with
//! it through the context, and returns the typed value when it is good.

use super::*;

mod config;
mod names;
mod network;
mod paths;
mod values;

pub(super) use self::{names::*, network::*};
