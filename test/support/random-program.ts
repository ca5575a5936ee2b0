/**
 * Seeded random PVM2 programs (half of them issuing kernel operations on caps) and the
 * observation engines must agree on: shared by the kvm diff test and the program fuzzer
 * (test/fuzz/programs.ts).
 */
import { toHex } from '../../lib/caps/index.js';
import { DATA_BASE, Gas, PHI_X_REGISTERS, xToPhi } from '../../lib/machine/abi.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { dataCapOf, KernelOp } from '../../lib/machine/index.js';
import type { HostFunction, SandboxResult } from '../../lib/sandbox/index.js';
import { A, assemble, C, X, type Encoded } from './machine-asm.js';
import { SeededRandom } from '../unit/seeded-random.js';

export const RO_PAGE = DATA_BASE;
export const dataArg = (bytes: Uint8Array) => { const data = dataCapOf(bytes); return { kind: 'Data' as const, data, hash: data.hash() }; };
export const RW_PAGE = DATA_BASE + 0x1000; // adjacent to the read-only page: straddling accesses mix permissions
export const TOP_PAGE = 2 ** 32 - 0x2000; // accesses may wrap past 2^32

export type Observed = Omit<SandboxResult, 'instructions' | 'gasUsed' | 'caps'> & { caps: { slot: number; kind: string; hash: string }[] };

export function observe(r: SandboxResult): Observed {
  const caps = r.caps.map((c) => ({ slot: c.slot, kind: c.kind, hash: toHex(c.hash) }));
  return { exit: r.exit, exitArg: r.exitArg, regs: r.regs, pc: r.pc, gasLeft: r.gasLeft, memory: r.memory, caps };
}

/** A host function both engines run: it reads and writes memory, so both views are exercised. */
export const mixer: HostFunction = (regs, memory) => {
  const at = RW_PAGE + (Number(regs[8]! & 0xff8n));
  const old = memory.read(at, 8);
  memory.write(at, Uint8Array.of(Number(regs[7]! & 0xffn), 0x5a));
  return BigInt.asUintN(64, (regs[7]! ^ regs[9]!) + BigInt(old?.[0] ?? 0xff));
};

const { a1, a2, s0 } = X;
/** φ index of s0 (x8). */
export const PHI_S0 = xToPhi(8);
/** x0 and every φ register's x-number. */
export const REGS = [0, ...PHI_X_REGISTERS];
export const EDGES = [0n, 1n, -1n, 7n, 63n, 64n, 0x7fff_ffffn, -0x8000_0000n, 1n << 63n, (1n << 63n) - 1n];
/** Every register-register instruction of the assembler (they all take rd, rs1, rs2). */
export const R_OPS = ['add', 'sub', 'sll', 'slt', 'sltu', 'xor', 'srl', 'sra', 'or', 'and', 'addw', 'subw', 'sllw', 'srlw', 'sraw',
  'mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu', 'mulw', 'divw', 'divuw', 'remw', 'remuw',
  'add.uw', 'sh1add', 'sh2add', 'sh3add', 'sh1add.uw', 'sh2add.uw', 'sh3add.uw'] as const;

