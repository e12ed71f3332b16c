#!/usr/bin/env bash
# The README's test command: every crate's tests on the default (std) build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
