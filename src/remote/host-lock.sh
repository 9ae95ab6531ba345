# The host lock of consulctl runs: the directory /var/lib/consulctl/lock (mkdir is atomic).
# Args: 1=acquire|release, 2=token of this run, 3=seconds after which a lock is stale.
# acquire reads the holder description (JSON) on stdin. Exit 3 with "held <holder>" when
# another run holds it; "stale <holder>" is printed when a stale lock was taken over.
set -u
dir=/var/lib/consulctl
lock=$dir/lock
mkdir -p "$dir"
take() {
  mkdir "$lock" 2>/dev/null || return 1
  printf '%s\n' "$info" > "$lock/holder"
  printf '%s\n' "$1" > "$lock/token"
}
case "$1" in
acquire)
  info=$(cat)
  take "$2" && exit 0
  [ "$(cat "$lock/token" 2>/dev/null)" = "$2" ] && exit 0
  now=$(date +%s)
  since=$(stat -c %Y "$lock" 2>/dev/null || echo "$now")
  if [ $((now - since)) -gt "$3" ]; then
    printf 'stale %s\n' "$(cat "$lock/holder" 2>/dev/null)"
    rm -f "$lock/holder" "$lock/token"
    rmdir "$lock" 2>/dev/null
    take "$2" && exit 0
  fi
  printf 'held %s\n' "$(cat "$lock/holder" 2>/dev/null)"
  exit 3
  ;;
release)
  if [ "$(cat "$lock/token" 2>/dev/null)" = "$2" ]; then
    rm -f "$lock/holder" "$lock/token"
    rmdir "$lock"
  fi
  ;;
*)
  echo "usage: acquire|release TOKEN STALE_SECS" >&2
  exit 2
  ;;
esac
