# (Re)start a helper service after its config changed, and check that it runs.
# Args: 1=service (dnsmasq|systemd-resolved|NetworkManager|consulctl-registrar|consulctl-lb|
#         nginx|haproxy),
#       2=under supervisord (0|1), 3=supervisord program name,
#       4=systemctl daemon-reload first (0|1; default 0: a unit file consulctl wrote changed),
#       5=only make it run (0|1; default 0): `systemctl enable --now`, supervisord `start`
#         (an LB's nginx or haproxy: a running one is never restarted).
# systemd: `systemctl enable` + `restart` (NetworkManager: `reload`); supervisord: `reread`,
# `update` (adds or changes the program) and `restart`. Exit 4 when it does not run afterwards.
set -u
svc=$1; sup=$2; prog=$3; daemon_reload=${4:-0}; start_only=${5:-0}
if [ "$sup" = 1 ]; then
  supervisorctl reread >/dev/null 2>&1 || true
  supervisorctl update >/dev/null 2>&1 || true
  if [ "$start_only" = 1 ]; then
    supervisorctl start "$prog" >/dev/null 2>&1 || true
  else
    supervisorctl restart "$prog" >/dev/null 2>&1 || supervisorctl start "$prog" >/dev/null 2>&1 || true
  fi
  n=0
  while [ "$n" -lt 40 ]; do
    case $(supervisorctl status "$prog" 2>/dev/null | awk '{print $2}') in
    RUNNING) echo "running $svc (supervisord program $prog)"; exit 0 ;;
    FATAL | BACKOFF) break ;;
    esac
    sleep 0.25
    n=$((n + 1))
  done
  echo "$svc did not start under supervisord: $(supervisorctl status "$prog" 2>&1)" >&2
  tail -n 5 "/var/log/supervisor/$prog"*.log 2>/dev/null >&2 || true
  exit 4
fi
[ "$daemon_reload" = 1 ] && systemctl daemon-reload
if [ "$start_only" = 1 ]; then
  systemctl enable --now --quiet "$svc"
else
  systemctl enable --quiet "$svc" 2>/dev/null || true
  if [ "$svc" = NetworkManager ]; then
    systemctl reload NetworkManager || systemctl restart NetworkManager
  else
    systemctl restart "$svc"
  fi
fi
if systemctl is-active --quiet "$svc"; then
  echo "running $svc"
  exit 0
fi
echo "$svc is not active after the restart:" >&2
journalctl -u "$svc" -n 10 --no-pager >&2 2>/dev/null || true
exit 4
