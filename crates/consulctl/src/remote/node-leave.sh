# Leave the cluster gracefully through this host's agent.
# Args: 1=consul binary, 2=HTTP address of the local agent (host:port), 3=config dir,
#       4=suffix for moved-aside paths (".removed-<UTC timestamp>").
# The config dir is moved aside FIRST: supervisord's autorestart (or anything else that starts
# the agent again) would otherwise restart it right after the leave and it would rejoin. With
# the config dir gone such a restart fails at once. When the leave fails, the dir is put back.
# Prints "moved PATH" and "left OUTPUT".
set -u
bin=$1
http=$2
conf=$3
suffix=$4
moved=0
if [ -d "$conf" ]; then
  if [ -e "$conf$suffix" ]; then
    echo "$conf$suffix already exists; not moving $conf" >&2
    exit 3
  fi
  mv "$conf" "$conf$suffix" || exit 3
  moved=1
  printf 'moved %s\n' "$conf"
fi
if out=$("$bin" leave -http-addr="$http" 2>&1); then
  printf 'left %s\n' "$(printf '%s' "$out" | tr '\n' ' ')"
  exit 0
fi
echo "consul leave failed: $out" >&2
if [ "$moved" = 1 ]; then
  if mv "$conf$suffix" "$conf"; then
    echo "(the config dir was put back at $conf)" >&2
  fi
fi
exit 4
