/**
 * Invoking images in the guest, against baselines measured in the same run:
 *   modes      raw KVM (bench/baseline/raw_kvm.c --modes): a long-mode vCPU at CPL0 and at CPL3,
 *              ns per guest instruction and per `out` exit round trip (the platform's cost)
 *   invoke     a trivial endpoint (`ecalli 0`) with invokeSync / invoke  vs  one raw CPL3 exit round trip
 *   host call  the extra cost of one host-function round trip (endpoint with one `ecalli 100`)  vs  the same
 *   polling    the trivial invokeSync in polling mode (no VM exit)  vs  the raw handoff of one request
 *              between a host thread and a vCPU spinning at CPL3 (targets: ≤ 1 µs and ≤ 3× the handoff)
 *   loadImage  each example (PUT_CAPS + PREPARE, a fresh sandbox each time)  vs  the 2 ms target
 *   engines    each example's bench case: engine kvm (its default engine, the recompiler) vs the same
 *              C interpreter run natively (guest/build/engine-harness) vs engine local, in PVM
 *              instructions per second (bench/recompiler.ts compares the recompiler with native code)
 * Prints tables; `--json` prints the figures. Needs bench/build/raw_kvm (`zx scripts/build-baseline.mjs`).
 */
import { readFileSync } from 'node:fs';
import { admitImage, ImageBuilder } from '../lib/image/index.js';
import { Vm } from '../lib/native/index.js';
import { Sandbox } from '../lib/sandbox/index.js';
import { A, assemble } from '../test/support/machine-asm.js';
import { exampleImages, exampleInput, harnessBuilt, runEngine } from '../test/support/engine-harness.js';
import { median, nowNs, runRawBaseline, usSince } from './support/baseline.js';

const ROUNDS = 5;
const CALLS = 300;
const TARGETS = { roundTrip: 1.5, engineVsNative: 0.8, engineVsLocal: 5, loadImageMs: 2, pollNs: 1000, pollVsHandoff: 3 };
const MEMORY = 16 << 20;

function trivialImage(): ImageBuilder {
  return new ImageBuilder().setCode(assemble(A.ecalli(0), A.ecalli(100), A.ecalli(0)))
    .addEndpoint(1, { entryPc: 0 }).addEndpoint(2, { entryPc: 4 }).addStack(9, 0x8000_0000, 0x1000);
}

function nsPerCall(run: () => void): number {
  const t0 = nowNs();
  for (let i = 0; i < CALLS; i++) run();
  return Number(nowNs() - t0) / CALLS;
}

async function nsPerAsyncCall(run: () => Promise<unknown>): Promise<number> {
  const t0 = nowNs();
  for (let i = 0; i < CALLS; i++) await run();
  return Number(nowNs() - t0) / CALLS;
}

