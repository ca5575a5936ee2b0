/**
 * PVM2 conformance, per instruction: each case hand-assembles one instruction,
 * runs it on the reference interpreter followed by `ecalli 0`, and checks the
 * result against a value worked out by hand from the RISC-V specification. A
 * second part checks the ALU against a BigInt model of the same specification on
 * seeded random and edge-case operands.
 */
import assert from 'node:assert/strict';
import { CODE_BASE, DATA_BASE, Exit, decodeAt } from '../../lib/machine/index.js';
import { A, C, X, assemble, type Encoded } from '../support/machine-asm.js';
import { run, u64 } from './machine-helpers.js';

const { a0, a1, a2, a3, a4, a5, s0, s1, sp, ra } = X;
const M64 = (1n << 64n) - 1n;
const MIN64 = 1n << 63n;

/** Runs `inst` with a1 = x, a2 = y and returns a0. */
function binary(inst: Encoded, x: bigint, y: bigint): bigint {
  const r = run([inst, A.ecalli(0)], { x: { [a1]: x, [a2]: y } });
  assert.equal(r.exit, Exit.HALT, `exit of ${inst.bits.toString(16)}`);
  return r.x(a0);
}

type Case = [inputs: [bigint, bigint], expected: bigint];
/** Register-register cases, rd = a0, rs1 = a1, rs2 = a2. Expected values are unsigned 64-bit. */
const R_CASES: Record<string, Case[]> = {
  add: [[[M64, 1n], 0n], [[0x7fff_ffff_ffff_ffffn, 1n], MIN64], [[0xffff_ffffn, 1n], 0x1_0000_0000n]],
  sub: [[[0n, 1n], M64], [[0x1_0000_0000n, 1n], 0xffff_ffffn]],
  sll: [[[1n, 63n], MIN64], [[1n, 64n], 1n], [[1n, 65n], 2n], [[0x8000_0001n, 1n], 0x1_0000_0002n], [[1n, 32n], 0x1_0000_0000n]],
  srl: [[[MIN64, 63n], 1n], [[MIN64, 32n], 0x8000_0000n], [[MIN64, 64n], MIN64], [[0x1_0000_0000n, 1n], 0x8000_0000n]],
  sra: [[[MIN64, 63n], M64], [[MIN64, 4n], 0xf800_0000_0000_0000n], [[0x8000_0000n, 31n], 1n], [[MIN64, 0n], MIN64]],
  slt: [[[M64, 1n], 1n], [[1n, M64], 0n], [[5n, 5n], 0n], [[0x1_0000_0000n, 0x1_8000_0000n], 1n]],
  sltu: [[[M64, 1n], 0n], [[1n, M64], 1n], [[0x1_0000_0000n, 0x1_8000_0000n], 1n]],
  xor: [[[0xf0f0n, 0xff00n], 0x0ff0n]],
  or: [[[0xf0f0_0000_0000n, 0xffn], 0xf0f0_0000_00ffn]],
  and: [[[0xf0f0_0000_ffffn, 0xff00_0000_0f0fn], 0xf000_0000_0f0fn]],
  addw: [[[0x7fff_ffffn, 1n], 0xffff_ffff_8000_0000n], [[0x1_0000_0001n, 0n], 1n]],
  subw: [[[0n, 1n], M64], [[0x8000_0000n, 1n], 0x7fff_ffffn]],
  sllw: [[[1n, 31n], 0xffff_ffff_8000_0000n], [[1n, 32n], 1n]],
  srlw: [[[0x8000_0000n, 0n], 0xffff_ffff_8000_0000n], [[0xffff_ffff_8000_0000n, 1n], 0x4000_0000n]],
  sraw: [[[0x8000_0000n, 4n], 0xffff_ffff_f800_0000n], [[0x7fff_ffffn, 31n], 0n]],
  mul: [[[0x1_0000_0001n, 0x1_0000_0001n], 0x2_0000_0001n], [[M64, M64], 1n], [[0xffff_ffffn, 0xffff_ffffn], 0xffff_fffe_0000_0001n]],
  mulh: [[[M64, M64], 0n], [[MIN64, MIN64], 0x4000_0000_0000_0000n], [[M64, 1n], M64]],
  mulhsu: [[[M64, M64], M64], [[2n, MIN64], 1n]],
  mulhu: [[[M64, M64], 0xffff_ffff_ffff_fffen], [[0x1_0000_0000n, 0x1_0000_0000n], 1n]],
  mulw: [[[0x1_0000n, 0x8000n], 0xffff_ffff_8000_0000n], [[0xffff_ffff_0000_0003n, 5n], 15n]],
  div: [[[7n, u64(-2n)], u64(-3n)], [[MIN64, M64], MIN64], [[42n, 0n], M64], [[u64(-7n), 2n], u64(-3n)], [[0x10_0000_0000n, 0x10n], 0x1_0000_0000n]],
  divu: [[[42n, 0n], M64], [[M64, 3n], 0x5555_5555_5555_5555n], [[0xffff_ffffn, 2n], 0x7fff_ffffn]],
  rem: [[[7n, u64(-2n)], 1n], [[u64(-7n), 2n], M64], [[MIN64, M64], 0n], [[42n, 0n], 42n], [[0x10_0000_0003n, 0x10n], 3n]],
  remu: [[[42n, 0n], 42n], [[M64, 10n], 5n]],
  divw: [[[0x8000_0000n, M64], 0xffff_ffff_8000_0000n], [[5n, 0n], M64], [[0xff_0000_0007n, 2n], 3n]],
  divuw: [[[0xffff_ffffn, 0n], M64], [[0xffff_ffffn, 1n], M64], [[0x8000_0000n, 2n], 0x4000_0000n]],
  remw: [[[u64(-7n), 2n], M64], [[0x8000_0000n, M64], 0n], [[0x1_8000_0000n, 0n], 0xffff_ffff_8000_0000n]],
  remuw: [[[0x8000_0001n, 0n], 0xffff_ffff_8000_0001n], [[0xffff_ffffn, 10n], 5n]],
  'add.uw': [[[0xffff_ffff_ffff_fffen, 1n], 0xffff_ffffn]],
  sh1add: [[[0x8000_0000_0000_0001n, 1n], 3n]],
  sh2add: [[[3n, 10n], 22n]],
  sh3add: [[[M64, 8n], 0n]],
  'sh1add.uw': [[[0xffff_ffff_8000_0000n, 5n], 0x1_0000_0005n]],
  'sh2add.uw': [[[0x1_0000_0001n, 0n], 4n]],
  'sh3add.uw': [[[0x1_ffff_ffffn, 0n], 0x7_ffff_fff8n]],
  andn: [[[0b1100n, 0b1010n], 0b0100n]],
  orn: [[[0n, M64], 0n], [[0n, 0n], M64]],
  xnor: [[[0x1234n, 0x1234n], M64]],
  min: [[[M64, 1n], M64]],
  minu: [[[M64, 1n], 1n]],
  max: [[[M64, 1n], 1n], [[0x1_0000_0000n, 0xffff_ffffn], 0x1_0000_0000n]],
  maxu: [[[M64, 1n], M64]],
  rol: [[[0x8000_0000_0000_0001n, 1n], 3n], [[0x8000_0000_0000_0001n, 64n], 0x8000_0000_0000_0001n], [[0x1n, 36n], 0x10_0000_0000n]],
  ror: [[[3n, 1n], 0x8000_0000_0000_0001n], [[0x1_0000_0002n, 32n], 0x2_0000_0001n]],
  rolw: [[[0x8000_0001n, 1n], 3n], [[0x4000_0000n, 1n], 0xffff_ffff_8000_0000n]],
  rorw: [[[3n, 1n], 0xffff_ffff_8000_0001n], [[0xf_0000_0001n, 0n], 1n]],
  bclr: [[[M64, 63n], 0x7fff_ffff_ffff_ffffn], [[M64, 67n], 0xffff_ffff_ffff_fff7n]],
  bset: [[[0n, 40n], 1n << 40n]],
  binv: [[[1n, 0n], 0n], [[0n, 31n], 0x8000_0000n]],
  bext: [[[1n << 35n, 35n], 1n], [[1n << 35n, 34n], 0n]],
  'czero.eqz': [[[5n, 0n], 0n], [[5n, 1n << 40n], 5n]],
  'czero.nez': [[[5n, 0n], 5n], [[5n, 1n << 40n], 0n]],
};

