//! Hosts that could not be read (`unreachable`, `sudo-password`) and hosts without an agent
//! (`no-agent`).

use super::*;

/// The init system keeps restarting the agent.
/// What kind of SSH failure an error (as consulctl reports it) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SshFailure {
    /// Logged in, but `sudo -n` wants a password.
    SudoPassword,
    /// The host answered and refused the login (user, key, host key).
    LoginRefused,
    /// No answer: down, unreachable, sshd not running, a timeout.
    NoAnswer,
}

pub(super) fn ssh_failure(err: &str) -> SshFailure {
    if err.contains("sudo -n` without a password") || err.contains("a password is required") {
        SshFailure::SudoPassword
    } else if [
        "Permission denied",
        "Host key verification failed",
        "HOST IDENTIFICATION",
    ]
    .iter()
    .any(|p| err.contains(p))
    {
        SshFailure::LoginRefused
    } else {
        SshFailure::NoAnswer
    }
}

pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl<'a> Cx<'a> {
    /// `unreachable` for hosts SSH did not reach or log in to, `sudo-password` for hosts where
    /// SSH works but the non-root SSH user's `sudo -n` wants a password.
    pub(super) fn unreachable(&self) -> Vec<Finding> {
        let mut down = Draft::new(FindingCode::Unreachable);
        let mut sudo = Draft::new(FindingCode::SudoPassword);
        for o in self.all.iter().filter(|o| o.skipped.is_none()) {
            let Some(err) = &o.unreachable else { continue };
            let addr = self
                .expected_host(&o.host)
                .map(|h| format!(" ({})", h.address))
                .unwrap_or_default();
            match ssh_failure(err) {
                SshFailure::SudoPassword => {
                    sudo.host(&o.host);
                    sudo.fact(&o.host, &format!("sudo failed: {}", one_line(err)));
                    sudo.fix(format!(
                        "give the inventory's SSH user of {} passwordless sudo (`USER ALL=(ALL) \
                         NOPASSWD: ALL` in /etc/sudoers.d/) or connect as root (ssh.user), then \
                         run doctor again",
                        o.host
                    ));
                }
                SshFailure::LoginRefused => {
                    down.host(&o.host);
                    down.fact(&o.host, &format!("SSH failed: {}", one_line(err)));
                    down.fix(format!(
                        "{}{addr} answers but refused the SSH login: check the inventory's ssh \
                         user, identity_file and known_hosts for it, then run doctor again",
                        o.host
                    ));
                }
                SshFailure::NoAnswer => {
                    down.host(&o.host);
                    down.fact(&o.host, &format!("SSH failed: {}", one_line(err)));
                    down.fix(format!(
                        "{}{addr} did not answer over SSH: check that the host is up, reachable \
                         from here at that address and runs sshd, then run doctor again",
                        o.host
                    ));
                }
            }
        }
        down.cause =
            "doctor could not log in to these hosts over SSH, so nothing was checked on them"
                .into();
        sudo.cause = "SSH works, but the SSH user's `sudo -n` asks for a password, so nothing \
                      was checked on these hosts (consulctl runs its commands as root through \
                      `sudo -n`)"
            .into();
        down.done().into_iter().chain(sudo.done()).collect()
    }

    /// Hosts where consul is not installed at all.
    pub(super) fn no_agent(&self) -> Option<Finding> {
        let mut d = Draft::new(FindingCode::NoAgent);
        for o in self.reachable().filter(|o| o.installed == Some(false)) {
            d.host(&o.host);
            d.fact(
                &o.host,
                "no consul binary at the inventory's path and no consul agent running",
            );
        }
        d.cause = "consul is not installed on these hosts: they were never rolled out (or the \
                   rollout failed before installing it), or it was removed"
            .into();
        d.fix(self.apply());
        d.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;

    #[test]
    fn unreachable_host_is_only_unreachable() {
        let mut obs = healthy();
        let o = at(&mut obs, "server3");
        *o = Observation {
            host: "server3".into(),
            unreachable: Some(
                "ssh: connect to host 192.168.14.63 port 22: No route to host\n".into(),
            ),
            ..Default::default()
        };
        let findings = diagnose(&expected(), &obs);
        assert_eq!(codes(&findings), ["unreachable"]);
        assert_eq!(
            findings[0].evidence,
            ["server3: SSH failed: ssh: connect to host 192.168.14.63 port 22: No route to host"]
        );
        assert!(
            findings[0].fix[0].starts_with(
                "server3 (192.168.14.63) did not answer over SSH: check that the host is up"
            ),
            "{:?}",
            findings[0].fix
        );
    }
}
