/**
 * Caps at run time, against host baselines measured in the same run (issue 12's targets):
 *   pass + read   a 4096-page argument cap mapped into the guest and one word of every page
 *                 read there, per page, minus a trivial invoke  vs  a host memcpy of a page
 *   mint          MINT_DATA of 256 pages and the result cap's hash (hashed on the host from
 *                 guest memory), minus a trivial invoke  vs  SSZ-hashing N pages on the host
 *   nested CALL   not measured: CALL (kernel operation 26) is not implemented
 * On engine kvm (the targets are about the guest); `--json` prints the figures.
 */
import { DataCap } from '../lib/caps/index.js';
import { ImageBuilder } from '../lib/image/index.js';
import { DATA_BASE, KernelOp, SlotRef } from '../lib/machine/index.js';
import { Sandbox, type EngineName } from '../lib/sandbox/index.js';
import { A, assemble, X } from '../test/unit/machine-asm.js';
import { median, nowNs } from './support/baseline.js';

/** Pages of the argument caps that are passed and read, and of the minted cap. */
const READ_PAGES = 4096;
const PAGES = 256;
const BYTES = PAGES * 4096;
const ROUNDS = 15;
const CALLS = 60;
const { a0, a1, a2, t0, zero } = X;
const MINT_FROM = DATA_BASE + READ_PAGES * 4096;

/** 1: a2 = sum of the first word of each of a1 pages from a0 (the argument mapping); 2: mint a1 bytes at a0 into argument slot 1; 3: nothing. */
function benchImage(): ImageBuilder {
  const code = assemble(
    A.ld(t0, a0, 0), A.add(a2, a2, t0), A.lui(t0, 1), A.add(a0, a0, t0), A.addi(a1, a1, -1), A.bne(a1, zero, -20), A.add(a0, a2, zero), A.ecalli(0), // 0
    A.add(a2, a1, zero), A.add(a1, a0, zero), A.addi(a0, zero, SlotRef.ARG_BASE + 1), A.ecalli(KernelOp.MINT_DATA), A.ecalli(0), // 32
    A.ecalli(0), // 52
  );
  return new ImageBuilder().setCode(code)
    .addEndpoint(1, { entryPc: 0, argCnodeSize: 2 }).addEndpoint(2, { entryPc: 32, argCnodeSize: 2 }).addEndpoint(3, { entryPc: 52, argCnodeSize: 2 })
    .addMapping(DATA_BASE, READ_PAGES * 4096, [0, 0])
    .addInitialData(8, Uint8Array.from({ length: BYTES }, (_, i) => (i * 13) & 0xff)).addMapping(MINT_FROM, BYTES, 8);
}

const ms = (run: () => void) => { const t = nowNs(); run(); return Number(nowNs() - t) / 1e6; };

function measure(engine: EngineName) {
  using sandbox = Sandbox.create({ engine, memorySize: 128 << 20 });
  const image = sandbox.loadImage(benchImage());
  // Two caps used in turn, so every call maps a different one (a repeat of the same cap is not remapped).
  const caps = [1, 2].map((k) => DataCap.fromBytes(new Uint8Array(READ_PAGES * 4096).fill(k)));
  sandbox.putCaps(caps.map((value) => ({ kind: 'Data' as const, value })));
  const arg = (i: number) => [{ hash: caps[i % 2]!.hash() }];
  // Interleaved, many calls each: the differences are small beside an invoke's own cost.
  // `same` reads every page of the cap mapped last time (no remapping); `alternate` maps the other cap first.
  const total = { trivial: 0, same: 0, alternate: 0 };
  const readAll = (cap: number) => sandbox.invokeSync(image, 1, { args: [BigInt(DATA_BASE), BigInt(READ_PAGES)], caps: arg(cap) });
  for (let i = 0; i < CALLS; i++) {
    total.alternate += ms(() => readAll(i));
    total.same += ms(() => readAll(i));
    total.trivial += ms(() => sandbox.invokeSync(image, 3, { caps: arg(i) }));
  }
  const trivial = total.trivial / CALLS, same = total.same / CALLS, alternate = total.alternate / CALLS;
  const mint = median(Array.from({ length: ROUNDS }, () => ms(() => {
    const r = sandbox.invokeSync(image, 2, { args: [BigInt(MINT_FROM), BigInt(BYTES)], caps: arg(0) });
    if (r.regs[7] !== 0n || r.caps.find((c) => c.slot === 1)?.hash.length !== 32) throw new Error(`the mint failed: status ${r.regs[7]}`);
  })));
  const perPage = (a: number, b: number) => ((a - b) / READ_PAGES) * 1e3;
  return { trivialMs: trivial, readPerPageUs: perPage(alternate, trivial), mapPerPageUs: perPage(alternate, same), touchPerPageUs: perPage(same, trivial), mintMs: mint - trivial };
}

const page = new Uint8Array(4096).fill(1);
const target = new Uint8Array(4096 * 1024);
const memcpyUs = median(Array.from({ length: ROUNDS }, () => {
  const t = nowNs();
  for (let i = 0; i < 1024; i++) target.set(page, i * 4096);
  return Number(nowNs() - t) / 1e3 / 1024;
}));
const hashMs = median(Array.from({ length: ROUNDS }, (_, k) => {
  const cap = DataCap.fromBytes(Uint8Array.from({ length: BYTES }, (_, i) => (i * 13 + k) & 0xff));
  return ms(() => cap.hash());
}));

const rows = (['kvm'] as const).map((engine) => ({ engine, ...measure(engine) }));
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ readPages: READ_PAGES, mintPages: PAGES, memcpyPageUs: memcpyUs, hashMs, rows }));
} else {
  console.log(`pass+read: ${READ_PAGES}-page caps; mint: ${PAGES} pages; host memcpy of a page ${memcpyUs.toFixed(3)} µs; host SSZ hash of ${PAGES} pages ${hashMs.toFixed(2)} ms`);
  console.log('engine   trivial invoke   pass+read per page (map + touch; ratio to memcpy, target ≤ 2)   mint+hash (ratio to hash, target ≤ 2)');
  for (const r of rows) {
    console.log(`${r.engine.padEnd(8)} ${r.trivialMs.toFixed(3).padStart(8)} ms   ${r.readPerPageUs.toFixed(3).padStart(8)} µs (${r.mapPerPageUs.toFixed(3)} + ${r.touchPerPageUs.toFixed(3)}; ${(r.readPerPageUs / memcpyUs).toFixed(2)}×)`
      + `          ${r.mintMs.toFixed(2).padStart(8)} ms (${(r.mintMs / hashMs).toFixed(2)}×)`);
  }
  console.log('nested CALL vs jal: not measured (CALL is not implemented)');
}
