#!/usr/bin/env bash
# Issue 6: d365 query INSERT … SELECT of 100,000 CSV rows into contact, end to end (release).
# Usage: bench-dml.sh [ROWS] [LATENCY_MS] (a release build of d365-cli, or D365_BIN=path/to/d365)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-100000}; LAT=${2:-20}
. scripts/lib/emulator.sh
d365_binary
work="$(mktemp -d)"
trap 'kill "$emu_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export D365_CONFIG_DIR="$work/config"
start_emulator 100 "$LAT" "$work" secret
python3 - "$ROWS" "$work/people.csv" <<'PY'
import sys
with open(sys.argv[2], "w") as f:
    f.write("first,last,email\n")
    for i in range(int(sys.argv[1])):
        f.write(f"First{i},Last{i},p{i}@example.com\n")
PY
export D365_CONNECTION="$(cat "$work/conn.txt")"   # not on the command line: it may hold a secret
/usr/bin/time -v "$d365" query "INSERT INTO contact (firstname, lastname, emailaddress1, jobtitle) SELECT first, last, email, 'bench-dml' FROM people" \
  --table "people=$work/people.csv" --errors "$work/errors.csv" 2> "$work/time.txt" || true
grep -v -E "^\s" "$work/time.txt" | tail -5
grep -E "Maximum resident|Elapsed|User time" "$work/time.txt"
"$d365" query "SELECT count(*) AS n FROM contact WHERE jobtitle = 'bench-dml'" --format csv