/** Register-immediate and unary cases: [instruction with rd = a0, rs1 = a1, input a1, expected a0]. */
const I_CASES: [string, Encoded, bigint, bigint][] = [
  ['addi', A.addi(a0, a1, 1), M64, 0n],
  ['addi -2048', A.addi(a0, a1, -2048), 0n, u64(-2048n)],
  ['slti', A.slti(a0, a1, -4), u64(-5n), 1n],
  ['sltiu -1 is the largest', A.sltiu(a0, a1, -1), 5n, 1n],
  ['xori -1 is not', A.xori(a0, a1, -1), 0n, M64],
  ['ori', A.ori(a0, a1, 0x0f0), 0x1_0000_0000n, 0x1_0000_00f0n],
  ['andi sign-extends', A.andi(a0, a1, -16), M64, u64(-16n)],
  ['slli 63', A.slli(a0, a1, 63), 1n, MIN64],
  ['srli 60', A.srli(a0, a1, 60), M64, 0xfn],
  ['srai 60', A.srai(a0, a1, 60), MIN64, u64(-8n)],
  ['addiw wraps and sign-extends', A.addiw(a0, a1, 1), 0x7fff_ffffn, 0xffff_ffff_8000_0000n],
  ['addiw 0 is sext.w', A.addiw(a0, a1, 0), 0x1_8000_0000n, 0xffff_ffff_8000_0000n],
  ['slliw 31', A.slliw(a0, a1, 31), 1n, 0xffff_ffff_8000_0000n],
  ['srliw 31', A.srliw(a0, a1, 31), 0x8000_0000n, 1n],
  ['sraiw 31', A.sraiw(a0, a1, 31), 0x8000_0000n, M64],
  ['slli.uw 4', A['slli.uw'](a0, a1, 4), 0xdead_beef_8000_0001n, 0x8_0000_0010n],
  ['slli.uw 40', A['slli.uw'](a0, a1, 40), 0xdead_beef_8000_0001n, 0x100_0000_0000n],
  ['clz 0', A.clz(a0, a1), 0n, 64n],
  ['clz 1', A.clz(a0, a1), 1n, 63n],
  ['clz top bit', A.clz(a0, a1), MIN64, 0n],
  ['clz 2^32', A.clz(a0, a1), 0x1_0000_0000n, 31n],
  ['ctz 0', A.ctz(a0, a1), 0n, 64n],
  ['ctz top bit', A.ctz(a0, a1), MIN64, 63n],
  ['ctz 2^32', A.ctz(a0, a1), 0x1_0000_0000n, 32n],
  ['cpop -1', A.cpop(a0, a1), M64, 64n],
  ['cpop', A.cpop(a0, a1), 0x8000_0000_0000_0001n, 2n],
  ['clzw ignores the upper word', A.clzw(a0, a1), 0xffff_ffff_0000_0000n, 32n],
  ['clzw 1', A.clzw(a0, a1), 1n, 31n],
  ['ctzw 0', A.ctzw(a0, a1), 0n, 32n],
  ['ctzw', A.ctzw(a0, a1), 0x8000_0000n, 31n],
  ['cpopw', A.cpopw(a0, a1), 0xffff_ffff_0000_000fn, 4n],
  ['sext.b', A['sext.b'](a0, a1), 0x80n, u64(-128n)],
  ['sext.b positive', A['sext.b'](a0, a1), 0x17fn, 0x7fn],
  ['sext.h', A['sext.h'](a0, a1), 0x8000n, 0xffff_ffff_ffff_8000n],
  ['zext.h', A['zext.h'](a0, a1), 0xffff_ffff_ffff_8001n, 0x8001n],
  ['rori 4', A.rori(a0, a1, 4), 0x1234n, 0x4000_0000_0000_0123n],
  ['rori 32', A.rori(a0, a1, 32), 0x1_0000_0002n, 0x2_0000_0001n],
  ['roriw 31', A.roriw(a0, a1, 31), 1n, 2n],
  ['roriw sign-extends', A.roriw(a0, a1, 1), 1n, 0xffff_ffff_8000_0000n],
  ['orc.b', A['orc.b'](a0, a1), 0x0100_0000_0000_8001n, 0xff00_0000_0000_ffffn],
  ['rev8', A.rev8(a0, a1), 0x0102_0304_0506_0708n, 0x0807_0605_0403_0201n],
  ['bclri 63', A.bclri(a0, a1, 63), M64, 0x7fff_ffff_ffff_ffffn],
  ['bseti 40', A.bseti(a0, a1, 40), 0n, 1n << 40n],
  ['binvi 0', A.binvi(a0, a1, 0), 1n, 0n],
  ['bexti 35', A.bexti(a0, a1, 35), 1n << 35n, 1n],
];

