#!/usr/bin/env bash
# pgjdbc (Debian's libpostgresql-jdbc-java) against a running ChronosDB: compiles
# JdbcCheck.java into a temporary directory and runs it.
#   compat/java/run.sh PORT
set -uo pipefail
port=${1:?port}
jar=${PGJDBC_JAR:-/usr/share/java/postgresql.jar}
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -f "$jar" ]; then
  echo "FAIL pgjdbc: $jar not found (apt-get install libpostgresql-jdbc-java)"
  echo "pgjdbc: 0 passed, 1 failed"
  exit 1
fi
classes=$(mktemp -d); trap 'rm -rf "$classes"' EXIT
if ! out=$(javac -cp "$jar" -d "$classes" "$here/JdbcCheck.java" 2>&1); then
  echo "FAIL pgjdbc: javac"; echo "$out" | head -20
  echo "pgjdbc: 0 passed, 1 failed"
  exit 1
fi
java -cp "$classes:$jar" JdbcCheck "$port"
