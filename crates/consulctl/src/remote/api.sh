# Read Consul's own view of the cluster through the local agent's HTTP API.
# Args: 1=HTTP address (host:port), then API paths. For each path prints a line
# "=== <path> <http status>" followed by the body on one line.
set -u
http=$1
shift
for p in "$@"; do
  body=$(ccurl -sS --max-time 5 -w '\n%{http_code}' "$http$p" 2>&1) || true
  code=$(printf '%s\n' "$body" | tail -n 1)
  printf '=== %s %s\n' "$p" "$code"
  printf '%s\n' "$body" | sed '$d' | tr -d '\n'
  printf '\n'
done
