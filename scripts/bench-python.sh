#!/usr/bin/env bash
# The Python read benchmark (scripts/bench-python.py) on a release build of the extension.
#   scripts/bench-python.sh [--rows 200000 --latency-ms 50 --rounds 2]
# Uses .venv (created by scripts/test-all.sh or here), and CARGO_TARGET_DIR if set.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "pyarrow>=15" requests PowerPlatform-Dataverse-Client
export PYO3_PYTHON="$venv/bin/python" PYO3_BUILD_EXTENSION_MODULE=1
cargo build --release -p d365-python
target_dir="$("$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' \
  < <(cargo metadata --format-version 1 --no-deps))"
pkg="$target_dir/python-package-release"
rm -rf "$pkg" && mkdir -p "$pkg"
cp -r crates/d365-python/python/d365 "$pkg/d365"
cp "$target_dir/release/lib_internal.so" "$pkg/d365/_internal.abi3.so"
PYTHONPATH="$pkg" "$venv/bin/python" scripts/bench-python.py "$@"
