#!/usr/bin/env bash
# Side-by-side benchmark: ChronosDB against PostgreSQL 15 on this machine, in one run.
#
#   benches/compare.sh              full run (1M-row tables, 5 s per throughput workload)
#   BENCH_QUICK=1 benches/compare.sh   short run (100k rows, 1 s per workload, under 10 minutes)
#   BENCH_ONLY="copy scan_agg" benches/compare.sh   only these workloads
#   BENCH_ROWS=10000000 BENCH_ONLY="ts_copy ts_window" benches/compare.sh   another table size
#   CHRONOS_BIN=/path/to/chronos benches/compare.sh  another build of the server
#   CHRONOS_LOG=chronos=debug benches/compare.sh  the server's log filter (default warn); debug
#                                                 logs each garbage collection pass
#
# Every workload runs on both servers in alternation (A B A B A B) and the median of the
# rounds is reported. Prints one line per workload and client count, then a markdown table,
# memory use and the stripped binary size. Cleans up every process and directory it made.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
ROUNDS=${BENCH_ROUNDS:-3}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  ROWS=100000; DURATION=1
else
  ROWS=1000000; DURATION=5
fi
ROWS=${BENCH_ROWS:-$ROWS}

work=$(mktemp -d /tmp/chronos-compare.XXXXXX)
chmod 755 "$work"
chronos_pid=""
cleanup() {
  [ -n "$chronos_pid" ] && kill "$chronos_pid" 2>/dev/null || true
  if [ -f "$work/pg/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== building (release)" >&2
if [ -n "${CHRONOS_BIN:-}" ]; then
  # Another build of the server (before/after comparisons); the bench driver is this tree's.
  cargo build --release --quiet --bin chronos-bench
else
  cargo build --release --quiet --bin chronos --bin chronos-bench
  CHRONOS_BIN=target/release/chronos
fi
BENCH=target/release/chronos-bench

echo "== starting PostgreSQL 15" >&2
pg_port=$(free_port)
mkdir -p "$work/pg" "$work/pgsock"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg" "$work/pgsock"
as_pg "$PG_BIN/initdb" -D "$work/pg" -U admin -A trust >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p $pg_port -k $work/pgsock -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U admin chronos
pg_pid=$(head -1 "$work/pg/postmaster.pid")
PG_URL="host=127.0.0.1 port=$pg_port user=admin dbname=chronos"

echo "== starting ChronosDB" >&2
ch_port=$(free_port); http_port=$(free_port)
start_chronos() {
  CHRONOS_LOG=${CHRONOS_LOG:-warn} "$CHRONOS_BIN" single-node --data-dir "$work/chronos" \
    --pg-addr "127.0.0.1:$ch_port" --http-addr "127.0.0.1:$http_port" --max-connections 200 &
  chronos_pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$ch_port) 2>/dev/null && break; sleep 0.1; done
}
start_chronos
CH_URL="host=127.0.0.1 port=$ch_port user=admin dbname=chronos"

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
pg_rss_kb() {  # postmaster and all its backends
  local total=0
  for p in $pg_pid $(pgrep -P "$pg_pid" || true); do
    local r; r=$(rss_kb "$p" 2>/dev/null || true); total=$((total + ${r:-0}))
  done
  echo $total
}
idle_ch=$(rss_kb $chronos_pid); idle_pg=$(pg_rss_kb)
peak_ch=$idle_ch; peak_pg=$idle_pg

# workload clients extra-args
WORKLOADS=(
  "insert_1row 1"
  "insert_1row 16"
  "insert_batch 1 --batch 10"
  "insert_batch 1 --batch 1000"
  "copy 1"
  "point_select 1"
  "point_select 8"
  "index_select 8"
  "scan_agg 1"
  "bucket_agg 1"
  "upsert 16"
  "ts_copy 1"
  "ts_insert_batch 1 --batch 1000"
  "ts_window 1"
  "ts_last_hour 1"
  "ts_bucket 1"
)

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
value_of() { sed -n 's/.*value=\([^ ]*\).*/\1/p'; }

lines=()
for spec in "${WORKLOADS[@]}"; do
  read -r name clients extra <<<"$spec"
  # BENCH_ONLY="copy scan_agg" runs a subset.
  if [ -n "${BENCH_ONLY:-}" ] && ! grep -qw "$name" <<<"$BENCH_ONLY"; then continue; fi
  label=$name; [ -n "${extra:-}" ] && label="${name}_${extra##* }"
  ch_vals=(); pg_vals=(); unit=""
  for round in $(seq "$ROUNDS"); do
    for target in chronos postgres; do
      url=$CH_URL; [ $target = postgres ] && url=$PG_URL
      # The time-series read workloads share one table per server, filled once.
      case $name in
        ts_window|ts_last_hour|ts_bucket)
          if ! grep -qw "$target" <<<"${series_filled:-}"; then
            $BENCH --url "$url" --workload "$name" --rows "$ROWS" --setup >/dev/null
            series_filled="${series_filled:-} $target"
          fi ;;
        *) $BENCH --url "$url" --workload "$name" --rows "$ROWS" --setup ${extra:-} >/dev/null ;;
      esac
      # PostgreSQL gets the plain SQL the window aggregates stand for.
      plain=""; [ $target = postgres ] && plain=--plain-sql
      out=$($BENCH --url "$url" --workload "$name" --clients "$clients" --duration "$DURATION" --rows "$ROWS" ${extra:-} $plain)
      unit=$(sed -n 's/.*unit=\([^ ]*\).*/\1/p' <<<"$out")
      if [ $target = chronos ]; then ch_vals+=("$(value_of <<<"$out")"); r=$(rss_kb $chronos_pid); [ "$r" -gt "$peak_ch" ] && peak_ch=$r
      else pg_vals+=("$(value_of <<<"$out")"); r=$(pg_rss_kb); [ "$r" -gt "$peak_pg" ] && peak_pg=$r; fi
    done
  done
  ch=$(printf '%s\n' "${ch_vals[@]}" | median); pg=$(printf '%s\n' "${pg_vals[@]}" | median)
  if [ "$unit" = ms ]; then ratio=$(awk -v a="$pg" -v b="$ch" 'BEGIN {printf "%.2f", a/b}')
  else ratio=$(awk -v a="$ch" -v b="$pg" 'BEGIN {printf "%.2f", a/b}'); fi
  line="workload=$label clients=$clients chronos=$ch postgres=$pg unit=$unit ratio=$ratio"
  echo "$line"
  lines+=("$line")