describe('PVM2 conformance: register-register instructions', () => {
  for (const [name, cases] of Object.entries(R_CASES)) {
    it(name, () => {
      const make = A[name as keyof typeof A] as (rd: number, rs1: number, rs2: number) => Encoded;
      for (const [[x, y], expected] of cases) {
        assert.equal(binary(make(a0, a1, a2), x, y), expected, `${name} 0x${x.toString(16)}, 0x${y.toString(16)}`);
      }
    });
  }
});

describe('PVM2 conformance: immediate and unary instructions', () => {
  for (const [name, inst, x, expected] of I_CASES) {
    it(name, () => assert.equal(binary(inst, x, 0n), expected));
  }

  it('lui sign-extends bit 31', () => {
    assert.equal(run([A.lui(a0, 0x80000), A.ecalli(0)]).x(a0), 0xffff_ffff_8000_0000n);
    assert.equal(run([A.lui(a0, 0x12345), A.ecalli(0)]).x(a0), 0x1234_5000n);
  });

  it('auipc adds to its own pc', () => {
    assert.equal(run([A.addi(0, 0, 0), A.auipc(a0, 1), A.ecalli(0)]).x(a0), BigInt(CODE_BASE + 4 + 0x1000));
    assert.equal(run([A.auipc(a0, 0x80000), A.ecalli(0)]).x(a0), u64(BigInt(CODE_BASE) - 0x8000_0000n));
  });

  it('writes to x0 are discarded and x0 reads zero', () => {
    const r = run([A.addi(0, 0, 5), A.add(a0, 0, 0), A.ecalli(0)], { x: { [a0]: 9n } });
    assert.equal(r.x(a0), 0n);
  });

  it('fence and fence.i do nothing', () => {
    const r = run([A.fence(), A['fence.i'](), A.ecalli(0)], { x: { [a0]: 9n } });
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.x(a0), 9n);
  });
});

