/**
 * Differential tests: the in-guest C engine's interpreter and recompiler (through its
 * host harness) against the reference interpreter (lib/machine `runMachine`) on the
 * same inputs. Every field they report must be identical: exit, exit argument,
 * registers, pc, gas left, writable memory, and for the two interpreters the count of
 * completed instructions (generated code does not count them).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { admitImage } from '../../lib/image/index.js';
import { CODE_BASE, DATA_BASE, Exit, PAGE_SIZE } from '../../lib/machine/abi.js';
import { invokeLocal, isBlockStart, prepareProgram, runMachine, type MappingSpec } from '../../lib/machine/index.js';
import { decodeAt } from '../../lib/machine/decoder.js';
import { ISA } from '../../lib/machine/isa.js';
import { exampleImages, exampleInput, harnessBuilt, runEngine, type EngineInput, type EngineResult } from '../support/engine-harness.js';
import { A, assemble as assembleEncoded, X } from '../support/machine-asm.js';
import { SeededRandom } from './seeded-random.js';

// ---- a tiny RV64 assembler (the encodings of the RISC-V ISA manual) ----

const R = (f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number) =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const I = (imm: number, rs1: number, f3: number, rd: number, op: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const S = (imm: number, rs2: number, rs1: number, f3: number, op: number) =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op) >>> 0;
const B = (imm: number, rs2: number, rs1: number, f3: number) =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12)
    | (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
const U = (value: number, rd: number, op: number) => ((value & 0xfffff000) | (rd << 7) | op) >>> 0;
const J = (imm: number, rd: number) =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | (rd << 7) | 0x6f) >>> 0;
const ecalli = (n: number) => I(n, 0, 2, 0, 0x0b);
const TRAP = I(0, 0, 0, 0, 0x0b);
const ECALL_JAR = I(0, 0, 1, 0, 0x0b);
const FALLTHROUGH = I(0, 0, 4, 0, 0x0b);
/** `lui rd, hi; addi rd, rd, lo`: rd = the sign-extended 32-bit `value`. */
function li32(rd: number, value: number): number[] {
  const lo = (value << 20) >> 20;
  const hi = (value - lo) | 0;
  return [U(hi, rd, 0x37), I(lo, rd, 0, rd, 0x13)];
}

// ---- seeded randomness ----

type Rng = SeededRandom;
const rng = (seed: number): Rng => new SeededRandom(seed);

const LEGAL = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const ILLEGAL_REGS = [3, 4, 16, 17, 20, 31];
/** φ-registers the generator leaves alone, so addresses in them stay useful. */
const SCRATCH = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1];

// Every register-register and register-immediate encoding of PVM2 (funct7, funct3).
const OP_R = [
  [0x00, 0], [0x00, 1], [0x00, 2], [0x00, 3], [0x00, 4], [0x00, 5], [0x00, 6], [0x00, 7], [0x20, 0], [0x20, 5],
  [0x20, 7], [0x20, 6], [0x20, 4], [0x01, 0], [0x01, 1], [0x01, 2], [0x01, 3], [0x01, 4], [0x01, 5], [0x01, 6], [0x01, 7],
  [0x10, 2], [0x10, 4], [0x10, 6], [0x05, 4], [0x05, 5], [0x05, 6], [0x05, 7], [0x30, 1], [0x30, 5],
  [0x24, 1], [0x24, 5], [0x14, 1], [0x34, 1], [0x07, 5], [0x07, 7],
];
const OP32_R = [
  [0x00, 0], [0x00, 1], [0x00, 5], [0x20, 0], [0x20, 5], [0x01, 0], [0x01, 4], [0x01, 5], [0x01, 6], [0x01, 7],
  [0x04, 0], [0x10, 2], [0x10, 4], [0x10, 6], [0x30, 1], [0x30, 5],
];
/** OP-IMM funct3 1/5 forms by their top six bits, with a 6-bit shift amount. */
const SHIFT_IMM = [[0x00, 1], [0x12, 1], [0x0a, 1], [0x1a, 1], [0x00, 5], [0x10, 5], [0x18, 5], [0x12, 5]];
/** OP-IMM-32 shifts by funct7, with a 5-bit shift amount: slliw, srliw, sraiw, roriw. */
const SHIFT_IMM_W = [[0x00, 1], [0x00, 5], [0x20, 5], [0x30, 5]];
/** Zbb unary ops by funct12 (OP-IMM f3 1 and 5, OP-IMM-32 f3 1). */
const UNARY = [[0x600, 1, 0x13], [0x601, 1, 0x13], [0x602, 1, 0x13], [0x604, 1, 0x13], [0x605, 1, 0x13], [0x287, 5, 0x13],
  [0x6b8, 5, 0x13], [0x600, 1, 0x1b], [0x601, 1, 0x1b], [0x602, 1, 0x1b]];
