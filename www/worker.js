// The model runs here, off the main thread, so the page never freezes (even on the CPU backend).
import { loadWasm } from './wasm.js';
import { isRecord, sampledDigest, webgpuAdapter } from './backend-choice.js';
import { range } from './heatmap.js';
import { RANKS, className, nameAt, parseTaxa, speciesOfList, usedTaxa } from './taxa.js';

let Classifier;
let GalleryIndex;
let WeightsStream;
let TreeOfLifeStream;
let TaxaIndex;
/** Reads a PyTorch zip checkpoint (.bin/.pt) as the safetensors file of its weights (`asSafetensors`). */
let TorchCheckpoint;
/** The heat-maps' colour map (viridis, 256 RGB triples), a function of the build (#15). */
let colourTable;
/** A label's map from a photo's patch embeddings and the label's text embedding (#15). */
let cosineMap;
/** How the CPU backend runs (`{ threads, reason }`), for the page's status line. */
let cpu;
let classifier = null;
// The collection's embeddings (step 4), searched by exact brute force in WebAssembly.
let gallery = null;
// The few-shot adapter in use (JSON), re-applied when the model is rebuilt on the CPU.
let adapter = null;
// pybioclip's tree-of-life taxa (#16): `{ index: TaxaIndex, filter, filterKind, byName, active }`
// (`filter`: the taxon name or "N species", `filterKind`: '', 'taxon' or 'species'). Kept
// while a list is in use (switching back is instant); `active` while photos are classified
// against it instead of the labels. Model-free: a model change only re-checks its width.
let tree = null;
// Kept to rebuild the model on the CPU if the WebGPU device is lost: the weights and the label
// set in use, plain `{ labels, templates }` or `{ taxa: { table, format, templates } }`.
let source = null;
let labels = null;
// For a taxa list in use: a species of a result (its label `Genus epithet` and common name) →
// the label in use that its map is asked for (its class name). Made at the list's first photo.
let taxaNames = null;
// How photos are resized: 'auto' (as the model says), 'crop' or 'squash'; kept across rebuilds.
let preprocess = 'auto';
const PREPROCESS = ['auto', 'crop', 'squash'];
// The model's own resize ('crop' or 'squash', from its config), what 'auto' goes back to.
let modelPreprocess = 'crop';
// Which build is loaded: 'threads' (CPU on every core) or 'single' (WebGPU, or one core).
let build = null;
// Set when the threaded build could not start here: not tried again.
let threadsUnavailable = false;
// Bumped (in onmessage, as a request arrives, before it waits its turn) by every request that
// makes an adapter check out of date: a running check sees it between its parts and stops.
let adapterGeneration = 0;
const ADAPTER_CHANGES = new Set(['useAdapter', 'makeAdapter', 'labels', 'load']);
// Bumped (in onmessage, as it arrives) by every 'load': a measurement of "best available" for an
// older load sees it between its steps and stops, and its measuring worker is ended at once.
let loadGeneration = 0;
// The measuring worker running now (`{ cancel }`), if any: see `measureInProbe`.
let probe = null;
// Set when "best available" chose the model in use on a hardware WebGPU adapter (so that
// 'remeasure' can measure again): `{ key, adapter, test }`, `key` the device and model's.
let auto = null;

/**
 * Every error carries a `kind` (as the wasm module's do): 'input' (the user's photo, labels,
 * templates, adapter), 'model' (the weights file cannot be used), 'device' (the backend failed),
 * 'storage' (data kept on the device does not fit) or 'cancelled'; its message is for the user.
 */
function failure(kind, message) {
  const e = new Error(message);
  e.kind = kind;
  return e;
}

/** The kind sent to the page: the error's own; a trap (a panic) counts as the device's; else the model's. */
function kindOf(e) {
  if (e && typeof e.kind === 'string') return e.kind;
  return e instanceof WebAssembly.RuntimeError ? 'device' : 'model';
}

/** The backend failed (WebGPU lost, out of memory): a device error, or a trap with no kind. */
function isDeviceError(e) {
  return Boolean(e) && (e.kind === 'device' || (e.kind === undefined && e instanceof WebAssembly.RuntimeError));
}

/**
 * Loads the build that suits the backend (`webgpu` or `cpu`; "best available" is resolved before,
 * `loadBest`): WebGPU needs pkg/, the threaded build has no WebGPU; the CPU gets pkg-threads/
 * where the page allows it.
 */
async function useBuild(backend) {
  const gpu = backend === 'webgpu';
  const want = gpu || threadsUnavailable ? 'single' : 'threads';
  if (build === want) return;
  const loaded = await loadWasm(undefined, { webgpu: gpu });
  ({ Classifier, GalleryIndex, WeightsStream, TreeOfLifeStream, TaxaIndex, colourTable, cosineMap, TorchCheckpoint } = loaded.wasm);
  cpu = loaded.cpu;
  build = loaded.build;
  if (!gpu && build === 'single') threadsUnavailable = true;
}

/**
 * Streams the weights file (a Blob: a File, a stored file, a download) into WebAssembly piece
 * by piece, so the whole file is never in memory next to the model made from it.
 */
