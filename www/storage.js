// What the page keeps on the device: everything — label lists, settings, per-model prompt
// embeddings, the tree of life's label pack (a Blob under the kv key 'treeOfLife',
// www/tree-of-life.js), the last results, the collection, the list of stored models — in
// IndexedDB, which every engine has; model files (written in chunks as they arrive, with a
// SHA-256 to check them on the way back) in the origin private file system where the page can
// write it, else in the Cache API (Safari before 26 has no `createWritable`, WebKitGTK no origin
// private file system at all). Where the browser allows no storage (some private modes,
// plain-http pages), `openDeviceStore` returns a store that keeps things in memory for this visit
// and says why in a sentence.

const DB_NAME = 'fieldclip';
const DB_VERSION = 2;
const MODEL_DIR = 'models';

/** The error a failed write raises when the device (or the browser's share of it) is full. */
function isQuotaError(e) {
  return e && (e.name === 'QuotaExceededError' || /quota/i.test(String(e.message)));
}

/**
 * Why something could not be stored, as a clause for the user (an engine's own exception text
 * means nothing to them; the console keeps it), and whether freeing space would help.
 */
export function whyNotStored(e) {
  if (isQuotaError(e)) return { why: 'there is not enough storage space on this device for it', freeingSpaceHelps: true };
  if (e instanceof StorageUnavailable) return { why: e.clause, freeingSpaceHelps: false };
  console.warn('Storing failed:', e);
  return { why: 'this browser refused to store it', freeingSpaceHelps: false };
}

export async function sha256Hex(buffer) {
  return bytesToHex(await crypto.subtle.digest('SHA-256', buffer));
}

const bytesToHex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
const hexToBytes = (hex) => Uint8Array.from(hex.match(/../g), (h) => parseInt(h, 16)).buffer;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb(name) {
  const req = indexedDB.open(name, DB_VERSION);
  req.onupgradeneeded = (event) => {
    const db = req.result;
    if (event.oldVersion < 1) {
      db.createObjectStore('kv');
      db.createObjectStore('models', { keyPath: 'id' });
      db.createObjectStore('prompts'); // key [modelId, prompt] → Float32Array
      db.createObjectStore('results', { autoIncrement: true });
    }
    if (event.oldVersion < 2) {
      // The collection, in blocks of photos added together: key [model id, block number] →
      // { names, sha256s: 32 bytes each, embeddings: one Float32Array }. One record per photo
      // would cost ~2.6 KB for 2 KB of embedding; blocks keep a 512-d photo near 2.1 KB
      // (bench.html?suite=search measures it). Labels change often and live apart:
      db.createObjectStore('gallery');
      db.createObjectStore('labels'); // [model id, photo SHA-256 hex] → label
      db.createObjectStore('thumbs'); // photo SHA-256 → JPEG Blob, shared by all models
    }
  };
  return request(req);
}

/** Opens the device store, or an in-memory one with `reason` saying why nothing is kept. */
export async function openDeviceStore(name = DB_NAME) {
  if (!globalThis.crypto?.subtle) {
    return new MemoryStore('the page is not served over https, and browsers keep nothing for such pages');
  }
  let db;
  try {
    db = await openDb(name);
  } catch (e) {
    console.warn('IndexedDB did not open:', e);
    return new MemoryStore('it gives this page no storage (private browsing, or site data turned off for this site)');
  }
  return new DeviceStore(db, await openModelFiles());
}

/** Where model files go: the origin private file system where the page can write it, else the Cache API. */
async function openModelFiles() {
  if (navigator.storage?.getDirectory && globalThis.FileSystemFileHandle && 'createWritable' in FileSystemFileHandle.prototype) {
    try {
      const root = await navigator.storage.getDirectory();
      return new FileSystemModelFiles(await root.getDirectoryHandle(MODEL_DIR, { create: true }));
    } catch (e) {
      // Some private modes have the API but refuse it; IndexedDB may still take the file.
      console.warn('The origin private file system did not open:', e);
    }
  }
  if (globalThis.caches) return new CacheModelFiles();
  return new NoModelFiles('it has neither a file system nor a cache for pages');
}

/** Model files in the origin private file system (Chromium, Firefox, Safari 26+). */
class FileSystemModelFiles {
  constructor(dir) { this.dir = dir; }

