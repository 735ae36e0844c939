#!/usr/bin/env bash
# Aggregate pushdown benchmark: a release build of `d365`, the emulator in its own process
# (1,000,000 accounts, 50 ms latency per request by default), then `d365 bench aggregate`
# runs each query with aggregate pushdown on and off, side by side, and checks the rows agree.
#   scripts/bench-aggregates.sh [--rows 1000000] [--latency-ms 50] [-- extra `d365 bench aggregate` args]
# Uses CARGO_TARGET_DIR if set; D365_BIN=path/to/d365 skips the build (e.g. a debug binary for a
# quick check; figures for the README come from the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=1000000
latency=50
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --latency-ms) latency="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
. scripts/lib/emulator.sh
d365_binary
work="$(mktemp -d)"
trap 'kill "$emu_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export D365_CONFIG_DIR="$work/config"
start_emulator "$rows" "$latency" "$work" secret
echo "emulator: $rows accounts, --latency-ms $latency (20 µs per row returned), own process" >&2
"$d365" bench aggregate --connection "@$work/conn.txt" "$@"
