# Start (or restart) consul under supervisord, then wait until the local agent answers on its
# HTTP API (what `systemctl start` of the Type=notify unit waits for on systemd hosts).
# Used by the Ansible and pyinfra peers as `sh -c SCRIPT sh ARGS`. Prints "changed" when it
# started or restarted the agent, "ok" when it was running and nothing changed.
# Args: 1=program file changed (0|1), 2=binary or config changed (0|1), 3=seconds to wait.
set -eu
prog=$1; restart=$2; wait=${3:-60}
did=0
if [ "$prog" = 1 ]; then
  supervisorctl reread >/dev/null
  # `update` adds a new program (autostart starts it) and restarts a changed one.
  supervisorctl update consul >/dev/null
  did=1
fi
state=$(supervisorctl status consul 2>/dev/null | awk '{print $2}') || true
if [ "$restart" = 1 ] && [ "$prog" != 1 ]; then
  supervisorctl restart consul >/dev/null
  did=1
elif [ "$state" != RUNNING ] && [ "$state" != STARTING ]; then
  supervisorctl start consul >/dev/null
  did=1
fi
if [ "$did" = 0 ]; then
  echo ok
  exit 0
fi
n=0
while [ "$n" -lt $((wait * 5)) ]; do
  if curl -fsS -o /dev/null http://127.0.0.1:8500/v1/agent/self 2>/dev/null; then
    echo changed
    exit 0
  fi
  sleep 0.2
  n=$((n + 1))
done
echo "consul did not answer within ${wait}s; its last log lines:" >&2
tail -n 15 /var/log/consul/consul.out.log >&2 || true
exit 1
