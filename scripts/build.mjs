#!/usr/bin/env zx
// Builds everything nub needs, in dependency order: TypeScript (the ABI declaration
// lives there), the generated guest ABI header, the guest kernel, the native addon.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

$.verbose = false;
const root = fileURLToPath(new URL('..', import.meta.url));
cd(root);

const steps = [
  ['TypeScript', ['npx', 'tsc', '-p', 'tsconfig.json']],
  ['guest ABI header', ['node', 'node_modules/zx/build/cli.js', 'scripts/gen-abi.mjs']],
  ['PVM engine tables', ['node', 'node_modules/zx/build/cli.js', 'scripts/gen-engine-tables.mjs']],
  ['guest kernel', ['node', 'node_modules/zx/build/cli.js', 'scripts/build-guest.mjs']],
  ['PVM engine test harness', ['node', 'node_modules/zx/build/cli.js', 'scripts/build-engine-harness.mjs']],
  ['native error codes', ['node', 'node_modules/zx/build/cli.js', 'scripts/gen-errors.mjs']],
  ['native addon', ['node', 'node_modules/zx/build/cli.js', 'scripts/build-addon.mjs']],
];

for (const [name, [cmd, ...args]] of steps) {
  const script = args.find((a) => a.startsWith('scripts/'));
  if (script && !existsSync(script)) {
    console.log(`- ${name}: skipped (${script} not present)`);
    continue;
  }
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
}
