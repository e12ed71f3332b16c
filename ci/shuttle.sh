#!/usr/bin/env bash
# Shuttle: random, PCT and bounded DFS schedules of every scenario against the reference
# primitives, and every negative control (each must be caught by at least one scheduler, and
# its failing schedule must replay). SHUTTLE_ITERATIONS (default 1000) sets the budget.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/shuttle"
RUSTFLAGS="--cfg shuttle" cargo test -p primitives --release --test shuttle --test shm_model --test regressions -- --nocapture --test-threads=1
