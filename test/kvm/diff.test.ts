/**
 * Engine kvm (the PVM2 engine inside the guest, both its recompiler and its
 * interpreter) against engine local (the reference interpreter), through the same
 * Sandbox API: every observable must be equal — exit,
 * exit argument, registers, pc, gas left and the bytes of every writable mapping.
 * Inputs: every example case (except those too long for a test run on this slow
 * nested-virtualisation machine), conformance-style programs running every
 * register-register instruction over edge values, and seeded random programs (half of
 * them issuing kernel operations on argument, pinned and initial caps; the result caps
 * must have equal hashes).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Exit } from '../../lib/machine/abi.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { invokeLocal, KernelStatus } from '../../lib/machine/index.js';
import { Sandbox, type InvokeOptions, type LoadedImage } from '../../lib/sandbox/index.js';
import { exampleImages } from '../support/engine-harness.js';
import { A, assemble, X, type Encoded } from '../support/machine-asm.js';
import { childImage, dataArg, EDGES, mixer, observe, PHI_S0, R_OPS, randomImage, RW_PAGE, type Observed } from '../support/random-program.js';
import { describeKvm } from './kvm-available.js';

/** Inputs the fuzzers found; this file runs from <out dir>/test/kvm/. */
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

/** Example cases the reference runs in more instructions than this are left to the bench. */
const MAX_EXAMPLE_INSTRUCTIONS = 100_000;
/** The reference (first) and the guest's two engines. */
class Pair {
  readonly sandboxes = [
    Sandbox.create({ engine: 'local' }),
    Sandbox.create({ engine: 'kvm', memorySize: 64 << 20 }), // the recompiler, by default
    Sandbox.create({ engine: 'kvm', kvmEngine: 'interpreter', memorySize: 64 << 20 }),
  ];
  /** The child image random programs spawn and call, loaded first in every sandbox. */
  readonly child: Uint8Array;
  constructor() {
    for (const s of this.sandboxes) s.registerHostFunction(100, mixer);
    this.child = this.load(childImage())[0]!.contentHash;
  }
  load(image: ImageBuilder | Uint8Array): LoadedImage[] {
    return this.sandboxes.map((s) => s.loadImage(image));
  }
  /** Runs every engine and asserts they agree; returns the reference's result. */
  agree(images: LoadedImage[], endpoint: number, opts: InvokeOptions, what: string): Observed {
    const results = this.sandboxes.map((s, i) => s.invokeSync(images[i]!, endpoint, opts));
    const [local, ...guest] = results.map(observe);
    guest.forEach((r, i) => assert.deepEqual(r, local, `${what}: kvm ${i === 0 ? 'recompiler' : 'interpreter'} disagrees with local`));
    // Generated code counts no instructions: a count means the guest fell back to its interpreter.
    assert.equal(results[1]!.instructions, 0, `${what}: not recompiled`);
    return local!;
  }
  close(): void {
    for (const s of this.sandboxes) s.close();
  }
}

const { a1, a2, s0, t0 } = X;

