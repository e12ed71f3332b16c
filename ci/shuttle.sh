#!/usr/bin/env bash
# Shuttle (0.9): random, PCT, uniform random walk and bounded DFS schedules of every scenario
# through the public calls (check::shuttle::{mvar, lock, log}) on the reference primitives and
# a broken third-party MVar, and every negative control (each must be caught by at least one
# scheduler, and its failing schedule must replay). SHUTTLE_ITERATIONS (default 1000) sets the
# budget, SHUTTLE_SEED (default 1) the seed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/shuttle"
RUSTFLAGS="--cfg shuttle" cargo test -p primitives --release --test shuttle --test shm_model --test regressions -- --nocapture --test-threads=1
RUSTFLAGS="--cfg shuttle" cargo test -p third-party-checks --release --test models -- --nocapture
