#!/usr/bin/env bash
# Installs what building and testing fieldclip needs on Debian, skipping what is already there:
# the wasm32 target (and nightly Rust for the threaded page build), the three browser engines the
# tests drive (Debian's chromium + chromium-driver, firefox-esr, and WebKitGTK's MiniBrowser with
# WebKitWebDriver under xvfb), geckodriver, wasm-pack and the wasm-bindgen CLI matching
# Cargo.lock (all three built from crates.io; nothing prebuilt is downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

# The threaded page build (scripts/build-web.sh) rebuilds std with atomics: nightly Rust with its
# source and the wasm32 target. Skipped when FIELDCLIP_NO_THREADS=1.
if [ "${FIELDCLIP_NO_THREADS:-}" != 1 ]; then
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  rustup component list --toolchain nightly --installed | grep -q '^rust-src' || rustup component add rust-src --toolchain nightly
  rustup target list --toolchain nightly --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown --toolchain nightly
fi

MINIBROWSER=/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v python3 >/dev/null \
  || ! command -v firefox-esr >/dev/null || ! command -v WebKitWebDriver >/dev/null || ! command -v xvfb-run >/dev/null \
  || [ ! -x "$MINIBROWSER" ]; then
  apt-get update -qq
  # python3: scripts/make-torch-checkpoint.py writes the PyTorch checkpoint the tests load.
  # xvfb: WebKitGTK's MiniBrowser has no headless mode; the tests run it in a virtual display.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver python3 \
    firefox-esr webkit2gtk-driver xvfb xauth >/dev/null
fi

GECKODRIVER_VERSION=0.37.1
if [ "$(geckodriver --version 2>/dev/null | head -1 | awk '{print $2}')" != "$GECKODRIVER_VERSION" ]; then
  # npm's geckodriver downloads a prebuilt binary; crates.io has the source.
  cargo install geckodriver --version "$GECKODRIVER_VERSION"
fi

WASM_PACK_VERSION=0.15.1
if [ "$(wasm-pack --version 2>/dev/null || true)" != "wasm-pack $WASM_PACK_VERSION" ]; then
  cargo install wasm-pack --version "$WASM_PACK_VERSION"
fi

# wasm-pack only uses the wasm-bindgen on PATH when it equals Cargo.lock's version.
BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $BINDGEN_VERSION" ]; then
  # No --locked: one of its pinned dependencies is missing from the registry mirror.
  cargo install wasm-bindgen-cli --version "$BINDGEN_VERSION"
fi
