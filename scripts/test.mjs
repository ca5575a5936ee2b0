#!/usr/bin/env zx
// Runs every mocha test (unit, then KVM) against the built project and prints the
// plain closing line `N passed, N failed, N skipped`. On a machine that has /dev/kvm,
// KVM tests must run: a skipped KVM test there fails the run.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mocha from 'mocha';

const root = fileURLToPath(new URL('..', import.meta.url));
cd(root);
$.verbose = false;

await $`npx tsc -p tsconfig.json`.catch((err) => {
  console.error(err.stdout, err.stderr);
  console.error("nub test: TypeScript does not compile; fix the errors above (or run 'npm run build').");
  process.exit(1);
});

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
