// End-to-end: the page as an offline app. A copy of the site (with the tiny oracle model under
// models/) is served; each test gets a fresh Chromium profile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { assertMatchesOracle, classify, loadModelFromUrl, makeSite, PHOTOS, useLabels, waitForServiceWorker } from './app.mjs';
import { browser, serve, tempDir } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const text = (id) => `return document.getElementById('${id}').textContent;`;

test('after one online visit, the page, model, lists and results come back offline', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const labels = expected.prompts.map((p) => p.text);
  const site = await makeSite();
  // Deployed under a sub-path, as on most static hosts.
  const server = await serve(tempDir('host'), { mounts: { '/field/fieldclip/': site } });
  const app = `${server.url}field/fieldclip/`;
  const page = await browser();
  let tripwire;
  try {
    await page.open(app);
    await waitForServiceWorker(page);
    // WebGPU by hand (kept across visits): the same build online and offline, so the same
    // numbers (by "best available" this Chromium runs the CPU, whose build changes with the
    // isolation the service worker adds on the second visit).
    await page.run(`const b = document.getElementById('backend'); b.value = 'webgpu'; b.dispatchEvent(new Event('change'));`);
    await loadModelFromUrl(page);
    assert.match(await page.waitFor(`const t = document.getElementById('save-status').textContent; return /^Saved|not saved/.test(t) && t;`, 'saving'), /^Saved on this device/);
    await useLabels(page, labels);
    const online = await classify(page, PHOTOS);
    assertMatchesOracle(online, expected, labels);

    // Cut the network: the server is gone (a listener on its port records any request that
    // still arrives) and the browser is offline.
    await server.close();
    tripwire = await serve(tempDir('empty'), { port: server.port });
    await page.cdp('Network.enable');
    await page.cdp('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await page.open(app);
    const status = await page.waitFor(`const t = document.getElementById('model-status').textContent; return /Loaded|could not|failed/.test(t) && t;`, 'the stored model');
    assert.match(status, /Loaded ViT/, status);
    // The model status shows "Loaded" before the labels and collection are set up for it; the
    // save status follows once that is done.
    assert.match(await page.waitFor(`return document.getElementById('save-status').textContent;`, 'the save status'), /loaded from this device/);
    assert.match(await page.run(text('offline-status')), /offline/);
    assert.equal(await page.run(`return document.getElementById('labels').value;`), labels.join('\n'), 'the label list came back');
    await page.waitFor(`return /^12 labels ready/.test(document.getElementById('labels-status').textContent);`, 'labels');
    assert.equal(await page.run(`return document.querySelectorAll('#results .card').length;`), PHOTOS.length, 'the last results came back');

    const offline = await classify(page, PHOTOS);
    for (const name of PHOTOS) {
      for (const [i, p] of offline[name].entries()) {
        assert.equal(p.label, online[name][i].label, `${name} rank ${i + 1}`);
        assert.ok(Math.abs(p.probability - online[name][i].probability) <= 1e-6, `${name} / ${p.label}: ${p.probability} offline, ${online[name][i].probability} online`);
      }
    }
    // Where? (#15) works offline too: the map is made and drawn with nothing fetched.
    await page.run(`document.querySelector('#results .card .where-show').click();`);
    const map = await page.waitFor(`const c = document.querySelector('#results .card');
      const error = c.querySelector('.where-error');
      if (error && !error.hidden) return { problem: error.textContent };
      const canvas = c.querySelector('canvas.heatmap');
      return canvas && !canvas.hidden && canvas.width > 0 && { min: Number(c.querySelector('.legend').dataset.min), max: Number(c.querySelector('.legend').dataset.max) };`, 'a map offline');
    assert.ok(!map.problem && map.min < map.max, JSON.stringify(map));
    // The browser's own service-worker update check may try sw.js and its file list; the
    // page itself asks for nothing.
    const leaked = tripwire.requests.filter((url) => !/^\/field\/fieldclip\/(sw\.js|pkg\/shell\.js)$/.test(url));
    assert.deepEqual(leaked, [], 'requests that left the page while offline');

    // A stored model whose bytes changed is removed and the user is told.
    await page.run(`
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('models');
      for await (const handle of dir.values()) {
        const w = await handle.createWritable({ keepExistingData: true });
        await w.write({ type: 'write', position: 1000, data: new Uint8Array([1, 2, 3, 4]) });
        await w.close();
      }`);
    await page.open(app);
    const broken = await page.waitFor(`const t = document.getElementById('model-status').textContent; return /integrity|Loaded/.test(t) && t;`, 'the integrity check');
    assert.match(broken, /failed its integrity check .* removed/, broken);
    await page.waitFor(`return /\\(0\\)$/.test(document.querySelector('#device-models summary').textContent);`, 'the model list to be empty');
  } finally {
    await page.close();
    await (tripwire || server).close();
  }
});

