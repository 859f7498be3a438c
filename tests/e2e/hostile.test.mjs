// End-to-end: hostile input on the page (#19). Files whose labels are not text are refused with
// a sentence and change nothing; the adapter check with the linear probe runs in parts and
// still gives its result, also when newer checks replace running ones; a model loaded while
// photos are being added keeps each model's embeddings in its own collection; a weights file
// refused at its header leaves the model in use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { deflateSync } from 'node:zlib';
import { captureDownload, useLabels } from './app.mjs';
import { browser, serve, tempDir } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const argmax = (v) => v.indexOf(Math.max(...v));

/** Collects the page's uncaught errors and unhandled rejections from now on. */
const WATCH_ERRORS = `window.__uncaught = [];
  addEventListener('error', (e) => window.__uncaught.push(String(e.message)));
  addEventListener('unhandledrejection', (e) => window.__uncaught.push(String(e.reason && e.reason.message || e.reason)));`;

/** The list panel's state: which list is active, how many there are, its labels and templates. */
const LISTS = `const select = document.getElementById('list-select');
  return { active: select.value, lists: select.options.length, labels: document.getElementById('labels').value, templates: document.getElementById('templates').value };`;

/** The adapter status once it shows a check of `n` labelled photos: { text, error, exportable }. */
const checkShown = (n, prefix = '') => `const s = document.getElementById('adapter-status');
  return new RegExp('^${prefix}Each of its ${n} labelled').test(s.textContent)
    && { text: s.textContent, error: s.classList.contains('error'), exportable: !document.getElementById('adapter-export').disabled };`;

/** "zero-shot Z right …, with your labelled photos A right" → [Z, A]. */
function counts(text) {
  const m = /zero-shot (\d+) right .*with your labelled photos (\d+) right/.exec(text);
  assert.ok(m, text);
  return [Number(m[1]), Number(m[2])];
}

