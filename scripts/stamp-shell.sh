#!/usr/bin/env bash
# Writes pkg/shell.js: the list of files the service worker precaches (the app shell) and a
# version = hash of their contents. sw.js imports it, so any changed file makes the browser
# install a new service worker and the page announces "new version ready".
# Run by build-web.sh; run it again after editing a file of the page by hand.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
# The benchmark page (bench.html, www/bench*.js) is not part of the app.
files=(index.html manifest.webmanifest $(ls www/* icons/*.png | grep -v '^www/bench' | sort) pkg/fieldclip.js pkg/fieldclip_bg.wasm)
# The threaded builds, when there are: their glue, wasm and wasm-bindgen-rayon's worker script.
for build in pkg-threads pkg-threads-simd128; do
  if [ -f $build/fieldclip.js ]; then
    files+=($build/fieldclip.js $build/fieldclip_bg.wasm $(cd $build && find snippets -name '*.js' | sort | sed "s|^|$build/|"))
  fi
done
version=$(cat "${files[@]}" | sha256sum | cut -c1-16)
{
  echo "// Written by scripts/stamp-shell.sh: what sw.js precaches, and its version."
  echo "self.SHELL_VERSION = '$version';"
  printf 'self.SHELL_FILES = [\n'
  printf "  './%s',\n" "${files[@]}"
  printf '];\n'
} > pkg/shell.js
echo "app shell version $version (${#files[@]} files)"