async function readWeights(blob, sha256, progress) {
  const stream = new WeightsStream(sha256);
  const reader = blob.stream().getReader();
  const total = blob.size;
  let shown = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      stream.push(value);
      if (stream.received - shown >= total / 50) {
        shown = stream.received;
        progress(`Reading the weights: ${Math.round(shown / 1e6)} of ${Math.round(total / 1e6)} MB`, 0.4 * (shown / total));
      }
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    stream.free();
    throw e;
  }
  return stream;
}

/**
 * A PyTorch zip checkpoint (`torch.save`: .bin/.pt, e.g. BioCLIP's `open_clip_pytorch_model.bin`)
 * as the safetensors file of its weights: a Blob made of the header and slices of the file, which
 * is streamed like any weights file. Only the archive's directory and `data.pkl` are read here:
 * the wasm `TorchCheckpoint` asks for those pieces, then gives the header and where each tensor's
 * bytes lie (an error of kind 'model', a sentence, for a file it cannot read). Any other file
 * (one that is not a zip archive) is returned as it is.
 */
async function asSafetensors(blob) {
  const magic = new Uint8Array(await blob.slice(0, 4).arrayBuffer());
  if (magic.length < 4 || magic[0] !== 0x50 || magic[1] !== 0x4b || magic[2] !== 3 || magic[3] !== 4) return blob;
  if (typeof TorchCheckpoint !== 'function') throw failure('model', 'This build of fieldclip reads no PyTorch checkpoints: rebuild the page (scripts/build-web.sh).');
  // `[start, length, …]` pairs → slices of the file (read only when the Blob made of them is).
  const slices = (pairs) => {
    const parts = [];
    for (let i = 0; i < pairs.length; i += 2) parts.push(blob.slice(pairs[i], pairs[i] + pairs[i + 1]));
    return parts;
  };
  const checkpoint = new TorchCheckpoint(blob.size);
  try {
    for (let wanted = checkpoint.wanted(); wanted.length > 0; wanted = checkpoint.wanted()) {
      checkpoint.give(new Uint8Array(await new Blob(slices(wanted)).arrayBuffer()));
    }
    return new Blob([checkpoint.header(), ...slices(checkpoint.ranges())]);
  } finally {
    try { checkpoint.free(); } catch { /* after a trap */ }
  }
}

/** Most bytes a weights header may take (the reader's own limit is 100 MB; this bounds the probe). */
const HEADER_PROBE_LIMIT = 100 << 20;

/**
 * Reads only the header of a weights file (safetensors or model pack) through a throwaway
 * `WeightsStream`: a file that is not one, whose header is damaged, or that is shorter than its
 * header says, is refused here with the reader's sentence and `kept: true` (the model in use was
 * not touched). Tensor data is not read, so this costs the header's size in memory.
 */
async function checkHeader(blob) {
  const refuse = (message) => Object.assign(failure('model', message), { kept: true });
  const probe = new WeightsStream(false);
  try {
    blob = await asSafetensors(blob); // a PyTorch checkpoint: the safetensors file it makes
    const head = new Uint8Array(await blob.slice(0, 8).arrayBuffer());
    probe.push(head);
    if (head.length === 8) {
      const length = Number(new DataView(head.buffer).getBigUint64(0, true));
      if (length <= HEADER_PROBE_LIMIT) probe.push(new Uint8Array(await blob.slice(8, 8 + length).arrayBuffer()));
    }
    const expected = probe.expectedSize;
    if (expected === undefined) {
      // Too short for its header, or a header over the probe's bound: the full load says which.
      if (blob.size < 8 || blob.size < 8 + Number(new DataView(head.buffer).getBigUint64(0, true))) {
        throw refuse('This is not a weights file fieldclip can read: it is too short to hold its header.');
      }
      return;
    }
    if (expected > blob.size) {
      throw refuse(`This weights file is cut off: its header describes ${expected} bytes, the file has ${blob.size}.`);
    }
  } catch (e) {
    if (e.kept) throw e;
    throw refuse(e.message);
  } finally {
    try { probe.free(); } catch { /* after a trap */ }
  }
}

/**
 * Builds the classifier from `source`. `sha256`: true to compute the file's SHA-256, or the
 * one it was stored under, to check it against. Returns the SHA-256 (if computed). `phase`: the
 * part of a longer load this is (`loadBest`), its name put before each step.
 */
async function create(backend, sha256Wanted = false, phase = undefined) {
  const progress = phase
    ? (step, fraction) => phaseProgress(phase, step, fraction)
    : (step, fraction) => self.postMessage({ progress: { step, fraction } });
  let stream;
  try {
    stream = await readWeights(await asSafetensors(source.weights), !!sha256Wanted, progress);
  } catch (e) {
    // A stored file that no longer reads as a model was damaged on the device.
    if (typeof sha256Wanted === 'string') throw failure('storage', `The weights file changed since it was saved (${e.message}).`);
    throw e;
  }
  const sha256 = stream.sha256();
  if (typeof sha256Wanted === 'string' && sha256 !== sha256Wanted) {
    stream.free();
    throw failure('storage', 'The weights file changed since it was saved.');
  }
  // Loading steps after reading: 40% → 100%.
  const building = (step, fraction) => progress(step, 0.4 + 0.6 * fraction);
  const next = await Classifier.fromStream(stream, source.config, backend, building);
  if (next.backend === 'webgpu') {
    // The GPU compiles its kernels now, not on the first photo (#18).
    building('Preparing WebGPU (compiling its kernels once)', 1);
    await next.warmUp();
  }
  dropClassifier();
  classifier = next;
  modelPreprocess = classifier.preprocess;
  applyPreprocess();
  if (source.prompts) importPrompts(source.prompts);
  if (labels) await applyLabels(labels);
  if (adapter) {
    try {
      classifier.setAdapter(adapter);
    } catch {
      adapter = null; // made for another label list; the page makes a new one
    }
  }
  return sha256;
}

