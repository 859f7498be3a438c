// Steps and checks of "Where?" (the heat-map overlay) that several end-to-end tests share.
import assert from 'node:assert/strict';

/** Chooses `label` under "Where?" on the first card and asks for its map (unless one is shown: then the choice does). */
export async function where(page, label) {
  await page.run(`const c = document.querySelector('#results .card');
    const select = c.querySelector('.where-label');
    const option = [...select.options].find((o) => o.textContent === arguments[0]);
    if (!option) throw new Error('no choice ' + arguments[0] + ' under Where?');
    select.value = option.value;
    select.dispatchEvent(new Event('change'));
    if (!c.classList.contains('mapped')) c.querySelector('.where-show').click();`, label);
}

/**
 * Waits until the first card shows the map titled `title` (`variant`); returns its geometry,
 * legend, colours and a grid of sampled canvas pixels `[x, y, r, g, b]`.
 */
export async function overlay(page, title, variant = 'clearclip') {
  return page.waitFor(`
    const c = document.querySelector('#results .card');
    const error = c.querySelector('.where-error');
    if (error && !error.hidden) return { problem: error.textContent };  // (not "error": the WebDriver answer key)
    const legend = c.querySelector('.legend');
    const canvas = c.querySelector('canvas.heatmap');
    if (!legend || legend.hidden || !canvas || canvas.hidden || canvas.width === 0 || !c.classList.contains('mapped')) return null;
    if (c.querySelector('.legend-title').textContent !== ${JSON.stringify(title)} || legend.dataset.variant !== ${JSON.stringify(variant)}) return null;
    const box = (el) => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, width: r.width, height: r.height }; };
    const img = c.querySelector('.frame img');
    const { width, height } = canvas;
    const px = canvas.getContext('2d').getImageData(0, 0, width, height).data;
    const colours = new Set();
    for (let i = 0; i < px.length; i += 4) colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
    const samples = [];
    for (let j = 0; j < 15; j++) {
      for (let i = 0; i < 15; i++) {
        const x = Math.round((i * (width - 1)) / 14);
        const y = Math.round((j * (height - 1)) / 14);
        const k = 4 * (y * width + x);
        samples.push([x, y, px[k], px[k + 1], px[k + 2]]);
      }
    }
    return {
      canvas: box(canvas), frame: box(c.querySelector('.frame')), img: box(img), width, height,
      natural: [img.naturalWidth, img.naturalHeight], fit: getComputedStyle(img).objectFit, position: getComputedStyle(img).objectPosition, opacity: getComputedStyle(canvas).opacity,
      preprocess: canvas.dataset.preprocess, distinct: colours.size, samples,
      ramp: Array.from(c.querySelector('.legend-ramp').getContext('2d').getImageData(0, 0, 256, 1).data),
      label: legend.dataset.label, variant: legend.dataset.variant, min: Number(legend.dataset.min), max: Number(legend.dataset.max),
      low: c.querySelector('.legend-min').textContent, high: c.querySelector('.legend-max').textContent,
      title: c.querySelector('.legend-title').textContent,
    };`, `the map of ${title}`, 300000);
}

export const near = (a, b, what, tol = 0.51) => {
  for (const k of ['x', 'y', 'width', 'height']) assert.ok(Math.abs(a[k] - b[k]) <= tol, `${what}: ${JSON.stringify(a)} against ${JSON.stringify(b)}`);
};

/** `map` at output pixel (x, y) of a `width × height` upsampling, as PyTorch's bilinear with align_corners=False. */
function bilinear(map, [rows, cols], width, height, x, y) {
  const at = (out, cells, size) => {
    const s = Math.min(Math.max(((out + 0.5) * cells) / size - 0.5, 0), cells - 1);
    const i0 = Math.floor(s);
    return [i0, Math.min(i0 + 1, cells - 1), s - i0];
  };
  const [c0, c1, fx] = at(x, cols, width);
  const [r0, r1, fy] = at(y, rows, height);
  const row = (r) => map[r * cols + c0] * (1 - fx) + map[r * cols + c1] * fx;
  return row(r0) * (1 - fy) + row(r1) * fy;
}

/** The index (0–255) of the legend colour nearest to (r, g, b). */
function colourIndex(ramp, r, g, b) {
  let best = 0;
  let bestDistance = Infinity;
  for (let i = 0; i < 256; i++) {
    const d = (ramp[4 * i] - r) ** 2 + (ramp[4 * i + 1] - g) ** 2 + (ramp[4 * i + 2] - b) ** 2;
    if (d < bestDistance) [best, bestDistance] = [i, d];
  }
  return best;
}

/** What every map shown must be: over the photo, in colour, with a legend that says its range. */
export function assertShown(o, what) {
  assert.ok(!o.problem, `${what}: ${o.problem}`);
  assert.ok(o.width > 0 && o.height > 0 && o.canvas.width > 0 && o.canvas.height > 0, `${what}: canvas ${o.width}×${o.height}`);
  near(o.canvas, o.frame, `${what}: the canvas covers the photo's frame`);
  near(o.img, o.frame, `${what}: the photo fills its frame`);
  assert.ok(o.distinct > 20, `${what}: ${o.distinct} colours on the canvas`);
  assert.equal(o.opacity, '0.5', `${what}: default opacity`);
  assert.ok(o.min < o.max, `${what}: legend ${o.min} … ${o.max}`);
  assert.equal(o.low, o.min.toFixed(3), `${what}: the legend's low end`);
  assert.equal(o.high, o.max.toFixed(3), `${what}: the legend's high end`);
  assert.ok(Number(o.low) < Number(o.high), `${what}: legend shows ${o.low} … ${o.high}`);
}

/**
 * The map shown is the oracle's `map` (one cosine per cell of a 7×7 grid): the same range, and
 * each sampled pixel the colour of the oracle's value there, upsampled and scaled min → max.
 */
export function assertOracle(o, map, what) {
  const min = Math.min(...map);
  const max = Math.max(...map);
  assert.ok(Math.abs(o.min - min) <= 2e-3 && Math.abs(o.max - max) <= 2e-3, `${what}: range ${o.min} … ${o.max}, oracle ${min} … ${max}`);
  let worst = 0;
  for (const [x, y, r, g, b] of o.samples) {
    const want = Math.round(((bilinear(map, [7, 7], o.width, o.height, x, y) - min) / (max - min)) * 255);
    worst = Math.max(worst, Math.abs(colourIndex(o.ramp, r, g, b) - want));
  }
  assert.ok(worst <= 8, `${what}: a sampled pixel is ${worst} colours of 256 off the oracle's map`);
}

/** The oracle's ClearCLIP-family map of prompt `label` on `file` (tests/data/heatmap/tiny.json). */
export function oracleMap(oracle, variant, file, label) {
  const image = oracle.variants[variant].images.find((i) => i.file === file);
  return image.cosine_maps[oracle.prompts.findIndex((p) => p.text === label)];
}