describe('PVM2 conformance: loads and stores', () => {
  const content = Uint8Array.from([0x80, 0xff, 0x7f, 0x01, 0x88, 0x99, 0xaa, 0xbb, 0xcc]);
  const mapping = { start: DATA_BASE, size: 4096, writable: true, content };
  const load = (inst: Encoded, base = BigInt(DATA_BASE)) => {
    const r = run([inst, A.ecalli(0)], { mappings: [mapping], x: { [a1]: base } });
    assert.equal(r.exit, Exit.HALT);
    return r.x(a0);
  };

  it('lb, lh, lw sign-extend; lbu, lhu, lwu zero-extend; ld reads 8 bytes', () => {
    assert.equal(load(A.lb(a0, a1, 0)), u64(-128n));
    assert.equal(load(A.lbu(a0, a1, 0)), 0x80n);
    assert.equal(load(A.lh(a0, a1, 0)), u64(-128n)); // 0xff80
    assert.equal(load(A.lhu(a0, a1, 0)), 0xff80n);
    assert.equal(load(A.lw(a0, a1, 4)), u64(0xbbaa_9988n - 0x1_0000_0000n));
    assert.equal(load(A.lwu(a0, a1, 4)), 0xbbaa_9988n);
    assert.equal(load(A.ld(a0, a1, 0)), 0xbbaa_9988_017f_ff80n);
  });

  it('misaligned loads and a negative offset', () => {
    assert.equal(load(A.ld(a0, a1, 1)), 0xccbb_aa99_8801_7fffn);
    assert.equal(load(A.lh(a0, a1, -1), BigInt(DATA_BASE) + 3n), 0x017fn);
  });

  it('the effective address is mod 2^32: the upper half of the base is ignored', () => {
    assert.equal(load(A.lbu(a0, a1, 2), 0xffff_ffff_0000_0000n + BigInt(DATA_BASE)), 0x7fn);
  });

  it('sb, sh, sw, sd write the low bytes, little-endian, misaligned allowed', () => {
    const r = run([A.sb(a2, a1, 0), A.sh(a2, a1, 1), A.sw(a2, a1, 3), A.sd(a2, a1, 9), A.ecalli(0)], {
      mappings: [{ ...mapping, content: new Uint8Array(0) }],
      x: { [a1]: BigInt(DATA_BASE), [a2]: 0x0807_0605_0403_0201n },
    });
    assert.equal(r.exit, Exit.HALT);
    assert.deepEqual(Array.from(r.memory[0]!.bytes.subarray(0, 18)), [1, 1, 2, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0]);
  });
});

