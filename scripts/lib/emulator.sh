# Sourced by the benchmark scripts: the d365 binary and an emulator in its own process.
#
#   d365_binary                          # sets $d365: $D365_BIN, else a release build
#   start_emulator ROWS LATENCY_MS WORK APP
#       starts `d365 emulator` (ROWS seeded accounts, LATENCY_MS per request), waits until it is
#       ready, sets $emu_pid and writes WORK/conn.txt: a connection string for APP, either
#       "secret" (the Integration app: read-only, least privilege) or "certificate" (an app
#       whose application user is a System Administrator: for benchmarks that write).
#       The caller kills $emu_pid when done (trap).

d365_binary() {
  if [ -n "${D365_BIN:-}" ]; then
    d365="$D365_BIN"
  else
    cargo build --release -p d365-cli
    local target_dir
    target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
    d365="$target_dir/release/d365"
  fi
}

start_emulator() {
  local rows="$1" latency="$2" work="$3" app="$4"
  mkdir -p "$work/config"
  D365_CONFIG_DIR="$work/config" "$d365" emulator --rows "$rows" --latency-ms "$latency" \
    --ready-file "$work/ready.json" >"$work/emulator.log" 2>&1 &
  emu_pid=$!
  echo "seeding $rows accounts in the emulator (pid $emu_pid)…" >&2
  until [ -s "$work/ready.json" ]; do
    kill -0 "$emu_pid" 2>/dev/null || { cat "$work/emulator.log" >&2; return 1; }
    sleep 1
  done
  python3 - "$work/ready.json" "$app" >"$work/conn.txt" <<'PY'
import json, sys
info, kind = json.load(open(sys.argv[1])), sys.argv[2]
base = f"OrganizationUrl={info['org_url']};AzureTenant={info['tenant_id']};AzureAuthorityHost={info['authority']};SSLServerCert={info['ca_pem']}"
if kind == "certificate":
    app = next(a for a in info["apps"] if a.get("certificate"))
    print(f"{base};AuthScheme=AzureServicePrincipalCert;OAuthClientId={app['client_id']};"
          f"OAuthJWTCert={app['certificate']['combined_pem']};OAuthJWTCertType=PEMKEY_FILE")
else:
    app = next(a for a in info["apps"] if a.get("client_secret"))
    print(f"{base};AuthScheme=AzureServicePrincipal;OAuthClientId={app['client_id']};OAuthClientSecret={app['client_secret']}")
PY
}
