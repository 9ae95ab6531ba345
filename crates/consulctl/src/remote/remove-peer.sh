# Remove a server from the raft configuration through this (live) host's agent.
# Args: 1=consul binary, 2=HTTP address of the local agent (host:port), 3=the peer: a raft
#       address (IP:8300; anything with a ":") is removed by -address (node remove), anything
#       else is a server ID, removed by -id (recover: the entry a recovered server left behind
#       under its old node ID).
set -u
bin=$1; http=$2; peer=$3
case "$peer" in
*:*) set -- -address="$peer" ;;
*) set -- -id="$peer" ;;
esac
if ! out=$("$bin" operator raft remove-peer -http-addr="$http" "$@" 2>&1); then
  echo "consul operator raft remove-peer failed: $out" >&2
  exit 4
fi
printf '%s\n' "$out"
