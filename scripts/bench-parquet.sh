#!/usr/bin/env bash
# Issue 4: export 1,000,000 accounts to Parquet, peak RSS of the d365 process.
# Usage: bench-parquet.sh [ROWS] (a release build of d365-cli, or D365_BIN=path/to/d365;
# EXPORT_ARGS adds export flags, e.g. EXPORT_ARGS="--parallel 1")
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
. scripts/lib/emulator.sh
d365_binary
work="$(mktemp -d)"
trap 'kill "$emu_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export D365_CONFIG_DIR="$work/config"
start_emulator "$ROWS" 0 "$work" certificate
export D365_CONNECTION="$(cat "$work/conn.txt")"   # not on the command line: it may hold a secret
echo "emulator ready ($ROWS accounts)"
# shellcheck disable=SC2086
/usr/bin/time -v "$d365" export account ${EXPORT_ARGS:-} --format parquet -o "$work/account.parquet" 2> "$work/time.txt" \
  || { cat "$work/time.txt"; exit 1; }
grep -E "Maximum resident|Elapsed|User time|System time" "$work/time.txt"
grep -v -E "^\s" "$work/time.txt" | tail -3
ls -la "$work/account.parquet"
