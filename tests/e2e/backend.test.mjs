// End-to-end: "best available" (#18 item 3) decides by measuring, never on a software adapter.
// This Chromium's only WebGPU adapter is SwiftShader (a software renderer): the page must pick
// the CPU without measuring. The other outcomes are forced with the page's test-only address
// parameters (www/backend-choice.js `testOverrides`): `test-adapter=hardware` counts SwiftShader
// as hardware, so the page measures on it (both backends really load and run), and
// `test-ms=webgpu:A,cpu:B` replaces the measured medians, so the winner is known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { useLabels } from './app.mjs';
import { browser, serve } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const TINY = [data('tiny/model.safetensors'), data('tiny/config.json')];
const OPENCLIP_TINY = [data('openclip_tiny/model.safetensors'), data('openclip_tiny/open_clip_config.json')];
const DATE = '\\d{4}-\\d{2}-\\d{2}';
// Cross-origin isolated from the first visit (the CPU then gets the threaded build, measured in
// its own worker), so that every visit is the same device to the page: without these headers
// the service worker isolates the page from the second visit on, which the page rightly counts
// as another CPU setup (www/worker.js `cpuIdentity`).
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/** Waits for the model status line to say the model loaded (or not); returns it. */
function loaded(page, what = 'the model') {
  return page.waitFor(`const t = document.getElementById('model-status').textContent;
    return /^Loaded|could not|failed/.test(t) && t;`, what, 300000);
}

/** A value the page keeps in IndexedDB (`fieldclip`, store `kv`). */
function kv(page, key) {
  return page.run(`
    const db = await new Promise((resolve, reject) => {
      const r = indexedDB.open('fieldclip');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const value = await new Promise((resolve, reject) => {
      const q = db.transaction('kv').objectStore('kv').get(arguments[0]);
      q.onsuccess = () => resolve(q.result);
      q.onerror = () => reject(q.error);
    });
    db.close();
    return value ?? null;`, key);
}

/** The records of "best available" kept on the device (key → record). */
const choices = async (page) => (await kv(page, 'backendChoices')) ?? {};

const measureAgainShown = (page) => page.run(`return !document.getElementById('measure-again').hidden;`);

/** src/fingerprint.rs `SampledDigest` of a file, computed here: the model id without its architecture. */
async function sampledDigest(path) {
  const bytes = await readFile(path);
  const [samples, sampleBytes] = [64, 16 * 1024];
  const hash = createHash('sha256');
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(bytes.length));
  hash.update(head);
  if (bytes.length <= samples * sampleBytes) hash.update(bytes);
  for (let i = 0; bytes.length > samples * sampleBytes && i < samples; i++) {
    const start = Math.floor((i * (bytes.length - sampleBytes)) / (samples - 1));
    hash.update(bytes.subarray(start, start + sampleBytes));
  }
  return hash.digest('hex').slice(0, 16);
}

/** A record is kept under the model's sampled digest (found by the page before loading), which its `modelId` ends with. */
async function assertKeyIsModel(key, record, weights) {
  const digest = await sampledDigest(weights);
  assert.ok(key.endsWith(`| model ${digest}`), `key ${key}, the file's digest ${digest}`);
  assert.ok(record.modelId.endsWith(` ${digest}`), `model id ${record.modelId}, the file's digest ${digest}`);
}