/** Hands a label set (plain or taxa) to the classifier; returns the prompts it newly encoded. */
function applyLabels(set) {
  return set.taxa
    ? classifier.setTaxa(set.taxa.table, set.taxa.format, set.taxa.templates)
    : classifier.setLabels(set.labels, set.templates);
}

function applyPreprocess() {
  classifier.setPreprocess(preprocess === 'auto' ? modelPreprocess : preprocess);
}

// ---- "Best available" (#18): measured, never a software adapter (www/backend-choice.js) ----

/** A progress report of one part (`{ label, from, to }`) of a longer load. */
function phaseProgress(phase, step, fraction) {
  self.postMessage({ progress: { step: `${phase.label}: ${step}`, fraction: phase.from + (phase.to - phase.from) * fraction } });
}

/**
 * The CPU side of the device's identity: its cores, and whether the page is cross-origin
 * isolated (which decides the build the CPU gets, www/wasm.js).
 */
function cpuIdentity() {
  return `cpu ${self.navigator.hardwareConcurrency || 1} cores${self.crossOriginIsolated ? ', isolated' : ''}`;
}

/** A newer load arrived since the one that asked (`generation`, noted as it arrived): stop. */
function checkCurrent(generation) {
  if (generation !== loadGeneration) throw failure('cancelled', 'A newer model replaced this one while it was being measured.');
}

/**
 * The median time (ms) of a warm image embedding on the model in use: one embedding to warm up
 * (WebGPU compiles its pipelines then), then up to three timed (fewer once 3 s are spent). The
 * photo is already preprocessed pixels (a fixed pattern), so this is the model's time alone.
 */
