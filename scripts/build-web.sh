#!/usr/bin/env bash
# Builds the page's WebAssembly into pkg/ (wasm-pack, ES module output).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fieldclip-target}"
# The dev profile optimises all dependencies (Cargo.toml) and shares its build with
# `wasm-pack test`; pass --release for the smallest, fastest binary (a cold build takes ~12 min).
wasm-pack build --target web --no-typescript "${@:---dev}"
rm -f pkg/.gitignore pkg/package.json pkg/README.md
bash scripts/stamp-shell.sh
