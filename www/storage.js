// What the page keeps on the device: model files in the Origin Private File System (written in
// chunks as they arrive, with a SHA-256 to check them on the way back), and everything else —
// label lists, settings, per-model prompt embeddings, the last results — in IndexedDB.
// Where the browser allows no storage (some private modes, plain-http pages), `openDeviceStore`
// returns a store that keeps things in memory for this visit and says why.

const DB_NAME = 'fieldclip';
const DB_VERSION = 2;
const MODEL_DIR = 'models';

/** The error a failed write raises when the device (or the browser's share of it) is full. */
export function isQuotaError(e) {
  return e && (e.name === 'QuotaExceededError' || /quota/i.test(String(e.message)));
}

export async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  const req = indexedDB.open(DB_NAME, DB_VERSION);
  req.onupgradeneeded = (event) => {
    const db = req.result;
    if (event.oldVersion < 1) {
      db.createObjectStore('kv');
      db.createObjectStore('models', { keyPath: 'id' });
      db.createObjectStore('prompts'); // key [modelId, prompt] → Float32Array
      db.createObjectStore('results', { autoIncrement: true });
    }
    if (event.oldVersion < 2) {
      // key [model id, photo SHA-256] → { name, embedding: Float32Array, label, addedAt }
      db.createObjectStore('gallery');
      db.createObjectStore('thumbs'); // photo SHA-256 → JPEG Blob, shared by all models
    }
  };
  return request(req);
}

/** Opens the device store, or an in-memory one with `reason` saying why nothing is kept. */
export async function openDeviceStore() {
  try {
    if (!globalThis.crypto?.subtle) throw new Error('the page is not served over https');
    const db = await openDb();
    const root = await navigator.storage.getDirectory();
    const models = await root.getDirectoryHandle(MODEL_DIR, { create: true });
    return new DeviceStore(db, models);
  } catch (e) {
    return new MemoryStore(e && e.message ? e.message : String(e));
  }
}

class DeviceStore {
  constructor(db, modelDir) {
    this.db = db;
    this.modelDir = modelDir;
    this.persistent = true;
    this.reason = null;
  }

  async tx(storeName, mode, fn) {
    const tx = this.db.transaction(storeName, mode);
    const result = await fn(tx.objectStore(storeName));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('The browser aborted a storage write.'));
    });
    return result;
  }

  get(key) { return this.tx('kv', 'readonly', (s) => request(s.get(key))); }
  set(key, value) { return this.tx('kv', 'readwrite', (s) => request(s.put(value, key))); }

  // ---- models ----
  async listModels() {
    const all = await this.tx('models', 'readonly', (s) => request(s.getAll()));
    return all.sort((a, b) => b.usedAt - a.usedAt);
  }

  /** A writer for a model file arriving in chunks: `write(chunk)`, then `finish(meta)` or `abort()`. */
  async modelWriter() {
    const file = `model-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.safetensors`;
    const handle = await this.modelDir.getFileHandle(file, { create: true });
    let writable;
    try {
      writable = await handle.createWritable();
    } catch (e) {
      await this.modelDir.removeEntry(file).catch(() => {});
      throw e;
    }
    return {
      write: (chunk) => writable.write(chunk),
      abort: async () => {
        await writable.abort().catch(() => {});
        await this.modelDir.removeEntry(file).catch(() => {});
      },
      /** Commits the file and records it; an identical model already stored is kept instead. */
      finish: async ({ sha256, name, size, config }) => {
        await writable.close();
        const existing = await this.tx('models', 'readonly', (s) => request(s.get(sha256)));
        if (existing) {
          await this.modelDir.removeEntry(file).catch(() => {});
          existing.usedAt = Date.now();
          await this.tx('models', 'readwrite', (s) => request(s.put(existing)));
          return existing;
        }
        const meta = { id: sha256, sha256, name, size, file, config: config || null, savedAt: Date.now(), usedAt: Date.now() };
        await this.tx('models', 'readwrite', (s) => request(s.put(meta)));
        return meta;
      },
    };
  }

  /** The stored model's bytes, checked against the hash taken when it was saved. */
  async readModel(id) {
    const meta = await this.tx('models', 'readonly', (s) => request(s.get(id)));
    if (!meta) throw new Error('This model is no longer on this device.');
    let weights;
    try {
      weights = await (await (await this.modelDir.getFileHandle(meta.file)).getFile()).arrayBuffer();
    } catch (e) {
      await this.deleteModel(id);
      throw new IntegrityError(meta.name, `its file could not be read (${e.message})`);
    }
    if (weights.byteLength !== meta.size || (await sha256Hex(weights)) !== meta.sha256) {
      await this.deleteModel(id);
      throw new IntegrityError(meta.name, 'its contents changed since it was saved');
    }
    meta.usedAt = Date.now();
    await this.tx('models', 'readwrite', (s) => request(s.put(meta)));
    return { meta, weights, config: meta.config || undefined };
  }

  async deleteModel(id) {
    const meta = await this.tx('models', 'readonly', (s) => request(s.get(id)));
    if (meta) await this.modelDir.removeEntry(meta.file).catch(() => {});
    await this.tx('models', 'readwrite', (s) => request(s.delete(id)));
    await this.tx('prompts', 'readwrite', (s) => request(s.delete(IDBKeyRange.bound([id], [id, []]))));
  }

  // ---- prompt embeddings, per model ----
  async getPrompts(modelId) {
    return this.tx('prompts', 'readonly', async (s) => {
      const range = IDBKeyRange.bound([modelId], [modelId, []]);
      const [keys, values] = await Promise.all([request(s.getAllKeys(range)), request(s.getAll(range))]);
      return { prompts: keys.map((k) => k[1]), embeds: values };
    });
  }

  /** `embeds`: one Float32Array of `prompts.length × dim`. */
  async putPrompts(modelId, prompts, embeds) {
    const dim = embeds.length / prompts.length;
    await this.tx('prompts', 'readwrite', (s) => {
      prompts.forEach((p, i) => s.put(embeds.slice(i * dim, (i + 1) * dim), [modelId, p]));
    });
  }

  // ---- last results ----
  getResults() { return this.tx('results', 'readonly', (s) => request(s.getAll())); }
  addResult(result) { return this.tx('results', 'readwrite', (s) => request(s.add(result))); }
  clearResults() { return this.tx('results', 'readwrite', (s) => request(s.clear())); }

  // ---- the photo collection, per model ----
  /** `[{ sha256, name, embedding, label, addedAt }]` in a stable order (by photo hash). */
  async galleryAll(modelId) {
    return this.tx('gallery', 'readonly', async (s) => {
      const range = IDBKeyRange.bound([modelId], [modelId, []]);
      const [keys, values] = await Promise.all([request(s.getAllKeys(range)), request(s.getAll(range))]);
      return values.map((v, i) => ({ ...v, sha256: keys[i][1] }));
    });
  }
  async galleryAdd(modelId, { sha256, ...entry }, thumb) {
    await this.tx('gallery', 'readwrite', (s) => request(s.put(entry, [modelId, sha256])));
    if (thumb) await this.tx('thumbs', 'readwrite', (s) => request(s.put(thumb, sha256)));
  }
  async gallerySetLabel(modelId, sha256, label) {
    await this.tx('gallery', 'readwrite', async (s) => {
      const entry = await request(s.get([modelId, sha256]));
      if (entry) await request(s.put({ ...entry, label }, [modelId, sha256]));
    });
  }
  galleryClear(modelId) {
    return this.tx('gallery', 'readwrite', (s) => request(s.delete(IDBKeyRange.bound([modelId], [modelId, []]))));
  }
  thumb(sha256) { return this.tx('thumbs', 'readonly', (s) => request(s.get(sha256))); }

  async usage() {
    const { usage, quota } = await navigator.storage.estimate();
    return { usage, quota };
  }
}