describe('PVM2 conformance: control transfer', () => {
  const BRANCHES: [string, bigint, bigint, boolean][] = [
    ['beq', 5n, 5n, true], ['beq', 5n, 0x1_0000_0005n, false],
    ['bne', 5n, 0x1_0000_0005n, true], ['bne', 5n, 5n, false],
    ['blt', M64, 1n, true], ['blt', 1n, M64, false],
    ['bge', 1n, M64, true], ['bge', 5n, 5n, true], ['bge', M64, 1n, false],
    ['bltu', 1n, M64, true], ['bltu', M64, 1n, false],
    ['bgeu', M64, 1n, true], ['bgeu', 1n, M64, false],
  ];
  for (const [name, x, y, taken] of BRANCHES) {
    it(`${name} 0x${x.toString(16)}, 0x${y.toString(16)} is ${taken ? '' : 'not '}taken`, () => {
      const make = A[name as 'beq'];
      // taken: skip the a0 = 1 and halt with 0.
      const r = run([make(a1, a2, 8), A.addi(a0, 0, 1), A.ecalli(0)], { x: { [a1]: x, [a2]: y } });
      assert.equal(r.x(a0), taken ? 0n : 1n);
    });
  }

  it('jal links the next pc and jumps backwards and forwards', () => {
    const r = run([A.jal(0, 12), A.ecalli(0), A.ecalli(0), A.jal(ra, -8)]);
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.pc, CODE_BASE + 4);
    assert.equal(r.x(ra), BigInt(CODE_BASE + 16));
  });

  it('jalr clears bit 0 of the target and links rd after reading rs1', () => {
    // a0 = CODE_BASE + 8 + 1; jalr a0, 0(a0) lands on offset 8 and sets a0 to the link.
    const r = run([A.jalr(a0, a0, 0), A.ecalli(0), A.ecalli(0)], { x: { [a0]: BigInt(CODE_BASE + 9) } });
    assert.equal(r.pc, CODE_BASE + 8);
    assert.equal(r.x(a0), BigInt(CODE_BASE + 4));
  });
});

