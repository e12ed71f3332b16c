#!/usr/bin/env bash
# Detection matrix of the `schedule` fuzz target (fuzz/src/schedule.rs): for every negative
# control of the catalogue, executions and seconds until the first failure
#   (a) when libFuzzer's bytes choose the interleaving (empty corpus, -seed=1..RUNS), and
#   (b) under shuttle's own random scheduler, as `shuttle::check_random` (seed 1..RUNS),
# both in the same binary (built by cargo-fuzz with `--cfg shuttle`, no sanitizer), timed by the
# wall clock of the whole process. Prints a Markdown table.
#
# Usage: ci/fuzz-schedule-matrix.sh [SECONDS_PER_RUN (60)] [RUNS (3)]
#   FUZZ_LOCKDEP=off  validator off: only real deadlocks / broken invariants fail (default: the
#                     engine's Params, lock-order validator panicking)
#   SAVE_REGRESSIONS=1  copy one crash input per control to
#                     fuzz/regressions/schedule/control-<name>.<sha1 prefix> (unless that control
#                     has one), after checking it fails with FUZZ_CONTROL=<name> and passes on the
#                     reference (replayed with the default validator mode, as the replay test does)
set -euo pipefail
cd "$(dirname "$0")/.."

T=${1:-60}
RUNS=${2:-3}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

export CARGO_TARGET_DIR=fuzz/target-shuttle
RUSTFLAGS="${RUSTFLAGS:-} --cfg shuttle" cargo fuzz build -s none schedule >&2
triple=$(rustc -vV | sed -n 's/^host: //p')
bin="$CARGO_TARGET_DIR/$triple/release/schedule"
[ -x "$bin" ] || { echo "no fuzz binary at $bin" >&2; exit 1; }

# Control names, in catalogue order.
mapfile -t controls < <(awk '/^pub const CONTROLS/{on=1} on && /^\];/{on=0}
    on && match($0, /^        name: "[^"]+"/) { s = substr($0, RSTART, RLENGTH); sub(/.*name: "/, "", s); sub(/"$/, "", s); print s }' \
    primitives/src/scenarios/catalogue.rs)
[ "${#controls[@]}" -gt 0 ] || { echo "no controls found in the catalogue" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '\0' >"$work/one-byte" # random mode: byte 0 is ignored under a control

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# Replays one input through `execute` (FUZZ_SCHEDULE_EXECUTE): prints passed / failed.
replay() { # control-or-empty file
    local out
    out=$(env -u FUZZ_LOCKDEP FUZZ_CONTROL="$1" FUZZ_SCHEDULE_EXECUTE=1 RUST_BACKTRACE=0 \
        "$bin" "$2" 2>&1 || true)
    case "$out" in
        *"SCHEDULE-EXECUTE passed"*) echo passed ;;
        *"SCHEDULE-EXECUTE failed"*) echo failed ;;
        *) echo "crashed" ;;
    esac
}

echo "### schedule fuzz target: negative controls (FUZZ_LOCKDEP=${FUZZ_LOCKDEP:-panic (default)}, ≤ ${T} s per run, ${RUNS} runs)"
echo
echo "| control | libFuzzer: executions / s to first failure (seeds 1..$RUNS) | shuttle random: executions / s (seeds 1..$RUNS) |"
echo "| --- | --- | --- |"
for c in "${controls[@]}"; do
    lf=()
    sr=()
    crashes=()
    for s in $(seq 1 "$RUNS"); do
        d="$work/$c-$s"
        mkdir -p "$d/corpus" "$d/art"
        t0=$(now)
        FUZZ_CONTROL="$c" RUST_BACKTRACE=0 "$bin" -max_total_time="$T" -seed="$s" \
            -print_final_stats=1 -artifact_prefix="$d/art/" "$d/corpus" >"$d/log" 2>&1 || true
        t1=$(now)
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -n1)
        crash=$(find "$d/art" -type f | head -n1)
        if [ -n "$crash" ]; then
            lf+=("${n:-?} / $(secs "$t0" "$t1")")
            crashes+=("$crash")
        else
            lf+=("not found in ${T} s (${n:-?} execs)")
        fi

        t0=$(now)
        line=$(FUZZ_CONTROL="$c" FUZZ_SCHEDULE_RANDOM=1000000000 FUZZ_SCHEDULE_MAX_SECS="$T" \
            FUZZ_SCHEDULE_SEED="$s" RUST_BACKTRACE=0 "$bin" "$work/one-byte" 2>&1 |
            grep '^SCHEDULE-RANDOM' || true)
        t1=$(now)
        n=$(sed -n 's/.* executions=\([0-9]*\) .*/\1/p' <<<"$line")
        case "$line" in
            *result=failed*) sr+=("$n / $(secs "$t0" "$t1")") ;;
            *result=passed*) sr+=("not found in ${T} s ($n execs)") ;;
            *) sr+=("error (no report)") ;;
        esac
    done
    join() { local IFS=';'; echo "$*" | sed 's/;/; /g'; }
    echo "| $c | $(join "${lf[@]}") | $(join "${sr[@]}") |"

    if [ "${SAVE_REGRESSIONS:-0}" = 1 ] && [ "${#crashes[@]}" -gt 0 ]; then
        mkdir -p fuzz/regressions/schedule
        if ! compgen -G "fuzz/regressions/schedule/control-$c.*" >/dev/null; then
            for f in "${crashes[@]}"; do
                on_control=$(replay "$c" "$f")
                on_reference=$(replay "" "$f")
                if [ "$on_control" = failed ] && [ "$on_reference" = passed ]; then
                    h=$(sha1sum "$f" | cut -c1-12)
                    cp "$f" "fuzz/regressions/schedule/control-$c.$h"
                    echo "saved fuzz/regressions/schedule/control-$c.$h" >&2
                    break
                fi
                echo "not saved ($c): $f on control: $on_control, on reference: $on_reference" >&2
            done
        fi
    fi
done
