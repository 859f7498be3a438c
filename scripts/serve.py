#!/usr/bin/env python3
"""Serves the page on 127.0.0.1 like `python3 -m http.server`, plus the two headers that make it
cross-origin isolated (COOP same-origin, COEP require-corp): the threaded WebAssembly build needs
shared memory, which browsers only give to isolated pages. Usage: serve.py PORT"""
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class IsolatedHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm", ".mjs": "text/javascript"}

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(IsolatedHandler, directory="."))
    print(f"serving on http://127.0.0.1:{port}/", flush=True)
    server.serve_forever()
