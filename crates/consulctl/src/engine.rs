//! What every command shares: the command context (load, select, lock, connect, gather facts,
//! report), the rollout phases and the phase manager, the rolling restart engine, execution of
//! planned actions, verification through Consul, run locks, recaps, progress and the debug log.
//! Nothing here depends on a command.

pub mod acl;
pub mod agents;
pub mod context;
pub mod evidence;
pub mod execute;
pub mod lock;
pub mod log;
pub mod output;
pub mod phase;
pub mod plan_output;
pub mod progress;
pub mod recap;
pub mod rolling;
pub mod rollout;
pub mod source;
pub mod status;
pub mod verify;
pub mod via;
