// Drops the `name` custom section (function names, for stack traces) from a WebAssembly file,
// in place: the release page's modules load ~10-20 % smaller (BENCHMARKS.md). Panic messages
// keep their text; only a trace's frames lose their names. Used by scripts/build-web.sh for
// --release builds; nothing else in the module changes.
// Usage: node scripts/strip-wasm-names.mjs file.wasm…
import { readFileSync, writeFileSync } from 'node:fs';

/** An unsigned LEB128 at `at`: [value, next offset]. */
function leb(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, at];
  }
}

for (const file of process.argv.slice(2)) {
  const bytes = readFileSync(file);
  if (bytes.readUInt32LE(0) !== 0x6d736100) throw new Error(`${file} is not a WebAssembly module`);
  const kept = [bytes.subarray(0, 8)];
  let dropped = 0;
  for (let at = 8; at < bytes.length;) {
    const start = at;
    const id = bytes[at++];
    const [size, body] = leb(bytes, at);
    const end = body + size;
    if (end > bytes.length) throw new Error(`${file}: a section runs past the end of the file`);
    let name = null;
    if (id === 0) {
      const [length, text] = leb(bytes, body);
      name = bytes.subarray(text, text + length).toString('utf8');
    }
    if (name === 'name') dropped += end - start;
    else kept.push(bytes.subarray(start, end));
    at = end;
  }
  const out = Buffer.concat(kept);
  writeFileSync(file, out);
  console.log(`${file}: ${(bytes.length / 1e6).toFixed(1)} MB -> ${(out.length / 1e6).toFixed(1)} MB (name section ${(dropped / 1e6).toFixed(1)} MB dropped)`);
}
