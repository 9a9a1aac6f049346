#!/usr/bin/env bash
# Edge sync on loopback: an edge loads rows while its cloud (3 members) is down, then the
# cloud starts and the edge catches up.
#   benches/sync.sh        (BENCH_ROWS=1000000 rows by default)
#   CHRONOS_BIN=/path/to/chronos benches/sync.sh   another build of the server
# Prints:
#   - the load rate on a plain single node and on the edge (the cost of change capture);
#   - the catch-up rate into the 3-node cloud, from the first acknowledged push until the
#     edge's outbox is empty;
#   - the lag of single-row inserts on the edge at about 1,000 rows/s once caught up: from
#     the commit on the edge to the row being readable on the cloud (p50, p99).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${BENCH_ROWS:-1000000}
CHUNK=100000

# CHRONOS_BIN=/path/to/chronos runs another build of the server (before/after comparisons).
if [ -z "${CHRONOS_BIN:-}" ]; then
  echo "== building (release)" >&2
  cargo build --release --quiet --bin chronos
fi
BIN=${CHRONOS_BIN:-target/release/chronos}
# BENCH_LOG=chronos::sync=debug logs the timings of each push (edge) and apply (cloud) on stderr.

. benches/lib.sh sync
url() { echo "host=127.0.0.1 port=$1 user=admin dbname=chronos"; }
sql() { psql -X -q -t -A "$(url "$1")" -c "$2"; }
wait_pg() { for _ in $(seq 400); do sql "$1" "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }

schema="CREATE TABLE readings (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts))"
load() { # pg port: ROWS rows, 100 devices, one reading every 10 s, in transactions of CHUNK rows
  sql "$1" "$schema"
  local start; start=$(now_ms)
  for ((from = 0; from < ROWS; from += CHUNK)); do
    sql "$1" "INSERT INTO readings SELECT 'dev' || (g % 100), timestamptz '2026-01-01 00:00:00+00' + (g / 100) * interval '10 seconds', 20 + (g % 1000) / 100.0 FROM generate_series($from, $((from + CHUNK - 1))) g"
  done
  echo $(( ROWS * 1000 / ($(now_ms) - start) ))
}

# A plain single node, for the cost of capture.
plain_pg=$(port)
CHRONOS_LOG=${BENCH_LOG:-error} $BIN single-node --data-dir "$work/plain" --pg-addr "127.0.0.1:$plain_pg" --http-addr "127.0.0.1:$(port)" &
pids+=($!); disown
wait_pg "$plain_pg"
plain_rate=$(load "$plain_pg")
kill -9 "${pids[0]}"

# The cloud's addresses, then the edge, loading while the cloud is down.
raft=(); pg=(); http=()
for i in 0 1 2; do raft+=("$(port)"); pg+=("$(port)"); http+=("$(port)"); done
peers="1=127.0.0.1:${raft[0]},2=127.0.0.1:${raft[1]},3=127.0.0.1:${raft[2]}"
targets="http://127.0.0.1:${raft[0]},http://127.0.0.1:${raft[1]},http://127.0.0.1:${raft[2]}"
edge_pg=$(port); edge_http=$(port)
CHRONOS_LOG=${BENCH_LOG:-error} $BIN single-node --data-dir "$work/edge" --pg-addr "127.0.0.1:$edge_pg" --http-addr "127.0.0.1:$edge_http" \
  --edge-id bench --sync-target "$targets" --sync-interval-secs 1 &
pids+=($!); disown
wait_pg "$edge_pg"
edge_rate=$(load "$edge_pg")

for i in 0 1 2; do
  CHRONOS_LOG=${BENCH_LOG:-error} $BIN node --id $((i + 1)) --address "127.0.0.1:${raft[$i]}" --peers "$peers" \
    --data-dir "$work/c$i" --pg-addr "127.0.0.1:${pg[$i]}" --http-addr "127.0.0.1:${http[$i]}" &
  pids+=($!); disown
done
field() { curl -s "127.0.0.1:$edge_http/health" | python3 -c "import json,sys; print(json.load(sys.stdin)['sync']['$1'])"; }
first=""; sent0=0
for _ in $(seq 6000); do
  sent=$(field rows_sent)
  if [ -z "$first" ] && [ "$sent" -gt 0 ]; then first=$(now_ms); sent0=$sent; fi
  if [ -n "$first" ] && [ "$(field oldest_pending_secs)" = "None" ]; then break; fi
  sleep 0.05
done
done_at=$(now_ms)
[ -n "$first" ] || { echo "the edge never reached the cloud" >&2; exit 1; }
cloud_rows=$(sql "${pg[0]}" "SELECT count(*) FROM readings")
[ "$cloud_rows" = "$ROWS" ] || { echo "the cloud has $cloud_rows rows, not $ROWS" >&2; exit 1; }
catchup_rate=$(( (ROWS - sent0) * 1000 / (done_at - first + 1) ))

# Lag at about 1,000 rows/s: each row carries its commit time; the cloud is polled for it.
lag=$(python3 - "$edge_pg" "${pg[0]}" <<'EOF'
import subprocess, sys, time, threading
edge, cloud = sys.argv[1], sys.argv[2]
url = lambda port: f"host=127.0.0.1 port={port} user=admin dbname=chronos"
subprocess.run(["psql", "-X", "-q", url(edge), "-c", "CREATE TABLE lag (id INT PRIMARY KEY, at FLOAT8)"], check=True)
n = 3000
seen = {}
def poll():
    # The cloud, polled while the rows are written: when each row was first seen.
    deadline = time.time() + n / 1000 + 60
    while len(seen) < n and time.time() < deadline:
        low = min(set(range(n)) - set(seen), default=n)
        out = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-F", " ", url(cloud), "-c",
                              f"SELECT id, at FROM lag WHERE id >= {low}"], capture_output=True, text=True).stdout
        t = time.time()
        for line in out.strip().splitlines():
            i, at = line.split()
            seen.setdefault(int(i), t - float(at))
        time.sleep(0.01)
poller = threading.Thread(target=poll)
poller.start()
w = subprocess.Popen(["psql", "-X", "-q", url(edge)], stdin=subprocess.PIPE, text=True, bufsize=1)
start = time.time()
for i in range(n):
    w.stdin.write(f"INSERT INTO lag VALUES ({i}, extract(epoch from clock_timestamp()));\n")
    time.sleep(max(0, start + (i + 1) / 1000 - time.time()))
w.stdin.close(); w.wait()
poller.join()
lags = sorted(seen.values())
print(f"{len(lags)} {lags[len(lags)//2]*1000:.0f} {lags[int(len(lags)*0.99)]*1000:.0f}")
EOF
)
read -r lag_rows lag_p50 lag_p99 <<<"$lag"

echo "rows: $ROWS"
echo "load, plain single node: $plain_rate rows/s"
echo "load, edge capturing changes: $edge_rate rows/s ($(python3 -c "print(f'{$edge_rate/$plain_rate:.2f}')")x of plain)"
echo "catch-up into a 3-node cloud: $catchup_rate rows/s"
echo "lag at ~1000 rows/s (sync interval 1 s, $lag_rows rows): p50 ${lag_p50} ms, p99 ${lag_p99} ms"
