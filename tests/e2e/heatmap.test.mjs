// End-to-end: "Where?" (#15) on the page. The tiny oracle model, its prompts as labels, a wide
// photo: the map of a label is drawn over the part of the photo the model saw, its legend gives
// the worker's cosine range, and its pixels are the ClearCLIP oracle's map (upsampled as
// PyTorch's bilinear, align_corners=False, coloured by the legend's colours). Once on WebGPU
// (chosen by hand: "best available" never picks SwiftShader), once on the CPU with the squash
// resize too, and once against a taxa list with the top label's map made with the answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { useLabels } from './app.mjs';
import { assertOracle, assertShown, oracleMap, overlay, where } from './heatmap-steps.mjs';
import { browser, serve } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
// Where the screenshot of a card with its map goes (and /tmp, to look at).
const shotDir = join(process.env.CARGO_TARGET_DIR || join(root, 'target'), 'tmp');

async function saveShot(name, png) {
  await mkdir(shotDir, { recursive: true });
  await writeFile(join(shotDir, name), png);
  await writeFile(join('/tmp', name), png);
}

/** Opens the page, picks the backend and loads `model` (`[weights, config]`); returns the status. */
async function loadModel(page, server, backend, model) {
  await page.open(`${server.url}index.html`);
  await page.run(`const b = document.getElementById('backend'); b.value = arguments[0]; b.dispatchEvent(new Event('change'));`, backend);
  await page.upload('#weights-file', model.map(data));
  const status = await page.waitFor(
    `const t = document.getElementById('model-status').textContent; return /Loaded|could not/.test(t) && t;`, 'the model');
  assert.match(status, /^Loaded/, status);
  return status;
}

/** Sets a select or checkbox of the page as a user would. */
async function set(page, id, value) {
  await page.run(`const el = document.getElementById(arguments[0]);
    if (el.type === 'checkbox') el.checked = arguments[1]; else el.value = arguments[1];
    el.dispatchEvent(new Event('change'));`, id, value);
}

/** Classifies one photo; returns what its card (the first) shows. */
async function classify(page, name) {
  const before = await page.run(`return document.querySelectorAll('#results .card').length;`);
  await page.upload('#photo-files', [data(`images/${name}`)]);
  await page.waitFor(`const cards = document.querySelectorAll('#results .card');
    return cards.length > ${before} && cards[0].querySelector('.meta').textContent !== 'waiting…';`, `the card of ${name}`, 300000);
  return page.run(`const c = document.querySelector('#results .card');
    return {
      error: c.querySelector('p.error:not(.where-error)')?.textContent ?? null,
      meta: c.querySelector('.meta').textContent,
      answer: c.querySelector('.answer')?.textContent ?? null,
      predictions: [...c.querySelectorAll('.pred')].map((p) => ({ label: p.querySelector('.label').textContent, probability: Number(p.dataset.probability) })),
      options: [...c.querySelectorAll('.where-label option')].map((o) => o.textContent),
      mapped: c.classList.contains('mapped'),
    };`);
}

const TINY = ['tiny/model.safetensors', 'tiny/config.json'];

