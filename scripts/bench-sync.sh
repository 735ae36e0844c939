#!/usr/bin/env bash
# Export and sync benchmark: a release build of `d365`, the emulator in its own process
# (1,000,000 accounts, 50 ms latency per request by default) and a throwaway PostgreSQL cluster
# (Debian's server binaries), then, side by side in one run, each under /usr/bin/time (wall
# time, client CPU = user + system, peak RSS), every column of account:
#   1. the table export in each format: Parquet (the baseline), CSV, NDJSON;
#   2. the first `d365 sync account --to postgresql://…` and `--to delta:DIR` (full loads);
#   3. 10,000 accounts updated through `d365 query` DML, then the incremental sync of each.
#   scripts/bench-sync.sh [--rows 1000000] [--latency-ms 50] [--changes 10000]
# Uses CARGO_TARGET_DIR if set; D365_BIN=path/to/d365 skips the build (figures for the README
# come from the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=1000000
latency=50
changes=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --latency-ms) latency="$2"; shift 2 ;;
    --changes) changes="$2"; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
. scripts/lib/emulator.sh
d365_binary
pg_bin="${D365_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found: install postgresql or set D365_PG_BIN" >&2; exit 1; }

work="$(mktemp -d)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); chmod 755 "$work"; fi
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  kill "$emu_pid" 2>/dev/null || true
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/pg"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$work/pg"; fi
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
pg_url="postgresql://postgres@127.0.0.1:$pg_port/postgres?schema=crm"

export D365_CONFIG_DIR="$work/config"
start_emulator "$rows" "$latency" "$work" certificate
conn="@$work/conn.txt"

# Runs a d365 command under /usr/bin/time; prints "seconds cpu_seconds peak_rss_mb".
timed() {
  /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" "$d365" --connection "$conn" "$@" >"$work/out.txt" 2>"$work/err.txt" \
    || { cat "$work/err.txt" >&2; exit 1; }
  awk '{printf "%s %.2f %.0f\n", $1, $2 + $3, $4/1024}' "$work/time.txt"
}
row() { # label rows seconds cpu rss
  awk -v l="$1" -v n="$2" -v s="$3" -v c="$4" -v r="$5" 'BEGIN {
    printf "%-44s %8d rows %7.1f s %8.0f rows/s %6.2f µs CPU/row %5d MB RSS\n", l, n, s, (s > 0 ? n / s : 0), c * 1e6 / n, r }'
}

echo "emulator: $rows accounts, --latency-ms $latency, own process; PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1" >&2
accounts=$("$d365" --connection "$conn" query "SELECT count(*) AS n FROM account" --format csv | tail -1 | tr -d "\r")
read -r s c r < <(timed export account --format parquet -o "$work/account.parquet")
row "export account --format parquet (baseline)" "$accounts" "$s" "$c" "$r"
for f in csv ndjson; do
  read -r fs fc fr < <(timed export account --format "$f" -o "$work/account.$f")
  row "export account --format $f" "$accounts" "$fs" "$fc" "$fr"
  awk -v f="$f" -v a="$c" -v b="$fc" 'BEGIN { printf "  %s: %.2fx the client CPU per row of the Parquet export\n", f, b / a }'
  rm -f "$work/account.$f"
done
read -r ps pc pr < <(timed sync account --to "$pg_url")
row "sync account --to postgresql (first load)" "$accounts" "$ps" "$pc" "$pr"
copied=$("${as_pg[@]}" "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -At -c "SELECT count(*) FROM crm.account")
[ "$copied" = "$accounts" ] || { echo "PostgreSQL has $copied rows, the emulator $accounts" >&2; exit 1; }
awk -v a="$s" -v b="$ps" 'BEGIN { printf "  first load into PostgreSQL: %.2fx the rows/s of the Parquet export\n", a / b }'
read -r ls lc lr < <(timed sync account --to "delta:$work/lake")
row "sync account --to delta (first load)" "$accounts" "$ls" "$lc" "$lr"
grep -q "$accounts rows" "$work/err.txt" || { echo "the Delta table does not have $accounts rows:" >&2; cat "$work/err.txt" >&2; exit 1; }
awk -v a="$s" -v b="$ls" 'BEGIN { printf "  first load into Delta Lake: %.2fx the rows/s of the Parquet export\n", a / b }'

"$d365" --connection "$conn" query \
  "UPDATE account SET telephone1 = 'bench-sync' WHERE accountid IN (SELECT accountid FROM account ORDER BY accountid LIMIT $changes)" \
  >/dev/null 2>"$work/dml.txt" || { cat "$work/dml.txt" >&2; exit 1; }
read -r ds dc dr < <(timed sync account --to "$pg_url")
grep -q "changes (change tracking), $changes upserted" "$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
row "sync account --to postgresql (incremental)" "$changes" "$ds" "$dc" "$dr"
read -r ds dc dr < <(timed sync account --to "delta:$work/lake")
grep -q "changes (change tracking), $changes upserted" "$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
row "sync account --to delta (incremental)" "$changes" "$ds" "$dc" "$dr"
