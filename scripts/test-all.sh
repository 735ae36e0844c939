#!/usr/bin/env bash
# Every test of d365 — Rust and Python — on a fresh machine, with every set-up step done here:
# Chromium + chromedriver (the desktop sign-in test), gnome-keyring + D-Bus (the OS keyring
# test), PostgreSQL's server binaries (the sync-to-PostgreSQL tests), Azurite (the Azure Blob
# tests), a Python virtual environment with the test packages, the Python extension built from
# the same cargo target directory as the Rust tests (debug; nothing is compiled twice).
#
#   scripts/test-all.sh            # fmt, clippy, cargo test, the extension, ruff, pytest, keyring
#   D365_SKIP_LINT=1 scripts/test-all.sh   # skip fmt/clippy/ruff (quicker local runs)
#
# .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL=0

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (rustup toolchain)" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# What the tests need besides the Rust toolchain is installed in two background jobs (system
# packages then Azurite; the Python test packages) while the workspace compiles: they are mostly
# downloads, and the build is mostly CPU. Each job writes a log, shown when it is waited for; a
# job that fails stops this script there.
setup_logs="$(mktemp -d)"
system_job="" python_job=""
# On the way out (a failed build, say), jobs still running are stopped and their logs removed.
trap 'kill $system_job $python_job 2>/dev/null || true; rm -rf "$setup_logs"' EXIT
phase() { printf '== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
wait_for() { # wait_for NAME PID: show the job's log, fail if it failed
  local status=0
  wait "$2" || status=$?
  phase "set-up job '$1' ended (exit $status)"
  cat "$setup_logs/$1.log"
  if [ "$status" -ne 0 ]; then
    echo "the set-up job '$1' failed (its log is above)" >&2
    exit "$status"
  fi
}

system_packages() {
  set -e
  # The desktop sign-in test (crates/d365-cli/tests/browser_login.rs) drives a real headless
  # Chromium through chromedriver: Debian's chromium and chromium-driver.
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "== installing chromium and chromium-driver (apt-get)"
    apt_install chromium chromium-driver
  fi
  chromium --version
  chromedriver --version
  # The OS keyring test (crates/d365-auth/tests/auth/os_keyring.rs) needs a Secret Service on a
  # D-Bus session bus: Debian's gnome-keyring, and dbus for dbus-run-session.
  if ! command -v gnome-keyring-daemon >/dev/null 2>&1 || ! command -v dbus-run-session >/dev/null 2>&1; then
    echo "== installing gnome-keyring and dbus (apt-get)"
    apt_install gnome-keyring dbus
  fi
  # The PostgreSQL sync tests (crates/d365-sync/tests/sync/postgres.rs, crates/d365-cli/tests/
  # cli/sync_postgres.rs) start throwaway clusters with Debian's server binaries (initdb, pg_ctl).
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "== installing postgresql (apt-get)"
    apt_install postgresql
  fi
  # The Spark data source test (crates/d365-python/tests/test_spark.py) runs pyspark 4 in local
  # mode, which needs a Java 17+ runtime: Debian's headless OpenJDK.
  if ! command -v java >/dev/null 2>&1; then
    echo "== installing openjdk-17-jre-headless (apt-get)"
    apt_install openjdk-17-jre-headless
  fi
  # The Azure Blob Storage tests (crates/d365-sync/tests/sync/export_azure.rs) start Azurite,
  # Microsoft's storage emulator, from npm (Node.js and npm: Debian's packages) into .tools/.
  if ! command -v npm >/dev/null 2>&1; then
    echo "== installing nodejs and npm (apt-get)"
    apt_install nodejs npm
  fi
  if [ ! -x .tools/node_modules/.bin/azurite-blob ]; then
    echo "== installing azurite (npm)"
    npm install --prefix .tools --no-audit --no-fund --silent azurite@3.35.0
  fi
}
# Each of these makes its tests fail, not skip, when what they need is missing.
export D365_PG_TEST=require D365_SPARK_TEST=require D365_AZURE_TEST=require

# Python: a virtual environment (made here, before the build: pyo3's build reads its
# interpreter) with the packages the Python tests use (deltalake, the independent reader of our
# Delta tables; moto, the S3 server of the object-store tests; and pyspark, the local Spark of
# the data source test), installed in the background.
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1 || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "== installing python3 with venv (apt-get)"
  apt_install python3 python3-venv python3-pip
  python=python3
fi
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" --version
python_packages() {
  set -e
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "pytest>=8" "pyarrow>=15" "pandas>=2" "polars>=1.3" "duckdb>=1.1" "sqlalchemy>=2" "ruff>=0.6" "mypy>=1.10" "tomli; python_version < '3.11'" \
    "moto[server]>=5" "deltalake>=1.1" "pyspark>=4.0,<4.1"
  echo "Python test packages installed"
}
# The object-store export tests (crates/d365-sync/tests/export_s3.rs) start moto's S3 server
# with this interpreter; D365_S3_TEST=require makes them fail, not skip, without it.
export D365_PYTHON="$venv/bin/python" D365_S3_TEST=require

phase "set-up jobs started: system packages, Python test packages"
system_packages >"$setup_logs/system.log" 2>&1 &
system_job=$!
python_packages >"$setup_logs/python.log" 2>&1 &
python_job=$!

# The extension links against no libpython (it is loaded by one); the same settings for every
# cargo command below, so pyo3 is built once.
export PYO3_PYTHON="$venv/bin/python"
export PYO3_BUILD_EXTENSION_MODULE=1

if [ -z "${D365_SKIP_LINT:-}" ]; then
  phase "cargo fmt --check"
  cargo fmt --all -- --check
  # Clippy's lints come with the one build of the tests: clippy-driver is the compiler of the
  # workspace's own crates (which is how `cargo clippy` runs it) and -D warnings is passed the
  # way `cargo clippy -- -D warnings` passes it. The dependencies are then compiled once, not
  # once checked for clippy and again for the tests (that saved about 13 of a cold run's
  # minutes). Every cargo command below keeps these settings, so nothing is rebuilt.
  export RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
fi

phase "build every target (lib, bins, tests, benches, examples)${RUSTC_WORKSPACE_WRAPPER:+ with clippy -D warnings}"
build_log="$(mktemp)"
cargo test --workspace --all-targets --no-run 2>&1 | tee "$build_log"
# A safety net should clippy-driver ever take its arguments another way: any warning fails.
if grep -Eq 'generated [0-9]+ warnings?' "$build_log"; then
  echo "the build has warnings (see above): fix them (cargo clippy --workspace --all-targets)" >&2
  exit 1
fi
rm -f "$build_log"

wait_for python "$python_job"
python_job=""
wait_for system "$system_job"
system_job=""
if [ -z "${D365_SKIP_LINT:-}" ]; then
  phase "ruff (Python lint and format)"
  "$venv/bin/ruff" check --config crates/d365-python/pyproject.toml crates/d365-python scripts
  "$venv/bin/ruff" format --check --config crates/d365-python/pyproject.toml crates/d365-python scripts
  phase "mypy --strict (the package and its stubs)"
  (cd crates/d365-python/python && "$venv/bin/mypy" --config-file ../pyproject.toml d365)
fi

phase "cargo test --workspace"
cargo test --workspace

# Without a session bus the workspace run skipped os_keyring (it says so). Here it runs for real:
# a private bus, gnome-keyring started with a throwaway keyring (in a temporary XDG_DATA_HOME)
# unlocked by a throwaway password, and D365_KEYRING_TEST=require so that it fails, not skips.
# (`--workspace --test auth os_keyring`, not `-p d365-auth`: the same feature set as above, nothing rebuilt.)
phase "OS keyring test on a private D-Bus session (gnome-keyring)"
keyring_data="$(mktemp -d)"
XDG_DATA_HOME="$keyring_data" dbus-run-session -- sh -c \
  'echo -n ci-keyring-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null &&
   D365_KEYRING_TEST=require cargo test --workspace --test auth os_keyring'
rm -rf "$keyring_data"

phase "the Python extension (debug build, same target directory)"
# `--workspace`, not `-p d365-python`: features are unified over the packages a command selects,
# and only the whole workspace gives the set the tests were built with (DataFusion is not
# compiled a second time; only the extension itself is linked).
cargo build --workspace
target_dir="$("$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' \
  < <(cargo metadata --format-version 1 --no-deps))"
pkg="$target_dir/python-package"
rm -rf "$pkg"
mkdir -p "$pkg"
cp -r crates/d365-python/python/d365 "$pkg/d365"
cp "$target_dir/debug/lib_internal.so" "$pkg/d365/_internal.abi3.so"
# What an installed wheel carries besides the code: its metadata and entry points (the
# SQLAlchemy dialect), from pyproject.toml.
"$venv/bin/python" - "$pkg" <<'PY'
import pathlib, sys
try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib
project = tomllib.loads(pathlib.Path("crates/d365-python/pyproject.toml").read_text())["project"]
info = pathlib.Path(sys.argv[1]) / "d365-0.0.0.dist-info"
info.mkdir()
(info / "METADATA").write_text("Metadata-Version: 2.1\nName: d365\nVersion: 0.0.0\n")
lines = []
for group, entries in project.get("entry-points", {}).items():
    lines.append(f"[{group}]")
    lines += [f"{name} = {target}" for name, target in entries.items()]
(info / "entry_points.txt").write_text("\n".join(lines) + "\n")
PY

phase "pytest (crates/d365-python/tests)"
D365_CLI="$target_dir/debug/d365" PYTHONPATH="$pkg" "$venv/bin/python" -m pytest -q -p no:cacheprovider crates/d365-python/tests