const EDGE_VALUES = [0n, 1n, -1n, -5n, 7n, 1n << 63n, (1n << 63n) - 1n, 0x7fffffffn, -0x80000000n, 0xffffffffn, 63n, 64n, 31n, 32n];

/** The machine layout every random program runs in. */
const RO_START = DATA_BASE;
const RW_START = DATA_BASE + PAGE_SIZE; // adjacent to the read-only page: straddling accesses mix permissions
const TOP_START = 2 ** 32 - 2 * PAGE_SIZE; // an access may wrap from here to address 0 (mapped in half the cases)
function layout(r: Rng): MappingSpec[] {
  const content = (n: number) => Uint8Array.from({ length: n }, () => r.below(256));
  const mappings = [
    { start: RO_START, size: PAGE_SIZE, writable: false, content: content(PAGE_SIZE) },
    { start: RW_START, size: 2 * PAGE_SIZE, writable: true, content: content(PAGE_SIZE + 100) },
  ];
  // Without the top pages, an access wrapping past 2^32 faults at both ends: the lowest address is reported.
  if (r.chance(0.5)) mappings.push({ start: TOP_START, size: 2 * PAGE_SIZE, writable: true, content: content(64) });
  return mappings;
}

/** An address worth touching: inside, at the edges of and outside every region (safe: inside the writable page). */
function interestingAddress(r: Rng, codeLength: number, style: Style): number {
  switch (style.safe ? 1 : r.below(12)) {
    case 0: return RO_START + r.below(PAGE_SIZE);
    case 1: case 9: case 10: case 11: return RW_START + r.below(2 * PAGE_SIZE - 16);
    case 2: return RW_START - 1 - r.below(8); // read-only / writable straddle
    case 3: return RW_START + 2 * PAGE_SIZE - 1 - r.below(8); // writable / unmapped straddle
    case 4: return CODE_BASE + r.below(codeLength + PAGE_SIZE);
    case 5: return (2 ** 32 - 1 - r.below(8)) >>> 0; // wraps to 0
    case 6: return TOP_START + r.below(2 * PAGE_SIZE);
    case 7: return TOP_START + PAGE_SIZE - 4 + r.below(8); // page boundary inside one mapping
    default: return r.u32();
  }
}

/** One generated item: its words, and (once laid out) a fix-up that writes the control-flow targets. */
interface Item {
  halves: number[][]; // each instruction as 1 (compressed) or 2 halfwords
  /** Rewrites the item's words once every instruction's offset and the block starts are known. */
  resolve?: (self: number, pick: TargetPicker) => number[][];
}
type TargetPicker = (kind: 'static' | 'dynamic') => number;

const words = (...ws: number[]) => ws.map((w) => [w & 0xffff, w >>> 16]);

/**
 * A safe program names only legal registers, touches only accessible memory and
 * jumps only to valid targets, so it runs long (until HALT or out of gas); the others
 * also exercise every way of failing.
 */
interface Style {
  safe: boolean;
}

function reg(r: Rng, style: Style): number {
  return !style.safe && r.chance(0.004) ? r.pick(ILLEGAL_REGS) : r.pick(LEGAL);
}