test('Where? draws the oracle map over the part of the photo the model saw', { timeout: 600000 }, async (t) => {
  const oracle = JSON.parse(await readFile(data('heatmap/tiny.json'), 'utf8'));
  const labels = oracle.prompts.map((p) => p.text);
  const server = await serve(root);
  const page = await browser({ width: 1024, height: 1000 });
  try {
    const status = await loadModel(page, server, 'webgpu', TINY);
    t.diagnostic(status);
    await useLabels(page, labels);

    // On demand: a wide photo, its second label. Crop: the frame is the centred square.
    const wide = await classify(page, 'astronaut_wide.png');
    assert.ok(!wide.error, wide.error);
    assert.equal(wide.mapped, false, 'no map until asked for');
    assert.deepEqual(wide.options, wide.predictions.map((p) => p.label), 'Where? offers the card\'s labels');
    const second = wide.predictions[1].label;
    await where(page, second);
    const o = await overlay(page, second);
    assertShown(o, 'astronaut_wide.png');
    assert.equal(o.label, second);
    assert.equal(o.preprocess, 'crop');
    assert.ok(o.natural[0] > o.natural[1] * 1.2, `a wide photo: ${o.natural}`);
    assert.ok(Math.abs(o.frame.width - o.frame.height) <= 1, `crop: a square frame, ${JSON.stringify(o.frame)}`);
    assert.deepEqual([o.fit, o.position], ['cover', '50% 50%'], 'crop: the centred square of the photo');
    assertOracle(o, oracleMap(oracle, 'ClearCLIP', 'astronaut_wide.png', second), 'astronaut_wide.png ClearCLIP');

    await page.run(`document.querySelector('#results .card').scrollIntoView();`);
    await saveShot('heatmap-overlay.png', await page.elementScreenshot('#results .card'));

    // Another variant, asked for from the card: the legend says which, the map is MaskCLIP's.
    await set(page, 'map-variant', 'maskclip');
    await where(page, wide.predictions[0].label);
    const mask = await overlay(page, wide.predictions[0].label, 'maskclip');
    assertShown(mask, 'MaskCLIP');
    assertOracle(mask, oracleMap(oracle, 'MaskCLIP', 'astronaut_wide.png', wide.predictions[0].label), 'astronaut_wide.png MaskCLIP');

    // Hidden again: the card is as before.
    await page.run(`document.querySelector('#results .card .where-show').click();`);
    const hidden = await page.run(`const c = document.querySelector('#results .card');
      return { mapped: c.classList.contains('mapped'), canvas: c.querySelector('canvas.heatmap').hidden, legend: c.querySelector('.legend').hidden,
        frame: c.querySelector('.frame').getBoundingClientRect().width, button: c.querySelector('.where-show').textContent };`);
    assert.deepEqual(hidden, { mapped: false, canvas: true, legend: true, frame: 96, button: 'Where?' });

    // The top label's map with the answer: shown at once, the probabilities as without it.
    await set(page, 'map-variant', 'clearclip');
    await set(page, 'map-top', true);
    const mapped = await classify(page, 'astronaut_wide.png');
    assert.equal(mapped.mapped, true, 'the top label is mapped with the answer');
    for (const [i, p] of mapped.predictions.entries()) {
      assert.equal(p.label, wide.predictions[i].label);
      assert.ok(Math.abs(p.probability - wide.predictions[i].probability) <= 1e-5, `${p.label}: ${p.probability} against ${wide.predictions[i].probability}`);
    }
    const top = await overlay(page, mapped.predictions[0].label);
    assertShown(top, 'top label');
    assertOracle(top, oracleMap(oracle, 'ClearCLIP', 'astronaut_wide.png', mapped.predictions[0].label), 'top label ClearCLIP');
    assert.equal(await page.run(`return document.querySelectorAll('#results .card.mapped').length;`), 1, 'only the new card is mapped');
  } finally {
    await page.close();
    await server.close();
  }
});

test('on the CPU: the same map, and over the whole photo with the squash resize', { timeout: 600000 }, async () => {
  const oracle = JSON.parse(await readFile(data('heatmap/tiny.json'), 'utf8'));
  const labels = oracle.prompts.map((p) => p.text);
  const server = await serve(root);
  const page = await browser({ width: 1024, height: 1000 });
  try {
    const status = await loadModel(page, server, 'cpu', TINY);
    assert.match(status, /Running on the CPU/, status);
    await useLabels(page, labels);

    const wide = await classify(page, 'astronaut_wide.png');
    assert.ok(!wide.error, wide.error);
    assert.match(wide.meta, /on CPU/);
    const label = wide.predictions[2].label;
    await where(page, label);
    const o = await overlay(page, label);
    assertShown(o, 'CPU crop');
    assertOracle(o, oracleMap(oracle, 'ClearCLIP', 'astronaut_wide.png', label), 'CPU astronaut_wide.png');

    // Squash: the model saw the whole tall photo; the frame takes its shape, the map all of it.
    await set(page, 'preprocess', 'squash');
    const tall = await classify(page, 'ihc_tall.png');
    assert.ok(!tall.error, tall.error);
    await where(page, tall.predictions[0].label);
    const s = await overlay(page, tall.predictions[0].label);
    assertShown(s, 'CPU squash');
    assert.equal(s.preprocess, 'squash');
    assert.equal(s.fit, 'fill');
    const [w, h] = s.natural;
    assert.ok(h > w * 1.2, `a tall photo: ${s.natural}`);
    assert.ok(Math.abs(s.frame.width / s.frame.height - w / h) <= 0.02, `squash: the frame has the photo's shape, ${JSON.stringify(s.frame)} for ${w}×${h}`);
    await page.run(`document.querySelector('#results .card').scrollIntoView();`);
    await saveShot('heatmap-overlay-squash.png', await page.elementScreenshot('#results .card'));

    // A label no longer in use has no map: the card says so, and shows no other label's map.
    const gone = tall.predictions[1].label;
    await useLabels(page, labels.filter((l) => l !== gone));
    await where(page, gone);
    const refused = await overlay(page, gone);
    assert.match(refused.problem ?? '', /^No map: .*is not one of the labels in use/, JSON.stringify(refused));
    assert.equal(await page.run(`return document.querySelector('#results .card').classList.contains('mapped');`), false);
  } finally {
    await page.close();
    await server.close();
  }
});

