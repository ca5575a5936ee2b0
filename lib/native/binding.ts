/**
 * The whole native surface of `build/Release/nub.node`, typed in one place, and the one
 * place that loads it. Everything else goes through `lib/native/index.ts`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NubError } from '../errors.js';

import type { Fpu, Regs, Sregs } from './vcpu-layout.js';

export type { DescriptorTable, Fpu, Regs, Segment, Sregs } from './vcpu-layout.js';

export interface KvmInfo {
  apiVersion: number;
  /** Size of each vCPU's kvm_run mapping. */
  vcpuMmapSize: number;
  /** KVM_CHECK_EXTENSION results by capability name (`userMemory`, `immediateExit`, ...). */
  capabilities: Record<string, number>;
}

export interface NativeVmOptions { memorySize: number; kvmPath?: string; dirtyLog?: boolean }

/** One VM with one vCPU and one memory slot at guest-physical 0 (native/addon.cc). */
export interface NativeVm {
  readonly memory: ArrayBuffer;
  readonly runState: ArrayBuffer;
  readonly memorySize: number;
  readonly closed: boolean;
  run(timeoutMs?: number): number;
  runAsync(timeoutMs?: number): Promise<number>;
  kick(): void;
  pollRun(seqOffset: number, seq: number, doneOffset: number, want: number, idlePort: number, timeoutMs?: number): number;
  pollRunAsync(seqOffset: number, seq: number, doneOffset: number, want: number, idlePort: number, timeoutMs?: number): Promise<number>;
  parkPoller(): void;
  tscKhz(): number;
  getRegs(): Regs;
  setRegs(regs: Regs): void;
  getSregs(): Sregs;
  setSregs(sregs: Sregs): void;
  getFpu(): Fpu;
  setFpu(fpu: Fpu): void;
  getDirtyLog(): Uint8Array;
  saveVcpuState(): ArrayBuffer;
  loadVcpuState(state: ArrayBuffer): void;
  freezeMemory(): NativeMemoryFile;
  renewMemory(): void;
  adoptBase(base: NativeMemoryFile): void;
  usesBase(base: NativeMemoryFile): boolean;
  privatePages(): Uint8Array;
  discardPages(bitmap: Uint8Array): void;
  close(): void;
}

/** A sealable memfd holding guest memory as of a snapshot (native/memory_file.cc). */
export interface NativeMemoryFile {
  readonly size: number;
  readonly sealed: boolean;
  readonly closed: boolean;
  write(offset: number, bytes: Uint8Array): void;
  seal(): void;
  mapImmutable(patch?: ArrayBuffer, bitmap?: Uint8Array): ArrayBuffer;
  close(): void;
}

export interface Binding {
  setErrorClass(errorClass: typeof NubError): void;
  kvmInfo(path?: string): KvmInfo;
  NativeVm: new (opts: NativeVmOptions) => NativeVm;
  NativeMemoryFile: new (size: number) => NativeMemoryFile;
  /** Detaches an ArrayBuffer the addon mapped; its mapping goes when the finalizer runs. */
  releaseBuffer(buffer: ArrayBuffer): void;
  /** Offsets in struct kvm_run and KVM_EXIT_* values as the addon's compiler saw them. */
  kvmRunLayout: Record<string, number>;
  /** Largest accepted memorySize, in bytes. */
  maxMemorySize: number;
}

/** The directory holding nub's package.json (found from the source tree or any compiled copy of it). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'nub') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new NubError('AddonMissing', `cannot find nub's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Where a prebuilt addon for this platform sits in the package (scripts/prepack.mjs puts it there, named as prebuildify would). */
export const PREBUILT_ADDON = 'prebuilds/linux-x64/node.napi.glibc.node';

function load(): Binding {
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  // node-gyp-build picks build/Release (a checkout's or a from-source build) first, then prebuilds/.
  let found: string;
  try {
    found = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(root);
  } catch (cause) {
    throw new NubError('AddonMissing', `nub's native addon is neither built nor prebuilt for this platform under ${root}; `
      + 'reinstall nub (`npm rebuild nub` compiles it: it needs g++, make and python3), or run `npm run build` in a checkout', { cause });
  }
  const binding = require(found) as Binding;
  binding.setErrorClass(NubError);
  return binding;
}

let loaded: Binding | undefined;

/** The addon, loaded on first use (so modules that import this one work without it). */
export function binding(): Binding {
  loaded ??= load();
  return loaded;
}