function randomItem(r: Rng, codeLength: number, style: Style): Item {
  const roll = r.below(1000);
  const rd = () => r.pick(SCRATCH);
  if (roll < 300) { // OP / OP-32
    const op32 = r.chance(0.3);
    const [f7, f3] = r.pick(op32 ? OP32_R : OP_R);
    return { halves: words(R(f7, reg(r, style), reg(r, style), f3, rd(), op32 ? 0x3b : 0x33)) };
  }
  if (roll < 450) { // OP-IMM, OP-IMM-32
    switch (r.below(5)) {
      case 0: return { halves: words(I(r.below(4096), reg(r, style), r.pick([0, 2, 3, 4, 6, 7]), rd(), 0x13)) };
      case 1: { const [f6, f3] = r.pick(SHIFT_IMM); return { halves: words(I((f6 << 6) | r.below(64), reg(r, style), f3, rd(), 0x13)) }; }
      case 2: { const [f12, f3, op] = r.pick(UNARY); return { halves: words(I(f12, reg(r, style), f3, rd(), op)) }; }
      case 3: { const [f7, f3] = r.pick(SHIFT_IMM_W); return { halves: words(I((f7 << 5) | r.below(32), reg(r, style), f3, rd(), 0x1b)) }; }
      default: return { halves: words(r.chance(0.5) ? I(r.below(4096), reg(r, style), 0, rd(), 0x1b) : I((0x02 << 6) | r.below(64), reg(r, style), 1, rd(), 0x1b)) };
    }
  }
  if (roll < 490) return { halves: words(U(r.u32(), rd(), r.pick([0x37, 0x17]))) }; // lui, auipc
  if (roll < 510 && !style.safe) return { halves: [[(r.u32() & 0xfffc) | r.below(3)]] }; // any compressed halfword
  if (roll < 700) { // load or store at an interesting address
    const base = r.pick([5, 6, 7, 8, 9]);
    const imm = r.below(16) - 8;
    const access = r.chance(0.5) ? I(imm, base, r.below(7), rd(), 0x03) : S(imm, reg(r, style), base, r.below(4), 0x23);
    return { halves: words(...li32(base, interestingAddress(r, codeLength, style) - imm), access) };
  }
  if (roll < 820) { // branch
    const f3 = r.pick([0, 1, 4, 5, 6, 7]);
    const [rs1, rs2] = [reg(r, style), reg(r, style)];
    return {
      halves: words(B(0, rs2, rs1, f3)),
      resolve: (self, pick) => words(B(clampBranch(pick('static') - self, 13), rs2, rs1, f3)),
    };
  }
  if (roll < 870) { // jal
    const link = r.pick([0, 1, 5]);
    return { halves: words(J(0, link)), resolve: (self, pick) => words(J(clampBranch(pick('static') - self, 21), link)) };
  }
  if (roll < 920) { // jalr through a register holding a code address
    const base = r.pick([5, 6, 7]);
    const link = r.pick([0, 1, 5, base]);
    const imm = r.pick([0, 0, 1, -2, 4]);
    return {
      halves: words(...li32(base, 0), I(imm, base, 0, link, 0x67)),
      resolve: (_self, pick) => words(...li32(base, CODE_BASE + pick('dynamic') - imm), I(imm, base, 0, link, 0x67)),
    };
  }
  if (roll < 945) return { halves: words(ecalli(style.safe ? 0 : r.pick([0, 64, 100, 2047, 1, 63, -1, -2048]))) };
  if (roll < 965) return { halves: words(r.pick(style.safe ? [FALLTHROUGH] : [TRAP, ECALL_JAR, FALLTHROUGH, FALLTHROUGH, FALLTHROUGH, 0x0000000f, 0x0000100f])) };
  if (roll < 975 && !style.safe) return { halves: words((r.u32() | 3) >>> 0) }; // any 32-bit word
  return { halves: words(style.safe ? FALLTHROUGH : R(r.pick([0x01, 0x00]), reg(r, style), reg(r, style), r.below(8), rd(), 0x3b)) };
}

/** Keeps a pc-relative offset encodable; out-of-range targets become the encodable extreme (still a test). */
function clampBranch(offset: number, bits: number): number {
  const max = 2 ** (bits - 1) - 2;
  return Math.max(-max - 2, Math.min(max, offset)) & ~1;
}

function assemble(items: Item[]): { code: Uint8Array; starts: number[] } {
  const starts: number[] = [];
  const halves: number[] = [];
  for (const item of items) {
    starts.push(halves.length * 2);
    for (const inst of item.halves) halves.push(...inst);
  }
  const code = new Uint8Array(halves.length * 2);
  halves.forEach((h, i) => { code[2 * i] = h & 0xff; code[2 * i + 1] = h >>> 8; });
  return { code, starts };
}