/** Alternating rounds of the raw baseline and nub, so both see the same machine load. */
async function roundTrips() {
  using sandbox = Sandbox.create({ engine: 'kvm' });
  using polled = Sandbox.create({ engine: 'kvm', polling: true });
  const image = sandbox.loadImage(trivialImage());
  const polledImage = polled.loadImage(trivialImage());
  sandbox.registerHostFunction(100, () => 0n);
  const rounds: {
    cpl3Exit: number; cpl0Exit: number; cpl0Insn: number; cpl3Insn: number; handoff: number; sync: number; async: number; hostCall: number; polled: number;
  }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const modes = runRawBaseline({ bootIterations: 1, ioBatches: 1, ioExitsPerBatch: 100, memorySize: MEMORY, modes: true }).modes!;
    const sync = nsPerCall(() => sandbox.invokeSync(image, 1));
    const withHostCall = nsPerCall(() => sandbox.invokeSync(image, 2));
    const async_ = await nsPerAsyncCall(() => sandbox.invoke(image, 1));
    const polledSync = nsPerCall(() => polled.invokeSync(polledImage, 1));
    rounds.push({
      cpl3Exit: modes.cpl3.nsPerExit, cpl0Exit: modes.cpl0.nsPerExit, cpl0Insn: modes.cpl0.nsPerInsn, cpl3Insn: modes.cpl3.nsPerInsn,
      handoff: modes.handoff.vcpuNs, sync, async: async_, hostCall: withHostCall - sync, polled: polledSync,
    });
  }
  const med = (f: (x: (typeof rounds)[number]) => number) => median(rounds.map(f));
  return {
    raw: {
      cpl0NsPerInsn: med((x) => x.cpl0Insn), cpl3NsPerInsn: med((x) => x.cpl3Insn), cpl0ExitNs: med((x) => x.cpl0Exit), cpl3ExitNs: med((x) => x.cpl3Exit),
      vcpuHandoffNs: med((x) => x.handoff),
    },
    polledInvokeSyncNs: med((x) => x.polled),
    polledRatio: med((x) => x.polled / x.handoff),
    invokeSyncNs: med((x) => x.sync),
    invokeAsyncNs: med((x) => x.async),
    hostCallNs: med((x) => x.hostCall),
    invokeRatio: med((x) => x.sync / x.cpl3Exit),
    hostCallRatio: med((x) => x.hostCall / x.cpl3Exit),
  };
}

/**
 * loadImage of each example in a fresh sandbox, median of a few, in ms: of the bytes (admission
 * included: decoding and hashing the image on the host, bench/image-decode.ts), and of the
 * admitted image (storing its caps in the guest, PUT_CAPS, and PREPARE).
 */
function loadImages() {
  return exampleImages().map(({ path }) => {
    const bytes = new Uint8Array(readFileSync(path));
    const admitted = admitImage(bytes);
    let inGuestNs = 0;
    const time = (image: Uint8Array | typeof admitted): number => median(Array.from({ length: 5 }, () => {
      using sandbox = Sandbox.create({ engine: 'kvm' });
      inGuestNs = 0;
      const t0 = nowNs();
      sandbox.loadImage(image);
      return usSince(t0) / 1e3;
    }));
    const loadImageMs = time(bytes);
    // The guest's part (PUT_CAPS and PREPARE): the time spent inside KVM_RUN during the load.
    const run = Vm.prototype.run;
    Vm.prototype.run = function (this: Vm, timeoutMs?: number) {
      const t0 = nowNs();
      try {
        return run.call(this, timeoutMs);
      } finally {
        inGuestNs += Number(nowNs() - t0);
      }
    };
    const inGuest: number[] = [];
    try {
      const loadAdmittedMs = median(Array.from({ length: 5 }, () => {
        const ms = time(admitted);
        inGuest.push(inGuestNs / 1e6);
        return ms;
      }));
      return { example: name(path), loadImageMs, loadAdmittedMs, inGuestMs: median(inGuest) };
    } finally {
      Vm.prototype.run = run;
    }
  });
}

const name = (path: string): string => path.split('/').at(-1)!.replace(/\.ssz$/, '');

/** Each example's bench case on engine kvm, natively in the harness, and on engine local. */
function engines() {
  using kvm = Sandbox.create({ engine: 'kvm' });
  using local = Sandbox.create({ engine: 'local' });
  return exampleImages({ nativeHarness: true }).filter(({ expected }) => expected.bench).map(({ path, expected }) => {
    const bench = expected.bench!;
    const bytes = new Uint8Array(readFileSync(path));
    const args = bench.args.map((a) => BigInt(a));
    const gas = 10n ** 12n;
    // PVM instructions of the case, as the reference counts them (the recompiler does not count).
    const instructions = local.invokeSync(local.loadImage(bytes), bench.endpoint, { args, gas }).instructions;
    const rate = (s: Sandbox): number => {
      const image = s.loadImage(bytes);
      s.invokeSync(image, bench.endpoint, { args, gas }); // warm up (and translate)
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = nowNs();
        s.invokeSync(image, bench.endpoint, { args, gas });
        times.push(Number(nowNs() - t0));
      }
      return instructions / Math.min(...times) * 1e3;
    };
    const input = exampleInput(admitImage(bytes), bench.endpoint, args, gas);
    const nativeRuns = harnessBuilt() ? [runEngine(input), runEngine(input), runEngine(input)] : [];
    const native = nativeRuns.length ? Math.max(...nativeRuns.map((r) => r.instructions / Number(r.runNs) * 1e3)) : NaN;
    return { example: name(path), kvmMips: rate(kvm), nativeMips: native, localMips: rate(local) };
  });
}

