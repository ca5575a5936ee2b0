/**
 * Invocation on the reference interpreter (engine `local`): lay out the address
 * space, set the registers, run, report. `runMachine` takes the raw machine input
 * (what a differential test feeds both engines); `invokeLocal` builds that input
 * from an admitted image and one of its endpoints.
 */
import * as check from '../arguments.js';
import { keysEqual, toKey, type ImageCap, type ImageEndpointDef, type KeyLike } from '../caps/index.js';
import { mappingIsPinned, type AdmittedImage } from '../image/index.js';
import { NubError } from '../errors.js';
import { CODE_BASE, Exit, NUM_REGS, phiToX, type ExitCode } from './abi.js';
import { frameSpec, resolveMappings, type ArgCap, type FrameCap, type FrameSpec, type RootData } from './frame.js';
import { execute, newMachineState, pairToBigInt } from './interpreter.js';
import type { InstanceRun, RunnableImage } from './instance.js';
import { Frame, kernelOp, type FrameRun } from './kernel.js';
import { KernelOutcome } from './kernel-ops.js';
import { Memory, type MappingSpec } from './memory.js';
import { isBlockStart, prepareProgram, type Program } from './program.js';

/** What a host function sees of the machine's memory. */
export interface MemoryView {
  /** A copy of `length` bytes at `address` (mod 2^32), or undefined when any of them is not readable. */
  read(address: number, length: number): Uint8Array | undefined;
  /** Writes `bytes` at `address` when every one is writable; false (nothing written) otherwise. */
  write(address: number, bytes: Uint8Array): boolean;
}

const TWO_POW_32 = 2 ** 32;

/**
 * The one reading of a host function's memory access, on every engine: the address is
 * an integer (a safe-integer number or a bigint) taken mod 2^32, so −4096 is
 * 0xFFFFF000; the length a safe integer in 0..2^32. Anything else is 'BadArgument'.
 */
export function memoryAccess(address: unknown, length: unknown): { address: number; length: number } {
  let a: number;
  if (typeof address === 'bigint') a = Number(BigInt.asUintN(32, address));
  else if (typeof address === 'number' && Number.isSafeInteger(address)) a = ((address % TWO_POW_32) + TWO_POW_32) % TWO_POW_32;
  else throw new NubError('BadArgument', `memory address ${String(address)} is not an integer`, { path: 'address' });
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0 || length > TWO_POW_32) {
    throw new NubError('BadArgument', `memory access length ${String(length)} is not an integer in 0..2^32`, { path: 'length' });
  }
  return { address: a, length };
}

/** `memoryAccess` for a write: the bytes must be a Uint8Array. */
export function memoryWrite(address: unknown, bytes: unknown): { address: number; bytes: Uint8Array } {
  if (!(bytes instanceof Uint8Array)) throw new NubError('BadArgument', 'the bytes to write are not a Uint8Array', { path: 'bytes' });
  return { address: memoryAccess(address, bytes.length).address, bytes };
}

/**
 * A host function for `ecalli number` (64..2047), the one shape on every engine and
 * layer: φ0..φ12 (unsigned) at the call and the invocation's memory. Returning a value
 * handles the call: φ7 = value and execution continues at the next instruction.
 * Returning undefined ends the run with HOST_CALL. `R` is what it may return: here a
 * u64 or undefined; a Sandbox's may also be a number or, on async invoke, a promise.
 */
export type HostFunction<R = bigint | undefined> = (regs: bigint[], memory: MemoryView, number: number) => R;

export interface MachineInput {
  /** The code, or its pre-decoded program (reused across runs). */
  program: Program | Uint8Array;
  mappings: readonly MappingSpec[];
  /** Byte offset into the code to start at; anything but a block start is a PANIC. */
  entry: bigint | number;
  /** φ0..φ12; missing ones are 0. */
  regs: readonly (bigint | number)[];
  gas: bigint | number;
  hostFunction?: HostFunction;
  /**
   * Called after about every CHECKPOINT_GAS gas (at a block start) with the gas left and
   * the instructions so far; throwing stops the run with that error (a deadline, a cancel).
   */
  checkpoint?: Checkpoint;
  /** The cap table (frameSpec); without one every kernel operation is a PANIC. */
  frame?: FrameSpec;
}