/** A random program and machine input, from `seed`. */
function randomCase(seed: number): EngineInput {
  const r = rng(seed);
  const style: Style = { safe: r.chance(0.5) };
  const count = 5 + r.below(60);
  const items: Item[] = [];
  for (let i = 0; i < count; i++) items.push(randomItem(r, count * 6, style));
  if (r.chance(0.8)) items.push({ halves: words(ecalli(0)) });

  // Lay out once with placeholder targets, find the block starts, then write the targets.
  let { code, starts } = assemble(items);
  const program = prepareProgram(code);
  const boundaries = program.instructions.map((inst) => inst.offset);
  const blockStarts = boundaries.filter((o) => isBlockStart(program, o));
  const pick: TargetPicker = (kind) => {
    const roll = r.below(100);
    if (roll < 92 || style.safe) return kind === 'dynamic' ? r.pick(blockStarts) : r.pick(boundaries);
    if (roll < 96) return r.pick(boundaries) + 1 + r.below(2); // mid-instruction or odd
    if (roll < 98) return code.length + 2 * r.below(4); // past the end
    return -2 - 2 * r.below(8); // before the start
  };
  for (const [i, item] of items.entries()) if (item.resolve) item.halves = item.resolve(starts[i], pick);
  ({ code, starts } = assemble(items));

  const regs = Array.from({ length: 13 }, (_, i) => {
    if (i === 1) return BigInt(RW_START + PAGE_SIZE); // sp, for the compressed sp-relative forms
    return r.chance(0.3) ? BigInt.asUintN(64, r.pick(EDGE_VALUES)) : r.chance(0.5) ? r.u64() : BigInt(r.below(1 << 16));
  });
  const entry = style.safe ? 0 : r.chance(0.02) ? r.below(code.length + 4) : r.chance(0.2) ? r.pick(blockStarts) : 0;
  return { code, mappings: layout(r), entry, regs, gas: BigInt(r.chance(0.1) ? r.below(200) : 5000 + r.below(200_000)) };
}

/** The fields both engines must agree on (`instructions` too: both count completed instructions alike). */
function comparable(res: Omit<EngineResult, 'runNs' | 'prepareNs' | 'compileNs' | 'codeBytes'>) {
  return { exit: res.exit, exitArg: res.exitArg, regs: res.regs, pc: res.pc, gasLeft: res.gasLeft, memory: res.memory, instructions: res.instructions };
}

function reference(input: EngineInput) {
  return comparable(runMachine({ program: input.code, mappings: input.mappings, entry: input.entry, regs: input.regs, gas: input.gas }));
}

/** Runs all three engines; a mismatch names the case so it can be replayed. */
function agree(input: EngineInput, what: string) {
  const expected = reference(input);
  const hex = Buffer.from(input.code).toString('hex');
  const replay = `(entry ${input.entry}, gas ${input.gas}, code ${hex})`;
  assert.deepEqual(comparable(runEngine(input)), expected, `${what}: interpreter disagrees ${replay}`);
  let compiled;
  try {
    compiled = comparable(runEngine({ ...input, engine: 'recompiler' }));
  } catch (err) {
    throw new Error(`${what}: recompiler failed ${replay}: ${(err as Error).message}`);
  }
  assert.deepEqual({ ...compiled, instructions: expected.instructions }, expected, `${what}: recompiler disagrees ${replay}`);
  assert.equal(compiled.instructions, 0);
  return expected;
}

const describeEngine = harnessBuilt() ? describe : describe.skip;
if (!harnessBuilt()) {
  console.warn('engine-diff: SKIPPED — guest/build/engine-harness is not built (run `zx scripts/build-engine-harness.mjs`)');
}

