# Stage, validate and install managed files. A tar stream on stdin holds the new files,
# named 0, 1, 2, ... in the order of the file arguments.
# Args: 1=consul binary, 2=config dir, 3=backup dir, then dirs to create until "--",
#       then four args per file: destination, octal mode, kind (agent_config|service|inplace|tls|other),
#       owner (user and group of that name, or "-": left as it is, root's for new files),
#       then optionally "--" and managed files to remove (moved into the backup dir).
# Agent config and service files are validated together with the rest of the config dir by
# `consul validate` in a staging dir (files to remove left out); nothing live changes unless
# that passes. Replaced files are copied to the backup dir first; `inplace` files (resolv.conf,
# which may be a bind mount) are rewritten in place rather than renamed over.
# Files to remove must start with consulctl's mark; others are never touched.
# Prints "changed PATH" per written file, "removed PATH" per removed one.
set -eu
bin=$1; confdir=$2; backup=$3
shift 3
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  mkdir -p "$1"
  echo "created $1"
  shift
done
[ "$#" -gt 0 ] && shift
# Split the per-file args from the removals (after a second "--").
n=$#
removals=
for a in "$@"; do
  if [ -n "$removals" ]; then
    continue
  fi
  if [ "$a" = "--" ]; then
    removals=1
    continue
  fi
  set -- "$@" "$a"
done
# "$@" = original args + the per-file args; the removals are the original args after "--".
remove_list=$(
  seen=
  i=0
  for a in "$@"; do
    i=$((i + 1))
    [ "$i" -le "$n" ] || break
    if [ -n "$seen" ]; then
      printf '%s\n' "$a"
    elif [ "$a" = "--" ]; then
      seen=1
    fi
  done
)
shift "$n"
stage=$(mktemp -d /tmp/consulctl-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/new" "$stage/validate"
tar -xf - -C "$stage/new"
# The staging copy of the config dir: the live files, then the new agent config on top.
if [ -d "$confdir" ]; then
  for f in "$confdir"/*.hcl "$confdir"/*.json; do
    [ -f "$f" ] && cp -p "$f" "$stage/validate/"
  done
fi
i=0
need_validate=0
for_each_file() {
  # $1 = callback; remaining = four args per file
  cb=$1; shift
  i=0
  while [ "$#" -ge 4 ]; do
    "$cb" "$stage/new/$i" "$1" "$2" "$3" "$4"
    i=$((i + 1))
    shift 4
  done
}
stage_agent_config() {
  if [ "$4" = agent_config ] || [ "$4" = service ]; then
    cp "$1" "$stage/validate/$(basename "$2")"
    need_validate=1
  fi
}
for_each_file stage_agent_config "$@"
if [ -n "$remove_list" ]; then
  while IFS= read -r r; do
    [ -n "$r" ] || continue
    if ! { [ -f "$r" ] && head -n 1 "$r" | grep -q 'Managed by consulctl'; }; then
      continue
    fi
    rm -f "$stage/validate/$(basename "$r")"
    need_validate=1
  done <<EOF_REMOVE
$remove_list
EOF_REMOVE
fi
install_file() {
  src=$1; dest=$2; mode=$3; kind=$4; owner=$5
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    chmod "$mode" "$dest"
    [ "$owner" = - ] || chown "$owner:$owner" "$dest"
    echo "mode $dest"
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  if [ -f "$dest" ]; then
    mkdir -p "$backup$(dirname "$dest")"
    cp -p "$dest" "$backup$dest"
  fi
  if [ "$kind" = inplace ] && [ -f "$dest" ]; then
    cat "$src" >"$dest"
    chmod "$mode" "$dest"
    [ "$owner" = - ] || chown "$owner:$owner" "$dest"
  else
    tmp="$dest.consulctl-tmp"
    cp "$src" "$tmp"
    chmod "$mode" "$tmp"
    [ "$owner" = - ] || chown "$owner:$owner" "$tmp"
    mv -f "$tmp" "$dest"
  fi
  echo "changed $dest"
}
# TLS files (kind tls) are validated from the staging dir too: the staged copies of the agent
# config name them at their final paths, so those paths are rewritten to the staged files
# there (only in the staging copies). Nothing goes live before `consul validate` passes.
tls_map=
stage_tls() {
  [ "$4" = tls ] || return 0
  mkdir -p "$stage/tls$(dirname "$2")"
  cp "$1" "$stage/tls$2"
  tls_map="$tls_map$2
"
  need_validate=1
}
for_each_file stage_tls "$@"
if [ -n "$tls_map" ]; then
  for f in "$stage/validate"/*; do
    [ -f "$f" ] || continue
    printf '%s' "$tls_map" | STAGE="$stage/tls" awk '
      NR == FNR { if ($0 != "") paths[++n] = $0; next }
      {
        line = $0; out = ""
        while (line != "") {
          best = 0; at = 0
          for (i = 1; i <= n; i++) {
            p = index(line, paths[i])
            if (p > 0 && (at == 0 || p < at || (p == at && length(paths[i]) > length(paths[best])))) { at = p; best = i }
          }
          if (at == 0) { out = out line; break }
          out = out substr(line, 1, at - 1) ENVIRON["STAGE"] paths[best]
          line = substr(line, at + length(paths[best]))
        }
        print out
      }' - "$f" >"$f.tmp"
    mv -f "$f.tmp" "$f"
  done
fi
if [ "$need_validate" = 1 ]; then
  if ! out=$("$bin" validate "$stage/validate" 2>&1); then
    echo "consul validate rejected the new configuration:" >&2
    echo "$out" >&2
    exit 3
  fi
fi
# TLS files first: the agent config that names them must never be live without them.
install_tls() {
  [ "$4" = tls ] || return 0
  install_file "$@"
}
for_each_file install_tls "$@"
install_rest() {
  [ "$4" = tls ] || install_file "$@"
}
for_each_file install_rest "$@"
if [ -n "$remove_list" ]; then
  while IFS= read -r r; do
    [ -n "$r" ] || continue
    [ -f "$r" ] || continue
    if ! head -n 1 "$r" | grep -q 'Managed by consulctl'; then
      echo "not removing $r: consulctl did not write it" >&2
      continue
    fi
    mkdir -p "$backup$(dirname "$r")"
    mv -f "$r" "$backup$r"
    echo "removed $r"
  done <<EOF_REMOVE
$remove_list
EOF_REMOVE
fi