export type Checkpoint = (gasLeft: bigint, instructions: number) => void;

/** A cap the endpoint returned: argument slot `slot` after HALT. */
export interface ResultCap {
  readonly slot: number;
  readonly kind: FrameCap['kind'];
  /** The cap hash (for a cap minted in the run, computed when first read). */
  readonly hash: Uint8Array;
  /** A Data cap's bytes ('WrongKind' for other kinds). */
  bytes(): Uint8Array;
  /** An Instance's state (for the sandbox, which keeps it so its hash can be invoked). */
  readonly instance?: InstanceRun;
}

/** The result caps of a frame's argument slots, lazily hashed and read. */
export function resultCapsOf(caps: readonly (FrameCap | undefined)[], bytesOf: (c: FrameCap & { kind: 'Data' }, slot: number) => Uint8Array): ResultCap[] {
  const out: ResultCap[] = [];
  caps.forEach((cap, slot) => {
    if (cap === undefined) return;
    out.push({
      slot,
      kind: cap.kind,
      get instance() { return cap.kind === 'Instance' ? cap.run : undefined; }, // on kvm, reading it reads guest memory
      get hash() { return cap.hash; },
      bytes: () => {
        if (cap.kind !== 'Data') throw new NubError('WrongKind', `result cap ${slot} is ${cap.kind}, not Data`);
        return bytesOf(cap, slot);
      },
    });
  });
  return out;
}

/** Where and how a run stopped: what every engine reports of it (the guest's INVOKE record, the engine harness). */
export type MachineStop = Pick<InvokeResult, 'exit' | 'exitArg' | 'regs' | 'pc' | 'gasLeft' | 'instructions'>;

export interface InvokeResult {
  exit: ExitCode;
  /** φ7 for HALT, the faulting address for PAGE_FAULT, the host-call number for HOST_CALL, else 0. */
  exitArg: bigint;
  /** φ0..φ12, unsigned. */
  regs: bigint[];
  /** PVM PC (CODE_BASE + offset) of the exit: see docs/machine.md for which instruction. */
  pc: number;
  gasLeft: bigint;
  gasUsed: bigint;
  /** Final bytes of every writable mapping, ascending by start. */
  memory: { start: number; bytes: Uint8Array }[];
  /** Instructions completed (for speed figures; not part of the cross-engine contract). */
  instructions: number;
  /** After HALT, the argument cnode's filled slots (the endpoint's results); otherwise empty. */
  caps: ResultCap[];
}

/** Gas above this runs in chunks so the interpreter can keep it in a double. */
const GAS_CHUNK = BigInt(Number.MAX_SAFE_INTEGER);
/** Arguments go to φ7..φ10. */
export const MAX_ARGS = 4;
/** Gas between two checkpoints: well under a millisecond of the interpreter, and a refill costs next to nothing. */
export const CHECKPOINT_GAS = 1n << 16n;

/** Runs the machine on raw input. Bad input (not the guest's behaviour) throws a NubError ('BadArgument'). */
export function runMachine(input: MachineInput): InvokeResult {
  return runFrame(input, 0).result;
}