test('labels that are not text are refused; the adapter check with the probe completes', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const files = expected.images.map((i) => i.file.replace('images/', ''));
  const embed = Object.fromEntries(files.map((f, i) => [f, expected.image_embeds[i]]));
  // Four labels; four photos get one of the first three, the fourth label has none. (Random
  // weights: the oracle's labels mean nothing here, these give distinct, clear-cut counts.)
  const chosen = [0, 5, 3, 2];
  const labels = chosen.map((i) => expected.prompts[i].text);
  const text = chosen.map((i) => expected.text_embeds[i]);
  const keys = [{ file: 'astronaut.jpg', label: 1 }, { file: 'rocket.jpg', label: 0 }, { file: 'coffee.jpg', label: 2 }, { file: 'astronaut_wide.png', label: 1 }];
  const zeroShot = (f) => text.map((t) => expected.logit_scale_exp * dot(f, t));
  const tip = (f, others) => {
    const logits = zeroShot(f);
    for (const { file, label } of others) logits[label] += Math.exp(-5.5 * (1 - dot(f, embed[file])));
    return logits;
  };
  let zeroRight = 0;
  let adaptedRight = 0;
  for (const [i, k] of keys.entries()) {
    zeroRight += argmax(zeroShot(embed[k.file])) === k.label;
    adaptedRight += argmax(tip(embed[k.file], keys.filter((_, j) => j !== i))) === k.label;
  }

  const folder = tempDir('hostile');
  const server = await serve(root);
  const page = await browser({ width: 1280, height: 1000 });
  try {
    await page.open(`${server.url}index.html`);
    await page.run(WATCH_ERRORS);
    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    await page.waitFor(`return /^Loaded/.test(document.getElementById('model-status').textContent);`, 'the model');
    await useLabels(page, labels);
    await page.waitFor(`return /collection is empty/.test(document.getElementById('gallery-status').textContent);`, 'the collection');

    // 1. An adapter whose labels hold a number, one whose labels are one string, and a list
    // file with an object among its labels: each is refused with a sentence naming the file
    // and the item, and the lists stay as they were.
    const before = await page.run(LISTS);
    const refusals = [
      ['fieldclip-adapter.json', { labels: [labels[0], labels[1], 3], templates: ['{}'] }, 'adapter-import', 'adapter-status',
        'fieldclip-adapter.json: its labels must be a list of text strings (item 3 is a number).'],
      ['one-label.json', { labels: labels[0] }, 'adapter-import', 'adapter-status',
        'one-label.json: its labels must be a list of text strings (not a single string).'],
      ['bad-list.json', { name: 'Bad', labels: [labels[0], { label: labels[1] }] }, 'list-import', 'labels-status',
        'bad-list.json: its labels must be a list of text strings (item 2 is an object).'],
    ];
    for (const [name, content, input, status, message] of refusals) {
      await writeFile(join(folder, name), JSON.stringify(content));
      await page.run(`const s = document.getElementById(arguments[0]); s.textContent = ''; s.classList.remove('error');`, status);
      await page.upload(`#${input}`, [join(folder, name)]);
      const shown = await page.waitFor(`const s = document.getElementById('${status}'); return s.classList.contains('error') && s.textContent;`, `the refusal of ${name}`);
      assert.equal(shown, message);
      assert.deepEqual(await page.run(LISTS), before, `${name} left the lists as they were`);
    }
    assert.equal(await page.run(`return document.getElementById('adapter-use').checked;`), false, 'a refused adapter is not switched on');

    // 3. The collection, four photos labelled from the tiles' menus: the check (in parts, one
    // a photo without the probe) adds up to exact leave-one-out.
    const photos = [...keys.map((k) => k.file), 'camera_gray.png'];
    await page.upload('#gallery-files', photos.map((f) => data(`images/${f}`)));
    await page.waitFor(`return /^5 photos in your collection, 0 with a label\\. 5 added\\.$/.test(document.getElementById('gallery-status').textContent);`, 'indexing');
    await page.run(`document.getElementById('search-text').value = arguments[0]; document.getElementById('search-form').requestSubmit();`, labels[2]);
    await page.waitFor(`return document.querySelectorAll('#search-results .tile').length === 5;`, 'the tiles');
    for (const [n, { file, label }] of keys.entries()) {
      await page.run(`
        const tile = [...document.querySelectorAll('#search-results .tile')].find((t) => t.querySelector('.name').textContent === arguments[0]);
        const select = tile.querySelector('select');
        select.value = arguments[1];
        select.dispatchEvent(new Event('change'));`, file, labels[label]);
      await page.waitFor(`return /, ${n + 1} with a label\\.$/.test(document.getElementById('gallery-status').textContent);`, `label ${n + 1}`);
    }
    // Each label started a check; each newer one replaced the one before.
    const plain = await page.waitFor(checkShown(keys.length), 'the check of the labelled photos');
    assert.equal(plain.error, false, plain.text);
    assert.deepEqual(counts(plain.text), [zeroRight, adaptedRight], plain.text);
    assert.match(plain.text, /1 label has no labelled photo yet/);

    // The linear probe on: retrained for each part, the check still completes and shows its
    // result; zero-shot is the same photos against the same text, so the same count.
    await page.run(`const s = document.getElementById('adapter-status'); s.textContent = ''; document.getElementById('adapter-probe').click();`);
    const probed = await page.waitFor(checkShown(keys.length), 'the check with the probe');
    assert.equal(probed.error, false, probed.text);
    assert.equal(counts(probed.text)[0], zeroRight, probed.text);
    assert.ok(counts(probed.text)[1] <= keys.length, probed.text);
    await page.waitFor(`return !document.getElementById('adapter-export').disabled;`, 'the adapter to export');

    // Checks asked for one after the other, each replacing the one before: only the last
    // shows, and no replaced one shows as an error.
    await page.run(`document.getElementById('adapter-status').textContent = ''; for (let i = 0; i < 4; i++) document.getElementById('adapter-check').click();`);
    const rechecked = await page.waitFor(checkShown(keys.length), 'the last of four checks');
    assert.equal(rechecked.error, false, rechecked.text);
    assert.equal(counts(rechecked.text)[0], zeroRight, rechecked.text);

    // The same with the adapter imported (its check starts at once, no adapter to make first,
    // so the worker stops running checks between their parts).
    const exported = (await captureDownload(page, 'adapter-export')).text;
    assert.ok(JSON.parse(exported).probe, 'the exported adapter has its probe');
    await writeFile(join(folder, 'with-probe.json'), exported);
    await page.upload('#adapter-import', [join(folder, 'with-probe.json')]);
    await page.waitFor(checkShown(keys.length, 'Imported adapter\\\\. '), 'the imported adapter');
    await page.run(`document.getElementById('adapter-status').textContent = ''; for (let i = 0; i < 4; i++) document.getElementById('adapter-check').click();`);
    const imported = await page.waitFor(checkShown(keys.length, 'Imported adapter\\\\. '), 'the last check of the imported adapter');
    assert.equal(imported.error, false, imported.text);
    assert.equal(counts(imported.text)[0], zeroRight, imported.text);
    assert.ok(imported.exportable, 'the adapter can be exported after the last check');

    assert.deepEqual(await page.run('return window.__uncaught;'), [], 'uncaught errors in the page');
  } finally {
    await page.close();
    await server.close();
  }
});

