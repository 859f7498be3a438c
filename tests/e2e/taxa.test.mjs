// End-to-end: taxa as labels (#16) on the page. The tiny open_clip oracle model, the oracle's
// 24 taxa imported as a CSV (BioCLIP's taxon_com names, OpenAI's 80 templates), squash resize,
// and the answer at the deepest rank reaching 0.2 checked against pybioclip's roll-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { captureDownload } from './app.mjs';
import { browser, serve } from './webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const data = (p) => join(root, 'tests/data', p);
const artifacts = join(root, 'test-artifacts');
const RANKS = ['kingdom', 'phylum', 'class', 'order', 'family', 'genus', 'species'];

test('a taxa list answers at the deepest rank the oracle does', { timeout: 600000 }, async () => {
  const expected = JSON.parse(await readFile(data('taxonomy/expected.json'), 'utf8'));
  const photos = ['chelsea.png', 'astronaut.jpg'];
  const server = await serve(root);
  const page = await browser({ width: 1280, height: 1000 });
  try {
    await page.open(`${server.url}index.html`);
    await page.upload('#weights-file', [data('openclip_tiny/model.safetensors'), data('openclip_tiny/open_clip_config.json')]);
    const status = await page.waitFor(
      `const t = document.getElementById('model-status').textContent; return /Loaded|could not/.test(t) && t;`, 'the model');
    assert.match(status, /^Loaded/, status);

    // The preset list the model loaded with is encoded first: its status is not taken for ours.
    await page.waitFor(`return !/^Encoding/.test(document.getElementById('labels-status').textContent);`, 'the preset labels');
    await page.run(`document.getElementById('labels-status').textContent = '';`);
    await page.upload('#list-import', [data('taxonomy/taxa.csv')]);
    const ready = await page.waitFor(`const s = document.getElementById('labels-status');
      return (/^24 taxa ready/.test(s.textContent) || s.classList.contains('error')) && s.textContent;`, 'the taxa', 300000);
    assert.match(ready, /^24 taxa ready \(taxon \+ common names, OpenAI's 80 templates;/, ready);
    const editor = await page.run(`return { kind: document.getElementById('labels-section').dataset.kind,
      format: document.getElementById('text-format').value, formatShown: !document.getElementById('text-format-row').hidden,
      header: document.getElementById('labels').value.split('\\n')[0] };`);
    assert.deepEqual(editor, { kind: 'taxa', format: 'taxon_com', formatShown: true, header: 'kingdom,phylum,class,order,family,genus,species,common_name' });

    await page.run(`
      const threshold = document.getElementById('rank-threshold');
      threshold.value = '0.2';
      threshold.dispatchEvent(new Event('change'));
      const resize = document.getElementById('preprocess');
      resize.value = 'squash';
      resize.dispatchEvent(new Event('change'));`);
    await page.upload('#photo-files', photos.map((p) => data(`images/${p}`)));
    const cards = await page.waitFor(`
      const cards = [...document.querySelectorAll('#results .card')];
      if (cards.length < ${photos.length} || cards.some((c) => c.querySelector('.meta').textContent === 'waiting…')) return null;
      return cards.map((c) => {
        const answer = c.querySelector('.answer');
        return {
          name: c.querySelector('.name').textContent,
          error: c.querySelector('.error')?.textContent ?? null,
          answer: answer && { rank: answer.dataset.answerRank, name: answer.dataset.answerName,
            probability: Number(answer.dataset.answerProbability), text: answer.textContent },
          species: [...c.querySelectorAll('.by-rank [data-rank="species"] .rank-row')].map((r) => r.dataset.name),
          predictions: [...c.querySelectorAll('.pred')].map((p) => p.dataset.label),
        };
      });`, 'the result cards', 300000);

    for (const name of photos) {
      const card = cards.find((c) => c.name === name);
      assert.ok(card && !card.error && card.answer, `${name}: ${card?.error ?? 'no answer line'}`);
      const oracle = expected.images.find((i) => i.file === `images/${name}`).pybioclip_squash;
      const want = oracle.answers_at_other_thresholds['0.2'];
      if (want === null) {
        assert.equal(card.answer.rank, '', `${name}: ${card.answer.text}`);
        assert.match(card.answer.text, /^Not sure at any rank \(nothing reaches 20 %\)$/);
      } else {
        assert.equal(card.answer.rank, want.rank, `${name}: ${card.answer.text}`);
        assert.equal(card.answer.name, want.taxon, `${name}: ${card.answer.text}`);
        assert.ok(Math.abs(card.answer.probability - want.score) <= 1e-3, `${name}: shown ${card.answer.probability}, oracle ${want.score}`);
        assert.ok(card.answer.text.startsWith(`${want.rank} ${want.taxon} `), card.answer.text);
        const deeper = RANKS[RANKS.indexOf(want.rank) + 1];
        if (deeper) assert.ok(card.answer.text.endsWith(`— ${deeper} uncertain`), card.answer.text);
      }
      assert.equal(card.species[0], oracle.rollup.species[0].taxon, `${name}: top species by rank`);
      assert.equal(card.predictions[0], oracle.rollup.species[0].taxon, `${name}: top prediction`);
    }

    // The CSV carries each photo's answer and each species' lineage from the imported table.
    const csv = await captureDownload(page, 'export-csv');
    const rows = csv.text.trim().split('\n');
    assert.equal(rows[0], 'file,rank,label,probability,answer_rank,answer_name,answer_probability,kingdom,phylum,class,order,family,genus,species,common_name');
    assert.equal(rows.length, 1 + photos.length * 5);
    for (const name of photos) {
      const oracle = expected.images.find((i) => i.file === `images/${name}`).pybioclip_squash;
      const want = oracle.answers_at_other_thresholds['0.2'];
      const top = oracle.rollup.species[0];
      const taxon = expected.taxa[top.index];
      const row = rows.find((r) => r.startsWith(`${name},1,`)).split(',');
      assert.equal(row[2], top.taxon);
      assert.deepEqual(row.slice(4, 6), want ? [want.rank, want.taxon] : ['', '']);
      assert.deepEqual(row.slice(7), [...RANKS.map((r) => taxon[r]), taxon.common_name]);
    }

    await page.run(`for (const d of document.querySelectorAll('#results .by-rank')) d.open = true;
      document.getElementById('photos-section').scrollIntoView();`);
    await mkdir(artifacts, { recursive: true });
    await writeFile(join(artifacts, 'taxa-1280x1000-results.png'), await page.screenshot());
  } finally {
    await page.close();
    await server.close();
  }
});
