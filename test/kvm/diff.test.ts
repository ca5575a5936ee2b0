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
import { readFileSync } from 'node:fs';
import { toHex } from '../../lib/caps/index.js';
import { DATA_BASE, Exit } from '../../lib/machine/abi.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { dataCapOf, invokeLocal, KernelOp, KernelStatus } from '../../lib/machine/index.js';
import { Sandbox, type HostFunction, type InvokeOptions, type LoadedImage, type SandboxResult } from '../../lib/sandbox/index.js';
import { exampleImages } from '../unit/engine-harness.js';
import { A, assemble, C, X, type Encoded } from '../unit/machine-asm.js';
import { SeededRandom } from '../unit/seeded-random.js';
import { describeKvm } from './kvm-available.js';

/** Example cases the reference runs in more instructions than this are left to the bench. */
const MAX_EXAMPLE_INSTRUCTIONS = 100_000;
const RO_PAGE = DATA_BASE;
const dataArg = (bytes: Uint8Array) => { const data = dataCapOf(bytes); return { kind: 'Data' as const, data, hash: data.hash() }; };
const RW_PAGE = DATA_BASE + 0x1000; // adjacent to the read-only page: straddling accesses mix permissions
const TOP_PAGE = 2 ** 32 - 0x2000; // accesses may wrap past 2^32

type Observed = Omit<SandboxResult, 'instructions' | 'gasUsed' | 'caps'> & { caps: { slot: number; kind: string; hash: string }[] };

function observe(r: SandboxResult): Observed {
  const caps = r.caps.map((c) => ({ slot: c.slot, kind: c.kind, hash: toHex(c.hash) }));
  return { exit: r.exit, exitArg: r.exitArg, regs: r.regs, pc: r.pc, gasLeft: r.gasLeft, memory: r.memory, caps };
}

/** A host function both engines run: it reads and writes memory, so both views are exercised. */
const mixer: HostFunction = (regs, memory) => {
  const at = RW_PAGE + (Number(regs[8]! & 0xff8n));
  const old = memory.read(at, 8);
  memory.write(at, Uint8Array.of(Number(regs[7]! & 0xffn), 0x5a));
  return BigInt.asUintN(64, (regs[7]! ^ regs[9]!) + BigInt(old?.[0] ?? 0xff));
};