  /** A writer for `file`: `write(chunk)`, then `close()` or `abort()`. */
  async create(file) {
    const handle = await this.dir.getFileHandle(file, { create: true });
    let writable;
    try {
      writable = await handle.createWritable();
    } catch (e) {
      await this.remove(file);
      throw e;
    }
    return {
      write: (chunk) => writable.write(chunk),
      close: () => writable.close(),
      abort: async () => {
        await writable.abort().catch(() => {});
        await this.remove(file);
      },
    };
  }

  async read(file) { return (await this.dir.getFileHandle(file)).getFile(); }
  remove(file) { return this.dir.removeEntry(file).catch(() => {}); }
}

/**
 * Model files as responses of PIECE_BYTES in the Cache API (cache MODEL_CACHE), for engines
 * without a writable origin private file system. Not IndexedDB: WebKit refuses Blobs there in
 * private browsing ("Error preparing Blob/File data"), and ArrayBuffers read back would sit in
 * the page's memory; a cached response is stored by the browser as a file of its own.
 */
const PIECE_BYTES = 8 << 20;
const MODEL_CACHE = 'fieldclip-models';

class CacheModelFiles {
  /** The URL a piece is kept under (never fetched: only a key). */
  static url(file, piece) { return new URL(`fieldclip-models/${file}/${piece}`, location.href).href; }

  async pieces(cache, file) {
    const prefix = CacheModelFiles.url(file, '');
    const urls = (await cache.keys()).map((r) => r.url).filter((u) => u.startsWith(prefix));
    return urls.sort((a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)));
  }

  async create(file) {
    const cache = await caches.open(MODEL_CACHE);
    let pending = [];
    let pendingBytes = 0;
    let piece = 0;
    const flush = async () => {
      if (pending.length === 0) return;
      const blob = new Blob(pending);
      pending = [];
      pendingBytes = 0;
      await cache.put(CacheModelFiles.url(file, piece++), new Response(blob));
    };
    return {
      write: async (chunk) => {
        pending.push(chunk);
        pendingBytes += chunk.byteLength ?? chunk.size;
        if (pendingBytes >= PIECE_BYTES) await flush();
      },
      close: flush,
      abort: async () => {
        pending = [];
        await this.remove(file);
      },
    };
  }

  async read(file) {
    const cache = await caches.open(MODEL_CACHE);
    const urls = await this.pieces(cache, file);
    if (urls.length === 0) throw new Error('its file is missing');
    const pieces = [];
    for (const url of urls) pieces.push(await (await cache.match(url)).blob());
    return new File(pieces, file);
  }

  async remove(file) {
    try {
      const cache = await caches.open(MODEL_CACHE);
      for (const url of await this.pieces(cache, file)) await cache.delete(url);
    } catch { /* nothing stored */ }
  }
}

/** No model is kept (lists and results still are, in IndexedDB); `reason` says why. */
class NoModelFiles {
  constructor(reason) { this.reason = reason; }
  async create() { throw new StorageUnavailable(`this browser cannot keep models for this page: ${this.reason}`); }
  async read() { throw new Error('its file is missing'); }
  async remove() {}
}

/** Runs `fn` on one object store and resolves with its result once the transaction commits. */
async function transaction(db, storeName, mode, fn) {
  const tx = db.transaction(storeName, mode);
  const done = new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('The browser aborted a storage write.'));
  });
  done.catch(() => {}); // when `fn` fails, its own error is the one thrown
  const result = await fn(tx.objectStore(storeName));
  await done;
  return result;
}

class DeviceStore {
  constructor(db, modelFiles) {
    this.db = db;
    this.modelFiles = modelFiles;
    this.persistent = true;
    this.reason = null;
  }

