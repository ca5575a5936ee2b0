#!/usr/bin/env zx
// npm's `prepack` step (npm pack / npm publish): builds what the package ships and puts
// the addon where node-gyp-build looks for a prebuilt one. The addon is Node-API, so one
// binary serves every Node this package supports on linux-x64 (glibc); the guest kernel
// is a flat x86-64 image, the same everywhere. package.json's `files` says what goes in.
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
cd(root);
$.verbose = false;
await $({ stdio: 'inherit' })`${process.execPath} ${fileURLToPath(import.meta.resolve('zx/cli'))} scripts/build.mjs --package`;
const { PREBUILT_ADDON } = await import(`${root}/dist/lib/native/binding.js`);
mkdirSync(path.dirname(PREBUILT_ADDON), { recursive: true });
copyFileSync('build/Release/nub.node', PREBUILT_ADDON);
console.log(`- prebuilt addon: ${PREBUILT_ADDON}`);
