# Wait until Consul reports a leader and the expected number of alive members (run on a
# server by the Ansible and pyinfra peers, the equivalent of consulctl's verify phase).
# Args: 1=expected alive members, 2=timeout in seconds.
set -u
want=$1; timeout=$2
end=$(($(date +%s) + timeout))
while :; do
  leader=$(curl -fsS http://127.0.0.1:8500/v1/status/leader 2>/dev/null) || leader=
  alive=$(curl -fsS http://127.0.0.1:8500/v1/agent/members 2>/dev/null | grep -o '"Status":1' | wc -l)
  if [ -n "$leader" ] && [ "$leader" != '""' ] && [ "$alive" -ge "$want" ]; then
    echo "leader $leader, $alive alive members"
    exit 0
  fi
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "no healthy cluster after ${timeout}s: leader=${leader:-none}, $alive of $want members alive" >&2
    exit 1
  fi
  sleep 0.2
done
