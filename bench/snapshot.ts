/**
 * Snapshots against booting and against raw KVM (bench/baseline/raw_kvm.c), in one run:
 *   ready     a sandbox ready for its first call, incl. that call (a PING): fresh boot plus
 *             loading an image, from a snapshot into a new VM, from a snapshot into a reused
 *             VM (VmCache) — vs the raw C create VM + memory + vCPU, run to HLT
 *   restore   restore time against pages dirtied since the snapshot (least-squares line),
 *             per page against a plain memcpy of the same pages
 * Prints a table; `--json` prints the figures. Needs bench/build/raw_kvm and the guest kernel.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadKernelImage, prepareBoot } from '../lib/guest/boot.js';
import { DEFAULT_MEMORY_SIZE } from '../lib/guest/guest-vm.js';
import { GuestMemory } from '../lib/guest/guest-memory.js';
import { Mailbox } from '../lib/guest/mailbox.js';
import { packageRoot } from '../lib/native/binding.js';
import { Vm } from '../lib/native/index.js';
import { Sandbox, type SandboxSnapshot } from '../lib/sandbox/index.js';
import { Snapshot } from '../lib/snapshot/snapshot.js';
import { VmCache } from '../lib/snapshot/vm-cache.js';
import { median, nowNs, runRawBaseline, usSince } from './support/baseline.js';

const ROUNDS = 5;
const READY_ITERATIONS = 40;
const LOAD_ITERATIONS = 3;
const RESTORE_ITERATIONS = 60;
const DIRTY_PAGES = [0, 1, 4, 16, 64, 256, 1024];
const PAGE = 4096;
// Dirty pages from 8 MiB up: the guest's heap, away from the kernel and the mailbox.
const DIRTY_FROM = 8 << 20;

const FIB = new Uint8Array(readFileSync(path.join(packageRoot(), 'examples', 'fib', 'fib.ssz')));

/** A booted guest kernel (the restore bench works on the VM directly). */
function boot(): Vm {
  const vm = Vm.create({ memorySize: DEFAULT_MEMORY_SIZE });
  prepareBoot(vm, loadKernelImage());
  new Mailbox(vm, new GuestMemory(vm.memory)).awaitBoot();
  return vm;
}

async function timeReady(make: () => Sandbox, iterations = READY_ITERATIONS): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = nowNs();
    const sandbox = make();
    sandbox.guest!.ping();
    times.push(usSince(t0));
    sandbox.close();
    if (i % 8 === 7) await new Promise(setImmediate); // closed VMs' memory is unmapped by finalizers
  }
  return median(times);
}

async function benchReady(snapshot: SandboxSnapshot): Promise<Record<string, number>> {
  const freshBootUs = await timeReady(() => Sandbox.create({ engine: 'kvm', memorySize: DEFAULT_MEMORY_SIZE }));
  const freshBootAndLoadUs = await timeReady(() => {
    const sandbox = Sandbox.create({ engine: 'kvm', memorySize: DEFAULT_MEMORY_SIZE });
    sandbox.loadImage(FIB); // the setup the snapshot has already done (the guest prepares the image's code)
    return sandbox;
  }, LOAD_ITERATIONS);
  const snapshotNewVmUs = await timeReady(() => Sandbox.fromSnapshot(snapshot));
  using vmCache = new VmCache(1);
  const snapshotReusedVmUs = await timeReady(() => Sandbox.fromSnapshot(snapshot, { vmCache }));
  return { freshBootUs, freshBootAndLoadUs, snapshotNewVmUs, snapshotReusedVmUs };
}

/** Median restore time (µs) after dirtying `pages` pages, and median memcpy time of as many pages. */
function benchRestore(snapshot: Snapshot, vm: Vm, pages: number): { restoreUs: number; memcpyUs: number } {
  const memory = new Uint8Array(vm.memory);
  const src = new Uint8Array(Math.max(pages, 1) * PAGE).fill(1);
  const dst = new Uint8Array(src.length);
  const restores: number[] = [];
  const copies: number[] = [];
  for (let i = 0; i < RESTORE_ITERATIONS; i++) {
    for (let p = 0; p < pages; p++) memory[DIRTY_FROM + p * PAGE] = i + 1;
    let t0 = nowNs();
    snapshot.restore(vm);
    restores.push(usSince(t0));
    t0 = nowNs();
    dst.set(src.subarray(0, pages * PAGE));
    copies.push(usSince(t0));
  }
  return { restoreUs: median(restores), memcpyUs: median(copies) };
}

