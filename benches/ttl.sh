#!/usr/bin/env bash
# The cost of TTL expiry on a time-series table: a server expiring every 5 s, the readings
# table (100 devices, a reading every 10 s, BENCH_ROWS rows, 1M by default) loaded by one COPY.
#   benches/ttl.sh
#   CHRONOS_BIN=/path/to/chronos benches/ttl.sh   another build of the server
# Prints the server's CPU per round while nothing expires (a TTL of 30 days), then the wall
# time and CPU of expiring the rows older than 12 hours before the newest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${BENCH_ROWS:-1000000}
. benches/lib.sh ttl
BIN=$(release_bin)
cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$1/stat"; }

python3 - "$ROWS" > "$work/readings.csv" <<'PY'
import datetime, sys
rows = int(sys.argv[1]); per = rows // 100
start = datetime.datetime(2026, 1, 1)
for d in range(100):
    for i in range(per):
        t = start + datetime.timedelta(seconds=10 * i)
        print(f"dev-{d:03d},{t.isoformat()}+00,{20 + (i % 100) / 10:.1f}")
PY

pg=$(port)
CHRONOS_TTL_INTERVAL_SECS=5 "$BIN" single-node --data-dir "$work/data" --pg-addr "127.0.0.1:$pg" \
  --http-addr "127.0.0.1:$(port)" > "$work/server.log" 2>&1 &
pid=$!
pids+=("$pid")
sql() { psql -X -q -t -A "host=127.0.0.1 port=$pg user=admin dbname=chronos" -c "$1"; }
for _ in $(seq 400); do sql "SELECT 1" >/dev/null 2>&1 && break; sleep 0.05; done
sql "CREATE TABLE r (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts)) WITH (ttl = '30 days')"
sql "\\copy r FROM '$work/readings.csv' CSV"
sleep 25 # the load's own background work (sealing, garbage collection) settles

a=$(cpu_ms "$pid"); sleep 30; b=$(cpu_ms "$pid")
echo "rows $ROWS: CPU per 5 s round with nothing to expire: $(( (b - a) / 6 )) ms"

before=$(sql "SELECT count(*) FROM r WHERE temp > -1000")
a=$(cpu_ms "$pid"); t0=$(now_ms)
sql "ALTER TABLE r SET (ttl = '12 hours')"
# Rows of the last 12 hours of data stay, the one at the cutoff too: 4,321 a device.
left=$(( 100 * 4321 ))
while [ "$(sql "SELECT count(*) FROM r WHERE temp > -1000")" -gt "$left" ]; do sleep 0.5; done
t1=$(now_ms); b=$(cpu_ms "$pid")
after=$(sql "SELECT count(*) FROM r WHERE temp > -1000")
echo "expiry of $(( before - after )) rows: wall $(( t1 - t0 )) ms, CPU $(( b - a )) ms; peak RSS $(hwm "$pid") MiB"
