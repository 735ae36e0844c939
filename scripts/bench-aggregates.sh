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
if [ -n "${D365_BIN:-}" ]; then
  d365="$D365_BIN"
else
  cargo build --release -p d365-cli
  target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  d365="$target_dir/release/d365"
fi
work="$(mktemp -d)"
trap 'kill "$emu_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export D365_CONFIG_DIR="$work/config"
"$d365" emulator --rows "$rows" --latency-ms "$latency" --ready-file "$work/ready.json" >"$work/emulator.log" 2>&1 &
emu_pid=$!
echo "seeding $rows accounts in the emulator (pid $emu_pid)…" >&2
until [ -s "$work/ready.json" ]; do
  kill -0 "$emu_pid" 2>/dev/null || { cat "$work/emulator.log" >&2; exit 1; }
  sleep 1
done
python3 - "$work/ready.json" >"$work/conn.txt" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
app = next(a for a in info["apps"] if a.get("client_secret"))
print(f"OrganizationUrl={info['org_url']};AuthScheme=AzureServicePrincipal;AzureTenant={info['tenant_id']};"
      f"OAuthClientId={app['client_id']};OAuthClientSecret={app['client_secret']};"
      f"AzureAuthorityHost={info['authority']};SSLServerCert={info['ca_pem']}")
PY
echo "emulator: $rows accounts, --latency-ms $latency (20 µs per row returned), own process" >&2
"$d365" bench aggregate --connection "@$work/conn.txt" "$@"
