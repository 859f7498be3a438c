#!/usr/bin/env bash
# Browser benchmarks in headless Chromium: builds the page's WebAssembly (the dev profile, as
# the tests and serve.sh do: everything optimised, see Cargo.toml; --release for the release
# profile) and runs bench.html's suite (default: search).
# Usage: scripts/bench-web.sh [--release] [suite]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=--dev
if [ "${1:-}" = "--release" ]; then profile=--release; shift; fi
bash scripts/setup.sh
bash scripts/build-web.sh "$profile"
node benches/web/run.mjs "$@"
