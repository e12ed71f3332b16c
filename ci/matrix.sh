#!/usr/bin/env bash
# Detection matrix, torture column: each negative control on real threads, side by side in one
# script, with the validator on (panic) and, for lock controls, off. Prints torture's verdict
# line per control. Usage: ci/matrix.sh [DURATION] [THREADS]. Loom and shuttle figures come
# from ci/loom.sh and ci/shuttle.sh, which print "caught after N executions" per control.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-20s}"
threads="${2:-4}"
cargo build -q -p torture --release
bin=target/release/torture
controls=$("$bin" list | awk '/^  on threads:/ {c=1; next} /^  [a-z]/ {c=0} c && /^    [a-z]/ {print $1}')
for c in $controls; do
  for lockdep in panic off; do
    case "$c:$lockdep" in
      mvar-*:off | midas-*:off) continue ;;
    esac
    line=$("$bin" threads --control "$c" --lockdep "$lockdep" --threads "$threads" --deadline 1s \
      --duration "$duration" 2>&1 | grep -E '^torture: control .* (caught|NOT CAUGHT)' || true)
    printf '%-24s lockdep=%-5s %s\n' "$c" "$lockdep" "${line#torture: control $c }"
  done
done
