/**
 * The kernel operations on the reference interpreter (docs/machine.md "Caps at run
 * time"; the guest engine's twin is guest/engine/kernel_ops.c). A `Frame` is the cap
 * table of one run; `kernelOp` executes `ecalli n` (1..63) against it.
 */
import { ADDRESS_SPACE, Exit, PAGE_SIZE, type ExitCode } from './abi.js';
import { dataCapOf, type FrameCap, type FrameSpec } from './frame.js';
import { instanceCap, instancePages, spawnInstance, type InstanceRun } from './instance.js';
import { pairToBigInt, type MachineState } from './interpreter.js';
import { CallLimit, KernelGas, KernelOp, KernelOutcome, KernelStatus, SlotRef, type KernelOutcomeCode } from './kernel-ops.js';
import type { Memory } from './memory.js';
import { isNubError } from '../errors.js';

/** How a child frame ended: the run's observables the caller needs, and its argument slots after HALT. */
export interface ChildOutcome {
  readonly exit: ExitCode;
  readonly regs: bigint[];
  readonly pc: number;
  readonly gasLeft: bigint;
  readonly memory: readonly { start: number; bytes: Uint8Array }[];
  readonly results: readonly (FrameCap | undefined)[];
}

/** What a frame needs of the run it belongs to, for CALL. */
export interface FrameRun {
  /** Nesting depth: 0 for a host invoke. */
  readonly depth: number;
  /** Gas left to the whole run (beyond the interpreter's current chunk), and setting it. */
  gasLeft(): bigint;
  setGasLeft(gas: bigint): void;
  /**
   * A call of endpoint `key` of an Instance, one frame deeper, with the given argument
   * caps and φ7..φ9, ready to run on the gas it is given; a NubError (Machine.*) when its
   * frame cannot be built.
   */
  child(run: InstanceRun, key: Uint8Array, caps: readonly FrameCap[], args: readonly bigint[]): (gas: bigint) => ChildOutcome;
}

export class Frame {
  readonly slots: (FrameCap | undefined)[] = new Array(SlotRef.SLOT_REFS);
  readonly pinned = new Uint8Array(SlotRef.SLOT_REFS);
  readonly argSlots: number;
  /** Bytes of each Data cap read so far (caps are values: they never change). */
  readonly #bytes = new WeakMap<FrameCap, Uint8Array>();

  constructor(spec: FrameSpec, readonly run?: FrameRun) {
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
  /** The operation's effect, once its charge fits; CALL's returns its status. */
  let act: (() => number | void) | undefined;
  /** The Data cap in the slot `v` names, or the status saying why there is none. */
  const data = (v: bigint): (FrameCap & { kind: 'Data' }) | number => {
    const s = frame.ref(v);
    if (s < 0) return KernelStatus.BAD_SLOT;
    const cap = slots[s];
    if (cap === undefined) return KernelStatus.EMPTY;
    return cap.kind === 'Data' ? cap : KernelStatus.WRONG_KIND;
  };

  let status = ((): number => {
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
      case KernelOp.DERIVE_SPAWN: {
        cost = KernelGas.SPAWN_FIXED;
        const src = frame.ref(arg(0)), dst = frame.ref(arg(1));
        if (src < 0 || dst < 0) return KernelStatus.BAD_SLOT;
        const cap = slots[src];
        if (cap === undefined) return KernelStatus.EMPTY;
        if (cap.kind !== 'Image') return KernelStatus.WRONG_KIND;
        if (frame.pinned[dst]) return KernelStatus.PINNED;
        if (slots[dst] !== undefined) return KernelStatus.OCCUPIED;
        const image = cap.image;
        if (image === undefined) return KernelStatus.NOT_LOADED;
        cost += instancePages(image) * KernelGas.COPY_PER_PAGE;
        act = () => { slots[dst] = instanceCap(spawnInstance(image)); };
        return KernelStatus.OK;
      }
      case KernelOp.CALL: {
        cost = KernelGas.CALL_FIXED;
        const at = frame.ref(arg(0));
        const capRef = arg(2) === 0n ? undefined : frame.ref(arg(2));
        if (at < 0 || capRef === -1 || capRef === at) return KernelStatus.BAD_SLOT;
        const cap = slots[at];
        if (cap === undefined) return KernelStatus.EMPTY;
        if (cap.kind !== 'Instance') return KernelStatus.WRONG_KIND;
        if (capRef !== undefined && frame.pinned[capRef]) return KernelStatus.PINNED;
        const run = frame.run;
        if (run === undefined || run.depth >= CallLimit.MAX_DEPTH) return KernelStatus.DEPTH;
        const key = arg(1);
        if (key > 255n || !cap.run.image.imageCap.endpoints.some((e) => e.key.length === 1 && e.key[0] === Number(key))) return KernelStatus.NO_ENDPOINT;
        const passed = capRef === undefined ? undefined : slots[capRef];
        let start: (gas: bigint) => ChildOutcome;
        try {
          start = run.child(cap.run, Uint8Array.of(Number(key)), passed === undefined ? [] : [passed], [arg(3), arg(4), arg(5)]);
        } catch (err) {
          if (isNubError(err) && err.code.startsWith('Machine.')) return KernelStatus.REFUSED; // the fixed part only
          throw err;
        }
        cost += instancePages(cap.run.image) * KernelGas.COPY_PER_PAGE;
        act = () => {
          const child = start(run.gasLeft());
          run.setGasLeft(child.gasLeft);
          if (child.exit !== Exit.HALT) {
            value = BigInt(child.exit);
            return KernelStatus.CHILD_EXIT;
          }
          value = child.regs[7]!;
          slots[at] = instanceCap({ image: cap.run.image, memory: new Map(child.memory.map((m) => [m.start, m.bytes])), regs: child.regs, pc: child.pc, gas: child.gasLeft });
          if (capRef !== undefined) slots[capRef] = child.results[0];
          return KernelStatus.OK;
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
  status = act?.() ?? status;
  st.lo[PHI7] = status;
  st.hi[PHI7] = 0;
  if (value !== undefined && (status === KernelStatus.OK || status === KernelStatus.CHILD_EXIT)) {
    st.lo[PHI7 + 1] = Number(BigInt.asIntN(32, value));
    st.hi[PHI7 + 1] = Number(BigInt.asIntN(32, value >> 32n));
  }
  return KernelOutcome.CONTINUE;
}