/** A model that failed its check on the way back from storage (and has been removed). */
export class IntegrityError extends Error {
  constructor(name, why) {
    super(`The stored model "${name}" failed its integrity check (${why}), so it was removed from this device. Load it again.`);
    this.name = 'IntegrityError';
  }
}

/** Same interface, nothing kept after the page closes. */
class MemoryStore {
  constructor(reason) {
    this.persistent = false;
    this.reason = reason;
    this.kv = new Map();
    this.prompts = new Map();
    this.results = [];
  }

  async get(key) { return this.kv.get(key); }
  async set(key, value) { this.kv.set(key, value); }
  async listModels() { return []; }
  async modelWriter() { throw new Error('it allows this page no storage'); }
  async readModel() { throw new Error('No model is stored on this device.'); }
  async deleteModel() {}
  async getPrompts(modelId) {
    const map = this.prompts.get(modelId) || new Map();
    return { prompts: [...map.keys()], embeds: [...map.values()] };
  }
  async putPrompts(modelId, prompts, embeds) {
    if (!this.prompts.has(modelId)) this.prompts.set(modelId, new Map());
    const dim = embeds.length / prompts.length;
    prompts.forEach((p, i) => this.prompts.get(modelId).set(p, embeds.slice(i * dim, (i + 1) * dim)));
  }
  async galleryAll(modelId) { return [...(this.gallery?.get(modelId) || new Map()).values()]; }
  async galleryAdd(modelId, entry, thumb) {
    this.gallery ||= new Map();
    this.thumbs ||= new Map();
    if (!this.gallery.has(modelId)) this.gallery.set(modelId, new Map());
    this.gallery.get(modelId).set(entry.sha256, entry);
    if (thumb) this.thumbs.set(entry.sha256, thumb);
  }
  async gallerySetLabel(modelId, sha256, label) {
    const entry = this.gallery?.get(modelId)?.get(sha256);
    if (entry) entry.label = label;
  }
  async galleryClear(modelId) { this.gallery?.delete(modelId); }
  async thumb(sha256) { return this.thumbs?.get(sha256); }
  async getResults() { return this.results; }
  async addResult(r) { this.results.push(r); }
  async clearResults() { this.results = []; }
  async usage() { return null; }
}
