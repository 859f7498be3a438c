// End-to-end: step 4 of the page — index a folder, search by text / example / "more like
// this", label two photos, check the leave-one-out numbers, classify with the adapter, export
// and import it — against references computed here from the tiny oracle's embeddings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { captureDownload, useLabels } from './app.mjs';
import { browser, serve, tempDir } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);

const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const softmax = (l) => { const m = Math.max(...l); const e = l.map((x) => Math.exp(x - m)); const z = e.reduce((a, b) => a + b); return e.map((x) => x / z); };

test('collection: index a folder, search it, teach two photos, classify with the adapter', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
  const files = expected.images.map((i) => i.file.replace('images/', ''));
  const embed = Object.fromEntries(files.map((f, i) => [f, expected.image_embeds[i]]));
  // Three labels; two photos get labels, the third label has none.
  const [SUNFLOWER, ROCKET, CAT] = [0, 5, 3].map((i) => expected.prompts[i].text);
  const labels = [SUNFLOWER, ROCKET, CAT];
  const text = [0, 5, 3].map((i) => expected.text_embeds[i]);
  const scale = expected.logit_scale_exp;
  const zeroShot = (f) => text.map((t) => scale * dot(f, t));
  // Tip-Adapter with α = 1, β = 5.5 (the page's defaults), keys = labelled photos.
  const tip = (f, keys) => {
    const logits = zeroShot(f);
    for (const { file, label } of keys) logits[label] += Math.exp(-5.5 * (1 - dot(f, embed[file])));
    return logits;
  };
  const argmax = (v) => v.indexOf(Math.max(...v));

  // The folder: every oracle photo, one twice (in a subfolder), and a broken file.
  const folder = tempDir('collection');
  for (const f of files) await cp(data(`images/${f}`), join(folder, f));
  await mkdir(join(folder, 'more'));
  await cp(data('images/chelsea.png'), join(folder, 'more/chelsea-copy.png'));
  await writeFile(join(folder, 'broken.jpg'), Buffer.from('\xff\xd8\xff\xe0 not really a jpeg'));

  const server = await serve(root);
  const page = await browser({ width: 1280, height: 1000 });
  const tiles = `return [...document.querySelectorAll('#search-results .tile')].map((t) => ({
    name: t.querySelector('.name').textContent.split('/').pop(), score: Number(t.dataset.score) }));`;
  try {
    await page.open(`${server.url}index.html`);
    await page.upload('#weights-file', [data('tiny/model.safetensors'), data('tiny/config.json')]);
    await page.waitFor(`return /^Loaded/.test(document.getElementById('model-status').textContent);`, 'the model');
    await useLabels(page, labels);

    // Bad input first: searching an empty collection says so.
    await page.run(`document.getElementById('search-text').value = 'a cat'; document.getElementById('search-form').requestSubmit();`);
    assert.match(await page.waitFor(`return document.getElementById('search-status').textContent;`, 'a message'), /collection is empty/);

    await page.upload('#gallery-folder', [folder]);
    const status = await page.waitFor(`const t = document.getElementById('gallery-status').textContent; return /added/.test(t) && t;`, 'indexing');
    assert.match(status, /^10 photos in your collection, 0 with a label\. 10 added, 1 already in the collection, 1 could not be read \(broken\.jpg: .*(decoded|not an image).*\)\.$/, status);

    // Text search: the oracle's cosine ranking (the page embeds the files itself, so scores
    // agree to 1e-3 and the order wherever neighbours are further apart than that).
    await page.run(`document.getElementById('search-text').value = arguments[0]; document.getElementById('search-form').requestSubmit();`, CAT);
    await page.waitFor(`return /most like "a photo of a cat\\."/.test(document.getElementById('search-status').textContent);`, 'text search');
    const byText = await page.run(tiles);
    const want = files.map((f) => ({ name: f, score: dot(text[2], embed[f]) })).sort((a, b) => b.score - a.score);
    assert.equal(byText.length, 10);
    byText.forEach((t, i) => {
      const ref = want.find((w) => w.name === t.name);
      assert.ok(Math.abs(t.score - ref.score) <= 1e-3, `${t.name}: ${t.score} vs oracle ${ref.score}`);
      if (i > 0 && want[i - 1].score - want[i].score > 2e-3) assert.equal(t.name, want[i].name, `rank ${i + 1}`);
    });

    // By example photo, and "more like this": the photo itself comes first.
    await page.upload('#search-image', [data('images/coffee.jpg')]);
    await page.waitFor(`return /your photo "coffee\\.jpg"/.test(document.getElementById('search-status').textContent);`, 'image search');
    const byImage = await page.run(tiles);
    assert.equal(byImage[0].name, 'coffee.jpg');
    assert.ok(byImage[0].score > 0.9999, String(byImage[0].score));
    await page.run(`[...document.querySelectorAll('#search-results .tile')].find((t) => t.querySelector('.name').textContent.endsWith('/rocket.jpg')).querySelector('.more-like-this').click();`);
    await page.waitFor(`return /most like ".*rocket\\.jpg"/.test(document.getElementById('search-status').textContent);`, 'more like this');
    assert.equal((await page.run(tiles))[0].name, 'rocket.jpg');

    // Zero-shot gets camera_gray.png wrong (rocket, not sunflower).
    const cameraZero = softmax(zeroShot(embed['camera_gray.png']));
    assert.equal(argmax(cameraZero), 1);

    // Label two photos from the tiles' menus.
    const keys = [{ file: 'coffee_alpha.png', label: 0 }, { file: 'rocket.jpg', label: 1 }];
    for (const { file, label } of keys) {
      await page.run(`
        const tile = [...document.querySelectorAll('#search-results .tile')].find((t) => t.querySelector('.name').textContent.endsWith('/' + arguments[0]));
        const select = tile.querySelector('select');
        select.value = arguments[1];
        select.dispatchEvent(new Event('change'));`, file, labels[label]);
      await page.waitFor(`return /with a label/.test(document.getElementById('gallery-status').textContent) && /Each of its|No photo/.test(document.getElementById('adapter-status').textContent);`, 'the label');
    }
    const check = await page.waitFor(`const t = document.getElementById('adapter-status').textContent; return /Each of its 2 labelled/.test(t) && t;`, 'the leave-one-out check');
    // Leave-one-out reference: each labelled photo against an adapter of the other one.
    let zeroRight = 0;
    let adaptedRight = 0;
    for (const [i, k] of keys.entries()) {
      zeroRight += argmax(zeroShot(embed[k.file])) === k.label;
      adaptedRight += argmax(tip(embed[k.file], keys.filter((_, j) => j !== i))) === k.label;
    }
    assert.ok(check.includes(`zero-shot ${zeroRight} right`) && check.includes(`with your labelled photos ${adaptedRight} right`), check);
    assert.match(check, /1 label has no labelled photo yet/);

    // Switch it on and classify camera_gray.png in step 3: now sunflower, with the formula's probabilities.
    await page.run(`document.getElementById('adapter-use').click();`);
    await page.waitFor(`return document.getElementById('adapter-use').checked && !document.getElementById('adapter-use').disabled;`, 'the adapter');
    const classifyCamera = async () => {
      const before = await page.run(`return document.querySelectorAll('#results .card').length;`);
      await page.upload('#photo-files', [data('images/camera_gray.png')]);
      return page.waitFor(`
        const cards = document.querySelectorAll('#results .card');
        if (cards.length <= ${before} || cards[0].querySelector('.meta').textContent === 'waiting…') return null;
        return { meta: cards[0].querySelector('.meta').textContent,
          predictions: [...cards[0].querySelectorAll('.pred')].map((p) => ({ label: p.querySelector('.label').textContent, probability: Number(p.dataset.probability) })) };`, 'the adapted result');
    };
    const adapted = await classifyCamera();
    const wantProbs = softmax(tip(embed['camera_gray.png'], keys));
    assert.match(adapted.meta, /with your labelled photos/);
    assert.equal(adapted.predictions[0].label, SUNFLOWER);
    for (const p of adapted.predictions) {
      assert.ok(Math.abs(p.probability - wantProbs[labels.indexOf(p.label)]) <= 1e-3, `${p.label}: ${p.probability} vs ${wantProbs[labels.indexOf(p.label)]}`);
    }

    // Export → import gives the same result.
    const exported = (await captureDownload(page, 'adapter-export')).text;
    const adapterFile = JSON.parse(exported);
    assert.deepEqual(adapterFile.labels, labels);
    assert.deepEqual(adapterFile.key_labels.sort(), [0, 1]);
    const saved = join(folder, 'adapter.json');
    await writeFile(saved, exported);
    await page.upload('#adapter-import', [saved]);
    await page.waitFor(`return /^Imported adapter/.test(document.getElementById('adapter-status').textContent);`, 'the import');
    const again = await classifyCamera();
    assert.deepEqual(again.predictions, adapted.predictions);

    await mkdir(join(root, 'test-artifacts'), { recursive: true });
    await page.run(`document.getElementById('gallery-section').scrollIntoView();`);
    await writeFile(join(root, 'test-artifacts/collection-1280x1000.png'), await page.screenshot());

    // A reload keeps the collection and its labels.
    await page.open(`${server.url}index.html`);
    const kept = await page.waitFor(`const t = document.getElementById('gallery-status').textContent; return /in your collection/.test(t) && t;`, 'the stored collection');
    assert.match(kept, /^10 photos in your collection, 2 with a label\./);
  } finally {
    await page.close();
    await server.close();
  }
});
