#!/usr/bin/env node
// npm's `install` step for nub, the one script the package ships. Plain Node: it runs
// in a user's project, where nub's devDependencies are absent.
//
// - A checkout (scripts/build.mjs is there; the package has no copy): build everything
//   with the devDependencies (`npm run build` does the same).
// - A package whose prebuilt addon (prebuilds/, made by `npm pack`) loads: nothing to do.
// - Otherwise (another libc, or NUB_BUILD_FROM_SOURCE=1): compile native/ with npm's own
//   node-gyp and binding.gyp, against this Node's headers when it has them (no download).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

if (existsSync(path.join(root, 'scripts', 'build.mjs'))) {
  const zx = fileURLToPath(import.meta.resolve('zx/cli'));
  process.exit(spawnSync(process.execPath, [zx, 'scripts/build.mjs'], { cwd: root, stdio: 'inherit' }).status ?? 1);
}

function prebuiltLoads() {
  try {
    require(require('node-gyp-build').resolve(root));
    return true;
  } catch {
    return false;
  }
}

if (process.env.NUB_BUILD_FROM_SOURCE !== '1' && prebuiltLoads()) process.exit(0);

console.error('nub: no prebuilt addon fits this machine; compiling it from source with node-gyp');
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir = existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
// npm puts its bundled node-gyp in npm_config_node_gyp (and on PATH) for lifecycle scripts.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
const run = spawnSync(cmd, [...args, 'rebuild', ...nodedir], { cwd: root, stdio: 'inherit' });
if (run.status !== 0) {
  console.error('nub: compiling the addon failed. It needs python3, make, g++ (C++17) and the Linux KVM headers '
    + '(Debian/Ubuntu: sudo apt-get install python3 make g++ linux-libc-dev), then `npm rebuild nub`.');
  process.exit(1);
}
