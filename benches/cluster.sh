#!/usr/bin/env bash
# A 3-node ChronosDB cluster on loopback under load: single-row INSERT commits/s and rows/s
# with 1000-row batches (32 clients each, through the leader and through a follower), then
# the failover time from SIGKILL of the leader to the first acknowledged write through a
# follower.
#   benches/cluster.sh            (BENCH_DURATION=5 seconds per workload by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${BENCH_DURATION:-5}
CLIENTS=${BENCH_CLIENTS:-32}

echo "== building (release)" >&2
cargo build --release --quiet --bin chronos --bin chronos-bench
BIN=target/release/chronos
BENCH=target/release/chronos-bench

. benches/lib.sh cluster

raft=(); pg=(); http=()
for i in 1 2 3; do raft+=("$(port)"); pg+=("$(port)"); http+=("$(port)"); done
peers="1=127.0.0.1:${raft[0]},2=127.0.0.1:${raft[1]},3=127.0.0.1:${raft[2]}"
for i in 0 1 2; do
  CHRONOS_LOG=error $BIN node --id $((i + 1)) --address "127.0.0.1:${raft[$i]}" --peers "$peers" \
    --data-dir "$work/n$i" --pg-addr "127.0.0.1:${pg[$i]}" --http-addr "127.0.0.1:${http[$i]}" &
  pids+=($!)
  disown
done

leader=""
for _ in $(seq 200); do
  for i in 0 1 2; do
    if curl -s "127.0.0.1:${http[$i]}/health" 2>/dev/null | grep -q '"role":"Leader"'; then leader=$i; break 2; fi
  done
  sleep 0.05
done
[ -n "$leader" ] || { echo "no leader elected" >&2; exit 1; }
follower=$(( (leader + 1) % 3 ))
url() { echo "host=127.0.0.1 port=${pg[$1]} user=admin dbname=chronos"; }
echo "leader: node $((leader + 1)); follower used: node $((follower + 1))"

value() { sed -n 's/.*value=\([0-9.]*\).*/\1/p'; }
run() { # label node workload
  $BENCH --url "$(url "$2")" --workload "$3" --setup --rows 100000 >/dev/null
  out=$($BENCH --url "$(url "$2")" --workload "$3" --clients "$CLIENTS" --duration "$DURATION" --batch 1000)
  printf '%-34s %12s %s\n' "$1" "$(value <<<"$out")" "$(sed -n 's/.*\(p50_ms=[0-9.]* p99_ms=[0-9.]*\).*/\1/p' <<<"$out")"
}
printf '%-34s %12s %s\n' "workload ($CLIENTS clients)" "per second" "latency"
run "insert_1row via leader (rows/s)" "$leader" insert_1row
run "insert_1row via follower (rows/s)" "$follower" insert_1row
run "insert_batch 1000 via leader (rows/s)" "$leader" insert_batch
run "insert_batch 1000 via follower (rows/s)" "$follower" insert_batch

# Failover: kill -9 the leader, then write through a follower until it is acknowledged.
psql -X -q "$(url "$follower")" -c "CREATE TABLE IF NOT EXISTS failover (id INT PRIMARY KEY)" >/dev/null
kill -9 "${pids[$leader]}"
start=$(date +%s%N)
for n in $(seq 1000); do
  if psql -X -q "$(url "$follower") connect_timeout=2" -c "INSERT INTO failover VALUES ($n)" >/dev/null 2>&1; then break; fi
done
end=$(date +%s%N)
echo "failover: first acknowledged write $(( (end - start) / 1000000 )) ms after kill -9 of the leader"
