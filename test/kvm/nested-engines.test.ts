/**
 * Nested calls on every engine at once (local, kvm interpreter, kvm recompiler): cases a
 * review found the engines disagreeing on, each asserting all three give the same
 * observables. What they cover: REFUSED's gas; a child's argument mapping across INVOKEs
 * (its page-table leaf and the remap check must not live in the scratch heap the next
 * INVOKE's mints reuse); caps handed back through nested frames (root-slot Image caps
 * included); a child first translated during a CALL; a gas sweep across spawn, CALL and child.
 */
import assert from 'node:assert/strict';
import { ImageBuilder } from '../../lib/image/index.js';
import { KernelOp, SlotRef } from '../../lib/machine/kernel-ops.js';
import { Sandbox, type EngineName } from '../../lib/sandbox/index.js';
import { childImage } from '../support/random-program.js';
import { A, assemble, X } from '../support/machine-asm.js';
import { parentImage } from '../unit/instance-ops-suite.js';
import { describeKvm } from './kvm-available.js';

const ARG0 = SlotRef.ARG_BASE;
type Eng = { engine: EngineName; kvmEngine?: 'recompiler' | 'interpreter' };
const ENGINES: Eng[] = [{ engine: 'local' }, { engine: 'kvm', kvmEngine: 'interpreter' }, { engine: 'kvm', kvmEngine: 'recompiler' }];
const name = (e: Eng) => e.kvmEngine ?? e.engine;

/** Runs `observe` on every engine and asserts each gives what engine local gives. */
function alike(observe: (e: Eng) => unknown[]): void {
  const [local, ...others] = ENGINES.map(observe);
  others.forEach((seen, i) => assert.deepEqual(seen, local, `${name(ENGINES[i + 1]!)} vs local`));
}

describeKvm('nested calls on every engine', function () {
  this.timeout(120_000);

  it('REFUSED charges the same gas on every engine (docs: only the fixed part)', () => {
    alike((e) => {
      using sb = Sandbox.create({ ...e, memorySize: 64 << 20 });
      const child = sb.loadImage(childImage());
      const parent = sb.loadImage(parentImage(child));
      const r = sb.invokeSync(parent, 26, { gas: 10_000_000n, args: [8n, 1n, BigInt(ARG0), 0n], caps: [Uint8Array.of(1)] });
      const nope = sb.invokeSync(parent, 26, { gas: 10_000_000n, args: [8n, 99n, 0n, 0n] }); // NO_ENDPOINT: fixed part only
      return [r.regs[7], r.gasUsed, nope.gasUsed];
    });
  });

  /** C: endpoint 1 shows argument cap 0 at 0x4000_0000 (2 pages, alone in its 4 MiB) and replies the u64 at `read`. */
  const childC = (read: number) => new ImageBuilder()
    .setCode(assemble(A.lui(X.t1, read >>> 12), A.ld(X.a0, X.t1, 0), A.ecalli(0)))
    .addEndpoint(1, { entryPc: 0, argCnodeSize: 1 })
    .addMapping(0x4000_0000, 0x2000, [0, 0]);
  /** P: endpoint 1 (L) mints L bytes of its pinned data (0x2a then zeros) into slot 9, spawns C into 8, CALLs it with slot 9. */
  const parentP = (c: Uint8Array, data = (() => { const d = new Uint8Array(0x8000); d[0] = 0x2a; return d; })()) => new ImageBuilder()
    .setCode(assemble(
      A.addi(X.s0, X.a0, 0), A.lui(X.t1, 0x50000), A.addi(X.a0, X.zero, 9), A.addi(X.a1, X.t1, 0), A.addi(X.a2, X.s0, 0), A.ecalli(KernelOp.MINT_DATA),
      A.addi(X.a0, X.zero, 7), A.addi(X.a1, X.zero, 8), A.ecalli(KernelOp.DERIVE_SPAWN),
      A.addi(X.a0, X.zero, 8), A.addi(X.a1, X.zero, 1), A.addi(X.a2, X.zero, 9), A.addi(X.a3, X.zero, 0), A.ecalli(KernelOp.CALL),
      A.ecalli(0),
    ))
    .addEndpoint(1, { entryPc: 0, argCnodeSize: 1 })
    .addPinnedImage(7, c)
    .addPinnedData(5, data, 0x8000).addMapping(0x5000_0000, 0x8000, 5);

  it('the zero page first allocated by a CALL lives in scratch: a later host invoke of another image sees minted bytes in its zero tail', () => {
    alike((e) => {
      using sb = Sandbox.create({ ...e, memorySize: 64 << 20 });
      const c = sb.loadImage(childC(0x4000_1000));
      const p = sb.loadImage(parentP(c.contentHash, new Uint8Array(0x8000).fill(0x11)));
      const img = sb.loadImage(new ImageBuilder()
        .setCode(assemble(
          A.lui(X.t1, 0x50000), A.addi(X.a0, X.zero, 9), A.addi(X.a1, X.t1, 0), A.lui(X.a2, 0x10), A.ecalli(KernelOp.MINT_DATA),
          A.lui(X.t1, 0x40001), A.ld(X.a0, X.t1, 0), A.ecalli(0),
        ))
        .addEndpoint(1, { entryPc: 0, argCnodeSize: 1 })
        .addMapping(0x4000_0000, 0x2000, [0, 0])
        .addPinnedData(3, Uint8Array.of(7)).addMapping(0x6000_0000, 0x1000, 3)
        .addPinnedData(6, new Uint8Array(0x10000).fill(0xff)).addMapping(0x5000_0000, 0x10000, 6));
      const r1 = sb.invokeSync(p, 1, { gas: 10_000_000n, args: [0x1000n] });
      const r2 = sb.invokeSync(img, 1, { gas: 10_000_000n, caps: [Uint8Array.of(7)] });
      return [`${r1.exit}/${r1.regs[7]}/${r1.regs[8]}`, `${r2.exit}/${r2.regs[7].toString(16)}`];
    });
  });

  for (const [label, read, lengths] of [
    ['a shorter minted cap at the same scratch address: page 1 must read 0', 0x4000_1000, [0x2000n, 0x1000n]],
    ['a larger mint over the page-table leaf map_arg allocated in scratch', 0x4000_0000, [0x2000n, 0x8000n]],
  ] as const) {
    it(`arg mapping of a CALL's child across INVOKEs: ${label}`, () => {
      alike((e) => {
        using sb = Sandbox.create({ ...e, memorySize: 64 << 20 });
        sb.loadImage(childImage()); // so C's image id is not 0
        const c = sb.loadImage(childC(read));
        const p = sb.loadImage(parentP(c.contentHash));
        return [...lengths.map((l) => { const r = sb.invokeSync(p, 1, { gas: 10_000_000n, args: [l] }); return `${r.exit}/${r.regs[7]}/${r.regs[8]}/${r.gasUsed}`; })];
      });
    });
  }
});

