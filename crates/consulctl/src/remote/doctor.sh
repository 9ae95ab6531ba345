# consulctl doctor: read-only evidence about one host's consul agent. Changes nothing.
# Args: 1=init (systemd|supervisord), 2=data dir, 3=log dir (supervisord logs),
#       4=HTTP address of the local agent (its port is Consul's HTTP port), 5=how many log lines.
# Output, between "consulctl-doctor 1" and "end" (parsed by doctor::parse_output):
#   clock_ms <ms since the epoch>     read first, for the clock offset
#   agent_pid <pid>                   the init system's main PID of the agent (absent: none)
#   init_state <state>                systemd ActiveState / supervisord program state
#   restarts <n>                      systemd NRestarts
#   agent_user <user>                 the user the agent runs as (configured)
#   node_id <id>                      <data dir>/node-id
#   keyring <sha256>                  one per key in <data dir>/serf/local.keyring (the keys
#                                     themselves never leave the host); keyring_missing
#   data_dir <exists 0|1> <writable 0|1>
#   listen <port> <process>           listeners on Consul's ports
#   log <line>                        the agent's recent log, oldest first
# What the agent answers on its API is read separately, through consulctl's API client.
set -u
PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
printf 'consulctl-doctor 1\n'
printf 'clock_ms %s\n' "$(date +%s%3N 2>/dev/null)"
init=$1; data=$2; logd=$3; http=$4; lines=$5

# --- the agent under its init system -------------------------------------------------------
user=root
case "$init" in
systemd)
    pid=$(systemctl show -p MainPID --value consul 2>/dev/null) || pid=
    printf 'init_state %s\n' "$(systemctl show -p ActiveState --value consul 2>/dev/null)"
    n=$(systemctl show -p NRestarts --value consul 2>/dev/null) || n=
    [ -n "$n" ] && printf 'restarts %s\n' "$n"
    u=$(systemctl show -p User --value consul 2>/dev/null) || u=
    [ -n "$u" ] && user=$u
    ;;
supervisord)
    pid=$(supervisorctl pid consul 2>/dev/null) || pid=
    st=$(supervisorctl status consul 2>/dev/null | awk '{print $2}')
    printf 'init_state %s\n' "${st:-UNKNOWN}"
    for f in /etc/supervisor/conf.d/consul.conf /etc/supervisord.d/consul.ini; do
        if [ -f "$f" ]; then
            u=$(sed -n 's/^user[ \t]*=[ \t]*//p' "$f" | head -n 1)
            [ -n "$u" ] && user=$u
            break
        fi
    done
    ;;
esac
case "$pid" in
'' | 0 | *[!0-9]*) ;;
*) printf 'agent_pid %s\n' "$pid" ;;
esac
printf 'agent_user %s\n' "$user"

# --- the data dir --------------------------------------------------------------------------
if [ -f "$data/node-id" ]; then
    printf 'node_id %s\n' "$(tr -d ' \t\r\n' <"$data/node-id")"
fi
kr=$data/serf/local.keyring
if [ -f "$kr" ]; then
    for k in $(sed 's/[][" \t\r]//g' "$kr" | tr ',' '\n'); do
        [ -n "$k" ] || continue
        s=$(printf '%s' "$k" | sha256sum)
        printf 'keyring %s\n' "${s%% *}"
    done
else
    printf 'keyring_missing\n'
fi
if [ -d "$data" ]; then
    w=0
    if [ "$user" = root ]; then
        # coreutils test uses access(2): a read-only file system is not writable even for root.
        /usr/bin/test -w "$data" && w=1
    elif have runuser; then
        runuser -u "$user" -- /usr/bin/test -w "$data" 2>/dev/null && w=1
    else
        w=1
    fi
    printf 'data_dir 1 %s\n' "$w"
else
    printf 'data_dir 0 0\n'
fi

# --- listeners on Consul's ports -----------------------------------------------------------
port=${http##*:}
if have ss; then
    ss -Hltunp 2>/dev/null | awk -v hp="$port" '{
        n = split($5, a, ":"); p = a[n]
        if (p == 8300 || p == 8301 || p == 8302 || p == 8500 || p == 8600 || p == hp) {
            proc = "?"
            if (match($0, /users:\(\("[^"]*"/)) proc = substr($0, RSTART + 9, RLENGTH - 10)
            print "listen " p " " proc
        }
    }' | sort -u
fi

# --- the agent's recent log ----------------------------------------------------------------
case "$init" in
systemd)
    journalctl -u consul -n "$lines" --no-pager -o cat 2>/dev/null | sed 's/^/log /'
    ;;
supervisord)
    # Consul logs to stdout; stderr holds only `==> Error ...` lines of failed starts, which
    # come at the end of a run: after the stdout log they read in the right order.
    for f in "$logd/consul.out.log" "$logd/consul.err.log"; do
        [ -f "$f" ] && tail -n "$lines" "$f" | sed 's/^/log /'
    done
    ;;
esac
printf 'end\n'
exit 0
