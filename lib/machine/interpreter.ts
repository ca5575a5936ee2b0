/**
 * The reference interpreter's core loop. Registers are 64-bit values held as two
 * int32 halves (`lo`, `hi`) so that the common instructions need no BigInt; only
 * the high multiplies and 64-bit divisions that do not fit in doubles use it.
 *
 * Gas is charged when control enters an instruction by a jump or by falling into a
 * block start: the cost from there to the end of its block (`Program.gasSuffix`).
 */
import { CODE_BASE, Exit, HOST_CALL_MAX, HOST_CALL_MIN } from './abi.js';
import { Op } from './isa.js';
import { KernelOutcome } from './kernel-ops.js';
import type { Memory } from './memory.js';
import { FIRST_CONST_SLOT, type Program } from './program.js';

/** A machine between runs: registers (by slot), position, gas. */
export interface MachineState {
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  /** Halfword index of the next instruction. */
  h: number;
  /** Gas left, exact up to 2^53. */
  gas: number;
  /** Set by `execute`: the exit's argument (fault address or host-call number; HALT's is φ7). */
  arg: number;
  /** Set by `execute`: instructions completed in the run. */
  retired: number;
}

/** Handles host call `n` (64..2047) in place (φ7 already set); false leaves it to the caller as HOST_CALL. */
export type HostHook = (n: number) => boolean;

/**
 * Runs kernel operation `n` (1..63) on the state (registers, `gas`) and says whether the
 * run continues at the next instruction, PANICs or stops OUT_OF_GAS at the `ecalli`.
 */
export type KernelHook = (n: number, st: MachineState) => number;

/** Fresh registers for `program`, all zero, with its constant slots filled. */
export function newMachineState(program: Program, h: number, gas: number): MachineState {
  const slots = FIRST_CONST_SLOT + program.constLo.length;
  const lo = new Int32Array(slots);
  const hi = new Int32Array(slots);
  lo.set(program.constLo, FIRST_CONST_SLOT);
  hi.set(program.constHi, FIRST_CONST_SLOT);
  return { lo, hi, h, gas, arg: 0, retired: 0 };
}

const TWO_32 = 2 ** 32;

/** The value of a register pair as a signed 64-bit bigint. */
export function pairToBigInt(lo: number, hi: number): bigint {
  return (BigInt(hi | 0) << 32n) | BigInt(lo >>> 0);
}

