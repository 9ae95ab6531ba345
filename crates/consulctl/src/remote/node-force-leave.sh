# Force a node out of the cluster through this (live) host's agent.
# Args: 1=consul binary, 2=HTTP address of the local agent (host:port), 3=node name.
# Uses `consul force-leave -prune` when this consul offers -prune (1.6.2 and later), plain
# `consul force-leave` otherwise. Prints "prune" or "no-prune" first.
set -u
bin=$1
http=$2
node=$3
if "$bin" force-leave -h 2>&1 | grep -q -- '-prune'; then
  echo prune
  set -- -prune
else
  echo no-prune
  set --
fi
if ! out=$("$bin" force-leave "$@" -http-addr="$http" -- "$node" 2>&1); then
  echo "consul force-leave failed: $out" >&2
  exit 4
fi
printf '%s\n' "$out"
