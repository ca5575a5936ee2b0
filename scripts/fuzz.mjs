#!/usr/bin/env node
// `npm run fuzz [-- --seed S] [--seconds N] [--cases N] [--only images,programs,api,guest] [--json]`:
// runs every fuzzer of test/fuzz/ (compiled: `npm run build:ts` first) for N seconds or N
// cases each, with a progress bar on stderr, then prints per fuzzer its cases, time,
// outcome tally and findings. Exits 1 when anything was found; each finding carries the
// seed of its case, so `--seed` with the run's seed replays the run.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
    seconds: { type: 'string', default: '60' },
    cases: { type: 'string', default: String(Number.MAX_SAFE_INTEGER) },
    only: { type: 'string', default: 'images,programs,api,guest' },
    json: { type: 'boolean', default: false },
  },
});
const FUZZERS = { images: 'fuzzImages', programs: 'fuzzPrograms', api: 'fuzzApi', guest: 'fuzzGuest' };
const seed = Number(values.seed);
const kvm = existsSync('/dev/kvm');
if (!existsSync(`${root}dist/test/fuzz/common.js`)) {
  console.error("nub fuzz: the fuzzers are not compiled; run 'npm run build:ts' first.");
  process.exit(1);
}
console.error(`nub fuzz: seed ${seed}, ${values.seconds} s or ${values.cases} cases per fuzzer, engine kvm ${kvm ? 'on' : 'off (no /dev/kvm)'}`);

const reports = {};
for (const name of values.only.split(',')) {
  const fn = FUZZERS[name];
  if (!fn) {
    console.error(`nub fuzz: no fuzzer '${name}'; there are ${Object.keys(FUZZERS).join(', ')}`);
    process.exit(2);
  }
  const mod = await import(pathToFileURL(`${root}dist/test/fuzz/${name}.js`).href);
  const started = performance.now();
  const seconds = Number(values.seconds);
  const progress = (done, found) => {
    const elapsed = (performance.now() - started) / 1000;
    const width = 30;
    const filled = Math.min(width, Math.round((elapsed / seconds) * width));
    process.stderr.write(`\r${name.padEnd(9)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done} cases, ${found} found, ${elapsed.toFixed(0)} s `);
  };
  const report = await mod[fn]({ seed, seconds, cases: Number(values.cases), kvm, onProgress: progress });
  process.stderr.write('\n');
  reports[name] = report;
}

let found = 0;
if (values.json) {
  console.log(JSON.stringify(Object.fromEntries(Object.entries(reports).map(([k, r]) => [k, { ...r, outcomes: Object.fromEntries(r.outcomes) }])), null, 2));
}
for (const [name, r] of Object.entries(reports)) {
  found += r.findings.length;
  if (values.json) continue;
  console.log(`\n${name}: ${r.cases} cases in ${r.seconds.toFixed(1)} s, ${r.findings.length} findings, RSS ${(r.rssGrowthBytes / 2 ** 20).toFixed(0)} MiB more at the end`);
  for (const [outcome, n] of [...r.outcomes].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(7)}  ${outcome}`);
  for (const f of r.findings.slice(0, 20)) console.log(`  FOUND case ${f.case} (case seed ${f.seed}): ${f.what}${f.input ? `\n    input ${f.input.slice(0, 200)}${f.input.length > 200 ? '...' : ''}` : ''}`);
}
console.log(`\nnub fuzz: seed ${seed}, ${found} findings`);
process.exit(found > 0 ? 1 : 0);
