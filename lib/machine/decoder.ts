/**
 * PVM2 decoder: RV64E + M + C + Zba + Zbb + Zbs + Zicond + custom-0. Compressed
 * forms are expanded to the 32-bit instruction they stand for; anything else
 * decodes as illegal (and is a PANIC when executed).
 *
 * Length rule (both engines): an instruction whose low two bits are `11` is 4 bytes
 * long, any other is 2 bytes. An instruction cut off by the end of the code is an
 * illegal encoding.
 */
import { Gas } from './abi.js';
import { FORM_REGISTERS, ILLEGAL_INFO, ISA, mnemonicOf, TERMINATOR_FORMS } from './isa.js';

export interface Instruction {
  /** Byte offset into the code. */
  offset: number;
  length: 2 | 4;
  /** Mnemonic of the expanded (32-bit) form, e.g. `addi` for `c.addi`; a short description when illegal. */
  op: string;
  /** Register numbers x0..x31 as encoded (0 when the form has no such operand). */
  rd: number;
  rs1: number;
  rs2: number;
  /**
   * The immediate: sign-extended for I/S/B/J forms, the shift amount for shifts,
   * the value added (imm20 << 12, sign-extended) for lui/auipc, the pc-relative
   * byte offset for branches and jal.
   */
  imm: number;
  /** Set when the instruction is not valid PVM2: it names x3, x4 or x16..x31, or is not in the ISA. */
  illegal?: 'register' | 'encoding';
  isTerminator: boolean;
  gas: number;
}

/** RV64E has x0..x15, minus x3 (gp) and x4 (tp). */
export function isLegalRegister(x: number): boolean {
  return x <= 15 && x !== 3 && x !== 4;
}

function instruction(offset: number, length: 2 | 4, op: string, rd = 0, rs1 = 0, rs2 = 0, imm = 0): Instruction {
  const spec = ISA[op];
  if (spec === undefined) throw new Error(`decoder table has no mnemonic '${op}'`);
  const uses = FORM_REGISTERS[spec.form];
  const inst: Instruction = {
    offset, length, op,
    rd: uses.rd ? rd : 0,
    rs1: uses.rs1 ? rs1 : 0,
    rs2: uses.rs2 ? rs2 : 0,
    imm,
    isTerminator: TERMINATOR_FORMS.has(spec.form),
    gas: Gas[spec.gas],
  };
  if (!isLegalRegister(inst.rd) || !isLegalRegister(inst.rs1) || !isLegalRegister(inst.rs2)) {
    // Not PVM2: it panics when run, so like any illegal instruction it ends its block.
    inst.illegal = 'register';
    inst.isTerminator = true;
  }
  return inst;
}

function illegal(offset: number, length: 2 | 4, what: string): Instruction {
  return { offset, length, op: what, rd: 0, rs1: 0, rs2: 0, imm: 0, illegal: 'encoding', isTerminator: true, gas: Gas[ILLEGAL_INFO.gas] };
}

/** Bits hi..lo of `x` (hi - lo < 31), unsigned. */
function bits(x: number, hi: number, lo: number): number {
  return (x >>> lo) & ((1 << (hi - lo + 1)) - 1);
}

/** Sign-extends the low `width` bits of `x`. */
function signExtend(x: number, width: number): number {
  return (x << (32 - width)) >> (32 - width);
}

/** Decodes the instruction at byte `offset` of `code`. */
export function decodeAt(code: Uint8Array, offset: number): Instruction {
  if (!Number.isInteger(offset) || offset < 0 || offset >= code.length) throw new RangeError(`offset ${offset} is outside the code (${code.length} bytes)`);
  const is32 = (code[offset] & 3) === 3;
  const length = is32 ? 4 : 2;
  if (offset + length > code.length) return illegal(offset, length, 'truncated');
  if (is32) {
    const word = (code[offset] | (code[offset + 1] << 8) | (code[offset + 2] << 16) | (code[offset + 3] << 24)) >>> 0;
    return decode32(word, offset);
  }
  return decode16(code[offset] | (code[offset + 1] << 8), offset);
}

