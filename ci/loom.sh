#!/usr/bin/env bash
# Loom: exhaustive exploration (preemption bound 3 by default) of every scenario through the
# public calls (check::loom::{mvar, lock, log}, each scenario in a child process) on the
# reference primitives and a broken third-party MVar, and of every negative control (each must
# be caught).
# LOOM_PREEMPTION_BOUND=2 makes it quicker; the nightly job may raise it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
RUSTFLAGS="--cfg loom" cargo test -p primitives --release --test loom --test shm_model -- --nocapture --test-threads=1
RUSTFLAGS="--cfg loom" cargo test -p third-party-checks --release --test models -- --nocapture
