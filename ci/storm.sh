#!/usr/bin/env bash
# Kill storm on the shared-memory MVar: the reference must survive KILLS SIGKILLs with every
# invariant holding; then each cross-process negative control must be caught. Prints one line
# per run (kills until caught, seconds). Nightly: ci/storm.sh 5000 16
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS="${1:-300}"
PROCS="${2:-6}"
SEED="${SEED:-$(date +%s)}"
cargo build -q --release -p torture
bin=target/release/torture
status=0
echo "reference: $KILLS kills, $PROCS workers, seed $SEED"
if ! "$bin" storm --procs "$PROCS" --kills "$KILLS" --seed "$SEED"; then
  echo "ci/storm.sh: the reference FAILED" >&2
  status=1
fi
for control in no-recovery stale-waiter-count private-futex; do
  start=$(date +%s.%N)
  set +e
  # A control stops at its first detection: give it a larger budget (no-recovery needs a kill
  # inside the box's critical section, which a targeted kill catches only now and then).
  out=$("$bin" storm --procs "$PROCS" --kills "$((KILLS * 3))" --seed "$SEED" --control "$control")
  code=$?
  set -e
  end=$(date +%s.%N)
  kills=$(printf '%s\n' "$out" | sed -n 's/^storm: \([0-9]*\) kills.*/\1/p' | tail -1)
  secs=$(awk "BEGIN{printf \"%.1f\", $end - $start}")
  if [ "$code" -eq 1 ]; then
    why=$(printf '%s\n' "$out" | grep -m1 -o 'FAILED: [A-Z -]*' || true)
    echo "control $control: CAUGHT after $kills kills, ${secs}s ($why)"
  else
    echo "control $control: NOT CAUGHT (exit $code)"
    printf '%s\n' "$out"
    status=1
  fi
done
exit $status