/** High 32 bits of the unsigned 64-bit product of two 32-bit values. */
function mulHighU32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const mid1 = a1 * b0, mid2 = a0 * b1;
  const carry = (((a0 * b0) >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  return (a1 * b1 + (mid1 >>> 16) + (mid2 >>> 16) + carry) | 0;
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

function ctz32(x: number): number {
  return x === 0 ? 32 : 31 - Math.clz32(x & -x);
}

function byteSwap32(x: number): number {
  return ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

/** Each byte becomes 0xff when non-zero (Zbb orc.b). */
function orCombine32(x: number): number {
  return (x & 0xff ? 0xff : 0) | (x & 0xff00 ? 0xff00 : 0) | (x & 0xff0000 ? 0xff0000 : 0) | (x & 0xff000000 ? 0xff000000 : 0);
}

/** Records where and how a run ended; returns the exit. An instruction that did not complete is not counted in `retired`. */
function finish(st: MachineState, exit: number, h: number, arg: number, gas: number, retired: number): number {
  st.h = h;
  st.gas = gas;
  st.arg = arg;
  st.retired = retired;
  return exit;
}

/**
 * Runs from `st.h` until an exit; returns the exit number and leaves `st` at the
 * exit's pc with the gas left, `arg` and `retired` set. An instruction that ends in
 * PANIC or PAGE_FAULT has no effect.
 */
export function execute(p: Program, mem: Memory, st: MachineState, hostHook?: HostHook, kernelHook?: KernelHook): number {
  const OP = p.op, RD = p.rd, RA = p.ra, RB = p.rb, IMM = p.imm, SIZE = p.size, GAS = p.gasSuffix, COUNT = p.countSuffix;
  const BLOCK_START = p.blockStart;
  const codeLength = p.code.length;
  const LO = st.lo, HI = st.hi;
  let h = st.h;
  let gas = st.gas;
  let retired = 0;

  const set = (d: number, lo: number, hi: number) => { LO[d] = lo; HI[d] = hi; };
  const setWord = (d: number, lo: number) => { LO[d] = lo; HI[d] = lo >> 31; };
  const setBig = (d: number, v: bigint) => { LO[d] = Number(BigInt.asIntN(32, v)); HI[d] = Number(BigInt.asIntN(32, v >> 32n)); };
  const big = (s: number) => pairToBigInt(LO[s], HI[s]);
  const bigU = (s: number) => BigInt.asUintN(64, pairToBigInt(LO[s], HI[s]));
  /** rd = (lo, hi) + rs2: the Zba adds. */
  const addTo = (d: number, lo: number, hi: number, b: number) => {
    const sum = (lo >>> 0) + (LO[b] >>> 0);
    LO[d] = sum;
    HI[d] = hi + HI[b] + (sum >= TWO_32 ? 1 : 0);
  };
  /** rd = (lo, hi) << s for s in 0..63. */
  const shiftLeft = (d: number, lo: number, hi: number, s: number) => {
    if (s === 0) set(d, lo, hi);
    else if (s < 32) set(d, lo << s, (hi << s) | (lo >>> (32 - s)));
    else set(d, 0, lo << (s - 32));
  };
  /** rd = (lo, hi) rotated right by s in 0..63. */
  const rotateRight = (d: number, lo: number, hi: number, s: number) => {
    if (s >= 32) { const t = lo; lo = hi; hi = t; s -= 32; }
    if (s === 0) set(d, lo, hi);
    else set(d, (lo >>> s) | (hi << (32 - s)), (hi >>> s) | (lo << (32 - s)));
  };
  const lessSigned = (a: number, b: number) => HI[a] < HI[b] || (HI[a] === HI[b] && (LO[a] >>> 0) < (LO[b] >>> 0));
  const lessUnsigned = (a: number, b: number) => (HI[a] >>> 0) < (HI[b] >>> 0) || (HI[a] === HI[b] && (LO[a] >>> 0) < (LO[b] >>> 0));
  const isZero = (s: number) => LO[s] === 0 && HI[s] === 0;
  const copy = (d: number, s: number) => set(d, LO[s], HI[s]);

  block: for (;;) {
    // Entering h: charge it and the rest of its block.
    const cost = GAS[h];
    if (cost > gas) return finish(st, Exit.OUT_OF_GAS, h, 0, gas, retired);
    gas -= cost;
    retired += COUNT[h];

    for (;;) {
      const d = RD[h], a = RA[h], b = RB[h];
      taken: {
        switch (OP[h]) {
          case Op.ADD: {
            const sum = (LO[a] >>> 0) + (LO[b] >>> 0);
            set(d, sum | 0, (HI[a] + HI[b] + (sum >= TWO_32 ? 1 : 0)) | 0);
            break;
          }
          case Op.SUB: {
            const borrow = (LO[a] >>> 0) < (LO[b] >>> 0) ? 1 : 0;
            set(d, (LO[a] - LO[b]) | 0, (HI[a] - HI[b] - borrow) | 0);
            break;
          }
          case Op.SLL: shiftLeft(d, LO[a], HI[a], LO[b] & 63); break;
          case Op.SRL: {
            const s = LO[b] & 63, lo = LO[a], hi = HI[a];
            if (s === 0) set(d, lo, hi);
            else if (s < 32) set(d, (lo >>> s) | (hi << (32 - s)), hi >>> s);
            else set(d, hi >>> (s - 32), 0);
            break;
          }
          case Op.SRA: {
            const s = LO[b] & 63, lo = LO[a], hi = HI[a];
            if (s === 0) set(d, lo, hi);
            else if (s < 32) set(d, (lo >>> s) | (hi << (32 - s)), hi >> s);
            else set(d, hi >> (s - 32), hi >> 31);
            break;
          }
          case Op.SLT: set(d, lessSigned(a, b) ? 1 : 0, 0); break;
          case Op.SLTU: set(d, lessUnsigned(a, b) ? 1 : 0, 0); break;
          case Op.XOR: set(d, LO[a] ^ LO[b], HI[a] ^ HI[b]); break;
          case Op.OR: set(d, LO[a] | LO[b], HI[a] | HI[b]); break;
          case Op.AND: set(d, LO[a] & LO[b], HI[a] & HI[b]); break;
          case Op.ADDW: setWord(d, (LO[a] + LO[b]) | 0); break;
          case Op.SUBW: setWord(d, (LO[a] - LO[b]) | 0); break;
          case Op.SLLW: setWord(d, LO[a] << (LO[b] & 31)); break;
          case Op.SRLW: setWord(d, (LO[a] >>> (LO[b] & 31)) | 0); break;
          case Op.SRAW: setWord(d, LO[a] >> (LO[b] & 31)); break;

          case Op.MUL: {
            const al = LO[a], bl = LO[b];
            set(d, Math.imul(al, bl), (mulHighU32(al >>> 0, bl >>> 0) + Math.imul(al, HI[b]) + Math.imul(HI[a], bl)) | 0);
            break;
          }
          case Op.MULH: setBig(d, (big(a) * big(b)) >> 64n); break;
          case Op.MULHSU: setBig(d, (big(a) * bigU(b)) >> 64n); break;
          case Op.MULHU: setBig(d, (bigU(a) * bigU(b)) >> 64n); break;
          case Op.MULW: setWord(d, Math.imul(LO[a], LO[b])); break;
          case Op.DIV: case Op.REM: {
            const isDiv = OP[h] === Op.DIV;
            if (isZero(b)) { if (isDiv) set(d, -1, -1); else copy(d, a); }
            else if (HI[a] === LO[a] >> 31 && HI[b] === LO[b] >> 31) {
              // Both fit in int32: doubles are exact, and -2^31 / -1 = 2^31 fits in 64 bits.
              const r = isDiv ? Math.trunc(LO[a] / LO[b]) : LO[a] % LO[b];
              set(d, r | 0, r < 0 ? -1 : 0);
            } else setBig(d, isDiv ? BigInt.asIntN(64, big(a) / big(b)) : big(a) % big(b));
            break;
          }
          case Op.DIVU: case Op.REMU: {
            const isDiv = OP[h] === Op.DIVU;
            if (isZero(b)) { if (isDiv) set(d, -1, -1); else copy(d, a); }
            else if (HI[a] === 0 && HI[b] === 0) {
              const x = LO[a] >>> 0, y = LO[b] >>> 0;
              set(d, (isDiv ? Math.trunc(x / y) : x % y) | 0, 0);
            } else setBig(d, isDiv ? bigU(a) / bigU(b) : bigU(a) % bigU(b));
            break;
          }
          case Op.DIVW: {
            const x = LO[a], y = LO[b];
            setWord(d, y === 0 ? -1 : x === -0x80000000 && y === -1 ? x : Math.trunc(x / y) | 0);
            break;
          }
          case Op.REMW: {
            const x = LO[a], y = LO[b];
            setWord(d, y === 0 ? x : (x % y) | 0);
            break;
          }
          case Op.DIVUW: {
            const x = LO[a] >>> 0, y = LO[b] >>> 0;
            setWord(d, y === 0 ? -1 : Math.trunc(x / y) | 0);
            break;
          }
          case Op.REMUW: {
            const x = LO[a] >>> 0, y = LO[b] >>> 0;
            setWord(d, (y === 0 ? x : x % y) | 0);
            break;
          }

          case Op.ANDN: set(d, LO[a] & ~LO[b], HI[a] & ~HI[b]); break;
          case Op.ORN: set(d, LO[a] | ~LO[b], HI[a] | ~HI[b]); break;
          case Op.XNOR: set(d, ~(LO[a] ^ LO[b]), ~(HI[a] ^ HI[b])); break;
          case Op.CLZ: set(d, HI[a] !== 0 ? Math.clz32(HI[a]) : 32 + Math.clz32(LO[a]), 0); break;
          case Op.CTZ: set(d, LO[a] !== 0 ? ctz32(LO[a]) : 32 + ctz32(HI[a]), 0); break;
          case Op.CPOP: set(d, popcount32(LO[a]) + popcount32(HI[a]), 0); break;
          case Op.CLZW: set(d, Math.clz32(LO[a]), 0); break;
          case Op.CTZW: set(d, ctz32(LO[a]), 0); break;
          case Op.CPOPW: set(d, popcount32(LO[a]), 0); break;
          case Op.MIN: copy(d, lessSigned(a, b) ? a : b); break;
          case Op.MAX: copy(d, lessSigned(a, b) ? b : a); break;
          case Op.MINU: copy(d, lessUnsigned(a, b) ? a : b); break;
          case Op.MAXU: copy(d, lessUnsigned(a, b) ? b : a); break;
          case Op.SEXTB: setWord(d, (LO[a] << 24) >> 24); break;
          case Op.SEXTH: setWord(d, (LO[a] << 16) >> 16); break;
          case Op.ZEXTH: set(d, LO[a] & 0xffff, 0); break;
          case Op.ROL: rotateRight(d, LO[a], HI[a], (64 - (LO[b] & 63)) & 63); break;
          case Op.ROR: rotateRight(d, LO[a], HI[a], LO[b] & 63); break;
          case Op.ROLW: { const x = LO[a], s = LO[b] & 31; setWord(d, (x << s) | (x >>> (32 - s))); break; }
          case Op.RORW: { const x = LO[a], s = LO[b] & 31; setWord(d, (x >>> s) | (x << (32 - s))); break; }
          case Op.ORCB: set(d, orCombine32(LO[a]), orCombine32(HI[a])); break;
          case Op.REV8: set(d, byteSwap32(HI[a]), byteSwap32(LO[a])); break;

          case Op.ADDUW: addTo(d, LO[a], 0, b); break;
          case Op.SH1ADD: addTo(d, LO[a] << 1, (HI[a] << 1) | (LO[a] >>> 31), b); break;
          case Op.SH2ADD: addTo(d, LO[a] << 2, (HI[a] << 2) | (LO[a] >>> 30), b); break;
          case Op.SH3ADD: addTo(d, LO[a] << 3, (HI[a] << 3) | (LO[a] >>> 29), b); break;
          case Op.SH1ADDUW: addTo(d, LO[a] << 1, LO[a] >>> 31, b); break;
          case Op.SH2ADDUW: addTo(d, LO[a] << 2, LO[a] >>> 30, b); break;
          case Op.SH3ADDUW: addTo(d, LO[a] << 3, LO[a] >>> 29, b); break;
          case Op.SLLUW: shiftLeft(d, LO[a], 0, LO[b] & 63); break;

          case Op.BCLR: { const s = LO[b] & 63; if (s < 32) set(d, LO[a] & ~(1 << s), HI[a]); else set(d, LO[a], HI[a] & ~(1 << (s - 32))); break; }
          case Op.BSET: { const s = LO[b] & 63; if (s < 32) set(d, LO[a] | (1 << s), HI[a]); else set(d, LO[a], HI[a] | (1 << (s - 32))); break; }
          case Op.BINV: { const s = LO[b] & 63; if (s < 32) set(d, LO[a] ^ (1 << s), HI[a]); else set(d, LO[a], HI[a] ^ (1 << (s - 32))); break; }
          case Op.BEXT: { const s = LO[b] & 63; set(d, ((s < 32 ? LO[a] : HI[a]) >>> (s & 31)) & 1, 0); break; }
          case Op.CZEROEQZ: if (isZero(b)) set(d, 0, 0); else copy(d, a); break;
          case Op.CZERONEZ: if (isZero(b)) copy(d, a); else set(d, 0, 0); break;
          case Op.NOP: break;

          // Loads and stores: address mod 2^32; a fault leaves everything as it was.
          case Op.LB: { const v = mem.read((LO[a] + IMM[h]) >>> 0, 1); if (v === null) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); setWord(d, v.getInt8(mem.offset)); break; }
          case Op.LBU: { const v = mem.read((LO[a] + IMM[h]) >>> 0, 1); if (v === null) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); set(d, v.getUint8(mem.offset), 0); break; }
          case Op.LH: { const v = mem.read((LO[a] + IMM[h]) >>> 0, 2); if (v === null) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); setWord(d, v.getInt16(mem.offset, true)); break; }
          case Op.LHU: { const v = mem.read((LO[a] + IMM[h]) >>> 0, 2); if (v === null) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); set(d, v.getUint16(mem.offset, true), 0); break; }
          case Op.LW: { const v = mem.read((LO[a] + IMM[h]) >>> 0, 4); if (v === null) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); setWord(d, v.getInt32(mem.offset, true)); break; }
          case Op.LWU: { const v = mem.read((LO[a] + IMM[h]) >>> 0, 4); if (v === null) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); set(d, v.getInt32(mem.offset, true), 0); break; }
          case Op.LD: {
            const v = mem.read((LO[a] + IMM[h]) >>> 0, 8);
            if (v === null) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]);
            set(d, v.getInt32(mem.offset, true), v.getInt32(mem.offset + 4, true));
            break;
          }
          case Op.SB: if (!mem.write((LO[a] + IMM[h]) >>> 0, 1, LO[b], 0)) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); break;
          case Op.SH: if (!mem.write((LO[a] + IMM[h]) >>> 0, 2, LO[b], 0)) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); break;
          case Op.SW: if (!mem.write((LO[a] + IMM[h]) >>> 0, 4, LO[b], 0)) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); break;
          case Op.SD: if (!mem.write((LO[a] + IMM[h]) >>> 0, 8, LO[b], HI[b])) return finish(st, Exit.PAGE_FAULT, h, mem.faultAddress, gas, retired - COUNT[h]); break;

          // Terminators: each sets h and goes back to charge what it enters (a taken branch leaves the switch by `taken`).
          case Op.BEQ: if (LO[a] === LO[b] && HI[a] === HI[b]) break taken; h += SIZE[h]; continue block;
          case Op.BNE: if (LO[a] !== LO[b] || HI[a] !== HI[b]) break taken; h += SIZE[h]; continue block;
          case Op.BLT: if (lessSigned(a, b)) break taken; h += SIZE[h]; continue block;
          case Op.BGE: if (!lessSigned(a, b)) break taken; h += SIZE[h]; continue block;
          case Op.BLTU: if (lessUnsigned(a, b)) break taken; h += SIZE[h]; continue block;
          case Op.BGEU: if (!lessUnsigned(a, b)) break taken; h += SIZE[h]; continue block;
          case Op.JAL: {
            if (IMM[h] < 0) return finish(st, Exit.PANIC, h, 0, gas, retired - COUNT[h]);
            set(d, CODE_BASE + 2 * (h + SIZE[h]), 0);
            h = IMM[h];
            continue block;
          }
          case Op.JALR: {
            const offset = (((LO[a] + IMM[h]) & ~1) - CODE_BASE) >>> 0;
            if (offset >= codeLength || BLOCK_START[offset / 2] !== 1) return finish(st, Exit.PANIC, h, 0, gas, retired - COUNT[h]);
            set(d, CODE_BASE + 2 * (h + SIZE[h]), 0);
            h = offset / 2;
            continue block;
          }
          case Op.FALLTHROUGH: h += SIZE[h]; continue block;
          case Op.TRAP: return finish(st, Exit.TRAP, h, 0, gas, retired);
          case Op.ECALLJAR: return finish(st, Exit.ECALL, h + SIZE[h], 0, gas, retired);
          case Op.ECALLI: {
            const n = IMM[h];
            if (n === 0) return finish(st, Exit.HALT, h, 0, gas, retired);
            if (n > 0 && n < HOST_CALL_MIN && kernelHook !== undefined) {
              st.gas = gas;
              const outcome = kernelHook(n, st);
              if (outcome === KernelOutcome.CONTINUE) { gas = st.gas; h += SIZE[h]; continue block; }
              if (outcome === KernelOutcome.OUT_OF_GAS) return finish(st, Exit.OUT_OF_GAS, h, 0, gas, retired - COUNT[h]);
            }
            if (n < HOST_CALL_MIN || n > HOST_CALL_MAX) return finish(st, Exit.PANIC, h, 0, gas, retired - COUNT[h]);
            if (hostHook !== undefined) {
              if (hostHook(n)) { h += SIZE[h]; continue block; }
            }
            return finish(st, Exit.HOST_CALL, h + SIZE[h], n, gas, retired);
          }
          case Op.END: return finish(st, Exit.PANIC, h, 0, gas, retired);
          default: return finish(st, Exit.PANIC, h, 0, gas, retired - COUNT[h]); // ILLEGAL (NONE is never reached: targets are checked)
        }
        h += SIZE[h];
        continue;
      }
      // A taken branch: its target was checked when the program was prepared.
      if (IMM[h] < 0) return finish(st, Exit.PANIC, h, 0, gas, retired - COUNT[h]);
      h = IMM[h];
      continue block;
    }
  }
}