async function timeEmbedding() {
  const size = Number(classifier.info()?.config?.vision?.image_size) || 224;
  const pixels = new Float32Array(3 * size * size);
  for (let i = 0; i < pixels.length; i++) pixels[i] = ((i * 7919) % 255) / 127.5 - 1;
  await classifier.embedPixels(pixels);
  const times = [];
  let spent = 0;
  while (times.length < 3 && (times.length === 0 || spent < 3000)) {
    const start = performance.now();
    await classifier.embedPixels(pixels);
    times.push(performance.now() - start);
    spent += times[times.length - 1];
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

/**
 * Times a warm image embedding on `backend` in a worker of its own (this same script), which
 * loads the model from `source` with the build that backend gets here (the threaded one for the
 * CPU where the page is isolated) and is ended as soon as it answers, its memory with it. A
 * newer load ends it at once (onmessage → `probe.cancel()`). Resolves to `{ ms, cpu }`; a
 * failure keeps the measuring worker's kind ('model' for a file that is not one).
 */
function measureInProbe(backend, phase) {
  return new Promise((resolve, reject) => {
    let worker;
    try {
      worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    } catch (e) {
      reject(failure('device', `a second worker could not start here (${e.message || e})`));
      return;
    }
    const mine = {};
    const end = (settle, value) => {
      worker.terminate();
      if (probe === mine) probe = null;
      settle(value);
    };
    mine.cancel = () => end(reject, failure('cancelled', 'A newer model replaced this one while it was being measured.'));
    probe = mine;
    worker.onmessage = ({ data }) => {
      if (data.progress) return phaseProgress(phase, data.progress.step, 0.9 * data.progress.fraction);
      if (!data.ok) return end(reject, failure(data.kind, data.error));
      if (data.id === 'measure') return end(resolve, data.value);
      phaseProgress(phase, 'timing a photo', 0.9);
    };
    worker.onerror = (e) => {
      e.preventDefault?.();
      end(reject, failure('device', e.message || 'the measuring worker stopped'));
    };
    worker.postMessage({ id: 'load', type: 'load', backend, weights: source.weights, config: source.config, sha256: false });
    worker.postMessage({ id: 'measure', type: 'measure' });
  });
}

/**
 * What a measurement that failed says, or the error itself (thrown) when the failure is not the
 * backend's: a file that is not a model fails on every backend, and a newer load cancels.
 */
function measureFailure(e) {
  if (e?.kind === 'cancelled' || !isDeviceError(e)) throw e;
  return String(e.message || e);
}

/** `{ webgpuMs | webgpuError, cpuMs | cpuError, cpuThreads }` → the record kept for the device and model. */
function decide(measured, test) {
  const record = { ...measured };
  // Test-only (www/backend-choice.js `testOverrides`): the measured medians replaced (and kept
  // as `measured`, to show the measurement ran).
  if (test?.ms) record.measured = { webgpuMs: measured.webgpuMs, cpuMs: measured.cpuMs };
  if (Number.isFinite(record.webgpuMs) && Number.isFinite(test?.ms?.webgpu)) record.webgpuMs = test.ms.webgpu;
  if (Number.isFinite(record.cpuMs) && Number.isFinite(test?.ms?.cpu)) record.cpuMs = test.ms.cpu;
  const gpuWins = Number.isFinite(record.webgpuMs) && !(Number.isFinite(record.cpuMs) && record.cpuMs <= record.webgpuMs);
  return { ...record, backend: gpuWins ? 'webgpu' : 'cpu', measuredAt: Date.now(), adapter: auto.adapter };
}

/**
 * Loads the model on the best backend here ("best available"). No WebGPU adapter, or a software
 * one: the CPU. A hardware adapter: the choice remembered for this device and model
 * (`msg.choices`, key → record, kept by the page), else measured: the CPU in a worker of its own
 * first (its model freed with it), then WebGPU here; the CPU wins → the model is built again on
 * it. Two models are never held longer than one measurement. Returns `{ sha256, choice }`:
 * `choice` says why (www/backend-choice.js `describeChoice`), with `measured: true` when the
 * page should remember its record.
 */
async function loadBest(msg) {
  // Test-only overrides (www/backend-choice.js `testOverrides`).
  const test = msg.test && typeof msg.test === 'object' ? msg.test : undefined;
  const gpu = await webgpuAdapter(test?.adapter === 'hardware');
  if (!gpu.usable) {
    await useBuild('cpu');
    const sha256 = await create('cpu', msg.sha256);
    return { sha256, choice: { kind: gpu.software ? 'software' : 'none', why: gpu.why } };
  }
  const key = `${gpu.key} | ${cpuIdentity()} | model ${await sampledDigest(source.weights)}`;
  auto = { key, adapter: gpu.label, test };
  const remembered = msg.choices && typeof msg.choices === 'object' ? msg.choices[key] : undefined;
  if (isRecord(remembered)) {
    if (remembered.backend === 'webgpu') {
      try {
        await useBuild('webgpu');
        return { sha256: await create('webgpu', msg.sha256), choice: { kind: 'measured', key, record: remembered, measured: false } };
      } catch (e) {
        const why = measureFailure(e);
        await useBuild('cpu');
        return { sha256: await create('cpu', msg.sha256), choice: { kind: 'failed', key, why: `WebGPU did not start: ${why}` } };
      }
    }
    await useBuild('cpu');
    return { sha256: await create('cpu', msg.sha256), choice: { kind: 'measured', key, record: remembered, measured: false } };
  }

  const measured = {};
  try {
    const cpuSide = await measureInProbe('cpu', { label: 'Measuring the CPU (1 of 2)', from: 0, to: 0.45 });
    measured.cpuMs = cpuSide.ms;
    measured.cpuThreads = cpuSide.cpu?.threads;
  } catch (e) {
    measured.cpuError = measureFailure(e);
  }
  checkCurrent(msg.loadGeneration);
  const phase = { label: 'Measuring WebGPU (2 of 2)', from: 0.45, to: 1 };
  let sha256;
  try {
    await useBuild('webgpu');
    sha256 = await create('webgpu', msg.sha256, { ...phase, to: 0.95 });
    checkCurrent(msg.loadGeneration);
    phaseProgress(phase, 'timing a photo', 0.9);
    measured.webgpuMs = await timeEmbedding();
  } catch (e) {
    measured.webgpuError = measureFailure(e);
    dropClassifier();
  }
  checkCurrent(msg.loadGeneration);
  const record = decide(measured, test);
  if (record.backend === 'cpu') {
    dropClassifier();
    await useBuild('cpu');
    const computed = await create('cpu', sha256 ? false : msg.sha256, { label: 'Loading on the CPU, the faster here', from: 0, to: 1 });
    sha256 = sha256 || computed;
  }
  record.modelId = classifier.modelId;
  return { sha256, choice: { kind: 'measured', key, record, measured: true } };
}

/**
 * "Measure again": the model in use timed where it runs, the other backend in a measuring
 * worker; the faster kept (the model built again on it, labels and adapter as they were).
 */
async function remeasure(msg) {
  need();
  if (!auto) throw failure('input', 'Only a model loaded with "best available" on a hardware WebGPU adapter is measured: choose it under Run on and load the model again.');
  const current = classifier.backend === 'webgpu' ? 'webgpu' : 'cpu';
  const other = current === 'webgpu' ? 'cpu' : 'webgpu';
  const label = (b) => (b === 'webgpu' ? 'WebGPU' : 'the CPU');
  const measured = current === 'cpu' ? { cpuThreads: cpu.threads } : {};
  try {
    phaseProgress({ label: `Measuring ${label(current)} (1 of 2)`, from: 0, to: 0.1 }, 'timing a photo', 0);
    measured[`${current}Ms`] = await timeEmbedding();
  } catch (e) {
    measured[`${current}Error`] = measureFailure(e);
  }
  checkCurrent(msg.loadGeneration);
  try {
    const side = await measureInProbe(other, { label: `Measuring ${label(other)} (2 of 2)`, from: 0.1, to: 1 });
    measured[`${other}Ms`] = side.ms;
    if (other === 'cpu') measured.cpuThreads = side.cpu?.threads;
  } catch (e) {
    measured[`${other}Error`] = measureFailure(e);
  }
  checkCurrent(msg.loadGeneration);
  const record = decide(measured, auto.test);
  if (record.backend !== current) {
    // The model in use stays until the new one is built (as when WebGPU is lost).
    await useBuild(record.backend);
    await create(record.backend, false, { label: `Loading on ${label(record.backend)}, the faster here`, from: 0, to: 1 });
  }
  record.modelId = classifier.modelId;
  return { choice: { kind: 'measured', key: auto.key, record, measured: true }, backend: classifier.backend, cpu };
}

/**
 * One photo against the labels in use: taxa (a list or the tree of life) answer at a rank
 * (`threshold`), plain labels not. `msg.map` (a variant's name): also the map of where the best
 * label matches (#15), from the same forward pass; against the tree of life, of the top
 * species' embedding in the tree (the probabilities are those of the photo's embedding alone).
 */
async function classifyPhoto(bytes, msg) {
  const threshold = Number.isFinite(msg.threshold) ? msg.threshold : 0.8;
  if (tree?.active) {
    const mapping = typeof msg.map === 'string';
    const seen = mapping ? await classifier.embedImageWithPatches(bytes, msg.map) : { embedding: await classifier.embedImage(bytes) };
    const result = tree.index.classify(seen.embedding, classifier.logitScale, threshold, msg.topK);
    // The page has no table of these taxa to look lineages up in: they come with the result.
    for (const p of result.predictions) {
      p.lineage = treeLineage(p);
      p.mapLabel = treeMapLabel(p.label, p.common_name);
    }
    const top = result.predictions[0];
    const map = mapping && Number.isInteger(top?.index) ? treeMap(seen, top.index, top.mapLabel) : undefined;
    return { ...result, threshold, tree: true, map };
  }
  const taxa = classifier.taxonCount > 0;
  if (typeof msg.map === 'string') {
    const explained = await classifier.explain(bytes, [], msg.map, msg.topK, taxa ? threshold : undefined);
    const map = mapsOf(explained).maps[0];
    if (!taxa) return { predictions: explained.predictions, map };
    return { ...withMapLabels(explained.taxa), threshold, map };
  }
  if (!taxa) return classifier.classify(bytes, msg.topK);
  return { ...withMapLabels(await classifier.classifyTaxa(bytes, threshold, msg.topK)), threshold };
}

/** What a tree-of-life species' map is called: its name, with its common name. */
function treeMapLabel(label, common) {
  if (!common) return label;
  return label ? `${label} (${common})` : common;
}

/**
 * The map of taxon `index` of the tree of life in use over a photo seen by
 * `embedImageWithPatches` (`seen`), as `mapsOf` gives maps: its cosines scaled to their own
 * min–max.
 */
function treeMap(seen, index, text) {
  const cosine = cosineMap(seen.patches, tree.index.embedding(index));
  return { text, cosine, ...range(cosine), grid: seen.grid, variant: seen.variant, preprocess: classifier.preprocess };
}

/**
 * Maps over a photo of tree-of-life species, `taxa[k]` the index (in the tree in use) of the
 * species the card calls `labels[k]`: a new pass over the photo (its patches are not kept).
 * A species no longer there (another tree, or another filter, since the photo was classified)
 * has no map.
 */
async function treeMaps(bytes, labels, taxa, variant) {
  const found = taxa.map((i, k) => {
    const [t] = Number.isInteger(i) && i >= 0 && i < tree.index.size ? tree.index.taxa(i, 1) : [];
    if (!t || treeMapLabel(nameAt(t, 6), t.common_name) !== labels[k]) {
      throw failure('input', `${labels[k]} is not in the tree of life in use: classify the photo again to see where its species match.`);
    }
    return i;
  });
  const seen = await classifier.embedImageWithPatches(bytes, variant);
  const preprocess = classifier.preprocess;
  return { grid: seen.grid, variant: seen.variant, preprocess, maps: found.map((i, k) => treeMap(seen, i, labels[k])) };
}

/**
 * A heat-map answer of `explain` as the page draws it: each map with its grid, variant and how
 * the photo was resized (which part of it the model saw: the centred square, or all of it
 * squashed), its values a Float32Array.
 */
function mapsOf(explained) {
  const { grid, variant } = explained;
  const preprocess = classifier.preprocess;
  return {
    grid, variant, preprocess,
    maps: explained.maps.map((m) => ({ text: m.text, cosine: Float32Array.from(m.cosine), min: m.min, max: m.max, grid, variant, preprocess })),
  };
}

/**
 * Each species of a taxa list's result gets `mapLabel`: the label in use that its map is asked
 * for (its class name, e.g. "Plantae … Quercus robur with common name English oak"), found as
 * www/taxa.js `lineageLookup` finds lineages. A species not found gets none (and no map).
 */
function withMapLabels(result) {
  if (!taxaNames) {
    const inUse = new Set(classifier.labels);
    taxaNames = new Map();
    try {
      for (const t of usedTaxa(parseTaxa(labels.taxa.table), labels.taxa.format)) {
        const key = `${nameAt(t, 6)}\u0000${t.common}`;
        const name = className(t, labels.taxa.format).trim();
        if (!taxaNames.has(key) && inUse.has(name)) taxaNames.set(key, name);
      }
    } catch { /* the worker read the table: it reads here too; if not, no maps */ }
  }
  for (const p of result.predictions) {
    const name = taxaNames.get(`${p.label}\u0000${p.common_name ?? ''}`);
    if (name !== undefined) p.mapLabel = name;
  }
  return result;
}

/**
 * Runs `work` on the model; if WebGPU fails there (a device error), the model moves to the CPU
 * and `work` runs again. A bad photo (or anything else) never moves it. Resolves to
 * `{ value, switchedToCpu }` (the reason, when it moved).
 */
async function onDevice(work) {
  try {
    return { value: await work() };
  } catch (e) {
    if (classifier.backend !== 'webgpu' || !isDeviceError(e)) throw e;
    const switchedToCpu = String(e.message || e);
    await create('cpu');
    return { value: await work(), switchedToCpu };
  }
}

/**
 * A predicted species' lineage (`{ kingdom, …, species (the epithet), common_name }`), found by
 * its label and common name as www/taxa.js `lineageLookup` does. The name → index map is made
 * at the first photo (10,000 taxa at a time), holding numbers, not 400,000 lineages.
 */
function treeLineage(p) {
  const { index } = tree;
  if (!tree.byName) {
    const byName = new Map();
    for (let start = 0; start < index.size; start += 10000) {
      index.taxa(start, Math.min(10000, index.size - start)).forEach((t, k) => {
        const key = `${nameAt(t, 6)}\u0000${t.common_name}`;
        if (!byName.has(key)) byName.set(key, start + k);
      });
    }
    tree.byName = byName;
  }
  const i = tree.byName.get(`${p.label}\u0000${p.common_name ?? ''}`);
  if (i === undefined) return null;
  const [t] = index.taxa(i, 1);
  return { ...Object.fromEntries(RANKS.map((r, k) => [r, t.ranks[k]])), common_name: t.common_name };
}

const formatMB = (bytes) => Math.round(bytes / 1e6).toLocaleString('en');

/**
 * Streams pybioclip's `txt_emb_species.npy` (a Blob, up to ~1 GB) into WebAssembly piece by
 * piece, as `readWeights` does, keeping only the taxa within `filter` (a taxon's name) or, when
 * `speciesList` is a string, the species on that list; returns the TaxaIndex.
 */
async function readTreeOfLife(blob, names, { filter, speciesList }, progress) {
  let stream;
  if (typeof speciesList === 'string') {
    if (typeof TreeOfLifeStream.withSpeciesList !== 'function') throw failure('model', 'This build of fieldclip reads no species lists: rebuild the page (scripts/build-web.sh).');
    stream = TreeOfLifeStream.withSpeciesList(names, speciesList);
  } else {
    stream = new TreeOfLifeStream(names, filter || undefined);
  }
  const reader = blob.stream().getReader();
  const total = blob.size;
  let shown = -Infinity;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw failure('input', `${blob.name || 'The .npy file'} could not be read (${e.message || e}).`);
      }
      if (chunk.done) break;
      stream.push(chunk.value);
      if (stream.received - shown >= total / 100) {
        shown = stream.received;
        const kept = Number(stream.kept) || 0;
        progress(`Reading the tree of life: ${formatMB(shown)} of ${formatMB(total)} MB${kept ? `, ${kept.toLocaleString('en')} taxa kept` : ''}`, shown / total);
      }
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    try { stream.free(); } catch { /* after a trap */ }
    throw outOfMemory(e);
  }
  try {
    return stream.finish(); // consumes the stream, also when it throws
  } catch (e) {
    throw outOfMemory(e);
  }
}

