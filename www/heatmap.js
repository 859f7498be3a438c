// Patch heat-maps (#15) drawn on the page: a map is one cosine per patch of the model's grid
// (7×7 on ViT-B/32), made by the worker; here it is upsampled to the canvas laid over the photo,
// scaled to its own min–max and coloured with the model's colour table (viridis, from the
// WebAssembly module, the one src/heatmap.rs draws the CLI's maps with).

/** The map variants, as the worker names them, with what the page calls them. */
export const VARIANTS = {
  clearclip: 'ClearCLIP',
  maskclip: 'MaskCLIP',
  sclip: 'SCLIP',
  vanilla: 'vanilla attention',
  plain: 'plain CLIP',
};

/**
 * `map` (`rows × cols`, row-major) resized to `width × height` bilinearly as PyTorch's
 * `interpolate(…, 'bilinear', align_corners=False)` (src/heatmap.rs `upsample_bilinear`): the
 * output pixel x samples the map at `(x + 0.5)·cols/width − 0.5`, clamped to [0, cols − 1],
 * so each cell's centre falls on the centre of its part of the canvas.
 */
export function upsample(map, [rows, cols], width, height) {
  const source = (out, cells, size) => {
    const x = Math.max(0, ((out + 0.5) * cells) / size - 0.5);
    const i0 = Math.min(Math.floor(x), cells - 1);
    return [i0, Math.min(i0 + 1, cells - 1), x - i0];
  };
  const xs = Array.from({ length: width }, (_, x) => source(x, cols, width));
  const out = new Float32Array(width * height);
  let k = 0;
  for (let y = 0; y < height; y++) {
    const [r0, r1, fy] = source(y, rows, height);
    for (const [c0, c1, fx] of xs) {
      const top = map[r0 * cols + c0] * (1 - fx) + map[r0 * cols + c1] * fx;
      const bottom = map[r1 * cols + c0] * (1 - fx) + map[r1 * cols + c1] * fx;
      out[k++] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** The smallest and largest value of a map. */
export function range(values) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/**
 * Draws `map` (`{ grid, cosine, min, max }`) on `canvas` at `width × height` pixels: each value
 * scaled from the map's min (0) to its max (1), per photo, and coloured by `table` (768 bytes:
 * 256 RGB triples). Opaque: the page blends it over the photo with the canvas's CSS opacity.
 */
export function drawMap(canvas, map, table, width, height) {
  canvas.width = width;
  canvas.height = height;
  const own = Number.isFinite(map.min) && Number.isFinite(map.max) ? map : range(map.cosine);
  const span = own.max > own.min ? own.max - own.min : 1;
  const values = upsample(map.cosine, map.grid, width, height);
  const context = canvas.getContext('2d');
  const image = context.createImageData(width, height);
  const px = image.data;
  for (let i = 0; i < values.length; i++) {
    const t = Math.min(1, Math.max(0, (values[i] - own.min) / span));
    const c = 3 * Math.round(t * 255);
    px[4 * i] = table[c];
    px[4 * i + 1] = table[c + 1];
    px[4 * i + 2] = table[c + 2];
    px[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

/** The legend's colour bar: the table's 256 colours left (the map's min) to right (its max). */
export function drawRamp(canvas, table) {
  canvas.width = 256;
  canvas.height = 1;
  const context = canvas.getContext('2d');
  const image = context.createImageData(256, 1);
  for (let i = 0; i < 256; i++) {
    image.data.set([table[3 * i], table[3 * i + 1], table[3 * i + 2], 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
}
