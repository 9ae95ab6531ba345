# Put back the last good files of a host whose agent did not come up with the new ones (or whose
# roll stopped before its turn): every file this run wrote is replaced by the copy configure.sh
# backed up before writing it, or moved away when it did not exist before; the binary this run
# swapped in is replaced by "$bin.consulctl-prev". Nothing is deleted: the files that failed
# are kept under "<backup dir>/failed/<their path>" for inspection.
# Args: 1=backup dir of this run, 2=consul binary, 3=restore the binary (0|1), then the paths
#       of the files this run wrote.
# Prints "restored PATH", "set aside PATH" (a new file moved away) and "restored binary".
set -eu
backup=$1; bin=$2; binary=$3
shift 3
failed="$backup/failed"
keep_failed() {
  mkdir -p "$failed$(dirname "$1")"
  cp -p "$1" "$failed$1"
}
for f in "$@"; do
  [ -e "$f" ] || continue
  if [ -f "$backup$f" ]; then
    keep_failed "$f"
    cp -p "$backup$f" "$f.consulctl-tmp"
    mv -f "$f.consulctl-tmp" "$f"
    echo "restored $f"
  else
    mkdir -p "$failed$(dirname "$f")"
    mv -f "$f" "$failed$f"
    echo "set aside $f"
  fi
done
if [ "$binary" = 1 ] && [ -f "$bin.consulctl-prev" ]; then
  keep_failed "$bin"
  cp -p "$bin.consulctl-prev" "$bin.consulctl-tmp"
  mv -f "$bin.consulctl-tmp" "$bin"
  echo "restored binary"
fi