/** Least-squares line through (x, y). */
function fit(points: [number, number][]): { intercept: number; slope: number; r2: number } {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0, sxx = 0, syy = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
    syy += (y - my) ** 2;
  }
  const slope = sxy / sxx;
  return { intercept: my - slope * mx, slope, r2: syy === 0 ? 1 : (sxy * sxy) / (sxx * syy) };
}

const template = Sandbox.create({ engine: 'kvm', memorySize: DEFAULT_MEMORY_SIZE });
template.loadImage(FIB);
const sandboxSnapshot = template.snapshot();
template.close();
const rounds: { rawUs: number; ready: Record<string, number> }[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const raw = runRawBaseline({ bootIterations: READY_ITERATIONS, ioBatches: 1, ioExitsPerBatch: 1000, memorySize: DEFAULT_MEMORY_SIZE });
  rounds.push({ rawUs: raw.boot.createToHltUs, ready: await benchReady(sandboxSnapshot) });
}
sandboxSnapshot.close();
const readyNames = Object.keys(rounds[0]!.ready);
const ready = Object.fromEntries(
  readyNames.map((name) => [
    name,
    { us: median(rounds.map((r) => r.ready[name]!)), ratioToRaw: median(rounds.map((r) => r.ready[name]! / r.rawUs)) },
  ]),
);
const rawCreateToHltUs = median(rounds.map((r) => r.rawUs));

const origin = boot();
const snapshot = Snapshot.take(origin);
const restoreVm = snapshot.createVm();
benchRestore(snapshot, restoreVm, 16); // warm up
const restore = DIRTY_PAGES.map((pages) => ({ pages, ...benchRestore(snapshot, restoreVm, pages) }));
const line = fit(restore.map((r) => [r.pages, r.restoreUs]));
const memcpyPerPageUs = fit(restore.map((r) => [r.pages, r.memcpyUs])).slope;
restoreVm.close();
snapshot.close();
origin.close();

const figures = {
  memorySize: DEFAULT_MEMORY_SIZE,
  rounds: ROUNDS,
  ready: { rawCreateToHltUs, ...ready },
  restore: {
    points: restore,
    fixedUs: line.intercept,
    perPageUs: line.slope,
    r2: line.r2,
    memcpyPerPageUs,
    perPageRatioToMemcpy: line.slope / memcpyPerPageUs,
    target: 2,
  },
};

if (process.argv.includes('--json')) {
  console.log(JSON.stringify(figures, null, 2));
} else {
  console.log(`snapshots, ${DEFAULT_MEMORY_SIZE >> 20} MiB guests (medians; ratios are medians of ${ROUNDS} alternating rounds)`);
  console.log(`sandbox ready for a first call, incl. a PING (raw C create VM + run to HLT: ${rawCreateToHltUs.toFixed(0)} µs)`);
  for (const name of readyNames) {
    console.log(`  ${name.padEnd(20)} ${ready[name]!.us.toFixed(0).padStart(6)} µs  ${ready[name]!.ratioToRaw.toFixed(2).padStart(6)}× raw`);
  }
  console.log('restore after dirtying N pages');
  for (const r of restore) console.log(`  ${String(r.pages).padStart(5)} pages ${r.restoreUs.toFixed(1).padStart(8)} µs   memcpy ${r.memcpyUs.toFixed(1).padStart(7)} µs`);
  console.log(
    `  line: ${line.intercept.toFixed(1)} µs + ${(line.slope * 1e3).toFixed(0)} ns/page (r² ${line.r2.toFixed(3)}); memcpy ${(memcpyPerPageUs * 1e3).toFixed(0)} ns/page; ` +
      `per-page ratio ${(line.slope / memcpyPerPageUs).toFixed(2)} (target ≤ 2) ${line.slope / memcpyPerPageUs <= 2 ? 'ok' : 'MISSED'}`,
  );
}
