#!/usr/bin/env bash
# Finance & Operations read benchmark: a release build of `d365`, the emulator in its own
# process (ROWS customers in its F&O environment, every company read), then side by side in one
# run, each under /usr/bin/time (wall time, client CPU, peak RSS), every column of CustomersV3
# to Parquet:
#   1. the service's own paging: one request after another, following `$skip` next links
#      (10,000-row pages; what other clients do; not exact while rows are written);
#   2. key ranges read in parallel (`--parallel 4`, the default), exact under writes;
#   3. key ranges, one at a time (`--parallel 1` of the export command).
#   scripts/bench-finops.sh [--rows 200000]
# Uses CARGO_TARGET_DIR if set; D365_BIN=path/to/d365 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
. scripts/lib/emulator.sh
d365_binary
work="$(mktemp -d)"
trap 'kill "${emu_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
start_emulator "$rows" 0 "$work" secret
python3 - "$work/ready.json" >"$work/fno.txt" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
app = next(a for a in info["apps"] if a["name"] == "integration")
print(f"OrganizationUrl={info['fno']['org_url']};Edition=FinOpsOnline;CrossCompany=true;"
      f"AuthScheme=AzureServicePrincipal;AzureTenant={info['tenant_id']};OAuthClientId={app['client_id']};"
      f"OAuthClientSecret={app['client_secret']};AzureAuthorityHost={info['authority']};SSLServerCert={info['ca_pem']}")
PY
export D365_CONNECTION="$(cat "$work/fno.txt")" D365_CONFIG_DIR="$work/config" XDG_CACHE_HOME="$work/cache"
# Rows are counted from the Parquet footers (pyarrow: the test venv's Python, or D365_PYTHON).
py="${D365_PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
run() {
  local name="$1"; shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$d365" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r wall user sys rss <"$work/time"
  local n
  n=$("$py" -c "import pyarrow.parquet as pq,sys; print(pq.read_metadata(sys.argv[1]).num_rows)" "$work/$name.parquet" 2>/dev/null || echo 0)
  printf '%-44s %8s rows  %6.2f s  %8.0f rows/s  client CPU %5.2f s  peak RSS %4d MB\n' \
    "$name" "$n" "$wall" "$(python3 -c "print($n/$wall if $wall > 0 else 0)")" \
    "$(python3 -c "print($user+$sys)")" "$((rss / 1024))"
}
echo "CustomersV3, $rows rows, every column, to Parquet:"
run skip-paging query --parallel 1 -o "$work/skip-paging.parquet" "SELECT * FROM CustomersV3"
run key-ranges-parallel-4 export CustomersV3 --parallel 4 -o "$work/key-ranges-parallel-4.parquet"
run key-ranges-one-at-a-time export CustomersV3 --parallel 1 -o "$work/key-ranges-one-at-a-time.parquet"
