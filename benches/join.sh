#!/usr/bin/env bash
# A node starts alone, takes BENCH_ROWS rows (1,000,000 by default) and compacts its Raft log;
# a second node then joins and catches up from a snapshot. Reports the time to catch up and
# the peak resident memory (VmHWM) of both processes, with the data size on disk.
#   benches/join.sh                                 (CHRONOS_BIN=... for another build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${BENCH_ROWS:-1000000}
PSQL=${PSQL:-psql}

. benches/lib.sh join
BIN=$(release_bin)
json() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" <<<"$1"; }

r1=$(port); r2=$(port); p1=$(port); p2=$(port); h1=$(port); h2=$(port)
CHRONOS_LOG=error $BIN node --id 1 --address "127.0.0.1:$r1" --peers "1=127.0.0.1:$r1" \
  --data-dir "$work/n1" --pg-addr "127.0.0.1:$p1" --http-addr "127.0.0.1:$h1" --snapshot-threshold 1000 &
pids+=($!); leader_pid=$!
for _ in $(seq 200); do curl -s "127.0.0.1:$h1/health" | grep -q '"role":"Leader"' && break; sleep 0.05; done

echo "== loading $ROWS rows" >&2
$PSQL -qX "postgresql://admin@127.0.0.1:$p1/chronos" -c "CREATE TABLE r (id BIGINT PRIMARY KEY, ts TIMESTAMPTZ, device TEXT, temp FLOAT8)"
batch=100000
for ((lo = 1; lo <= ROWS; lo += batch)); do
  hi=$((lo + batch - 1)); ((hi > ROWS)) && hi=$ROWS
  $PSQL -qX "postgresql://admin@127.0.0.1:$p1/chronos" -c \
    "INSERT INTO r SELECT g, '2024-01-01Z'::timestamptz + g * interval '1 second', 'dev-' || (g % 1000), 20 + (g % 100) / 10.0 FROM generate_series($lo, $hi) AS g"
done
# Enough single-row commits afterwards to compact once more, so the log holds no row.
for i in $(seq 1100); do echo "INSERT INTO r VALUES (-$i, now(), 'x', 0);"; done |
  $PSQL -qX "postgresql://admin@127.0.0.1:$p1/chronos" >/dev/null
sleep 1
echo "leader before the join: RSS $(rss "$leader_pid") MiB, peak $(hwm "$leader_pid") MiB, data $(du -sm "$work/n1" | cut -f1) MiB"

CHRONOS_LOG=error $BIN node --id 2 --address "127.0.0.1:$r2" --peers "1=127.0.0.1:$r1,2=127.0.0.1:$r2" --join \
  --data-dir "$work/n2" --pg-addr "127.0.0.1:$p2" --http-addr "127.0.0.1:$h2" &
pids+=($!); joiner_pid=$!
for _ in $(seq 200); do curl -s "127.0.0.1:$h2/health" >/dev/null 2>&1 && break; sleep 0.05; done
start=$(date +%s.%N)
curl -s -X POST "127.0.0.1:$h1/raft/members?add=2&address=127.0.0.1:$r2" >/dev/null
commit=$(json "$(curl -s "127.0.0.1:$h1/health")" commit_index)
while :; do
  applied=$(json "$(curl -s "127.0.0.1:$h2/health")" applied_index)
  [[ -n "$applied" && "$applied" -ge "$commit" ]] && break
  sleep 0.1
done
end=$(date +%s.%N)
caught_up_peak=$(hwm "$joiner_pid")
count=$($PSQL -qtAX "postgresql://admin@127.0.0.1:$p2/chronos" -c "SELECT count(*) FROM r")
echo "caught up in $(echo "$end - $start" | bc) s with $count rows"
echo "leader after: peak $(hwm "$leader_pid") MiB; joined node: peak $caught_up_peak MiB when caught up, $(hwm "$joiner_pid") MiB after counting the rows, data $(du -sm "$work/n2" | cut -f1) MiB"
