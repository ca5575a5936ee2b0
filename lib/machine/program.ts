/**
 * Pre-decoding: a program is decoded once (linearly from offset 0) into typed
 * arrays indexed by halfword (offset / 2), which is what the interpreter runs.
 * It also carries the block structure and gas of SPEC section 5.
 */
import { CODE_BASE } from './abi.js';
import { decodeAt, type Instruction } from './decoder.js';
import { ILLEGAL_INFO, ISA, Op } from './isa.js';

/** Register-file slots: 0..15 are x0..x15 (0 always reads zero, 3 and 4 are never touched). */
export const REG_SLOTS = 16;
/** Writes to x0 land here and are never read. */
export const DISCARD_SLOT = 16;
/** Immediates live in read-only slots from here on, so `addi` runs as `add`. */
export const FIRST_CONST_SLOT = 17;

export interface Program {
  readonly code: Uint8Array;
  /** The linear decode from offset 0, in order. */
  readonly instructions: readonly Instruction[];
  /** Per halfword: the operation (`Op.NONE` where no instruction starts; `Op.END` just past the code). */
  readonly op: Uint8Array;
  /** Per halfword: destination slot, first and second source slots (the second may be a constant slot). */
  readonly rd: Uint8Array;
  readonly ra: Uint32Array;
  readonly rb: Uint32Array;
  /** Per halfword: memory offset, `ecalli` number, or a branch/jal target as a halfword index (-1 = invalid target). */
  readonly imm: Int32Array;
  /** Per halfword: instruction length in halfwords. */
  readonly size: Uint8Array;
  /** Per halfword: gas of this instruction and the rest of its block (what entering here charges). */
  readonly gasSuffix: Float64Array;
  /** Per halfword: number of instructions from here to the end of its block (for instruction counts). */
  readonly countSuffix: Float64Array;
  /** Per halfword: 1 at a basic-block start. */
  readonly blockStart: Uint8Array;
  /** Values of the constant slots FIRST_CONST_SLOT.., as 32-bit halves. */
  readonly constLo: Int32Array;
  readonly constHi: Int32Array;
}

/** True when `offset` (bytes into the code) starts a basic block. */
export function isBlockStart(program: Program, offset: number): boolean {
  return Number.isInteger(offset) && offset >= 0 && offset < program.code.length && offset % 2 === 0 && program.blockStart[offset / 2] === 1;
}

/** The gas charged when control enters the instruction at `offset`: its cost plus the rest of its block. */
export function gasFrom(program: Program, offset: number): number {
  return program.gasSuffix[offset / 2];
}

/** Bytes the pre-decoded form takes per byte of code: ten arrays of one entry per halfword (see prepareProgram). */
export const PROGRAM_BYTES_PER_CODE_BYTE = (1 + 1 + 1 + 4 + 4 + 4 + 1 + 8 + 8 + 1) / 2;

/** Decodes `code` once into the form the interpreter runs. */
export function prepareProgram(code: Uint8Array): Program {
  const halves = Math.ceil(code.length / 2);
  const instructions: Instruction[] = [];
  const boundary = new Uint8Array(halves + 1);
  for (let offset = 0; offset < code.length;) {
    const inst = decodeAt(code, offset);
    instructions.push(inst);
    boundary[offset / 2] = 1;
    offset += inst.length;
  }

  const op = new Uint8Array(halves + 1);
  const rd = new Uint8Array(halves + 1);
  const ra = new Uint32Array(halves + 1);
  const rb = new Uint32Array(halves + 1);
  const imm = new Int32Array(halves + 1);
  const size = new Uint8Array(halves + 1);
  const gasSuffix = new Float64Array(halves + 1);
  const countSuffix = new Float64Array(halves + 1);
  const blockStart = new Uint8Array(halves + 1);
  op[halves] = Op.END;

  const constants = new Map<string, number>();
  const constLo: number[] = [];
  const constHi: number[] = [];
  /** The slot holding the 64-bit value `lo | hi << 32` (hi defaults to the sign of lo). */
  const constSlot = (lo: number, hi = lo >> 31): number => {
    const key = `${lo | 0}:${hi | 0}`;
    let slot = constants.get(key);
    if (slot === undefined) {
      slot = FIRST_CONST_SLOT + constLo.length;
      constants.set(key, slot);
      constLo.push(lo | 0);
      constHi.push(hi | 0);
    }
    return slot;
  };
  /** Halfword index of a pc-relative target, or -1 when it is not an instruction of the linear decode. */
  const target = (inst: Instruction): number => {
    const t = inst.offset + inst.imm;
    return t >= 0 && t < code.length && boundary[t / 2] === 1 ? t / 2 : -1;
  };

  for (const inst of instructions) {
    const h = inst.offset / 2;
    const spec = inst.illegal ? ILLEGAL_INFO : ISA[inst.op];
    op[h] = spec.op;
    size[h] = inst.length / 2;
    rd[h] = inst.rd === 0 ? DISCARD_SLOT : inst.rd;
    ra[h] = inst.rs1;
    rb[h] = inst.rs2;
    switch (spec.form) {
      case 'imm': rb[h] = constSlot(inst.imm); break;
      case 'upper': {
        // lui adds imm to x0; auipc's sum is known now: pc + imm, a value in (-2^31, 2^32).
        const value = inst.op === 'auipc' ? CODE_BASE + inst.offset + inst.imm : inst.imm;
        ra[h] = 0;
        rb[h] = constSlot(value, value < 0 ? -1 : 0);
        break;
      }
      case 'branch': case 'jal': imm[h] = target(inst); break;
      case 'load': case 'store': case 'jalr': case 'ecalli': imm[h] = inst.imm; break;
      default: break;
    }
  }

  // Blocks: offset 0 and every offset after a terminator. Gas and counts are suffix
  // sums up to and including the block's terminator (or the end of the code).
  let nextGas = 0;
  let nextCount = 0;
  for (let i = instructions.length - 1; i >= 0; i--) {
    const inst = instructions[i];
    const h = inst.offset / 2;
    if (inst.isTerminator) { nextGas = 0; nextCount = 0; }
    gasSuffix[h] = inst.gas + nextGas;
    countSuffix[h] = 1 + nextCount;
    nextGas = gasSuffix[h];
    nextCount = countSuffix[h];
    if (i === 0 || instructions[i - 1].isTerminator) blockStart[h] = 1;
  }

  return {
    code, instructions, op, rd, ra, rb, imm, size, gasSuffix, countSuffix, blockStart,
    constLo: Int32Array.from(constLo), constHi: Int32Array.from(constHi),
  };
}