test('a taxa list: the top species mapped with the same answer, another species on demand', { timeout: 600000 }, async () => {
  const server = await serve(root);
  const page = await browser({ width: 1024, height: 1000 });
  try {
    await loadModel(page, server, 'webgpu', ['openclip_tiny/model.safetensors', 'openclip_tiny/open_clip_config.json']);
    await page.waitFor(`return !/^Encoding/.test(document.getElementById('labels-status').textContent);`, 'the preset labels');
    await page.run(`document.getElementById('labels-status').textContent = '';`);
    await page.upload('#list-import', [data('taxonomy/taxa.csv')]);
    const ready = await page.waitFor(`const s = document.getElementById('labels-status');
      return (/^24 taxa ready/.test(s.textContent) || s.classList.contains('error')) && s.textContent;`, 'the taxa', 300000);
    assert.match(ready, /^24 taxa ready/, ready);
    await page.run(`const t = document.getElementById('rank-threshold'); t.value = '0.2'; t.dispatchEvent(new Event('change'));`);
    await set(page, 'preprocess', 'squash');

    const plain = await classify(page, 'chelsea.png');
    assert.ok(!plain.error && plain.answer, plain.error);
    assert.deepEqual(plain.options, plain.predictions.map((p) => p.label), 'Where? offers the species shown');
    await set(page, 'map-top', true);
    const mapped = await classify(page, 'chelsea.png');
    assert.equal(mapped.answer, plain.answer, 'the same answer with the map');
    assert.deepEqual(mapped.predictions.map((p) => p.label), plain.predictions.map((p) => p.label));
    for (const [i, p] of mapped.predictions.entries()) {
      assert.ok(Math.abs(p.probability - plain.predictions[i].probability) <= 1e-5, `${p.label}: ${p.probability} against ${plain.predictions[i].probability}`);
    }
    assert.equal(mapped.mapped, true);
    const top = await overlay(page, mapped.options[0]);
    assertShown(top, 'taxa top species');
    assert.equal(top.preprocess, 'squash');
    // The map is of the label the model holds for the species: its class name (taxon + common name).
    assert.ok(top.label.includes(mapped.predictions[0].label.replace(/ \(.*\)$/, '').split(' ').pop()), `${top.label} for ${mapped.options[0]}`);

    await where(page, mapped.options[1]);
    const other = await overlay(page, mapped.options[1]);
    assertShown(other, 'taxa second species');
    assert.notEqual(other.label, top.label);
  } finally {
    await page.close();
    await server.close();
  }
});

/** pybioclip's `txt_emb_species.npy` (`[dim, taxa]` float32, C order): column `j`, a taxon's embedding. */
function npyColumn(bytes, j) {
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.toString('latin1', 10, 10 + headerLength);
  const [dim, taxa] = header.match(/'shape': \((\d+), (\d+)\)/).slice(1).map(Number);
  assert.match(header, /'descr': '<f4', 'fortran_order': False/);
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.length));
  return Array.from({ length: dim }, (_, d) => values[d * taxa + j]);
}

