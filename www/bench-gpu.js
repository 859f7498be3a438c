// bench.html's WebGPU work profile (`?suite=gpu`, #18): wraps this global scope's WebGPU
// prototypes so every engine's calls are counted, whatever library makes them. Install it
// before the engine creates its device (the prototypes are patched, so objects made later are
// counted too). Counters are reset and read around each call; the live buffer total (created
// minus destroyed) runs from installation, so its peak includes the weights.

const zero = () => ({
  dispatches: 0, passes: 0, submits: 0, readbacks: 0, pipelines: 0, shaders: 0,
  bytes_written: 0, bytes_read: 0, buffers_created: 0, kernels: {}, order: [],
});

const state = { counts: zero(), live: 0, peak: 0, adapter: null, installed: false };
const sizes = new WeakMap();
// The pipeline each compute pass has set, so a dispatch can be counted under its kernel's name
// (the pipeline's label: cubecl names it after the kernel; ONNX Runtime after the op).
const current = new WeakMap();

/** Replaces `proto[name]` by a wrapper that calls `before(this, args)` first. */
function wrap(proto, name, before) {
  const original = proto?.[name];
  if (typeof original !== 'function') return;
  proto[name] = function (...args) {
    before(this, args);
    return original.apply(this, args);
  };
}

/** Patches the WebGPU prototypes of this scope (a window or a worker); once. */
export function installGpuProfile() {
  if (state.installed) return state;
  if (!self.GPUDevice) throw new Error('WebGPU is not available in this context');
  state.installed = true;
  const c = () => state.counts;
  const MAP_READ = self.GPUMapMode?.READ ?? 1;
  wrap(GPUDevice.prototype, 'createShaderModule', () => { c().shaders++; });
  wrap(GPUDevice.prototype, 'createComputePipeline', () => { c().pipelines++; });
  wrap(GPUDevice.prototype, 'createComputePipelineAsync', () => { c().pipelines++; });
  wrap(GPUCommandEncoder.prototype, 'beginComputePass', () => { c().passes++; });
  wrap(GPUComputePassEncoder.prototype, 'setPipeline', (pass, [pipeline]) => { current.set(pass, pipeline?.label || 'unlabelled'); });
  const dispatched = (pass) => {
    c().dispatches++;
    const name = current.get(pass) || 'unlabelled';
    c().kernels[name] = (c().kernels[name] || 0) + 1;
    c().order.push(name);
  };
  wrap(GPUComputePassEncoder.prototype, 'dispatchWorkgroups', dispatched);
  wrap(GPUComputePassEncoder.prototype, 'dispatchWorkgroupsIndirect', dispatched);
  wrap(GPUQueue.prototype, 'submit', () => { c().submits++; c().order.push('— submit —'); });
  wrap(GPUQueue.prototype, 'writeBuffer', (_, [, , data, dataOffset = 0, size]) => {
    // Offset and size count elements of a typed array, bytes of an ArrayBuffer/DataView.
    const unit = data?.BYTES_PER_ELEMENT || 1;
    const total = data?.length ?? data?.byteLength ?? 0;
    c().bytes_written += (size ?? total - dataOffset) * unit;
  });
  wrap(GPUBuffer.prototype, 'mapAsync', (buffer, [mode, offset = 0, size]) => {
    if (!(mode & MAP_READ)) return;
    c().readbacks++;
    c().bytes_read += size ?? buffer.size - offset;
  });
  wrap(GPUBuffer.prototype, 'destroy', (buffer) => {
    if (!sizes.has(buffer)) return;
    state.live -= sizes.get(buffer);
    sizes.delete(buffer);
  });
  const createBuffer = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (descriptor) {
    const buffer = createBuffer.call(this, descriptor);
    const size = Number(descriptor?.size) || 0;
    sizes.set(buffer, size);
    state.live += size;
    state.peak = Math.max(state.peak, state.live);
    c().buffers_created++;
    // A buffer mapped at creation and not for reading is an upload.
    if (descriptor?.mappedAtCreation && !(descriptor.usage & (self.GPUBufferUsage?.MAP_READ ?? 1))) c().bytes_written += size;
    return buffer;
  };
  // Which adapter the device came from (named in the table).
  wrap(GPUAdapter.prototype, 'requestDevice', (adapter) => {
    const info = adapter.info;
    if (info) state.adapter = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' / ') || 'unnamed adapter';
  });
  return state;
}

/** Starts a new count; the peak restarts from the live total. */
export function resetGpuCounts() {
  state.counts = zero();
  state.peak = state.live;
}

/** The counts since the last reset, with the live total's peak and current value. */
export function readGpuCounts() {
  return { ...state.counts, peak_buffer_bytes: state.peak, live_buffer_bytes: state.live };
}

export const gpuAdapter = () => state.adapter;

/**
 * One engine's profile: `cases` [{ name, call }] after the model loaded. Each case: a first
 * call (its pipelines are `pipelines_first`), `warmup` calls, then `runs` timed calls; the
 * counts are those of the last call, `pipelines_later` the most any later call created, `ms`
 * the median of the timed calls. Each call's counts are checked to be the same later on.
 * `cases` (an option): the names to run, all when absent.
 */
export async function profileCases(cases, { warmup = 1, runs = 3, cases: only = null } = {}, median) {
  const rows = [];
  for (const { name, call } of cases) {
    if (only && !only.includes(name)) continue;
    resetGpuCounts();
    await call();
    const first = readGpuCounts();
    let later = 0;
    let peak = first.peak_buffer_bytes;
    const ms = [];
    let last = null;
    const varying = new Set();
    for (let i = 0; i < warmup + runs; i++) {
      resetGpuCounts();
      const start = performance.now();
      await call();
      const took = performance.now() - start;
      const counts = readGpuCounts();
      if (i >= warmup) ms.push(took);
      later = Math.max(later, counts.pipelines);
      peak = Math.max(peak, counts.peak_buffer_bytes);
      for (const k of ['dispatches', 'passes', 'submits', 'readbacks', 'bytes_written', 'bytes_read']) {
        if (last && last[k] !== counts[k]) varying.add(k);
      }
      last = counts;
    }
    const counts = last || first;
    rows.push({
      case: name,
      dispatches: counts.dispatches,
      passes: counts.passes,
      submits: counts.submits,
      readbacks: counts.readbacks,
      pipelines_first: first.pipelines,
      pipelines_later: later,
      shaders_first: first.shaders,
      bytes_written: counts.bytes_written,
      bytes_read: counts.bytes_read,
      peak_buffer_bytes: peak,
      ms: ms.length ? median(ms) : null,
      // Dispatches per kernel (pipeline label), most first: where the count comes from.
      kernels: Object.fromEntries(Object.entries(counts.kernels).sort((a, b) => b[1] - a[1])),
      // The kernels in the order they ran, and the submits between them: to read a call's
      // dispatches against the model's ops.
      order: counts.order,
      first_call: first,
      ...(varying.size ? { varying: [...varying] } : {}),
    });
  }
  return rows;
}
