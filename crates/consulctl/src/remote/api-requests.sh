# Send requests to Consul's HTTP API through the local agent. Requests come on stdin, two
# lines each: "METHOD PATH", then the JSON body on one line ("-" for none). For each one prints
# "=== METHOD PATH CODE" and the response body on one line. Bodies may hold secrets (tokens):
# they travel only on stdin and stdout.
# Args: 1=base URL of the local agent (http://127.0.0.1:8500).
set -u
http=$1
while IFS=' ' read -r method path; do
  IFS= read -r body || body=-
  [ -n "$method" ] || continue
  if [ "$body" = - ]; then
    out=$(ccurl -sS --max-time 10 -X "$method" -w '\n%{http_code}' "$http$path" 2>&1) || true
  else
    out=$(printf '%s' "$body" | ccurl -sS --max-time 10 -X "$method" --data-binary @- \
      -w '\n%{http_code}' "$http$path" 2>&1) || true
  fi
  code=$(printf '%s\n' "$out" | tail -n 1)
  printf '=== %s %s %s\n' "$method" "$path" "$code"
  printf '%s\n' "$out" | sed '$d' | tr -d '\n'
  printf '\n'
done