describeKvm('caps through nested frames, on every engine', function () {
  this.timeout(120_000);
  const K = KernelOp;
  const li = (r: number, v: number) => A.addi(r, X.zero, v);
  const call = (slot: number, ep: number, cap: number, k: number) => [li(X.a0, slot), li(X.a1, ep), li(X.a2, cap), li(X.a3, k), li(X.a4, 0), li(X.a5, 0), A.ecalli(K.CALL)];
  const op2 = (n: number, a: number, b: number) => [li(X.a0, a), li(X.a1, b), A.ecalli(n)];
  const HALT = A.ecalli(0);
  const build = (endpoints: Record<number, ReturnType<typeof A.ecalli>[]>, b: ImageBuilder) => {
    let pc = 0;
    for (const [k, code] of Object.entries(endpoints)) { b.addEndpoint(Number(k), { entryPc: pc, argCnodeSize: 1 }); pc += 4 * code.length; }
    return b.setCode(assemble(...Object.values(endpoints).flat()));
  };
  const setup = (e: Eng) => {
    const sb = Sandbox.create({ ...e, memorySize: 64 << 20 });
    const child = sb.loadImage(childImage());
    const mid = sb.loadImage(build({
      1: [...op2(K.COPY, 9, ARG0), HALT],
      2: [...op2(K.COPY, 5, ARG0), HALT],
      3: [...op2(K.DERIVE_SPAWN, 7, ARG0), ...call(ARG0, 1, 0, 5), HALT],
      4: [...call(ARG0, 1, 0, 7), HALT],
      5: [...op2(K.COPY, 7, ARG0), HALT],
    }, new ImageBuilder().addPinnedImage(7, child.contentHash).addPinnedImage(9, new Uint8Array(32).fill(0xab)).addPinnedData(5, Uint8Array.of(1), 0x8000)));
    const top = sb.loadImage(build({
      1: [...op2(K.DERIVE_SPAWN, 7, 8), ...call(8, 1, ARG0, 0), HALT],
      2: [...op2(K.DERIVE_SPAWN, 7, 8), ...call(8, 2, ARG0, 0), HALT],
      3: [...op2(K.DERIVE_SPAWN, 7, 8), ...call(8, 3, ARG0, 0), HALT],
      5: [...op2(K.DERIVE_SPAWN, 7, 8), ...call(8, 5, ARG0, 0), HALT],
      10: [...op2(K.DERIVE_SPAWN, 6, 8), ...op2(K.COPY, 8, ARG0), ...call(8, 3, ARG0, 0), ...call(8, 1, 0, 3), HALT],
      11: [...op2(K.DERIVE_SPAWN, 6, 8), ...op2(K.DERIVE_SPAWN, 7, 9), ...op2(K.COPY, 8, ARG0), ...call(9, 4, ARG0, 0), ...call(8, 1, 0, 1), HALT],
    }, new ImageBuilder().addPinnedImage(7, mid.contentHash).addPinnedImage(6, child.contentHash)));
    return { sb, top };
  };
  for (const ep of [1, 2, 3, 5, 10, 11]) {
    it(`top endpoint ${ep}: the same observables on every engine`, () => {
      alike((e) => {
        const { sb, top } = setup(e);
        try {
          const r = sb.invokeSync(top, ep, { gas: 10_000_000n });
          const caps = r.caps.map((c) => [c.slot, c.kind, Buffer.from(c.hash).toString('hex').slice(0, 16)]);
          const inst = r.caps.find((c) => c.kind === 'Instance');
          const again = inst ? sb.invokeSync(inst.hash, 1, { gas: 100_000n, args: [1n] }).regs[7] : undefined;
          return [r.exit, r.regs[7], r.regs[8], r.gasUsed, JSON.stringify(caps), again];
        } catch (err) {
          return [String(err)];
        } finally { sb.close(); }
      });
    });
  }
});

