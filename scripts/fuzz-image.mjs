#!/usr/bin/env node
// Fuzzes image decoding + admission: `node scripts/fuzz-image.mjs [--cases N] [--seed S] [--dist DIR]`.
// Needs the compiled TypeScript (`npm run build:ts`). Exits non-zero on the first input that
// ends in anything but a value or a NubError, printing that input as hex.
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '100000' },
    seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
    dist: { type: 'string', default: 'dist' },
  },
});
const cases = Number(values.cases);
const seed = Number(values.seed);
const { runFuzz } = await import(pathToFileURL(resolve(values.dist, 'test/support/image-fuzz.js')).href);

const started = performance.now();
function progress(done) {
  const width = 40;
  const filled = Math.round((done / cases) * width);
  const rate = done / ((performance.now() - started) / 1000);
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${cases}  ${rate.toFixed(0)}/s`);
}

console.log(`fuzzing ${cases} images, seed ${seed}`);
try {
  const stats = runFuzz(seed, cases, progress);
  progress(cases);
  process.stderr.write('\n');
  console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s: ${stats.admitted} admitted, slowest case ${stats.slowestMs.toFixed(1)} ms`);
  for (const [code, n] of [...stats.errors].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(7)}  ${code}`);
} catch (err) {
  process.stderr.write('\n');
  console.error(`FAILED (seed ${seed}): ${err.message}`);
  if (err.input) console.error(`input: ${err.input}`);
  if (err.cause) console.error(err.cause);
  process.exitCode = 1;
}