test('a full device: the model is not saved, says so, and still classifies', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const labels = expected.prompts.map((p) => p.text);
  const server = await serve(await makeSite());
  const page = await browser();
  try {
    await page.open(server.url);
    // 2 MB for the whole origin: the 7.5 MB model cannot be written.
    await page.cdp('Storage.overrideQuotaForOrigin', { origin: server.url.replace(/\/$/, ''), quotaSize: 2e6 });
    await loadModelFromUrl(page);
    const saved = await page.waitFor(`const t = document.getElementById('save-status').textContent; return /^Saved|not saved/.test(t) && t;`, 'the save to fail');
    assert.match(saved, /not saved on the device: there is not enough storage space/, saved);
    await useLabels(page, labels);
    assertMatchesOracle(await classify(page, PHOTOS), expected, labels);
    assert.match(await page.run(`return document.querySelector('#device-models summary').textContent;`), /\(0\)$/);
  } finally {
    await page.close();
    await server.close();
  }
});

test('a device too full for the app shell says so and still works online', { timeout: 300000 }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const labels = expected.prompts.map((p) => p.text);
  const server = await serve(await makeSite());
  const page = await browser();
  try {
    // 1 MB for the whole origin, set before the page registers its service worker: the
    // WebAssembly alone is tens of MB, so the install cannot store the shell.
    await page.goto(`${server.url}manifest.webmanifest`);
    await page.cdp('Storage.overrideQuotaForOrigin', { origin: server.url.replace(/\/$/, ''), quotaSize: 1e6 });
    await page.open(server.url);
    const problem = await page.waitFor(`const t = document.getElementById('offline-status').textContent; return /could not|Ready/.test(t) && t;`, 'the install to fail');
    assert.match(problem, /^The app could not be saved for offline use: the browser did not store its files \((\d+ MB left for this site; )?the device's storage is full\)\. It still works while online\.$/, problem);
    assert.equal(await page.run('return navigator.serviceWorker.controller;'), null);
    await loadModelFromUrl(page);
    await useLabels(page, labels);
    assertMatchesOracle(await classify(page, PHOTOS), expected, labels);
  } finally {
    await page.close();
    await server.close();
  }
});

test('a new deploy is announced and taken on reload', { timeout: 300000 }, async () => {
  const site = await makeSite();
  const server = await serve(site);
  const page = await browser();
  try {
    await page.open(server.url);
    const first = await waitForServiceWorker(page);
    await appendFile(join(site, 'www/style.css'), '\n/* a new deploy */\n');
    execFileSync('bash', [join(root, 'scripts/stamp-shell.sh'), site]);
    await page.open(server.url);
    await page.waitFor(`return !document.getElementById('update-banner').hidden;`, 'the update banner');
    assert.equal(await page.run(text('app-version')), first, 'the old version serves until the user switches');
    await page.run(`document.getElementById('update-reload').click();`);
    const second = await page.waitFor(`const v = document.getElementById('app-version').textContent;
      return v && v !== arguments[0] && document.getElementById('update-banner').hidden && v;`.replace('arguments[0]', JSON.stringify(first)), 'the new version');
    assert.notEqual(second, first);
    assert.ok((await readFile(join(site, 'pkg/shell.js'), 'utf8')).includes(second.replace('version ', '')), `${second} is the stamped version`);
  } finally {
    await page.close();
    await server.close();
  }
});

test('where the browser allows no storage, the page works and says nothing is kept', { timeout: 300000 }, async () => {
  const server = await serve(await makeSite());
  const page = await browser();
  try {
    // What some private modes do: IndexedDB refuses to open.
    await page.cdp('Page.enable');
    await page.cdp('Page.addScriptToEvaluateOnNewDocument', {
      source: `Object.defineProperty(window, 'indexedDB', { get() { throw new DOMException('The user denied permission to access the database.', 'SecurityError'); } });`,
    });
    await page.open(server.url);
    const warning = await page.waitFor(`const w = document.getElementById('storage-warning'); return !w.hidden && w.textContent;`, 'the storage warning');
    assert.match(warning, /^This browser keeps nothing for this page: it gives this page no storage \(private browsing, or site data turned off for this site\)\. Everything works/, warning);
    assert.doesNotMatch(warning, /denied permission/, 'the engine\'s own exception text is not shown');
    await loadModelFromUrl(page);
    assert.match(await page.run(text('save-status')), /not saved on the device: this browser keeps nothing for this page: it gives this page no storage .*\. It works until you close the page\.$/);
    await page.waitFor(`return /(labels|taxa) ready/.test(document.getElementById('labels-status').textContent);`, 'the preset labels');
    await page.upload('#photo-files', [data('images/chelsea.png')]);
    const shown = await page.waitFor(`const c = document.querySelector('#results .card'); return c && c.querySelectorAll('.pred').length;`, 'a result');
    assert.equal(shown, 5);
  } finally {
    await page.close();
    await server.close();
  }
});
