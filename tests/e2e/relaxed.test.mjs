// End-to-end: the threaded build's relaxed SIMD kernels (src/model/packed.rs: int8 dot
// products, fused multiply-add) against the single-threaded build's SIMD128 ones. A q8 pack
// multiplies in integers in both, and both compute the same integer sums, so the page shows
// the same probabilities on an isolated page (pkg-threads/, relaxed SIMD) and on one that is
// not (pkg/, SIMD128).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { useLabels } from './app.mjs';
import { browser, serve } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
// The tiny model's q8 pack, made by scripts/test.sh (`fieldclip pack`).
const PACK = process.env.FIELDCLIP_Q8_PACK;
const PHOTOS = ['astronaut.jpg', 'chelsea.png', 'coffee_alpha.png'];

/** Loads the pack on the CPU and classifies the photos; returns the status line and each card's probabilities. */
async function classify(isolated, labels) {
  const server = await serve(root, { headers: isolated ? ISOLATION : {} });
  const page = await browser();
  try {
    await page.open(`${server.url}index.html`);
    assert.equal(await page.run('return self.crossOriginIsolated;'), isolated);
    await page.run(`const b = document.getElementById('backend'); b.value = 'cpu'; b.dispatchEvent(new Event('change'));`);
    await page.upload('#weights-file', [PACK]);
    const status = await page.waitFor(
      `const t = document.getElementById('model-status').textContent; return /Loaded|could not/.test(t) && t;`, 'the q8 pack');
    await useLabels(page, labels);
    await page.upload('#photo-files', PHOTOS.map((p) => data(`images/${p}`)));
    const cards = await page.waitFor(`
      const cards = [...document.querySelectorAll('#results .card')];
      if (cards.length < 3 || cards.some((c) => c.querySelector('.meta').textContent === 'waiting…')) return null;
      return cards.map((c) => ({
        name: c.querySelector('.name').textContent,
        failed: c.querySelector('.error')?.textContent ?? null,
        predictions: Object.fromEntries([...c.querySelectorAll('.pred')].map((p) => [p.querySelector('.label').textContent, Number(p.dataset.probability)])),
      }));`, 'three result cards');
    return { status, cards };
  } finally {
    await page.close();
    await server.close();
  }
}

test('a q8 pack gives the same probabilities on the relaxed SIMD build as on the SIMD128 build', { timeout: 600000, skip: !PACK && 'FIELDCLIP_Q8_PACK is not set (scripts/test.sh makes the pack)' }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const labels = expected.prompts.map((p) => p.text);
  const relaxed = await classify(true, labels);
  assert.match(relaxed.status, /Running on the CPU, [^:]*relaxed SIMD/, relaxed.status);
  const simd128 = await classify(false, labels);
  assert.match(simd128.status, /Running on the CPU, one thread \(the page is not cross-origin isolated\)/, simd128.status);
  let worst = 0;
  for (const name of PHOTOS) {
    const a = relaxed.cards.find((c) => c.name === name);
    const b = simd128.cards.find((c) => c.name === name);
    assert.ok(a && !a.failed && b && !b.failed, `${name}: ${a?.failed} / ${b?.failed}`);
    assert.deepEqual(Object.keys(a.predictions).sort(), Object.keys(b.predictions).sort(), name);
    for (const [label, p] of Object.entries(a.predictions)) {
      worst = Math.max(worst, Math.abs(p - b.predictions[label]));
      // Same integer sums; the f32 parts of the model (attention, layer norm) may round
      // differently on several threads.
      assert.ok(Math.abs(p - b.predictions[label]) <= 1e-5, `${name} / ${label}: relaxed ${p}, SIMD128 ${b.predictions[label]}`);
    }
    // And a q8 pack still answers as the f32 model does (the oracle's best label).
    const index = expected.images.findIndex((i) => i.file === `images/${name}`);
    const best = labels[expected.probs[index].indexOf(Math.max(...expected.probs[index]))];
    const shown = Object.entries(a.predictions).sort((x, y) => y[1] - x[1])[0][0];
    assert.equal(shown, best, `${name}: top label`);
  }
  console.log(`largest probability difference between the builds: ${worst.toExponential(1)}`);
});
