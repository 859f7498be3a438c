// The service worker from the page's side: registers sw.js next to index.html (so any static
// host and sub-path works), reports when the app is ready offline, announces a new version and
// switches to it when the user asks.

/**
 * `onOfflineReady()`: the app shell is on the device. `onUpdate(apply)`: a new version is
 * installed and waiting; `apply()` switches to it and reloads. `onVersion(v)`: the version
 * serving this page. `onFailed(sentence)`: a version could not be stored (the browser dropped
 * its worker; most often the device's storage is full). Returns a sentence when service
 * workers cannot be used here.
 */
export async function registerServiceWorker({ onOfflineReady, onUpdate, onVersion, onFailed }) {
  if (!('serviceWorker' in navigator)) {
    return 'This browser cannot keep the app for offline use (no service workers; the page must be served over https or from localhost).';
  }
  const sw = navigator.serviceWorker;
  // The worker's own report of a failed install (sw.js); it may arrive after the worker is
  // already `redundant`, so the page waits for it a little.
  let reportInstallError;
  const installError = new Promise((resolve) => { reportInstallError = resolve; });
  sw.addEventListener('message', (event) => {
    if (event.data && event.data.version) onVersion(event.data.version);
    if (event.data && event.data.installFailed) reportInstallError(event.data);
  });
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
    // Private browsing and some embedded browsers refuse service workers; the engine's words
    // mean nothing to the user (the console keeps them).
    console.warn('The service worker was not registered:', e);
    return 'The app could not be saved for offline use: this browser does not let the page work offline here (private browsing?). It works while online.';
  }
  const announce = (worker) => onUpdate(() => {
    switching = true;
    worker.postMessage('skip-waiting');
  });
  const track = (worker) => {
    let installed = false;
    const settled = () => {
      // An install whose files could not all be stored ends `redundant` without ever being
      // `installed`; a worker replaced later also ends `redundant`, but after installing.
      if (worker.state === 'redundant' && !installed) {
        Promise.race([installError, new Promise((r) => setTimeout(() => r(null), 3000))])
          .then(storageProblem).then(onFailed);
        return;
      }
      if (worker.state !== 'installed') return;
      installed = true;
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

/** Why a new version could not be stored, as far as the page can tell: the worker's own error, if it sent one. */
async function storageProblem(installError) {
  const base = 'The app could not be saved for offline use: the browser did not store its files';
  let left = '';
  try {
    const { usage, quota } = await navigator.storage.estimate();
    left = `${Math.round((quota - usage) / 1e6)} MB left for this site; `;
  } catch { /* no estimate in this browser */ }
  if (installError && installError.installFailed === 'QuotaExceededError') {
    return `${base} (${left}the device's storage is full). It still works while online.`;
  }
  // The engine's own words mean nothing to the user; the console keeps them.
  if (installError) console.warn('The app shell was not stored:', installError.installFailed, installError.detail);
  return `${base}. It still works while online; reload to try again.`;
}
