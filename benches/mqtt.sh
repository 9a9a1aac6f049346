#!/usr/bin/env bash
# MQTT ingestion on loopback: publishers (chronos-mqtt-pub: QoS 1, one JSON reading per line,
# up to 1,000 unacknowledged each) send into a mosquitto broker, and a ChronosDB single node subscribed to it writes a time-series
# table (primary key (device, ts)).
#   benches/mqtt.sh        (BENCH_MESSAGES=200000 messages, BENCH_PUBLISHERS=2 by default)
# Prints, for the broker's default window of unacknowledged messages per client (20) and
# for a window of 1,000 (max_inflight_messages, docs/mqtt.md):
#   - messages/s from the first publish until the last row is committed;
#   - the CPU ChronosDB and mosquitto used meanwhile, as a share of one core.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${BENCH_MESSAGES:-200000}
PUBLISHERS=${BENCH_PUBLISHERS:-2}

echo "== building (release)" >&2
cargo build --release --quiet --bin chronos --bin chronos-mqtt-pub
BIN=target/release/chronos
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

. benches/lib.sh mqtt
sql() { psql -X -q -t -A "host=127.0.0.1 port=$1 user=admin dbname=chronos" -c "$2"; }
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# The messages: 100 devices, a reading every 10 s each, split among the publishers.
python3 - "$MESSAGES" "$PUBLISHERS" "$work" <<'EOF'
import sys
n, p, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
files = [open(f"{work}/messages.{i}", "w") for i in range(p)]
for g in range(n):
    files[g % p].write('{"device":"dev%d","ts":%d,"temp":%.2f}\n' % (g % 100, 1767225600 + (g // 100) * 10, 20 + (g % 1000) / 100))
EOF

run() { # max_inflight_messages → "messages/s chronos_cpu% mosquitto_cpu%"
  local inflight=$1 mport pg http
  mport=$(port); pg=$(port); http=$(port)
  mkdir -p "$work/broker-$inflight"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages %s\n' \
    "$mport" "$inflight" > "$work/broker-$inflight/mosquitto.conf"
  "$MOSQUITTO" -c "$work/broker-$inflight/mosquitto.conf" >/dev/null 2>&1 &
  local broker=$!; pids+=("$broker")
  wait_port "$mport"
  CHRONOS_LOG=${BENCH_LOG:-error} $BIN single-node --data-dir "$work/chronos-$inflight" --pg-addr "127.0.0.1:$pg" \
    --http-addr "127.0.0.1:$http" --mqtt-url "mqtt://127.0.0.1:$mport" --mqtt-client-id bench &
  local node=$!; pids+=("$node")
  wait_port "$pg"
  sql "$pg" "CREATE TABLE readings (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts))"
  until [ "$(metric "$http" chronos_mqtt_connected)" = 1 ]; do sleep 0.1; done
  sleep 0.5
  local c0 b0 start end
  c0=$(cpu_ticks "$node"); b0=$(cpu_ticks "$broker"); start=$(now_ms)
  local publishers=()
  for ((i = 0; i < PUBLISHERS; i++)); do
    target/release/chronos-mqtt-pub --port "$mport" --topic chronos/readings --file "$work/messages.$i" >/dev/null &
    publishers+=($!)
  done
  until [ "$(metric "$http" chronos_mqtt_rows_written_total)" -ge "$MESSAGES" ]; do sleep 0.05; done
  end=$(now_ms)
  local c1 b1 ms=$((end - start))
  c1=$(cpu_ticks "$node"); b1=$(cpu_ticks "$broker")
  wait "${publishers[@]}"
  local rows; rows=$(sql "$pg" "SELECT count(*) FROM readings")
  [ "$rows" = "$MESSAGES" ] || { echo "expected $MESSAGES rows, found $rows" >&2; exit 1; }
  local tick; tick=$(getconf CLK_TCK)
  echo "$((MESSAGES * 1000 / ms)) $(( (c1 - c0) * 100000 / tick / ms ))% $(( (b1 - b0) * 100000 / tick / ms ))%"
  kill -9 "$node" "$broker" 2>/dev/null || true
}

echo "messages: $MESSAGES from $PUBLISHERS publishers (QoS 1), into a time-series table"
echo "window (max_inflight_messages) | messages/s | ChronosDB CPU (of one core) | mosquitto CPU"
for inflight in 20 1000; do
  read -r rate cpu broker_cpu < <(run "$inflight")
  echo "$inflight | $rate | $cpu | $broker_cpu"
done
