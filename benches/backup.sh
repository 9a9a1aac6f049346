#!/usr/bin/env bash
# An online backup of BENCH_ROWS rows (1,000,000 by default) while a writer goes on, then a
# restore and a node started on it. Reports the backup's time, size and the server's resident
# memory sampled during it (to show it streams), the restore's time, and the restored count.
#   benches/backup.sh                               (CHRONOS_BIN=... for another build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${BENCH_ROWS:-1000000}
PSQL=${PSQL:-psql}

. benches/lib.sh backup
BIN=$(release_bin)

pg=$(port); http=$(port)
CHRONOS_LOG=error $BIN single-node --data-dir "$work/db" --pg-addr "127.0.0.1:$pg" --http-addr "127.0.0.1:$http" &
pids+=($!); server=$!
for _ in $(seq 200); do curl -s "127.0.0.1:$http/health" | grep -q '"role":"Leader"' && break; sleep 0.05; done
url="postgresql://admin@127.0.0.1:$pg/chronos"

echo "== loading $ROWS rows" >&2
$PSQL -qX "$url" -c "CREATE TABLE r (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts))"
batch=100000
for ((lo = 1; lo <= ROWS; lo += batch)); do
  hi=$((lo + batch - 1)); ((hi > ROWS)) && hi=$ROWS
  $PSQL -qX "$url" -c \
    "INSERT INTO r SELECT 'dev-' || (g % 100), '2024-01-01Z'::timestamptz + g * interval '10 seconds', 20 + (g % 100) / 10.0 FROM generate_series($lo, $hi) AS g"
done
sleep 1
echo "data $(du -sm "$work/db" | cut -f1) MiB, server RSS $(rss "$server") MiB before the backup"

# A writer commits one row at a time during the backup.
( for i in $(seq 1000000); do echo "INSERT INTO r VALUES ('writer', now(), $i);"; done |
    $PSQL -qX "$url" >/dev/null 2>&1 ) &
writer=$!
pids+=($writer)
sleep 1
peak=0
( while kill -0 "$server" 2>/dev/null; do rss "$server"; echo; sleep 0.05; done ) > "$work/rss" &
sampler=$!
pids+=($sampler)
start=$(now_ms)
$BIN snapshot create --url "http://127.0.0.1:$http" --output "$work/r.backup"
backup_ms=$(( $(now_ms) - start ))
kill "$sampler" 2>/dev/null || true
kill "$writer" 2>/dev/null || true
peak=$(sort -n "$work/rss" | tail -1)
low=$(sort -n "$work/rss" | head -1)
size=$(du -m "$work/r.backup" | cut -f1)
echo "backup: ${backup_ms} ms, ${size} MiB; server RSS during it ${low}-${peak} MiB ($(wc -l < "$work/rss") samples)"

start=$(now_ms)
$BIN snapshot restore --data-dir "$work/restored" --input "$work/r.backup"
echo "restore: $(( $(now_ms) - start )) ms"
pg2=$(port); http2=$(port)
CHRONOS_LOG=error $BIN single-node --data-dir "$work/restored" --pg-addr "127.0.0.1:$pg2" --http-addr "127.0.0.1:$http2" &
pids+=($!)
for _ in $(seq 200); do curl -s "127.0.0.1:$http2/health" | grep -q '"role":"Leader"' && break; sleep 0.05; done
restored=$($PSQL -qXAt "postgresql://admin@127.0.0.1:$pg2/chronos" -c "SELECT count(*) FROM r WHERE device <> 'writer'")
writes=$($PSQL -qXAt "postgresql://admin@127.0.0.1:$pg2/chronos" -c "SELECT count(*) FROM r WHERE device = 'writer'")
echo "restored node: $restored loaded rows (of $ROWS), $writes of the writer's rows (those committed before the backup's version)"
[ "$restored" = "$ROWS" ]
