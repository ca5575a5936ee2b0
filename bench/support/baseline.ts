/**
 * What every KVM benchmark shares: the raw-KVM C baseline (bench/baseline/raw_kvm.c,
 * built by `zx scripts/build-baseline.mjs`), run in the same process tree as the thing
 * it is compared with, and the small statistics helpers.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../lib/native/binding.js';

export interface RawBaseline {
  memorySize: number;
  /** Create VM + memory + vCPU, run a real-mode guest to HLT (and tear it down). */
  boot: { createToHltUs: number; teardownUs: number };
  /** One port-I/O exit round trip. */
  io: { nsPerExit: number };
  /** With `modes`: the same vCPU in 64-bit long mode at CPL0 and CPL3, and the polling handoff. */
  modes?: {
    cpl0: { nsPerInsn: number; nsPerExit: number };
    cpl3: { nsPerInsn: number; nsPerExit: number };
    /** One request and reply on a shared cache line: two host threads; a host thread and a vCPU spinning at CPL3. */
    handoff: { threadsNs: number; vcpuNs: number };
  };
}

export interface RawBaselineOptions {
  bootIterations: number;
  ioBatches: number;
  ioExitsPerBatch: number;
  memorySize: number;
  modes?: boolean;
}

/** Runs the C baseline once and returns its medians. */
export function runRawBaseline(opts: RawBaselineOptions): RawBaseline {
  const binary = path.join(packageRoot(), 'bench', 'build', 'raw_kvm');
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`zx scripts/build-baseline.mjs\` first`);
  const args = ['--boot-iterations', opts.bootIterations, '--io-batches', opts.ioBatches, '--io-exits-per-batch', opts.ioExitsPerBatch, '--mem', opts.memorySize];
  if (opts.modes) args.push('--modes');
  return JSON.parse(execFileSync(binary, args.map(String), { encoding: 'utf8' })) as RawBaseline;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const nowNs = (): bigint => process.hrtime.bigint();
export const usSince = (t0: bigint): number => Number(nowNs() - t0) / 1e3;
