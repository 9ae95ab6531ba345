# The host lock of consulctl runs: the directory /var/lib/consulctl/lock (mkdir is atomic).
# Args: 1=acquire|takeover|release|show|break, 2=token of this run, 3=seconds after which a
# lock is stale, 4 (takeover) = token of the stale lock to replace.
# acquire and takeover read the holder description (JSON) on stdin. Exit 3 with
# "held <holder>" when another run holds it; "stale <holder>" is printed when a stale lock
# was taken over. takeover replaces the lock only while it still carries token $4.
# show prints "held <holder>" when the host is locked; break removes the lock (only while it
# carries token $2, when one is given).
set -u
dir=/var/lib/consulctl
lock=$dir/lock
mkdir -p "$dir"
# Takeovers and breaks are check-then-replace: serialize them where flock exists.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/lock.guard"
  flock -w 30 9 || :
fi
take() {
  mkdir "$lock" 2>/dev/null || return 1
  printf '%s\n' "$info" > "$lock/holder"
  printf '%s\n' "$1" > "$lock/token"
}
drop_lock() {
  rm -f "$lock/holder" "$lock/token"
  rmdir "$lock" 2>/dev/null
}
held() {
  printf 'held %s\n' "$(cat "$lock/holder" 2>/dev/null)"
  exit 3
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
    drop_lock
    take "$2" && exit 0
  fi
  held
  ;;
takeover)
  info=$(cat)
  if [ -d "$lock" ] && [ "$(cat "$lock/token" 2>/dev/null)" = "$4" ]; then
    printf 'stale %s\n' "$(cat "$lock/holder" 2>/dev/null)"
    drop_lock
  fi
  take "$2" && exit 0
  [ "$(cat "$lock/token" 2>/dev/null)" = "$2" ] && exit 0
  held
  ;;
release)
  if [ "$(cat "$lock/token" 2>/dev/null)" = "$2" ]; then
    drop_lock
    echo released
  fi
  ;;
show)
  if [ -d "$lock" ]; then
    printf 'held %s\n' "$(cat "$lock/holder" 2>/dev/null)"
  fi
  ;;
break)
  if [ -d "$lock" ]; then
    if [ -z "$2" ] || [ "$(cat "$lock/token" 2>/dev/null)" = "$2" ]; then
      drop_lock
      if [ -d "$lock" ]; then
        echo "cannot remove $lock" >&2
        exit 1
      fi
    else
      echo "the lock changed hands meanwhile; run unlock again" >&2
      exit 1
    fi
  fi
  ;;
*)
  echo "usage: acquire|takeover|release|show|break TOKEN STALE_SECS [OLD_TOKEN]" >&2
  exit 2
  ;;
esac