/** What an illegal 32-bit word is, for messages. */
function illegalKind(w: number): string {
  switch (w & 0x7f) {
    case 0x73: return w === 0x00000073 ? 'ecall' : w === 0x00100073 ? 'ebreak' : bits(w, 14, 12) === 0 ? 'privileged' : 'csr';
    case 0x0b: return 'custom-0 reserved';
    case 0x2f: return 'atomic';
    case 0x07: case 0x27: case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53: return 'floating point';
    default: return 'illegal';
  }
}

/** The mnemonic comes from the instruction table's encodings; the immediate from its form. */
function decode32(w: number, offset: number): Instruction {
  const op = mnemonicOf(w);
  if (op === undefined) return illegal(offset, 4, illegalKind(w));
  const spec = ISA[op]!;
  const rd = bits(w, 11, 7);
  const rs2 = bits(w, 24, 20);
  const immI = w >> 20;
  let imm = 0;
  switch (spec.form) {
    case 'upper': imm = w & 0xfffff000 | 0; break;
    case 'jal': imm = (signExtend(w >>> 31, 1) << 20) | (bits(w, 19, 12) << 12) | (bits(w, 20, 20) << 11) | (bits(w, 30, 21) << 1); break;
    case 'branch': imm = (signExtend(w >>> 31, 1) << 12) | (bits(w, 7, 7) << 11) | (bits(w, 30, 25) << 5) | (bits(w, 11, 8) << 1); break;
    case 'store': imm = ((w >> 25) << 5) | rd; break;
    case 'load': case 'jalr': case 'ecalli': imm = immI; break;
    // A shift fixing funct7 takes a 5-bit amount (the rs2 field), one fixing funct6 a 6-bit one.
    case 'imm': imm = spec.enc.mask >>> 25 === 0x7f ? rs2 : spec.enc.mask >>> 26 === 0x3f ? bits(w, 25, 20) : immI; break;
    default: break;
  }
  return instruction(offset, 4, op, rd, bits(w, 19, 15), rs2, imm);
}

