// End-to-end: the hostile corpus (tests/hostile/corpus.rs, issue #19) through the page, as a
// user would hand it over: weights files through the model picker, label lists through the list
// import, photos through the photo picker, adapters through the adapter import. Each refused file
// gets a message (on its card or in its panel's status), nothing throws uncaught, no dialog opens
// (a label written as HTML must never run), and afterwards the page still classifies a photo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { useLabels } from './app.mjs';
import { browser, serve } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);

/**
 * The corpus folder: the one scripts/test.sh made (FIELDCLIP_HOSTILE_CORPUS), else made now by
 * `cargo run --example hostile_corpus` (bounded in time like every step here).
 */
function corpus() {
  let dir = process.env.FIELDCLIP_HOSTILE_CORPUS;
  if (!dir || !existsSync(join(dir, 'cases.json'))) {
    const target = process.env.CARGO_TARGET_DIR || join(process.env.HOME, '.cache/fieldclip-target');
    dir = join(target, 'tmp', 'hostile-page-corpus');
    const made = spawnSync('cargo', ['run', '--quiet', '--example', 'hostile_corpus', '--', dir],
      { cwd: root, stdio: 'inherit', timeout: 1200000, env: { ...process.env, CARGO_TARGET_DIR: target } });
    assert.equal(made.status, 0, 'making the hostile corpus');
  }
  const cases = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')).filter((c) => !c.native_only);
  return { file: (c) => join(dir, c.file), cases, kind: (k) => cases.filter((c) => c.kind === k), config: join(dir, 'config.json') };
}

/** From now on: uncaught errors, unhandled rejections and dialogs are recorded, not shown. */
const WATCH = `window.__uncaught = []; window.__dialogs = [];
  addEventListener('error', (e) => window.__uncaught.push(String(e.message)));
  addEventListener('unhandledrejection', (e) => window.__uncaught.push(String(e.reason && e.reason.message || e.reason)));
  for (const name of ['alert', 'confirm', 'prompt']) window[name] = (m) => { window.__dialogs.push(name + ': ' + m); return false; };`;

/** A status paragraph's text once it changed from `before` and is not a progress line. */
const settled = (id, before) => `const p = document.getElementById('${id}');
  const t = p.textContent;
  return t !== ${JSON.stringify(before)} && !/^(Reading|Encoding|Loading|Building|Checking)/.test(t) && t.trim() !== ''
    && { text: t, failed: p.classList.contains('error') };`;

test('the hostile corpus on the page: each file refused alone, with a message', { timeout: 600000 }, async () => {
  const c = corpus();
  assert.ok(c.kind('image').length >= 30);
  const server = await serve(root);
  const page = await browser({ width: 1280, height: 1000 });
  try {
    await page.open(`${server.url}index.html`);
    await page.run(WATCH);

    // Weights: each refused with what is wrong with it.
    for (const w of c.kind('weights')) {
      await page.run(`document.getElementById('model-status').textContent = '';`);
      await page.upload('#weights-file', [c.file(w), c.config]);
      const status = await page.waitFor(settled('model-status', ''), w.file);
      assert.ok(status.failed && status.text.includes(w.expect.message), `${w.file} (${w.what}): ${status.text}`);
    }

    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    await page.waitFor(`return /^Loaded/.test(document.getElementById('model-status').textContent);`, 'the good model');

    // Label lists: imported and used, or refused with a message.
    for (const l of c.kind('labels')) {
      await page.waitFor(`return !/^Encoding/.test(document.getElementById('labels-status').textContent);`, 'labels settled');
      await page.run(`document.getElementById('labels-status').textContent = '';`);
      await page.upload('#list-import', [c.file(l)]);
      const status = await page.waitFor(settled('labels-status', ''), l.file, 300000);
      if (l.expect.outcome === 'accepted') assert.ok(!status.failed && /labels ready/.test(status.text), `${l.file}: ${status.text}`);
      else assert.ok(status.failed && status.text.length > 10, `${l.file} (${l.what}) should be refused: ${status.text}`);
    }
    const html = await page.run(`return document.querySelectorAll('img[src="x"], script:not([src])').length;`);
    assert.equal(html, 0, 'a label written as HTML was parsed');

    // Photos: all at once, the good photo last; each hostile one fails on its own card.
    await useLabels(page, ['cat', 'dog']);
    const images = c.kind('image');
    await page.upload('#photo-files', [...images.map(c.file), data('images/chelsea_small.png')]);
    const cards = await page.waitFor(`
      const cards = [...document.querySelectorAll('#results .card')];
      if (cards.length < ${images.length + 1} || cards.some((c) => c.querySelector('.meta').textContent === 'waiting…')) return null;
      return cards.map((c) => ({
        name: c.querySelector('.name').textContent,
        error: c.querySelector('.error')?.textContent ?? null,
        probabilities: [...c.querySelectorAll('.pred')].map((p) => Number(p.dataset.probability)),
      }));`, 'every photo card', 300000);
    for (const image of [...images, { file: 'chelsea_small.png', expect: { outcome: 'accepted' }, what: 'a good photo' }]) {
      const card = cards.find((k) => k.name === image.file);
      assert.ok(card, `${image.file}: no card`);
      if (image.expect.outcome === 'accepted') {
        assert.equal(card.error, null, `${image.file} (${image.what})`);
        const sum = card.probabilities.reduce((a, b) => a + b, 0);
        assert.ok(card.probabilities.length === 2 && card.probabilities.every(Number.isFinite) && Math.abs(sum - 1) < 1e-3, `${image.file}: ${card.probabilities}`);
      } else {
        assert.ok(card.error && card.error.includes(image.expect.message), `${image.file} (${image.what}): ${card.error}`);
      }
    }

    // Adapters: imported, or refused with a message; the labels stay usable either way.
    for (const a of c.kind('adapter')) {
      await page.run(`document.getElementById('adapter-status').textContent = '';`);
      await page.upload('#adapter-import', [c.file(a)]);
      const status = await page.waitFor(settled('adapter-status', ''), a.file);
      if (a.expect.outcome === 'accepted') assert.ok(!status.failed && /Imported adapter/.test(status.text), `${a.file}: ${status.text}`);
      else assert.ok(status.failed && status.text.length > 10, `${a.file} (${a.what}) should be refused: ${status.text}`);
    }

    // Still working: a good photo is classified after all that.
    await page.waitFor(`return !/^Encoding/.test(document.getElementById('labels-status').textContent);`, 'labels settled');
    await page.upload('#photo-files', [data('images/coffee.jpg')]);
    const last = await page.waitFor(`
      const card = document.querySelector('#results .card');
      return card && card.querySelector('.name').textContent === 'coffee.jpg' && card.querySelector('.meta').textContent !== 'waiting…'
        && { error: card.querySelector('.error')?.textContent ?? null, preds: card.querySelectorAll('.pred').length };`, 'a good photo at the end');
    assert.equal(last.error, null);
    assert.ok(last.preds > 0);

    const watched = await page.run(`return { uncaught: window.__uncaught, dialogs: window.__dialogs };`);
    assert.deepEqual(watched, { uncaught: [], dialogs: [] });
  } finally {
    await page.close();
    await server.close();
  }
});
