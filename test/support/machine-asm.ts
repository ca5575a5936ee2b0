/**
 * A tiny RISC-V assembler for the machine tests, written from the ISA manual's
 * field layouts (not from lib/machine's decoder), so tests hand-assemble exactly
 * the bits they mean. An instruction is `{ bits, length }`; `assemble` lays them out.
 */

export interface Encoded {
  bits: number;
  length: 2 | 4;
}

/** ABI register names → x numbers, including the ones PVM2 forbids. */
export const X = {
  zero: 0, ra: 1, sp: 2, gp: 3, tp: 4, t0: 5, t1: 6, t2: 7, s0: 8, s1: 9,
  a0: 10, a1: 11, a2: 12, a3: 13, a4: 14, a5: 15, a6: 16, a7: 17, s2: 18, t6: 31,
} as const;

const w = (bits: number): Encoded => ({ bits: bits >>> 0, length: 4 });
const hw = (bits: number): Encoded => ({ bits: bits & 0xffff, length: 2 });

export const rType = (f7: number, f3: number, opcode: number) => (rd: number, rs1: number, rs2: number) =>
  w((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode);
export const iType = (f3: number, opcode: number) => (rd: number, rs1: number, imm: number) =>
  w(((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode);
/** Shift-immediate (and Zbs/Zbb immediate) forms: funct6 in 31:26, shamt in 25:20. */
const shiftType = (f6: number, f3: number, opcode: number) => (rd: number, rs1: number, shamt: number) =>
  w((f6 << 26) | ((shamt & 63) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode);
/** Zbb unary forms: a fixed 12-bit immediate. */
const unaryType = (imm12: number, f3: number, opcode: number) => (rd: number, rs1: number) =>
  w((imm12 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode);
const sType = (f3: number) => (rs2: number, rs1: number, imm: number) =>
  w((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | 0x23);
const bType = (f3: number) => (rs1: number, rs2: number, offset: number) =>
  w((((offset >> 12) & 1) << 31) | (((offset >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12)
    | (((offset >> 1) & 0xf) << 8) | (((offset >> 11) & 1) << 7) | 0x63);
const uType = (opcode: number) => (rd: number, imm20: number) => w(((imm20 & 0xfffff) << 12) | (rd << 7) | opcode);

const OP = 0x33, OP32 = 0x3b, IMM = 0x13, IMM32 = 0x1b, LOAD = 0x03;

export const A = {
  lui: uType(0x37), auipc: uType(0x17),
  jal: (rd: number, offset: number) => w((((offset >> 20) & 1) << 31) | (((offset >> 1) & 0x3ff) << 21) | (((offset >> 11) & 1) << 20)
    | (((offset >> 12) & 0xff) << 12) | (rd << 7) | 0x6f),
  jalr: iType(0, 0x67),
  beq: bType(0), bne: bType(1), blt: bType(4), bge: bType(5), bltu: bType(6), bgeu: bType(7),
  lb: iType(0, LOAD), lh: iType(1, LOAD), lw: iType(2, LOAD), ld: iType(3, LOAD), lbu: iType(4, LOAD), lhu: iType(5, LOAD), lwu: iType(6, LOAD),
  sb: sType(0), sh: sType(1), sw: sType(2), sd: sType(3),
  addi: iType(0, IMM), slti: iType(2, IMM), sltiu: iType(3, IMM), xori: iType(4, IMM), ori: iType(6, IMM), andi: iType(7, IMM),
  slli: shiftType(0x00, 1, IMM), srli: shiftType(0x00, 5, IMM), srai: shiftType(0x10, 5, IMM),
  addiw: iType(0, IMM32),
  slliw: rType(0x00, 1, IMM32), srliw: rType(0x00, 5, IMM32), sraiw: rType(0x20, 5, IMM32), // rs2 field = shamt
  add: rType(0x00, 0, OP), sub: rType(0x20, 0, OP), sll: rType(0x00, 1, OP), slt: rType(0x00, 2, OP), sltu: rType(0x00, 3, OP),
  xor: rType(0x00, 4, OP), srl: rType(0x00, 5, OP), sra: rType(0x20, 5, OP), or: rType(0x00, 6, OP), and: rType(0x00, 7, OP),
  addw: rType(0x00, 0, OP32), subw: rType(0x20, 0, OP32), sllw: rType(0x00, 1, OP32), srlw: rType(0x00, 5, OP32), sraw: rType(0x20, 5, OP32),
  mul: rType(0x01, 0, OP), mulh: rType(0x01, 1, OP), mulhsu: rType(0x01, 2, OP), mulhu: rType(0x01, 3, OP),
  div: rType(0x01, 4, OP), divu: rType(0x01, 5, OP), rem: rType(0x01, 6, OP), remu: rType(0x01, 7, OP),
  mulw: rType(0x01, 0, OP32), divw: rType(0x01, 4, OP32), divuw: rType(0x01, 5, OP32), remw: rType(0x01, 6, OP32), remuw: rType(0x01, 7, OP32),
  'add.uw': rType(0x04, 0, OP32), sh1add: rType(0x10, 2, OP), sh2add: rType(0x10, 4, OP), sh3add: rType(0x10, 6, OP),
  'sh1add.uw': rType(0x10, 2, OP32), 'sh2add.uw': rType(0x10, 4, OP32), 'sh3add.uw': rType(0x10, 6, OP32),
  'slli.uw': shiftType(0x02, 1, IMM32),
  andn: rType(0x20, 7, OP), orn: rType(0x20, 6, OP), xnor: rType(0x20, 4, OP),
  clz: unaryType(0x600, 1, IMM), ctz: unaryType(0x601, 1, IMM), cpop: unaryType(0x602, 1, IMM),
  clzw: unaryType(0x600, 1, IMM32), ctzw: unaryType(0x601, 1, IMM32), cpopw: unaryType(0x602, 1, IMM32),
  min: rType(0x05, 4, OP), minu: rType(0x05, 5, OP), max: rType(0x05, 6, OP), maxu: rType(0x05, 7, OP),
  'sext.b': unaryType(0x604, 1, IMM), 'sext.h': unaryType(0x605, 1, IMM), 'zext.h': unaryType(0x080, 4, OP32),
  rol: rType(0x30, 1, OP), ror: rType(0x30, 5, OP), rori: shiftType(0x18, 5, IMM),
  rolw: rType(0x30, 1, OP32), rorw: rType(0x30, 5, OP32), roriw: rType(0x30, 5, IMM32), // rs2 field = shamt
  'orc.b': unaryType(0x287, 5, IMM), rev8: unaryType(0x6b8, 5, IMM),
  bclr: rType(0x24, 1, OP), bclri: shiftType(0x12, 1, IMM), bset: rType(0x14, 1, OP), bseti: shiftType(0x0a, 1, IMM),
  binv: rType(0x34, 1, OP), binvi: shiftType(0x1a, 1, IMM), bext: rType(0x24, 5, OP), bexti: shiftType(0x12, 5, IMM),
  'czero.eqz': rType(0x07, 5, OP), 'czero.nez': rType(0x07, 7, OP),
  fence: () => w(0x0ff0000f), 'fence.i': () => w(0x0000100f),
  ecall: () => w(0x00000073), ebreak: () => w(0x00100073),
  // custom-0 (opcode 0001011)
  trap: () => w(0x0b), ecallJar: () => w((1 << 12) | 0x0b), ecalli: (imm: number) => w(((imm & 0xfff) << 20) | (2 << 12) | 0x0b),
  fallthrough: () => w((4 << 12) | 0x0b),
};

/** Compressed forms (RVC, RV64), from the field diagrams of the C extension. */
const cRegPrime = (x: number) => {
  if (x < 8 || x > 15) throw new Error(`x${x} has no compressed encoding`);
  return x - 8;
};
const bit = (v: number, i: number) => (v >> i) & 1;
const field = (v: number, hi: number, lo: number) => (v >> lo) & ((1 << (hi - lo + 1)) - 1);

export const C = {
  addi4spn: (rd: number, imm: number) => hw((field(imm, 5, 4) << 11) | (field(imm, 9, 6) << 7) | (bit(imm, 2) << 6) | (bit(imm, 3) << 5) | (cRegPrime(rd) << 2)),
  lw: (rd: number, rs1: number, imm: number) => hw((2 << 13) | (field(imm, 5, 3) << 10) | (cRegPrime(rs1) << 7) | (bit(imm, 2) << 6) | (bit(imm, 6) << 5) | (cRegPrime(rd) << 2)),
  ld: (rd: number, rs1: number, imm: number) => hw((3 << 13) | (field(imm, 5, 3) << 10) | (cRegPrime(rs1) << 7) | (field(imm, 7, 6) << 5) | (cRegPrime(rd) << 2)),
  sw: (rs2: number, rs1: number, imm: number) => hw((6 << 13) | (field(imm, 5, 3) << 10) | (cRegPrime(rs1) << 7) | (bit(imm, 2) << 6) | (bit(imm, 6) << 5) | (cRegPrime(rs2) << 2)),
  sd: (rs2: number, rs1: number, imm: number) => hw((7 << 13) | (field(imm, 5, 3) << 10) | (cRegPrime(rs1) << 7) | (field(imm, 7, 6) << 5) | (cRegPrime(rs2) << 2)),
  nop: () => hw(0x0001),
  addi: (rd: number, imm: number) => hw((bit(imm, 5) << 12) | (rd << 7) | (field(imm, 4, 0) << 2) | 1),
  addiw: (rd: number, imm: number) => hw((1 << 13) | (bit(imm, 5) << 12) | (rd << 7) | (field(imm, 4, 0) << 2) | 1),
  li: (rd: number, imm: number) => hw((2 << 13) | (bit(imm, 5) << 12) | (rd << 7) | (field(imm, 4, 0) << 2) | 1),
  addi16sp: (imm: number) => hw((3 << 13) | (bit(imm, 9) << 12) | (2 << 7) | (bit(imm, 4) << 6) | (bit(imm, 6) << 5) | (field(imm, 8, 7) << 3) | (bit(imm, 5) << 2) | 1),
  lui: (rd: number, imm6: number) => hw((3 << 13) | (bit(imm6, 5) << 12) | (rd << 7) | (field(imm6, 4, 0) << 2) | 1),
  srli: (rd: number, shamt: number) => hw((4 << 13) | (bit(shamt, 5) << 12) | (0 << 10) | (cRegPrime(rd) << 7) | (field(shamt, 4, 0) << 2) | 1),
  srai: (rd: number, shamt: number) => hw((4 << 13) | (bit(shamt, 5) << 12) | (1 << 10) | (cRegPrime(rd) << 7) | (field(shamt, 4, 0) << 2) | 1),
  andi: (rd: number, imm: number) => hw((4 << 13) | (bit(imm, 5) << 12) | (2 << 10) | (cRegPrime(rd) << 7) | (field(imm, 4, 0) << 2) | 1),
  sub: (rd: number, rs2: number) => hw((4 << 13) | (3 << 10) | (cRegPrime(rd) << 7) | (0 << 5) | (cRegPrime(rs2) << 2) | 1),
  xor: (rd: number, rs2: number) => hw((4 << 13) | (3 << 10) | (cRegPrime(rd) << 7) | (1 << 5) | (cRegPrime(rs2) << 2) | 1),
  or: (rd: number, rs2: number) => hw((4 << 13) | (3 << 10) | (cRegPrime(rd) << 7) | (2 << 5) | (cRegPrime(rs2) << 2) | 1),
  and: (rd: number, rs2: number) => hw((4 << 13) | (3 << 10) | (cRegPrime(rd) << 7) | (3 << 5) | (cRegPrime(rs2) << 2) | 1),
  subw: (rd: number, rs2: number) => hw((4 << 13) | (1 << 12) | (3 << 10) | (cRegPrime(rd) << 7) | (0 << 5) | (cRegPrime(rs2) << 2) | 1),
  addw: (rd: number, rs2: number) => hw((4 << 13) | (1 << 12) | (3 << 10) | (cRegPrime(rd) << 7) | (1 << 5) | (cRegPrime(rs2) << 2) | 1),
  j: (offset: number) => hw((5 << 13) | (bit(offset, 11) << 12) | (bit(offset, 4) << 11) | (field(offset, 9, 8) << 9) | (bit(offset, 10) << 8)
    | (bit(offset, 6) << 7) | (bit(offset, 7) << 6) | (field(offset, 3, 1) << 3) | (bit(offset, 5) << 2) | 1),
  beqz: (rs1: number, offset: number) => hw((6 << 13) | (bit(offset, 8) << 12) | (field(offset, 4, 3) << 10) | (cRegPrime(rs1) << 7)
    | (field(offset, 7, 6) << 5) | (field(offset, 2, 1) << 3) | (bit(offset, 5) << 2) | 1),
  bnez: (rs1: number, offset: number) => hw((7 << 13) | (bit(offset, 8) << 12) | (field(offset, 4, 3) << 10) | (cRegPrime(rs1) << 7)
    | (field(offset, 7, 6) << 5) | (field(offset, 2, 1) << 3) | (bit(offset, 5) << 2) | 1),
  slli: (rd: number, shamt: number) => hw((bit(shamt, 5) << 12) | (rd << 7) | (field(shamt, 4, 0) << 2) | 2),
  lwsp: (rd: number, imm: number) => hw((2 << 13) | (bit(imm, 5) << 12) | (rd << 7) | (field(imm, 4, 2) << 4) | (field(imm, 7, 6) << 2) | 2),
  ldsp: (rd: number, imm: number) => hw((3 << 13) | (bit(imm, 5) << 12) | (rd << 7) | (field(imm, 4, 3) << 5) | (field(imm, 8, 6) << 2) | 2),
  jr: (rs1: number) => hw((4 << 13) | (rs1 << 7) | 2),
  mv: (rd: number, rs2: number) => hw((4 << 13) | (rd << 7) | (rs2 << 2) | 2),
  ebreak: () => hw(0x9002),
  jalr: (rs1: number) => hw((4 << 13) | (1 << 12) | (rs1 << 7) | 2),
  add: (rd: number, rs2: number) => hw((4 << 13) | (1 << 12) | (rd << 7) | (rs2 << 2) | 2),
  swsp: (rs2: number, imm: number) => hw((6 << 13) | (field(imm, 5, 2) << 9) | (field(imm, 7, 6) << 7) | (rs2 << 2) | 2),
  sdsp: (rs2: number, imm: number) => hw((7 << 13) | (field(imm, 5, 3) << 10) | (field(imm, 8, 6) << 7) | (rs2 << 2) | 2),
};

/** Lays instructions out little-endian, in order. */
export function assemble(...insts: Encoded[]): Uint8Array {
  const out = new Uint8Array(insts.reduce((n, i) => n + i.length, 0));
  let at = 0;
  for (const { bits, length } of insts) {
    for (let i = 0; i < length; i++) out[at + i] = (bits >>> (8 * i)) & 0xff;
    at += length;
  }
  return out;
}
