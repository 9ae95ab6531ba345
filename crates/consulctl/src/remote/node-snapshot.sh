# Take a Consul snapshot through this host's agent and print it on stdout (binary).
# Args: 1=consul binary, 2=HTTP address of the local agent (host:port).
# stderr gets "consulctl-snapshot size N" and "consulctl-snapshot sha256 HEX" for the control
# host to check its copy against. The temporary file is removed; nothing else changes.
set -u
bin=$1
http=$2
umask 077
dir=$(mktemp -d /tmp/consulctl-snapshot.XXXXXX) || exit 3
trap 'rm -rf "$dir"' EXIT
if ! out=$("$bin" snapshot save -http-addr="$http" "$dir/consul.snap" 2>&1); then
  echo "consul snapshot save failed: $out" >&2
  exit 4
fi
if [ ! -s "$dir/consul.snap" ]; then
  echo "consul snapshot save wrote an empty file: $out" >&2
  exit 4
fi
printf 'consulctl-snapshot size %s\n' "$(wc -c <"$dir/consul.snap" | tr -d ' ')" >&2
printf 'consulctl-snapshot sha256 %s\n' "$(sha256sum "$dir/consul.snap" | cut -d' ' -f1)" >&2
cat "$dir/consul.snap"
