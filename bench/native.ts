/**
 * The addon against raw KVM (bench/baseline/raw_kvm.c), measured side by side in one run:
 *   boot  create VM + memory + vCPU, set registers, run a real-mode guest to HLT
 *   io    round trip of one port-I/O exit (run + decodeExit), sync and async
 * Prints a table of ratios (nub / raw); `--json` prints the figures instead.
 * Needs bench/build/raw_kvm: `zx scripts/build-baseline.mjs`.
 */
import { median, nowNs, runRawBaseline, type RawBaseline } from './support/baseline.js';
import { decodeExit, Vm } from '../lib/native/index.js';

const MEMORY_SIZE = 16 << 20;
const CODE_AT = 0x1000;
const BOOT_ITERATIONS = 200;
const IO_BATCHES = 21;
const IO_EXITS_PER_BATCH = 20_000;
const ASYNC_EXITS_PER_BATCH = 2_000;

const HLT = [0xf4]; //                           hlt
const OUT_LOOP = [0xe6, 0x10, 0xeb, 0xfc]; // 1: out 0x10, al; jmp 1b





/** The same VM as raw_kvm.c's vm_create: real mode, CS base 0, RIP at the code. */
function createVm(code: number[]): Vm {
  const vm = Vm.create({ memorySize: MEMORY_SIZE });
  new Uint8Array(vm.memory).set(code, CODE_AT);
  const sregs = vm.getSregs();
  sregs.cs = { ...sregs.cs, base: 0n, selector: 0 };
  vm.setSregs(sregs);
  vm.setRegs({ ...vm.getRegs(), rip: BigInt(CODE_AT), rflags: 2n });
  return vm;
}

async function benchBoot(): Promise<{ createToHltUs: number; teardownUs: number }> {
  const toHlt: number[] = [];
  const teardown: number[] = [];
  for (let i = 0; i < BOOT_ITERATIONS; i++) {
    const t0 = nowNs();
    const vm = createVm(HLT);
    if (decodeExit(vm, vm.run()).kind !== 'hlt') throw new Error('boot guest did not halt');
    const t1 = nowNs();
    vm.close();
    // The kvm_run and memory mappings (and with them the kernel's VM) go when the
    // ArrayBuffers' finalizers run, on the next turn of the event loop: count that too.
    await new Promise(setImmediate);
    teardown.push(Number(nowNs() - t1) / 1e3);
    toHlt.push(Number(t1 - t0) / 1e3);
  }
  return { createToHltUs: median(toHlt), teardownUs: median(teardown) };
}

function expectOut(vm: Vm, reason: number): void {
  const exit = decodeExit(vm, reason);
  if (exit.kind !== 'io' || exit.port !== 0x10) throw new Error(`io guest exited with ${JSON.stringify(exit)}`);
}

function benchIoSync(): number {
  const vm = createVm(OUT_LOOP);
  try {
    for (let i = 0; i < 1000; i++) expectOut(vm, vm.run());
    const perExit: number[] = [];
    for (let b = 0; b < IO_BATCHES; b++) {
      const t0 = nowNs();
      for (let i = 0; i < IO_EXITS_PER_BATCH; i++) expectOut(vm, vm.run());
      perExit.push(Number(nowNs() - t0) / IO_EXITS_PER_BATCH);
    }
    return median(perExit);
  } finally {
    vm.close();
  }
}

async function benchIoAsync(): Promise<number> {
  const vm = createVm(OUT_LOOP);
  try {
    for (let i = 0; i < 200; i++) expectOut(vm, await vm.runAsync());
    const perExit: number[] = [];
    for (let b = 0; b < IO_BATCHES; b++) {
      const t0 = nowNs();
      for (let i = 0; i < ASYNC_EXITS_PER_BATCH; i++) expectOut(vm, await vm.runAsync());
      perExit.push(Number(nowNs() - t0) / ASYNC_EXITS_PER_BATCH);
    }
    return median(perExit);
  } finally {
    vm.close();
  }
}

export interface NativeBenchResult {
  baseline: RawBaseline;
  nub: { boot: { createToHltUs: number; teardownUs: number }; io: { syncNsPerExit: number; asyncNsPerExit: number } };
}

export async function benchNative(): Promise<NativeBenchResult> {
  const baseline = runRawBaseline({ bootIterations: BOOT_ITERATIONS, ioBatches: IO_BATCHES, ioExitsPerBatch: IO_EXITS_PER_BATCH, memorySize: MEMORY_SIZE });
  const boot = await benchBoot();
  const syncNsPerExit = benchIoSync();
  const asyncNsPerExit = await benchIoAsync();
  return { baseline, nub: { boot, io: { syncNsPerExit, asyncNsPerExit } } };
}

function printTable({ baseline, nub }: NativeBenchResult): void {
  const rows: [string, number, number, string][] = [
    ['create VM → first HLT (µs)', baseline.boot.createToHltUs, nub.boot.createToHltUs, 'µs'],
    ['teardown (µs)', baseline.boot.teardownUs, nub.boot.teardownUs, 'µs'],
    ['io exit round trip, run() (ns)', baseline.io.nsPerExit, nub.io.syncNsPerExit, 'ns'],
    ['io exit round trip, runAsync() (ns)', baseline.io.nsPerExit, nub.io.asyncNsPerExit, 'ns'],
  ];
  console.log(`memory ${MEMORY_SIZE >> 20} MiB; medians; ratio = nub / raw KVM (same run)\n`);
  console.log(`${'measure'.padEnd(38)}${'raw KVM'.padStart(12)}${'nub'.padStart(12)}${'ratio'.padStart(9)}`);
  for (const [name, raw, ours] of rows) {
    console.log(`${name.padEnd(38)}${raw.toFixed(1).padStart(12)}${ours.toFixed(1).padStart(12)}${(ours / raw).toFixed(2).padStart(8)}×`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchNative();
  if (process.argv.includes('--json')) console.log(JSON.stringify(result, null, 2));
  else printTable(result);
}