test('a software WebGPU adapter (SwiftShader) is never chosen, even when it would be faster', { timeout: 300000 }, async (t) => {
  const server = await serve(root);
  const page = await browser();
  try {
    // Told that WebGPU is faster, the page must still not measure on a software adapter.
    await page.open(`${server.url}index.html?test-ms=webgpu:1,cpu:1000`);
    // What this Chromium says of its adapter, in the worker where the model runs.
    const adapter = await page.run(`
      const code = 'onmessage = async () => { const a = await navigator.gpu?.requestAdapter(); const i = a?.info ?? {};'
        + ' postMessage(a ? { isFallbackAdapter: i.isFallbackAdapter, adapterIsFallback: a.isFallbackAdapter, vendor: i.vendor,'
        + ' architecture: i.architecture, device: i.device, description: i.description } : null); };';
      const w = new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
      const info = await new Promise((resolve) => { w.onmessage = (e) => resolve(e.data); w.postMessage(0); });
      w.terminate();
      return info;`);
    t.diagnostic(`adapter in a worker: ${JSON.stringify(adapter)}`);
    assert.equal(await page.run(`return document.getElementById('backend').value;`), 'auto');
    await page.upload('#weights-file', TINY);
    const status = await loaded(page);
    t.diagnostic(status);
    assert.match(status, /^Loaded ViT/, status);
    assert.match(status, /Running on the CPU, .*\. Best available: the CPU \(the WebGPU adapter here \(.+\) is a software renderer, which is never chosen\)\./, status);
    assert.equal(await measureAgainShown(page), false, 'nothing to measure again');
    assert.deepEqual(await choices(page), {}, 'nothing measured, nothing remembered');
  } finally {
    await page.close();
    await server.close();
  }
});

test('a hardware adapter: measured once, the faster kept and remembered, measured again on demand, a manual choice overrides', { timeout: 600000 }, async (t) => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const server = await serve(root, { headers: ISOLATION });
  const page = await browser();
  try {
    // First load: measured, WebGPU faster → WebGPU.
    await page.open(`${server.url}index.html?test-adapter=hardware&test-ms=webgpu:12,cpu:240`);
    assert.equal(await page.run('return self.crossOriginIsolated;'), true);
    const cores = await page.run('return navigator.hardwareConcurrency;');
    await page.upload('#weights-file', TINY);
    const first = await loaded(page);
    t.diagnostic(first);
    assert.match(first, new RegExp(`Running on WebGPU\\. Best available: WebGPU \\(WebGPU: 12 ms per photo, CPU: 240 ms; measured ${DATE}\\)\\.`), first);
    assert.equal(await measureAgainShown(page), true);
    const stored = await choices(page);
    const keys = Object.keys(stored);
    assert.equal(keys.length, 1, JSON.stringify(stored));
    const [key] = keys;
    const record = stored[key];
    assert.equal(record.backend, 'webgpu');
    assert.deepEqual([record.webgpuMs, record.cpuMs], [12, 240]);
    assert.match(key, new RegExp(`^webgpu google/swiftshader/.* \\| cpu ${cores} cores, isolated \\| model [0-9a-f]{16}$`), key);
    assert.equal(record.cpuThreads, cores, 'the CPU measured as this page runs it: the threaded build');
    // Both really loaded and ran (their times then replaced by the test's).
    t.diagnostic(`measured on this machine: ${JSON.stringify(record.measured)}`);
    assert.ok(record.measured.webgpuMs > 0 && record.measured.cpuMs > 0, JSON.stringify(record.measured));
    await assertKeyIsModel(key, record, TINY[0]);
    assert.match(await page.waitFor(`const t = document.getElementById('save-status').textContent; return /^Saved|not saved/.test(t) && t;`, 'saving'), /^Saved on this device/);

    // Next visit: the stored model loads again with the remembered choice, not measured (the
    // times given now would pick the CPU).
    await page.open(`${server.url}index.html?test-adapter=hardware&test-ms=webgpu:900,cpu:5`);
    const second = await loaded(page, 'the stored model');
    assert.match(second, new RegExp(`Running on WebGPU\\. Best available: WebGPU \\(WebGPU: 12 ms per photo, CPU: 240 ms; measured ${DATE}\\)\\.`), second);
    assert.equal((await choices(page))[key].measuredAt, record.measuredAt, 'not measured again');

    // "Measure again": now the CPU is faster → the model moves to it, and it still classifies.
    await useLabels(page, expected.prompts.map((p) => p.text));
    await page.run(`document.getElementById('measure-again').click();`);
    const again = await loaded(page, 'the new measurement');
    t.diagnostic(again);
    assert.match(again, new RegExp(`Running on the CPU, .*\\. Best available: the CPU \\(WebGPU: 900 ms per photo, CPU: 5 ms; measured ${DATE}\\)\\.`), again);
    const remeasured = (await choices(page))[key];
    assert.equal(remeasured.backend, 'cpu');
    assert.deepEqual([remeasured.webgpuMs, remeasured.cpuMs], [900, 5]);
    t.diagnostic(`measured again on this machine: ${JSON.stringify(remeasured.measured)}`);
    assert.ok(remeasured.measured.webgpuMs > 0 && remeasured.measured.cpuMs > 0, JSON.stringify(remeasured.measured));
    assert.ok(remeasured.measuredAt >= record.measuredAt);
    await page.upload('#photo-files', [data('images/chelsea.png')]);
    const card = await page.waitFor(`const c = document.querySelector('#results .card');
      if (!c || c.querySelector('.meta').textContent === 'waiting…') return null;
      return { error: c.querySelector('.error')?.textContent ?? null, meta: c.querySelector('.meta').textContent,
        predictions: [...c.querySelectorAll('.pred')].map((p) => ({ label: p.querySelector('.label').textContent, probability: Number(p.dataset.probability) })) };`, 'the card');
    assert.ok(!card.error, card.error);
    assert.match(card.meta, /on CPU/, card.meta);
    const index = expected.images.findIndex((i) => i.file === 'images/chelsea.png');
    const labels = expected.prompts.map((p) => p.text);
    for (const p of card.predictions) {
      const want = expected.probs[index][labels.indexOf(p.label)];
      assert.ok(Math.abs(p.probability - want) <= 1e-3, `${p.label}: shown ${p.probability}, oracle ${want}`);
    }

    // Next visit: the CPU, remembered.
    await page.open(`${server.url}index.html?test-adapter=hardware&test-ms=webgpu:12,cpu:240`);
    const third = await loaded(page, 'the stored model');
    assert.match(third, /Running on the CPU, .*\. Best available: the CPU \(WebGPU: 900 ms per photo, CPU: 5 ms;/, third);

    // A manual choice overrides what was measured.
    await page.run(`const b = document.getElementById('backend'); b.value = 'webgpu'; b.dispatchEvent(new Event('change'));`);
    for (let i = 0; (await kv(page, 'settings'))?.backend !== 'webgpu'; i++) assert.ok(i < 50, 'the setting was not saved');
    await page.open(`${server.url}index.html?test-adapter=hardware&test-ms=webgpu:900,cpu:5`);
    const manual = await loaded(page, 'the stored model');
    assert.match(manual, /Running on WebGPU: WebGPU was requested\./, manual);
    assert.doesNotMatch(manual, /Best available/, manual);
    assert.equal(await measureAgainShown(page), false);
  } finally {
    await page.close();
    await server.close();
  }
});

