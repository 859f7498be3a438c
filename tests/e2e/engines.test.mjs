// End-to-end: the page's core flows in every browser engine a field tablet or a desktop runs —
// Chromium, Firefox (Gecko) and WebKit (Safari's engine, which every browser on an iPad uses; here
// WebKitGTK's MiniBrowser) — each a real browser from Debian's packages driven over WebDriver.
// One visit per engine, as a user would go: a model through the file input, a taxa list and its
// answer, the model offered under models/, a collection searched by text, two photos taught as
// examples and the adapter used, labels edited, photos classified to the oracle's probabilities,
// the CSV and the adapter exported, a heat-map drawn; then the server gone and the page opened
// again: the model comes back from the device and classifies offline. The CPU backend runs on
// more than one thread in every engine (the host sends the isolation headers, as scripts/serve.py
// does). FIELDCLIP_ENGINES=firefox,webkit picks engines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { assertMatchesOracle, captureDownload, classify, loadModelFromUrl, makeSite, PHOTOS, useLabels, waitForServiceWorker } from './app.mjs';
import { assertOracle, assertShown, oracleMap, overlay, where } from './heatmap-steps.mjs';
import { browser, enginesToTest, serve, tempDir } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const ISOLATED = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const text = (id) => `return document.getElementById('${id}').textContent;`;

const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const softmax = (l) => { const m = Math.max(...l); const e = l.map((x) => Math.exp(x - m)); const z = e.reduce((a, b) => a + b); return e.map((x) => x / z); };

/** The first card's predictions once it has them. */
async function firstCard(page, before) {
  return page.waitFor(`
    const cards = document.querySelectorAll('#results .card');
    if (cards.length <= ${before} || cards[0].querySelector('.meta').textContent === 'waiting…') return null;
    const c = cards[0];
    const answer = c.querySelector('.answer');
    return { name: c.querySelector('.name').textContent, meta: c.querySelector('.meta').textContent,
      error: c.querySelector('p.error:not(.where-error)')?.textContent ?? null,
      answer: answer && { rank: answer.dataset.answerRank, name: answer.dataset.answerName, probability: Number(answer.dataset.answerProbability), text: answer.textContent },
      predictions: [...c.querySelectorAll('.pred')].map((p) => ({ label: p.querySelector('.label').textContent, key: p.dataset.label, probability: Number(p.dataset.probability) })) };`,
  'a result card', 300000);
}

async function classifyOne(page, path) {
  const before = await page.run(`return document.querySelectorAll('#results .card').length;`);
  await page.upload('#photo-files', [path]);
  return firstCard(page, before);
}

async function set(page, id, value) {
  await page.run(`const el = document.getElementById(arguments[0]);
    if (el.type === 'checkbox') el.checked = arguments[1]; else el.value = arguments[1];
    el.dispatchEvent(new Event('change'));`, id, value);
}

const modelStatus = `const t = document.getElementById('model-status').textContent; return /Loaded|could not|Could not|failed/.test(t) && t;`;
const saveStatus = `const t = document.getElementById('save-status').textContent; return /^Saved|not saved|loaded from this device/.test(t) && t;`;

