// The service worker: keeps the app shell (page, scripts, WebAssembly, icons) in a versioned
// cache so the page opens with no network. Models are not cached here: the page stores them
// itself (www/storage.js), with an integrity hash and a panel to delete them.
//
// pkg/shell.js (written by scripts/stamp-shell.sh) names the files and their content hash. The
// browser re-fetches sw.js and its imports when the page is opened; a changed hash installs a
// new worker, which waits until the page asks it to take over ("new version ready, reload").
importScripts('./pkg/shell.js');

const CACHE = `fieldclip-shell-${self.SHELL_VERSION}`;
const SHELL = new Set(self.SHELL_FILES.map((f) => new URL(f, self.registration.scope).href));
const SCOPE = new URL(self.registration.scope);
const INDEX = new URL('./index.html', SCOPE).href;

self.addEventListener('install', (event) => {
  // `reload` skips the HTTP cache, so a new version never precaches an old file.
  event.waitUntil((async () => {
    try {
      const cache = await caches.open(CACHE);
      await cache.addAll([...SHELL].map((url) => new Request(url, { cache: 'reload' })));
    } catch (e) {
      // The install fails and this worker is dropped; the page can only see that, so tell it why
      // (QuotaExceededError: the device's storage is full).
      await caches.delete(CACHE);
      for (const client of await self.clients.matchAll({ includeUncontrolled: true })) {
        client.postMessage({ installFailed: e.name || 'Error', detail: e.message || String(e) });
      }
      throw e;
    }
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('fieldclip-shell-') && name !== CACHE) await caches.delete(name);
    }
    // The first install takes over the open page at once, so it works offline without a reload.
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') self.skipWaiting();
  if (event.data === 'version') event.source.postMessage({ version: self.SHELL_VERSION });
});

/**
 * The same response with the two headers that make the page cross-origin isolated, so the
 * threaded WebAssembly (pkg-threads/, shared memory) can run even where the static host sends
 * no such headers. Only same-origin shell files pass through here.
 */
function isolated(response) {
  if (!response || response.type === 'opaque' || response.status === 0) return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  // The app's page, with or without `index.html` and with any parameters (?weights=…).
  const isApp = request.mode === 'navigate' && url.origin === SCOPE.origin && [SCOPE.pathname, `${SCOPE.pathname}index.html`].includes(url.pathname);
  const key = isApp ? INDEX : url.href;
  if (!SHELL.has(key)) return; // models, config files: straight to the network
  event.respondWith((async () => {
    const cached = await caches.match(key, { cacheName: CACHE });
    return isolated(cached || await fetch(request));
  })());
});
