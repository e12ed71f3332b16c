#!/usr/bin/env bash
# Every benchmark, one after the other, each printing its Markdown table (ratios are measured
# side by side inside one run of each): primitives (ping-pong in-process and cross-process,
# robust sleepers' idle CPU and takeover latency, reentrant locks), the model engines (shuttle driver overhead, loom executions), the fuzz
# targets' executions per second, and the process scenarios' operations per second at 2, 8, 32
# and 128 processes with the churn watchdog's cost per tick. Run it on a quiet machine.
# Usage: ci/bench.sh [SECONDS (2)] [FUZZ_SECONDS (20)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-2}"
fuzz_secs="${2:-20}"
echo "## ping-pong (cargo bench -p primitives --bench pingpong -- --secs $secs)"
cargo bench -q -p primitives --bench pingpong -- --secs "$secs"
echo
echo "## robust sleepers: idle CPU of 50 sleeping processes, takeover latency after SIGKILL (cargo bench -p primitives --bench sleepers)"
cargo bench -q -p primitives --bench sleepers -- --sleepers 50 --secs 10 --trials 100
echo
echo "## reentrant locks (cargo bench -p primitives --bench locks -- --secs $secs)"
cargo bench -q -p primitives --bench locks -- --secs "$secs"
echo
echo "## shuttle: our driver vs bare shuttle"
CARGO_TARGET_DIR=target/shuttle RUSTFLAGS="--cfg shuttle" cargo bench -q -p primitives --bench engines -- --iterations 1000
echo
echo "## loom: executions per scenario"
CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" cargo bench -q -p primitives --bench engines -- --secs 10
echo
echo "## fuzz targets: executions per second (cargo fuzz run -s none TARGET, ${fuzz_secs} s from the seeds)"
if ! cargo fuzz --version >/dev/null 2>&1; then cargo install cargo-fuzz --locked; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "| target | executions | exec/s |"
echo "|---|--:|--:|"
for t in mvar_ops lock_ops msg_ops shm_open any_mvar any_lock any_log; do
  mkdir -p "$work/$t"
  (cd fuzz && cargo fuzz run -s none "$t" "$work/$t" "seeds/$t" -- -max_total_time="$fuzz_secs" \
    -print_final_stats=1 -artifact_prefix="$work/" >"$work/$t.log" 2>&1) || true
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
  r=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -1)
  echo "| $t | ${n:-?} | ${r:-?} |"
done
echo
echo "## process scenarios: operations per second at 2, 8, 32, 128 processes (one sweep each)"
cargo build -q --release -p torture
bin=target/release/torture
"$bin" mvar --procs 2:128:x4 --rounds 2000 --seed 1 | sed -n '/^| scenario/,$p'
"$bin" storm --procs 2:128:x4 --kills 200 --seed 1 | sed -n '/^| scenario/,$p'
"$bin" locks --procs 2:128:x4 --duration 2s --seed 1 | sed -n '/^| scenario/,$p'
"$bin" churn --procs 2:128:x4 --duration 3s --seed 1 --json "$work/churn.json" | sed -n '/^| scenario/,$p'
echo
echo "churn watchdog: CPU per tick against the entries it checked (the slope must not grow with N):"
python3 - "$work/churn.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
runs = d.get("runs") or [d]
print("| clients | ticks | entries per tick | CPU per tick (us) | slope (ns per entry) |")
print("|--:|--:|--:|--:|--:|")
for r in runs:
    f = r.get("report", r).get("figures", {})
    w = f.get("watchdog") or {}
    print(f"| {f.get('procs')} | {w.get('ticks')} | {w.get('mean_entries', 0):.1f} | {w.get('mean_ns_per_tick', 0) / 1e3:.1f} | {w.get('slope_ns_per_entry', 0):.0f} |")
PY