/** A run at nesting depth `depth` (0: the host's invoke; a CALL's child one deeper), with its frame. */
function runFrame(input: MachineInput, depth: number): { result: InvokeResult; frame: Frame | undefined } {
  const program = input.program instanceof Uint8Array ? prepareProgram(input.program) : input.program;
  if (input.regs.length > NUM_REGS) throw check.badArgument('regs', `${input.regs.length} registers given; there are ${NUM_REGS}`);
  const gas = check.gas(input.gas);
  const mem = new Memory(program, input.mappings);

  // The run goes in chunks of gas; each refill resumes exactly where the last ran out.
  const chunk = input.checkpoint ? CHECKPOINT_GAS : GAS_CHUNK;
  let reserve = gas > chunk ? gas - chunk : 0n;
  const state = newMachineState(program, 0, Number(gas - reserve));
  input.regs.forEach((v, i) => {
    const u = check.u64(v, `regs[${i}]`);
    state.lo[phiToX(i)] = Number(BigInt.asIntN(32, u));
    state.hi[phiToX(i)] = Number(BigInt.asIntN(32, u >> 32n));
  });
  const phi = () => Array.from({ length: NUM_REGS }, (_, i) => BigInt.asUintN(64, pairToBigInt(state.lo[phiToX(i)], state.hi[phiToX(i)])));

  const hook = input.hostFunction && ((n: number): boolean => {
    const view: MemoryView = {
      read: (a, len) => {
        const access = memoryAccess(a, len);
        // More bytes than are mapped cannot all be readable: answer without a byte-by-byte walk.
        if (access.length > mem.regions.reduce((n, r) => n + r.size, 0)) return undefined;
        return mem.readBytes(access.address, access.length);
      },
      write: (a, bytes) => {
        const access = memoryWrite(a, bytes);
        return mem.writeBytes(access.address, access.bytes);
      },
    };
    const v = check.hostResult(input.hostFunction!(phi(), view, n), n);
    if (v === undefined) return false;
    state.lo[10] = Number(BigInt.asIntN(32, v));
    state.hi[10] = Number(BigInt.asIntN(32, v >> 32n));
    return true;
  });

  const run: FrameRun = {
    depth,
    gasLeft: () => BigInt(state.gas) + reserve,
    setGasLeft: (left) => {
      reserve = left > chunk ? left - chunk : 0n;
      state.gas = Number(left - reserve);
    },
    child: (instance, key, caps, args) => {
      // A nested frame: the Instance's memory, no host functions (docs/machine.md "Nested calls").
      const { image } = instance;
      const childInput = endpointInput(image.imageCap, image.rootData, key, args, caps, instance.memory, image.spawnable);
      return (childGas) => {
        const { result, frame: childFrame } = runFrame({ ...childInput, gas: childGas, ...(input.checkpoint ? { checkpoint: input.checkpoint } : {}) }, depth + 1);
        return { ...result, results: childFrame!.results() };
      };
    },
  };
  const frame = input.frame && new Frame(input.frame, run);
  const kernel = frame && ((n: number): number => {
    for (;;) {
      const outcome = kernelOp(n, frame, state, mem);
      if (outcome !== KernelOutcome.OUT_OF_GAS || reserve === 0n) return outcome;
      const refill = reserve > chunk ? chunk : reserve; // the gas chunk ran out: top up and retry
      reserve -= refill;
      state.gas += Number(refill);
    }
  });

  let exit: ExitCode;
  let instructions = 0;
  const entry = BigInt(input.entry);
  let pc: number;
  if (entry < 0n || entry >= BigInt(program.code.length) || !isBlockStart(program, Number(entry))) {
    exit = Exit.PANIC;
    pc = Number(BigInt.asUintN(32, BigInt(CODE_BASE) + entry));
  } else {
    state.h = Number(entry) / 2;
    for (;;) {
      exit = execute(program, mem, state, hook, kernel) as ExitCode;
      instructions += state.retired;
      if (exit !== Exit.OUT_OF_GAS || reserve === 0n) break;
      // A chunk ran out (more than 2^53 gas, or a checkpoint is due): refill and resume at the same block start.
      input.checkpoint?.(BigInt(state.gas) + reserve, instructions);
      const refill = reserve > chunk ? chunk : reserve;
      reserve -= refill;
      state.gas += Number(refill);
    }
    pc = CODE_BASE + state.h * 2;
  }

  const gasLeft = BigInt(state.gas) + reserve;
  const regs = phi();
  const exitArg = exit === Exit.HALT ? regs[7] : exit === Exit.PAGE_FAULT || exit === Exit.HOST_CALL ? BigInt(state.arg) : 0n;
  const result: InvokeResult = {
    exit,
    exitArg,
    regs,
    pc,
    gasLeft,
    gasUsed: gas - gasLeft,
    memory: mem.regions.filter((r) => r.writable).map((r) => ({ start: r.start, bytes: r.bytes })),
    instructions,
    caps: frame && exit === Exit.HALT ? resultCapsOf(frame.results(), (c) => frame.bytesOf(c).slice()) : [],
  };
  return { result, frame };
}

const programs = new WeakMap<Uint8Array, Program>();

