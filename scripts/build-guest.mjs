#!/usr/bin/env zx
// Builds the guest kernel (guest/) with the machine's gcc into guest/build/kernel.elf
// (symbols, for debugging) and guest/build/kernel.bin (the flat image the host loads
// at NUB_KERNEL_GPA). Needs the compiled ABI in dist/ (run `tsc` first), which also
// provides the link address, so no layout number is written twice.
import { mkdirSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

$.verbose = false;
const root = fileURLToPath(new URL('..', import.meta.url));
cd(root);
const { Layout } = await import(`${root}dist/lib/abi/guest-abi.js`);

const arch = (await $`gcc -dumpmachine`).stdout.trim();
if (!arch.startsWith('x86_64')) {
  console.error(`build-guest: gcc targets ${arch}; the guest kernel needs an x86-64 gcc`);
  process.exit(1);
}

const out = 'guest/build';
mkdirSync(out, { recursive: true });
const hex = (v) => `0x${BigInt(v).toString(16)}`;
const cflags = [
  '-std=c11', '-O2', '-g', '-Wall', '-Wextra', '-Werror',
  '-ffreestanding', '-fno-builtin', '-nostdlib', '-fno-stack-protector', '-fno-asynchronous-unwind-tables',
  // Linked far above 2 GiB: position-independent code reaches its data RIP-relative,
  // and the final link is static, so no relocation survives into the image.
  '-fpie', '-fvisibility=hidden',
  '-mno-red-zone', '-mgeneral-regs-only', '-march=x86-64',
  '-Iguest/include',
];
const ldflags = [
  '-nostdlib', '-static', '-no-pie', '-Wl,--no-dynamic-linker', '-Wl,--build-id=none', '-Wl,-z,noexecstack', '-Wl,--no-warn-rwx-segments',
  '-T', 'guest/kernel.ld',
  `-Wl,--defsym=NUB_KERNEL_LINK_VA=${hex(Layout.values.GUEST_VA_BASE + BigInt(Layout.values.KERNEL_GPA))}`,
  `-Wl,--defsym=NUB_PAGE_SIZE=${hex(Layout.values.PAGE_SIZE)}`,
  `-Wl,--defsym=NUB_KERNEL_STACK_SIZE=${hex(Layout.values.KERNEL_STACK_SIZE)}`,
];

const sources = readdirSync('guest/src').filter((f) => /\.[cS]$/.test(f)).sort();
const objects = await Promise.all(sources.map(async (src) => {
  const obj = `${out}/${src.replace(/\.[cS]$/, '.o')}`;
  await $`gcc ${cflags} -c guest/src/${src} -o ${obj}`;
  return obj;
}));
await $`gcc ${cflags} ${ldflags} ${objects} -o ${out}/kernel.elf`;
await $`objcopy -O binary ${out}/kernel.elf ${out}/kernel.bin`;
console.log(`built ${out}/kernel.bin`);
