/**
 * DERIVE_SPAWN and CALL (docs/machine.md "Nested calls") through the Sandbox API, the
 * same expectations on every engine (test/unit/instance-ops.test.ts runs them on
 * engine local, test/kvm/instance-ops.test.ts on kvm, which also checks the hashes
 * against engine local's). Every status in order, the exact gas, state persistence.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { toHex } from '../../lib/caps/index.js';
import { isNubError } from '../../lib/errors.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { DATA_BASE, Exit, Gas } from '../../lib/machine/abi.js';
import { CallLimit, KernelGas, KernelOp, KernelStatus as S, SlotRef } from '../../lib/machine/kernel-ops.js';
import { Sandbox, type EngineName, type LoadedImage, type SandboxResult } from '../../lib/sandbox/index.js';
import { CHILD_ADD_GAS, CHILD_PAGES, childImage } from '../support/random-program.js';
import { A, assemble, X } from '../support/machine-asm.js';

const PINNED = 5, CHILD_IMAGE = 7, CHILD = 8, MISSING_IMAGE = 9, FREE = 10;
const ARG = (i: number) => SlotRef.ARG_BASE + i;

/**
 * The parent: 18 runs DERIVE_SPAWN with the invoke's φ7, φ8; 26 spawns slot 7 into 8,
 * then runs CALL with the invoke's φ7..φ10 (slot, endpoint, cap slot, argument);
 * 27 (k) spawns, calls endpoint 1 with k twice and returns the Instance as cap 0.
 */
export function parentImage(child: LoadedImage): ImageBuilder {
  const spawnChild = [A.addi(X.a0, X.zero, CHILD_IMAGE), A.addi(X.a1, X.zero, CHILD), A.ecalli(KernelOp.DERIVE_SPAWN)];
  const callChild = [A.addi(X.a0, X.zero, CHILD), A.addi(X.a1, X.zero, 1), A.addi(X.a2, X.zero, 0), A.addi(X.a3, X.s0, 0), A.ecalli(KernelOp.CALL)];
  const endpoints = {
    18: [A.ecalli(KernelOp.DERIVE_SPAWN), A.ecalli(0)],
    26: [
      A.addi(X.t0, X.a0, 0), A.addi(X.t1, X.a1, 0), A.addi(X.t2, X.a2, 0), A.addi(X.s0, X.a3, 0), ...spawnChild,
      A.addi(X.a0, X.t0, 0), A.addi(X.a1, X.t1, 0), A.addi(X.a2, X.t2, 0), A.addi(X.a3, X.s0, 0), A.addi(X.a4, X.zero, 0), A.addi(X.a5, X.zero, 0),
      A.ecalli(KernelOp.CALL), A.ecalli(0),
    ],
    27: [
      A.addi(X.s0, X.a0, 0), ...spawnChild, ...callChild, ...callChild,
      A.addi(X.s1, X.a1, 0), A.addi(X.a0, X.zero, CHILD), A.addi(X.a1, X.zero, ARG(0)), A.ecalli(KernelOp.MOVE), A.addi(X.a0, X.s1, 0), A.ecalli(0),
    ],
  };
  const builder = new ImageBuilder()
    .addPinnedData(PINNED, Uint8Array.of(1)).addMapping(DATA_BASE, 0x1000, PINNED)
    .addPinnedImage(CHILD_IMAGE, child.contentHash)
    .addPinnedImage(MISSING_IMAGE, new Uint8Array(32).fill(0xcd));
  let entryPc = 0;
  for (const [key, code] of Object.entries(endpoints)) {
    builder.addEndpoint(Number(key), { entryPc, argCnodeSize: 1 });
    entryPc += 4 * code.length; // every instruction here is 4 bytes; each endpoint ends with an ecalli (a terminator)
  }
  return builder.setCode(assemble(...Object.values(endpoints).flat()));
}

