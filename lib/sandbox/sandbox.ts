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
 * The engine is a SandboxBackend (backend.ts), chosen once in the constructor; the
 * Sandbox checks every call and keeps the host state, the backend runs it.
 *
 * See docs/sandbox.md for the protocol and the error codes (errors.ts).
 */
import { CapPutLayout } from '../abi/guest-abi.js';
import { capHash, DataCap, encodeCap, encodedCapLength, toHex, type CapValue, type KeyLike } from '../caps/index.js';
import { CapSelector, type InstanceCapValue } from '../caps/schema.js';
import { NubError, isNubError } from '../errors.js';
import { CAP_HASH_BYTES, GuestVm, type StoredCap } from '../guest/index.js';
import type { CapToStore } from '../guest/guest-vm.js';
import { MAX_PREPARE_MAPPINGS, type GuestImageSpec, type GuestMapping, type KvmEngine } from '../guest/invoke.js';
import { admitImage, ImageBuilder, isAdmittedImage, mappingIsPinned, type AdmittedImage } from '../image/index.js';
import { DEFAULT_LOAD_TIMEOUT_MS, DEFAULT_SANDBOX_MEMORY, MAX_IMAGES } from '../limits.js';
import { Exit, HOST_CALL_MAX, HOST_CALL_MIN, PAGE_SIZE } from '../machine/abi.js';
import { instanceValue, spawnInstance, type InstanceRun, type RunnableImage } from '../machine/instance.js';
import { dataCapOf, frameSpec, mappingSource, resolveMappings, type ArgCap, type FrameCap, type FrameSpec } from '../machine/frame.js';
import {
  findEndpoint, MAX_ARGS, type HostFunction as MachineHostFunction, type InvokeResult, type MemoryView, type ResultCap,
} from '../machine/invoke.js';
import { checkMappings } from '../machine/memory.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { probeKvm } from '../native/index.js';
import type { VmCache } from '../snapshot/vm-cache.js';
import * as check from '../arguments.js';
import { preparedOf, type HostState, type InstanceState, type PreparedCall, type PreparedImage, type SandboxBackend, type SandboxContext, type StoredEntry } from './backend.js';
import { KvmBackend } from './kvm-backend.js';
import { LocalBackend } from './local-backend.js';

export type EngineName = 'kvm' | 'local';
const ENGINE_CHOICES = ['kvm', 'local', 'auto'] as const;

export interface SandboxOptions {
  /** Guest RAM in bytes (engine kvm; default DEFAULT_SANDBOX_MEMORY). It holds the stored caps and each invocation's writable memory. */
  memorySize?: number;
  /**
   * 'kvm' (the default): the hardware-isolated guest; 'KvmUnavailable' when the device
   * cannot be used. 'local': the reference interpreter in this process (no isolation).
   * 'auto': kvm when it can be used, else local (`sandbox.engine` and `sandbox.kvmUnavailable` say which and why).
   */
  engine?: EngineName | 'auto';
  /** Engine kvm: how the guest runs PVM2 code (default 'recompiler': translated to x86-64; 'interpreter': the guest's interpreter). */
  kvmEngine?: KvmEngine;
  kvmPath?: string;
  kernelPath?: string;
  /**
   * Engine kvm: calls cross no VM exit. Between calls the vCPU spins on the mailbox in
   * ring 3 for a short while (POLL_IDLE_US), so back-to-back calls cost a cache-line
   * hand-off instead of an exit; an idle guest then rings the doorbell and gives its
   * core back. Pays only when the vCPU thread and the caller run on different cores
   * ('PollingUnavailable' where the process has one). See docs/guest.md, "Polling mode".
   */
  polling?: boolean;
  /**
   * Bytes this sandbox may hold for its images and caps (default: memorySize, else
   * DEFAULT_SANDBOX_MEMORY): every stored cap's bytes plus every loaded image's address
   * space (code and mappings, which each invoke lays out). Beyond it, loadImage and
   * putCaps throw 'MemoryBudgetExceeded' before allocating anything.
   */
  memoryBudget?: number;
}

export interface LoadOptions {
  /** Bound on the guest's work for this load (PUT_CAPS and PREPARE; default DEFAULT_LOAD_TIMEOUT_MS). A load that runs out poisons the sandbox ('Timeout'). */
  timeoutMs?: number;
  /** Checked before the load starts ('Cancelled'); loading is synchronous, so a later abort cannot stop it. */
  signal?: AbortSignal;
}

export interface InvokeOptions {
  /** Up to four arguments, to φ7..φ10 (numbers or bigints, taken mod 2^64). */
  args?: readonly (bigint | number)[];
  /** Gas for the invocation (default DEFAULT_GAS). */
  gas?: bigint | number;
  /** Fail with 'Timeout' after this long, host functions' time included (both engines); at most MAX_TIMEOUT_MS. */
  timeoutMs?: number;
  /**
   * Async `invoke`: aborting stops the call ('Cancelled'). `invokeSync` cannot be stopped
   * from outside, so it refuses a signal ('BadArgument'); one already aborted cancels it ('Cancelled').
   */
  signal?: AbortSignal;
  /**
   * Argument caps, to the argument cnode's slots 0, 1, ... (at most the endpoint's
   * arg_cnode_size): bytes (a Data cap of them, zero-padded to whole pages), a DataCap,
   * or `{ hash }` of a cap stored in this sandbox. Result caps come back in `caps`.
   */
  caps?: readonly CapArgument[];
}

