# Write <data dir>/raft/peers.json from stdin (raft protocol 3 format), owned like the data dir.
# Consul reads it once at its next start, recovers the raft configuration and deletes it.
# Args: 1=data dir. Prints "wrote PATH".
set -eu
data=$1
owner=$(stat -c %u:%g "$data")
mkdir -p -- "$data/raft"
cat >"$data/raft/peers.json.tmp"
mv -f -- "$data/raft/peers.json.tmp" "$data/raft/peers.json"
chown "$owner" "$data/raft" "$data/raft/peers.json"
chmod 600 "$data/raft/peers.json"
printf 'wrote %s\n' "$data/raft/peers.json"
