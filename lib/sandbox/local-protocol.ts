/**
 * The shared-memory protocol between a sandbox (engine local, async `invoke`) and the
 * worker thread that runs the reference interpreter for it (local-worker.ts). During a
 * host call the worker blocks on `CTRL.STATE` and serves the host function's memory
 * reads and writes until the reply; both sides block with Atomics (Node allows it on
 * the main thread), so a host function's MemoryView stays synchronous.
 *
 * Caps cross the thread boundary as plain bytes (`WireCap`): structured cloning keeps
 * no class, so a DataCap is sent as its bytes and size and built again on the far side.
 */
import { DataCap } from '../caps/index.js';
import { NubError, type NubErrorCode } from '../errors.js';
import type { FrameCap, FrameSpec } from '../machine/frame.js';
import { resultCapsOf, type InvokeResult, type MachineInput } from '../machine/invoke.js';

export const State = { IDLE: 0, REQUEST: 1, DONE: 2 } as const;
export const Command = { READ: 1, WRITE_PART: 2, WRITE: 3, REPLY: 4 } as const;

/** Int32 slots: state, command, address (or 1 = a reply carries φ7), length, status (1 ok, 0 refused). */
export const CTRL = { STATE: 0, COMMAND: 1, ADDRESS: 2, LENGTH: 3, STATUS: 4 } as const;
const CTRL_BYTES = 32;
/** Where φ7 of a reply goes (a BigUint64 slot). */
export const VALUE_OFFSET = CTRL_BYTES;
/** The running job's progress at its last checkpoint: two Float64 slots, gas left and instructions so far. */
export const PROGRESS_OFFSET = CTRL_BYTES + 8;
export const DATA_OFFSET = PROGRESS_OFFSET + 16;
/** Bytes one request carries; longer reads and writes go in parts. */
export const DATA_BYTES = 1 << 20;

export function sharedBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(DATA_OFFSET + DATA_BYTES);
}

type WireCap = { kind: 'Data'; hash: Uint8Array; bytes: Uint8Array; size: number } | { kind: 'Image'; hash: Uint8Array };

/**
 * Only what can cross: a frame that can spawn (an Image cap with its image) or holds an
 * Instance runs on the sandbox's own thread instead (Sandbox #canCrossToWorker).
 */
function toWire(cap: FrameCap): WireCap {
  if (cap.kind === 'Instance' || (cap.kind === 'Image' && cap.image !== undefined)) throw new NubError('Internal', `a frame with a runnable ${cap.kind} cannot cross to the worker`);
  return cap.kind === 'Data' ? { kind: 'Data', hash: cap.hash, bytes: cap.data.bytes(), size: cap.data.size } : { kind: 'Image', hash: cap.hash };
}

function fromWire(cap: WireCap): FrameCap {
  return cap.kind === 'Data' ? { kind: 'Data', hash: cap.hash, data: DataCap.fromBytes(cap.bytes, cap.size) } : cap;
}

/** A machine input (lib/machine endpointInput plus gas) as it crosses to the worker. */
export interface WireInput {
  code: Uint8Array;
  mappings: MachineInput['mappings'];
  entry: bigint;
  regs: bigint[];
  gas: bigint;
  frame: { argSlots: number; slots: { ref: number; pinned: boolean; cap: WireCap }[] };
}

export function inputToWire(input: { program: { code: Uint8Array }; mappings: MachineInput['mappings']; entry: bigint; regs: bigint[]; gas: bigint; frame: FrameSpec }): WireInput {
  const { program, mappings, entry, regs, gas, frame } = input;
  return { code: program.code, mappings, entry, regs, gas, frame: { argSlots: frame.argSlots, slots: frame.slots.map((s) => ({ ...s, cap: toWire(s.cap) })) } };
}

export function inputFromWire(w: WireInput): MachineInput {
  return { program: w.code, mappings: w.mappings, entry: w.entry, regs: w.regs, gas: w.gas, frame: { argSlots: w.frame.argSlots, slots: w.frame.slots.map((s) => ({ ...s, cap: fromWire(s.cap) })) } };
}

/** A result as it crosses back: the result caps read out (their hashes and bytes). */
export type WireResult = Omit<InvokeResult, 'caps'> & { caps: { slot: number; cap: WireCap }[] };

export function resultToWire(r: InvokeResult): WireResult {
  return {
    ...r,
    caps: r.caps.map((c) => ({ slot: c.slot, cap: c.kind === 'Data' ? { kind: 'Data', hash: c.hash, bytes: c.bytes(), size: c.bytes().length } : toWire({ kind: 'Image', hash: c.hash }) })),
  };
}

export function resultFromWire(w: WireResult): InvokeResult {
  const bySlot: (FrameCap | undefined)[] = [];
  for (const { slot, cap } of w.caps) bySlot[slot] = fromWire(cap);
  return { ...w, caps: resultCapsOf(bySlot, (c) => c.data.bytes()) };
}

/** What the worker gets per invoke. */
export interface LocalJob {
  input: WireInput;
  /** The host-call numbers that have a function (the others end the run with HOST_CALL at once). */
  hostNumbers: number[];
  shared: SharedArrayBuffer;
}

export type WorkerMessage =
  | { type: 'done'; result: WireResult }
  | { type: 'error'; code: NubErrorCode; message: string; path?: string }
  | { type: 'hostCall'; number: number; regs: bigint[] };
