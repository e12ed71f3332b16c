#!/usr/bin/env bash
# The nightly torture job: every process scenario at a sweep of process counts, with freezes,
# then the thread catalogue, each run writing JSON + JUnit into REPORTS. A shard runs every
# N-th (scenario, processes) pair of the sweep, so a CI matrix of N shards covers it all.
# Usage: ci/torture-nightly.sh [REPORTS_DIR] [SHARD/SHARDS] [THREADS_DURATION]
#   e.g. ci/torture-nightly.sh reports 0/4 30m   (one shard of four)
# Exit: 0 every run passed, 1 a run failed (its report says why), 2 usage/setup error.
set -euo pipefail
cd "$(dirname "$0")/.."
reports="${1:-target/nightly}"
shard="${2:-0/1}"
threads_for="${3:-5m}"
i="${shard%/*}"
n="${shard#*/}"
if ! [[ "$i" =~ ^[0-9]+$ && "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$i" -ge "$n" ]; then
  echo "ci/torture-nightly.sh: bad shard $shard (want I/N with 0 <= I < N)" >&2
  exit 2
fi
mkdir -p "$reports"
cargo build -q --release -p torture
bin=target/release/torture
seed="${SEED:-$(date +%s)}"
status=0
k=0
run() { # name, then torture arguments
  local name="$1"; shift
  if [ $((k % n)) -eq "$i" ]; then
    echo "== [$shard] torture $* (seed $seed)"
    set +e
    "$bin" "$@" --seed "$seed" --json "$reports/$name.json" --junit "$reports/$name.xml"
    local code=$?
    set -e
    if [ "$code" -ne 0 ]; then status=1; fi
  fi
  k=$((k + 1))
}
for procs in 2 8 32 128; do
  run "mvar-p$procs" mvar --procs "$procs" --rounds 200 --stop-rate 20 --stop-max 300ms
  run "storm-p$procs" storm --procs "$procs" --kills $((procs * 100))
done
run threads threads --duration "$threads_for" --threads 8
exit $status
