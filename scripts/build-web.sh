#!/usr/bin/env bash
# Builds the page's WebAssembly (wasm-pack, ES module output):
#   pkg/          single-threaded, runs anywhere (stable Rust, SIMD128);
#   pkg-threads/  burn's CPU backend on every core (Web Workers + shared memory) and relaxed
#                 SIMD (int8 dot products, fused multiply-add: src/model/packed.rs). Built with
#                 nightly Rust, because std must be rebuilt with atomics; used by the page only
#                 where it is cross-origin isolated (scripts/serve.py and sw.js send the headers)
#                 and the browser has relaxed SIMD (www/wasm.js);
#   pkg-threads-simd128/  the same on every core with SIMD128 only, for browsers with shared
#                 memory but no relaxed SIMD (Safari and every browser on an iPad: WebKit).
# Pass --release for the smallest, fastest binaries (a cold build takes ~12 min each).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fieldclip-target}"
# The dev profile optimises all dependencies (Cargo.toml) and shares its build with
# `wasm-pack test`.
wasm-pack build --target web --no-typescript "${@:---dev}"
rm -f pkg/.gitignore pkg/package.json pkg/README.md

if [ "${FIELDCLIP_NO_THREADS:-}" = 1 ]; then
  echo "FIELDCLIP_NO_THREADS=1: skipping the threaded builds (the page stays single-threaded)"
  rm -rf pkg-threads pkg-threads-simd128
else
  # RUSTFLAGS replaces .cargo/config.toml's wasm32 flags, so SIMD128 is repeated here. Relaxed
  # SIMD is the crate feature `relaxed-simd` (our kernels only: burn's SIMD crate does not
  # build with the target feature on everywhere); where a browser lacks it, the page uses
  # pkg-threads-simd128/. The memory may grow to 4 GiB (the default maximum of shared memory is
  # 1 GiB, too small for a full-size f32 model and its activations). Their own target dir:
  # nightly's artefacts never mix with stable's.
  threaded_build() { # OUT_DIR FEATURES
    RUSTUP_TOOLCHAIN=nightly CARGO_TARGET_DIR="$CARGO_TARGET_DIR-threads" \
      RUSTFLAGS='-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 -C link-arg=--max-memory=4294967296' \
      wasm-pack build --target web --no-typescript --out-dir "$1" "${build_args[@]}" -- \
      --no-default-features --features "$2" -Z build-std=panic_abort,std
    rm -f "$1/.gitignore" "$1/package.json" "$1/README.md"
    # wasm-bindgen-rayon's worker imports its package as a directory ('../../..'), which only a
    # bundler resolves; a static server needs the module's file name.
    sed -i "s|import('../../..')|import('../../../fieldclip.js')|" "$1"/snippets/wasm-bindgen-rayon-*/src/workerHelpers.js
  }
  build_args=("${@:---dev}")
  threaded_build pkg-threads threads,relaxed-simd
  threaded_build pkg-threads-simd128 threads
fi
# A release build drops the modules' function names (a trace's frame names; panic messages keep
# their text): 16–23 % smaller downloads. The dev build keeps them for debugging, and so does
# FIELDCLIP_KEEP_NAMES=1 (benches/web/profile.mjs reads them).
if [[ " $* " == *" --release "* && "${FIELDCLIP_KEEP_NAMES:-}" != 1 ]]; then
  node scripts/strip-wasm-names.mjs pkg/fieldclip_bg.wasm $([ -d pkg-threads ] && echo pkg-threads/fieldclip_bg.wasm pkg-threads-simd128/fieldclip_bg.wasm)
fi
bash scripts/stamp-shell.sh
