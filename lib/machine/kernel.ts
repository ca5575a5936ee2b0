/**
 * The kernel operations on the reference interpreter (docs/machine.md "Caps at run
 * time"; the guest engine's twin is guest/engine/kernel_ops.c). A `Frame` is the cap
 * table of one run; `kernelOp` executes `ecalli n` (1..63) against it.
 */
import { ADDRESS_SPACE, PAGE_SIZE } from './abi.js';
import { dataCapOf, type FrameCap, type FrameSpec } from './frame.js';
import { pairToBigInt, type MachineState } from './interpreter.js';
import { KernelGas, KernelOp, KernelOutcome, KernelStatus, SlotRef, type KernelOutcomeCode } from './kernel-ops.js';
import type { Memory } from './memory.js';

export class Frame {
  readonly slots: (FrameCap | undefined)[] = new Array(SlotRef.SLOT_REFS);
  readonly pinned = new Uint8Array(SlotRef.SLOT_REFS);
  readonly argSlots: number;
  /** Bytes of each Data cap read so far (caps are values: they never change). */
  readonly #bytes = new WeakMap<FrameCap, Uint8Array>();

  constructor(spec: FrameSpec) {
    this.argSlots = spec.argSlots;
    for (const s of spec.slots) {
      this.slots[s.ref] = s.cap;
      this.pinned[s.ref] = s.pinned ? 1 : 0;
    }
  }

  /** The slot a register value names, or -1 (BAD_SLOT). */
  ref(v: bigint): number {
    if (v >= 1n && v < BigInt(SlotRef.ARG_BASE)) return Number(v);
    if (v >= BigInt(SlotRef.ARG_BASE) && v < BigInt(SlotRef.ARG_BASE + this.argSlots)) return Number(v);
    return -1;
  }

  bytesOf(cap: FrameCap & { kind: 'Data' }): Uint8Array {
    let b = this.#bytes.get(cap);
    if (b === undefined) this.#bytes.set(cap, (b = cap.data.bytes()));
    return b;
  }

  /** The argument slots now: the endpoint's result caps. */
  results(): (FrameCap | undefined)[] {
    return this.slots.slice(SlotRef.ARG_BASE, SlotRef.ARG_BASE + this.argSlots);
  }
}

const PHI7 = 10; // register slots (x-numbers) of φ7..φ10
const ceilDiv = (a: bigint, b: number) => (a + BigInt(b) - 1n) / BigInt(b);

/**
 * Executes kernel operation `n` at the `ecalli` the state stands on: reads φ7..φ10,
 * writes the status to φ7 (and a value to φ8), charges `st.gas`. A number with no
 * operation is a PANIC; a charge that does not fit is OUT_OF_GAS with nothing done.
 */
export function kernelOp(n: number, frame: Frame, st: MachineState, mem: Memory): KernelOutcomeCode {
  const arg = (i: number) => BigInt.asUintN(64, pairToBigInt(st.lo[PHI7 + i]!, st.hi[PHI7 + i]!));
  const slots = frame.slots;
  let cost = 0;
  let value: bigint | undefined;
  let act: (() => void) | undefined;
  /** The Data cap in the slot `v` names, or the status saying why there is none. */
  const data = (v: bigint): (FrameCap & { kind: 'Data' }) | number => {
    const s = frame.ref(v);
    if (s < 0) return KernelStatus.BAD_SLOT;
    const cap = slots[s];
    if (cap === undefined) return KernelStatus.EMPTY;
    return cap.kind === 'Data' ? cap : KernelStatus.WRONG_KIND;
  };

  const status = ((): number => {
    switch (n) {
      case KernelOp.COPY: case KernelOp.MOVE: {
        cost = KernelGas.SLOT_OP;
        const src = frame.ref(arg(0)), dst = frame.ref(arg(1));
        if (src < 0 || dst < 0) return KernelStatus.BAD_SLOT;
        const cap = slots[src];
        if (cap === undefined) return KernelStatus.EMPTY;
        if ((n === KernelOp.MOVE && frame.pinned[src]) || frame.pinned[dst]) return KernelStatus.PINNED;
        if (slots[dst] !== undefined) return KernelStatus.OCCUPIED;
        act = () => { slots[dst] = cap; if (n === KernelOp.MOVE) slots[src] = undefined; };
        return KernelStatus.OK;
      }
      case KernelOp.DROP: {
        cost = KernelGas.SLOT_OP;
        const s = frame.ref(arg(0));
        if (s < 0) return KernelStatus.BAD_SLOT;
        if (slots[s] === undefined) return KernelStatus.EMPTY;
        if (frame.pinned[s]) return KernelStatus.PINNED;
        act = () => { slots[s] = undefined; };
        return KernelStatus.OK;
      }
      case KernelOp.DATA_SIZE: {
        cost = KernelGas.SLOT_OP;
        const cap = data(arg(0));
        if (typeof cap === 'number') return cap;
        value = BigInt(cap.data.size);
        return KernelStatus.OK;
      }
      case KernelOp.READ_DATA: {
        cost = KernelGas.READ_FIXED;
        const offset = arg(1), address = arg(2), length = arg(3);
        const cap = data(arg(0));
        if (typeof cap === 'number') return cap;
        if (offset + length > BigInt(cap.data.size)) return KernelStatus.OUT_OF_RANGE;
        if (address + length > BigInt(ADDRESS_SPACE) || !mem.rangeAccessible(Number(address), Number(length), true)) return KernelStatus.BAD_MEMORY;
        cost += Number(ceilDiv(length, KernelGas.READ_BYTES_PER_GAS));
        const from = Number(offset);
        act = () => mem.writeRange(Number(address), frame.bytesOf(cap).subarray(from, from + Number(length)));
        return KernelStatus.OK;
      }
      case KernelOp.MINT_DATA: {
        cost = KernelGas.MINT_FIXED;
        const s = frame.ref(arg(0));
        const address = arg(1), length = arg(2);
        if (s < 0) return KernelStatus.BAD_SLOT;
        if (frame.pinned[s]) return KernelStatus.PINNED;
        if (slots[s] !== undefined) return KernelStatus.OCCUPIED;
        if (address + length > BigInt(ADDRESS_SPACE) || !mem.rangeAccessible(Number(address), Number(length), false)) return KernelStatus.BAD_MEMORY;
        cost += Number(ceilDiv(length, PAGE_SIZE)) * KernelGas.MINT_PER_PAGE;
        act = () => {
          const data = dataCapOf(mem.readRange(Number(address), Number(length)));
          slots[s] = { kind: 'Data', data, get hash() { return data.hash(); } };
        };
        return KernelStatus.OK;
      }
      default:
        return -1;
    }
  })();

  if (status < 0) return KernelOutcome.PANIC;
  if (cost > st.gas) return KernelOutcome.OUT_OF_GAS;
  st.gas -= cost;
  act?.();
  st.lo[PHI7] = status;
  st.hi[PHI7] = 0;
  if (value !== undefined && status === KernelStatus.OK) {
    st.lo[PHI7 + 1] = Number(BigInt.asIntN(32, value));
    st.hi[PHI7 + 1] = Number(BigInt.asIntN(32, value >> 32n));
  }
  return KernelOutcome.CONTINUE;
}