describe('PVM2 conformance: compressed forms expand to their 32-bit instruction', () => {
  const PAIRS: [string, Encoded, Encoded][] = [
    ['c.addi4spn', C.addi4spn(s0, 1020), A.addi(s0, sp, 1020)],
    ['c.lw', C.lw(a0, s1, 124), A.lw(a0, s1, 124)],
    ['c.ld', C.ld(a5, s0, 248), A.ld(a5, s0, 248)],
    ['c.sw', C.sw(a0, s1, 64), A.sw(a0, s1, 64)],
    ['c.sd', C.sd(a0, s1, 136), A.sd(a0, s1, 136)],
    ['c.nop', C.nop(), A.addi(0, 0, 0)],
    ['c.addi', C.addi(a0, -32), A.addi(a0, a0, -32)],
    ['c.addiw', C.addiw(a1, 31), A.addiw(a1, a1, 31)],
    ['c.li', C.li(a2, -1), A.addi(a2, 0, -1)],
    ['c.addi16sp', C.addi16sp(-512), A.addi(sp, sp, -512)],
    ['c.lui', C.lui(a0, 0x3f), A.lui(a0, 0xfffff)],
    ['c.srli', C.srli(a0, 63), A.srli(a0, a0, 63)],
    ['c.srai', C.srai(a1, 32), A.srai(a1, a1, 32)],
    ['c.andi', C.andi(a2, -2), A.andi(a2, a2, -2)],
    ['c.sub', C.sub(s0, s1), A.sub(s0, s0, s1)],
    ['c.xor', C.xor(a0, a1), A.xor(a0, a0, a1)],
    ['c.or', C.or(a0, a1), A.or(a0, a0, a1)],
    ['c.and', C.and(a0, a1), A.and(a0, a0, a1)],
    ['c.subw', C.subw(a0, a1), A.subw(a0, a0, a1)],
    ['c.addw', C.addw(a0, a1), A.addw(a0, a0, a1)],
    ['c.j', C.j(-2048), A.jal(0, -2048)],
    ['c.beqz', C.beqz(a0, 254), A.beq(a0, 0, 254)],
    ['c.bnez', C.bnez(s1, -256), A.bne(s1, 0, -256)],
    ['c.slli', C.slli(a3, 33), A.slli(a3, a3, 33)],
    ['c.lwsp', C.lwsp(ra, 252), A.lw(ra, sp, 252)],
    ['c.ldsp', C.ldsp(a4, 504), A.ld(a4, sp, 504)],
    ['c.jr', C.jr(ra), A.jalr(0, ra, 0)],
    ['c.mv', C.mv(a0, a5), A.add(a0, 0, a5)],
    ['c.jalr', C.jalr(a1), A.jalr(ra, a1, 0)],
    ['c.add', C.add(a0, sp), A.add(a0, a0, sp)],
    ['c.swsp', C.swsp(a5, 252), A.sw(a5, sp, 252)],
    ['c.sdsp', C.sdsp(ra, 504), A.sd(ra, sp, 504)],
  ];
  for (const [name, short, long] of PAIRS) {
    it(name, () => {
      const c = decodeAt(assemble(short), 0);
      const full = decodeAt(assemble(long), 0);
      assert.equal(c.length, 2);
      assert.equal(c.illegal, undefined);
      assert.deepEqual({ ...c, length: 4 }, full);
    });
  }

  it('a compressed program runs like its expansion', () => {
    // a0 = 10; loop: a1 += a0; a0 -= 1 (c.addi); c.bnez back; c.mv a0, a1; halt
    const r = run([C.li(a0, 10), C.li(a1, 0), C.add(a1, a0), C.addi(a0, -1), C.bnez(a0, -4), C.mv(a0, a1), A.ecalli(0)]);
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.exitArg, 55n);
  });
});

