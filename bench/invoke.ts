/**
 * Invoking images in the guest, against raw KVM (bench/baseline/raw_kvm.c) in the same run:
 *   invoke     a trivial endpoint (`ecalli 0`) with invokeSync / invoke  vs  one raw port-I/O exit round trip
 *   host call  the extra cost of one host-function round trip (endpoint with one `ecalli 100`)  vs  the same
 *   engines    each example's cases on engine kvm vs engine local (instructions per second)
 * Prints a table; `--json` prints the figures. Needs bench/build/raw_kvm (`zx scripts/build-baseline.mjs`).
 */
import { readFileSync } from 'node:fs';
import { ImageBuilder } from '../lib/image/index.js';
import { Sandbox } from '../lib/sandbox/index.js';
import { A, assemble } from '../test/unit/machine-asm.js';
import { exampleImages } from '../test/unit/engine-harness.js';
import { median, nowNs, runRawBaseline } from './support/baseline.js';

const ROUNDS = 5;
const CALLS = 300;
const TARGET = 1.5;

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

async function roundTrips() {
  using sandbox = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20 });
  const image = sandbox.loadImage(trivialImage());
  sandbox.registerHostFunction(100, () => 0n);
  const rounds: { raw: number; sync: number; async: number; hostCall: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const raw = runRawBaseline({ bootIterations: 1, ioBatches: 3, ioExitsPerBatch: 2000, memorySize: 16 << 20 }).io.nsPerExit;
    const sync = nsPerCall(() => sandbox.invokeSync(image, 1));
    const withHostCall = nsPerCall(() => sandbox.invokeSync(image, 2));
    const async_ = await nsPerAsyncCall(() => sandbox.invoke(image, 1));
    rounds.push({ raw, sync, async: async_, hostCall: withHostCall - sync });
  }
  const med = (f: (x: (typeof rounds)[number]) => number) => median(rounds.map(f));
  return {
    rawExitNs: med((x) => x.raw),
    invokeSyncNs: med((x) => x.sync),
    invokeAsyncNs: med((x) => x.async),
    hostCallNs: med((x) => x.hostCall),
    invokeRatio: med((x) => x.sync / x.raw),
    hostCallRatio: med((x) => x.hostCall / x.raw),
  };
}

/** Each example's expected cases on both engines: instructions per second of the whole invoke. */
function engines() {
  using kvm = Sandbox.create({ engine: 'kvm' });
  using local = Sandbox.create({ engine: 'local' });
  return exampleImages().map(({ path, expected }) => {
    const bytes = new Uint8Array(readFileSync(path));
    const images = [kvm.loadImage(bytes), local.loadImage(bytes)] as const;
    let instructions = 0;
    const ns = [0, 0];
    for (const c of expected.cases) {
      const args = c.args.map((a) => BigInt(a));
      [kvm, local].forEach((s, i) => {
        const t0 = nowNs();
        const r = s.invokeSync(images[i]!, c.endpoint, { args, gas: 10n ** 12n });
        ns[i]! += Number(nowNs() - t0);
        if (i === 1) instructions += r.instructions;
      });
    }
    return { example: path.split('/').pop()!, instructions, kvmMips: instructions / ns[0]! * 1e3, localMips: instructions / ns[1]! * 1e3 };
  });
}

const rt = await roundTrips();
const eng = process.argv.includes('--no-engines') ? [] : engines();
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ roundTrips: rt, engines: eng }, null, 2));
} else {
  const us = (ns: number) => `${(ns / 1000).toFixed(1)} µs`;
  const verdict = (ratio: number) => (ratio <= TARGET ? 'ok' : 'MISSED');
  console.log(`raw KVM exit round trip          ${us(rt.rawExitNs)}`);
  console.log(`trivial invokeSync               ${us(rt.invokeSyncNs)}   ratio ${rt.invokeRatio.toFixed(2)}  (target ≤ ${TARGET}: ${verdict(rt.invokeRatio)})`);
  console.log(`trivial invoke (async)           ${us(rt.invokeAsyncNs)}`);
  console.log(`one host-function round trip     ${us(rt.hostCallNs)}   ratio ${rt.hostCallRatio.toFixed(2)}  (target ≤ ${TARGET}: ${verdict(rt.hostCallRatio)})`);
  if (eng.length) console.log('\nexample     instructions   kvm M insn/s   local M insn/s   kvm/local');
  for (const e of eng) {
    console.log(`${e.example.padEnd(12)}${String(e.instructions).padStart(12)}   ${e.kvmMips.toFixed(2).padStart(12)}   ${e.localMips.toFixed(2).padStart(14)}   ${(e.kvmMips / e.localMips).toFixed(3).padStart(9)}`);
  }
}
