#!/usr/bin/env bash
# Peak memory of the server while it sends a large result, over both protocols.
#
#   benches/big_result.sh [BINARY ...]     default: target/release/chronos
#   ROWS=5000000 benches/big_result.sh target/release/chronos /tmp/old/chronos
#
# For each binary: starts a fresh single node, reads VmHWM (peak resident memory) after
# start-up, runs `SELECT i FROM generate_series(1, ROWS) i` with psql (simple protocol) and,
# when compat/python/.venv exists, with psycopg (extended protocol, a bound parameter), and
# prints the peak after each. Results are discarded by the clients as they arrive.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-5000000}
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/chronos)
python=compat/python/.venv/bin/python

for binary in "${binaries[@]}"; do
  data=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  CHRONOS_LOG=warn "$binary" single-node --data-dir "$data/db" --pg-addr "127.0.0.1:$port" \
    --http-addr "127.0.0.1:$http" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  peak() { awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status"; }
  echo "$binary: after start-up $(peak)"
  start=$(date +%s.%N)
  psql -X -q -h 127.0.0.1 -p "$port" -U admin chronos -o /dev/null \
    -c "SELECT i FROM generate_series(1, $ROWS) i"
  echo "$binary: simple protocol, $ROWS rows in $(echo "$(date +%s.%N) - $start" | bc) s, peak $(peak)"
  if [ -x "$python" ]; then
    start=$(date +%s.%N)
    "$python" - "$port" "$ROWS" <<'PY'
import sys, psycopg
with psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=admin dbname=chronos") as conn:
    n = 0
    with conn.cursor() as cur:
        cur.execute("SELECT i FROM generate_series(1, %s::int8) i", (int(sys.argv[2]),))
        while cur.fetchmany(10000):
            n += 1
PY
    echo "$binary: extended protocol, $ROWS rows in $(echo "$(date +%s.%N) - $start" | bc) s, peak $(peak)"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
done
