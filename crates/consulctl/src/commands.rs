//! One file per command. A command builds on `engine` and `remote`; commands never use each
//! other (checked by the module graph test).

pub mod apply;
pub mod catalog;
pub mod completions;
pub mod doctor;
pub mod force_leave;
pub mod inventory;
pub mod keys;
pub mod lab;
pub mod maint;
pub mod man;
pub mod node;
pub mod plan;
pub mod recover;
pub mod reload;
pub mod restart;
pub mod run;
pub mod service;
pub mod services;
pub mod status;
pub mod tls;
pub mod unlock;
