#!/bin/bash -eu
# Builds every fuzz target into $OUT for ClusterFuzzLite (in its container: $SRC/project is the
# repository, $SANITIZER is `address` and cargo is nightly), with a seed corpus per target
# zipped from fuzz/seeds/<target>/ as $OUT/<target>_seed_corpus.zip.
#
# The shuttle-scheduled target (`schedule`: libFuzzer's bytes choose shuttle's interleavings)
# needs its own build with `--cfg shuttle`, in its own target folder.
#
# Outside a container (.ci/run proves every target builds): SRC and OUT are temporary folders,
# the repository is $SRC/project (a link), and without $SANITIZER the build is the stable
# toolchain's `-s none` (no sanitizer, debug assertions on), exactly as ci/fuzz.sh builds.
project="$SRC/project"
cd "$project"
if [ -n "${SANITIZER:-}" ]; then
  sanitizer=(-O -s "$SANITIZER")
else
  # As ci/fuzz.sh builds (debug assertions on, no sanitizer): the same artifacts, reused.
  sanitizer=(-s none)
fi
triple=$(rustc -vV | sed -n 's/^host: //p')
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^primitives-fuzz$\|^fuzz$' || true)
[ -n "$targets" ] || { echo "build.sh: no fuzz targets in fuzz/Cargo.toml" >&2; exit 1; }
cargo fuzz build "${sanitizer[@]}"
RUSTFLAGS="${RUSTFLAGS:-} --cfg shuttle" cargo fuzz build "${sanitizer[@]}" \
  --target-dir fuzz/target-shuttle schedule
for t in $targets; do
  if [ "$t" = schedule ]; then dir=fuzz/target-shuttle; else dir=fuzz/target; fi
  bin="$dir/$triple/release/$t"
  [ -x "$bin" ] || { echo "build.sh: $t was not built ($bin)" >&2; exit 1; }
  cp "$bin" "$OUT/$t"
  if [ -d "fuzz/seeds/$t" ] && [ -n "$(ls -A "fuzz/seeds/$t")" ]; then
    # (python3's zipfile: in the builder image and here, unlike `zip`.)
    (cd "fuzz/seeds/$t" && python3 -m zipfile -c "$OUT/${t}_seed_corpus.zip" ./*)
  fi
done
echo "build.sh: $(echo $targets | wc -w) targets in $OUT"