export type CapArgument = Uint8Array | DataCap | { readonly hash: Uint8Array };

/**
 * A host function for `ecalli number` (lib/machine's HostFunction): gets φ0..φ12 and the
 * invocation's memory (bounds-checked, addresses mod 2^32) and returns φ7's new value;
 * execution goes on at the next instruction. Returning undefined ends the invoke with
 * HOST_CALL; throwing ends it with 'HostFunctionFailed'. On async `invoke` it may return
 * a promise (the machine waits, the event loop runs; a rejection is 'HostFunctionFailed');
 * `invokeSync` fails such a call with 'HostFunctionFailed' (cause 'BadArgument').
 */
export type HostFunction = MachineHostFunction<bigint | number | undefined | PromiseLike<bigint | number | undefined>>;

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

/**
 * lib/machine's InvokeResult; on kvm `memory` (and a minted result cap's bytes) is read
 * from the guest when first used, and only until the next invoke ('StaleMemory').
 * Invoking an Instance adds `instance`: the Instance after the call (a new hash after HALT).
 */
export type SandboxResult = InvokeResult & { instance?: Uint8Array };

export const DEFAULT_GAS = 1_000_000_000n;
export { DEFAULT_SANDBOX_MEMORY };

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | undefined)?.then === 'function';
}

/** The Image cap's encoding: the union selector, then the container whose first field (the code) is variable-size. */
function codeOffsetIn(encoded: Uint8Array, codeLen: number): number {
  const { SELECTOR_BYTES, SSZ_OFFSET_BYTES } = CapPutLayout.values;
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const first = SELECTOR_BYTES + view.getUint32(SELECTOR_BYTES, true);
  const next = SELECTOR_BYTES + view.getUint32(SELECTOR_BYTES + SSZ_OFFSET_BYTES, true); // the endpoints list's offset ends the code
  if (next - first !== codeLen) throw new NubError('Internal', 'the Image cap encoding does not start with its code');
  return first;
}

function toStore(cap: CapValue, hash = capHash(cap)): CapToStore {
  const bytes = encodeCap(cap);
  return { hash, kind: CapSelector[cap.kind], bytes, pageOffset: cap.kind === 'Data' ? CapPutLayout.values.DATA_PAGES_OFFSET : undefined };
}

const pageRound = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
const NOTHING: ReadonlySet<string> = new Set();

