# Shared by the bench scripts: `. benches/lib.sh NAME` makes a scratch directory $work, kills
# every pid pushed onto `pids` and removes $work on exit, and defines small helpers.
work=$(mktemp -d "/tmp/chronos-$1.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# A free TCP port on loopback.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
# The server to measure: $CHRONOS_BIN, else a release build made now.
release_bin() {
  if [ -z "${CHRONOS_BIN:-}" ]; then
    echo "== building (release)" >&2
    cargo build --release --quiet --bin chronos >&2
  fi
  echo "${CHRONOS_BIN:-target/release/chronos}"
}
# Resident and peak resident memory of process $1, in MiB.
rss() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$1/status"; }
hwm() { awk '/VmHWM/ {printf "%d", $2/1024}' "/proc/$1/status"; }
