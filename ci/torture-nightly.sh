#!/usr/bin/env bash
# The nightly torture job: each process scenario swept over process counts by torture itself
# (`--procs 2:128:x4` = 2, 8, 32, 128), with freezes and kills, then the thread catalogue; each
# command writes one JSON report (every run + the summary table) and one JUnit report (a case
# per run) into REPORTS. Sharding is torture's `--shard I/N` (1-based): of every sweep this job
# runs the counts whose index is I-1 mod N, so a CI matrix of N shards covers every sweep once.
# The runs that are not sweeps (pipe: always 2 processes; threads) belong to shard 1.
# Usage: ci/torture-nightly.sh [REPORTS_DIR] [I/N] [THREADS_DURATION]
#   e.g. ci/torture-nightly.sh reports 1/4 30m   (shard 1 of 4)
# Exit: 0 every run passed, 1 a run failed (its report says why), 2 usage/setup error.
set -euo pipefail
cd "$(dirname "$0")/.."
reports="${1:-target/nightly}"
shard="${2:-1/1}"
threads_for="${3:-5m}"
mkdir -p "$reports"
cargo build -q --release -p torture
bin="${CARGO_TARGET_DIR:-target}/release/torture"
seed="${SEED:-$(date +%s)}"
status=0
run() { # name, then torture arguments; keeps the worst exit code (2 over 1 over 0)
  local name="$1"; shift
  echo "== torture $* --seed $seed"
  rm -f "$reports/$name.json" "$reports/$name.xml"
  set +e
  "$bin" "$@" --seed "$seed" --json "$reports/$name.json" --junit "$reports/$name.xml"
  local code=$?
  set -e
  if [ "$code" -eq 2 ] || { [ "$code" -eq 1 ] && [ "$status" -eq 0 ]; }; then status=$code; fi
  if [ "$code" -eq 2 ] && [ ! -s "$reports/$name.json" ]; then
    exit 2 # nothing ran: a usage error (a bad shard), the same for every command
  fi
}
run mvar mvar --procs 2:128:x4 --rounds 200 --stop-rate 20 --stop-max 300ms --shard "$shard"
run mvar-kills mvar --procs 2:128:x4 --rounds 2000 --kill-rate 20 --chaos --shard "$shard"
run storm storm --procs 2:128:x4 --kills 3000 --shard "$shard"
run churn churn --procs 2:128:x4 --duration 60s --kill-rate 20 --stop-rate 10 --shard "$shard"
run locks locks --procs 2:128:x4 --duration 20s --kill-rate 5 --stop-rate 5 --shard "$shard"
if [ "${shard%%/*}" = 1 ]; then
  run pipe pipe --requests 2000
  run fork fork --forks 20000 --duration 60s
  run threads threads --duration "$threads_for" --threads 8
fi
exit $status