function decode16(h: number, offset: number): Instruction {
  const quadrant = h & 3;
  const f3 = h >>> 13;
  const rdFull = bits(h, 11, 7);
  const rs2Full = bits(h, 6, 2);
  const rdPrime = 8 + bits(h, 4, 2);
  const rs1Prime = 8 + bits(h, 9, 7);
  const imm6 = signExtend((bits(h, 12, 12) << 5) | bits(h, 6, 2), 6);
  const shamt6 = (bits(h, 12, 12) << 5) | bits(h, 6, 2);
  const make = (op: string, rd: number, rs1: number, rs2: number, imm: number) => instruction(offset, 2, op, rd, rs1, rs2, imm);
  const bad = (what = 'illegal') => illegal(offset, 2, what);
  // Offsets of the word- and doubleword-sized loads/stores (c.lw/c.sw, c.ld/c.sd).
  const wordOffset = (bits(h, 12, 10) << 3) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 6);
  const doubleOffset = (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6);

  if (quadrant === 0) {
    switch (f3) {
      case 0: {
        const imm = (bits(h, 12, 11) << 4) | (bits(h, 10, 7) << 6) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 3);
        return imm === 0 ? bad() : make('addi', rdPrime, 2, 0, imm); // c.addi4spn; 0 (and the all-zero halfword) is reserved
      }
      case 2: return make('lw', rdPrime, rs1Prime, 0, wordOffset);
      case 3: return make('ld', rdPrime, rs1Prime, 0, doubleOffset);
      case 6: return make('sw', 0, rs1Prime, rdPrime, wordOffset);
      case 7: return make('sd', 0, rs1Prime, rdPrime, doubleOffset);
      case 1: case 5: return bad('floating point');
      default: return bad();
    }
  }
  if (quadrant === 1) {
    switch (f3) {
      case 0: return make('addi', rdFull, rdFull, 0, imm6); // c.addi, c.nop and their hints
      case 1: return rdFull === 0 ? bad() : make('addiw', rdFull, rdFull, 0, imm6);
      case 2: return make('addi', rdFull, 0, 0, imm6); // c.li
      case 3: {
        if (rdFull === 2) { // c.addi16sp
          const imm = signExtend((bits(h, 12, 12) << 9) | (bits(h, 6, 6) << 4) | (bits(h, 5, 5) << 6) | (bits(h, 4, 3) << 7) | (bits(h, 2, 2) << 5), 10);
          return imm === 0 ? bad() : make('addi', 2, 2, 0, imm);
        }
        return imm6 === 0 ? bad() : make('lui', rdFull, 0, 0, imm6 << 12); // c.lui
      }
      case 4: {
        const rd = rs1Prime;
        switch (bits(h, 11, 10)) {
          case 0: return make('srli', rd, rd, 0, shamt6);
          case 1: return make('srai', rd, rd, 0, shamt6);
          case 2: return make('andi', rd, rd, 0, imm6);
          default: {
            const rs2 = rdPrime;
            const name = (bits(h, 12, 12) === 0 ? ['sub', 'xor', 'or', 'and'] : ['subw', 'addw', '', ''])[bits(h, 6, 5)];
            return name ? make(name, rd, rd, rs2, 0) : bad();
          }
        }
      }
      case 5: { // c.j
        const imm = signExtend((bits(h, 12, 12) << 11) | (bits(h, 11, 11) << 4) | (bits(h, 10, 9) << 8) | (bits(h, 8, 8) << 10)
          | (bits(h, 7, 7) << 6) | (bits(h, 6, 6) << 7) | (bits(h, 5, 3) << 1) | (bits(h, 2, 2) << 5), 12);
        return make('jal', 0, 0, 0, imm);
      }
      default: { // c.beqz, c.bnez
        const imm = signExtend((bits(h, 12, 12) << 8) | (bits(h, 11, 10) << 3) | (bits(h, 6, 5) << 6) | (bits(h, 4, 3) << 1) | (bits(h, 2, 2) << 5), 9);
        return make(f3 === 6 ? 'beq' : 'bne', 0, rs1Prime, 0, imm);
      }
    }
  }
  if (quadrant === 2) {
    switch (f3) {
      case 0: return make('slli', rdFull, rdFull, 0, shamt6);
      case 2: { // c.lwsp
        const imm = (bits(h, 12, 12) << 5) | (bits(h, 6, 4) << 2) | (bits(h, 3, 2) << 6);
        return rdFull === 0 ? bad() : make('lw', rdFull, 2, 0, imm);
      }
      case 3: { // c.ldsp
        const imm = (bits(h, 12, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6);
        return rdFull === 0 ? bad() : make('ld', rdFull, 2, 0, imm);
      }
      case 4:
        if (bits(h, 12, 12) === 0) {
          if (rs2Full !== 0) return make('add', rdFull, 0, rs2Full, 0); // c.mv
          return rdFull === 0 ? bad() : make('jalr', 0, rdFull, 0, 0); // c.jr
        }
        if (rs2Full !== 0) return make('add', rdFull, rdFull, rs2Full, 0); // c.add
        if (rdFull === 0) return bad('ebreak'); // c.ebreak
        return make('jalr', 1, rdFull, 0, 0); // c.jalr
      case 6: return make('sw', 0, 2, rs2Full, (bits(h, 12, 9) << 2) | (bits(h, 8, 7) << 6)); // c.swsp
      case 7: return make('sd', 0, 2, rs2Full, (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6)); // c.sdsp
      default: return bad('floating point');
    }
  }
  return bad(); // quadrant 3 is a 32-bit instruction; never reached
}
