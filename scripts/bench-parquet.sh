#!/usr/bin/env bash
# Issue 4: export 1,000,000 accounts to Parquet, peak RSS of the d365 process.
# Usage: bench-parquet.sh [ROWS] (cargo build --release -p d365-cli first; D365_BIN overrides the binary;
# EXPORT_ARGS adds export flags, e.g. EXPORT_ARGS="--parallel 1")
set -euo pipefail
ROWS=${1:-1000000}
BIN=${D365_BIN:-${CARGO_TARGET_DIR:-target}/release/d365}
D=/tmp/emu-parquet; rm -rf $D; mkdir -p $D
$BIN emulator --rows $ROWS --port 0 --ready-file $D/ready.json > $D/emu.log 2>&1 &
EMU=$!
trap 'kill $EMU 2>/dev/null || true' EXIT
for i in $(seq 1 600); do [ -s $D/ready.json ] && break; sleep 1; done
python3 - $D/ready.json > $D/conn <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))
app=[a for a in r["apps"] if a["name"]=="certificate"][0]
print(";".join([f"OrganizationUrl={r['org_url']}","AuthScheme=AzureServicePrincipalCert",f"AzureTenant={r['tenant_id']}",
 f"OAuthClientId={app['client_id']}",f"OAuthJWTCert={r['state_dir']}/certificate.pem",f"AzureAuthorityHost={r['authority']}",f"SSLServerCert={r['ca_pem']}"]))
PY
export D365_CONNECTION="$(cat $D/conn)"   # not on the command line: it may hold a secret
echo "emulator ready ($ROWS accounts)"
for fmt in parquet; do
  /usr/bin/time -v $BIN export account ${EXPORT_ARGS:-} --format $fmt -o $D/account.$fmt 2> $D/time.$fmt || { cat $D/time.$fmt; exit 1; }
  grep -E "Maximum resident|Elapsed|User time|System time" $D/time.$fmt
  grep -v -E "^\s" $D/time.$fmt | tail -3
  ls -la $D/account.$fmt
done
