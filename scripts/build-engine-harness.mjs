#!/usr/bin/env zx
// Builds the PVM2 engine (guest/engine):
//   1. regenerates its headers from the TypeScript declarations (scripts/gen-engine-tables.mjs;
//      needs the compiled TS, `--dist DIR`, default dist);
//   2. compiles the engine freestanding, with the guest kernel's flags, into
//      guest/build/engine/*.o, so a change that would not build in the guest fails here;
//   3. links the host-native test driver guest/build/engine-harness.
import { mkdirSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GUEST_CFLAGS } from './guest-flags.mjs';

$.verbose = false;
const root = fileURLToPath(new URL('..', import.meta.url));
cd(root);

const argv = process.argv.slice(2);
const distFlag = argv.indexOf('--dist');
const dist = distFlag >= 0 ? argv[distFlag + 1] : 'dist';
await $`node scripts/gen-engine-tables.mjs --dist ${dist}`;

const engine = 'guest/engine';
const out = 'guest/build';
const sources = readdirSync(engine).filter((f) => f.endsWith('.c')).sort().map((f) => `${engine}/${f}`);
const warnings = ['-std=c11', '-Wall', '-Wextra', '-Werror']; // the native driver's

const guestFlags = GUEST_CFLAGS;
mkdirSync(`${out}/engine`, { recursive: true });
const objects = await Promise.all(sources.map(async (src) => {
  const obj = `${out}/engine/${src.split('/').pop().replace(/\.c$/, '.o')}`;
  await $`gcc ${guestFlags} -c ${src} -o ${obj}`;
  return obj;
}));
// The engine must stand alone: no symbol from libc or libgcc.
const undefinedSymbols = (await $`nm -u ${objects}`).stdout.split('\n')
  .map((line) => line.trim()).filter((line) => line.startsWith('U ')).map((line) => line.slice(2));
const own = new Set((await $`nm --defined-only ${objects}`).stdout.split('\n').map((line) => line.trim().split(' ').pop()));
const foreign = [...new Set(undefinedSymbols.filter((s) => !own.has(s)))];
if (foreign.length > 0) {
  console.error(`build-engine-harness: the freestanding engine needs outside symbols: ${foreign.join(', ')}`);
  process.exit(1);
}

await $`gcc ${warnings} -O2 -g -I${engine} -I${engine}/harness ${sources} ${engine}/harness/main.c -o ${out}/engine-harness`;
console.log(`built ${out}/engine-harness and ${out}/engine/*.o`);