/** A trap while reading the tree is most likely the 4 GB WebAssembly memory running out. */
function outOfMemory(e) {
  if (!(e instanceof WebAssembly.RuntimeError || e instanceof RangeError)) return e;
  return failure('input', `Reading the tree of life stopped (${e.message}), most likely for want of memory in this browser: choose a filter (e.g. Plantae) to keep fewer taxa.`);
}

/** Its embeddings must be as wide as the model's; the page cannot check more than that. */
function checkTreeFits(dim) {
  if (dim === classifier.embeddingSize) return;
  throw failure('input', `The tree of life's embeddings have ${dim} numbers each and this model's have ${classifier.embeddingSize}: they fit only the BioCLIP model they were made with. Load that model in step 1.`);
}

/**
 * Makes `index` the tree of life in use (the one before is freed). `pack`: also return its
 * compact label pack for the page to keep on the device.
 */
function useTree(index, filter, filterKind, pack) {
  try {
    checkTreeFits(index.dim);
  } catch (e) {
    index.free();
    throw e;
  }
  dropTree();
  tree = { index, filter: filter || '', filterKind: filter ? filterKind || 'taxon' : '', byName: null, active: true };
  const answer = { size: index.size, dim: index.dim, filter: tree.filter, filterKind: tree.filterKind, modelId: classifier.modelId };
  if (!pack) return answer;
  const bytes = index.pack();
  return transferring({ ...answer, pack: bytes }, [bytes.buffer]);
}

