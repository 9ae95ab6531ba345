# Remove a raft peer by its server ID through this (live) host's agent: the entry a recovered
# server left behind under its old node ID.
# Args: 1=consul binary, 2=HTTP address of the local agent (host:port), 3=server ID.
set -u
bin=$1; http=$2; id=$3
if ! out=$("$bin" operator raft remove-peer -http-addr="$http" -id="$id" 2>&1); then
  echo "consul operator raft remove-peer failed: $out" >&2
  exit 4
fi
printf '%s\n' "$out"