for (const engine of enginesToTest()) {
  test(`core flows in ${engine}: load, taxa, collection, few-shot, classify, export, heat-map, offline reload`, { timeout: 900000 }, async (t) => {
    const expected = JSON.parse(await readFile(data('tiny/expected.json'), 'utf8'));
    const taxonomy = JSON.parse(await readFile(data('taxonomy/expected.json'), 'utf8'));
    const heatmap = JSON.parse(await readFile(data('heatmap/tiny.json'), 'utf8'));
    const labels = expected.prompts.map((p) => p.text);
    const site = await makeSite();
    // Deployed under a sub-path, as on most static hosts, with the isolation headers.
    const server = await serve(tempDir('host'), { mounts: { '/field/fieldclip/': site }, headers: ISOLATED });
    const app = `${server.url}field/fieldclip/`;
    const page = await browser({ engine, width: 1280, height: 1000 });
    let tripwire;
    try {
      await page.open(app);
      await waitForServiceWorker(page);
      const features = await page.run(`return { ua: navigator.userAgent, cores: navigator.hardwareConcurrency, webgpu: Boolean(navigator.gpu),
        isolated: self.crossOriginIsolated, storage: document.getElementById('storage-warning').hidden ? 'kept' : document.getElementById('storage-warning').textContent };`);
      t.diagnostic(JSON.stringify(features));
      assert.equal(features.storage, 'kept', `${engine} keeps lists and results on the device`);

      // 1. A model through the file input: the tiny open_clip model, and taxa as labels.
      await page.upload('#weights-file', [data('openclip_tiny/model.safetensors'), data('openclip_tiny/open_clip_config.json')]);
      const openclip = await page.waitFor(modelStatus, 'the open_clip model', 300000);
      assert.match(openclip, /^Loaded/, openclip);
      // Every engine runs the CPU backend on more than one thread: the threaded build with
      // relaxed SIMD where the engine has it, with SIMD128 where not (WebKit).
      const threads = /Running on the CPU, (\d+) threads, (relaxed SIMD|SIMD128)/.exec(openclip);
      assert.ok(threads && Number(threads[1]) > 1, `${engine}: ${openclip}`);
      t.diagnostic(`${engine}: ${openclip}`);
      assert.match(await page.waitFor(saveStatus, 'saving'), /^Saved on this device/);
      await page.waitFor(`return !/^Encoding/.test(document.getElementById('labels-status').textContent);`, 'the preset labels', 300000);
      await page.run(`document.getElementById('labels-status').textContent = '';`);
      await page.upload('#list-import', [data('taxonomy/taxa.csv')]);
      const ready = await page.waitFor(`const s = document.getElementById('labels-status');
        return (/^24 taxa ready/.test(s.textContent) || s.classList.contains('error')) && s.textContent;`, 'the taxa', 300000);
      assert.match(ready, /^24 taxa ready/, ready);
      await set(page, 'rank-threshold', '0.2');
      await set(page, 'preprocess', 'squash');
      for (const name of ['chelsea.png', 'astronaut.jpg']) {
        const card = await classifyOne(page, data(`images/${name}`));
        const oracle = taxonomy.images.find((i) => i.file === `images/${name}`).pybioclip_squash;
        const want = oracle.answers_at_other_thresholds['0.2'];
        assert.ok(!card.error && card.answer, `${name}: ${card.error ?? 'no answer line'}`);
        if (want === null) {
          assert.equal(card.answer.rank, '', `${name}: ${card.answer.text}`);
        } else {
          assert.deepEqual([card.answer.rank, card.answer.name], [want.rank, want.taxon], `${name}: ${card.answer.text}`);
          assert.ok(Math.abs(card.answer.probability - want.score) <= 1e-3, `${name}: shown ${card.answer.probability}, oracle ${want.score}`);
        }
        assert.equal(card.predictions[0].key, oracle.rollup.species[0].taxon, `${name}: top species`);
      }
      await set(page, 'preprocess', 'auto');

      // 2. The model offered under models/, kept on the device.
      await loadModelFromUrl(page);
      assert.match(await page.waitFor(saveStatus, 'saving'), /^Saved on this device/);

      // 3. The collection: photos added, searched by text; two taught; the adapter used.
      const files = expected.images.map((i) => i.file.replace('images/', ''));
      const embed = Object.fromEntries(files.map((f, i) => [f, expected.image_embeds[i]]));
      const three = [0, 5, 3];
      const [SUNFLOWER, ROCKET, CAT] = three.map((i) => expected.prompts[i].text);
      const textEmbeds = three.map((i) => expected.text_embeds[i]);
      await useLabels(page, [SUNFLOWER, ROCKET, CAT]);
      await page.upload('#gallery-files', files.map((f) => data(`images/${f}`)));
      const indexed = await page.waitFor(`const t = document.getElementById('gallery-status').textContent; return /added/.test(t) && t;`, 'indexing', 300000);
      assert.match(indexed, /^10 photos in your collection, 0 with a label\./, indexed);
      await page.run(`document.getElementById('search-text').value = arguments[0]; document.getElementById('search-form').requestSubmit();`, CAT);
      await page.waitFor(`return /most like "a photo of a cat\\."/.test(document.getElementById('search-status').textContent);`, 'text search');
      const found = await page.run(`return [...document.querySelectorAll('#search-results .tile')].map((t) => ({
        name: t.querySelector('.name').textContent.split('/').pop(), score: Number(t.dataset.score) }));`);
      const ranked = files.map((f) => ({ name: f, score: dot(textEmbeds[2], embed[f]) })).sort((a, b) => b.score - a.score);
      assert.equal(found.length, 10);
      found.forEach((f, i) => {
        assert.ok(Math.abs(f.score - ranked.find((r) => r.name === f.name).score) <= 1e-3, `${f.name}: ${f.score}`);
        if (i > 0 && ranked[i - 1].score - ranked[i].score > 2e-3) assert.equal(f.name, ranked[i].name, `search rank ${i + 1}`);
      });
      const keys = [{ file: 'coffee_alpha.png', label: 0 }, { file: 'rocket.jpg', label: 1 }];
      for (const { file, label } of keys) {
        await page.run(`
          const tile = [...document.querySelectorAll('#search-results .tile')].find((t) => t.querySelector('.name').textContent.endsWith(arguments[0]));
          const select = tile.querySelector('select');
          select.value = arguments[1];
          select.dispatchEvent(new Event('change'));`, file, [SUNFLOWER, ROCKET, CAT][label]);
        await page.waitFor(`return /with a label/.test(document.getElementById('gallery-status').textContent) && /Each of its|No photo/.test(document.getElementById('adapter-status').textContent);`, 'the label');
      }
      await page.waitFor(`return /Each of its 2 labelled/.test(document.getElementById('adapter-status').textContent);`, 'the leave-one-out check');
      await page.run(`document.getElementById('adapter-use').click();`);
      await page.waitFor(`return document.getElementById('adapter-use').checked && !document.getElementById('adapter-use').disabled;`, 'the adapter');
      // Tip-Adapter at the page's defaults (α = 1, β = 5.5) over the two labelled photos.
      const scale = expected.logit_scale_exp;
      const tip = (f) => {
        const logits = textEmbeds.map((e) => scale * dot(f, e));
        for (const k of keys) logits[k.label] += Math.exp(-5.5 * (1 - dot(f, embed[k.file])));
        return softmax(logits);
      };
      const adapted = await classifyOne(page, data('images/camera_gray.png'));
      assert.match(adapted.meta, /with your labelled photos/);
      const wantAdapted = tip(embed['camera_gray.png']);
      for (const p of adapted.predictions) {
        const want = wantAdapted[[SUNFLOWER, ROCKET, CAT].indexOf(p.label)];
        assert.ok(Math.abs(p.probability - want) <= 1e-3, `adapted ${p.label}: ${p.probability} vs ${want}`);
      }
      const adapterFile = JSON.parse((await captureDownload(page, 'adapter-export')).text);
      assert.deepEqual(adapterFile.labels, [SUNFLOWER, ROCKET, CAT]);
      await page.run(`document.getElementById('adapter-use').click();`);
      await page.waitFor(`return !document.getElementById('adapter-use').checked;`, 'the adapter off');

      // 4. Labels edited, photos classified to the oracle's probabilities, a broken photo alone.
      await page.run(`document.getElementById('clear-results').click();`);
      await page.waitFor(`return document.querySelectorAll('#results .card').length === 0;`, 'the results cleared');
      await useLabels(page, labels);
      const broken = join(tempDir('broken'), 'broken-photo.jpg');
      await writeFile(broken, Buffer.from('\xff\xd8\xff\xe0 definitely not a complete jpeg'));
      const brokenCard = await classifyOne(page, broken);
      assert.match(brokenCard.error ?? '', /could not be decoded|not an image/);
      const online = await classify(page, PHOTOS);
      assertMatchesOracle(online, expected, labels);
      const csv = await captureDownload(page, 'export-csv');
      const rows = csv.text.trim().split('\n');
      assert.equal(rows[0], 'file,rank,label,probability');
      for (const name of PHOTOS) {
        online[name].forEach((p, rank) => {
          const label = /[",]/.test(p.label) ? `"${p.label.replace(/"/g, '""')}"` : p.label;
          assert.ok(rows.includes(`${name},${rank + 1},${label},${p.probability.toFixed(6)}`), `${name} rank ${rank + 1} in the CSV`);
        });
      }

      // 5. A heat-map over the photo: the oracle's ClearCLIP map.
      const wide = await classifyOne(page, data('images/astronaut_wide.png'));
      const label = wide.predictions[1].label;
      await where(page, label);
      const shown = await overlay(page, label);
      assertShown(shown, `${engine} heat-map`);
      assertOracle(shown, oracleMap(heatmap, 'ClearCLIP', 'astronaut_wide.png', label), `${engine} heat-map`);
      await mkdir(join(root, 'test-artifacts'), { recursive: true });
      await page.run(`document.getElementById('photos-section').scrollIntoView();`);
      await writeFile(join(root, `test-artifacts/engine-${engine}-1280x1000.png`), await page.screenshot());

      // 6. The server gone (a listener on its port records whatever still asks it): the page,
      // the model, the lists and the results come back from the device.
      await server.close();
      tripwire = await serve(tempDir('empty'), { port: server.port });
      await page.open(app);
      const offline = await page.waitFor(modelStatus, 'the stored model', 120000).catch(async (e) => {
        const status = await page.run(text('model-status')).catch(() => '?');
        throw new Error(`${e.message}; the status says "${status}"; asked of the gone server: ${JSON.stringify(tripwire.requests)}`);
      });
      assert.match(offline, /^Loaded ViT .*1\.9 M parameters/, offline);
      assert.match(await page.waitFor(saveStatus, 'the save status'), /loaded from this device/);
      assert.equal(await page.run(`return document.getElementById('labels').value;`), labels.join('\n'), 'the label list came back');
      await page.waitFor(`return /^12 labels ready/.test(document.getElementById('labels-status').textContent);`, 'labels', 300000);
      // Offline, WebKit's helper threads (workers started by the model's worker) bypass the
      // service worker and reach nothing: after a while the page goes on with one thread.
      t.diagnostic(`${engine} offline: ${offline}; asked of the gone server: ${JSON.stringify(tripwire.requests)}`);
      assert.match(offline, /Running on the CPU, (\d+ threads|one thread \(the threaded build did not start in this browser; offline, WebKit's threads cannot load it\))/, offline);
      assertMatchesOracle(await classify(page, PHOTOS), expected, labels);
      // The browser's own service-worker update check may ask for sw.js and its file list, and
      // WebKit's helper threads for the threaded build's module; the page itself asks for nothing.
      const expectedAsks = engine === 'webkit' ? /^\/field\/fieldclip\/(sw\.js|pkg\/shell\.js|pkg-threads(-simd128)?\/fieldclip\.js)$/ : /^\/field\/fieldclip\/(sw\.js|pkg\/shell\.js)$/;
      const leaked = tripwire.requests.filter((url) => !expectedAsks.test(url));
      assert.deepEqual(leaked, [], 'requests that left the page while offline');

      // 7. A stored model whose bytes changed is removed and the user is told, whichever store
      // holds it (the origin private file system, or the Cache API where the engine cannot
      // write that).
      const store = await page.run(`
        if (navigator.storage?.getDirectory && globalThis.FileSystemFileHandle && 'createWritable' in FileSystemFileHandle.prototype) {
          const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('models');
          for await (const handle of dir.values()) {
            const w = await handle.createWritable({ keepExistingData: true });
            await w.write({ type: 'write', position: 1000, data: new Uint8Array([1, 2, 3, 4]) });
            await w.close();
          }
          return 'origin private file system';
        }
        const cache = await caches.open('fieldclip-models');
        for (const request of await cache.keys()) {
          if (!request.url.endsWith('/0')) continue;
          const bytes = new Uint8Array(await (await cache.match(request)).arrayBuffer());
          bytes.set([1, 2, 3, 4], 1000);
          await cache.put(request, new Response(bytes));
        }
        return 'Cache API';`);
      t.diagnostic(`${engine} keeps models in: ${store}`);
      await page.open(app);
      const refused = await page.waitFor(`const t = document.getElementById('model-status').textContent; return /integrity|Loaded/.test(t) && t;`, 'the integrity check', 300000);
      assert.match(refused, /failed its integrity check .* removed/, refused);
      assert.match(await page.run(text('storage-warning')), /^$/, 'no storage warning');
    } finally {
      await page.close();
      await (tripwire || server).close();
    }
  });
}
