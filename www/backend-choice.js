// "Best available" (#18): which backend runs a model when the user leaves the choice to the page.
// Decided by measuring, not by presence: a software WebGPU adapter (SwiftShader, llvmpipe, WARP:
// the CPU pretending to be a GPU) is never chosen; on a hardware adapter the first load of a
// model times a warm image embedding on WebGPU and on the CPU build this page would use, and
// the faster one is kept, remembered per device and model (www/worker.js measures; the page
// keeps the records under the device store's `kv` key `backendChoices`, www/model-panel.js).
// Shared by the worker (adapters, keys) and the page (what the status line says).

/** What the adapter's own description says when it is a software renderer. */
const SOFTWARE = /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render|warp/i;

/**
 * The browser's default WebGPU adapter, as the choice sees it: `{ usable, software, label, key,
 * why }`. `usable`: a hardware adapter to measure on; `software`: a fallback adapter
 * (`isFallbackAdapter`, or its vendor/architecture/description names a software renderer),
 * never chosen; `label`: for people; `key`: its identity (vendor/architecture/device/description);
 * `why`: when not usable, the reason, for the status line.
 * `countAsHardware`: test-only (see `testOverrides`), treats a software adapter as hardware.
 */
export async function webgpuAdapter(countAsHardware = false) {
  if (!self.navigator?.gpu) return { usable: false, software: false, why: 'this browser has no WebGPU' };
  const adapter = await self.navigator.gpu.requestAdapter().catch(() => null);
  if (!adapter) return { usable: false, software: false, why: 'the browser offers no WebGPU adapter' };
  // `info` (Chromium 127+, Firefox, Safari); older Chromium had `requestAdapterInfo()`.
  const info = adapter.info || (await adapter.requestAdapterInfo?.().catch(() => null)) || {};
  const fields = ['vendor', 'architecture', 'device', 'description'].map((k) => String(info[k] ?? ''));
  const label = fields[3] || fields.slice(0, 3).filter(Boolean).join(' ') || 'an unnamed adapter';
  const software = info.isFallbackAdapter === true || adapter.isFallbackAdapter === true || SOFTWARE.test(fields.join(' '));
  const key = `webgpu ${fields.join('/')}`;
  if (software && !countAsHardware) {
    return { usable: false, software: true, label, key, why: `the WebGPU adapter here (${label}) is a software renderer, which is never chosen` };
  }
  return { usable: true, software, label, key };
}

/**
 * The file's `fingerprint::SampledDigest` (src/fingerprint.rs): SHA-256 of its length (8 bytes,
 * little-endian) and 64 evenly spaced 16 KiB samples (the whole file when smaller), first 8
 * bytes in hex: the model id without its architecture (`Classifier.modelId` ends with it), known
 * before the model is built. Reads 1 MiB of the Blob at most.
 */
export async function sampledDigest(blob) {
  const SAMPLES = 64;
  const SAMPLE_BYTES = 16 * 1024;
  const len = blob.size;
  const head = new Uint8Array(8);
  new DataView(head.buffer).setBigUint64(0, BigInt(len), true);
  const parts = len <= SAMPLES * SAMPLE_BYTES
    ? [blob]
    : Array.from({ length: SAMPLES }, (_, i) => {
      const start = Math.floor((i * (len - SAMPLE_BYTES)) / (SAMPLES - 1));
      return blob.slice(start, start + SAMPLE_BYTES);
    });
  if (!self.crypto?.subtle) return `size ${len}`; // not a secure context: the size stands in
  const digest = await self.crypto.subtle.digest('SHA-256', await new Blob([head, ...parts]).arrayBuffer());
  return [...new Uint8Array(digest, 0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Test-only: overrides read from the page's address, so that the e2e tests
 * (tests/e2e/backend.test.mjs) can force each outcome on a machine whose only WebGPU adapter is
 * SwiftShader. `?test-adapter=hardware` counts a software adapter as hardware (so the page
 * measures on it); `?test-ms=webgpu:12,cpu:240` replaces the measured medians (the measurement
 * still runs) by these. Nothing else uses them; a real page never has them.
 */
export function testOverrides(search) {
  const params = new URLSearchParams(search);
  const test = {};
  if (params.get('test-adapter') === 'hardware') test.adapter = 'hardware';
  const ms = params.get('test-ms');
  if (ms) {
    test.ms = {};
    for (const part of ms.split(',')) {
      const [backend, value] = part.split(':');
      if ((backend === 'webgpu' || backend === 'cpu') && Number.isFinite(Number(value))) test.ms[backend] = Number(value);
    }
  }
  return Object.keys(test).length ? test : undefined;
}

/** A measured record is usable when it names a backend (anything else is ignored, and measured again). */
export function isRecord(record) {
  return Boolean(record) && (record.backend === 'webgpu' || record.backend === 'cpu') && Number.isFinite(record.measuredAt);
}

/** Most records kept: one per device and model; the oldest go first. */
const KEEP = 32;

/** `choices` (key → record) with `record` under `key`, at most KEEP of them. */
export function remember(choices, key, record) {
  const all = { ...(choices && typeof choices === 'object' ? choices : {}), [key]: record };
  const keys = Object.keys(all).filter((k) => isRecord(all[k])).sort((a, b) => all[b].measuredAt - all[a].measuredAt);
  return Object.fromEntries(keys.slice(0, KEEP).map((k) => [k, all[k]]));
}

/** Milliseconds for people: "12 ms", "1.8 s". */
export function formatMs(ms) {
  return ms >= 10000 ? `${(ms / 1000).toFixed(0)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** A day as YYYY-MM-DD, in the device's time zone. */
function day(time) {
  const d = new Date(time);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/**
 * The sentence the status line gives for an automatic choice (the worker's `choice`):
 * "Best available: the CPU (WebGPU: 812 ms per photo, CPU: 240 ms; measured 2026-12-02)", or
 * why the CPU runs without a measurement (no adapter, a software one, WebGPU did not start).
 */
export function describeChoice(choice) {
  const name = (backend) => (backend === 'webgpu' ? 'WebGPU' : 'the CPU');
  if (choice.kind !== 'measured') return `Best available: the CPU (${choice.why})`;
  const r = choice.record;
  const gpu = Number.isFinite(r.webgpuMs) ? `WebGPU: ${formatMs(r.webgpuMs)} per photo` : `WebGPU failed: ${r.webgpuError}`;
  const cpu = Number.isFinite(r.cpuMs)
    ? `CPU: ${formatMs(r.cpuMs)}${Number.isFinite(r.webgpuMs) ? '' : ' per photo'}`
    : `the CPU could not be measured: ${r.cpuError}`;
  return `Best available: ${name(r.backend)} (${gpu}, ${cpu}; measured ${day(r.measuredAt)})`;
}
