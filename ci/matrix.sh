#!/usr/bin/env bash
# The detection matrix: every engine (loom, shuttle's four schedulers, proptest, libFuzzer, real
# threads with and without chaos, every process scenario) against every negative control and
# the correct implementations; `torture matrix` runs it all and writes matrix.json, matrix.md
# and matrix.svg to --out (default target/matrix). Installs cargo-fuzz if missing.
# Usage: ci/matrix.sh [torture matrix flags]   e.g. ci/matrix.sh --small
#        ci/matrix.sh --full --shard 2/4 --out matrix/2; ci/matrix.sh --merge shards/*/matrix.json
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo build -q --release -p torture
exec "${CARGO_TARGET_DIR:-target}/release/torture" matrix "$@"