describeEngine('engine vs reference interpreter', function () {
  this.timeout(300_000);

  it('runs every mnemonic of the instruction table in every engine', () => {
    // Encoded by the test assembler (written from the ISA manual), then `mnemonic; ecalli 0`:
    // an engine without a handler for a table entry panics there (or fails to translate).
    const operands: Record<string, () => ReturnType<typeof A.trap>> = {
      'ecall.jar': () => A.ecallJar(), ecalli: () => A.ecalli(0),
      jal: () => A.jal(X.a0, 4), jalr: () => A.jalr(X.a0, X.s1, 0),
      beq: () => A.beq(X.a1, X.a2, 4), bne: () => A.bne(X.a1, X.a2, 4), blt: () => A.blt(X.a1, X.a2, 4),
      bge: () => A.bge(X.a1, X.a2, 4), bltu: () => A.bltu(X.a1, X.a2, 4), bgeu: () => A.bgeu(X.a1, X.a2, 4),
      sb: () => A.sb(X.a2, X.a1, 8), sh: () => A.sh(X.a2, X.a1, 8), sw: () => A.sw(X.a2, X.a1, 8), sd: () => A.sd(X.a2, X.a1, 8),
      lui: () => A.lui(X.a0, 0x12345), auipc: () => A.auipc(X.a0, 0x12345),
    };
    const expectedExit: Record<string, number> = { trap: Exit.TRAP, 'ecall.jar': Exit.ECALL };
    const mappings = [{ start: RW_START, size: PAGE_SIZE, writable: true, content: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16) }];
    for (const mnemonic of Object.keys(ISA)) {
      const make = operands[mnemonic] ?? (() => (A as Record<string, (...a: number[]) => ReturnType<typeof A.trap>>)[mnemonic]!(X.a0, X.a1, X.a2));
      const code = assembleEncoded(make(), A.ecalli(0));
      assert.equal(decodeAt(code, 0).op, mnemonic, `${mnemonic}: the decoder does not know its encoding`);
      const regs = Array.from({ length: 13 }, () => 0n);
      regs[8] = BigInt(RW_START); // a1: a mapped address
      regs[9] = 3n; // a2
      regs[6] = BigInt(CODE_BASE + 4); // s1: the block after the instruction
      const res = agree({ code, mappings, entry: 0, regs, gas: 1000n }, mnemonic);
      assert.equal(res.exit, expectedExit[mnemonic] ?? Exit.HALT, `${mnemonic}: exit ${res.exit}`);
    }
  });

  it('agrees on straight-line arithmetic over edge values', () => {
    // Every OP/OP-32 encoding, then every unary and shift-immediate form, over each pair of edge values.
    const body: number[] = [];
    for (const [f7, f3] of OP_R) body.push(R(f7, 6, 5, f3, 7, 0x33));
    for (const [f7, f3] of OP32_R) body.push(R(f7, 6, 5, f3, 8, 0x3b));
    for (const [f12, f3, op] of UNARY) body.push(I(f12, 5, f3, 9, op));
    for (const [f6, f3] of SHIFT_IMM) body.push(I((f6 << 6) | 37, 5, f3, 11, 0x13));
    const { code } = assemble([{ halves: words(...body.flatMap((w) => [w, R(0, 7, 12, 0, 12, 0x33)]), ecalli(0)) }]);
    for (const a of EDGE_VALUES) {
      for (const b of EDGE_VALUES) {
        const regs = Array.from({ length: 13 }, () => 0n);
        regs[2] = BigInt.asUintN(64, a); // x5
        regs[3] = BigInt.asUintN(64, b); // x6
        const res = agree({ code, mappings: [], entry: 0, regs, gas: 1_000_000n }, `a=${a} b=${b}`);
        assert.equal(res.exit, Exit.HALT);
      }
    }
  });

  it('agrees on 4000 seeded random programs', () => {
    const exits = new Map<number, number>();
    for (let seed = 1; seed <= 4000; seed++) {
      const res = agree(randomCase(seed), `seed ${seed}`);
      exits.set(res.exit, (exits.get(res.exit) ?? 0) + 1);
    }
    // The generator must reach every way a run can end, or it is not testing them.
    for (const exit of [Exit.HALT, Exit.PANIC, Exit.OUT_OF_GAS, Exit.PAGE_FAULT, Exit.HOST_CALL, Exit.ECALL, Exit.TRAP]) {
      assert.ok((exits.get(exit) ?? 0) > 0, `no random program ended with exit ${exit}: ${JSON.stringify([...exits])}`);
    }
  });

  it('applies the entry rule to a 64-bit entry: past 2^32 is a PANIC even where CODE_BASE + entry wraps to a block start', () => {
    const code = assembleEncoded(A.addi(X.a0, 0, 7), A.ecalli(0));
    assert.equal(agree({ code, mappings: [], entry: 0, regs: [], gas: 1000n }, 'entry 0').exit, Exit.HALT);
    for (const entry of [2 ** 32, 2 ** 32 + 4, 3, 8]) {
      const r = agree({ code, mappings: [], entry, regs: [], gas: 1000n }, `entry ${entry}`);
      assert.deepEqual([r.exit, r.pc, r.gasLeft, r.instructions], [Exit.PANIC, (CODE_BASE + entry) % 2 ** 32, 1000n, 0], `entry ${entry}`);
    }
  });

  it('agrees when gas runs out at the exact boundary', () => {
    let boundaries = 0;
    for (let seed = 1000; seed < 1150; seed++) {
      const input = randomCase(seed);
      const full = reference({ ...input, gas: 10_000_000n });
      const used = 10_000_000n - full.gasLeft;
      if (full.exit === Exit.OUT_OF_GAS || used === 0n) continue;
      boundaries++;
      // Exactly enough finishes like the generous run; one less stops before some block.
      const exact = agree({ ...input, gas: used }, `seed ${seed}, exact gas`);
      assert.equal(exact.exit, full.exit);
      assert.equal(exact.gasLeft, 0n);
      const short = agree({ ...input, gas: used - 1n }, `seed ${seed}, gas - 1`);
      assert.equal(short.exit, Exit.OUT_OF_GAS);
      agree({ ...input, gas: used / 2n }, `seed ${seed}, half gas`);
    }
    assert.ok(boundaries > 50, `only ${boundaries} programs used gas`);
  });

  it('agrees on self-loops and jumps into the middle of a block, at every gas amount', () => {
    // t0 counts down; the loop is `addi; bne` back to the addi. Without the fallthrough the
    // addi is in the middle of the block that starts at the lui, so each back edge charges a block suffix.
    const N = 7;
    for (const marker of [false, true]) {
      const loop = [I(-1, 5, 0, 5, 0x13), B(-4, 0, 5, 1)];
      const { code } = assemble([{ halves: words(...li32(5, N), ...(marker ? [FALLTHROUGH] : []), ...loop, I(3, 10, 0, 10, 0x13), ecalli(0)) }]);
      const full = agree({ code, mappings: [], entry: 0, regs: [], gas: 1_000_000n }, `self-loop ${marker}`);
      assert.equal(full.exit, Exit.HALT);
      const used = 1_000_000n - full.gasLeft;
      let stops = 0;
      for (let gas = 0n; gas <= used; gas++) stops += +(agree({ code, mappings: [], entry: 0, regs: [], gas }, `self-loop ${marker}, gas ${gas}`).exit === Exit.OUT_OF_GAS);
      assert.ok(stops > N, `only ${stops} out-of-gas stops`);
    }
  });

  it('agrees on deep recursion through jal and jalr', () => {
    // f(a0): if a0 == 0 return; push ra; a0 -= 1; f(a0); pop ra; a1 += 1; return. 16 bytes of stack per level.
    const body = [
      J(8, 1), ecalli(0), //                      0: jal ra, f; 4: ecalli 0
      B(36, 0, 10, 0), //                          8: f: beq a0, x0, done
      I(-16, 2, 0, 2, 0x13), S(8, 1, 2, 3, 0x23), // 12: addi sp, -16; 16: sd ra, 8(sp)
      I(-1, 10, 0, 10, 0x13), J(-16, 1), //       20: addi a0, -1; 24: jal ra, f
      I(8, 2, 3, 1, 0x03), I(16, 2, 0, 2, 0x13), // 28: ld ra, 8(sp); 32: addi sp, 16
      I(1, 11, 0, 11, 0x13), I(0, 1, 0, 0, 0x67), // 36: addi a1, 1; 40: ret
      I(0, 1, 0, 0, 0x67), //                     44: done: ret
    ];
    const { code } = assemble([{ halves: words(...body) }]);
    const STACK = 16 * PAGE_SIZE;
    const mappings = [{ start: RW_START, size: STACK, writable: true, content: new Uint8Array(0) }];
    for (const depth of [0, 1, 2, 100, 4095, 4096, 4097, 20_000]) {
      const regs = Array.from({ length: 13 }, () => 0n);
      regs[1] = BigInt(RW_START + STACK); // sp
      regs[7] = BigInt(depth); // a0
      const res = agree({ code, mappings, entry: 0, regs, gas: 10_000_000n }, `recursion depth ${depth}`);
      // 4096 levels fill the stack exactly; one more faults below it.
      assert.equal(res.exit, depth <= 4096 ? Exit.HALT : Exit.PAGE_FAULT, `depth ${depth}`);
    }
  });

  it('agrees on auipc + jalr calls, also when the jalr is entered from elsewhere', () => {
    // 0: auipc ra, 0; 4: jalr ra, OFF(ra); 8: ecalli 0; 12: beq x0, x0, 4 (into the jalr, ra from the caller);
    // 16: ecalli 0; 20: f: addi a0, a0, 1; 24: jalr x0, 0(ra)
    for (const off of [20, 21, 22, 24, 400]) {
      const body = [U(0, 1, 0x17), I(off, 1, 0, 1, 0x67), ecalli(0), B(-8, 0, 0, 0), ecalli(0), I(1, 10, 0, 10, 0x13), I(0, 1, 0, 0, 0x67)];
      const { code } = assemble([{ halves: words(...body) }]);
      for (const entry of [0, 12]) {
        for (const ra of [CODE_BASE, CODE_BASE + 4, CODE_BASE + 8]) {
          const regs = Array.from({ length: 13 }, () => 0n);
          regs[0] = BigInt(ra);
          const full = agree({ code, mappings: [], entry, regs, gas: 10_000n }, `call offset ${off}, entry ${entry}, ra ${ra}`);
          for (let gas = 0n; gas < 10_000n - full.gasLeft; gas += 7n) agree({ code, mappings: [], entry, regs, gas }, `call offset ${off}, entry ${entry}, gas ${gas}`);
        }
      }
    }
  });

  it('agrees on accesses straddling pages of every kind', () => {
    // Boundaries between: read-only | writable, writable | unmapped, unmapped | writable,
    // two writable mappings, and the top of the address space | address 0 (unmapped).
    const A = DATA_BASE, B2 = DATA_BASE + 4 * PAGE_SIZE;
    const mappings: MappingSpec[] = [
      { start: A, size: PAGE_SIZE, writable: false, content: Uint8Array.from({ length: 64 }, (_, i) => i + 1) },
      { start: A + PAGE_SIZE, size: PAGE_SIZE, writable: true, content: Uint8Array.from({ length: PAGE_SIZE }, (_, i) => (i * 7) & 255) },
      { start: B2, size: PAGE_SIZE, writable: true, content: Uint8Array.of(9, 8, 7) },
      { start: B2 + PAGE_SIZE, size: PAGE_SIZE, writable: true, content: Uint8Array.of(1, 2, 3) },
      { start: 2 ** 32 - PAGE_SIZE, size: PAGE_SIZE, writable: true, content: Uint8Array.of(5) },
    ];
    const boundaries = [A + PAGE_SIZE, A + 2 * PAGE_SIZE, B2, B2 + PAGE_SIZE, 2 ** 32];
    const kinds = [...[0, 1, 2, 3, 4, 5, 6].map((f3) => ({ load: true, f3 })), ...[0, 1, 2, 3].map((f3) => ({ load: false, f3 }))];
    const exits = new Set<number>();
    for (const boundary of boundaries) {
      for (let back = 0; back <= 8; back++) {
        for (const { load, f3 } of kinds) {
          const addr = (boundary - back) >>> 0;
          const access = load ? I(0, 5, f3, 6, 0x03) : S(0, 7, 5, f3, 0x23);
          const { code } = assemble([{ halves: words(...li32(5, addr | 0), access, ecalli(0)) }]);
          const regs = Array.from({ length: 13 }, () => 0x1122334455667788n);
          const res = agree({ code, mappings, entry: 0, regs, gas: 1000n }, `${load ? 'load' : 'store'} f3 ${f3} at ${addr.toString(16)}`);
          exits.add(res.exit);
        }
      }
    }
    assert.deepEqual([...exits].sort(), [Exit.HALT, Exit.PAGE_FAULT]);
  });

  it('agrees on sp- and pointer-based accesses with sp anywhere around the stack (the recompiler checks them once per region)', () => {
    // A read-only page under a two-page stack; sp in, at the edges of, below and above
    // it, with high bits set, and inside the read-only page (where stores fault).
    const STACK = 0x7fff0000;
    const mappings: MappingSpec[] = [
      { start: STACK - PAGE_SIZE, size: PAGE_SIZE, writable: false, content: Uint8Array.from({ length: PAGE_SIZE }, (_, i) => (i * 13) & 255) },
      { start: STACK, size: 2 * PAGE_SIZE, writable: true, content: Uint8Array.from({ length: 2 * PAGE_SIZE }, (_, i) => (i * 5) & 255) },
    ];
    const SP = 2;
    const programs = [
      // loads and stores at the extreme immediates, an sp write mid-block, then more accesses
      [I(-8, SP, 3, 5, 0x03), S(16, 6, SP, 3, 0x23), I(2040, SP, 2, 7, 0x03), S(-2048, 8, SP, 0, 0x23), I(-16, SP, 0, SP, 0x13),
        S(0, 5, SP, 3, 0x23), I(8, SP, 3, 9, 0x03), I(2047, SP, 4, 10, 0x03), ecalli(0)],
      // loads only, then a load into sp from sp, then one through the new sp
      [I(0, SP, 3, 5, 0x03), I(-2048, SP, 1, 6, 0x03), I(2044, SP, 6, 7, 0x03), I(24, SP, 3, SP, 0x03), I(0, SP, 0, 8, 0x03), ecalli(0)],
      // a pointer from sp (x5): its accesses before sp's, then inside sp's, then a write of x5 from memory through itself
      [I(-16, SP, 0, 5, 0x13), I(0, 5, 3, 6, 0x03), S(2040, 7, 5, 3, 0x23), I(-2048, 5, 2, 8, 0x03), S(8, 6, SP, 3, 0x23),
        I(16, 5, 3, 9, 0x03), I(24, 5, 3, 10, 0x03), S(16, 7, SP, 3, 0x23), I(8, 5, 3, 5, 0x03), I(0, 5, 0, 11, 0x03), ecalli(0)],
    ];
    const deltas = [-2056, -2049, -2048, -2047, -9, -8, -1, 0, 1, 7, 8, 2040, 2047, 2048, 2056];
    const sps = [STACK - PAGE_SIZE, STACK, STACK + PAGE_SIZE, STACK + 2 * PAGE_SIZE].flatMap((base) => deltas.map((d) => BigInt(base + d)));
    sps.push(BigInt(STACK + PAGE_SIZE) + (1n << 32n), (1n << 64n) - 8n, BigInt(STACK - PAGE_SIZE + 2048));
    const exits = new Set<number>();
    for (const [p, program] of programs.entries()) {
      const { code } = assemble([{ halves: words(...program) }]);
      for (const sp of sps) {
        const regs = Array.from({ length: 13 }, (_, i) => (i === 1 ? sp : 0x1122334455667788n + BigInt(i)));
        exits.add(agree({ code, mappings, entry: 0, regs, gas: 1000n }, `program ${p} with sp ${sp.toString(16)}`).exit);
      }
    }
    assert.deepEqual([...exits].sort(), [Exit.HALT, Exit.PAGE_FAULT]);
  });

  it('translates and runs random bytes as code', () => {
    const exits = new Set<number>();
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const code = Uint8Array.from({ length: 2 + 2 * r.below(200) }, () => r.below(256));
      const regs = Array.from({ length: 13 }, () => r.u64());
      exits.add(agree({ code, mappings: layout(r), entry: 0, regs, gas: BigInt(r.below(5000)) }, `random bytes ${seed}`).exit);
    }
    assert.ok(exits.size >= 3, `random bytes ended in only ${[...exits]}`);
  });

  it('agrees on the example programs', function () {
    const images = exampleImages({ nativeHarness: true });
    if (images.length === 0) {
      console.warn('engine-diff: SKIPPED the examples — no examples/*/*.ssz built yet');
      this.skip();
    }
    let cases = 0;
    for (const { path, expected } of images) {
      const admitted = admitImage(readFileSync(path));
      for (const c of expected.cases) {
        const input = exampleInput(admitted, c.endpoint, c.args.map((a) => BigInt(a)), 1n << 40n);
        const ref = invokeLocal(admitted.imageCap, admitted, c.endpoint, { args: c.args.map((a) => BigInt(a)), gas: input.gas });
        const engine = comparable(runEngine(input));
        assert.deepEqual(engine, comparable(ref), `${path} endpoint ${c.endpoint} args ${c.args}`);
        const compiled = comparable(runEngine({ ...input, engine: 'recompiler' }));
        assert.deepEqual({ ...compiled, instructions: ref.instructions }, comparable(ref), `${path} endpoint ${c.endpoint} args ${c.args}: recompiler`);
        if (c.result !== undefined) assert.equal(engine.exitArg, BigInt(c.result), `${path} endpoint ${c.endpoint}: wrong result`);
        cases++;
      }
    }
    assert.ok(cases > 0);
  });
});
