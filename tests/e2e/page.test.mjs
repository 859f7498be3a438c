// End-to-end: the real page in headless Debian Chromium (WebGPU on SwiftShader, chosen by hand:
// "best available" never picks a software adapter, tests/e2e/backend.test.mjs), the tiny
// oracle model loaded through the file input, three oracle photos and a corrupt file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { captureDownload, useLabels } from './app.mjs';
import { browser, serve } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const artifacts = join(root, 'test-artifacts');

test('classify oracle photos on the page', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const server = await serve(root);
  const page = await browser({ width: 768, height: 1024 });
  try {
    await page.open(`${server.url}index.html`);
    await page.run(`const b = document.getElementById('backend'); b.value = 'webgpu'; b.dispatchEvent(new Event('change'));`);
    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    const status = await page.waitFor(
      `const t = document.getElementById('model-status').textContent; return /Loaded|could not/.test(t) && t;`, 'the model');
    assert.match(status, /Loaded ViT .*1\.9 M parameters/, status);
    assert.match(status, /Running on WebGPU: WebGPU was requested/, status);

    // The oracle's prompts are whole sentences: use them as labels with the template "{}".
    const labels = expected.prompts.map((p) => p.text);
    await useLabels(page, labels);

    const broken = join(tmpdir(), 'broken-photo.jpg');
    await writeFile(broken, Buffer.from('\xff\xd8\xff\xe0 definitely not a complete jpeg'));
    const photos = ['astronaut.jpg', 'chelsea.png', 'coffee_alpha.png'];
    await page.upload('#photo-files', [...photos.map((p) => data(`images/${p}`)), broken]);
    const cards = await page.waitFor(`
      const cards = [...document.querySelectorAll('#results .card')];
      if (cards.length < 4 || cards.some((c) => c.querySelector('.meta').textContent === 'waiting…')) return null;
      return cards.map((c) => ({
        name: c.querySelector('.name').textContent,
        error: c.querySelector('.error')?.textContent ?? null,
        predictions: [...c.querySelectorAll('.pred')].map((p) => ({ label: p.querySelector('.label').textContent, probability: Number(p.dataset.probability) })),
      }));`, 'four result cards');

    for (const name of photos) {
      const card = cards.find((c) => c.name === name);
      assert.ok(card && !card.error, `${name}: ${card?.error}`);
      const index = expected.images.findIndex((i) => i.file === `images/${name}`);
      assert.equal(card.predictions.length, 5);
      for (const p of card.predictions) {
        const want = expected.probs[index][labels.indexOf(p.label)];
        assert.ok(Math.abs(p.probability - want) <= 1e-3, `${name} / ${p.label}: shown ${p.probability}, oracle ${want}`);
      }
      const best = expected.probs[index].indexOf(Math.max(...expected.probs[index]));
      assert.equal(card.predictions[0].label, labels[best], `${name}: top label`);
    }
    const bad = cards.find((c) => c.name === 'broken-photo.jpg');
    assert.match(bad.error, /could not be decoded|not an image/);

    // The CSV export: captured from the download link the page creates.
    const csv = await captureDownload(page, 'export-csv');
    assert.equal(csv.name, 'fieldclip-results.csv');
    const rows = csv.text.trim().split('\n');
    assert.equal(rows[0], 'file,rank,label,probability');
    assert.equal(rows.length, 1 + 3 * 5, 'five rows per classified photo, none for the broken file');
    for (const name of photos) {
      const card = cards.find((c) => c.name === name);
      card.predictions.forEach((p, rank) => {
        const label = /[",]/.test(p.label) ? `"${p.label.replace(/"/g, '""')}"` : p.label;
        assert.ok(rows.includes(`${name},${rank + 1},${label},${p.probability.toFixed(6)}`), `${name} rank ${rank + 1} in CSV`);
      });
    }

    // A label that looks like HTML is shown as text, never parsed.
    const xss = '<img src=x onerror=alert(1)>';
    await page.run(`
      document.getElementById('list-new').click();
      document.getElementById('labels').value = arguments[0] + '\\nsea anemone';
      document.getElementById('labels').dispatchEvent(new Event('input'));`, xss);
    await page.waitFor(`return /^2 labels ready/.test(document.getElementById('labels-status').textContent);`, 'the new list');
    await page.upload('#photo-files', [data('images/chelsea_small.png')]);
    const shown = await page.waitFor(`
      const card = document.querySelectorAll('#results .card')[0];
      const labels = [...card.querySelectorAll('.label')].map((l) => l.textContent);
      return labels.length === 2 && { labels, injected: document.querySelectorAll('#results img[src="x"]').length };`, 'the HTML-looking label');
    assert.ok(shown.labels.includes(xss), JSON.stringify(shown));
    assert.equal(shown.injected, 0);

    await mkdir(artifacts, { recursive: true });
    await writeFile(join(artifacts, 'page-768x1024.png'), await page.screenshot());
    await page.run(`document.getElementById('photos-section').scrollIntoView();`);
    await writeFile(join(artifacts, 'page-768x1024-results.png'), await page.screenshot());
    await page.setSize(1280, 800);
    await writeFile(join(artifacts, 'page-1280x800-results.png'), await page.screenshot());
  } finally {
    await page.close();
    await server.close();
  }
});
