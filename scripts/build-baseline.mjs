#!/usr/bin/env zx
// Builds the raw-KVM baseline (bench/baseline/*.c) with the machine's C compiler into
// bench/build/, for bench/native.ts. Usage: zx scripts/build-baseline.mjs
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { $, chalk } from 'zx';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'bench', 'build');
mkdirSync(out, { recursive: true });
const cc = process.env.CC ?? 'cc';
try {
  await $({ verbose: false })`${cc} -O2 -Wall -Wextra -std=c11 -pthread -o ${path.join(out, 'raw_kvm')} ${path.join(root, 'bench', 'baseline', 'raw_kvm.c')}`;
} catch (err) {
  console.error(err.stderr);
  console.error(chalk.red(`nub: building the raw-KVM baseline with ${cc} failed (it needs a C compiler and linux/kvm.h).`));
  process.exit(1);
}
console.log('built bench/build/raw_kvm');
