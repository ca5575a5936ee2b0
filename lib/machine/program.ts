/**
 * Pre-decoding: a program is decoded once (linearly from offset 0) into typed
 * arrays indexed by halfword (offset / 2), which is what the interpreter runs.
 * It also carries the block structure and gas of SPEC section 5.
 */
import { NubError } from '../errors.js';
import { MAX_PROGRAM_BYTES } from '../limits.js';
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
  /** The linear decode from offset 0, in order (decoded afresh on each read: for tools and tests, not the interpreter). */
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

/** Bytes the pre-decoded form takes per byte of code: its typed arrays hold one entry per halfword. */
export const PROGRAM_BYTES_PER_CODE_BYTE = (1 + 1 + 4 + 4 + 4 + 1 + 8 + 8 + 1) / 2;

/** The linear decode from offset 0, in order (decoded again on each call: the Program keeps none of it). */
function* linearDecode(code: Uint8Array): Generator<Instruction> {
  for (let offset = 0; offset < code.length;) {
    const inst = decodeAt(code, offset);
    yield inst;
    offset += inst.length;
  }
}

/**
 * Decodes `code` once into the form the interpreter runs. Only typed arrays are kept
 * (no object per instruction), so a large code costs PROGRAM_BYTES_PER_CODE_BYTE per
 * byte off the JS heap; more than MAX_PROGRAM_BYTES is 'MemoryBudgetExceeded'.
 */
export function prepareProgram(code: Uint8Array): Program {
  const needed = Math.ceil(code.length * PROGRAM_BYTES_PER_CODE_BYTE);
  if (needed > MAX_PROGRAM_BYTES) {
    throw new NubError('MemoryBudgetExceeded', `the pre-decoded form of ${code.length} bytes of code takes ${needed} bytes; engine local allows ${MAX_PROGRAM_BYTES}`);
  }
  const halves = Math.ceil(code.length / 2);
  const op = new Uint8Array(halves + 1);
  const rd = new Uint8Array(halves + 1);
  const ra = new Uint32Array(halves + 1);
  const rb = new Uint32Array(halves + 1);
  const imm = new Int32Array(halves + 1);
  const size = new Uint8Array(halves + 1);
  const gasSuffix = new Float64Array(halves + 1);
  const countSuffix = new Float64Array(halves + 1);
  /** 1 at a block start; first 2 at every instruction start, 3 where a terminator starts (then rewritten). */
  const blockStart = new Uint8Array(halves + 1);
  const INSTRUCTION = 2;
  const TERMINATOR = 3;
  op[halves] = Op.END;
  for (const inst of linearDecode(code)) blockStart[inst.offset / 2] = inst.isTerminator ? TERMINATOR : INSTRUCTION;

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
    return t >= 0 && t < code.length && t % 2 === 0 && blockStart[t / 2]! >= INSTRUCTION ? t / 2 : -1;
  };

  for (const inst of linearDecode(code)) {
    const h = inst.offset / 2;
    const spec = inst.illegal ? ILLEGAL_INFO : ISA[inst.op];
    op[h] = spec.op;
    size[h] = inst.length / 2;
    rd[h] = inst.rd === 0 ? DISCARD_SLOT : inst.rd;
    ra[h] = inst.rs1;
    rb[h] = inst.rs2;
    gasSuffix[h] = inst.gas; // this instruction's own gas until the suffix pass below
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
  let previousStart = -1; // the instruction after the current one (walking backwards)
  for (let h = halves - 1; h >= 0; h--) {
    const kind = blockStart[h]!;
    if (kind < INSTRUCTION) continue;
    if (kind === TERMINATOR) { nextGas = 0; nextCount = 0; }
    gasSuffix[h] += nextGas;
    countSuffix[h] = 1 + nextCount;
    nextGas = gasSuffix[h]!;
    nextCount = countSuffix[h]!;
    // The instruction after a terminator starts a block; mark it now that the terminator is known.
    if (kind === TERMINATOR && previousStart >= 0) blockStart[previousStart] = 1;
    else if (previousStart >= 0 && blockStart[previousStart] !== 1) blockStart[previousStart] = 0;
    previousStart = h;
  }
  if (previousStart >= 0) blockStart[previousStart] = 1; // offset 0

  return {
    code, get instructions() { return [...linearDecode(code)]; }, op, rd, ra, rb, imm, size, gasSuffix, countSuffix, blockStart,
    constLo: Int32Array.from(constLo), constHi: Int32Array.from(constHi),
  };
}
