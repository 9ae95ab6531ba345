# Install the consul binary from gzip data on stdin.
# Args: 1=binary path, 2=expected sha256 of the raw binary, 3=install|stage.
# "stage" leaves the verified binary as "$1.consulctl-new" (swapped in at the agent's restart);
# "install" swaps it in now. The old binary is kept as "$1.consulctl-prev"; the swap is an
# atomic rename.
set -eu
bin=$1
want=$2
mode=${3:-install}
dir=$(dirname "$bin")
mkdir -p "$dir"
new="$bin.consulctl-new"
gzip -dc > "$new"
got=$(sha256sum "$new" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  rm -f "$new"
  echo "uploaded binary has sha256 $got, expected $want" >&2
  exit 3
fi
chmod 0755 "$new"
if ! ver=$("$new" version 2>&1); then
  rm -f "$new"
  echo "uploaded binary does not run on this host: $ver" >&2
  exit 3
fi
if [ "$mode" = stage ]; then
  echo "staged $(echo "$ver" | head -n 1)"
  exit 0
fi
if [ -e "$bin" ]; then
  cp -p "$bin" "$bin.consulctl-prev"
fi
mv -f "$new" "$bin"
echo "installed $(echo "$ver" | head -n 1)"
