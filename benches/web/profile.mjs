// Samples the CPU profile of one bench page (Chrome DevTools Protocol) and prints where the
// time goes, by function (self time). A tool for deciding what to optimise, not a benchmark.
// Usage: node benches/web/profile.mjs 'suite=peer&engine=fieldclip-cpu&runs=2&warmup=1' [top]
import { browser, serve } from '../../tests/e2e/webdriver.mjs';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const query = process.argv[2] || 'suite=peer&engine=fieldclip-cpu&runs=2&warmup=1';
const top = Number(process.argv[3] || 40);
const models = join(homedir(), '.cache/fieldclip-bench/models');
if (!existsSync(models)) throw new Error(`${models} is missing: run benches/web/run.mjs peer once`);
const server = await serve(root, {
  mounts: { '/node_modules/': join(root, 'benches/web/peer/node_modules'), '/bench-models/': models },
  headers: { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' },
});
const page = await browser();
try {
  await page.cdp('Profiler.enable');
  await page.cdp('Profiler.setSamplingInterval', { interval: 1000 });
  await page.goto(`${server.url}bench.html?${query}`);
  await page.cdp('Profiler.start');
  const result = await page.waitFor('return window.benchResult;', query, 3600e3);
  const { profile } = await page.cdp('Profiler.stop');
  for (const r of result.rows ?? []) console.log(`${r.what}: ${r.median.toFixed(1)} ${r.unit}`);
  const self = new Map();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const dt = profile.timeDeltas;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const n = byId.get(id);
    const name = n.callFrame.functionName || `(${n.callFrame.url.split('/').pop() || 'anonymous'})`;
    self.set(name, (self.get(name) || 0) + dt[i]);
    total += dt[i];
  });
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
  console.log(`\nself time, ${(total / 1e6).toFixed(1)} s sampled`);
  for (const [name, us] of rows) console.log(`${(100 * us / total).toFixed(1).padStart(5)} %  ${name.slice(0, 150)}`);
} finally {
  await page.close();
  await server.close();
}
