# Install the consul binary from compressed data on stdin.
# Args: 1=binary path, 2=expected sha256 of the raw binary, 3=install|stage,
#       4=compression of stdin: gzip|zstd (default gzip).
# "stage" leaves the verified binary as "$1.consulctl-new" (swapped in at the agent's restart);
# "install" swaps it in now. The upload is unpacked under a name of its own and renamed to
# "$1.consulctl-new" only once verified, so a killed upload never leaves a half binary there. The old binary is kept as "$1.consulctl-prev"; the swap is an
# atomic rename.
# A rollout to many small hosts waits for their CPU, so this costs as little of it as it can:
# zstd where the host has it (3-4x less CPU than gzip to unpack), and the sha256 from openssl
# where present (SHA CPU extensions: several times faster than sha256sum). Unpacking to the
# file and hashing it after costs less than hashing on the way through a `tee` pipeline.
# `"$new" version` (~0.03 CPU-s) proves the binary runs here (architecture, libc, noexec).
set -eu
bin=$1
want=$2
mode=${3:-install}
format=${4:-gzip}
case $format in
gzip | zstd) ;;
*)
  echo "unknown compression $format" >&2
  exit 2
  ;;
esac
dir=$(dirname "$bin")
mkdir -p "$dir"
new="$bin.consulctl-upload.$$"
trap 'rm -f "$new"' EXIT
if [ "$format" = zstd ]; then
  zstd -dcq >"$new" || { rm -f "$new"; echo "cannot unpack the uploaded binary: zstd -d failed" >&2; exit 1; }
else
  gzip -dc >"$new" || { rm -f "$new"; echo "cannot unpack the uploaded binary: gzip -d failed" >&2; exit 1; }
fi
got=
if command -v openssl >/dev/null 2>&1; then
  got=$(openssl dgst -sha256 -r "$new" 2>/dev/null) || got=
  got=${got%% *}
fi
if [ ${#got} -ne 64 ]; then
  got=$(sha256sum "$new" | cut -d' ' -f1)
  got=${got#\\}
fi
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
  mv -f "$new" "$bin.consulctl-new"
  echo "staged $(echo "$ver" | head -n 1)"
  exit 0
fi
if [ -e "$bin" ]; then
  cp -p "$bin" "$bin.consulctl-prev"
fi
mv -f "$new" "$bin"
# A binary staged earlier (for a restart that never came) is superseded by this one.
rm -f "$bin.consulctl-new"
echo "installed $(echo "$ver" | head -n 1)"