/** The image's pre-decoded program, decoded on first use. */
export function programOf(imageCap: ImageCap): Program {
  let program = programs.get(imageCap.code);
  if (program === undefined) {
    program = prepareProgram(imageCap.code);
    programs.set(imageCap.code, program);
  }
  return program;
}

export interface InvokeOptions {
  /** Up to four arguments, to φ7..φ10. */
  args?: (bigint | number)[];
  /** Argument caps, to argument slots 0, 1, ... (docs/machine.md "Caps at run time"). */
  caps?: readonly ArgCap[];
  /** An Instance's writable memory by mapping start, instead of the image's initial bytes. */
  memory?: ReadonlyMap<number, Uint8Array>;
  /** The image's root Image slots that DERIVE_SPAWN can make Instances of (RunnableImage.spawnable). */
  spawnable?: ReadonlyMap<number, RunnableImage>;
  gas: bigint | number;
  hostFunction?: HostFunction;
  checkpoint?: Checkpoint;
}

/**
 * Invokes endpoint `endpointKey` of an image on the reference interpreter. `data` is
 * the admitted image or its Data caps by slot (they back the root mappings).
 */
export function invokeLocal(imageCap: ImageCap, data: AdmittedImage | RootData, endpointKey: KeyLike, opts: InvokeOptions): InvokeResult {
  return runMachine({ ...endpointInput(imageCap, data, endpointKey, opts.args, opts.caps, opts.memory, opts.spawnable), gas: opts.gas, hostFunction: opts.hostFunction, checkpoint: opts.checkpoint });
}

/** The endpoint `endpointKey` names ('BadArgument' for no key, 'UnknownEndpoint' for none of the image's). */
export function findEndpoint(imageCap: ImageCap, endpointKey: unknown): ImageEndpointDef {
  let key: Uint8Array;
  try {
    key = toKey(endpointKey as KeyLike);
  } catch (cause) {
    throw new NubError('BadArgument', `endpoint: ${(cause as Error).message}`, { path: 'endpoint', cause });
  }
  const endpoint = imageCap.endpoints.find((e) => keysEqual(e.key, key));
  if (endpoint === undefined) throw new NubError('UnknownEndpoint', `the image has no endpoint [${Array.from(key).join(',')}]`);
  return endpoint;
}

/**
 * The machine input of a call to `endpointKey` (all but gas and host calls): the
 * pre-decoded program, the mappings (argument mappings show their caps read-only),
 * the entry, the registers with the arguments in φ7..φ10, and the frame. What
 * `invokeLocal` runs, and what a differential test feeds another engine.
 */
export function endpointInput(
  imageCap: ImageCap, data: AdmittedImage | RootData, endpointKey: KeyLike, args: readonly (bigint | number)[] = [], caps: readonly (ArgCap | FrameCap)[] = [],
  memory?: ReadonlyMap<number, Uint8Array>, spawnable?: ReadonlyMap<number, RunnableImage>,
): Omit<MachineInput, 'gas' | 'hostFunction'> & { program: Program; entry: bigint; regs: bigint[]; frame: FrameSpec } {
  const endpoint = findEndpoint(imageCap, endpointKey);
  const argValues = check.args(args, MAX_ARGS);

  const root = 'dataCaps' in data ? (data as AdmittedImage).dataCaps : (data as RootData);
  const frame = frameSpec(imageCap, endpoint, root, caps, spawnable);
  const mappings: MappingSpec[] = resolveMappings(imageCap, root, caps).map((r, i) => {
    const m = imageCap.mappings[i]!;
    const size = Number(m.size);
    // A mapping shows the cap's first `size` bytes, zeros past the cap's end (and past its last stored byte); an Instance's own memory instead.
    const writable = r.arg === undefined && !mappingIsPinned(imageCap, m);
    const content = (writable && memory?.get(Number(m.start))) || r.cap.data.leadingBytes(size);
    return { start: Number(m.start), size, writable, content: content.subarray(0, Math.min(size, content.length)) };
  });

  const regs: bigint[] = endpoint.initialRegs.slice(0, NUM_REGS);
  argValues.forEach((v, i) => { regs[7 + i] = v; });
  return { program: programOf(imageCap), mappings, entry: endpoint.entryPc, regs, frame };
}
