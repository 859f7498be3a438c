// End-to-end: a PyTorch checkpoint (#16), the `open_clip_pytorch_model.bin` BioCLIP ships, loaded
// on the page as it is (streamed through WebAssembly as the safetensors file of its weights,
// src/weights/torch_zip.rs). The tiny open_clip model written as one by
// scripts/make-torch-checkpoint.py classifies photos with the probabilities of its safetensors
// file, also once stored on the device and loaded at start-up; a cut-off or damaged .bin is
// refused with a sentence (with no model, and with one in use, which stays), never a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { useLabels } from './app.mjs';
import { browser, serve, tempDir } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const PHOTOS = ['chelsea.png', 'astronaut.jpg'];

/** Collects the page's uncaught errors and unhandled rejections from now on. */
const WATCH_ERRORS = `window.__uncaught = [];
  addEventListener('error', (e) => window.__uncaught.push(String(e.message)));
  addEventListener('unhandledrejection', (e) => window.__uncaught.push(String(e.reason && e.reason.message || e.reason)));`;

/** The model status once a load has ended: { text, failed }. */
const LOAD_ENDED = `const p = document.getElementById('model-status');
  return /^Loaded|could not be loaded/.test(p.textContent) && { text: p.textContent, failed: p.classList.contains('error') };`;

/** Loads `files` through the file input; returns how the load ended. */
async function load(page, files, what) {
  await page.run(`document.getElementById('model-status').textContent = '';`);
  await page.upload('#weights-file', files);
  return page.waitFor(LOAD_ENDED, what, 300000);
}

/** Adds the photos; returns the new cards' predictions by photo: { name: [[label, probability]] }. */
async function classify(page) {
  const before = await page.run(`return document.querySelectorAll('#results .card').length;`);
  await page.upload('#photo-files', PHOTOS.map((p) => data(`images/${p}`)));
  const cards = await page.waitFor(`
    const cards = [...document.querySelectorAll('#results .card')];
    if (cards.length < ${before + PHOTOS.length} || cards.some((c) => c.querySelector('.meta').textContent === 'waiting…')) return null;
    return cards.slice(0, ${PHOTOS.length}).map((c) => ({
      // The photo's name is the element's first text (a "not sure" badge may follow it).
      name: c.querySelector('.name').firstChild.textContent,
      error: c.querySelector('.error')?.textContent ?? null,
      predictions: [...c.querySelectorAll('.pred')].map((p) => [p.querySelector('.label').textContent, Number(p.dataset.probability)]),
    }));`, 'the result cards', 300000);
  const byName = {};
  for (const c of cards) {
    assert.equal(c.error, null, `${c.name}: ${c.error}`);
    assert.ok(c.predictions.length > 0, c.name);
    byName[c.name] = c.predictions;
  }
  assert.deepEqual(Object.keys(byName).sort(), [...PHOTOS].sort());
  return byName;
}

/** The same labels in the same order, each probability within 1e-6. */
function assertSameProbabilities(got, want, what) {
  for (const name of PHOTOS) {
    assert.deepEqual(got[name].map((p) => p[0]), want[name].map((p) => p[0]), `${what}, ${name}: the labels' order`);
    got[name].forEach(([label, p], i) => {
      assert.ok(Math.abs(p - want[name][i][1]) <= 1e-6, `${what}, ${name} / ${label}: ${p}, the safetensors gave ${want[name][i][1]}`);
    });
  }
}

test('a PyTorch checkpoint classifies as its safetensors file; a broken one is refused', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('openclip_tiny/expected.json'), 'utf8'));
  const labels = expected.prompts.map((p) => p.text);
  const folder = tempDir('torch');
  const bin = join(folder, 'open_clip_pytorch_model.bin');
  execFileSync('python3', [join(root, 'scripts/make-torch-checkpoint.py'), data('openclip_tiny/model.safetensors'), bin]);
  const bytes = await readFile(bin);
  // Cut off: the zip archive's end (its directory) is missing.
  const cut = join(folder, 'cut.bin');
  await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 3)));
  // The pickle's first opcode after PROTO (GLOBAL collections.OrderedDict) overwritten.
  const damaged = join(folder, 'damaged.bin');
  const pickle = bytes.indexOf(Buffer.from('\x80\x02c', 'latin1'));
  assert.ok(pickle > 0 && pickle < 100, 'the pickle near the start of the archive');
  const broken = Buffer.from(bytes);
  broken[pickle + 2] = 0;
  await writeFile(damaged, broken);
  const config = data('openclip_tiny/open_clip_config.json');

  const server = await serve(root);
  const page = await browser({ width: 1280, height: 1000 });
  try {
    await page.open(`${server.url}index.html`);
    await page.run(WATCH_ERRORS);
    assert.match(await page.run(`return document.getElementById('weights-file').accept;`), /\.bin\b.*\.pt\b/);
    await page.run(`const b = document.getElementById('backend'); b.value = 'cpu'; b.dispatchEvent(new Event('change'));`);

    // No model yet: a cut-off checkpoint is refused with a sentence.
    let status = await load(page, [cut], 'the cut-off checkpoint');
    assert.ok(status.failed, status.text);
    assert.match(status.text, /This PyTorch checkpoint cannot be read: the end of its zip archive is missing, so the file is cut off/);

    status = await load(page, [data('openclip_tiny/model.safetensors'), config], 'the safetensors file');
    assert.match(status.text, /^Loaded .*open_clip layout/, status.text);
    await useLabels(page, labels);
    const fromSafetensors = await classify(page);

    // A model in use: a damaged checkpoint is refused at its header, the model stays.
    status = await load(page, [damaged], 'the damaged checkpoint');
    assert.ok(status.failed, status.text);
    assert.match(status.text, /This PyTorch checkpoint cannot be read: its data\.pkl uses the pickle opcode \(0x00\)/);
    assert.match(status.text, /The model loaded before is still in use\.$/);

    status = await load(page, [bin, config], 'the PyTorch checkpoint');
    assert.ok(!status.failed, status.text);
    assert.match(status.text, /^Loaded .*open_clip layout, F32/, status.text);
    assert.match(await page.waitFor(`const t = document.getElementById('save-status').textContent; return /^Saved|not saved/.test(t) && t;`, 'saving the checkpoint'),
      /^Saved on this device/);
    await useLabels(page, labels);
    assertSameProbabilities(await classify(page), fromSafetensors, 'the .bin');
    assert.deepEqual(await page.run('return window.__uncaught;'), [], 'uncaught errors in the page');

    // Kept on the device: loaded at start-up from there (its SHA-256 checked on the way).
    await page.open(`${server.url}index.html`);
    status = await page.waitFor(LOAD_ENDED, 'the stored checkpoint at start-up', 300000);
    assert.match(status.text, /^Loaded .*open_clip layout, F32/, status.text);
    await useLabels(page, labels);
    assertSameProbabilities(await classify(page), fromSafetensors, 'the stored .bin');
  } finally {
    await page.close();
    await server.close();
  }
});
