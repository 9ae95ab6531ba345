# Stop the consul agent for good and move its files aside. Nothing is deleted.
# Args: 1=init (systemd|supervisord), 2=supervisord program file (ignored for systemd),
#       3=suffix for moved-aside paths (".removed-<UTC timestamp>"), then the paths to move
#       aside (config dir, data dir, binary ...). Missing ones are reported as "absent PATH".
# systemd: `systemctl disable --now consul` (the unit file stays, disabled).
# supervisord: `supervisorctl stop consul`, the program file moved aside, then `reread` and
# `update` so supervisord forgets the program and never restarts it.
# Prints "stopped INIT", "updated supervisord", "moved PATH", "absent PATH"; exit 4 when something could not be done.
set -u
init=$1
prog=$2
suffix=$3
shift 3
rc=0
case "$init" in
systemd)
  if ! out=$(systemctl disable --now consul 2>&1); then
    if systemctl is-active --quiet consul; then
      echo "systemctl disable --now consul failed: $out" >&2
      exit 4
    fi
    echo "note: systemctl disable --now consul: $out" >&2
  fi
  echo "stopped systemd"
  ;;
supervisord)
  supervisorctl stop consul >/dev/null 2>&1 || true
  echo "stopped supervisord"
  if [ -f "$prog" ]; then
    if [ -e "$prog$suffix" ]; then
      echo "$prog$suffix already exists; not moving $prog" >&2
      exit 4
    fi
    mv "$prog" "$prog$suffix" || exit 4
    printf 'moved %s\n' "$prog"
  fi
  supervisorctl reread >/dev/null 2>&1 || true
  if ! out=$(supervisorctl update 2>&1); then
    echo "supervisorctl update failed: $out" >&2
    rc=4
  fi
  echo "updated supervisord"
  ;;
*)
  echo "unknown init system $init" >&2
  exit 2
  ;;
esac
# The agent must be gone before its data dir moves.
n=0
while pid=$(agent_pid); do
  if [ "$n" -ge 120 ]; then
    echo "the consul agent (pid $pid) is still running after 30s; its files were not moved" >&2
    exit 4
  fi
  sleep 0.25
  n=$((n + 1))
done
for p in "$@"; do
  if [ -e "$p" ] || [ -L "$p" ]; then
    if [ -e "$p$suffix" ] || [ -L "$p$suffix" ]; then
      echo "$p$suffix already exists; not moving $p" >&2
      rc=4
      continue
    fi
    if mv "$p" "$p$suffix"; then
      printf 'moved %s\n' "$p"
    else
      rc=4
    fi
  else
    printf 'absent %s\n' "$p"
  fi
done
exit "$rc"
