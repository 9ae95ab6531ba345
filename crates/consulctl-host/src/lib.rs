//! consulctl's host-side daemons. `consulctl apply` installs this binary on the hosts the
//! inventory names and runs it next to the Consul agent (systemd unit or supervisord program).

pub mod registrar;

/// Run the command line; returns the process exit code.
pub fn run() -> i32 {
    0
}
