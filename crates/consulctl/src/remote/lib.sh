# consulctl lib.sh: shell functions shared by the remote scripts, put in front of the scripts
# that use them when consulctl is built (src/remote.rs). Definitions only: nothing runs here.

# Every function carries `shellcheck disable=SC2317`: a script that does not call it would
# otherwise be told its body is unreachable. The no-op below comes first so that those
# directives apply to their function only (before any command they would cover the file).
:

# Whether a command exists.
# shellcheck disable=SC2317
have() { command -v "$1" >/dev/null 2>&1; }

# The PID of a running consul agent process (any init system; `consul members` and other
# commands of the CLI do not count): its cmdline holds "agent". Exit 1 when there is none.
# shellcheck disable=SC2317
agent_pid() {
  for p in $(pidof consul 2>/dev/null || pgrep -x consul 2>/dev/null); do
    if grep -qa agent "/proc/$p/cmdline" 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# The agent's HTTP API at $http (host:port) answers at all (any status: with ACLs a request may
# be refused until the ACL system is bootstrapped; the listener being up is what counts here).
# $http is the calling script's; ccurl is ssh.rs's prelude.
# shellcheck disable=SC2317,SC2154
answers() {
  [ "$(ccurl -s -o /dev/null -w '%{http_code}' --max-time 2 "$http/v1/agent/self" 2>/dev/null)" != 000 ]
}
