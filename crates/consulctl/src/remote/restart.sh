# Restart the consul agent under its init system and wait until a NEW agent process answers on
# its local HTTP API (the old one may answer for a moment after the restart was requested).
# Args: 1=init (systemd|supervisord), 2=consul binary, 3=HTTP address of the local agent
#       (host:port), 4=seconds to wait, 5=log dir (supervisord logs),
#       6=reload the init system's view of the unit/program first (0|1), 7=enable the unit (0|1).
# A binary staged next to the live one ("$2.consulctl-new", verified when it was staged) is
# swapped in right before the restart; the old one is kept as "$2.consulctl-prev".
# Prints `pid_before <pid|none>`, `swapped` when it swapped the binary, then `pid <pid>` once
# the new agent answers. A PID that differs from the one before proves a new process, which
# read the config files as they are now.
# Exit 4 when it did not come back in time (its last log lines on stderr).
set -u
init=$1; bin=$2; http=$3; wait=$4; logdir=$5; reload=${6:-0}; enable=${7:-0}

# The agent's PID as the init system knows it (pidof would also match a `consul members`).
main_pid() {
  case "$init" in
  systemd) p=$(systemctl show -p MainPID --value consul 2>/dev/null) || p= ;;
  supervisord) p=$(supervisorctl pid consul 2>/dev/null) || p= ;;
  *) p= ;;
  esac
  case "$p" in
  '' | 0 | *[!0-9]*) echo "" ;;
  *) echo "$p" ;;
  esac
}

before=$(main_pid)
echo "pid_before ${before:-none}"
if [ -f "$bin.consulctl-new" ]; then
  [ -e "$bin" ] && cp -p "$bin" "$bin.consulctl-prev"
  mv -f "$bin.consulctl-new" "$bin"
  echo "swapped"
fi
case "$init" in
systemd)
  [ "$reload" = 1 ] && systemctl daemon-reload
  [ "$enable" = 1 ] && systemctl enable --quiet consul
  systemctl restart --no-block consul
  ;;
supervisord)
  if [ "$reload" = 1 ]; then
    # `update` rereads the program file and restarts the program when it changed.
    supervisorctl update consul >/dev/null 2>&1 || true
  fi
  if [ "$reload" != 1 ] || [ "$(main_pid)" = "$before" ]; then
    # Blocks until the old process stopped and the new one stayed up for `startsecs`.
    if ! out=$(supervisorctl restart consul 2>&1); then
      printf '%s\n' "$out" >&2
    fi
  fi
  ;;
*)
  echo "unknown init system $init" >&2
  exit 2
  ;;
esac

n=0
while [ "$n" -lt "$((wait * 4))" ]; do
  now=$(main_pid)
  if [ -n "$now" ] && [ "$now" != "$before" ] &&
    answers; then
    echo "pid $now"
    exit 0
  fi
  if [ "$n" -gt 8 ]; then
    if [ "$init" = systemd ] && systemctl is-failed --quiet consul; then
      break
    fi
    # The new agent exited and systemd is about to try again (Restart=on-failure): it does
    # not start with what it has now.
    if [ "$init" = systemd ] &&
      [ "$(systemctl show -p SubState --value consul 2>/dev/null)" = auto-restart ]; then
      break
    fi
    if [ "$init" = supervisord ]; then
      case $(supervisorctl status consul 2>/dev/null | awk '{print $2}') in
      FATAL | BACKOFF | EXITED | STOPPED) break ;;
      esac
    fi
  fi
  sleep 0.25
  n=$((n + 1))
done
echo "the consul agent did not come back within ${wait}s (PID before: ${before:-none}, now: $(main_pid)); its last log lines:" >&2
if [ "$init" = systemd ]; then
  journalctl -u consul -n 15 --no-pager 2>&1 | tail -n 15 >&2 || true
else
  tail -n 15 "$logdir/consul.err.log" "$logdir/consul.out.log" 2>/dev/null >&2 || true
fi
exit 4
