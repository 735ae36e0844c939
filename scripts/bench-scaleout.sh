#!/usr/bin/env bash
# Scale-out benchmark: one application user against three, side by side in one run.
#
# The emulator runs in its own process with three more application users (--app-users 3) and
# service-protection limits per user made tight enough that one user is the bottleneck (by
# default 10 requests per 5-second window each, 20 ms latency, pages of 1,000 rows). Then:
#   1. `d365 plan account` (units of --unit-rows rows), one worker as worker-1 runs every unit;
#   2. a new plan, three workers at once (--shard 0/3, 1/3, 2/3) as worker-1, -2 and -3;
# each followed by `d365 commit`, the Delta table's row count checked against the source. Prints
# wall time, rows/s and throttled responses of each, and the ratio.
#   scripts/bench-scaleout.sh [--rows 200000] [--unit-rows 10000] [--limits requests=10,window=5]
#                             [--latency-ms 20] [--page-size 1000] [--parallel N]
# (--parallel: requests per unit at once, passed to the workers; default adaptive)
# Uses CARGO_TARGET_DIR if set; D365_BIN=path/to/d365 skips the build (figures for the README
# come from the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=200000
unit_rows=10000
limits="requests=10,window=5"
latency=20
page_size=1000
parallel=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --unit-rows) unit_rows="$2"; shift 2 ;;
    --limits) limits="$2"; shift 2 ;;
    --latency-ms) latency="$2"; shift 2 ;;
    --page-size) page_size="$2"; shift 2 ;;
    --parallel) parallel="$2"; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
. scripts/lib/emulator.sh
d365_binary

work="$(mktemp -d)"
cleanup() {
  kill "$emu_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export D365_CONFIG_DIR="$work/config"
mkdir -p "$work/config"
"$d365" emulator --rows "$rows" --latency-ms "$latency" --app-users 3 --limits "$limits" \
  --ready-file "$work/ready.json" >"$work/emulator.log" 2>&1 &
emu_pid=$!
echo "seeding $rows accounts in the emulator (pid $emu_pid), limits per user: $limits…" >&2
until [ -s "$work/ready.json" ]; do
  kill -0 "$emu_pid" 2>/dev/null || { cat "$work/emulator.log" >&2; exit 1; }
  sleep 1
done
# Connection strings: the planner (the Integration app) and worker-1..3, each its own user.
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
info = json.load(open(f"{work}/ready.json"))
base = (f"OrganizationUrl={info['org_url']};AzureTenant={info['tenant_id']};"
        f"AzureAuthorityHost={info['authority']};SSLServerCert={info['ca_pem']};AuthScheme=AzureServicePrincipal")
for app in info["apps"]:
    if app["name"] in ("integration", "worker-1", "worker-2", "worker-3"):
        with open(f"{work}/{app['name']}.conn", "w") as f:
            f.write(f"{base};OAuthClientId={app['client_id']};OAuthClientSecret={app['client_secret']}")
PY

# A plan, then WORKERS workers at once (worker-i with shard i-1/WORKERS), then the commit;
# prints "seconds rows throttled".
run() {
  local workers="$1" name="$2"
  local lake="$work/lake-$name" plan="$work/plan-$name.jsonl"
  "$d365" --connection "@$work/integration.conn" plan account --to "delta:$lake" -o "$plan" \
    --unit-rows "$unit_rows" --credentials "$workers" >"$work/plan-$name.log" 2>&1 \
    || { cat "$work/plan-$name.log" >&2; exit 1; }
  local start end pids=()
  start=$(date +%s.%N)
  for i in $(seq 1 "$workers"); do
    local args=(export --manifest "$plan" --page-size "$page_size")
    [ "$workers" -gt 1 ] && args+=(--shard "$((i - 1))/$workers")
    [ -n "$parallel" ] && args+=(--parallel "$parallel")
    "$d365" --connection "@$work/worker-$i.conn" "${args[@]}" >"$work/worker-$name-$i.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { cat "$work"/worker-"$name"-*.log >&2; exit 1; }; done
  end=$(date +%s.%N)
  # Each worker's own account (units, rows, requests, throttled answers, its time).
  for i in $(seq 1 "$workers"); do
    echo "  worker-$i: $(grep -o 'units read.*' "$work/worker-$name-$i.log" | tail -1)" >&2
  done
  "$d365" commit "$plan" >"$work/commit-$name.log" 2>&1 || { cat "$work/commit-$name.log" >&2; exit 1; }
  local committed throttled
  committed=$(grep -o '[0-9]* rows in [0-9]* files committed' "$work/commit-$name.log" | awk '{print $1}')
  throttled=$(cat "$work"/worker-"$name"-*.log | { grep -o 'throttled [0-9]* times' || true; } | awk '{s += $2} END {print s + 0}')
  [ "$committed" = "$rows" ] || { echo "the $name run committed $committed rows, not $rows" >&2; cat "$work/commit-$name.log" >&2; exit 1; }
  awk -v s="$start" -v e="$end" -v n="$committed" -v t="$throttled" 'BEGIN {printf "%.1f %d %d\n", e - s, n, t}'
}

echo "rows $rows, units of ~$unit_rows rows, pages of $page_size, latency $latency ms, limits per user: $limits"
read -r s1 n1 t1 < <(run 1 one)
printf "%-40s %8d rows %7.1f s %8.0f rows/s %5d throttled\n" "1 worker, 1 application user" "$n1" "$s1" "$(awk -v n="$n1" -v s="$s1" 'BEGIN {print n / s}')" "$t1"
read -r s3 n3 t3 < <(run 3 three)
printf "%-40s %8d rows %7.1f s %8.0f rows/s %5d throttled\n" "3 workers, 3 application users" "$n3" "$s3" "$(awk -v n="$n3" -v s="$s3" 'BEGIN {print n / s}')" "$t3"
awk -v a="$s1" -v b="$s3" 'BEGIN {printf "speed-up with 3 application users: %.2fx\n", a / b}'