export function randomInstruction(r: SeededRandom): Encoded {
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

export const ARG_PAGE = DATA_BASE + 0x8000; // argument cap 0, read-only
export const KERNEL_OPS = [KernelOp.COPY, KernelOp.MOVE, KernelOp.DROP, KernelOp.DATA_SIZE, KernelOp.READ_DATA, KernelOp.MINT_DATA];

/** `rd = v` for v below 2^31: lui + addi. */
export function li(rd: number, v: number): Encoded[] {
  const lo = ((v & 0xfff) << 20) >> 20;
  return [A.lui(rd, ((v - lo) >>> 12) & 0xfffff), A.addi(rd, rd, lo)];
}

/** The pinned Image slot of a random program that can spawn (randomImage with a child). */
export const CHILD_SLOT = 12;

/**
 * A child image for nested calls: 1 (k) adds k to the u64 at its one writable page and
 * replies the sum; 2 traps; 3 takes one argument cap and replies at once (the cap comes back).
 */
export function childImage(): ImageBuilder {
  return new ImageBuilder()
    .setCode(assemble(
      A.lui(X.t1, CHILD_RW >>> 12), A.ld(X.t0, X.t1, 0), A.add(X.t0, X.t0, X.a0), A.sd(X.t0, X.t1, 0), A.addi(X.a0, X.t0, 0), A.ecalli(0), // 0
      A.trap(), // 24
      A.ecalli(0), // 28
    ))
    .addInitialData(2, new Uint8Array(8)).addMapping(CHILD_RW, 0x1000, 2)
    .addEndpoint(1, { entryPc: 0 }).addEndpoint(2, { entryPc: 24 }).addEndpoint(3, { entryPc: 28, argCnodeSize: 1 });
}
/** Gas of childImage's endpoint 1 (lui, ld, add, sd, mv, ecalli) and its writable pages. */
export const CHILD_ADD_GAS = Gas.MEMORY * 2 + Gas.ALU * 3 + Gas.CALL;
export const CHILD_PAGES = 1;
const CHILD_RW = DATA_BASE;

/**
 * A kernel operation on plausible operands: slot references of every kind, addresses in
 * and around the mappings, lengths up to two pages; with `nested`, also DERIVE_SPAWN of
 * the child image and CALLs of its endpoints.
 */
export function randomKernelOp(r: SeededRandom, nested = false): Encoded[] {
  const ref = () => r.pick([0, 7, 8, 9, 10, 11, CHILD_SLOT, 0x100, 0x101, 0x102, 0x1ff, 0x200]);
  const addr = () => r.pick([RO_PAGE, RO_PAGE + 0xff8, RW_PAGE, RW_PAGE + 0x1ff0, ARG_PAGE, ARG_PAGE + 0x800, 0x3f_f000, 0x10]);
  const len = () => r.pick([0, 1, 8, 64, 65, 0xfff, 0x1000, 0x1001, 0x2000]);
  const op = r.pick(nested ? [...KERNEL_OPS, KernelOp.DERIVE_SPAWN, KernelOp.DERIVE_SPAWN, KernelOp.CALL, KernelOp.CALL, KernelOp.CALL] : KERNEL_OPS);
  const [a0, a1, a2, a3] = op === KernelOp.READ_DATA ? [ref(), r.pick([0, 8, 0x800, 0xfff]), addr(), len()]
    : op === KernelOp.MINT_DATA ? [ref(), addr(), len(), 0]
    : op === KernelOp.DERIVE_SPAWN ? [r.pick([CHILD_SLOT, CHILD_SLOT, 7, 11]), ref(), 0, 0]
    : op === KernelOp.CALL ? [ref(), r.pick([1, 1, 2, 3, 4]), r.pick([0, 0, ref()]), r.below(1000)]
    : [ref(), ref(), 0, 0];
  // CALL's child arguments come from φ10..φ12 (a3..a5): a3 is the first.
  return [...li(X.a0, a0), ...li(X.a1, a1), ...li(X.a2, a2), ...li(X.a3, a3), A.ecalli(op)];
}

/** A seeded random program; with `child` (the content hash of a loaded childImage) half of those on caps also spawn and call it. */
export function randomImage(seed: number, child?: Uint8Array): { image: ImageBuilder; gas: bigint; args: bigint[]; caps: Uint8Array[] } {
  const r = new SeededRandom(seed);
  const withCaps = seed % 2 === 0; // every other program works on caps
  const nested = child !== undefined && seed % 4 === 0;
  const body = Array.from({ length: withCaps ? 2 + r.below(nested ? 12 : 8) : 4 + r.below(40) }, () => (withCaps && r.below(4) !== 0 ? randomKernelOp(r, nested) : [randomInstruction(r)])).flat();
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
  if (nested) image.addPinnedImage(CHILD_SLOT, child);
  const caps = withCaps ? Array.from({ length: 1 + r.below(3) }, () => r.bytes(r.below(0x1800))) : [];
  if (withCaps) image.addMapping(ARG_PAGE, 0x1000, [0, 0]);
  const arg = () => r.bool() ? BigInt.asUintN(64, r.pick(EDGES)) : BigInt(r.pick([RO_PAGE, RW_PAGE + 0x800, TOP_PAGE + 0xff8, 3]));
  return { image, gas: BigInt(r.pick([50, 400, 5_000, 100_000])), args: [arg(), arg(), arg(), arg()], caps };
}

