#!/usr/bin/env bash
# Fault injection on real processes: tests/chaos/run.sh [scenario ...]
#   CHAOS_MINUTES=N  the soak profile: every looping fault runs N minutes (default 15 s)
#   CHAOS_SEED=S     repeats a run's random choices
# Needs root (network namespaces, veth pairs, tc netem, tmpfs). Ends with "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "chaos: needs root (network namespaces, tc, tmpfs)" >&2
  exit 2
fi
cargo build --quiet --bin chronos
exec cargo test --quiet --test chaos -- "$@"
