# Remove a server from the raft configuration through this (live) host's agent.
# Args: 1=consul binary, 2=HTTP address of the local agent (host:port), 3=raft address (IP:8300).
set -u
bin=$1
http=$2
addr=$3
if ! out=$("$bin" operator raft remove-peer -http-addr="$http" -address="$addr" 2>&1); then
  echo "consul operator raft remove-peer failed: $out" >&2
  exit 4
fi
printf '%s\n' "$out"