export function instanceOpsSuite(engine: EngineName): void {
  let sandbox: Sandbox;
  let child: LoadedImage, parent: LoadedImage;
  before(() => {
    sandbox = Sandbox.create({ engine, memorySize: 64 << 20 });
    child = sandbox.loadImage(childImage());
    parent = sandbox.loadImage(parentImage(child));
  });
  after(() => sandbox.close());

  const b = BigInt;
  const run = (endpoint: number, args: bigint[]): SandboxResult => sandbox.invokeSync(parent, endpoint, { gas: 10_000_000n, args });
  /** CALL's run on the parent's endpoint 26 (after its spawn). */
  const call = (slot: number, endpoint: number, cap: number, arg = 0n) => {
    const r = run(26, [b(slot), b(endpoint), b(cap), arg]);
    assert.equal(r.exit, Exit.HALT, `call ${slot},${endpoint},${cap}: exit ${r.exit}`);
    return r;
  };
  const spawnGas = KernelGas.SPAWN_FIXED + CHILD_PAGES * KernelGas.COPY_PER_PAGE;

  it('DERIVE_SPAWN: every status in order, the exact gas', () => {
    const base = 2 * Gas.CALL;
    for (const [src, dst, status, gas] of [
      [0, FREE, S.BAD_SLOT, KernelGas.SPAWN_FIXED], [CHILD_IMAGE, ARG(1), S.BAD_SLOT, KernelGas.SPAWN_FIXED], [FREE, CHILD, S.EMPTY, KernelGas.SPAWN_FIXED],
      [PINNED, CHILD, S.WRONG_KIND, KernelGas.SPAWN_FIXED], [CHILD_IMAGE, PINNED, S.PINNED, KernelGas.SPAWN_FIXED],
      [CHILD_IMAGE, CHILD_IMAGE, S.PINNED, KernelGas.SPAWN_FIXED], [MISSING_IMAGE, CHILD, S.NOT_LOADED, KernelGas.SPAWN_FIXED],
      [CHILD_IMAGE, CHILD, S.OK, spawnGas], [CHILD_IMAGE, ARG(0), S.OK, spawnGas],
    ] as const) {
      const r = run(18, [b(src), b(dst)]);
      assert.equal(r.regs[7], b(status), `spawn ${src} -> ${dst}`);
      assert.equal(r.gasUsed, b(base + gas), `spawn ${src} -> ${dst}: gas`);
    }
    const made = run(18, [b(CHILD_IMAGE), b(ARG(0))]);
    assert.deepEqual(made.caps.map((c) => [c.slot, c.kind]), [[0, 'Instance']]);
    assert.equal(toHex(made.caps[0]!.hash), toHex(sandbox.spawn(child)), 'the same Instance sandbox.spawn makes');
  });

  it('CALL: every status in order; HALT replies the child\'s φ7 in φ8, other exits are CHILD_EXIT with the exit', () => {
    const failed = call(CHILD, 99, 0).gasUsed; // NO_ENDPOINT: the fixed part only
    for (const [slot, ep, cap, status] of [
      [0, 1, 0, S.BAD_SLOT], [CHILD, 1, ARG(1), S.BAD_SLOT], [CHILD, 1, CHILD, S.BAD_SLOT], [FREE, 1, 0, S.EMPTY],
      [PINNED, 1, 0, S.WRONG_KIND], [CHILD_IMAGE, 1, 0, S.WRONG_KIND], [CHILD, 1, PINNED, S.PINNED],
      [CHILD, 256, 0, S.NO_ENDPOINT], [CHILD, 1, CHILD_IMAGE, S.PINNED], [CHILD, 1, ARG(0), S.OK], // an empty cap slot passes nothing
    ] as const) {
      const r = call(slot, ep, cap, 4n);
      assert.equal(r.regs[7], b(status), `call ${slot},${ep},${cap}`);
      if (status !== S.OK) assert.equal(r.gasUsed, failed, `call ${slot},${ep},${cap}: the fixed part only`);
    }
    const ok = call(CHILD, 1, 0, 40n);
    assert.deepEqual([ok.regs[7], ok.regs[8]], [b(S.OK), 40n]);
    assert.equal(ok.gasUsed - failed, b(CHILD_PAGES * KernelGas.COPY_PER_PAGE + CHILD_ADD_GAS), 'the copy and the child\'s own gas');
    const trapped = call(CHILD, 2, 0);
    assert.deepEqual([trapped.regs[7], trapped.regs[8]], [b(S.CHILD_EXIT), b(Exit.TRAP)]);
    // Endpoint 1 takes no argument cap: passing one is REFUSED before anything is charged beyond the fixed part.
    const withCap = sandbox.invokeSync(parent, 26, { gas: 10_000_000n, args: [b(CHILD), 1n, b(ARG(0)), 0n], caps: [Uint8Array.of(1)] });
    assert.equal(withCap.regs[7], b(S.REFUSED));
    assert.equal(withCap.gasUsed, failed, 'REFUSED: the fixed part only, not the copy');
    // Endpoint 3 takes one: it comes back in the cap slot.
    const echo = sandbox.invokeSync(parent, 26, { gas: 10_000_000n, args: [b(CHILD), 3n, b(ARG(0)), 0n], caps: [Uint8Array.of(7)] });
    assert.equal(echo.regs[7], b(S.OK));
    assert.deepEqual(echo.caps.map((c) => [c.slot, c.kind, c.bytes()[0]]), [[0, 'Data', 7]]);
  });

  it('CALL whose fixed part does not fit stops OUT_OF_GAS at its ecalli, having done nothing', () => {
    const full = call(CHILD, 99, 0).gasUsed;
    // Enough for everything before the CALL's own part, one short of that.
    const short = sandbox.invokeSync(parent, 26, { gas: full - b(Gas.CALL) - 1n, args: [b(CHILD), 99n, 0n, 0n] });
    assert.equal(short.exit, Exit.OUT_OF_GAS);
    assert.equal(short.gasLeft, b(KernelGas.CALL_FIXED - 1), 'the ecalli\'s block was charged, the operation not');
    assert.equal(short.regs[7], b(CHILD), 'φ7 untouched');
  });

  it('an Instance keeps its memory across CALLs, and the host can invoke the one a run returns', () => {
    const r = run(27, [5n]);
    assert.deepEqual([r.exit, r.regs[7]], [Exit.HALT, 10n]);
    const instance = r.caps[0]!;
    assert.equal(instance.kind, 'Instance');
    const next = sandbox.invokeSync(instance.hash, 1, { args: [1n], gas: 1_000_000n });
    assert.deepEqual([next.exit, next.regs[7]], [Exit.HALT, 11n]);
    assert.notEqual(toHex(next.instance!), toHex(instance.hash), 'a call that HALTs makes a new Instance');
    assert.equal(sandbox.instance(instance.hash).regs[7], 10n, 'the Instance records the registers its last run ended with');
  });

  it(`nests at most ${CallLimit.MAX_DEPTH} frames below the host's invoke: the next CALL is DEPTH, a status`, () => {
    const dir = new URL('../../../examples/', import.meta.url);
    using nested = Sandbox.create({ engine, memorySize: 64 << 20 });
    nested.loadImage(new Uint8Array(readFileSync(new URL('counter/counter.ssz', dir))));
    const image = nested.loadImage(new Uint8Array(readFileSync(new URL('parent/parent.ssz', dir))));
    const r = nested.invokeSync(image, 2, { args: [0n], caps: [{ hash: image.imageHash }], gas: 100_000_000n });
    assert.deepEqual([r.exit, r.regs[7]], [Exit.HALT, b(CallLimit.MAX_DEPTH)]);
    // The example's own cases: the last total of n calls adding k to a fresh counter is n·k.
    const expected = JSON.parse(readFileSync(new URL('parent/expected.json', dir), 'utf8')) as { cases: { endpoint: number; args: number[]; result: string }[] };
    for (const c of expected.cases) {
      assert.equal(c.result, String(c.args[0]! * c.args[1]!), `expected.json ${c.args}`);
      assert.equal(nested.invokeSync(image, c.endpoint, { args: c.args.map(b), gas: 10_000_000n }).regs[7], BigInt(c.result), `parent ${c.args}`);
    }
    // A long loop of calls on one Instance runs in bounded guest memory.
    const loop = nested.invokeSync(image, 1, { args: [5000n, 1n], gas: 1_000_000_000n });
    assert.deepEqual([loop.exit, loop.regs[7]], [Exit.HALT, 5000n]);
  });

  it('unloadImage refuses an image another loaded image can spawn (ImageInUse)', () => {
    assert.throws(() => sandbox.unloadImage(child), (e) => isNubError(e, 'ImageInUse'));
  });
}
