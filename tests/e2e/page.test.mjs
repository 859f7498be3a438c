// End-to-end: the real page in headless Debian Chromium (WebGPU on SwiftShader), the tiny
// oracle model loaded through the file input, three oracle photos and a corrupt file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { browser, serve } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const artifacts = join(root, 'test-artifacts');

test('classify oracle photos on the page', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const server = await serve(root);
  const page = await browser({ width: 768, height: 1024 });
  try {
    await page.goto(`${server.url}index.html`);
    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    const status = await page.waitFor(
      `const t = document.getElementById('model-status').textContent; return /Loaded|could not/.test(t) && t;`, 'the model');
    assert.match(status, /Loaded ViT .*1\.9 M parameters/, status);

    // The oracle's prompts are whole sentences: use them as labels with the template "{}".
    const labels = expected.prompts.map((p) => p.text);
    await page.run(`
      const [labels] = arguments;
      document.getElementById('labels').value = labels.join('\\n');
      document.getElementById('template').value = '{}';
      document.getElementById('template').dispatchEvent(new Event('input'));`, labels);
    await page.waitFor(`return /^12 labels ready/.test(document.getElementById('labels-status').textContent);`, 'labels');

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

    await mkdir(artifacts, { recursive: true });
    await writeFile(join(artifacts, 'page-768x1024.png'), await page.screenshot());
  } finally {
    await page.close();
    await server.close();
  }
});
