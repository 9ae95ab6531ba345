# Host preparation. Args: 1=what (disable|peerdns|command), then:
#   disable UNIT...   `systemctl disable --now` each (the seed's cups, rpcbind)
#   peerdns BACKUP FILE...   PEERDNS=no in RHEL network scripts (each file backed up first)
#   command ARGV...   run ARGV (package installs), non-interactive
set -eu
what=$1
shift
case "$what" in
disable)
  for u in "$@"; do
    systemctl disable --now -- "$u"
    echo "disabled $u"
  done
  ;;
peerdns)
  backup=$1
  shift
  for f in "$@"; do
    mkdir -p "$backup$(dirname "$f")"
    cp -p "$f" "$backup$f"
    if grep -q '^PEERDNS=' "$f"; then
      sed -i 's/^PEERDNS=.*/PEERDNS=no/' "$f"
    else
      printf 'PEERDNS=no\n' >>"$f"
    fi
    echo "peerdns $f"
  done
  ;;
command)
  DEBIAN_FRONTEND=noninteractive
  export DEBIAN_FRONTEND
  "$@"
  ;;
*)
  echo "unknown step $what" >&2
  exit 2
  ;;
esac
