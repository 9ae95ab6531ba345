# The agent's system user and the dirs it owns.
# Args: 1=user, 2=create the user when missing (0|1), then dirs (created when missing; owner
#       USER:USER, mode 0750), then "--" and dirs to chown recursively.
set -eu
user=$1; create=$2
shift 2
if [ "$create" = 1 ] && ! id -u "$user" >/dev/null 2>&1; then
  shell=/sbin/nologin
  [ -x "$shell" ] || shell=/usr/sbin/nologin
  [ -x "$shell" ] || shell=/bin/false
  if command -v useradd >/dev/null 2>&1; then
    # A system user with a group of its own name, no home dir created, no login.
    groupadd --system "$user" 2>/dev/null || true
    useradd --system --gid "$user" --no-create-home --home-dir /nonexistent --shell "$shell" "$user"
  elif command -v adduser >/dev/null 2>&1; then
    addgroup -S "$user" 2>/dev/null || true
    adduser -S -D -H -G "$user" -s "$shell" "$user"
  else
    echo "cannot create user $user: neither useradd nor adduser is installed" >&2
    exit 3
  fi
  echo "created user $user"
fi
recursive=
for d in "$@"; do
  if [ "$d" = -- ]; then
    recursive=1
    continue
  fi
  mkdir -p "$d"
  if [ -n "$recursive" ]; then
    chown -R "$user:$user" "$d"
  else
    chown "$user:$user" "$d"
  fi
  chmod 750 "$d"
  echo "owned $d"
done
