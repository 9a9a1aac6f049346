#!/usr/bin/env bash
# A PostgreSQL 15 database dumped with pg_dump and restored into ChronosDB with psql, as a
# user moving to ChronosDB would: the restored rows must equal the originals (compared through
# each table's whole-row text), and the keys, unique and CHECK constraints and serial defaults
# must work after the restore.
#   compat/pg_dump/restore.sh PG_PORT CHRONOS_PORT
# Needs a PostgreSQL 15 that trusts user admin at 127.0.0.1:PG_PORT (compat/differential/run.sh
# starts one and calls this), its pg_dump (PG_BIN) and psql.
set -uo pipefail
PG_PORT=$1
PORT=$2
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
work=$(mktemp -d /tmp/chronos-pg-dump.XXXXXX)
trap 'rm -rf "$work"' EXIT
pg() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U admin "$@"; }
chronos() { psql -X -q -h 127.0.0.1 -p "$PORT" -U admin -d chronos "$@"; }
passed=0
failed=0
check() {
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1)); echo "ok   pg_dump: $1"
  else
    failed=$((failed + 1)); echo "FAIL pg_dump: $1"; echo "  expected: $2"; echo "  got:      $3"
  fi
}

pg -d postgres -c "DROP DATABASE IF EXISTS dumpsrc" -c "CREATE DATABASE dumpsrc"
pg -d dumpsrc <<'SQL'
CREATE TABLE dump_readings (device text, ts timestamptz, temp float8, note text, PRIMARY KEY (device, ts));
COMMENT ON TABLE dump_readings IS 'one row per reading';
COMMENT ON COLUMN dump_readings.temp IS 'degrees Celsius';
INSERT INTO dump_readings
  SELECT 'd' || (g % 3), '2024-01-01'::timestamptz + g * interval '1 min', g / 7.0,
         CASE WHEN g % 5 = 0 THEN NULL ELSE 'note, "quoted" ' || g END
  FROM generate_series(1, 500) g;
CREATE INDEX dump_readings_temp ON dump_readings (temp);
CREATE TABLE dump_kinds (id serial PRIMARY KEY, name varchar(20) UNIQUE NOT NULL,
  w numeric(6,2) CHECK (w > 0), seen date, flags int[] , doc jsonb);
INSERT INTO dump_kinds (name, w, seen, flags, doc) VALUES
  ('alpha', 1.5, '2024-02-29', '{1,2}', '{"a": [1, "x"]}'), ('beta', 2, NULL, NULL, NULL),
  ('tab	and\slash', 99.99, '1999-12-31', '{}', '{"k": null}');
CREATE TABLE dump_counter (k bigint PRIMARY KEY, at time, at_zone timetz, span interval);
INSERT INTO dump_counter VALUES (1, '10:00', '10:00+02', '1 day 02:00'), (2, '23:59:59.5', NULL, '-3 mons');
SQL
"$PG_BIN/pg_dump" -h 127.0.0.1 -p "$PG_PORT" -U admin dumpsrc > "$work/dump.sql"
chronos -c "DROP TABLE IF EXISTS dump_readings, dump_kinds, dump_counter" -c "DROP SEQUENCE IF EXISTS dump_kinds_id_seq" >/dev/null 2>&1
chronos -f "$work/dump.sql" > "$work/restore.out" 2> "$work/restore.err"
# pg_dump's ALTER SEQUENCE … OWNED BY is the one statement ChronosDB does not parse: the
# restored sequence works as the column's default but is not owned by the column (dropping
# the table leaves it).
unexpected=$(grep 'ERROR' "$work/restore.err" | grep -v 'syntax error at or near "SEQUENCE"' || true)
sequence_lines=$(grep -c 'ALTER SEQUENCE' "$work/dump.sql")
check "restore runs without unexpected errors" "" "$unexpected"
[ -n "$unexpected" ] && cat "$work/restore.err"
check "the ALTER SEQUENCE lines are the only ones refused" "$sequence_lines" \
  "$(grep -c 'syntax error at or near "SEQUENCE"' "$work/restore.err")"

for table in dump_readings dump_kinds dump_counter; do
  query="SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM $table t"
  check "$table rows equal the original's" "$(pg -d dumpsrc -At -c "$query")" "$(chronos -At -c "$query")"
done
check "comments came along" "one row per reading|degrees Celsius" \
  "$(chronos -At -c "SELECT obj_description('dump_readings'::regclass) || '|' || col_description('dump_readings'::regclass, 3)")"
check "the serial default continues after the restored rows" "4" \
  "$(chronos -At -c "INSERT INTO dump_kinds (name, w) VALUES ('gamma', 3) RETURNING id")"
check "the unique constraint holds" "23505" \
  "$(chronos -At -c "\\set VERBOSITY verbose" -c "INSERT INTO dump_kinds (name) VALUES ('alpha')" 2>&1 | grep -o '23505' | head -1)"
check "the CHECK constraint holds" "23514" \
  "$(chronos -At -c "\\set VERBOSITY verbose" -c "INSERT INTO dump_kinds (name, w) VALUES ('neg', -1)" 2>&1 | grep -o '23514' | head -1)"
check "the index is there" "dump_readings_temp" \
  "$(chronos -At -c "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'dump_readings'::regclass AND NOT i.indisunique")"
chronos -c "DROP TABLE IF EXISTS dump_readings, dump_kinds, dump_counter" -c "DROP SEQUENCE IF EXISTS dump_kinds_id_seq" >/dev/null 2>&1
echo "pg_dump restore: $passed passed, $failed failed"
[ "$failed" = 0 ]
