# Start or reload the consul agent under its init system and wait until it answers locally.
# (Restarts of a running agent are restart.sh's: they must prove a new process answers.)
# Args: 1=init (systemd|supervisord), 2=operation (start|reload), 3=reload-init (0|1),
#       4=enable (0|1), 5=consul binary, 6=HTTP address of the local agent (host:port),
#       7=seconds to wait, 8=log dir (supervisord logs).
set -eu
init=$1; op=$2; reload=$3; enable=$4; bin=$5; http=$6; wait=$7; logdir=$8
if [ "$op" = reload ]; then
  # Consul re-reads the reloadable parts of its config (log level, services, checks, ...).
  "$bin" reload -http-addr="$http" >/dev/null
  echo "pid $(pidof consul 2>/dev/null || pgrep -x consul 2>/dev/null || echo unknown)"
  exit 0
fi
# The consul program's state (RUNNING, STARTING, STOPPED, ...; BAD_NAME: unknown program).
# supervisorctl is python (~0.25 CPU-s a run), so ask supervisord's XML-RPC socket with curl
# first (as facts.sh does), and fall back to `supervisorctl status`.
sv_state() {
  if command -v curl >/dev/null 2>&1; then
    for s in /var/run/supervisor.sock /run/supervisor.sock /var/run/supervisor/supervisor.sock /tmp/supervisor.sock; do
      [ -S "$s" ] || continue
      r=$(curl -s -m 3 --unix-socket "$s" -H 'Content-Type: text/xml' \
        --data '<?xml version="1.0"?><methodCall><methodName>supervisor.getProcessInfo</methodName><params><param><value><string>consul</string></value></param></params></methodCall>' \
        http://localhost/RPC2 2>/dev/null) || continue
      case $r in
      *'<name>statename</name>'*)
        r=${r#*'<name>statename</name>'}
        r=${r#*'<string>'}
        r=${r%%'</string>'*}
        ;;
      *'<fault>'*'BAD_NAME'*) r=BAD_NAME ;;
      *) continue ;;
      esac
      case $r in '' | *[!A-Z_]*) continue ;; esac
      echo "$r"
      return 0
    done
  fi
  supervisorctl status consul 2>/dev/null | awk '{print $2}'
}
case "$init" in
systemd)
  [ "$reload" = 1 ] && systemctl daemon-reload
  [ "$enable" = 1 ] && systemctl enable --quiet consul
  systemctl "$op" --no-block consul
  ;;
supervisord)
  if [ "$reload" = 1 ]; then
    # `update` rereads the program files first (no `reread` needed), adds a new program
    # (autostart starts it) and restarts a changed one.
    supervisorctl update consul >/dev/null
  fi
  state=$(sv_state) || true
  if [ "$state" != RUNNING ] && [ "$state" != STARTING ]; then
    supervisorctl start consul >/dev/null || true
  fi
  ;;
*)
  echo "unknown init system $init" >&2
  exit 2
  ;;
esac
# Wait until the agent answers on its HTTP API, or give up with its last log lines.
n=0
while [ "$n" -lt "$((wait * 4))" ]; do
  if answers; then
    echo "pid $(pidof consul 2>/dev/null || pgrep -x consul 2>/dev/null || echo unknown)"
    exit 0
  fi
  if [ "$init" = systemd ] && [ "$n" -gt 8 ] && systemctl is-failed --quiet consul; then
    break
  fi
  if [ "$init" = supervisord ] && [ "$n" -gt 8 ]; then
    case $(sv_state) in
      FATAL|BACKOFF|EXITED) break ;;
    esac
  fi
  sleep 0.25
  n=$((n + 1))
done
echo "the consul agent did not come up within ${wait}s; its last log lines:" >&2
if [ "$init" = systemd ]; then
  journalctl -u consul -n 15 --no-pager 2>&1 | tail -n 15 >&2 || true
else
  tail -n 15 "$logdir/consul.err.log" "$logdir/consul.out.log" 2>/dev/null >&2 || true
fi
exit 4