/** The reference (first) and the guest's two engines. */
class Pair {
  readonly sandboxes = [
    Sandbox.create({ engine: 'local' }),
    Sandbox.create({ engine: 'kvm', memorySize: 64 << 20 }), // the recompiler, by default
    Sandbox.create({ engine: 'kvm', kvmEngine: 'interpreter', memorySize: 64 << 20 }),
  ];
  constructor() {
    for (const s of this.sandboxes) s.registerHostFunction(100, mixer);
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
/** φ index of s0 (x8): φ2..φ12 are x5..x15. */
const PHI_S0 = 5;
const REGS = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const EDGES = [0n, 1n, -1n, 7n, 63n, 64n, 0x7fff_ffffn, -0x8000_0000n, 1n << 63n, (1n << 63n) - 1n];
/** Every register-register instruction of the assembler (they all take rd, rs1, rs2). */
const R_OPS = ['add', 'sub', 'sll', 'slt', 'sltu', 'xor', 'srl', 'sra', 'or', 'and', 'addw', 'subw', 'sllw', 'srlw', 'sraw',
  'mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu', 'mulw', 'divw', 'divuw', 'remw', 'remuw',
  'add.uw', 'sh1add', 'sh2add', 'sh3add', 'sh1add.uw', 'sh2add.uw', 'sh3add.uw'] as const;

function randomInstruction(r: SeededRandom): Encoded {
  const reg = () => r.pick(REGS);
  const anyReg = () => r.below(32); // illegal registers too
  const imm12 = () => r.below(4096) - 2048;
  const offset = () => (r.below(64) - 24) * 2;
  switch (r.below(14)) {
    case 0: return (A[r.pick(R_OPS)] as (d: number, a: number, b: number) => Encoded)(reg(), reg(), reg());
    case 1: return A.addi(reg(), reg(), imm12());
    case 2: return r.pick([A.slli, A.srli, A.srai])(reg(), reg(), r.below(64));
    case 3: return A.lui(reg(), r.below(1 << 20));
    case 4: return r.pick([A.lb, A.lh, A.lw, A.ld, A.lbu, A.lhu, A.lwu])(reg(), r.pick([s0, a1, a2]), r.below(64) - 8);
    case 5: return r.pick([A.sb, A.sh, A.sw, A.sd])(reg(), r.pick([s0, a1, a2]), r.below(64) - 8);
    case 6: return r.pick([A.beq, A.bne, A.blt, A.bge, A.bltu, A.bgeu])(reg(), reg(), offset());
    case 7: return A.jal(r.pick([0, 1]), offset());
    case 8: return A.jalr(r.pick([0, 1]), reg(), imm12());
    case 9: return A.ecalli(r.pick([0, 1, 63, 64, 100, 100, 2047, -1]));
    case 10: return r.pick([A.trap(), A.ecallJar(), A.fallthrough()]);
    case 11: return A.add(anyReg(), anyReg(), anyReg());
    case 12: return { bits: r.u32(), length: 4 };
    default: return r.bool() ? C.addi(reg(), r.below(32)) : { bits: r.u32() & 0xffff, length: 2 };
  }
}

const ARG_PAGE = DATA_BASE + 0x8000; // argument cap 0, read-only
const KERNEL_OPS = [KernelOp.COPY, KernelOp.MOVE, KernelOp.DROP, KernelOp.DATA_SIZE, KernelOp.READ_DATA, KernelOp.MINT_DATA];

/** `rd = v` for v below 2^31: lui + addi. */
function li(rd: number, v: number): Encoded[] {
  const lo = ((v & 0xfff) << 20) >> 20;
  return [A.lui(rd, ((v - lo) >>> 12) & 0xfffff), A.addi(rd, rd, lo)];
}

/** A kernel operation on plausible operands: slot references of every kind, addresses in and around the mappings, lengths up to two pages. */
function randomKernelOp(r: SeededRandom): Encoded[] {
  const ref = () => r.pick([0, 7, 8, 9, 10, 11, 0x100, 0x101, 0x102, 0x1ff, 0x200]);
  const addr = () => r.pick([RO_PAGE, RO_PAGE + 0xff8, RW_PAGE, RW_PAGE + 0x1ff0, ARG_PAGE, ARG_PAGE + 0x800, 0x3f_f000, 0x10]);
  const len = () => r.pick([0, 1, 8, 64, 65, 0xfff, 0x1000, 0x1001, 0x2000]);
  const op = r.pick(KERNEL_OPS);
  const [a0, a1, a2, a3] = op === KernelOp.READ_DATA ? [ref(), r.pick([0, 8, 0x800, 0xfff]), addr(), len()]
    : op === KernelOp.MINT_DATA ? [ref(), addr(), len(), 0] : [ref(), ref(), 0, 0];
  return [...li(X.a0, a0), ...li(X.a1, a1), ...li(X.a2, a2), ...li(X.a3, a3), A.ecalli(op)];
}

function randomImage(seed: number): { image: ImageBuilder; gas: bigint; args: bigint[]; caps: Uint8Array[] } {
  const r = new SeededRandom(seed);
  const withCaps = seed % 2 === 0; // every other program works on caps
  const body = Array.from({ length: withCaps ? 2 + r.below(8) : 4 + r.below(40) }, () => (withCaps && r.below(4) !== 0 ? randomKernelOp(r) : [randomInstruction(r)])).flat();
  const image = new ImageBuilder()
    .setCode(assemble(...body, A.ecalli(0)))
    .addEndpoint(1, {
      argCnodeSize: 3,
      entryPc: r.below(8) === 0 ? 2 * r.below(8) : 0, // now and then an entry that is not a block start
      initialRegs: { 1: 0x8000_0000, [PHI_S0]: r.pick([RO_PAGE + 0xff8, RW_PAGE + 0xffc, TOP_PAGE + 0x1ffc, 0x10]) },
    })
    .addPinnedData(7, r.bytes(64)).addMapping(RO_PAGE, 0x1000, 7)
    .addInitialData(8, r.bytes(r.below(0x1800)), 0x2000).addMapping(RW_PAGE, 0x2000, 8)
    .addStack(9, 0x8000_0000, 0x2000);
  if (r.bool()) image.addInitialData(10, r.bytes(16), 0x2000).addMapping(TOP_PAGE, 0x2000, 10);
  const caps = withCaps ? Array.from({ length: 1 + r.below(3) }, () => r.bytes(r.below(0x1800))) : [];
  if (withCaps) image.addMapping(ARG_PAGE, 0x1000, [0, 0]);
  const arg = () => r.bool() ? BigInt.asUintN(64, r.pick(EDGES)) : BigInt(r.pick([RO_PAGE, RW_PAGE + 0x800, TOP_PAGE + 0xff8, 3]));
  return { image, gas: BigInt(r.pick([50, 400, 5_000, 100_000])), args: [arg(), arg(), arg(), arg()], caps };
}

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
      const { image, gas, args, caps } = randomImage(seed);
      const images = pair.load(image);
      const r = pair.agree(images, 1, { args, gas, caps }, `seed ${seed}`);
      exits.add(r.exit);
      if (caps.length > 0) statuses.add(r.regs[7]!);
      returnedCaps += r.caps.length;
    }
    // The programs on caps do reach kernel operations: their statuses show up in φ7, and caps come back.
    assert.ok([...statuses].filter((v) => v <= BigInt(KernelStatus.BAD_MEMORY)).length >= 4, `kernel statuses seen: ${[...statuses]}`);
    assert.ok(returnedCaps > 20, `only ${returnedCaps} result caps`);
    for (const exit of [Exit.HALT, Exit.PANIC, Exit.OUT_OF_GAS, Exit.PAGE_FAULT, Exit.HOST_CALL, Exit.ECALL, Exit.TRAP]) {
      assert.ok(exits.has(exit), `no random program ended with exit ${exit}: ${[...exits]}`);
    }
  });
});