function dropTree() {
  try { tree?.index.free(); } catch { /* already freed */ }
  tree = null;
}

// A reply's buffers to hand over rather than copy (a label pack can be hundreds of MB).
// Structured cloning leaves symbol-keyed properties out.
const TRANSFER = Symbol('transfer');
const transferring = (value, buffers) => Object.assign(value, { [TRANSFER]: buffers });

/**
 * Frees the model in use now (its WebAssembly memory: hundreds of MB), rather than leaving it to
 * the garbage collector while the next one loads.
 */
function dropClassifier() {
  try { classifier?.free(); } catch { /* already freed */ }
  classifier = null;
}

/**
 * The adapter's leave-one-out check, part by part (the model's `adapterCheckParts`), the event
 * loop free between parts so that a newer request can arrive; one that makes this check out of
 * date (`adapterGeneration` moved on from `generation`) stops it with kind 'cancelled'.
 */
async function checkAdapterInParts(json, generation) {
  const parts = classifier.adapterCheckParts(json);
  const total = { examples: 0, zero_shot_correct: 0, adapted_correct: 0, classes_without_examples: 0 };
  for (let part = 0; part < parts; part++) {
    if (part > 0) await new Promise((r) => setTimeout(r, 0));
    if (generation !== adapterGeneration) throw failure('cancelled', 'A newer change replaced this check.');
    const check = classifier.checkAdapterPart(json, part);
    total.examples += check.examples;
    total.zero_shot_correct += check.zero_shot_correct;
    total.adapted_correct += check.adapted_correct;
    total.classes_without_examples = check.classes_without_examples;
  }
  return total;
}

