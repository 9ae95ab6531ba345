# Requests to Consul's HTTP API through the local agent (consulctl's SSH transport, consul.rs).
# Requests come on stdin, two lines each: "METHOD MAX_SECONDS PATH", then the body in base64 on
# one line ("-" for none). For each request prints "=== CODE INDEX KNOWN_LEADER LAST_CONTACT"
# ("-" for a header Consul did not send; CODE 000 when curl got no answer) and then the answer's
# body in base64 on one line (curl's error message for CODE 000). Bodies may hold secrets
# (tokens): they travel only on stdin and stdout.
# Args: 1=base URL of the local agent (http://127.0.0.1:8500).
set -u
base=$1
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
header() {
  v=$(tr -d '\r' <"$tmp/h" | grep -i "^$1:" | tail -n 1 | sed 's/^[^:]*:[[:space:]]*//')
  printf '%s' "${v:--}"
}
while IFS=' ' read -r method maxtime path; do
  IFS= read -r body || body=-
  [ -n "$method" ] || continue
  : >"$tmp/h"; : >"$tmp/o"; : >"$tmp/e"
  if [ "$body" = - ]; then
    code=$(ccurl -sS --max-time "$maxtime" -X "$method" -D "$tmp/h" -o "$tmp/o" \
      -w '%{http_code}' "$base$path" 2>"$tmp/e") || code=000
  else
    printf '%s' "$body" | base64 -d >"$tmp/b" || code=000
    code=$(ccurl -sS --max-time "$maxtime" -X "$method" --data-binary "@$tmp/b" -D "$tmp/h" \
      -o "$tmp/o" -w '%{http_code}' "$base$path" 2>"$tmp/e") || code=000
  fi
  if [ "$code" = 000 ]; then cp "$tmp/e" "$tmp/o"; fi
  printf '=== %s %s %s %s\n' "$code" "$(header X-Consul-Index)" \
    "$(header X-Consul-Knownleader)" "$(header X-Consul-Lastcontact)"
  base64 <"$tmp/o" | tr -d '\n'
  printf '\n'
done
