#!/usr/bin/env bash
# The main job: the scenario catalogue on real threads. Usage: ci/torture.sh [DURATION] [THREADS]
# (nightly: ci/torture.sh 30m 8). Exit 0 pass, 1 bug found (report printed), 2 usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -p torture --release -- threads --duration "${1:-20s}" --threads "${2:-4}"