describeKvm('engine kvm vs engine local', function () {
  this.timeout(600_000);
  let pair: Pair;
  before(() => { pair = new Pair(); });
  after(() => pair.close());

  it('agree on every example case', () => {
    let compared = 0;
    for (const { path, expected } of exampleImages()) {
      const images = pair.load(new Uint8Array(readFileSync(path)));
      for (const c of expected.cases) {
        const args = c.args.map((a) => BigInt(a));
        const gas = 10n ** 10n;
        const caps = c.input === undefined ? [] : [new TextEncoder().encode(c.input)];
        const ref = invokeLocal(images[0]!.admitted.imageCap, images[0]!.admitted, c.endpoint, { args, gas, caps: caps.map(dataArg) });
        if (ref.instructions > MAX_EXAMPLE_INSTRUCTIONS) continue;
        const r = pair.agree(images, c.endpoint, { args, gas, caps }, `${path} ${c.endpoint}(${c.args})`);
        if (c.result !== undefined) assert.equal(r.regs[7], BigInt(c.result));
        compared++;
      }
    }
    assert.ok(compared >= 20, `only ${compared} example cases were short enough to compare`);
  });

  it('agree on every example Instance sequence: the same Instance hashes, call after call', () => {
    let calls = 0;
    for (const { path, expected } of exampleImages()) {
      if (expected.instance === undefined) continue;
      const images = pair.load(new Uint8Array(readFileSync(path)));
      let instances = pair.sandboxes.map((s, i) => s.spawn(images[i]!));
      instances.forEach((h) => assert.deepEqual(h, instances[0], `${path}: spawn`));
      for (const c of expected.instance) {
        const opts = { args: c.args.map((a) => BigInt(a)), gas: 10n ** 9n };
        const results = pair.sandboxes.map((s, i) => s.invokeSync(instances[i]!, c.endpoint, opts));
        results.forEach((r) => {
          assert.deepEqual(observe(r), observe(results[0]!), `${path} ${c.endpoint}(${c.args})`);
          assert.deepEqual(r.instance, results[0]!.instance);
        });
        assert.equal(results[0]!.regs[7], BigInt(c.result!));
        instances = results.map((r) => r.instance!);
        calls++;
      }
    }
    assert.ok(calls >= 8, `only ${calls} Instance calls`);
  });

  it('agree on every register-register instruction over edge values (conformance style)', () => {
    // One image runs them all: op t0, a1, a2; sd t0, 8k(s0).
    const body = R_OPS.flatMap((op, k) => [(A[op] as (d: number, a: number, b: number) => Encoded)(t0, a1, a2), A.sd(t0, s0, 8 * k)]);
    const image = new ImageBuilder().setCode(assemble(...body, A.ecalli(0)))
      .addEndpoint(1, { entryPc: 0, initialRegs: { [PHI_S0]: RW_PAGE } })
      .addInitialData(8, new Uint8Array(0), 0x1000).addMapping(RW_PAGE, 0x1000, 8);
    const images = pair.load(image);
    for (const x of EDGES) {
      for (const y of EDGES) {
        const r = pair.agree(images, 1, { args: [0n, BigInt.asUintN(64, x), BigInt.asUintN(64, y)], gas: 10_000n }, `x=${x} y=${y}`);
        assert.equal(r.exit, Exit.HALT);
      }
    }
  });

  it('runs an image too large for the code arena on the interpreter, with the same result', () => {
    // 6000 instructions need more than the 1 MiB arena: pvm_compile refuses before any work.
    const image = new ImageBuilder()
      .setCode(assemble(...Array.from({ length: 6000 }, () => A.addi(X.a0, X.a0, 1)), A.ecalli(0)))
      .addEndpoint(1, { entryPc: 0 })
      .addStack(9, 0x8000_0000, 0x1000);
    using fresh = Sandbox.create({ engine: 'kvm', memorySize: 64 << 20 });
    const r = fresh.invokeSync(fresh.loadImage(image), 1, { args: [5n], gas: 10_000n });
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.exitArg, 6005n);
    assert.equal(r.instructions, 6001, 'interpreted (the recompiler counts no instructions)');
  });

  it('agree on images the fuzzers found (test/fixtures): every endpoint, no guest fault', () => {
    // recompiler-gp-fault.ssz: a mutated image whose endpoint 2 starts with sp = 0x2000080000000; the first recompiler faulted on it (#GP in ring 3).
    for (const name of readdirSync(FIXTURES).filter((f) => f.endsWith('.ssz'))) {
      const images = pair.load(new Uint8Array(readFileSync(join(FIXTURES, name))));
      for (const e of images[0]!.admitted.imageCap.endpoints) pair.agree(images, e.key[0]!, { gas: 100_000n }, `${name} endpoint [${e.key}]`);
    }
  });

  it('agree on seeded random programs, ending every way a run can end', () => {
    const exits = new Set<number>();
    const statuses = new Set<bigint>();
    let returnedCaps = 0;
    for (let seed = 1; seed <= 1500; seed++) {
      // Fresh guests now and then: each image keeps its translation in the guest's 1 MiB code arena.
      if (seed % 250 === 0) {
        pair.close();
        pair = new Pair();
      }
      const { image, gas, args, caps } = randomImage(seed, pair.child);
      const images = pair.load(image);
      const r = pair.agree(images, 1, { args, gas, caps }, `seed ${seed}`);
      exits.add(r.exit);
      if (caps.length > 0) statuses.add(r.regs[7]!);
      returnedCaps += r.caps.length;
    }
    // The programs on caps do reach kernel operations: their statuses show up in φ7, and caps come back.
    assert.ok([...statuses].filter((v) => v <= BigInt(KernelStatus.BAD_MEMORY)).length >= 4, `kernel statuses seen: ${[...statuses]}`);
    assert.ok([KernelStatus.NOT_LOADED, KernelStatus.NO_ENDPOINT, KernelStatus.CHILD_EXIT].every((s) => statuses.has(BigInt(s))), `nested-call statuses seen: ${[...statuses]}`);
    assert.ok(returnedCaps > 20, `only ${returnedCaps} result caps`);
    for (const exit of [Exit.HALT, Exit.PANIC, Exit.OUT_OF_GAS, Exit.PAGE_FAULT, Exit.HOST_CALL, Exit.ECALL, Exit.TRAP]) {
      assert.ok(exits.has(exit), `no random program ended with exit ${exit}: ${[...exits]}`);
    }
  });
});
