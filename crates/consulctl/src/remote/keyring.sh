# Consul's gossip keyring through the local agent's HTTP API. The request body (which holds a
# key) comes on stdin, never on the command line.
# Args: 1=HTTP address (host:port), 2=method (GET|POST|PUT|DELETE).
# Prints "=== <http code>" and then the body.
set -u
http=$1; method=$2
if [ "$method" = GET ]; then
  body=$(ccurl -sS --max-time 30 -w '\n%{http_code}' "$http/v1/operator/keyring" 2>&1) || true
else
  body=$(ccurl -sS --max-time 30 -X "$method" --data-binary @- -w '\n%{http_code}' "$http/v1/operator/keyring" 2>&1) || true
fi
printf '=== %s\n' "$(printf '%s\n' "$body" | tail -n 1)"
printf '%s\n' "$body" | sed '$d'
