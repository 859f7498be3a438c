#!/usr/bin/env bash
# Every test: native (cargo test), the wasm API in headless Chromium on WebGPU and CPU and in
# headless Firefox on the CPU (wasm-pack test), and the page end to end (node's test runner
# driving Chromium, Firefox and WebKitGTK over WebDriver; tests/e2e/engines.test.mjs runs the core
# flows in all three).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fieldclip-target}"
bash scripts/setup.sh

echo "== native tests"
cargo test

echo "== browser tests (headless Chromium: WebGPU and CPU)"
# Chromium's profile goes to TMPDIR; wasm-bindgen's runner leaves it behind (100-150 MB a run),
# so give the run its own folder and empty it afterwards.
browser_tmp="$CARGO_TARGET_DIR/tmp/wasm-pack-test-browser"
rm -rf "$browser_tmp" && mkdir -p "$browser_tmp"
TMPDIR="$browser_tmp" WASM_BINDGEN_TEST_TIMEOUT=300 wasm-pack test --headless --chrome
rm -rf "$browser_tmp" && mkdir -p "$browser_tmp"
echo "== browser tests (headless Firefox: CPU; this Firefox has no WebGPU, so those tests are skipped)"
TMPDIR="$browser_tmp" WASM_BINDGEN_TEST_TIMEOUT=300 wasm-pack test --headless --firefox -- -- --skip webgpu
rm -rf "$browser_tmp"

echo "== page end to end"
bash scripts/build-web.sh
# The hostile corpus (tests/hostile/corpus.rs) for tests/e2e/corpus.test.mjs.
export FIELDCLIP_HOSTILE_CORPUS="$CARGO_TARGET_DIR/tmp/hostile-page-corpus"
cargo run --quiet --example hostile_corpus -- "$FIELDCLIP_HOSTILE_CORPUS"
# The tiny model's q8 pack, for tests/e2e/relaxed.test.mjs (relaxed SIMD against SIMD128).
export FIELDCLIP_Q8_PACK="$CARGO_TARGET_DIR/tmp/tiny-q8.fcpk"
cargo run --quiet --bin fieldclip -- pack --weights tests/data/tiny/model.safetensors --dtype q8 -o "$FIELDCLIP_Q8_PACK"
# Never hangs CI: each test file has 10 minutes, the whole run 25 (every WebDriver and HTTP call
# in the tests has its own timeout, and the browser is killed when a test ends).
timeout --kill-after=30 1500 node --test --test-timeout=600000 tests/e2e/
