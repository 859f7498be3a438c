// Steps on the fieldclip page that several end-to-end tests take.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tempDir } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);

/** Three oracle photos (tests/data/images) that the page classifies in several tests. */
export const PHOTOS = ['astronaut.jpg', 'chelsea.png', 'coffee_alpha.png'];

/** The deployable site (what a static host would serve) plus the tiny model at models/. */
export async function makeSite() {
  const site = tempDir('site');
  // The threaded builds are part of the shell when they were built (pkg/shell.js lists their files).
  const built = ['pkg-threads', 'pkg-threads-simd128'].filter((b) => existsSync(join(root, b)));
  for (const f of ['index.html', 'manifest.webmanifest', 'sw.js', 'icons', 'www', 'pkg', ...built]) await cp(join(root, f), join(site, f), { recursive: true });
  await mkdir(join(site, 'models'));
  await cp(data('tiny/model.safetensors'), join(site, 'models/model.safetensors'));
  await cp(data('tiny/config.json'), join(site, 'models/config.json'));
  return site;
}

/** Waits until the service worker controls the page; returns the version it shows. */
export async function waitForServiceWorker(page) {
  // A failed install says so on the page (www/install.js): fail with its sentence at once.
  const version = await page.waitFor(`const problem = document.getElementById('offline-status').textContent;
    if (/could not be saved/.test(problem)) return { problem };
    return navigator.serviceWorker.controller && /^version /.test(document.getElementById('app-version').textContent)
    && document.getElementById('app-version').textContent;`, 'the service worker to control the page');
  if (version.problem) throw new Error(`the service worker did not install: ${version.problem}`);
  return version;
}

/** Loads the tiny model offered under models/ with the page's one-click button. */
export async function loadModelFromUrl(page) {
  // A model loaded before says "Loaded" too: its status is not taken for this one's.
  await page.run(`document.getElementById('model-status').textContent = ''; document.getElementById('weights-url-button').click();`);
  const status = await page.waitFor(`const t = document.getElementById('model-status').textContent; return /Loaded|could not|Could not/.test(t) && t;`, 'the model');
  assert.match(status, /Loaded ViT .*1\.9 M parameters/, status);
  return status;
}

/** Classifies the photos and returns name → [{label, probability}] of their new cards. */
export async function classify(page, names) {
  const before = await page.run(`return document.querySelectorAll('#results .card').length;`);
  await page.upload('#photo-files', names.map((n) => data(`images/${n}`)));
  return page.waitFor(`
    const [count] = arguments;
    const cards = [...document.querySelectorAll('#results .card')].slice(0, count);
    if (document.querySelectorAll('#results .card').length < ${before} + count || cards.some((c) => c.querySelector('.meta').textContent === 'waiting…')) return null;
    return Object.fromEntries(cards.map((c) => [c.querySelector('.name').textContent,
      [...c.querySelectorAll('.pred')].map((p) => ({ label: p.querySelector('.label').textContent, probability: Number(p.dataset.probability) }))]));`.replace('arguments', `[${names.length}]`), 'result cards', 300000);
}

/** The cards of `names` show the tiny oracle's five best labels with its probabilities (to 1e-3). */
export function assertMatchesOracle(cards, expected, labels, names = PHOTOS) {
  for (const name of names) {
    const index = expected.images.findIndex((i) => i.file === `images/${name}`);
    assert.equal(cards[name].length, 5, name);
    for (const p of cards[name]) {
      const want = expected.probs[index][labels.indexOf(p.label)];
      assert.ok(Math.abs(p.probability - want) <= 1e-3, `${name} / ${p.label}: shown ${p.probability}, oracle ${want}`);
    }
    const best = expected.probs[index].indexOf(Math.max(...expected.probs[index]));
    assert.equal(cards[name][0].label, labels[best], `${name}: top label`);
  }
}

/** Replaces the active list's labels and template and waits until they are encoded. */
export async function useLabels(page, labels, template = '{}') {
  // Labels still being encoded (the list the model was loaded with) first: otherwise their
  // "N labels ready" could be taken for ours.
  await page.waitFor(`return !/^Encoding/.test(document.getElementById('labels-status').textContent);`, 'the current labels');
  await page.run(`
    const [labels, template] = arguments;
    // The plants and marine presets are taxa lists, whose editor takes a table: a new plain list.
    if (document.getElementById('labels-section').dataset.kind === 'taxa') document.getElementById('list-new').click();
    document.getElementById('labels').value = labels.join('\\n');
    document.getElementById('templates').value = template;
    document.getElementById('templates').dispatchEvent(new Event('input'));
    document.getElementById('labels-status').textContent = '';`, labels, template);
  await page.waitFor(`return new RegExp('^${labels.length} labels ready').test(document.getElementById('labels-status').textContent);`, 'labels');
}

/** Clicks a button that downloads a file; returns the file's name and text. */
export async function captureDownload(page, buttonId) {
  return page.run(`
    const original = HTMLAnchorElement.prototype.click;
    const link = new Promise((resolve) => { HTMLAnchorElement.prototype.click = function () { resolve(this); }; });
    document.getElementById(arguments[0]).click();
    const a = await link;
    HTMLAnchorElement.prototype.click = original;
    return { name: a.download, text: await (await fetch(a.href)).text() };`, buttonId);
}