/** A copy that later loadImage/reset calls on either side cannot change. */
function copyHostState(state: HostState): HostState {
  const copies = new Map<PreparedImage, PreparedImage>();
  const images = new Map<string, PreparedImage>();
  for (const [key, prepared] of state.images) {
    let copy = copies.get(prepared);
    if (copy === undefined) copies.set(prepared, (copy = { ...prepared }));
    images.set(key, copy);
  }
  const caps = new Map([...state.caps].map(([k, e]) => [k, { ...e }]));
  const instances = new Map([...state.instances].map(([key, i]) => [key, { ...i, prepared: copies.get(i.prepared) ?? i.prepared }]));
  return { images, caps, hostFunctions: new Map(state.hostFunctions), garbage: state.garbage, guestImages: state.guestImages, instances };
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

/**
 * What a sandbox is doing: a call must not disturb a run in flight ('Busy'), and a host
 * function may not call what would disturb the invoke it serves ('Reentrant').
 */
type Activity = 'idle' | 'running' | 'hostCall';

export class Sandbox {
  /** The engine this sandbox runs on. */
  readonly engine: EngineName;
  /** Set when `engine: 'auto'` fell back to local: why kvm could not be used ('KvmUnavailable'). */
  readonly kvmUnavailable: NubError | undefined;
  readonly #options: SandboxOptions;
  readonly #budget: number;
  /** What runs the images: the one place that knows the engine. */
  readonly #backend: SandboxBackend;
  #closed = false;
  #activity: Activity = 'idle';
  /** Async invokes run one after another: each waits for the one before. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Counts invokes, so a result's guest memory knows when it has been reused. */
  #epoch = 0;
  /** Images, caps (every one stored, by hex hash, to restore them into a rebooted guest), host functions, Instances. */
  #host: HostState = { images: new Map(), caps: new Map(), hostFunctions: new Map(), garbage: 0, guestImages: 0, instances: new Map() };

  private constructor(options: SandboxOptions, engine: EngineName, restored?: { guest: GuestVm; host: HostState }, kvmUnavailable?: NubError) {
    this.#options = options;
    this.engine = engine;
    this.kvmUnavailable = kvmUnavailable;
    const budget = options.memoryBudget ?? options.memorySize ?? DEFAULT_SANDBOX_MEMORY;
    if (!Number.isSafeInteger(budget) || budget <= 0) throw check.badArgument('memoryBudget', `${String(budget)} is not a positive number of bytes`);
    this.#budget = budget;
    if (restored) this.#host = restored.host;
    const ctx: SandboxContext = {
      options,
      host: () => this.#host,
      epoch: () => this.#epoch,
      callHostFunction: (regs, memory, n, async) => this.#callHostFunction(regs, memory, n, async),
    };
    this.#backend = engine === 'kvm' ? new KvmBackend(ctx, restored?.guest) : new LocalBackend(ctx);
  }

  /**
   * A kvm sandbox in `snapshot`'s state, without booting: the same caps, images and host
   * functions. With `vmCache`, it reuses an idle VM (tens of microseconds instead of
   * hundreds) and gives it back on close().
   */
  static fromSnapshot(snapshot: SandboxSnapshot, options: FromSnapshotOptions = {}): Sandbox {
    if (!(snapshot instanceof SandboxSnapshot)) throw check.badArgument('snapshot', 'is not a SandboxSnapshot');
    const opts = check.options(options, 'options');
    const o = snapshot.options;
    const guest = GuestVm.fromSnapshot(snapshot.guest, {
      ...(o.kvmPath === undefined ? {} : { kvmPath: o.kvmPath }),
      ...(o.polling === undefined ? {} : { polling: o.polling }),
      ...(opts.vmCache === undefined ? {} : { vmCache: opts.vmCache }),
    });
    return new Sandbox(o, 'kvm', { guest, host: copyHostState(snapshot.host) });
  }

  /** Boots a guest (engine kvm) or sets up the local engine; see SandboxOptions.engine. */
  static create(options: SandboxOptions = {}): Sandbox {
    const o = check.options(options, 'options');
    const wanted = o.engine ?? 'kvm';
    if (!ENGINE_CHOICES.includes(wanted)) throw check.badArgument('engine', `'${String(wanted)}' is not one of ${ENGINE_CHOICES.join(', ')}`);
    const kvmEngine = o.kvmEngine;
    if (kvmEngine !== undefined && kvmEngine !== 'recompiler' && kvmEngine !== 'interpreter') throw check.badArgument('kvmEngine', `'${String(kvmEngine)}' is neither 'recompiler' nor 'interpreter'`);
    if (o.polling !== undefined && typeof o.polling !== 'boolean') throw check.badArgument('polling', `${String(o.polling)} is not a boolean`);
    const unavailable = wanted === 'local' ? undefined : probeKvm(o.kvmPath);
    if (unavailable && wanted === 'kvm') throw unavailable;
    return new Sandbox(o, unavailable || wanted === 'local' ? 'local' : 'kvm', undefined, unavailable);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Engine kvm: the guest itself (raw mailbox requests, boot info, memory), for diagnostics and tests. */
  get guest(): GuestVm | undefined {
    this.#checkOpen();
    return this.#backend.guest;
  }

  /** The error that made the guest unusable, if one did (engine kvm); `reset()` clears it. */
  get poisonedBy(): NubError | undefined {
    return this.#backend.poisonedBy;
  }

  /** Reads the stored caps: on kvm straight out of guest memory, without entering the guest. A hash is 32 bytes ('BadHash'). */
  get reader(): CapReader {
    this.#checkOpen();
    const reader = this.#backend.reader;
    const hashOf = (hash: unknown): Uint8Array => {
      if (!(hash instanceof Uint8Array) || hash.length !== CAP_HASH_BYTES) throw new NubError('BadHash', `a cap hash is a ${CAP_HASH_BYTES}-byte Uint8Array`);
      return hash;
    };
    return {
      len: () => reader.len(),
      contains: (hash) => reader.contains(hashOf(hash)),
      get: (hash) => reader.get(hashOf(hash)),
      getCap: (hash) => reader.getCap(hashOf(hash)),
    };
  }

  /** Bytes of the memory budget in use: stored caps plus the loaded images' address spaces. */
  get memoryUsed(): number {
    let used = 0;
    for (const e of this.#host.caps.values()) used += e.store.bytes.length;
    for (const p of new Set(this.#host.images.values())) used += p.spaceBytes;
    return used;
  }

  get memoryBudget(): number {
    return this.#budget;
  }

  /**
   * Admits an image (bytes of image.ssz, an ImageBuilder, or an already admitted image)
   * and stores its Image cap and Data caps in the sandbox. Loading the same image again
   * returns the same LoadedImage. Errors: 'BadImage' (cause: the admission error), the
   * machine's mapping errors ('Machine.MappingsOverlap', ...), 'TooManyMappings',
   * 'TooManyImages', 'MemoryBudgetExceeded', 'Timeout' (poisons), the guest's
   * 'DirectoryFull' / 'OutOfMemory' (after unloadImage, a full guest is rebooted first).
   */
  loadImage(image: Uint8Array | ImageBuilder | AdmittedImage, options: LoadOptions = {}): LoadedImage {
    this.#idle();
    const opts = check.options(options, 'options');
    const timeoutMs = check.timeoutMs(opts.timeoutMs) ?? DEFAULT_LOAD_TIMEOUT_MS;
    const signal = check.signal(opts.signal);
    if (signal?.aborted) throw new NubError('Cancelled', 'the load was cancelled before it started', { cause: signal.reason });
    const admitted = this.#admit(image);
    const known = this.#host.images.get(toHex(admitted.contentHash));
    if (known) return known.loaded;
    if (new Set(this.#host.images.values()).size >= MAX_IMAGES) {
      throw new NubError('TooManyImages', `a sandbox holds at most ${MAX_IMAGES} images; unloadImage() one first`);
    }

    const imageCap = admitted.imageCap;
    const mappings = this.#mappingsOf(admitted);
    const dataCaps = [...admitted.dataCaps.values()].map((d) => ({ cap: { kind: 'Data', value: d.cap } as CapValue, hash: d.hash }));
    const imageValue: CapValue = { kind: 'Image', value: imageCap };
    const spaceBytes = pageRound(imageCap.code.length) + this.#backend.imageOverhead(imageCap) + mappings.reduce((n, m) => n + m.size, 0);
    // The budget is checked on sizes computed without encoding: a declared 4 GiB slot must cost nothing to refuse.
    const fresh = new Map<string, number>();
    for (const { cap, hash } of dataCaps) if (!this.#host.caps.has(toHex(hash))) fresh.set(toHex(hash), encodedCapLength(cap));
    const needed = spaceBytes + encodedCapLength(imageValue) + [...fresh.values()].reduce((a, b) => a + b, 0);
    this.#checkBudget(needed, 'this image');

    const imageStore = toStore(imageValue);
    const caps = [imageStore, ...dataCaps.map(({ cap, hash }) => toStore(cap, hash))];
    const loaded: LoadedImage = { contentHash: admitted.contentHash, imageHash: imageStore.hash, admitted };
    const spec: GuestImageSpec = {
      imageHash: imageStore.hash,
      codeOffset: codeOffsetIn(imageStore.bytes, imageCap.code.length),
      codeLen: imageCap.code.length,
      mappings,
      endpoints: imageCap.endpoints.filter((e) => e.key.length === 1).map((e) => ({ key: e.key[0]!, argSlots: e.argCnodeSize, entry: e.entryPc, regs: e.initialRegs })),
      reservedSlots: imageCap.yieldReceiverSlot !== null || imageCap.gasSlots.length > 0 || imageCap.quotaSlots.length > 0,
    };
    const spawnable = new Map<number, RunnableImage>();
    for (const p of imageCap.pinned) {
      const child = p.slot.length === 1 && !admitted.dataCaps.has(toHex(p.slot)) ? this.#host.images.get(toHex(p.capHash)) : undefined;
      if (child !== undefined) spawnable.set(p.slot[0]!, child.runnable);
    }
    const runnable: RunnableImage = { imageCap, rootData: admitted.dataCaps, imageHash: imageStore.hash, spawnable };
    const prepared: PreparedImage = { loaded, spec, guest: undefined, caps: caps.map((c) => toHex(c.hash)), spaceBytes, runnable, capFreeFrames: new Map() };
    const deadline = performance.now() + timeoutMs;
    this.#activity = 'running';
    try {
      this.#backend.withRoom(() => {
        this.#putStores(caps, deadline);
        this.#backend.prepare(prepared, remaining(deadline));
      }, () => this.#dropArgCaps(Infinity, new Set(prepared.caps)));
    } finally {
      this.#activity = 'idle';
    }
    for (const c of caps) this.#host.caps.get(toHex(c.hash))!.images++;
    this.#host.images.set(toHex(admitted.contentHash), prepared);
    this.#host.images.set(toHex(imageStore.hash), prepared);
    return loaded;
  }

  /**
   * Forgets a loaded image (its LoadedImage, content hash or Image cap hash) and the caps
   * only it stored; its budget is free again at once. On kvm the guest keeps their bytes
   * until it is next rebooted, which a load that finds the guest full does by itself.
   * Returns false when no such image is loaded.
   */
  unloadImage(image: LoadedImage | Uint8Array): boolean {
    this.#idle();
    const prepared = this.#host.images.get(toHex(this.#imageHash(image)));
    if (prepared === undefined) return false;
    const user = [...this.#host.images.values()].find((p) => [...p.runnable.spawnable.values()].includes(prepared.runnable));
    if (user !== undefined) {
      throw new NubError('ImageInUse', `image ${toHex(user.loaded.contentHash)} can spawn Instances of this one; unload it first`);
    }
    this.#host.images.delete(toHex(prepared.loaded.contentHash));
    this.#host.images.delete(toHex(prepared.loaded.imageHash));
    const dropped: StoredEntry[] = [];
    for (const key of prepared.caps) {
      const entry = this.#host.caps.get(key)!;
      if (--entry.images > 0 || entry.put) continue;
      this.#host.caps.delete(key);
      dropped.push(entry);
    }
    this.#backend.unload(prepared, dropped);
    return true;
  }

  /** Stores caps (any kind), each under its cap hash. Returns how many were new. Errors as loadImage. */
  putCaps(caps: readonly CapValue[]): number {
    this.#idle();
    if (!Array.isArray(caps)) throw check.badArgument('caps', 'is not an array of caps');
    caps.forEach((c, i) => {
      const ok = typeof c === 'object' && c !== null && typeof c.kind === 'string' && Object.hasOwn(CapSelector, c.kind) && typeof c.value === 'object' && c.value !== null;
      if (!ok) throw check.badArgument(`caps[${i}]`, 'is not a cap ({ kind, value })');
    });
    let stores: CapToStore[];
    try {
      const sizes = caps.map((c) => encodedCapLength(c));
      this.#checkBudget(sizes.reduce((a, b) => a + b, 0), 'these caps');
      stores = caps.map((c) => toStore(c));
    } catch (err) {
      if (isNubError(err)) throw err;
      throw check.badArgument('caps', `a cap does not encode: ${String(err)}`);
    }
    this.#activity = 'running';
    let inserted: number;
    try {
      inserted = this.#backend.withRoom(() => this.#putStores(stores, performance.now() + DEFAULT_LOAD_TIMEOUT_MS), () => this.#dropArgCaps(Infinity, new Set(stores.map((c) => toHex(c.hash)))));
    } finally {
      this.#activity = 'idle';
    }
    for (const s of stores) this.#host.caps.get(toHex(s.hash))!.put = true;
    return inserted;
  }

  /** Registers `fn` for `ecalli number` (64..2047), replacing any earlier one. Allowed inside a host function. */
  registerHostFunction(number: number, fn: HostFunction): void {
    this.#checkOpen();
    if (!Number.isInteger(number) || number < HOST_CALL_MIN || number > HOST_CALL_MAX) {
      throw check.badArgument('number', `host function numbers are ${HOST_CALL_MIN}..${HOST_CALL_MAX}, not ${String(number)}`);
    }
    if (typeof fn !== 'function') throw check.badArgument('fn', 'a host function must be a function');
    this.#host.hostFunctions.set(number, fn);
    this.#backend.hostFunctionChanged(number, true);
  }

  unregisterHostFunction(number: number): boolean {
    this.#checkOpen();
    const had = this.#host.hostFunctions.delete(number);
    if (had) this.#backend.hostFunctionChanged(number, false);
    return had;
  }

  /**
   * Invokes endpoint `endpoint` of a loaded image (or its content or Image cap hash) on
   * this thread. On kvm this is the fastest path (no thread hand-off); `timeoutMs`
   * works; a `signal` is refused (nothing could fire it while the thread is busy here).
   */
  invokeSync(image: LoadedImage | Uint8Array, endpoint: KeyLike, opts: InvokeOptions = {}): SandboxResult {
    this.#idle();
    const call = this.#prepareCall(image, endpoint, opts);
    if (call.signal !== undefined) throw check.badArgument('signal', 'invokeSync cannot be cancelled: use invoke() for a signal');
    this.#activity = 'running';
    try {
      this.#storeArgs(call);
      return this.#settle(call, this.#backend.invokeSync({ ...call, epoch: ++this.#epoch }));
    } finally {
      this.#activity = 'idle';
    }
  }

  /**
   * Invokes on another thread (the VM's, or engine local's worker), leaving the event
   * loop free; `signal` and `timeoutMs` stop a call that runs too long. Host functions
   * run on this thread and may be async. Invokes on one sandbox run one at a time, in call order.
   */
  invoke(image: LoadedImage | Uint8Array, endpoint: KeyLike, opts: InvokeOptions = {}): Promise<SandboxResult> {
    try {
      this.#checkOpen();
      if (this.#activity === 'hostCall') throw reentrant('invoke');
      this.#prepareCall(image, endpoint, opts); // bad arguments fail now, not after the queue
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.#queue.then(() => this.#invokeNow(image, endpoint, opts));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #invokeNow(image: LoadedImage | Uint8Array, endpoint: KeyLike, opts: InvokeOptions): Promise<SandboxResult> {
    this.#idle();
    const call = this.#prepareCall(image, endpoint, opts);
    this.#activity = 'running';
    try {
      this.#storeArgs(call);
      return this.#settle(call, await this.#backend.invoke({ ...call, epoch: ++this.#epoch }));
    } finally {
      this.#activity = 'idle';
    }
  }

  /**
   * An Instance of a loaded image: its writable memory starts as the image's initial
   * bytes. Invoking its hash runs the image on that memory; a run that HALTs yields a
   * new Instance (memory, registers, pc and gas left as the run ended), whose hash is
   * the result's `instance`. The sandbox keeps every Instance it made (also across
   * snapshot/restore); docs/sandbox.md.
   */
  spawn(image: LoadedImage | Uint8Array): Uint8Array {
    this.#idle();
    return this.#keepInstance(spawnInstance(this.#loadedImage(image).runnable))!;
  }

  /** The InstanceCap value of an Instance this sandbox made ('UnknownInstance' otherwise). */
  instance(hash: Uint8Array): InstanceCapValue {
    this.#checkOpen();
    const state = hash instanceof Uint8Array ? this.#host.instances.get(toHex(hash)) : undefined;
    if (state === undefined) throw new NubError('UnknownInstance', 'no such Instance in this sandbox');
    return state.value;
  }

  /** Keeps an Instance so its hash can be invoked; undefined when its image is no longer loaded. */
  #keepInstance(run: InstanceRun): Uint8Array | undefined {
    const prepared = preparedOf(this.#host, run.image);
    if (prepared === undefined) return undefined;
    const value = instanceValue(run);
    const hash = capHash({ kind: 'Instance', value });
    this.#host.instances.set(toHex(hash), { prepared, value, memory: run.memory });
    return hash;
  }

  /** Result caps with an Instance kept by the sandbox once its hash is read (a CALL's result). */
  #keepResultInstances(caps: ResultCap[]): ResultCap[] {
    return caps.map((c) => {
      if (c.kind !== 'Instance') return c;
      let hash: Uint8Array | undefined;
      const keep = () => (hash ??= this.#keepInstance(c.instance!) ?? c.hash);
      return { slot: c.slot, kind: c.kind, get instance() { return c.instance; }, bytes: c.bytes, get hash() { return keep(); } };
    });
  }


  /** For an Instance call: the Instance after the run (a new one after HALT, else the same). */
  #settle(call: { instance: InstanceState | undefined; hash: Uint8Array }, result: SandboxResult): SandboxResult {
    result.caps = this.#keepResultInstances(result.caps);
    const state = call.instance;
    if (state === undefined) return result;
    if (result.exit !== Exit.HALT) return Object.assign(result, { instance: call.hash });
    const memory = new Map(result.memory.map((m) => [m.start, m.bytes.slice()]));
    const run: InstanceRun = { image: state.prepared.runnable, memory, regs: result.regs, pc: result.pc, gas: result.gasLeft };
    return Object.assign(result, { instance: this.#keepInstance(run) });
  }

  /**
   * Engine kvm: replaces the guest with a freshly booted one holding the same caps,
   * images and host functions (after 'Poisoned'; harmless otherwise), and frees what
   * unloaded images left in the guest. Engine local: nothing to do.
   */
  reset(): void {
    this.#idle();
    this.#backend.reset();
  }

  /**
   * Engine kvm: this sandbox as it is now (between invokes), to start others from or to
   * restore later. Its guest memory turns copy-on-write (invisible to the guest).
   * Engine local: 'Unsupported'.
   */
  snapshot(): SandboxSnapshot {
    this.#idle();
    return new SandboxSnapshot(this.#backend.snapshot(), copyHostState(this.#host), this.#options);
  }

  /**
   * Engine kvm: puts the sandbox back in `snapshot`'s state (guest memory, vCPU, images,
   * caps and host functions), whatever happened since: also after a fault ('Poisoned'
   * is cleared). Costs the pages written since, not the memory size. Earlier results'
   * `memory` turns stale.
   */
  restore(snapshot: SandboxSnapshot): void {
    this.#idle();
    if (!(snapshot instanceof SandboxSnapshot)) throw check.badArgument('snapshot', 'is not a SandboxSnapshot');
    this.#backend.restore(snapshot.guest);
    this.#host = copyHostState(snapshot.host);
    this.#epoch++;
  }

  /**
   * Engine local: how far the running async invoke has got (gas left, instructions),
   * updated about every CHECKPOINT_GAS gas; for a live status. Undefined on kvm, where
   * the guest keeps these counts to itself until the invoke ends.
   */
  progress(): { gasLeft: number; instructions: number } | undefined {
    return this.#backend.progress();
  }

  /**
   * Stops the guest and frees its memory. Idempotent; every later call throws 'Closed'.
   * An async invoke in flight rejects with 'Closed'. Not from inside a host function ('Reentrant').
   */
  close(): void {
    if (this.#closed) return;
    if (this.#activity === 'hostCall') throw reentrant('close');
    this.#closed = true;
    this.#epoch++; // results' memory views end here
    this.#backend.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new NubError('Closed', 'the sandbox is closed');
  }

  /** Open, and not running anything this call would disturb. */
  #idle(): void {
    this.#checkOpen();
    if (this.#activity === 'hostCall') throw reentrant('this call');
    if (this.#activity === 'running') throw new NubError('Busy', 'the sandbox is running an invoke or a load; await it first (async invokes queue)');
  }

  /** Throws MemoryBudgetExceeded unless `bytes` more fit, after dropping argument caps not in `keep` if need be. */
  #checkBudget(bytes: number, what: string, keep: ReadonlySet<string> = NOTHING): void {
    if (this.memoryUsed + bytes > this.#budget) this.#dropArgCaps(bytes, keep);
    const used = this.memoryUsed;
    if (used + bytes > this.#budget) {
      throw new NubError('MemoryBudgetExceeded', `${what} needs ${bytes} bytes; ${used} of the sandbox's ${this.#budget}-byte budget are in use`, {
        details: { needed: bytes, used, budget: this.#budget },
      });
    }
  }

  #admit(image: unknown): AdmittedImage {
    if (isAdmittedImage(image)) return image;
    if (!(image instanceof Uint8Array || image instanceof ImageBuilder)) {
      throw check.badArgument('image', 'is not image bytes (a Uint8Array), an ImageBuilder or an admitted image');
    }
    try {
      return admitImage(image instanceof Uint8Array ? image : image.encode());
    } catch (cause) {
      if (!(cause instanceof NubError)) throw cause;
      throw new NubError('BadImage', `the image was not admitted: ${cause.message}`, { cause, ...(cause.path === undefined ? {} : { path: cause.path }) });
    }
  }

  /**
   * Forgets argument caps that nothing else holds (an invoke stored them; putCaps and
   * images hold theirs), oldest first, until `bytes` more fit the budget (Infinity: all
   * of them); never those in `keep`, which the call at hand needs.
   */
  #dropArgCaps(bytes: number, keep: ReadonlySet<string>): void {
    const dropped: StoredEntry[] = [];
    let used = this.memoryUsed;
    for (const [key, e] of this.#host.caps) {
      if (used + bytes <= this.#budget) break;
      if (e.put || e.images > 0 || keep.has(key)) continue;
      this.#host.caps.delete(key);
      dropped.push(e);
      used -= e.store.bytes.length;
    }
    if (dropped.length > 0) this.#backend.drop(dropped);
  }

  #putStores(caps: CapToStore[], deadline: number): number {
    const inserted = this.#backend.putCaps(caps, remaining(deadline));
    for (const store of caps) {
      const key = toHex(store.hash);
      if (!this.#host.caps.has(key)) this.#host.caps.set(key, { store, images: 0, put: false });
    }
    return inserted;
  }

  /** The image's mappings as the guest takes them, checked with the machine's rules (the same errors as engine local). */
  #mappingsOf(admitted: AdmittedImage): GuestMapping[] {
    const imageCap = admitted.imageCap;
    if (imageCap.mappings.length > MAX_PREPARE_MAPPINGS) {
      throw new NubError('TooManyMappings', `an image has at most ${MAX_PREPARE_MAPPINGS} mappings, not ${imageCap.mappings.length}`);
    }
    const mappings = imageCap.mappings.map((m, i) => {
      const source = mappingSource(m);
      if (source !== undefined && 'arg' in source) {
        // Shown at each invoke from that invoke's argument cap (lib/machine/frame.ts checks it is given and Data).
        return { start: Number(m.start), size: Number(m.size), writable: false, dataHash: new Uint8Array(CAP_HASH_BYTES), arg: source.arg, data: undefined };
      }
      const data = source && admitted.dataCaps.get(toHex(source.root));
      if (data === undefined) {
        throw new NubError('Machine.UnresolvedMapping', `mapping at 0x${m.start.toString(16)}: no Data cap at its source`, { path: `memory_mappings[${i}].source` });
      }
      return { start: Number(m.start), size: Number(m.size), writable: !mappingIsPinned(imageCap, m), dataHash: data.hash, data: data.cap };
    });
    // The reference's own checks (page-aligned, inside [DATA_BASE, 2^32), no overlap), so both engines refuse alike.
    checkMappings(mappings);
    return mappings.filter((m) => m.size > 0).map(({ data, ...m }) => ({
      ...m,
      ...(m.writable ? { initial: data!.leadingBytes(m.size) } : {}), // restored before every invoke; zeros are cheaper
    }));
  }

  #imageHash(image: unknown): Uint8Array {
    const hash = image instanceof Uint8Array ? image : typeof image === 'object' && image !== null ? (image as LoadedImage).contentHash : undefined;
    if (!(hash instanceof Uint8Array) || hash.length !== CAP_HASH_BYTES) throw check.badArgument('image', 'is not a LoadedImage or a 32-byte hash');
    return hash;
  }

  #prepareCall(image: LoadedImage | Uint8Array, endpoint: KeyLike, options: InvokeOptions): Omit<PreparedCall, 'epoch'> & { newCaps: CapToStore[]; hash: Uint8Array } {
    const opts = check.options(options, 'options');
    const hash = this.#imageHash(image);
    const args = check.args(opts.args, MAX_ARGS);
    const gas = check.gas(opts.gas, DEFAULT_GAS);
    const timeoutMs = check.timeoutMs(opts.timeoutMs);
    const signal = check.signal(opts.signal);
    const hex = toHex(hash);
    const instance = this.#host.instances.get(hex);
    const prepared = instance?.prepared ?? this.#host.images.get(hex);
    if (prepared === undefined) throw new NubError('UnknownImage', `no image or Instance ${hex} is in this sandbox`);
    if (instance !== undefined && this.#host.images.get(toHex(prepared.loaded.contentHash)) !== prepared) {
      throw new NubError('UnknownImage', `the image of Instance ${hex} is no longer loaded in this sandbox`);
    }
    const imageCap = prepared.loaded.admitted.imageCap;
    const ep = findEndpoint(imageCap, endpoint);
    if (opts.caps !== undefined && !Array.isArray(opts.caps)) throw check.badArgument('caps', 'is not an array');
    const newCaps: CapToStore[] = [];
    const caps = (opts.caps ?? []).map((c, i) => this.#argCap(c, i, newCaps));
    // The same checks and errors as engine local's (Machine.TooManyCaps, MissingCap, CapKind, ReservedSlots).
    // Without argument caps the frame depends on the endpoint alone: checked once, then reused.
    let frame = caps.length === 0 ? prepared.capFreeFrames.get(ep) : undefined;
    if (frame === undefined) {
      frame = frameSpec(imageCap, ep, prepared.loaded.admitted.dataCaps, caps, prepared.runnable.spawnable);
      resolveMappings(imageCap, prepared.loaded.admitted.dataCaps, caps);
      if (caps.length === 0) prepared.capFreeFrames.set(ep, frame);
    }
    if (signal?.aborted) throw new NubError('Cancelled', 'the invoke was cancelled before it started', { cause: signal.reason });
    return { prepared, endpoint: ep, args, gas, timeoutMs, signal, caps, newCaps, frame, instance, hash };
  }

  /** A loaded image by content or Image cap hash ('UnknownImage'). */
  #loadedImage(image: unknown): PreparedImage {
    const hash = this.#imageHash(image);
    const prepared = this.#host.images.get(toHex(hash));
    if (prepared === undefined) throw new NubError('UnknownImage', `no image or Instance ${toHex(hash)} is in this sandbox`);
    return prepared;
  }

  /** An argument cap as the frame takes it; bytes and DataCaps not stored yet join `newCaps` (stored when the invoke runs). */
  #argCap(c: CapArgument, i: number, newCaps: CapToStore[]): ArgCap {
    if (c instanceof Uint8Array || c instanceof DataCap) {
      const data = c instanceof DataCap ? c : dataCapOf(c);
      const cap: FrameCap = { kind: 'Data', data, hash: data.hash() };
      if (!this.#host.caps.has(toHex(cap.hash))) newCaps.push(toStore({ kind: 'Data', value: data }, cap.hash));
      return cap;
    }
    const hash = (c as { hash?: unknown } | null)?.hash;
    if (!(hash instanceof Uint8Array) || hash.length !== CAP_HASH_BYTES) throw check.badArgument(`caps[${i}]`, 'is neither bytes, a DataCap nor { hash } of a stored cap');
    const selector = this.#host.caps.get(toHex(hash))?.store.kind;
    if (selector === undefined) throw new NubError('UnknownCap', `caps[${i}]: no cap ${toHex(hash)} is stored in this sandbox`);
    const kind = (Object.keys(CapSelector) as (keyof typeof CapSelector)[]).find((k) => CapSelector[k] === selector)!;
    if (kind === 'Image') {
      const image = this.#host.images.get(toHex(hash))?.runnable;
      return image === undefined ? { kind, hash } : { kind, hash, image };
    }
    if (kind !== 'Data') return { kind, hash };
    const reader = this.reader;
    let data: DataCap | undefined;
    // Read only if engine local runs it; the guest maps the stored pages.
    return { kind, hash, get data() { return (data ??= (reader.getCap(hash)!.value as DataCap)); } };
  }

  /**
   * Stores an invoke's new argument caps. They stay (a later invoke may name them by
   * hash) until room is needed: then the oldest go first, but never one this call uses.
   */
  #storeArgs(call: { newCaps: CapToStore[]; frame: FrameSpec }): void {
    if (call.newCaps.length === 0) return;
    const keep = new Set<string>(call.frame.slots.map((s) => toHex(s.cap.hash)));
    this.#checkBudget(call.newCaps.reduce((n, c) => n + c.bytes.length, 0), 'the argument caps', keep);
    this.#backend.withRoom(() => this.#putStores(call.newCaps, performance.now() + DEFAULT_LOAD_TIMEOUT_MS), () => this.#dropArgCaps(Infinity, keep));
  }

  /**
   * Runs host function `n`: φ7's new value (or, when `async`, maybe a promise of it),
   * undefined to end the invoke. Synchronously, a promise is the function's mistake ('BadArgument').
   */
  #callHostFunction(regs: bigint[], memory: MemoryView, n: number, async: boolean): bigint | undefined | Promise<bigint | undefined> {
    const fn = this.#host.hostFunctions.get(n);
    if (fn === undefined) return undefined;
    // Usable until the sandbox closes (on kvm also until the next invoke: 'StaleMemory').
    const view: MemoryView = {
      read: (address, length) => (this.#checkOpen(), memory.read(address, length)),
      write: (address, bytes) => (this.#checkOpen(), memory.write(address, bytes)),
    };
    // 'hostCall' while the function runs on this thread; an async one's later part sees 'running' (then 'Busy').
    this.#activity = 'hostCall';
    try {
      const value = fn(regs, view, n);
      return async && isPromiseLike(value) ? Promise.resolve(value).then((v) => check.hostResult(v, n)) : check.hostResult(value, n);
    } finally {
      this.#activity = 'running';
    }
  }
}

function reentrant(what: string): NubError {
  return new NubError('Reentrant', `${what} is not allowed inside a host function (only registerHostFunction, unregisterHostFunction, reader and the memory view are)`);
}

/** Milliseconds left until `deadline` (at least 1). */
function remaining(deadline: number): number {
  return Math.max(1, Math.ceil(deadline - performance.now()));
}
