#!/usr/bin/env bash
# Issue 6: d365 query INSERT … SELECT of 100,000 CSV rows into contact, end to end (release).
set -euo pipefail
ROWS=${1:-100000}; LAT=${2:-20}
BIN=${D365_BIN:-${CARGO_TARGET_DIR:-target}/release/d365}
D=/tmp/emu-dml; rm -rf $D; mkdir -p $D
$BIN emulator --rows 100 --latency-ms $LAT --port 0 --ready-file $D/ready.json > $D/emu.log 2>&1 &
EMU=$!
trap 'kill $EMU 2>/dev/null || true' EXIT
for i in $(seq 1 600); do [ -s $D/ready.json ] && break; sleep 1; done
python3 - $D/ready.json $ROWS $D/people.csv > $D/conn <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))
app=[a for a in r["apps"] if a["name"]=="integration"][0]
print(";".join([f"OrganizationUrl={r['org_url']}","AuthScheme=AzureServicePrincipal",f"AzureTenant={r['tenant_id']}",
 f"OAuthClientId={app['client_id']}",f"OAuthClientSecret={app['client_secret']}",f"AzureAuthorityHost={r['authority']}",f"SSLServerCert={r['ca_pem']}"]))
with open(sys.argv[3],"w") as f:
    f.write("first,last,email\n")
    for i in range(int(sys.argv[2])):
        f.write(f"First{i},Last{i},p{i}@example.com\n")
PY
export D365_CONNECTION="$(cat $D/conn)"   # not on the command line: it may hold a secret
/usr/bin/time -v $BIN query "INSERT INTO contact (firstname, lastname, emailaddress1, jobtitle) SELECT first, last, email, 'bench-dml' FROM people" --table people=$D/people.csv --errors $D/errors.csv 2> $D/time.txt || true
grep -v -E "^\s" $D/time.txt | tail -5
grep -E "Maximum resident|Elapsed|User time" $D/time.txt
$BIN query "SELECT count(*) AS n FROM contact WHERE jobtitle = 'bench-dml'" --format csv