describe('PVM2 conformance: the ALU against a BigInt model', () => {
  const S = (v: bigint) => BigInt.asIntN(64, v);
  const U = (v: bigint) => BigInt.asUintN(64, v);
  const W = (v: bigint) => U(BigInt.asIntN(32, v));
  const lowWord = (v: bigint) => BigInt.asUintN(32, v);
  const div = (x: bigint, y: bigint) => (y === 0n ? -1n : x / y);
  const rem = (x: bigint, y: bigint) => (y === 0n ? x : x % y);
  const rotl = (x: bigint, s: bigint) => U((x << s) | (x >> ((64n - s) % 64n)));
  const MODEL: Record<string, (x: bigint, y: bigint) => bigint> = {
    add: (x, y) => U(x + y), sub: (x, y) => U(x - y), sll: (x, y) => U(x << (y & 63n)), srl: (x, y) => x >> (y & 63n),
    sra: (x, y) => U(S(x) >> (y & 63n)), slt: (x, y) => (S(x) < S(y) ? 1n : 0n), sltu: (x, y) => (x < y ? 1n : 0n),
    xor: (x, y) => x ^ y, or: (x, y) => x | y, and: (x, y) => x & y,
    addw: (x, y) => W(x + y), subw: (x, y) => W(x - y), sllw: (x, y) => W(x << (y & 31n)),
    srlw: (x, y) => W(lowWord(x) >> (y & 31n)), sraw: (x, y) => W(BigInt.asIntN(32, x) >> (y & 31n)),
    mul: (x, y) => U(x * y), mulh: (x, y) => U((S(x) * S(y)) >> 64n), mulhsu: (x, y) => U((S(x) * y) >> 64n),
    mulhu: (x, y) => (x * y) >> 64n, mulw: (x, y) => W(x * y),
    div: (x, y) => U(div(S(x), S(y))), divu: (x, y) => U(div(x, y)), rem: (x, y) => U(rem(S(x), S(y))), remu: (x, y) => rem(x, y),
    divw: (x, y) => W(div(BigInt.asIntN(32, x), BigInt.asIntN(32, y))), divuw: (x, y) => W(div(lowWord(x), lowWord(y))),
    remw: (x, y) => W(rem(BigInt.asIntN(32, x), BigInt.asIntN(32, y))), remuw: (x, y) => W(rem(lowWord(x), lowWord(y))),
    'add.uw': (x, y) => U(lowWord(x) + y), sh1add: (x, y) => U((x << 1n) + y), sh2add: (x, y) => U((x << 2n) + y),
    sh3add: (x, y) => U((x << 3n) + y), 'sh1add.uw': (x, y) => U((lowWord(x) << 1n) + y),
    'sh2add.uw': (x, y) => U((lowWord(x) << 2n) + y), 'sh3add.uw': (x, y) => U((lowWord(x) << 3n) + y),
    andn: (x, y) => x & ~y & M64, orn: (x, y) => U(x | ~y), xnor: (x, y) => U(~(x ^ y)),
    min: (x, y) => (S(x) < S(y) ? x : y), max: (x, y) => (S(x) < S(y) ? y : x), minu: (x, y) => (x < y ? x : y), maxu: (x, y) => (x < y ? y : x),
    rol: (x, y) => rotl(x, y & 63n), ror: (x, y) => rotl(x, (64n - (y & 63n)) % 64n),
    rolw: (x, y) => { const v = lowWord(x), s = y & 31n; return W((v << s) | (v >> ((32n - s) % 32n))); },
    rorw: (x, y) => { const v = lowWord(x), s = y & 31n; return W((v >> s) | (v << ((32n - s) % 32n))); },
    bclr: (x, y) => x & ~(1n << (y & 63n)) & M64, bset: (x, y) => x | (1n << (y & 63n)), binv: (x, y) => x ^ (1n << (y & 63n)),
    bext: (x, y) => (x >> (y & 63n)) & 1n,
    'czero.eqz': (x, y) => (y === 0n ? 0n : x), 'czero.nez': (x, y) => (y === 0n ? x : 0n),
  };

  // Seeded xorshift, so a failure reproduces.
  let state = 0x9e3779b9;
  const next32 = () => { state ^= state << 13; state ^= state >>> 17; state ^= state << 5; return BigInt(state >>> 0); };
  const EDGES = [0n, 1n, 2n, 31n, 32n, 63n, 64n, M64, MIN64, MIN64 - 1n, 0x7fff_ffffn, 0x8000_0000n, 0xffff_ffffn, 0x1_0000_0000n, u64(-2n)];
  const operand = () => (next32() % 3n === 0n ? EDGES[Number(next32() % BigInt(EDGES.length))]! : (next32() << 32n) | next32());

  it('agrees on every register-register instruction for edge and random operands', () => {
    assert.deepEqual(Object.keys(MODEL).sort(), Object.keys(R_CASES).sort(), 'the model covers exactly the R-type instructions');
    for (const [name, model] of Object.entries(MODEL)) {
      const make = A[name as keyof typeof A] as (rd: number, rs1: number, rs2: number) => Encoded;
      // One program per instruction: 40 applications, each followed by its own halt, checked one by one.
      for (let i = 0; i < 40; i++) {
        const x = operand(), y = operand();
        assert.equal(binary(make(a0, a1, a2), x, y), model(x, y), `${name}(0x${x.toString(16)}, 0x${y.toString(16)})`);
      }
    }
  });
});
