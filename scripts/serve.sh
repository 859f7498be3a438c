#!/usr/bin/env bash
# Sets up, builds and serves the page on http://127.0.0.1:${PORT:-8000}/
# Put weights at models/model.safetensors to load them with one click (or pick a file on the page).
# Serves the release build, what users get when it is deployed (the dev build is ~4x slower per
# photo on the CPU, #17); `scripts/serve.sh --dev` serves the dev build, quicker to rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-web.sh "${@:---release}"
PORT="${PORT:-8000}"
echo "fieldclip: open http://127.0.0.1:$PORT/ (Ctrl-C stops the server)"
exec python3 scripts/serve.py "$PORT"
