// Writes a random full-size ViT-B/32 in Hugging Face's layout (model.safetensors + config.json,
// 605 MB) for the speed benchmarks, where the oracle's `make_oracle.py models` cannot run (it
// needs PyTorch). Speed depends on the shapes, not the values: for parity use the oracle's file.
// Usage: node benches/web/make-random-vitb32.mjs OUT_DIR
import { copyFile, mkdir, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const out = process.argv[2];
if (!out) {
  console.error('usage: node benches/web/make-random-vitb32.mjs OUT_DIR');
  process.exit(2);
}

/** [name, shape, kind]: kind 'ones' (norm weights), 'zeros' (biases) or 'random'. */
function tensors() {
  const list = [['logit_scale', [], 'logit']];
  const tower = (prefix, width, layers) => {
    for (let i = 0; i < layers; i++) {
      const l = `${prefix}.encoder.layers.${i}`;
      for (const n of ['layer_norm1', 'layer_norm2']) list.push([`${l}.${n}.weight`, [width], 'ones'], [`${l}.${n}.bias`, [width], 'zeros']);
      list.push([`${l}.mlp.fc1.weight`, [4 * width, width], 'random'], [`${l}.mlp.fc1.bias`, [4 * width], 'zeros']);
      list.push([`${l}.mlp.fc2.weight`, [width, 4 * width], 'random'], [`${l}.mlp.fc2.bias`, [width], 'zeros']);
      for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) list.push([`${l}.self_attn.${p}.weight`, [width, width], 'random'], [`${l}.self_attn.${p}.bias`, [width], 'zeros']);
    }
  };
  list.push(['text_model.embeddings.token_embedding.weight', [49408, 512], 'random'], ['text_model.embeddings.position_embedding.weight', [77, 512], 'random']);
  tower('text_model', 512, 12);
  list.push(['text_model.final_layer_norm.weight', [512], 'ones'], ['text_model.final_layer_norm.bias', [512], 'zeros']);
  list.push(['text_projection.weight', [512, 512], 'random']);
  list.push(['vision_model.embeddings.class_embedding', [768], 'random'], ['vision_model.embeddings.patch_embedding.weight', [768, 3, 32, 32], 'random']);
  list.push(['vision_model.embeddings.position_embedding.weight', [50, 768], 'random']);
  list.push(['vision_model.pre_layrnorm.weight', [768], 'ones'], ['vision_model.pre_layrnorm.bias', [768], 'zeros']);
  tower('vision_model', 768, 12);
  list.push(['vision_model.post_layernorm.weight', [768], 'ones'], ['vision_model.post_layernorm.bias', [768], 'zeros']);
  list.push(['visual_projection.weight', [512, 768], 'random']);
  return list;
}

// A fixed-seed generator (xorshift32): the same file every time.
let state = 0x9e3779b9;
const next = () => {
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 4294967296;
};

await mkdir(out, { recursive: true });
const list = tensors();
const header = { __metadata__: { format: 'pt' } };
let offset = 0;
for (const [name, shape] of list) {
  const bytes = 4 * shape.reduce((a, b) => a * b, 1);
  header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
  offset += bytes;
}
let json = JSON.stringify(header);
json += ' '.repeat((8 - (json.length % 8)) % 8);
const file = await open(join(out, 'model.safetensors'), 'w');
const length = Buffer.alloc(8);
length.writeBigUInt64LE(BigInt(json.length));
await file.write(length);
await file.write(json);
for (const [, shape, kind] of list) {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  if (kind === 'ones') values.fill(1);
  if (kind === 'logit') values.fill(Math.log(100));
  if (kind === 'random') for (let i = 0; i < values.length; i++) values[i] = (next() - 0.5) * 0.04;
  await file.write(new Uint8Array(values.buffer));
}
await file.close();
await copyFile(join(root, 'tests/data/vitb32/config.json'), join(out, 'config.json'));
console.log(`${join(out, 'model.safetensors')}: ${list.length} tensors, ${(offset / 1e6).toFixed(0)} MB`);
