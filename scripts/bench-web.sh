#!/usr/bin/env bash
# Browser benchmarks in headless Chromium: builds the page's WebAssembly (the release profile,
# what serve.sh serves and users deploy; --dev for the tests' dev profile) and runs bench.html's
# suite (default: search).
# Usage: scripts/bench-web.sh [--dev] [suite]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=--release
if [ "${1:-}" = "--dev" ] || [ "${1:-}" = "--release" ]; then profile=$1; shift; fi
bash scripts/setup.sh
bash scripts/build-web.sh "$profile"
node benches/web/run.mjs "$@"