test('the tree of life: the top species mapped with the same answer, another species on demand', { timeout: 600000 }, async () => {
  // The reference: ClearCLIP's own patch embeddings of the photo (the oracle, crop resize)
  // against each species' column of the .npy, found by its name in the names file.
  const oracle = JSON.parse(await readFile(data('heatmap/openclip_tiny.json'), 'utf8'));
  const patches = oracle.variants.ClearCLIP.images.find((i) => i.file === 'chelsea.png').patch_embeds;
  const npy = await readFile(data('taxonomy/txt_emb_species.npy'));
  const names = JSON.parse(await readFile(data('taxonomy/txt_emb_species.json'), 'utf8'));
  const referenceRange = (option) => {
    const j = names.findIndex(([ranks, common]) => `${[ranks[5], ranks[6]].filter(Boolean).join(' ')} (${common})` === option);
    assert.ok(j >= 0, `${option} in the names file`);
    const text = npyColumn(npy, j);
    const norm = Math.hypot(...text);
    const cosines = patches.map((p) => p.reduce((sum, v, d) => sum + v * text[d], 0) / norm);
    return { min: Math.min(...cosines), max: Math.max(...cosines) };
  };
  const assertReference = (o, option) => {
    const want = referenceRange(option);
    assert.ok(Number.isFinite(o.min) && Number.isFinite(o.max), `${option}: legend ${o.min} … ${o.max}`);
    assert.ok(Math.abs(o.min - want.min) <= 2e-3 && Math.abs(o.max - want.max) <= 2e-3,
      `${option}: legend ${o.min} … ${o.max}, reference ${want.min} … ${want.max}`);
  };

  const server = await serve(root);
  const page = await browser({ width: 1024, height: 1000 });
  try {
    await loadModel(page, server, 'webgpu', ['openclip_tiny/model.safetensors', 'openclip_tiny/open_clip_config.json']);
    await page.waitFor(`return !/^Encoding/.test(document.getElementById('labels-status').textContent);`, 'the preset labels');
    await page.run(`document.getElementById('tree-of-life').open = true;
      const kind = document.getElementById('tol-filter-kind');
      kind.value = 'none';
      kind.dispatchEvent(new Event('change'));
      for (const id of ['labels-status', 'tol-status']) document.getElementById(id).textContent = '';`);
    await page.upload('#tol-files', [data('taxonomy/txt_emb_species.npy'), data('taxonomy/txt_emb_species.json')]);
    await page.run(`document.getElementById('tol-load').click();`);
    const ready = await page.waitFor(`const s = document.getElementById('labels-status').textContent;
      const t = document.getElementById('tol-status');
      return (/ ready/.test(s) && s) || (t.classList.contains('error') && 'tree: ' + t.textContent);`, 'the tree of life', 300000);
    assert.equal(ready, 'Tree of life: 24 taxa ready.');

    // On demand: the top species, then the second; each its own range, the reference's.
    const plain = await classify(page, 'chelsea.png');
    assert.ok(!plain.error && plain.answer, plain.error);
    assert.equal(plain.mapped, false, 'no map until asked for');
    assert.deepEqual(plain.options, plain.predictions.map((p) => p.label), 'Where? offers the species shown');
    await where(page, plain.options[0]);
    const first = await overlay(page, plain.options[0]);
    assertShown(first, 'tree top species');
    assert.equal(first.label, plain.options[0]);
    assert.equal(first.preprocess, 'crop');
    assertReference(first, plain.options[0]);
    await where(page, plain.options[1]);
    const second = await overlay(page, plain.options[1]);
    assertShown(second, 'tree second species');
    assertReference(second, plain.options[1]);
    assert.ok(second.min !== first.min || second.max !== first.max, `the two species' ranges differ: ${first.min} … ${first.max}`);

    // The top species' map with the answer: the same answer and probabilities, the same map.
    await set(page, 'map-top', true);
    const mapped = await classify(page, 'chelsea.png');
    assert.ok(!mapped.error, mapped.error);
    assert.equal(mapped.answer, plain.answer, 'the same answer with the map');
    assert.deepEqual(mapped.predictions, plain.predictions, 'the same probabilities with the map');
    assert.equal(mapped.mapped, true, 'the top species is mapped with the answer');
    const top = await overlay(page, mapped.options[0]);
    assertShown(top, 'tree top species with the answer');
    assert.ok(Math.abs(top.min - first.min) <= 1e-5 && Math.abs(top.max - first.max) <= 1e-5, `${top.min} … ${top.max} against ${first.min} … ${first.max}`);
  } finally {
    await page.close();
    await server.close();
  }
});
