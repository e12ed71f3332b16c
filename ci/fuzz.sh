#!/usr/bin/env bash
# Fuzzing: installs cargo-fuzz if missing, builds every target, runs each for SECONDS (default
# 30; the nightly job gives more, e.g. ci/fuzz.sh 1800), then replays fuzz/regressions and the
# seed corpora through `cargo test`. Stable toolchain, no sanitizer (-s none); with nightly,
# `cargo +nightly fuzz run TARGET` adds AddressSanitizer.
# A finding fails the job; libFuzzer's crash input is left in fuzz/artifacts/TARGET/ — minimise
# it (`cargo fuzz tmin -s none TARGET FILE`) and commit it to fuzz/regressions/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
fuzz_one() { # target, extra env...
  local t="$1"
  mkdir -p "$work/corpus/$t" "fuzz/artifacts/$t"
  echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
  if ! "${@:2}" cargo fuzz run -s none "${FUZZ_FLAGS[@]}" "$t" "$work/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" 2>"$work/$t.log"; then
    echo "FINDING in $t:"; tail -40 "$work/$t.log"
    status=1
  else
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|cov: " "$work/$t.log" | tail -4 || true
  fi
}
FUZZ_FLAGS=()
cargo fuzz build -s none mvar_ops lock_ops msg_ops shm_open any_mvar any_lock any_log 2>/dev/null || cargo fuzz build -s none
for t in mvar_ops lock_ops msg_ops shm_open any_mvar any_lock any_log; do
  fuzz_one "$t" env
done
# The schedule target drives the scenario catalogue under shuttle: a separate --cfg shuttle build.
FUZZ_FLAGS=(--target-dir fuzz/target-shuttle)
fuzz_one schedule env RUSTFLAGS="--cfg shuttle"
echo "== replay fuzz/regressions and the seeds"
cargo test -p primitives --test regressions
CARGO_TARGET_DIR=target/shuttle RUSTFLAGS="--cfg shuttle" cargo test -p primitives --test regressions
exit $status
