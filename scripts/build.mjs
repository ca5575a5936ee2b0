#!/usr/bin/env zx
// Builds everything nub needs, in dependency order: TypeScript (the ABI declaration
// lives there), the generated guest ABI header, the guest kernel, the native addon.
// `--package` leaves out what only the tests use (scripts/prepack.mjs).
import { chmodSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pruneDist } from './prune-dist.mjs';

$.verbose = false;
const root = fileURLToPath(new URL('..', import.meta.url));
cd(root);

const zx = fileURLToPath(import.meta.resolve('zx/cli'));
const tsc = fileURLToPath(import.meta.resolve('typescript/bin/tsc'));
const steps = [
  ['TypeScript', [process.execPath, tsc, '-p', 'tsconfig.json']],
  ['guest ABI header', [process.execPath, zx, 'scripts/gen-abi.mjs']],
  ['PVM engine tables', [process.execPath, zx, 'scripts/gen-engine-tables.mjs']],
  ['guest kernel', [process.execPath, zx, 'scripts/build-guest.mjs']],
  ['PVM engine test harness', [process.execPath, zx, 'scripts/build-engine-harness.mjs'], { testOnly: true }],
  ['native error codes', [process.execPath, zx, 'scripts/gen-errors.mjs']],
  ['native vCPU field lists', [process.execPath, zx, 'scripts/gen-vcpu-fields.mjs']],
  ['native addon', [process.execPath, zx, 'scripts/build-addon.mjs']],
];
const forPackage = process.argv.includes('--package');

for (const [name, [cmd, ...args], { testOnly = false } = {}] of steps) {
  if (testOnly && forPackage) continue;
  const started = Date.now();
  process.stdout.write(`- ${name} ... `);
  try {
    await $`${cmd} ${args}`;
  } catch (err) {
    console.log('FAILED');
    console.error(err.stdout, err.stderr);
    console.error(`nub build: the ${name} step failed (see above). Fix it and re-run 'npm run build'.`);
    process.exit(1);
  }
  console.log(`ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  if (name === 'TypeScript') {
    pruneDist(root);
    // tsc writes files without the executable bit; `npx nub` in a checkout runs the bin as it is.
    for (const bin of Object.values(JSON.parse(readFileSync('package.json', 'utf8')).bin)) chmodSync(bin, 0o755);
  }
}
