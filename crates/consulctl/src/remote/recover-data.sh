# Move the consul data dir aside and put an empty one (same owner and mode) in its place, or
# copy it aside; then keep only the newest KEEP moved-aside/copied dirs with the same suffix
# prefix. The agent must be stopped. Nothing else is deleted.
# Args: 1=data dir, 2=mode (move|copy), 3=suffix (".stale-<UTC>" / ".pre-recovery-<UTC>"),
#       4=suffix prefix for pruning (".stale-"), 5=KEEP (>= 1).
# Prints "moved DIR TO", "copied DIR TO", "created DIR", "pruned DIR", "absent DIR"; exit 4 on failure.
set -u
data=$1; mode=$2; suffix=$3; prefix=$4; keep=$5
to=$data$suffix
if [ -e "$to" ]; then
  echo "$to already exists; not touching $data" >&2
  exit 4
fi
if [ -d "$data" ]; then
  owner=$(stat -c %u:%g "$data") && perm=$(stat -c %a "$data") || exit 4
  case "$mode" in
  move)
    mv -- "$data" "$to" || exit 4
    printf 'moved %s %s\n' "$data" "$to"
    mkdir -p -- "$data" && chown "$owner" "$data" && chmod "$perm" "$data" || exit 4
    printf 'created %s\n' "$data"
    ;;
  copy)
    cp -a -- "$data" "$to" || exit 4
    printf 'copied %s %s\n' "$data" "$to"
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
else
  printf 'absent %s\n' "$data"
  [ "$mode" = move ] && { mkdir -p -- "$data" || exit 4; printf 'created %s\n' "$data"; }
fi
# The glob sorts by name; names end in a UTC timestamp, so oldest first. Never the newest.
n=0
for d in "$data$prefix"*; do
  [ -e "$d" ] && n=$((n + 1))
done
excess=$((n - keep))
for d in "$data$prefix"*; do
  [ "$excess" -gt 0 ] || break
  [ -e "$d" ] || continue
  [ "$d" = "$to" ] && break
  rm -rf -- "$d" && printf 'pruned %s\n' "$d"
  excess=$((excess - 1))
done
exit 0