  tx(storeName, mode, fn) { return transaction(this.db, storeName, mode, fn); }

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
    const writer = await this.modelFiles.create(file);
    return {
      write: (chunk) => writer.write(chunk),
      abort: () => writer.abort(),
      /** Commits the file and records it; an identical model already stored is kept instead. */
      finish: async ({ sha256, name, size, config }) => {
        await writer.close();
        const existing = await this.tx('models', 'readonly', (s) => request(s.get(sha256)));
        if (existing) {
          await this.modelFiles.remove(file);
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

  /**
   * The stored model's file (a `File`, read as it is streamed into the model). Its size is
   * checked here; its SHA-256 by the worker while loading (`meta.sha256`).
   */
  async readModel(id) {
    const meta = await this.tx('models', 'readonly', (s) => request(s.get(id)));
    if (!meta) throw new Error('This model is no longer on this device.');
    let weights;
    try {
      weights = await this.modelFiles.read(meta.file);
    } catch (e) {
      await this.deleteModel(id);
      console.warn('The stored model could not be read:', e);
      throw new IntegrityError(meta.name, 'its file could not be read');
    }
    if (weights.size !== meta.size) {
      await this.deleteModel(id);
      throw new IntegrityError(meta.name, 'its contents changed since it was saved');
    }
    meta.usedAt = Date.now();
    await this.tx('models', 'readwrite', (s) => request(s.put(meta)));
    return { meta, weights, config: meta.config || undefined };
  }

  async deleteModel(id) {
    const meta = await this.tx('models', 'readonly', (s) => request(s.get(id)));
    if (meta) await this.modelFiles.remove(meta.file);
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
  /** `[{ sha256, name, embedding, label }]` in the order they were added. */
  async galleryAll(modelId) {
    const range = IDBKeyRange.bound([modelId], [modelId, []]);
    const blocks = await this.tx('gallery', 'readonly', (s) => request(s.getAll(range)));
    const labels = await this.tx('labels', 'readonly', async (s) => {
      const [keys, values] = await Promise.all([request(s.getAllKeys(range)), request(s.getAll(range))]);
      return new Map(keys.map((k, i) => [k[1], values[i]]));
    });
    return blocks.flatMap((b) => {
      const dim = b.embeddings.length / b.names.length;
      return b.names.map((name, i) => {
        const sha256 = bytesToHex(b.sha256s.slice(32 * i, 32 * (i + 1)));
        // A label that is not text (damaged) counts as none.
        const label = labels.get(sha256);
        return { sha256, name, embedding: b.embeddings.slice(i * dim, (i + 1) * dim), label: typeof label === 'string' && label ? label : null };
      });
    });
  }

  /** Stores photos added together (`[{ sha256, name, embedding, thumb? }]`) as one block. */
  async galleryAdd(modelId, entries) {
    if (entries.length === 0) return;
    const dim = entries[0].embedding.length;
    const block = {
      names: entries.map((e) => e.name),
      sha256s: new Uint8Array(32 * entries.length),
      embeddings: new Float32Array(dim * entries.length),
    };
    entries.forEach((e, i) => {
      block.sha256s.set(new Uint8Array(hexToBytes(e.sha256)), 32 * i);
      block.embeddings.set(e.embedding, dim * i);
    });
    await this.tx('gallery', 'readwrite', async (s) => {
      const last = await request(s.openKeyCursor(IDBKeyRange.bound([modelId], [modelId, []]), 'prev'));
      await request(s.add(block, [modelId, last ? last.key[1] + 1 : 0]));
    });
    await this.tx('thumbs', 'readwrite', (s) => entries.forEach((e) => e.thumb && s.put(e.thumb, e.sha256)));
  }

  gallerySetLabel(modelId, sha256, label) {
    return this.tx('labels', 'readwrite', (s) => request(label ? s.put(label, [modelId, sha256]) : s.delete([modelId, sha256])));
  }

  async galleryClear(modelId) {
    const range = IDBKeyRange.bound([modelId], [modelId, []]);
    await this.tx('gallery', 'readwrite', (s) => request(s.delete(range)));
    await this.tx('labels', 'readwrite', (s) => request(s.delete(range)));
  }

  thumb(sha256) { return this.tx('thumbs', 'readonly', (s) => request(s.get(sha256))); }

  async usage() {
    if (!navigator.storage?.estimate) return null;
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

/** Something cannot be stored in this browser: `clause` says what and why, for the user. */
export class StorageUnavailable extends Error {
  constructor(clause) {
    super(`${clause[0].toUpperCase()}${clause.slice(1)}.`);
    this.name = 'StorageUnavailable';
    this.clause = clause;
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
  async modelWriter() { throw new StorageUnavailable(`this browser keeps nothing for this page: ${this.reason}`); }
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
  async galleryAdd(modelId, entries) {
    this.gallery ||= new Map();
    this.thumbs ||= new Map();
    if (!this.gallery.has(modelId)) this.gallery.set(modelId, new Map());
    for (const { thumb, ...entry } of entries) {
      this.gallery.get(modelId).set(entry.sha256, { label: null, ...entry });
      if (thumb) this.thumbs.set(entry.sha256, thumb);
    }
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
