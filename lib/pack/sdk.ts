/**
 * The C SDK's compiler command (examples/sdk/toolchain.json, read from the package), for
 * `nub cc` and scripts/build-examples.mjs: one place builds the command line.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../native/binding.js';

export interface Toolchain {
  cc: string;
  cflags: string[];
  targets: Record<string, { flags: string[]; linkerScript: string | null; sources: string[] }>;
}

export function sdkDir(): string {
  return path.join(packageRoot(), 'examples', 'sdk');
}

export function toolchain(): Toolchain {
  return JSON.parse(readFileSync(path.join(sdkDir(), 'toolchain.json'), 'utf8')) as Toolchain;
}

/** The compiler and its arguments that build `sources` into `output` for `target` ('pvm' or 'linux'). */
export function compileCommand(sources: readonly string[], output: string, target = 'pvm'): { cc: string; args: string[] } {
  const tc = toolchain();
  const sdk = sdkDir();
  const t = tc.targets[target];
  if (t === undefined) throw new Error(`no SDK target '${target}'`);
  return {
    cc: tc.cc,
    args: [
      ...tc.cflags, `-I${sdk}`, ...t.flags,
      ...(t.linkerScript ? ['-T', path.join(sdk, t.linkerScript)] : []),
      ...sources, ...t.sources.map((s) => path.join(sdk, s)),
      '-o', output,
    ],
  };
}
