#!/usr/bin/env zx
// Builds the guest kernel (guest/src and the PVM2 engine in guest/engine) with the machine's gcc into guest/build/kernel.elf
// (symbols, for debugging) and guest/build/kernel.bin (the flat image the host loads
// at NUB_KERNEL_GPA). Needs the compiled ABI in dist/ (run `tsc` first; `--dist DIR` for another output dir), which also
// provides the link address, so no layout number is written twice.
import { mkdirSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GUEST_CFLAGS, SUPERVISOR_CFLAGS } from './guest-flags.mjs';

$.verbose = false;
const root = fileURLToPath(new URL('..', import.meta.url));
cd(root);
const distFlag = process.argv.indexOf('--dist');
const dist = distFlag >= 0 ? process.argv[distFlag + 1] : 'dist'; // another tsc output dir
const { Layout } = await import(`${root}${dist}/lib/abi/guest-abi.js`);

const arch = (await $`gcc -dumpmachine`).stdout.trim();
if (!arch.startsWith('x86_64')) {
  console.error(`build-guest: gcc targets ${arch}; the guest kernel needs an x86-64 gcc`);
  process.exit(1);
}

const out = 'guest/build';
mkdirSync(out, { recursive: true });
const hex = (v) => `0x${BigInt(v).toString(16)}`;
const cflags = [...GUEST_CFLAGS, '-Iguest/include', '-Iguest/engine'];
const ldflags = [
  '-nostdlib', '-static', '-no-pie', '-Wl,--no-dynamic-linker', '-Wl,--build-id=none', '-Wl,-z,noexecstack', '-Wl,--no-warn-rwx-segments',
  '-T', 'guest/kernel.ld',
  `-Wl,--defsym=NUB_KERNEL_LINK_VA=${hex(Layout.values.GUEST_VA_BASE + BigInt(Layout.values.KERNEL_GPA))}`,
  `-Wl,--defsym=NUB_PAGE_SIZE=${hex(Layout.values.PAGE_SIZE)}`,
  `-Wl,--defsym=NUB_KERNEL_STACK_SIZE=${hex(Layout.values.KERNEL_STACK_SIZE)}`,
];

// The engine's objects get their own directory (guest/build/engine is the harness build's).
const units = ['src', 'engine'].flatMap((dir) => readdirSync(`guest/${dir}`).filter((f) => /\.[cS]$/.test(f)).sort()
  .map((f) => ({ src: `guest/${dir}/${f}`, obj: `${out}/${dir === 'src' ? '' : 'kernel-engine-'}${f.replace(/\.[cS]$/, '.o')}` })));
// The CPL0 units: the exception stubs and their handler.
const SUPERVISOR_UNITS = new Set(['guest/src/entry.S', 'guest/src/trap.c']);
const objects = await Promise.all(units.map(async ({ src, obj }) => {
  await $`gcc ${cflags} ${SUPERVISOR_UNITS.has(src) ? SUPERVISOR_CFLAGS : []} -c ${src} -o ${obj}`;
  return obj;
}));
await $`gcc ${cflags} ${ldflags} ${objects} -o ${out}/kernel.elf`;
await $`objcopy -O binary ${out}/kernel.elf ${out}/kernel.bin`;
console.log(`built ${out}/kernel.bin`);
