#!/usr/bin/env zx
// Runs every mocha test (unit, then KVM) against the built project and prints the
// plain closing line `N passed, N failed, N skipped`. On a machine that has /dev/kvm,
// KVM tests must run: a skipped KVM test there fails the run.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mocha from 'mocha';
import { pruneDist } from './prune-dist.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
cd(root);
$.verbose = false;

// The examples' qemu cross-check and the SDK tests need the RISC-V cross compiler and
// qemu-user: install them when missing (Debian/Ubuntu), or say in one line what to install.
const missingTools = ['riscv64-unknown-elf-gcc', 'qemu-riscv64'].filter((tool) => !which.sync(tool, { nothrow: true }));
if (missingTools.length > 0) {
  console.log(`nub test: ${missingTools.join(' and ')} not found; installing them with scripts/install-riscv-toolchain.sh (apt-get)`);
  await $({ stdio: 'inherit' })`sh scripts/install-riscv-toolchain.sh`.catch(() => {
    console.error('nub test: install gcc-riscv64-unknown-elf, binutils-riscv64-unknown-elf and qemu-user (Debian/Ubuntu names), then run npm test again');
    process.exit(1);
  });
}

await $`${process.execPath} ${fileURLToPath(import.meta.resolve('typescript/bin/tsc'))} -p tsconfig.json`.catch((err) => {
  console.error(err.stdout, err.stderr);
  console.error("nub test: TypeScript does not compile; fix the errors above (or run 'npm run build').");
  process.exit(1);
});
pruneDist(root);

const kvmPresent = existsSync('/dev/kvm');
if (kvmPresent) process.env.NUB_REQUIRE_KVM = '1';

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return name.endsWith('.test.js') ? [path] : [];
  }).sort();
}

const grep = process.argv.slice(3).find((a, i, all) => all[i - 1] === '--grep');
const mocha = new Mocha({ reporter: 'spec', timeout: 120_000, grep });
for (const file of [...testFiles('dist/test/unit'), ...testFiles('dist/test/kvm')]) mocha.addFile(file);
await mocha.loadFilesAsync();

const stats = await new Promise((resolve) => {
  const runner = mocha.run(() => resolve(runner.stats));
});

const { passes, failures, pending } = stats;
console.log(`\n${passes} passed, ${failures} failed, ${pending} skipped`);
if (failures > 0) process.exit(1);
if (kvmPresent && pending > 0) {
  console.error('nub test: /dev/kvm is present but tests were skipped; on a KVM machine every test must run.');
  process.exit(1);
}