done

# The time-series table, when a workload filled it: what it takes on disk once sealed, and
# the hourly GROUP BY and last-hour average on the first run after a restart of each server
# with the page cache dropped.
storage_lines=()
if [ -n "${series_filled:-}" ]; then
  echo "== storage and cold reads of the time-series table" >&2
  ms_of() { psql "$1" -X -q -c '\timing on' -c "$2" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1; }
  t0=$(date +%s.%N); psql "$CH_URL" -X -q -c "VACUUM ts_readings"; t1=$(date +%s.%N)
  read -r segs sealed seg_bytes bits <<<"$(psql "$CH_URL" -X -A -t -F' ' -c \
    "SELECT segments, sealed_rows, bytes, round(bits_per_row::numeric, 1) FROM chronos_segments WHERE table_name = 'ts_readings'")"
  pg_bytes=$(psql "$PG_URL" -X -A -t -c "CHECKPOINT; SELECT pg_total_relation_size('ts_readings')" | tail -1)
  hwm_load=$(awk '/VmHWM/ {print $2}' "/proc/$chronos_pid/status")
  kill "$chronos_pid"; wait "$chronos_pid" 2>/dev/null || true
  ch_disk=$(du -sb "$work/chronos" | cut -f1)
  as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -m fast -w restart -o "-p $pg_port -k $work/pgsock -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
  pg_pid=$(head -1 "$work/pg/postmaster.pid")
  start_chronos
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  hourly="SELECT date_trunc('hour', ts) AS h, avg(temp) FROM ts_readings GROUP BY 1"
  last_hour="SELECT avg(temp) FROM ts_readings WHERE ts >= now() - interval '1 hour'"
  ch_hourly=$(ms_of "$CH_URL" "$hourly"); pg_hourly=$(ms_of "$PG_URL" "$hourly")
  ch_hour=$(ms_of "$CH_URL" "$last_hour"); pg_hour=$(ms_of "$PG_URL" "$last_hour")
  storage_lines+=("| sealing the table (VACUUM) | $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f s", b-a}') | – |")
  storage_lines+=("| segments, rows sealed, bits per row | $segs, $sealed, $bits | – |")
  storage_lines+=("| bytes: segments; data dir (ChronosDB) / pg_total_relation_size | $seg_bytes; $ch_disk | $pg_bytes |")
  storage_lines+=("| hourly GROUP BY, first run after restart (ms) | $ch_hourly | $pg_hourly |")
  storage_lines+=("| last-hour avg, first run after restart (ms) | $ch_hour | $pg_hour |")
fi

cp "$CHRONOS_BIN" "$work/chronos-stripped" && strip "$work/chronos-stripped"
size_mb=$(awk -v b="$(stat -c %s "$work/chronos-stripped")" 'BEGIN {printf "%.1f", b/1048576}')

echo
echo "| workload | clients | ChronosDB | PostgreSQL 15 | unit | ratio (>1: ChronosDB better) |"
echo "|---|---|---|---|---|---|"
for l in "${lines[@]}"; do
  awk '{for (i=1;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}; printf "| %s | %s | %s | %s | %s | %s |\n", v["workload"], v["clients"], v["chronos"], v["postgres"], v["unit"], v["ratio"]}' <<<"$l"
done
echo
echo "| memory (RSS) | ChronosDB | PostgreSQL 15 (all processes) |"
echo "|---|---|---|"
echo "| idle | $((idle_ch / 1024)) MiB | $((idle_pg / 1024)) MiB |"
hwm_ch=$(awk '/VmHWM/ {print $2}' "/proc/$chronos_pid/status")
# Before a restart for the cold reads, the peak was the first process's.
[ "${hwm_load:-0}" -gt "$hwm_ch" ] && hwm_ch=$hwm_load
echo "| highest seen after a workload | $((peak_ch / 1024)) MiB | $((peak_pg / 1024)) MiB |"
echo "| peak (VmHWM) | $((hwm_ch / 1024)) MiB | – |"
if [ ${#storage_lines[@]} -gt 0 ]; then
  echo
  echo "| time-series table ($ROWS rows) | ChronosDB | PostgreSQL 15 |"
  echo "|---|---|---|"
  printf '%s\n' "${storage_lines[@]}"
fi
echo
echo "ChronosDB stripped binary: ${size_mb} MiB; rows=$ROWS duration=${DURATION}s rounds=$ROUNDS"
