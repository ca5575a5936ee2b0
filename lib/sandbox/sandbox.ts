/**
 * The Sandbox: one guest (engine `kvm`: a micro-VM running nub's kernel and its PVM2
 * engine) or the reference interpreter in this process (engine `local`), with the
 * same API over both. Load images, store caps, register host functions, invoke.
 *
 *   using sandbox = Sandbox.create();
 *   const image = sandbox.loadImage(bytes);
 *   const r = sandbox.invokeSync(image, 1, { args: [90n], gas: 1_000_000n });
 *
 * Reuse (docs/snapshots.md): `sandbox.snapshot()` captures the guest and what the host
 * keeps about it; `Sandbox.fromSnapshot(snapshot, { vmCache })` starts a sandbox in that
 * state without booting; `sandbox.restore(snapshot)` puts one back (also after a fault).
 *
 * See docs/sandbox.md for the protocol and the error codes (errors.ts).
 */
import { existsSync } from 'node:fs';
import { accessSync, constants as fsConstants } from 'node:fs';
import { CapPutLayout } from '../abi/guest-abi.js';
import { Layout } from '../abi/guest-abi.js';
import { capHash, decodeCap, encodeCap, keysEqual, lastNonZero, toHex, toKey, type CapValue, type KeyLike } from '../caps/index.js';
import { CapSelector } from '../caps/schema.js';
import { NubError } from '../errors.js';
import { CAP_HASH_BYTES, GuestVm, type StoredCap } from '../guest/index.js';
import type { CapToStore } from '../guest/guest-vm.js';
import {
  invokeInGuest, invokeInGuestAsync, panicAtEntry, prepareInGuest,
  type GuestHostCall, type GuestImageSpec, type GuestInvokeOutcome, type GuestMapping, type PreparedGuestImage,
  type KvmEngine,
} from '../guest/invoke.js';
import { admitImage, ImageBuilder, mappingIsPinned, type AdmittedImage } from '../image/index.js';
import { HOST_CALL_MAX, HOST_CALL_MIN, NUM_REGS } from '../machine/abi.js';
import { invokeLocal, type InvokeResult, type MemoryView } from '../machine/invoke.js';
import { Memory } from '../machine/memory.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { VmCache } from '../snapshot/vm-cache.js';

export type EngineName = 'kvm' | 'local';

export interface SandboxOptions {
  /** Guest RAM in bytes (engine kvm; default DEFAULT_SANDBOX_MEMORY). It holds the stored caps and each invocation's writable memory. */
  memorySize?: number;
  /** Default: 'kvm' when /dev/kvm can be opened, else 'local'. */
  engine?: EngineName;
  /** Engine kvm: how the guest runs PVM2 code (default 'recompiler': translated to x86-64; 'interpreter': the guest's interpreter). */
  kvmEngine?: KvmEngine;
  kvmPath?: string;
  kernelPath?: string;
}

export interface InvokeOptions {
  /** Up to four arguments, to φ7..φ10 (numbers or bigints, taken mod 2^64). */
  args?: readonly (bigint | number)[];
  /** Gas for the invocation (default DEFAULT_GAS). */
  gas?: bigint | number;
  /** Engine kvm: stop the guest after this long ('Timeout'). */
  timeoutMs?: number;
  /** Engine kvm, async `invoke` only: aborting stops the guest ('Cancelled'). */
  signal?: AbortSignal;
}

/**
 * A host function for `ecalli number`: gets φ0..φ12 and the invocation's memory
 * (bounds-checked, addresses mod 2^32) and returns φ7's new value; execution goes on
 * at the next instruction. Returning undefined ends the invoke with HOST_CALL;
 * throwing ends it with 'HostFunctionFailed'.
 */
export type HostFunction = (regs: bigint[], memory: MemoryView, number: number) => bigint | number | undefined;

/** An image loaded into a sandbox. */
export interface LoadedImage {
  /** The image file's content hash. */
  readonly contentHash: Uint8Array;
  /** The hash of its Image cap, the key of its code in the guest's directory. */
  readonly imageHash: Uint8Array;
  readonly admitted: AdmittedImage;
}

/** Reads caps stored in the sandbox (the guest's directory, read without entering the guest, on kvm). */
export interface CapReader {
  len(): number;
  contains(hash: Uint8Array): boolean;
  get(hash: Uint8Array): StoredCap | undefined;
  getCap(hash: Uint8Array): CapValue | undefined;
}

