# Stop the consul agent and wait until its process is gone (recover). Changes nothing else.
# Args: 1=init (systemd|supervisord), 2=data dir.
# Prints "old_node_id ID" (when <data dir>/node-id exists), "stopped"; exit 4 when the agent
# did not stop within 30 s.
set -u
PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
init=$1; data=$2
[ -f "$data/node-id" ] && printf 'old_node_id %s\n' "$(tr -d ' \t\r\n' <"$data/node-id")"
case "$init" in
systemd) systemctl stop consul 2>&1 || true ;;
supervisord) supervisorctl stop consul >/dev/null 2>&1 || true ;;
*) echo "unknown init system $init" >&2; exit 2 ;;
esac
n=0
while pid=$(agent_pid); do
  if [ "$n" -ge 120 ]; then
    echo "the consul agent (pid $pid) is still running 30s after the stop" >&2
    exit 4
  fi
  sleep 0.25
  n=$((n + 1))
done
echo stopped
