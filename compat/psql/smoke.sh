#!/usr/bin/env bash
# psql 15 against a running ChronosDB: meta-commands and \copy, checked against the output
# PostgreSQL 15 gives for the same objects.
#   compat/psql/smoke.sh PORT
set -uo pipefail
port=${1:?port}
psql_cmd() { psql -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$port user=admin dbname=chronos" "$@"; }
passed=0; failed=0
expect() {  # name, expected substring, psql args...
  local name=$1 want=$2; shift 2
  local out
  if out=$(psql_cmd "$@" 2>&1) && grep -qF -- "$want" <<<"$out"; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; echo "$out" | head -20
  fi
}

psql_cmd -c "DROP TABLE IF EXISTS psql_states" -c "DROP TYPE IF EXISTS psql_state" -c "CREATE TYPE psql_state AS ENUM ('off', 'on')" -c "CREATE TABLE psql_states (id INT PRIMARY KEY, s psql_state)" >/dev/null 2>&1
psql_cmd -c "DROP TABLE IF EXISTS psql_readings" -c "CREATE TABLE psql_readings (ts timestamptz NOT NULL, device text, temp float8 DEFAULT 0, PRIMARY KEY (device, ts))" -c "CREATE INDEX psql_readings_temp ON psql_readings (temp)" >/dev/null 2>&1
psql_cmd -c "DROP VIEW IF EXISTS psql_latest" -c "DROP TABLE IF EXISTS psql_things" -c "CREATE TABLE psql_things (id SERIAL PRIMARY KEY, name text)" -c "CREATE VIEW psql_latest AS SELECT device, max(ts) AS last_seen FROM psql_readings GROUP BY device" >/dev/null 2>&1
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
printf '2024-01-01 00:00:00+00,a,1.5\n2024-01-01 00:01:00+00,b,\n' >"$tmp"

expect '\dt lists the table' 'public | psql_readings | table | admin' -c '\dt'
expect '\d shows columns' ' ts     | timestamp with time zone |           | not null | ' -c '\d psql_readings'
expect '\d shows the primary key' '"psql_readings_pkey" PRIMARY KEY, btree (device, ts)' -c '\d psql_readings'
expect '\d+ shows storage' 'Access method: heap' -c '\d+ psql_readings'
expect '\di lists indexes' 'psql_readings_temp' -c '\di'
expect '\l lists databases' 'chronos' -c '\l'
expect '\dn lists schemas' 'public' -c '\dn'
expect '\du lists roles' 'readonly' -c '\du'
expect '\dT lists enum types' 'public | psql_state' -c '\dT'
expect '\d shows an enum column' ' s      | psql_state' -c '\d psql_states'
expect '\copy from a file' ' 2' -c "\\copy psql_readings from '$tmp' csv" -c 'SELECT count(*) FROM psql_readings' 
expect '\copy to stdout' '2024-01-01 00:01:00+00,b,' -c '\copy psql_readings to stdout csv'
expect '\x expanded output' 'device | a' -c '\x on' -c "SELECT device FROM psql_readings WHERE device = 'a'"
expect '\timing' 'Time:' -c '\timing on' -c 'SELECT 1'
expect '\dv lists views' 'public | psql_latest | view | admin' -c '\dv'
expect '\d shows a view' ' last_seen | timestamp with time zone |' -c '\d psql_latest'
expect '\ds lists sequences' 'public | psql_things_id_seq | sequence | admin' -c '\ds'
expect '\d shows a serial default' "nextval('psql_things_id_seq')" -c '\d psql_things'
echo "psql: $passed passed, $failed failed"
[ "$failed" = 0 ]
