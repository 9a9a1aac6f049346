#!/usr/bin/env bash
# pgbench 15 against a running ChronosDB: initialise with -I dtgp (client-side COPY, primary
# keys added afterwards), then the built-in TPC-B-like and select-only scripts.
#   compat/pgbench/run.sh PORT
set -uo pipefail
port=${1:?port}
PGB=${PGBENCH:-/usr/lib/postgresql/15/bin/pgbench}
args=(-h 127.0.0.1 -p "$port" -U admin)
passed=0; failed=0
check() {  # name, command...
  local name=$1; shift
  local out
  if out=$("$@" 2>&1) && ! grep -q "number of failed transactions: [1-9]" <<<"$out"; then
    passed=$((passed + 1)); echo "ok   $name: $(grep -E '^tps|^done' <<<"$out" | head -1)"
  else
    failed=$((failed + 1)); echo "FAIL $name"; echo "$out" | tail -15
  fi
}
check "pgbench -i -I dtgp -s 1" "$PGB" "${args[@]}" -i -I dtgp -s 1 chronos
check "pgbench TPC-B, 1 client" "$PGB" "${args[@]}" -c 1 -T 3 chronos
check "pgbench -S, 2 clients" "$PGB" "${args[@]}" -S -c 2 -T 3 chronos
check "pgbench TPC-B, 4 clients with retries" "$PGB" "${args[@]}" -c 4 -T 3 --max-tries=1000 chronos
echo "pgbench: $passed passed, $failed failed"
[ "$failed" = 0 ]
