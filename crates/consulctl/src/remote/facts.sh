# consulctl facts: read-only, one round trip. POSIX sh (dash, bash, ksh); no bashisms.
# Run as: sh -c "$SCRIPT" sh BINARY CONFIG_DIR DATA_DIR LOG_DIR SYSTEMD_UNIT [SUPERVISOR_PROGRAM...]
# Arguments are only ever used as quoted "$N"-derived values, never evaluated.
# Output: one fact per line, "KEYWORD VALUE" (VALUE is the rest of the line), between the
# header "consulctl-facts 1" and the trailer "end". The parser is Facts::parse in src/facts.rs.
# This script changes nothing on the host and always exits 0.

PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
nl='
'

printf 'consulctl-facts 1\n'
if [ $# -lt 5 ]; then
    printf 'error expected at least 5 arguments, got %s\n' "$#"
    printf 'end\n'
    exit 0
fi
for a in "$@"; do
    case $a in
    *"$nl"*)
        printf 'error an argument contains a newline\n'
        printf 'end\n'
        exit 0
        ;;
    esac
done
bin=$1 cfg=$2 data=$3 logd=$4 unit=$5
shift 5
# "$@" now holds the supervisord program candidates, then optionally "--" and host plumbing
# queries: file:PATH (hashed like the managed files; `link PATH TARGET` when a symlink),
# unit:NAME (`unit NAME ACTIVE ENABLED`, systemd hosts), pkg:NAME (`pkg NAME 0|1`),
# proc:NAME (`proc NAME 0|1`: a process of that name runs), program:NAME (`program NAME 0|1`:
# supervisord's program NAME is RUNNING; nothing where supervisorctl does not answer).
pkg_installed() {
    if command -v dpkg-query >/dev/null 2>&1; then
        case $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) in
        *'install ok installed'*) return 0 ;;
        esac
        return 1
    fi
    command -v rpm >/dev/null 2>&1 && rpm -q --quiet "$1" 2>/dev/null
}
# Answers one plumbing query (not file:, which is hashed with the managed files).
answer() {
    case $1 in
    unit:*)
        _p1=
        [ -r /proc/1/comm ] && read -r _p1 </proc/1/comm
        if [ "$_p1" = systemd ] && command -v systemctl >/dev/null 2>&1; then
            _s=$(systemctl is-active "${1#unit:}" 2>/dev/null)
            _e=$(systemctl is-enabled "${1#unit:}" 2>/dev/null)
            printf 'unit %s %s %s\n' "${1#unit:}" "${_s:-unknown}" "${_e:-not-found}"
        fi
        ;;
    pkg:*)
        if pkg_installed "${1#pkg:}"; then _i=1; else _i=0; fi
        printf 'pkg %s %s\n' "${1#pkg:}" "$_i"
        ;;
    proc:*)
        if (pidof "${1#proc:}" || pgrep -x "${1#proc:}") >/dev/null 2>&1; then _i=1; else _i=0; fi
        printf 'proc %s %s\n' "${1#proc:}" "$_i"
        ;;
    program:*)
        if command -v supervisorctl >/dev/null 2>&1; then
            case $(supervisorctl status "${1#program:}" 2>/dev/null) in
            *RUNNING*) _i=1 ;;
            *) _i=0 ;;
            esac
            printf 'program %s %s\n' "${1#program:}" "$_i"
        fi
        ;;
    esac
}
queries=
n=$#
for a in "$@"; do
    if [ "$a" = -- ]; then
        queries=1
        continue
    fi
    if [ -n "$queries" ]; then
        case $a in
        file:*)
            [ -L "${a#file:}" ] && printf 'link %s %s\n' "${a#file:}" "$(readlink "${a#file:}")"
            set -- "$@" "${a#file:}"
            ;;
        user:*) want_user=${a#user:} ;;
        *) answer "$a" ;;
        esac
    else
        set -- "$@" "$a"
    fi
done
shift "$n"
if [ -n "$queries" ]; then
    # RHEL network scripts: PEERDNS in each ifcfg file ("-" when it is not set).
    for f in /etc/sysconfig/network-scripts/ifcfg-*; do
        [ -f "$f" ] || continue
        case $f in *ifcfg-lo) continue ;; esac
        v=$(sed -n 's/^PEERDNS=["'"'"']\{0,1\}\([A-Za-z]*\).*/\1/p' "$f" | tail -n 1)
        printf 'ifcfg %s %s\n' "${v:--}" "$f"
    done
fi
# "$@": program candidates then plumbing files; both are hashed below.