test('CPU faster on the first load → the CPU; a model switched while measuring leaves no stale result', { timeout: 600000 }, async (t) => {
  const server = await serve(root, { headers: ISOLATION });
  const page = await browser();
  try {
    await page.open(`${server.url}index.html?test-adapter=hardware&test-ms=webgpu:300,cpu:20`);
    // The first model is being measured when the second is chosen.
    await page.upload('#weights-file', TINY);
    const measuring = await page.waitFor(`const t = document.getElementById('model-status').textContent; return /^Measuring|^Loaded/.test(t) && t;`, 'the measurement');
    assert.match(measuring, /^Measuring/, `the first model finished before it could be replaced: ${measuring}`);
    await page.upload('#weights-file', OPENCLIP_TINY);
    const status = await loaded(page);
    t.diagnostic(status);
    assert.match(status, /^Loaded .*open_clip layout/, status);
    assert.match(status, new RegExp(`Running on the CPU, .*\\. Best available: the CPU \\(WebGPU: 300 ms per photo, CPU: 20 ms; measured ${DATE}\\)\\.`), status);
    const stored = await choices(page);
    const keys = Object.keys(stored);
    assert.equal(keys.length, 1, `only the second model's measurement is kept: ${JSON.stringify(stored)}`);
    assert.equal(stored[keys[0]].backend, 'cpu');
    // The second model's (the open_clip one), not the first's.
    await assertKeyIsModel(keys[0], stored[keys[0]], OPENCLIP_TINY[0]);
    assert.equal(await measureAgainShown(page), true);
  } finally {
    await page.close();
    await server.close();
  }
});
