// The service worker from the page's side: registers sw.js next to index.html (so any static
// host and sub-path works), reports when the app is ready offline, announces a new version and
// switches to it when the user asks.

/**
 * `onOfflineReady()`: the app shell is on the device. `onUpdate(apply)`: a new version is
 * installed and waiting; `apply()` switches to it and reloads. `onVersion(v)`: the version
 * serving this page. Returns a sentence when service workers cannot be used here.
 */
export async function registerServiceWorker({ onOfflineReady, onUpdate, onVersion }) {
  if (!('serviceWorker' in navigator)) {
    return 'This browser cannot keep the app for offline use (no service workers; the page must be served over https or from localhost).';
  }
  const sw = navigator.serviceWorker;
  sw.addEventListener('message', (event) => { if (event.data && event.data.version) onVersion(event.data.version); });
  let switching = false;
  // The first install takes over the page too (clients.claim); only a switch the user asked for reloads.
  sw.addEventListener('controllerchange', () => {
    if (switching) location.reload();
    else sw.controller.postMessage('version');
  });
  if (sw.controller) sw.controller.postMessage('version');

  let registration;
  try {
    // `none`: sw.js and the file list it imports are always checked against the server.
    registration = await sw.register('sw.js', { updateViaCache: 'none' });
  } catch (e) {
    return `The app could not be saved for offline use (${e.message}).`;
  }
  const announce = (worker) => onUpdate(() => {
    switching = true;
    worker.postMessage('skip-waiting');
  });
  const track = (worker) => {
    const settled = () => {
      if (worker.state !== 'installed') return;
      if (sw.controller) announce(worker); else onOfflineReady();
    };
    worker.addEventListener('statechange', settled);
    settled();
  };
  if (registration.waiting && sw.controller) announce(registration.waiting);
  if (registration.installing) track(registration.installing);
  registration.addEventListener('updatefound', () => track(registration.installing));
  if (registration.active && !registration.installing && !registration.waiting) onOfflineReady();
  if (navigator.onLine) registration.update().catch(() => { /* offline or server gone: keep this version */ });
  return null;
}
