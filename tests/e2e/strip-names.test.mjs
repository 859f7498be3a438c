// scripts/strip-wasm-names.mjs (run on release builds by scripts/build-web.sh): on the page's
// own module it drops the `name` section and nothing else, and the module stays valid with the
// same imports and exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, readFile, rm } from 'node:fs/promises';
import { tempDir } from './webdriver.mjs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

test('stripping the name section keeps the module valid and otherwise unchanged', async () => {
  const dir = tempDir('strip');
  try {
    const original = await readFile(join(root, 'pkg/fieldclip_bg.wasm'));
    const file = join(dir, 'module.wasm');
    await copyFile(join(root, 'pkg/fieldclip_bg.wasm'), file);
    execFileSync('node', [join(root, 'scripts/strip-wasm-names.mjs'), file], { timeout: 60_000 });
    const stripped = await readFile(file);
    const before = new WebAssembly.Module(original);
    const after = new WebAssembly.Module(stripped);
    assert.ok(WebAssembly.Module.customSections(before, 'name').length === 1, 'the dev build has a name section');
    assert.equal(WebAssembly.Module.customSections(after, 'name').length, 0);
    const nameBytes = WebAssembly.Module.customSections(before, 'name')[0].byteLength;
    // The section's payload, its name ("name", with its length byte), id and size field.
    assert.ok(original.length - stripped.length >= nameBytes + 5 && original.length - stripped.length <= nameBytes + 11);
    assert.deepEqual(WebAssembly.Module.exports(after), WebAssembly.Module.exports(before));
    assert.deepEqual(WebAssembly.Module.imports(after), WebAssembly.Module.imports(before));
    assert.deepEqual(
      WebAssembly.Module.customSections(after, 'target_features').map((b) => Buffer.from(b).toString('hex')),
      WebAssembly.Module.customSections(before, 'target_features').map((b) => Buffer.from(b).toString('hex')),
    );
    // A second run finds nothing to drop.
    execFileSync('node', [join(root, 'scripts/strip-wasm-names.mjs'), file], { timeout: 60_000 });
    assert.equal((await readFile(file)).length, stripped.length);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