const rt = await roundTrips();
const loads = loadImages();
const eng = process.argv.includes('--no-engines') ? [] : engines();
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ roundTrips: rt, loadImage: loads, engines: eng }, null, 2));
} else {
  const us = (ns: number) => `${(ns / 1000).toFixed(1)} µs`;
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log('raw KVM, long mode (same run)    CPL0            CPL3');
  console.log(`  ns per guest instruction       ${rt.raw.cpl0NsPerInsn.toFixed(1).padEnd(16)}${rt.raw.cpl3NsPerInsn.toFixed(2)}`);
  console.log(`  exit round trip                ${us(rt.raw.cpl0ExitNs).padEnd(16)}${us(rt.raw.cpl3ExitNs)}\n`);
  console.log(`trivial invokeSync               ${us(rt.invokeSyncNs)}   ${rt.invokeRatio.toFixed(2)}× raw CPL3 exit  (target ≤ ${TARGETS.roundTrip}: ${verdict(rt.invokeRatio <= TARGETS.roundTrip)})`);
  console.log(`trivial invoke (async)           ${us(rt.invokeAsyncNs)}`);
  console.log(`one host-function round trip     ${us(rt.hostCallNs)}   ${rt.hostCallRatio.toFixed(2)}× raw CPL3 exit  (target ≤ ${TARGETS.roundTrip}: ${verdict(rt.hostCallRatio <= TARGETS.roundTrip)})`);
  console.log(`trivial invokeSync, polling      ${us(rt.polledInvokeSyncNs)}   ${rt.polledRatio.toFixed(2)}× raw vCPU handoff (${us(rt.raw.vcpuHandoffNs)})`
    + `  (targets ≤ 1 µs: ${verdict(rt.polledInvokeSyncNs <= TARGETS.pollNs)}, ≤ ${TARGETS.pollVsHandoff}×: ${verdict(rt.polledRatio <= TARGETS.pollVsHandoff)})\n`);
  console.log(`example     loadImage ms: of the bytes   of the admitted image   in the guest (PUT_CAPS + PREPARE, target ≤ ${TARGETS.loadImageMs})`);
  for (const l of loads) {
    console.log(`${l.example.padEnd(12)}${l.loadImageMs.toFixed(2).padStart(20)}   ${l.loadAdmittedMs.toFixed(2).padStart(20)}   ${l.inGuestMs.toFixed(2).padStart(12)} ${verdict(l.inGuestMs <= TARGETS.loadImageMs)}`);
  }
  if (eng.length) console.log(`\nexample     kvm M insn/s   native C engine   local   kvm/native (≥ ${TARGETS.engineVsNative})   kvm/local (≥ ${TARGETS.engineVsLocal})`);
  for (const e of eng) {
    const vsNative = e.kvmMips / e.nativeMips, vsLocal = e.kvmMips / e.localMips;
    console.log(`${e.example.padEnd(12)}${e.kvmMips.toFixed(1).padStart(12)}   ${e.nativeMips.toFixed(1).padStart(15)}   ${e.localMips.toFixed(1).padStart(5)}`
      + `   ${vsNative.toFixed(2).padStart(10)} ${verdict(vsNative >= TARGETS.engineVsNative).padEnd(12)}   ${vsLocal.toFixed(1).padStart(6)} ${verdict(vsLocal >= TARGETS.engineVsLocal)}`);
  }
}