# Print each line of $2 prefixed with "$1 " (no fork: split on newlines, globbing off).
emit_lines() {
    _k=$1
    set -f
    IFS=$nl
    for _l in $2; do
        printf '%s %s\n' "$_k" "$_l"
    done
    unset IFS
    set +f
}

# --- consul binary: hashing a ~70 MB file dominates; do it in the background -------------
# openssl uses SHA extensions where the CPU has them (~5x faster than coreutils sha256sum).
if [ -f "$bin" ]; then
    (
        s=
        if have openssl; then
            s=$(openssl dgst -sha256 -r "$bin" 2>/dev/null)
            s=${s%% *}
        fi
        if [ ${#s} -ne 64 ] && have sha256sum; then
            s=$(sha256sum -- "$bin" 2>/dev/null)
            s=${s%% *}
            s=${s#\\}
        fi
        [ ${#s} -eq 64 ] && printf 'binary_sha256 %s\n' "$s"
    ) &
fi

# --- supervisord: state of the `consul` program (background) --------------------------------
# supervisorctl is python and costs 0.1-0.3 s to start, so ask supervisord's XML-RPC socket
# with curl first (curl >= 7.40 for --unix-socket); fall back to supervisorctl.
sv_rpc() {
    _r=$(curl -s -m 3 --unix-socket "$1" -H 'Content-Type: text/xml' \
        --data '<?xml version="1.0"?><methodCall><methodName>supervisor.getProcessInfo</methodName><params><param><value><string>consul</string></value></param></params></methodCall>' \
        http://localhost/RPC2 2>/dev/null) || return 1
    case $_r in
    *'<name>statename</name>'*)
        _r=${_r#*'<name>statename</name>'}
        _r=${_r#*'<string>'}
        _r=${_r%%'</string>'*}
        ;;
    *'<fault>'*'BAD_NAME'*) _r=BAD_NAME ;;
    *) return 1 ;;
    esac
    case $_r in '' | *[!A-Z_]*) return 1 ;; esac
    printf 'supervisor_rpc %s\n' "$_r"
}
if have supervisorctl; then
    (
        if have curl; then
            for s in /var/run/supervisor.sock /run/supervisor.sock /var/run/supervisor/supervisor.sock /tmp/supervisor.sock; do
                [ -S "$s" ] && sv_rpc "$s" && exit 0
            done
        fi
        s=$(supervisorctl status consul 2>&1)
        rc=$?
        printf 'supervisorctl %s %s\n' "$rc" "${s%%"$nl"*}"
    ) &
fi

# --- running consul agent (before `consul version` runs, or it would be found) ---------------
pids=
if have pidof; then
    pids=$(pidof consul 2>/dev/null)
elif have pgrep; then
    pids=$(pgrep -x consul 2>/dev/null)
else
    for d in /proc/[0-9]*; do
        c=
        read -r c 2>/dev/null <"$d/comm"
        [ "$c" = consul ] && pids="$pids ${d#/proc/}"
    done
fi
for p in $pids; do
    if grep -qa agent "/proc/$p/cmdline" 2>/dev/null; then
        printf 'consul_pid %s\n' "$p"
        break
    fi
done

# --- consul version (background; ~30 ms of Go start-up) ------------------------------------
if [ -f "$bin" ]; then
    (
        v=
        [ -x "$bin" ] && v=$("$bin" version 2>/dev/null)
        printf 'consul_version %s\n' "${v%%"$nl"*}"
    ) &
fi

# --- os-release -----------------------------------------------------------------------------
osr=/etc/os-release
[ -r "$osr" ] || osr=/usr/lib/os-release
if [ -r "$osr" ]; then
    while IFS= read -r l || [ -n "$l" ]; do
        case $l in
        ID=* | ID_LIKE=* | VERSION_ID=*) printf 'os %s\n' "$l" ;;
        esac
    done <"$osr"
fi

# --- hostname, PID 1, CPU -------------------------------------------------------------------
h=
[ -r /proc/sys/kernel/hostname ] && read -r h </proc/sys/kernel/hostname
[ -n "$h" ] || h=$(uname -n 2>/dev/null)
printf 'hostname %s\n' "$h"
p1=
[ -r /proc/1/comm ] && read -r p1 </proc/1/comm
printf 'pid1 %s\n' "${p1:-unknown}"
printf 'arch %s\n' "$(uname -m 2>/dev/null)"

# --- addresses: ip, else hostname -I, else /proc ----------------------------------------------
# "addr ADDRESS[/PREFIX] [INTERFACE]"; loopback left out.
ip_line() {
    # 2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\ ...
    case $3 in inet | inet6) ;; *) return ;; esac
    [ "$2" = lo ] && return
    case $4 in 127.* | ::1/*) return ;; esac
    printf 'addr %s %s\n' "$4" "$2"
}
fib_trie() {
    # /proc/net/fib_trie: "|-- 10.0.0.5" followed by "/32 host LOCAL" marks a local address.
    _last=''
    _seen=' '
    while read -r _a _b _c _rest; do
        case $_a in
        '|--') _last=$_b ;;
        /32)
            if [ "$_c" = LOCAL ] && [ -n "$_last" ]; then
                case $_last in 127.*) continue ;; esac
                case $_seen in *" $_last "*) continue ;; esac
                _seen="$_seen$_last "
                printf 'addr %s\n' "$_last"
            fi
            ;;
        esac
    done </proc/net/fib_trie
}
addrs=
if have ip; then
    addrs=$(ip -o addr show 2>/dev/null)
fi
if [ -n "$addrs" ]; then
    set -f
    IFS=$nl
    for l in $addrs; do
        unset IFS
        # shellcheck disable=SC2086 # split into fields on purpose (globbing is off)
        ip_line $l
        IFS=$nl
    done
    unset IFS
    set +f
elif addrs=$(hostname -I 2>/dev/null) && [ -n "$addrs" ]; then
    for a in $addrs; do
        printf 'addr %s\n' "$a"
    done
else
    [ -r /proc/net/fib_trie ] && fib_trie
    if [ -r /proc/net/if_inet6 ]; then
        # 32 hex digits, ifindex, prefix (hex), scope (hex), flags, name
        while read -r a _i _p sc _f n; do
            [ "$sc" = 10 ] || [ "$n" = lo ] || printf 'addr %s %s\n' "$a" "$n"
        done </proc/net/if_inet6
    fi
fi

# --- managed files: config dir *.hcl/*.json, tls/*.pem, systemd unit, supervisord candidates ------------
n=$#
for f in "$@" "$unit" "$cfg"/*.hcl "$cfg"/*.json "$cfg"/tls/*.pem; do
    [ -f "$f" ] || continue
    case $f in *"$nl"*) continue ;; esac
    set -- "$@" "$f"
done
shift "$n"
if [ $# -gt 0 ]; then
    # sha256sum lines are "HASH  PATH" ("\HASH  ESCAPED" when PATH holds a backslash)
    emit_lines sha256 "$(sha256sum -- "$@" 2>/dev/null)"
    emit_lines stat "$(stat -L -c '%a %U %G %n' -- "$@" 2>/dev/null)"
fi

# --- directories ------------------------------------------------------------------------------
for d in "$cfg" "$data" "$logd" "$cfg/tls"; do
    if [ -d "$d" ]; then
        printf 'dir 1 %s\n' "$d"
        # owner, group and mode of the dir (and, for the data dir, whether anything inside
        # belongs to another user: `chown -R` needed)
        printf 'dirstat %s %s\n' "$(stat -c '%U %G %a' -- "$d" 2>/dev/null)" "$d"
    else
        printf 'dir 0 %s\n' "$d"
    fi
done

# --- the system user the agent runs as (first argument after the paths' "--": user:NAME) --
[ -n "${want_user:-}" ] && { id -u "$want_user" >/dev/null 2>&1 && printf 'user %s 1\n' "$want_user" || printf 'user %s 0\n' "$want_user"; }
if [ -n "${want_user:-}" ] && [ "$want_user" != root ] && [ -d "$data" ]; then
    # Anything in the data dir not owned by the agent's user (a `chown -R` is needed).
    o=$(find "$data" ! -user "$want_user" -print -quit 2>/dev/null)
    [ -n "$o" ] && printf 'data_foreign_owner 1\n'
fi

# --- commands, init state ----------------------------------------------------------------------
cmds=
for c in curl gzip zstd tar systemctl supervisorctl supervisord sudo apt-get dnf yum; do
    have "$c" && cmds="$cmds $c"
done
printf 'commands%s\n' "$cmds"

if [ "$p1" = systemd ] && have systemctl; then
    u=${unit##*/}
    a=$(systemctl is-active "$u" 2>/dev/null)
    e=$(systemctl is-enabled "$u" 2>/dev/null)
    printf 'systemd_active %s\n' "${a:-unknown}"
    printf 'systemd_enabled %s\n' "${e:-not-found}"
fi

for d in /etc/supervisor/conf.d /etc/supervisord.d; do
    if [ -d "$d" ]; then
        printf 'supervisor_include_dir %s\n' "$d"
        break
    fi
done


printf 'epoch %s\n' "$(date +%s)"
wait
printf 'end\n'
exit 0