/** lib/machine's InvokeResult; on kvm `memory` is read from the guest when first used, and only until the next invoke ('StaleMemory'). */
export type SandboxResult = InvokeResult;

export const DEFAULT_GAS = 1_000_000_000n;
/** 64 MiB: room for the examples' largest mapping (8 MiB) stored once and copied once per invoke. */
export const DEFAULT_SANDBOX_MEMORY = 64 * 1024 * 1024;

/** The engine Sandbox.create picks by default: kvm when the device can be opened read-write. */
export function defaultEngine(kvmPath = '/dev/kvm'): EngineName {
  if (!existsSync(kvmPath)) return 'local';
  try {
    accessSync(kvmPath, fsConstants.R_OK | fsConstants.W_OK);
    return 'kvm';
  } catch {
    return 'local';
  }
}

/** An image as the sandbox keeps it: what the guest needs to prepare it, and (kvm) the guest's answer. */
interface PreparedImage {
  loaded: LoadedImage;
  spec: GuestImageSpec;
  guest: PreparedGuestImage | undefined;
}

/** The Image cap's encoding: the union selector, then the container whose first field (the code) is variable-size. */
function codeOffsetIn(encoded: Uint8Array, codeLen: number): number {
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const first = 1 + view.getUint32(1, true);
  const next = 1 + view.getUint32(5, true); // the endpoints list's offset ends the code
  if (next - first !== codeLen) throw new NubError('Internal', 'the Image cap encoding does not start with its code');
  return first;
}

function toStore(cap: CapValue, hash = capHash(cap)): CapToStore {
  const bytes = encodeCap(cap);
  return { hash, kind: CapSelector[cap.kind], bytes, pageOffset: cap.kind === 'Data' ? CapPutLayout.values.DATA_PAGES_OFFSET : undefined };
}

function badArgument(message: string): NubError {
  return new NubError('BadArgument', message);
}

function toU64(v: bigint | number, what: string): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) throw badArgument(`${what} ${v} is not an integer`);
  const b = BigInt(v);
  if (b < -(1n << 63n) || b >= 1n << 64n) throw badArgument(`${what} ${b} does not fit in 64 bits`);
  return BigInt.asUintN(64, b);
}

/** A CapReader over caps held in this process (engine local). */
class LocalCapStore implements CapReader {
  readonly #caps = new Map<string, StoredCap>();
  put(c: CapToStore): boolean {
    const key = toHex(c.hash);
    if (this.#caps.has(key)) return false;
    this.#caps.set(key, { kind: c.kind, bytes: c.bytes });
    return true;
  }
  len(): number {
    return this.#caps.size;
  }
  contains(hash: Uint8Array): boolean {
    return this.#caps.has(toHex(hash));
  }
  get(hash: Uint8Array): StoredCap | undefined {
    const c = this.#caps.get(toHex(hash));
    return c && { kind: c.kind, bytes: c.bytes.slice() };
  }
  getCap(hash: Uint8Array): CapValue | undefined {
    const c = this.#caps.get(toHex(hash));
    return c && decodeCap(c.bytes);
  }
}

/** What the host keeps about a kvm sandbox's guest: images (with their guest ids), caps, host functions. */
interface HostState {
  images: Map<string, PreparedImage>;
  stored: CapToStore[];
  hostFunctions: Map<number, HostFunction>;
}

/** A copy that later loadImage/reset calls on either side cannot change. */
function copyHostState(state: HostState): HostState {
  const copies = new Map<PreparedImage, PreparedImage>();
  const images = new Map<string, PreparedImage>();
  for (const [key, prepared] of state.images) {
    let copy = copies.get(prepared);
    if (copy === undefined) copies.set(prepared, (copy = { ...prepared }));
    images.set(key, copy);
  }
  return { images, stored: [...state.stored], hostFunctions: new Map(state.hostFunctions) };
}

/**
 * A kvm sandbox as it was: its guest (memory and vCPU, a lib/snapshot Snapshot) and the
 * host's record of its images, caps and host functions. Start sandboxes from it with
 * Sandbox.fromSnapshot, or reset one with sandbox.restore. Close it when done (sandboxes
 * started from it keep what they need).
 */
export class SandboxSnapshot implements Disposable {
  readonly guest: Snapshot;
  /** @internal */
  readonly host: HostState;
  readonly options: SandboxOptions;

