#!/usr/bin/env zx
// Builds the native addon (native/*.cc) into build/Release/nub.node with cmake-js.
// Usage: zx scripts/build-addon.mjs [--debug]
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { $, argv, chalk } from 'zx';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cmakeJs = fileURLToPath(import.meta.resolve('cmake-js/bin/cmake-js'));
const env = { ...process.env };

// cmake-js uses the node-api-headers package when package.json declares
// binary.napi_versions; otherwise it wants a Node source tree and would download one.
// There is no network here, so fall back to this Node's own installed headers.
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
if (!pkg.binary?.napi_versions && !env.npm_config_nodedir) {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
}

const args = ['build', '--directory', root, '--parallel', '2', ...(argv.debug ? ['--debug'] : [])];
try {
  await $({ cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], verbose: false })`${process.execPath} ${cmakeJs} ${args}`;
} catch (err) {
  console.error(err.stdout + err.stderr);
  console.error(chalk.red('nub: building the native addon failed.'));
  console.error('It needs cmake (>= 3.15), a C++17 compiler (g++ or clang++) and Linux KVM headers (linux/kvm.h).');
  console.error('On Debian/Ubuntu: sudo apt-get install cmake g++ linux-libc-dev');
  process.exit(1);
}
const output = path.join(root, 'build', argv.debug ? 'Debug' : 'Release', 'nub.node');
if (!existsSync(output)) {
  console.error(chalk.red(`nub: the addon build finished but ${output} is missing.`));
  process.exit(1);
}
console.log(`built ${path.relative(root, output)}`);