/** Stored prompt embeddings that do not fit this model (kind 'storage') are dropped, not fatal. */
function importPrompts(prompts) {
  try {
    classifier.importPromptEmbeddings(prompts.prompts, prompts.embeds);
  } catch (e) {
    if (e?.kind !== 'storage') throw e;
    source.prompts = null;
  }
}

/**
 * Stored prompt embeddings (one Float32Array a prompt) → one flat array, or null if none fit
 * (or what was stored is damaged: then the prompts are simply encoded again).
 */
function storedPrompts(stored) {
  if (!stored || !Array.isArray(stored.prompts) || !Array.isArray(stored.embeds) || stored.prompts.length === 0) return null;
  if (stored.embeds.length !== stored.prompts.length || stored.prompts.some((p) => typeof p !== 'string')) return null;
  const dim = stored.embeds[0]?.length;
  if (!dim || stored.embeds.some((e) => !(e instanceof Float32Array) || e.length !== dim)) return null;
  const embeds = new Float32Array(dim * stored.embeds.length);
  stored.embeds.forEach((e, i) => embeds.set(e, i * dim));
  return { prompts: stored.prompts, embeds };
}

async function handle(msg) {
  switch (msg.type) {
    case 'load': {
      // A file that is not a model is refused before the model in use is freed, which then
      // stays in use with its labels ("loses nothing"); only the file's header is read for this.
      if (classifier) await checkHeader(msg.weights instanceof Blob ? msg.weights : new Blob([msg.weights]));
      dropClassifier();
      // The page puts it back in use (checking its width) once the model is built.
      if (tree) tree.active = false;
      labels = null;
      taxaNames = null;
      adapter = null;
      auto = null;
      // A Blob is a handle (a File, a stored file): kept to rebuild the model on the CPU.
      const weights = msg.weights instanceof Blob ? msg.weights : new Blob([msg.weights]);
      source = { weights, config: msg.config ? new Uint8Array(msg.config) : undefined, prompts: storedPrompts(msg.prompts) };
      if (PREPROCESS.includes(msg.preprocess)) preprocess = msg.preprocess;
      // "best available" ('auto') is decided here, by measuring; a backend chosen by hand is used as it is.
      let sha256;
      let choice;
      if (msg.backend === 'auto' || !msg.backend) {
        ({ sha256, choice } = await loadBest(msg));
      } else {
        await useBuild(msg.backend);
        sha256 = await create(msg.backend, msg.sha256);
      }
      return {
        info: classifier.info(), modelId: classifier.modelId, sha256, backend: classifier.backend,
        reason: choice ? undefined : classifier.backendReason, choice, cpu,
        cachedPrompts: classifier.encodedPrompts, preprocess: classifier.preprocess, modelPreprocess,
      };
    }
    case 'measure':
      // A measuring worker's one job (`measureInProbe`): the model it loaded, timed.
      need();
      return { ms: await timeEmbedding(), backend: classifier.backend, cpu };
    case 'remeasure':
      return remeasure(msg);
    case 'preprocess': {
      // Remembered without a model too: the next one loads with it.
      if (!PREPROCESS.includes(msg.mode)) throw failure('input', `Unknown resize "${msg.mode}": use auto, crop or squash.`);
      preprocess = msg.mode;
      if (classifier) applyPreprocess();
      return { preprocess: classifier ? classifier.preprocess : null, modelPreprocess };
    }
    case 'prompts': {
      need();
      const prompts = storedPrompts(msg.prompts);
      if (prompts) {
        source.prompts = prompts;
        importPrompts(prompts);
      }
      return { cachedPrompts: classifier.encodedPrompts };
    }
    case 'embedImage':
      need();
      return { embedding: await classifier.embedImage(new Uint8Array(msg.bytes)) };
    case 'embedText': {
      need();
      return { embedding: await classifier.embedTexts([msg.text]) };
    }
    case 'galleryReset':
      gallery?.free();
      gallery = new GalleryIndex(msg.dim || classifier.embeddingSize);
      if (msg.matrix.length) gallery.add(msg.matrix);
      return { size: gallery.size };
    case 'galleryAdd':
      gallery.add(msg.embedding);
      return { size: gallery.size };
    case 'search':
      return { hits: gallery.search(msg.query, msg.k) };
    case 'makeAdapter':
      need();
      return { json: classifier.makeAdapter(msg.examples, msg.exampleLabels, msg.alpha, msg.beta, msg.probe) };
    case 'useAdapter': {
      need();
      // Off while it is checked: a check that is stopped leaves none (the newer request sets it).
      adapter = null;
      classifier.setAdapter(undefined);
      if (!msg.json) return null;
      const check = await checkAdapterInParts(msg.json, msg.adapterGeneration);
      if (msg.active) {
        classifier.setAdapter(msg.json);
        adapter = msg.json;
      }
      return check;
    }
    case 'labels': {
      need();
      // A list chosen: the tree of life stays here, unused.
      if (tree) tree.active = false;
      const set = msg.taxa ? { taxa: msg.taxa } : { labels: msg.labels, templates: msg.templates };
      const fresh = await applyLabels(set);
      labels = set;
      taxaNames = null;
      const embeds = fresh.length ? classifier.promptEmbeddings(fresh) : null;
      return { encodedPrompts: classifier.encodedPrompts, fresh, embeds };
    }
    case 'treeOfLife': {
      // pybioclip's pair: `npy` a Blob, streamed here; `names` the names JSON's bytes; `filter`
      // a taxon's name, or `speciesList` the text of a species list (then `filter` is "N species").
      need();
      const progress = (step, fraction) => self.postMessage({ treeProgress: { step, fraction } });
      const species = typeof msg.speciesList === 'string';
      // As the library's filter describes itself (a bad table is refused here, before the read).
      const filter = species ? `${speciesOfList(msg.speciesList).length.toLocaleString('en')} species` : msg.filter;
      const index = await readTreeOfLife(msg.npy, new Uint8Array(msg.names), msg, progress);
      progress('Reading the tree of life: done', 1);
      return useTree(index, filter, species ? 'species' : 'taxon', msg.keep);
    }
    case 'treeOfLifeUse': {
      // Back in use after a list or a model change; `present: false` when this worker has none
      // (a new visit): the page then sends the pack it keeps.
      need();
      if (!tree) return { present: false };
      checkTreeFits(tree.index.dim);
      tree.active = true;
      return { present: true, size: tree.index.size, dim: tree.index.dim, filter: tree.filter, filterKind: tree.filterKind, modelId: classifier.modelId };
    }
    case 'treeOfLifeRestore': {
      need();
      let index;
      try {
        index = TaxaIndex.fromPack(new Uint8Array(msg.pack));
      } catch (e) {
        throw failure('storage', String(e?.message || e));
      }
      return useTree(index, msg.filter, msg.filterKind, false);
    }
    case 'treeOfLifeDrop':
      dropTree();
      return null;
    case 'classify': {
      need();
      const bytes = new Uint8Array(msg.bytes);
      const start = performance.now();
      const { value: result, switchedToCpu } = await onDevice(() => classifyPhoto(bytes, msg));
      const answer = { ...result, ms: performance.now() - start, backend: classifier.backend, adapted: adapter !== null && !tree?.active };
      if (switchedToCpu) answer.switchedToCpu = switchedToCpu;
      return answer;
    }
    case 'explain': {
      // Where labels match a photo (#15): `labels` are labels in use (a taxa list's class
      // names), `variant` a map variant's name ('' for ClearCLIP). Against the tree of life,
      // `taxa` gives each label's species (its index in the tree).
      need();
      const inTree = Array.isArray(msg.taxa);
      if (inTree && !tree?.active) throw failure('input', 'The tree of life is no longer in use: choose it again in step 2 to see where its species match.');
      if (!inTree && tree?.active) throw failure('input', 'This photo was classified against a label list: choose that list again in step 2 to see where its labels match.');
      const bytes = new Uint8Array(msg.bytes);
      const wanted = Array.isArray(msg.labels) ? msg.labels.map(String) : [];
      const variant = String(msg.variant ?? '');
      const start = performance.now();
      const { value, switchedToCpu } = await onDevice(async () => (inTree
        ? treeMaps(bytes, wanted, msg.taxa, variant)
        : mapsOf(await classifier.explain(bytes, wanted, variant, 1, undefined))));
      const answer = { ...value, ms: performance.now() - start, backend: classifier.backend };
      if (switchedToCpu) answer.switchedToCpu = switchedToCpu;
      return answer;
    }
    case 'colourTable': {
      if (typeof colourTable !== 'function') throw failure('model', 'This build of fieldclip draws no maps: rebuild the page (scripts/build-web.sh).');
      const table = colourTable();
      return transferring({ table }, [table.buffer]);
    }
    default:
      throw failure('input', `unknown request ${msg.type}`);
  }
}

function need() {
  if (!classifier) throw failure('input', 'Load a model first.');
}

// One request at a time: the classifier is borrowed mutably while labels are encoded. (An
// adapter check waits between its parts, but still holds its turn: nothing else runs meanwhile.)
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  if (ADAPTER_CHANGES.has(data.type)) adapterGeneration += 1;
  if (data.type === 'useAdapter') data.adapterGeneration = adapterGeneration;
  if (data.type === 'load') {
    loadGeneration += 1;
    probe?.cancel();
  }
  data.loadGeneration = loadGeneration;
  queue = queue.then(async () => {
    try {
      // A load picks its build itself.
      if (!build && data.type !== 'load') await useBuild('webgpu');
      const value = await handle(data);
      self.postMessage({ id: data.id, ok: true, value }, value?.[TRANSFER] ?? []);
    } catch (e) {
      self.postMessage({ id: data.id, ok: false, error: String(e && e.message ? e.message : e), kind: kindOf(e), kept: Boolean(e?.kept) });
    }
  });
};
