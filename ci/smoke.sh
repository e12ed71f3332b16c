#!/usr/bin/env bash
# Smoke of the cross-process torture: `torture all` (every process scenario with its defaults),
# its JUnit report read back by an independent JUnit parser (junitparser, from PyPI), and the
# nightly workflow checked by actionlint.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p torture
out=target/smoke
mkdir -p "$out"
target/release/torture all --json "$out/all.json" --junit "$out/all.xml"
python3 -m pip install -q --disable-pip-version-check junitparser >/dev/null 2>&1 ||
  python3 -m pip install -q --disable-pip-version-check --break-system-packages junitparser >/dev/null
python3 - "$out/all.xml" <<'PY'
import sys
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
cases = [c for suite in xml for c in suite]
failed = [c.name for c in cases if not c.is_passed]
print(f"junit: {len(cases)} cases, {len(failed)} failed {failed}")
sys.exit(1 if failed or not cases else 0)
PY
bash ci/lint-workflows.sh
