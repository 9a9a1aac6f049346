#!/usr/bin/env bash
# Fault injection on real processes: tests/chaos/run.sh [scenario ...]
#   CHAOS_MINUTES=N  the soak profile: every looping fault runs N minutes (default 15 s)
#   CHAOS_SEED=S     repeats a run's random choices
# Needs root (network namespaces, veth pairs, tc, TUN devices, tmpfs), iproute2, curl and openssl.
# Ends with "chaos: N passed, M failed". docs/reliability.md describes it.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "chaos: needs root (network namespaces, tc, tmpfs)" >&2
  exit 2
fi
for tool in ip tc curl openssl; do
  command -v "$tool" >/dev/null || { echo "chaos: needs $tool" >&2; exit 2; }
done

# What a run killed half way left behind: its members, namespaces and bridges.
leftovers() {
  for ns in $(ip netns list 2>/dev/null | awk '/^chaos[0-9]+-[0-9]+/{print $1}'); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -br link 2>/dev/null | awk '/^(chb|chv)[0-9]/{print $1}' | cut -d@ -f1); do
    ip link del "$link" 2>/dev/null || true
  done
}
leftovers
trap leftovers EXIT
cargo test --quiet --test chaos -- "$@"