describeKvm('a child first run by a CALL, on every engine', function () {
  this.timeout(120_000);
  it('the child is first translated during a CALL; the next invoke mints over the scratch the translation bookkeeping used', () => {
    alike((e) => {
      using sb = Sandbox.create({ ...e, memorySize: 64 << 20 });
      const c = sb.loadImage(childImage());
      const p = sb.loadImage(new ImageBuilder()
        .setCode(assemble(
          A.addi(X.s0, X.a0, 0), A.lui(X.t1, 0x50000), A.addi(X.a0, X.zero, 9), A.addi(X.a1, X.t1, 0), A.addi(X.a2, X.s0, 0), A.ecalli(KernelOp.MINT_DATA),
          A.addi(X.a0, X.zero, 7), A.addi(X.a1, X.zero, 8), A.ecalli(KernelOp.DERIVE_SPAWN),
          A.addi(X.a0, X.zero, 8), A.addi(X.a1, X.zero, 1), A.addi(X.a2, X.zero, 0), A.addi(X.a3, X.zero, 1), A.ecalli(KernelOp.CALL),
          A.ecalli(0),
        ))
        .addEndpoint(1, { entryPc: 0, argCnodeSize: 1 })
        .addPinnedImage(7, c.contentHash)
        .addPinnedData(5, new Uint8Array(0x10000).fill(0xff)).addMapping(0x5000_0000, 0x10000, 5));
      return [...[0x1000n, 0x10000n, 0x10000n].map((l) => {
        try { const r = sb.invokeSync(p, 1, { gas: 10_000_000n, args: [l] }); return `${r.exit}/${r.regs[7]}/${r.regs[8]}/${r.gasUsed}`; } catch (err) { return String(err).slice(0, 200); }
      })];
    });
  });
});

describeKvm('gas edges of CALL, on every engine', function () {
  this.timeout(120_000);
  it('a gas sweep across the spawn, the CALL and the child: every engine alike', () => {
    alike((e) => {
      using sb = Sandbox.create({ ...e, memorySize: 64 << 20 });
      const child = sb.loadImage(childImage());
      const parent = sb.loadImage(parentImage(child));
      const full = sb.invokeSync(parent, 26, { gas: 10_000_000n, args: [8n, 1n, 0n, 4n] }).gasUsed;
      const out: string[] = [];
      for (let g = full; g >= full - 400n && g > 0n; g--) {
        const r = sb.invokeSync(parent, 26, { gas: g, args: [8n, 1n, 0n, 4n] });
        out.push(`${g}:${r.exit}/${r.regs[7]}/${r.regs[8]}/${r.gasLeft}/${r.pc}`);
      }
      return [full, out.join(' ')];
    });
  });
});
