#!/usr/bin/env zx
// Runs every benchmark in bench/ and prints its table. Each benchmark measures its own
// baseline in the same run (raw KVM in C, SHA-256, qemu-riscv64, ...) and reports ratios.
// Usage: npm run bench [-- name ...]   (names: files in dist/bench without .js)
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
cd(root);
$.verbose = true;
await $`npx tsc -p tsconfig.json`;
if (existsSync('scripts/build-baseline.mjs')) await $`node node_modules/zx/build/cli.js scripts/build-baseline.mjs`;
if (existsSync('scripts/build-engine-harness.mjs')) await $`node node_modules/zx/build/cli.js scripts/build-engine-harness.mjs`;

const wanted = process.argv.slice(3).filter((a) => !a.startsWith('-'));
const all = readdirSync('dist/bench').filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort();
for (const name of wanted.length ? wanted : all) {
  if (!all.includes(name)) {
    console.error(`nub bench: no benchmark '${name}'; available: ${all.join(', ')}`);
    process.exit(2);
  }
  console.log(`\n=== ${name} ===`);
  await $`node ${`dist/bench/${name}.js`}`;
}
