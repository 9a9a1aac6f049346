#!/usr/bin/env bash
# The differential comparison against PostgreSQL 15 (compare.py): starts a scratch PostgreSQL
# 15, runs the generated queries on it and on the ChronosDB at 127.0.0.1:PORT, and fails when a
# class of queries matches less often than compat/differential/baseline.json allows, and
# when a result's declared type or bytes differ (formats.py). Then,
# with the same PostgreSQL, a pg_dump of it restored into ChronosDB (compat/pg_dump/restore.sh).
#   compat/differential/run.sh PORT [SEED] [PER_CLASS]
# Needs PostgreSQL 15's server binaries (PG_BIN, default /usr/lib/postgresql/15/bin) and the
# psycopg of compat/python/.venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
SEED=${2:-1}
PER_CLASS=${3:-60}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PYTHON=${PYTHON:-compat/python/.venv/bin/python}

work=$(mktemp -d /tmp/chronos-differential.XXXXXX)
chmod 755 "$work"
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  if [ -f "$work/pg/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/pg" "$work/sock"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg" "$work/sock"
as_pg "$PG_BIN/initdb" -D "$work/pg" -U admin -A trust >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p $pg_port -k $work/sock -c listen_addresses=127.0.0.1 -c TimeZone=UTC" start >/dev/null
as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U admin differential

echo "differential comparison with PostgreSQL 15: seed $SEED, $PER_CLASS queries per class"
"$PYTHON" compat/differential/compare.py \
  --pg "host=127.0.0.1 port=$pg_port user=admin dbname=differential" \
  --chronos "host=127.0.0.1 port=$PORT user=admin dbname=chronos" \
  --seed "$SEED" --per-class "$PER_CLASS" \
  --mismatches "${DIFFERENTIAL_MISMATCHES:-/dev/null}" \
  --baseline compat/differential/baseline.json
# Declared types and raw bytes of results, text and binary, for every type and for inferred
# expression types (compat/differential/formats.py).
"$PYTHON" compat/differential/formats.py \
  --pg "host=127.0.0.1 port=$pg_port user=admin dbname=differential" \
  --chronos "host=127.0.0.1 port=$PORT user=admin dbname=chronos"
PG_BIN="$PG_BIN" bash compat/pg_dump/restore.sh "$pg_port" "$PORT"