  /** @internal */
  constructor(guest: Snapshot, host: HostState, options: SandboxOptions) {
    this.guest = guest;
    this.host = host;
    this.options = options;
  }

  get memorySize(): number {
    return this.guest.memorySize;
  }

  close(): void {
    this.guest.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export interface FromSnapshotOptions {
  /** Take the VM from this cache when one of the right size is idle, and give it back on close(). */
  vmCache?: VmCache;
}

export class Sandbox {
  readonly engine: EngineName;
  readonly #options: SandboxOptions;
  #guest: GuestVm | undefined;
  readonly #local: LocalCapStore | undefined;
  #closed = false;
  /** Counts invokes, so a result's guest memory knows when it has been reused. */
  #epoch = 0;
  #images = new Map<string, PreparedImage>();
  /** Every cap stored, in order, to restore them into a rebooted guest. */
  #stored: CapToStore[] = [];
  #hostFunctions = new Map<number, HostFunction>();

  private constructor(options: SandboxOptions, engine: EngineName, restored?: { guest: GuestVm; host: HostState }) {
    this.#options = options;
    this.engine = engine;
    if (restored) {
      this.#guest = restored.guest;
      this.#setHostState(restored.host);
    } else if (engine === 'kvm') this.#guest = this.#boot();
    else this.#local = new LocalCapStore();
  }

  /**
   * A kvm sandbox in `snapshot`'s state, without booting: the same caps, images and host
   * functions. With `vmCache`, it reuses an idle VM (tens of microseconds instead of
   * hundreds) and gives it back on close().
   */
  static fromSnapshot(snapshot: SandboxSnapshot, options: FromSnapshotOptions = {}): Sandbox {
    const o = snapshot.options;
    const guest = GuestVm.fromSnapshot(snapshot.guest, {
      ...(o.kvmPath === undefined ? {} : { kvmPath: o.kvmPath }),
      ...(options.vmCache === undefined ? {} : { vmCache: options.vmCache }),
    });
    return new Sandbox(o, 'kvm', { guest, host: copyHostState(snapshot.host) });
  }

  /** Boots a guest (engine kvm) or sets up the local engine. */
  static create(options: SandboxOptions = {}): Sandbox {
    const engine = options.engine ?? defaultEngine(options.kvmPath);
    if (engine !== 'kvm' && engine !== 'local') throw badArgument(`engine '${String(engine)}' is neither 'kvm' nor 'local'`);
    const kvmEngine = options.kvmEngine;
    if (kvmEngine !== undefined && kvmEngine !== 'recompiler' && kvmEngine !== 'interpreter') throw badArgument(`kvmEngine '${String(kvmEngine)}' is neither 'recompiler' nor 'interpreter'`);
    return new Sandbox(options, engine);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Engine kvm: the guest itself (raw mailbox requests, boot info, memory), for diagnostics and tests. */
  get guest(): GuestVm | undefined {
    this.#checkOpen();
    return this.#guest;
  }

  /** The error that made the guest unusable, if one did (engine kvm); `reset()` clears it. */
  get poisonedBy(): NubError | undefined {
    return this.#guest?.mailbox.poisonedBy;
  }

  /** Reads the stored caps: on kvm straight out of guest memory, without entering the guest. */
  get reader(): CapReader {
    this.#checkOpen();
    return this.#local ?? this.#guest!.reader;
  }

  /**
   * Admits an image (bytes of image.ssz, an ImageBuilder, or an already admitted image)
   * and stores its Image cap and Data caps in the sandbox. Loading the same image again
   * returns the same LoadedImage. Errors: 'BadImage' (cause: the admission error), the
   * machine's mapping errors ('Machine.MappingsOverlap', ...), the guest's 'DirectoryFull' / 'GuestOutOfMemory'.
   */
  loadImage(image: Uint8Array | ImageBuilder | AdmittedImage): LoadedImage {
    this.#checkOpen();
    let admitted: AdmittedImage;
    try {
      admitted = image instanceof Uint8Array ? admitImage(image) : image instanceof ImageBuilder ? admitImage(image.encode()) : image;
    } catch (cause) {
      if (!(cause instanceof NubError)) throw cause;
      throw new NubError('BadImage', `the image was not admitted: ${cause.message}`, { cause, ...(cause.path === undefined ? {} : { path: cause.path }) });
    }
    const known = this.#images.get(toHex(admitted.contentHash));
    if (known) return known.loaded;

    const imageCap = admitted.imageCap;
    const imageStore = toStore({ kind: 'Image', value: imageCap });
    const caps = [imageStore, ...[...admitted.dataCaps.values()].map((d) => toStore({ kind: 'Data', value: d.cap }, d.hash))];
    const loaded: LoadedImage = { contentHash: admitted.contentHash, imageHash: imageStore.hash, admitted };
    const spec: GuestImageSpec = {
      imageHash: imageStore.hash,
      codeOffset: codeOffsetIn(imageStore.bytes, imageCap.code.length),
      codeLen: imageCap.code.length,
      mappings: this.#mappingsOf(admitted),
    };
    this.#putStores(caps);
    const prepared: PreparedImage = { loaded, spec, guest: this.#guest && prepareInGuest(this.#guest, spec) };
    this.#images.set(toHex(admitted.contentHash), prepared);
    this.#images.set(toHex(imageStore.hash), prepared);
    return loaded;
  }

  /** Stores caps (any kind), each under its cap hash. Returns how many were new. */
  putCaps(caps: readonly CapValue[]): number {
    this.#checkOpen();
    return this.#putStores(caps.map((c) => toStore(c)));
  }

  /** Registers `fn` for `ecalli number` (64..2047), replacing any earlier one. */
  registerHostFunction(number: number, fn: HostFunction): void {
    this.#checkOpen();
    if (!Number.isInteger(number) || number < HOST_CALL_MIN || number > HOST_CALL_MAX) {
      throw badArgument(`host function numbers are ${HOST_CALL_MIN}..${HOST_CALL_MAX}, not ${number}`);
    }
    if (typeof fn !== 'function') throw badArgument('a host function must be a function');
    this.#hostFunctions.set(number, fn);
    this.#writeHostFunctionBit(number, true);
  }

  unregisterHostFunction(number: number): boolean {
    this.#checkOpen();
    const had = this.#hostFunctions.delete(number);
    if (had) this.#writeHostFunctionBit(number, false);
    return had;
  }

  /**
   * Invokes endpoint `endpoint` of a loaded image (or its content or Image cap hash) on
   * this thread. On kvm this is the fastest path (no thread hand-off); `timeoutMs`
   * works, `signal` cannot (the event loop is blocked while the guest runs).
   */
  invokeSync(image: LoadedImage | Uint8Array, endpoint: KeyLike, opts: InvokeOptions = {}): SandboxResult {
    const call = this.#prepareCall(image, endpoint, opts);
    if (call.early) return call.early;
    if (call.local) return this.#invokeLocal(call.prepared, call.key, call.args, call.gas);
    const epoch = ++this.#epoch;
    return this.#result(invokeInGuest(this.#guest!, call.request, this.#guestOptions(opts), epoch, () => this.#epoch), call.gas);
  }

  /**
   * Invokes on the VM's own thread, leaving the event loop free; `signal` and
   * `timeoutMs` stop a guest that runs too long. Engine local runs synchronously.
   */
  async invoke(image: LoadedImage | Uint8Array, endpoint: KeyLike, opts: InvokeOptions = {}): Promise<SandboxResult> {
    const call = this.#prepareCall(image, endpoint, opts);
    if (call.early) return call.early;
    if (call.local) {
      if (opts.signal?.aborted) throw new NubError('Cancelled', 'the invoke was cancelled before it started', { cause: opts.signal.reason });
      return this.#invokeLocal(call.prepared, call.key, call.args, call.gas);
    }
    const epoch = ++this.#epoch;
    const outcome = await invokeInGuestAsync(this.#guest!, call.request, this.#guestOptions(opts), epoch, () => this.#epoch);
    return this.#result(outcome, call.gas);
  }

  /**
   * Engine kvm: replaces the guest with a freshly booted one holding the same caps and
   * host functions (after 'Poisoned'; harmless otherwise). Engine local: nothing to do.
   */
  reset(): void {
    this.#checkOpen();
    if (this.#guest === undefined) return;
    this.#guest.close();
    this.#guest = undefined;
    const guest = this.#boot();
    this.#guest = guest;
    guest.putCaps(this.#stored);
    for (const prepared of new Set(this.#images.values())) prepared.guest = prepareInGuest(guest, prepared.spec);
    for (const n of this.#hostFunctions.keys()) this.#writeHostFunctionBit(n, true);
  }

  /**
   * Engine kvm: this sandbox as it is now (between invokes), to start others from or to
   * restore later. Its guest memory turns copy-on-write (invisible to the guest).
   * Engine local: 'Unsupported'.
   */
  snapshot(): SandboxSnapshot {
    this.#checkOpen();
    if (this.#guest === undefined) throw new NubError('Unsupported', 'snapshots need engine kvm');
    return new SandboxSnapshot(this.#guest.snapshot(), copyHostState(this.#hostState()), this.#options);
  }

  /**
   * Engine kvm: puts the sandbox back in `snapshot`'s state (guest memory, vCPU, images,
   * caps and host functions), whatever happened since: also after a fault ('Poisoned'
   * is cleared). Costs the pages written since, not the memory size. Earlier results'
   * `memory` turns stale.
   */
  restore(snapshot: SandboxSnapshot): void {
    this.#checkOpen();
    if (this.#guest === undefined) throw new NubError('Unsupported', 'snapshots need engine kvm');
    this.#guest.restore(snapshot.guest);
    this.#setHostState(copyHostState(snapshot.host));
    this.#epoch++;
  }

  /** Stops the guest and frees its memory. Idempotent; every later call throws 'Closed'. */
  close(): void {
    this.#closed = true;
    this.#guest?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #boot(): GuestVm {
    const o = this.#options;
    return GuestVm.boot({
      memorySize: o.memorySize ?? DEFAULT_SANDBOX_MEMORY,
      ...(o.kvmPath === undefined ? {} : { kvmPath: o.kvmPath }),
      ...(o.kernelPath === undefined ? {} : { kernelPath: o.kernelPath }),
    });
  }

  #hostState(): HostState {
    return { images: this.#images, stored: this.#stored, hostFunctions: this.#hostFunctions };
  }

  #setHostState(state: HostState): void {
    this.#images = state.images;
    this.#stored = state.stored;
    this.#hostFunctions = state.hostFunctions;
  }

  #checkOpen(): void {
    if (this.#closed) throw new NubError('Closed', 'the sandbox is closed');
  }

  #putStores(caps: CapToStore[]): number {
    let inserted: number;
    if (this.#local) inserted = caps.filter((c) => this.#local!.put(c)).length;
    else inserted = this.#guest!.putCaps(caps);
    this.#stored.push(...caps);
    return inserted;
  }

  /** The image's mappings as the guest takes them, checked with the machine's rules (the same errors as engine local). */
  #mappingsOf(admitted: AdmittedImage): GuestMapping[] {
    const imageCap = admitted.imageCap;
    const mappings = imageCap.mappings.map((m, i) => {
      const data = m.source.length === 1 ? admitted.dataCaps.get(toHex(m.source[0]!)) : undefined;
      if (data === undefined) {
        throw new NubError('Machine.UnresolvedMapping', `mapping at 0x${m.start.toString(16)}: no Data cap at its source`, { path: `memory_mappings[${i}].source` });
      }
      const mapping: GuestMapping = { start: Number(m.start), size: Number(m.size), writable: !mappingIsPinned(imageCap, m.start), dataHash: data.hash };
      if (mapping.writable) {
        const bytes = data.cap.bytes();
        mapping.initial = bytes.subarray(0, Math.min(lastNonZero(bytes) + 1, mapping.size)); // restored before every invoke; zeros are cheaper
      }
      return mapping;
    });
    // The reference's own checks (page-aligned, inside [DATA_BASE, 2^32), no overlap), so both engines refuse alike.
    new Memory(new Uint8Array(0), mappings.map((m) => ({ ...m, content: new Uint8Array(0) })));
    return mappings.filter((m) => m.size > 0); // an empty mapping maps nothing
  }

  #prepareCall(image: LoadedImage | Uint8Array, endpoint: KeyLike, opts: InvokeOptions) {
    this.#checkOpen();
    const hash = image instanceof Uint8Array ? image : image.contentHash;
    if (!(hash instanceof Uint8Array) || hash.length !== CAP_HASH_BYTES) throw badArgument('an image is a LoadedImage or a 32-byte hash');
    const prepared = this.#images.get(toHex(hash));
    if (prepared === undefined) throw new NubError('UnknownImage', `no image ${toHex(hash)} is loaded in this sandbox`);
    const imageCap = prepared.loaded.admitted.imageCap;
    const key = toKey(endpoint);
    const ep = imageCap.endpoints.find((e) => keysEqual(e.key, key));
    if (ep === undefined) throw new NubError('UnknownEndpoint', `the image has no endpoint [${Array.from(key).join(',')}]`);
    const argList = opts.args ?? [];
    if (argList.length > 4) throw badArgument(`${argList.length} arguments given; at most 4 go to φ7..φ10`);
    const args = argList.map((a, i) => toU64(a, `argument ${i}`));
    const gas = opts.gas === undefined ? DEFAULT_GAS : BigInt(opts.gas);
    if (gas < 0n || gas >= 1n << 64n) throw badArgument(`gas ${gas} is not a u64`);
    if (opts.timeoutMs !== undefined && !(Number.isFinite(opts.timeoutMs) && opts.timeoutMs > 0)) throw badArgument(`timeoutMs ${opts.timeoutMs} is not a positive number`);
    const common = { prepared, key, args, gas };
    if (this.#local) return { ...common, local: true as const, early: undefined, request: undefined };

    const regs = ep.initialRegs.slice(0, NUM_REGS);
    args.forEach((v, i) => { regs[7 + i] = v; });
    if (ep.entryPc >= 1n << 32n) {
      const state = panicAtEntry(ep.entryPc, regs, gas);
      return { ...common, local: false as const, early: { ...state, gasUsed: 0n, memory: [] }, request: undefined };
    }
    const request = { image: prepared.guest!, entry: Number(ep.entryPc), regs, gas, engine: this.#options.kvmEngine ?? 'recompiler' };
    return { ...common, local: false as const, early: undefined, request };
  }

  #guestOptions(opts: InvokeOptions): { timeoutMs?: number; signal?: AbortSignal; hostCall: GuestHostCall } {
    return {
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      hostCall: (n, regs, memory) => this.#callHostFunction(n, regs, memory),
    };
  }

  #callHostFunction(n: number, regs: bigint[], memory: MemoryView): bigint | undefined {
    const fn = this.#hostFunctions.get(n);
    if (fn === undefined) return undefined;
    const value = fn(regs, memory, n);
    return value === undefined ? undefined : toU64(value, `host function ${n}'s result`);
  }

  #invokeLocal(prepared: PreparedImage, key: Uint8Array, args: bigint[], gas: bigint): SandboxResult {
    const admitted = prepared.loaded.admitted;
    let failure: unknown;
    const hostCall = (n: number, regs: bigint[], memory: MemoryView): bigint | undefined => {
      try {
        return this.#callHostFunction(n, regs, memory);
      } catch (err) {
        failure = err ?? new Error('undefined was thrown');
        throw failure;
      }
    };
    try {
      return invokeLocal(admitted.imageCap, admitted, key, { args, gas, hostCall });
    } catch (err) {
      if (failure !== undefined && err === failure) {
        throw new NubError('HostFunctionFailed', `a host function threw: ${String(err)}`, { cause: err });
      }
      throw err;
    }
  }

  #result(outcome: GuestInvokeOutcome, gas: bigint): SandboxResult {
    const { state, memory } = outcome;
    let bytes: { start: number; bytes: Uint8Array }[] | undefined;
    return {
      ...state,
      gasUsed: gas - state.gasLeft,
      get memory() {
        bytes ??= memory.writableMappings();
        return bytes;
      },
    };
  }

  #writeHostFunctionBit(n: number, on: boolean): void {
    if (this.#guest === undefined) return;
    const gpa = Layout.values.HOST_FUNCTIONS_GPA + (n >> 3);
    const mem = this.#guest.memory;
    const byte = mem.u8(gpa);
    mem.writeU8(gpa, on ? byte | (1 << (n & 7)) : byte & ~(1 << (n & 7)));
  }
}
