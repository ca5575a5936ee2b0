/**
 * Caps at run time, against host baselines measured in the same run (issue 12's targets):
 *   pass + read   a 4096-page argument cap mapped into the guest and one word of every page
 *                 read there, per page, minus a trivial invoke  vs  a host memcpy of a page
 *   mint          MINT_DATA of 256 pages and the result cap's hash (hashed on the host from
 *                 guest memory), minus a trivial invoke  vs  SSZ-hashing N pages on the host
 *   nested CALL   a loop of CALLs to a trivial endpoint (ecalli 0) of an Instance with no
 *                 memory, and of one with 17 pages (copied per call), per call  vs  a loop
 *                 of jal + jalr (call and return) to a trivial function, in the same engine
 * On engine kvm (the targets are about the guest); `--json` prints the figures.
 */
import { DataCap } from '../lib/caps/index.js';
import { ImageBuilder } from '../lib/image/index.js';
import { DATA_BASE, KernelOp, SlotRef } from '../lib/machine/index.js';
import { Sandbox, type EngineName } from '../lib/sandbox/index.js';
import { A, assemble, X } from '../test/support/machine-asm.js';
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

const NESTED_CALLS = 20_000;
const { s0, ra } = X;
/** A child whose endpoint 1 replies at once; with `pages`, an Instance of it has that much writable memory. */
function trivialChild(pages: number): ImageBuilder {
  const b = new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0 });
  return pages === 0 ? b : b.addInitialData(2, new Uint8Array(8), pages * 4096).addMapping(DATA_BASE, pages * 4096, 2);
}
/** 1 (n): spawns slot 7 into 8 and CALLs its endpoint 1 n times; 2 (n): n times jal to a function that returns. */
function nestedImage(child: Uint8Array): ImageBuilder {
  const code = assemble(
    A.addi(s0, a0, 0), A.addi(a0, zero, 7), A.addi(a1, zero, 8), A.ecalli(KernelOp.DERIVE_SPAWN), // 0
    A.addi(a0, zero, 8), A.addi(a1, zero, 1), A.addi(a2, zero, 0), A.addi(X.a3, zero, 0), A.ecalli(KernelOp.CALL), // 16: loop
    A.addi(s0, s0, -1), A.bne(s0, zero, -24), A.ecalli(0), // 36
    A.addi(s0, a0, 0), A.fallthrough(), // 48
    A.jal(ra, 16), A.addi(s0, s0, -1), A.bne(s0, zero, -8), A.ecalli(0), // 56: loop
    A.jalr(zero, ra, 0), // 72: the function
  );
  return new ImageBuilder().setCode(code).addPinnedImage(7, child).addEndpoint(1, { entryPc: 0 }).addEndpoint(2, { entryPc: 48 });
}

/** Per iteration of endpoint `ep`'s loop, in µs: the time of NESTED_CALLS iterations minus that of one. */
function perIteration(sandbox: Sandbox, image: ReturnType<Sandbox['loadImage']>, ep: number): number {
  const time = (n: number) => median(Array.from({ length: 5 }, () => ms(() => {
    const r = sandbox.invokeSync(image, ep, { args: [BigInt(n)], gas: 10n ** 12n });
    if (r.exit !== 0 || (ep === 1 && r.regs[7] !== 0n)) throw new Error(`the nested bench failed: exit ${r.exit}, status ${r.regs[7]}`);
  })));
  return ((time(NESTED_CALLS) - time(1)) / (NESTED_CALLS - 1)) * 1e3;
}

function measureNested(engine: EngineName, kvmEngine?: 'interpreter') {
  using sandbox = Sandbox.create({ engine, memorySize: 128 << 20, ...(kvmEngine ? { kvmEngine } : {}) });
  const [empty, stacked] = [0, 17].map((pages) => sandbox.loadImage(nestedImage(sandbox.loadImage(trivialChild(pages)).contentHash)));
  return { callUs: perIteration(sandbox, empty!, 1), call17Us: perIteration(sandbox, stacked!, 1), jalUs: perIteration(sandbox, empty!, 2) };
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
const nested = [
  { engine: 'kvm', ...measureNested('kvm') },
  { engine: 'kvm-interp', ...measureNested('kvm', 'interpreter') },
  { engine: 'local', ...measureNested('local') },
];
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ readPages: READ_PAGES, mintPages: PAGES, memcpyPageUs: memcpyUs, hashMs, rows, nested }));
} else {
  console.log(`pass+read: ${READ_PAGES}-page caps; mint: ${PAGES} pages; host memcpy of a page ${memcpyUs.toFixed(3)} µs; host SSZ hash of ${PAGES} pages ${hashMs.toFixed(2)} ms`);
  console.log('engine   trivial invoke   pass+read per page (map + touch; ratio to memcpy, target ≤ 2)   mint+hash (ratio to hash, target ≤ 2)');
  for (const r of rows) {
    console.log(`${r.engine.padEnd(8)} ${r.trivialMs.toFixed(3).padStart(8)} ms   ${r.readPerPageUs.toFixed(3).padStart(8)} µs (${r.mapPerPageUs.toFixed(3)} + ${r.touchPerPageUs.toFixed(3)}; ${(r.readPerPageUs / memcpyUs).toFixed(2)}×)`
      + `          ${r.mintMs.toFixed(2).padStart(8)} ms (${(r.mintMs / hashMs).toFixed(2)}×)`);
  }
  console.log(`nested CALL (${NESTED_CALLS} per invoke)   per CALL: no memory / 17 pages   per jal+return   ratio (target ≤ 20)`);
  for (const n of nested) {
    console.log(`${n.engine.padEnd(10)} ${n.callUs.toFixed(3).padStart(22)} µs / ${n.call17Us.toFixed(3)} µs ${n.jalUs.toFixed(4).padStart(14)} µs   ${(n.callUs / n.jalUs).toFixed(1)}× / ${(n.call17Us / n.jalUs).toFixed(1)}×`);
  }
}