/** A valid 8-bit RGB PNG of `size`×`size`, a different picture for each `seed`. */
function png(size, seed) {
  const row = size * 3 + 1;
  const raw = Buffer.alloc(row * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) raw.set([(x * 4 + seed) & 255, (y * 4 + 3 * seed) & 255, (seed * 37 + x * y) & 255], y * row + 1 + x * 3);
  }
  const crc32 = (bytes) => {
    let crc = 0xffffffff;
    for (const b of bytes) {
      crc ^= b;
      for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
    }
    return (crc ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, body) => {
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const out = Buffer.alloc(12 + body.length);
    out.writeUInt32BE(body.length, 0);
    typed.copy(out, 4);
    out.writeUInt32BE(crc32(typed), 8 + body.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bits per sample
  header[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

test('a model loaded while photos are added: no embedding lands in the other model\'s collection', { timeout: 600000 }, async (t) => {
  const COUNT = 150;
  const folder = tempDir('switch');
  const paths = [];
  for (let i = 0; i < COUNT; i++) {
    paths.push(join(folder, `photo-${String(i).padStart(3, '0')}.png`));
    await writeFile(paths[i], png(64, i));
  }
  const server = await serve(root);
  const page = await browser({ width: 1280, height: 1000 });
  const text = (id) => `return document.getElementById('${id}').textContent;`;
  try {
    await page.open(`${server.url}index.html`);
    await page.run(WATCH_ERRORS);
    // Model A (Hugging Face layout), kept on the device so that it can be used again below.
    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    await page.waitFor(`return /^Loaded .*Hugging Face layout/.test(document.getElementById('model-status').textContent);`, 'model A');
    assert.match(await page.waitFor(`const t = document.getElementById('save-status').textContent; return /^Saved|not saved/.test(t) && t;`, 'saving model A'), /^Saved on this device/);
    await page.waitFor(`return /collection is empty/.test(document.getElementById('gallery-status').textContent);`, 'model A\'s collection');

    // Photos being added for model A when model B (open_clip layout) is loaded.
    await page.upload('#gallery-files', paths);
    await page.waitFor(`const m = /^Adding photos: (\\d+) of/.exec(document.getElementById('gallery-status').textContent); return m && Number(m[1]) >= 2;`, 'the first photos');
    await page.upload('#weights-file', [data('openclip_tiny/model.safetensors'), data('openclip_tiny/open_clip_config.json')]);
    await page.waitFor(`const t = document.getElementById('model-status').textContent; return /^Loaded .*open_clip layout|could not/.test(t);`, 'model B');
    assert.match(await page.run(text('model-status')), /^Loaded .*open_clip layout/);
    const opened = await page.waitFor(`const t = document.getElementById('gallery-status').textContent; return /^Your collection is empty/.test(t) && t;`, 'model B\'s collection');
    // Model B's collection holds none of model A's photos; the batch said it stopped (unless
    // it was over before model B was asked for).
    const stop = /The model changed; the rest of this batch was not added \((\d+) of its 150 photos/.exec(opened);
    if (!stop) t.diagnostic(`the batch ended before the model changed: ${opened}`);
    const addedForA = stop ? Number(stop[1]) : COUNT;
    assert.ok(addedForA >= 2 && addedForA <= COUNT, opened);
    await page.waitFor(`const t = document.getElementById('save-status').textContent; return /^Saved|not saved/.test(t) && t;`, 'saving model B');

    // Back to model A (from the device): its collection holds exactly the photos added for it.
    await page.run(`[...document.querySelectorAll('#model-list li button')].find((b) => b.textContent === 'Use' && !b.disabled).click();`);
    await page.waitFor(`return /^Loaded .*Hugging Face layout/.test(document.getElementById('model-status').textContent);`, 'model A again');
    const back = await page.waitFor(`const t = document.getElementById('gallery-status').textContent; return /in your collection/.test(t) && t;`, 'model A\'s collection again');
    assert.match(back, new RegExp(`^${addedForA} photos in your collection, 0 with a label\\.`), back);

    assert.deepEqual(await page.run('return window.__uncaught;'), [], 'uncaught errors in the page');
  } finally {
    await page.close();
    await server.close();
  }
});

test('a weights file refused at its header leaves the model in use, labels and all', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const labels = expected.prompts.slice(0, 4).map((p) => p.text);
  const folder = tempDir('kept');
  // Not a model, and a model cut off after its header.
  const notModel = join(folder, 'notes.safetensors');
  await writeFile(notModel, 'these are my field notes, not weights');
  const tiny = await readFile(data('tiny/model.safetensors'));
  const cut = join(folder, 'cut.safetensors');
  await writeFile(cut, tiny.subarray(0, tiny.length - 1000));
  const server = await serve(root);
  const page = await browser({ width: 1280, height: 1000 });
  const cards = (n) => `const cards = [...document.querySelectorAll('#results .card')];
    if (cards.length < ${n} || cards.some((c) => c.querySelector('.meta').textContent === 'waiting…')) return null;
    return cards.map((c) => [...c.querySelectorAll('.pred')].map((p) => [p.querySelector('.label').textContent, Number(p.dataset.probability)]));`;
  try {
    await page.open(`${server.url}index.html`);
    await page.run(WATCH_ERRORS);
    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    await page.waitFor(`return /^Loaded/.test(document.getElementById('model-status').textContent);`, 'the model');
    await useLabels(page, labels);
    await page.upload('#photo-files', [data('images/chelsea.png')]);
    const [before] = await page.waitFor(cards(1), 'the first card');

    for (const [file, why] of [[notModel, /not a weights file|not a safetensors/i], [cut, /cut off/]]) {
      await page.run(`document.getElementById('model-status').textContent = '';`);
      await page.upload('#weights-file', [file]);
      const status = await page.waitFor(`const p = document.getElementById('model-status');
        return /could not be loaded/.test(p.textContent) && { text: p.textContent, failed: p.classList.contains('error') };`, file);
      assert.ok(status.failed, status.text);
      assert.match(status.text, why);
      assert.match(status.text, /The model loaded before is still in use\.$/);
      // The same model, the same labels: a photo added now gets the first one's predictions.
      await page.upload('#photo-files', [data('images/chelsea.png')]);
      const all = await page.waitFor(cards(file === notModel ? 2 : 3), 'a card after the refused file');
      assert.deepEqual(all[all.length - 1], before);
    }
    assert.equal(await page.run(`return document.getElementById('labels').value;`), labels.join('\n'));
    assert.deepEqual(await page.run('return window.__uncaught;'), [], 'uncaught errors in the page');
  } finally {
    await page.close();
    await server.close();
  }
});
