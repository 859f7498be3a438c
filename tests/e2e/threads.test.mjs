// End-to-end: the threaded build (pkg-threads/). Where the page is cross-origin isolated, the
// model's CPU backend runs on every core and gives the oracle's probabilities; where the host
// sends no isolation headers, the service worker adds them after the first visit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { useLabels } from './app.mjs';
import { browser, serve } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

test('on an isolated page the CPU backend runs on every core and matches the oracle', { timeout: 600000, skip: availableParallelism() < 2 && 'one core: no threads to use' }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const server = await serve(root, { headers: ISOLATION });
  const page = await browser();
  try {
    await page.open(`${server.url}index.html`);
    assert.equal(await page.run('return self.crossOriginIsolated;'), true);
    const cores = await page.run('return navigator.hardwareConcurrency;');
    await page.run(`const b = document.getElementById('backend'); b.value = 'cpu'; b.dispatchEvent(new Event('change'));`);
    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    const status = await page.waitFor(
      `const t = document.getElementById('model-status').textContent; return /Loaded|could not/.test(t) && t;`, 'the model');
    assert.match(status, new RegExp(`Running on the CPU, ${cores} threads`), status);

    const labels = expected.prompts.map((p) => p.text);
    await useLabels(page, labels);
    const photos = ['astronaut.jpg', 'chelsea.png', 'coffee_alpha.png'];
    await page.upload('#photo-files', photos.map((p) => data(`images/${p}`)));
    const cards = await page.waitFor(`
      const cards = [...document.querySelectorAll('#results .card')];
      if (cards.length < 3 || cards.some((c) => c.querySelector('.meta').textContent === 'waiting…')) return null;
      return cards.map((c) => ({
        name: c.querySelector('.name').textContent,
        error: c.querySelector('.error')?.textContent ?? null,
        predictions: [...c.querySelectorAll('.pred')].map((p) => ({ label: p.querySelector('.label').textContent, probability: Number(p.dataset.probability) })),
      }));`, 'three result cards');
    for (const name of photos) {
      const card = cards.find((c) => c.name === name);
      assert.ok(card && !card.error, `${name}: ${card?.error} (cards: ${JSON.stringify(cards)})`);
      const index = expected.images.findIndex((i) => i.file === `images/${name}`);
      for (const p of card.predictions) {
        const want = expected.probs[index][labels.indexOf(p.label)];
        assert.ok(Math.abs(p.probability - want) <= 1e-3, `${name} / ${p.label}: shown ${p.probability}, oracle ${want}`);
      }
    }
  } finally {
    await page.close();
    await server.close();
  }
});

test('without isolation headers the page starts single-threaded, and the service worker isolates it on the next visit', { timeout: 300000 }, async () => {
  const server = await serve(root);
  const page = await browser();
  try {
    await page.open(`${server.url}index.html`);
    assert.equal(await page.run('return self.crossOriginIsolated;'), false);
    const offline = await page.waitFor(`return /offline/i.test(document.getElementById('offline-status').textContent) && document.getElementById('offline-status').textContent;`, 'the service worker');
    assert.match(offline, /^Ready to work offline/, offline);
    await page.run(`const b = document.getElementById('backend'); b.value = 'cpu'; b.dispatchEvent(new Event('change'));`);
    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    const first = await page.waitFor(
      `const t = document.getElementById('model-status').textContent; return /Loaded|could not/.test(t) && t;`, 'the model');
    assert.match(first, /Running on the CPU, one thread \(the page is not cross-origin isolated\)/, first);

    await page.open(`${server.url}index.html`);
    assert.equal(await page.run('return self.crossOriginIsolated;'), true, 'isolated by sw.js on the second visit');
  } finally {
    await page.close();
    await server.close();
  }
});
