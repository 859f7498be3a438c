// Runs bench.html in headless Chromium (the same browser as the tests) and prints its table.
// Usage: node benches/web/run.mjs [suite] [--out file.json]
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { browser, serve } from '../../tests/e2e/webdriver.mjs';

const root = resolve(import.meta.dirname, '../..');
const args = process.argv.slice(2);
const suite = args.find((a) => !a.startsWith('--')) || 'search';
const outIndex = args.indexOf('--out');
const out = outIndex >= 0 ? resolve(args[outIndex + 1]) : resolve(root, `benches/results/web-${suite}.json`);

const server = await serve(root);
const page = await browser();
try {
  await page.goto(`${server.url}bench.html?suite=${suite}`);
  const result = await page.waitFor('return window.benchResult;', `the ${suite} benchmark`, 3600e3);
  if (result.error) throw new Error(result.error);
  const width = Math.max(...result.rows.map((r) => r.what.length));
  console.log(`${suite} — ${result.userAgent}`);
  for (const r of result.rows) console.log(`${r.what.padEnd(width)}  ${r.median.toFixed(r.unit === 'ms' ? 2 : 0).padStart(10)} ${r.unit}${r.runs > 1 ? ` (median of ${r.runs})` : ''}`);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify({ date: new Date().toISOString(), ...result }, null, 1)}\n`);
  console.log(`written to ${out}`);
} finally {
  await page.close();
  await server.close();
}
