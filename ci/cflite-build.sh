#!/usr/bin/env bash
# Runs .clusterfuzzlite/build.sh outside its container, as ClusterFuzzLite would inside it: SRC
# and OUT are temporary folders (the repository linked as $SRC/project), no $SANITIZER (the
# stable toolchain, -s none, the artifacts ci/fuzz.sh builds). Checks that every fuzz target of
# fuzz/Cargo.toml is in $OUT, with its seed corpus zipped, then removes the folders.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then cargo install cargo-fuzz --locked; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/out"
ln -s "$PWD" "$work/src/project"
SRC="$work/src" OUT="$work/out" bash .clusterfuzzlite/build.sh
status=0
for t in $(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^primitives-fuzz$'); do
  if [ ! -x "$work/out/$t" ]; then
    echo "cflite-build: $t missing from \$OUT" >&2
    status=1
  elif [ -d "fuzz/seeds/$t" ] && ! python3 -m zipfile -l "$work/out/${t}_seed_corpus.zip" >/dev/null 2>&1; then
    echo "cflite-build: ${t}_seed_corpus.zip missing or unreadable" >&2
    status=1
  else
    echo "cflite-build: $t ($(python3 -m zipfile -l "$work/out/${t}_seed_corpus.zip" 2>/dev/null | tail -n +2 | wc -l) seeds)"
  fi
done
exit $status
