# Print <data dir>/node-id (nothing when it is missing). Read-only; always exits 0.
# Args: 1=data dir.
cat -- "$1/node-id" 2>/dev/null; exit 0
