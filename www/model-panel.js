// Step 1: the model — its weights from the web address, a file on this device or one stored
// earlier; the backend ("best available" is measured by the worker and remembered here, per
// device and model: www/backend-choice.js); the loading progress and status line; the models
// kept on the device.
import { describeChoice, remember, testOverrides } from './backend-choice.js';
import { IntegrityError, whyNotStored } from './storage.js';

const $ = (id) => document.getElementById(id);

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle('error', isError);
}

function formatBytes(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`;
}

/**
 * `call(type, payload, transfer)`: a request to the model worker; `modelGeneration()`: how many
 * models have been asked for (www/app.js). `settings` + `saveSettings()`: kept across visits.
 * `onKept(modelId, generation)`: the `generation`th load was refused at its header and the model
 * `modelId` stays in use.
 * `onLoaded(modelId, generation)`: a model was built by the `generation`th load (its labels and
 * collection are set up for it; a failure there counts as the model not loading).
 */
export function createModelPanel({ device, call, modelGeneration, settings, saveSettings, onLoaded, onKept }) {
  let loaded = false;
  let sha256InUse = null; // the file's SHA-256: the id it is stored (and its prompts kept) under
  let modelIdInUse = null; // the model's id (what collections and adapters are made with)
  let loads = 0; // loadModel calls so far: an older one still running gives way to the newest
  // What the status line says of the model in use: `{ summary, backend, cpu, reason, choice }`.
  let shown = null;

  const params = new URLSearchParams(location.search);
  // Test-only (tests/e2e/backend.test.mjs): `?test-adapter=hardware`, `?test-ms=webgpu:…,cpu:…`
  // force each outcome of "best available" (www/backend-choice.js `testOverrides`).
  const test = testOverrides(location.search);
  const weightsUrl = params.get('weights') || 'models/model.safetensors';
  $('weights-url').textContent = weightsUrl;
  $('backend').value = settings.backend;
  $('backend').addEventListener('change', () => { settings.backend = $('backend').value; saveSettings(); });

  // How photos are resized: sent with each load, and to the model in use when changed (the
  // photos classified after that use it).
  $('preprocess').value = ['auto', 'crop', 'squash'].includes(settings.preprocess) ? settings.preprocess : 'auto';
  /** Names the model's own resize in the 'auto' choice. */
  function showModelPreprocess(mode) {
    $('preprocess').options[0].textContent = mode ? `as the model says (${mode})` : 'as the model says';
  }
  $('preprocess').addEventListener('change', async () => {
    settings.preprocess = $('preprocess').value;
    saveSettings();
    // No model asked for yet: the first load carries it.
    if (loads === 0) return;
    try {
      const { modelPreprocess } = await call('preprocess', { mode: settings.preprocess });
      if (loaded) showModelPreprocess(modelPreprocess);
    } catch (e) {
      setStatus($('model-status'), `The resize could not be changed: ${e.message}`, true);
    }
  });

  /** The status line of the model in use: what it is, where it runs and why. */
  function statusLine({ summary, backend, cpu, reason, choice }) {
    const where = backend === 'webgpu' ? 'WebGPU' : `the CPU, ${cpu.reason}`;
    const why = choice ? `Running on ${where}. ${describeChoice(choice)}.` : `Running on ${where}: ${reason}.`;
    return `${summary} ${why} Now check the labels and add photos.`;
  }

  /** Keeps a new measurement of "best available" for this device and model (the device store's `backendChoices`). */
  async function rememberChoice(choice) {
    if (!choice?.measured) return;
    const choices = await device.get('backendChoices').catch(() => null);
    await device.set('backendChoices', remember(choices, choice.key, choice.record)).catch(() => {});
  }

  // "Measure again": times WebGPU and the CPU on the model in use and keeps the faster. Offered
  // when "best available" chose by measuring (a hardware WebGPU adapter).
  $('measure-again').addEventListener('click', async () => {
    const mine = loads;
    const button = $('measure-again');
    button.disabled = true;
    setStatus($('model-status'), 'Measuring WebGPU and the CPU again…');
    try {
      const answer = await call('remeasure');
      if (mine !== loads) return;
      await rememberChoice(answer.choice);
      shown = { ...shown, backend: answer.backend, cpu: answer.cpu, choice: answer.choice };
      setStatus($('model-status'), statusLine(shown));
    } catch (e) {
      if (mine !== loads) return;
      setStatus($('model-status'), `Measuring again failed: ${e.message} The model runs where it ran.`, true);
    } finally {
      button.disabled = false;
      if (mine === loads) $('load-progress').hidden = true;
    }
  });

  /** A progress report of the worker while it builds the model. */
  function showProgress({ step, fraction }) {
    const bar = $('load-progress');
    bar.hidden = fraction >= 1;
    bar.value = fraction;
    if (fraction < 1) setStatus($('model-status'), `${step}…`);
  }

  /**
   * Builds the model in the worker, which streams the file (a Blob: a File, a stored file, a
   * download) into it. `sha256`: the hash it was stored under, checked while loading; without
   * it the worker computes it. Returns the file's SHA-256 when it loaded, else null.
   */
  async function loadModel(weights, config, { name, sha256, id }) {
    const mine = ++loads;
    // Another model asked for after this one: that load reports, this one says nothing more.
    const superseded = () => mine !== loads;
    const before = { loaded, sha256: sha256InUse, modelId: modelIdInUse };
    loaded = false;
    sha256InUse = null;
    $('measure-again').hidden = true;
    setStatus($('model-status'), `Building the model from ${name}…`);
    try {
      const prompts = sha256 ? await device.getPrompts(sha256).catch(() => null) : null;
      // "best available": what was measured before on this device (the worker finds this model's).
      const choices = await device.get('backendChoices').catch(() => null);
      if (superseded()) return null;
      let answer;
      let generation; // which load this is (www/app.js counts them), for the collection
      try {
        const loading = call('load', {
          weights, config, backend: $('backend').value, choices, test, preprocess: $('preprocess').value, prompts, sha256: sha256 || true,
        }, config ? [config] : []);
        generation = modelGeneration();
        answer = await loading;
      } catch (e) {
        if (superseded()) return null;
        $('load-progress').hidden = true;
        if (e.kept && before.loaded) {
          // Refused at its header: the worker kept the model in use, labels and all. Its
          // collection is opened again under this load's generation (a batch that was running
          // stopped when the load was asked for).
          loaded = true;
          sha256InUse = before.sha256;
          setStatus($('model-status'), `${name} could not be loaded: ${e.message} The model loaded before is still in use.`, true);
          await onKept(before.modelId, generation);
          return null;
        }
        // The stored file no longer is what was saved: it is of no use, so it goes.
        if (id && e.kind === 'storage') {
          await device.deleteModel(id).catch(() => {});
          renderModels();
          setStatus($('model-status'), new IntegrityError(name, 'its contents changed since it was saved').message, true);
          return null;
        }
        throw e;
      }
      if (superseded()) return null;
      $('load-progress').hidden = true;
      const { info, modelId, backend, reason, cpu, choice } = answer;
      await rememberChoice(choice);
      showModelPreprocess(answer.modelPreprocess);
      if (!sha256) {
        sha256 = answer.sha256;
        const stored = await device.getPrompts(sha256).catch(() => null);
        // This model's prompt embeddings must not reach a model loaded meanwhile.
        if (superseded()) return null;
        if (stored && stored.prompts.length) await call('prompts', { prompts: stored });
        if (superseded()) return null;
      }
      loaded = true;
      sha256InUse = sha256;
      modelIdInUse = modelId;
      const parameters = (info.parameters / 1e6).toFixed(1);
      const summary = `Loaded ${info.name}, ${parameters} M parameters (${info.layout === 'OpenClip' ? 'open_clip' : 'Hugging Face'} layout, ${info.dtypes.join('/')}).`;
      shown = { summary, backend, cpu, reason, choice };
      setStatus($('model-status'), statusLine(shown));
      $('measure-again').hidden = !choice?.key;
      await onLoaded(modelId, generation);
      if (superseded()) return null;
      renderModels();
      return sha256;
    } catch (e) {
      if (superseded()) return null;
      setStatus($('model-status'), `This model could not be loaded: ${e.message}`, true);
      return null;
    }
  }

  /** A writer for the model file on the device, or null with the reason shown. */
  async function openModelWriter() {
    try {
      return await device.modelWriter();
    } catch (e) {
      showSaveProblem(e);
      return null;
    }
  }

  function showSaveProblem(e) {
    const { why, freeingSpaceHelps } = whyNotStored(e);
    setStatus($('save-status'), `This model was not saved on the device: ${why}. It works until you close the page${freeingSpaceHelps
      ? '; free some space (delete models below) and load it again to keep it.' : '.'}`, true);
  }

  /** Commits a model file written while loading and remembers it for the next start. */
  async function finishSave(writer, meta) {
    let saved;
    try {
      saved = await writer.finish(meta);
      await device.set('lastModel', saved.id);
    } catch (e) {
      await writer.abort();
      showSaveProblem(e);
      renderModels();
      return;
    }
    const line = 'Saved on this device: it loads at the next start without a network.';
    setStatus($('save-status'), line);
    renderModels();
    // Firefox asks the user before granting persistence, so the answer may come much later (or
    // never); WebKitGTK has no navigator.storage. The saved line does not wait for it.
    const persistent = navigator.storage?.persist ? await navigator.storage.persist().catch(() => false) : false;
    if ($('save-status').textContent !== line) return;
    setStatus($('save-status'), `${line} ${persistent
      ? 'The browser keeps it until you delete it.'
      : 'The browser may still clear it if the device runs low on space (it did not grant persistent storage; installing the app usually does).'}`);
  }

  /** The download as a Blob, written to the device as it arrives; never one big buffer. */
  async function readWithProgress(response, total, writer) {
    const reader = response.body.getReader();
    const bar = $('load-progress');
    // Pieces are folded into a Blob every 16 MB (the browser keeps Blob data out of the page's
    // memory, on disk when it is large).
    let blob = new Blob([]);
    let pending = [];
    let pendingBytes = 0;
    let received = 0;
    bar.hidden = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pending.push(value);
      pendingBytes += value.length;
      if (pendingBytes >= 16 << 20) {
        blob = new Blob([blob, ...pending]);
        pending = [];
        pendingBytes = 0;
      }
      received += value.length;
      if (writer.current) {
        try {
          await writer.current.write(value);
        } catch (e) {
          await writer.current.abort();
          writer.current = null;
          showSaveProblem(e);
        }
      }
      if (total) bar.value = received / total;
      setStatus($('model-status'), `Downloading weights: ${formatBytes(received)}${total ? ` of ${formatBytes(total)} (${Math.round((100 * received) / total)}%)` : ''}`);
    }
    bar.hidden = true;
    return new Blob([blob, ...pending]);
  }

  $('weights-url-button').addEventListener('click', async () => {
    setStatus($('save-status'), '');
    const writer = { current: null };
    try {
      const response = await fetch(weightsUrl);
      if (!response.ok) throw new Error(`${weightsUrl} answered ${response.status} ${response.statusText}`);
      writer.current = await openModelWriter();
      const weights = await readWithProgress(response, Number(response.headers.get('content-length')) || 0, writer);
      let config;
      // A pack (.fcpk) carries its config; a safetensors file may have one next to it.
      for (const name of /\.fcpk$/i.test(weightsUrl) ? [] : ['open_clip_config.json', 'config.json']) {
        const r = await fetch(new URL(name, new URL(weightsUrl, location.href))).catch(() => null);
        if (r && r.ok) { config = await r.arrayBuffer(); break; }
      }
      await loadAndSave(weights, config, weightsUrl.split('/').pop(), writer.current);
    } catch (e) {
      if (writer.current) await writer.current.abort();
      setStatus($('model-status'), `Could not download the weights: ${e.message}. Choose the file from this device instead.`, true);
    }
  });

  /** Loads a model from a Blob and keeps it on the device when it loaded (a bad file is not kept). */
  async function loadAndSave(weights, config, name, writer, file) {
    setStatus($('model-status'), `Checking ${name}…`);
    const size = weights.size;
    // The worker gets its own copy of the config; the page keeps one to store.
    const configCopy = config ? config.slice(0) : undefined;
    const sha256 = await loadModel(weights, config, { name });
    if (!sha256) {
      if (writer) await writer.abort();
      return;
    }
    if (file) writer = await openModelWriter();
    if (!writer) return;
    if (file) {
      setStatus($('save-status'), `Saving ${name} on this device…`);
      try {
        const reader = file.stream().getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await writer.write(value);
        }
      } catch (e) {
        await writer.abort();
        return showSaveProblem(e);
      }
    }
    await finishSave(writer, { sha256, name, size, config: configCopy });
  }

  async function loadModelFiles(files) {
    const weightsFile = files.find((f) => !f.name.endsWith('.json'));
    const configFile = files.find((f) => f.name.endsWith('.json'));
    if (!weightsFile) {
      setStatus($('model-status'), 'Choose the .safetensors weights file (the config file alone is not enough).', true);
      return;
    }
    setStatus($('save-status'), '');
    setStatus($('model-status'), `Reading ${weightsFile.name} (${formatBytes(weightsFile.size)})…`);
    const config = configFile ? await configFile.arrayBuffer() : undefined;
    await loadAndSave(weightsFile, config, weightsFile.name, null, weightsFile);
  }

  async function loadFromDevice(id) {
    setStatus($('save-status'), '');
    setStatus($('model-status'), 'Loading the model stored on this device…');
    try {
      const { meta, weights, config } = await device.readModel(id);
      await device.set('lastModel', id);
      if (await loadModel(weights, config ? config.slice(0) : undefined, meta)) {
        setStatus($('save-status'), `${meta.name} was loaded from this device (no network needed).`);
      }
    } catch (e) {
      setStatus($('model-status'), e.message, true);
      renderModels();
    }
  }

  $('weights-file').addEventListener('change', (event) => {
    loadModelFiles([...event.target.files]);
    event.target.value = '';
  });
  // A model file can also be dropped anywhere on step 1 (a tablet with the weights on it).
  const modelSection = $('model-section');
  modelSection.addEventListener('dragover', (e) => { e.preventDefault(); modelSection.classList.add('over'); });
  modelSection.addEventListener('dragleave', () => modelSection.classList.remove('over'));
  modelSection.addEventListener('drop', (e) => {
    e.preventDefault();
    modelSection.classList.remove('over');
    loadModelFiles([...e.dataTransfer.files]);
  });

  async function renderModels() {
    const models = await device.listModels().catch(() => []);
    const list = $('model-list');
    list.replaceChildren();
    for (const m of models) {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'model-name';
      name.textContent = m.name + (m.id === sha256InUse ? ' (in use)' : '');
      const meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = `${formatBytes(m.size)}, saved ${new Date(m.savedAt).toLocaleDateString()}`;
      const use = document.createElement('button');
      use.type = 'button';
      use.textContent = 'Use';
      use.disabled = m.id === sha256InUse;
      use.addEventListener('click', () => loadFromDevice(m.id));
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Delete';
      remove.setAttribute('aria-label', `Delete ${m.name} from this device`);
      remove.addEventListener('click', async () => {
        if (!confirm(`Delete ${m.name} (${formatBytes(m.size)}) from this device?`)) return;
        await device.deleteModel(m.id);
        if ((await device.get('lastModel')) === m.id) await device.set('lastModel', null);
        renderModels();
      });
      li.append(name, meta, use, remove);
      list.append(li);
    }
    if (models.length === 0) {
      const li = document.createElement('li');
      li.textContent = device.reason ? 'Models cannot be kept in this browser.' : 'None yet: a model you load is kept here.';
      list.append(li);
    }
    $('device-models').querySelector('summary').textContent = `Models on this device (${models.length})`;
    const usage = await device.usage().catch(() => null);
    const persisted = navigator.storage?.persisted ? await navigator.storage.persisted().catch(() => false) : false;
    $('storage-usage').textContent = usage
      ? `This app uses ${formatBytes(usage.usage)} of the ${formatBytes(usage.quota)} the browser allows it. ${persisted
        ? 'Storage is persistent: the browser keeps it until you delete it.'
        : 'Storage is not persistent: the browser may clear it when the device runs low on space.'}`
      : '';
  }

  /** At start-up: the models on the device, and the one used last is loaded again. */
  async function restore() {
    renderModels();
    const lastModel = await device.get('lastModel').catch(() => null);
    if (lastModel) loadFromDevice(lastModel);
  }

  /** The classifier left a failing WebGPU for the CPU (`reason`: what went wrong). */
  function showSwitchedToCpu(reason) {
    setStatus($('model-status'), `WebGPU stopped working (${reason}); the model now runs on the CPU.`, true);
  }

  return {
    showProgress,
    restore,
    showSwitchedToCpu,
    /** Whether a model is built in the worker. */
    isLoaded: () => loaded,
    /** The SHA-256 of the model file in use (the id its data is kept under), or null. */
    sha256: () => sha256InUse,
  };
}
