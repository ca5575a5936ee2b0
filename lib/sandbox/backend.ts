/**
 * What runs a Sandbox's images: a SandboxBackend, engine local's (local-backend.ts, the
 * reference interpreter in this process) or engine kvm's (kvm-backend.ts, a guest).
 * The Sandbox checks every call and keeps the host state (images, caps, host functions,
 * Instances); a backend stores caps, prepares images and runs calls on its engine, and
 * holds only what that engine needs.
 */
import { toHex, type ImageCap, type ImageEndpointDef } from '../caps/index.js';
import type { InstanceCapValue } from '../caps/schema.js';
import type { NubError } from '../errors.js';
import type { CapToStore } from '../guest/guest-vm.js';
import type { GuestImageSpec, PreparedGuestImage } from '../guest/invoke.js';
import type { GuestVm } from '../guest/index.js';
import type { ArgCap, FrameSpec } from '../machine/frame.js';
import type { RunnableImage } from '../machine/instance.js';
import type { MemoryView } from '../machine/invoke.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { CapReader, EngineName, HostFunction, LoadedImage, SandboxOptions, SandboxResult } from './sandbox.js';

/** An image as the sandbox keeps it: what the guest needs to prepare it, and (kvm) the guest's answer. */
export interface PreparedImage {
  loaded: LoadedImage;
  spec: GuestImageSpec;
  guest: PreparedGuestImage | undefined;
  /** Hex hashes of the caps it stored (its Image cap and Data caps). */
  caps: string[];
  /** Bytes of its address space (code pages and mappings), counted against the budget. */
  spaceBytes: number;
  /** What frames spawn Instances of (its Image slots resolved to the images loaded before it). */
  runnable: RunnableImage;
  /** The frame of each endpoint called without argument caps: checked once, then reused. */
  capFreeFrames: Map<object, FrameSpec>;
}

/** A stored cap and who needs it: the images that stored it, and whether putCaps did (then it stays). */
/**
 * A stored cap and who holds it: the images that stored it, and whether putCaps did.
 * Neither (an invoke's argument cap): kept while there is room, dropped oldest first when
 * the budget or the guest needs it (Sandbox #dropArgCaps).
 */
export interface StoredEntry {
  store: CapToStore;
  images: number;
  put: boolean;
  /** Where the guest stores it, once an INVOKE's frame needed it (stored caps never move; a reboot forgets it). */
  where?: { dataVa: bigint; len: number };
}

/** An Instance the sandbox keeps: its image, its cap value and its writable memory by mapping start. */
export interface InstanceState {
  readonly prepared: PreparedImage;
  readonly value: InstanceCapValue;
  readonly memory: ReadonlyMap<number, Uint8Array>;
}

/**
 * What the host keeps about a sandbox: images (with their guest ids on kvm), caps, host
 * functions, Instances, and on kvm what the guest still holds of unloaded images
 * (`garbage`, in bytes, and `guestImages`, the guest's count of prepared images) until
 * a reboot frees it.
 */
export interface HostState {
  images: Map<string, PreparedImage>;
  caps: Map<string, StoredEntry>;
  hostFunctions: Map<number, HostFunction>;
  garbage: number;
  guestImages: number;
  /** Every Instance made (spawn, or a call that HALTed), by hex hash. Never mutated: a call makes a new one. */
  instances: Map<string, InstanceState>;
}

/** A call the Sandbox has checked: everything a backend needs to run it. */
export interface PreparedCall {
  prepared: PreparedImage;
  endpoint: ImageEndpointDef;
  /** φ7.. */
  args: bigint[];
  caps: ArgCap[];
  gas: bigint;
  frame: FrameSpec;
  /** The Instance it runs on, if it calls one. */
  instance: InstanceState | undefined;
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  /** The sandbox's invoke count for this call: its results' memory is stale once the count moves on. */
  epoch: number;
}

/** What a backend may use of its Sandbox. */
export interface SandboxContext {
  readonly options: SandboxOptions;
  host(): HostState;
  /** The sandbox's invoke count now. */
  epoch(): number;
  /**
   * Runs host function `n` (undefined: none is registered, or it ended the invoke); with
   * `async` it may answer with a promise. Throws what the function threw.
   */
  callHostFunction(regs: bigint[], memory: MemoryView, n: number, async: boolean): bigint | undefined | Promise<bigint | undefined>;
}

export interface SandboxBackend {
  readonly engine: EngineName;
  /** Engine kvm's guest (diagnostics, tests). */
  readonly guest: GuestVm | undefined;
  /** The error that made the engine unusable, if one did. */
  readonly poisonedBy: NubError | undefined;
  /** The stored caps, read without running anything. */
  readonly reader: CapReader;
  /** Bytes an image costs beyond its address space (engine local: its decoded program). */
  imageOverhead(imageCap: ImageCap): number;
  /**
   * Runs `work` (storing caps, preparing), making room first or once more when the engine
   * can (kvm: a reboot without what was dropped; `makeRoom` drops more first).
   */
  withRoom<T>(work: () => T, makeRoom: () => void): T;
  /** Stores caps; returns how many were new. */
  putCaps(stores: CapToStore[], timeoutMs: number): number;
  /** Makes a newly loaded image runnable. */
  prepare(prepared: PreparedImage, timeoutMs: number): void;
  /** Forgets an unloaded image and `dropped`, the caps nothing else holds. */
  unload(prepared: PreparedImage, dropped: readonly StoredEntry[]): void;
  /** Forgets caps nothing holds any more (argument caps an invoke stored). */
  drop(dropped: readonly StoredEntry[]): void;
  hostFunctionChanged(n: number, registered: boolean): void;
  invokeSync(call: PreparedCall): SandboxResult;
  invoke(call: PreparedCall): Promise<SandboxResult>;
  /** Starts the engine afresh with what the host keeps. */
  reset(): void;
  snapshot(): Snapshot;
  restore(snapshot: Snapshot): void;
  /** How far the running async invoke has got, where the engine can tell. */
  progress(): { gasLeft: number; instructions: number } | undefined;
  close(): void;
}

/** The loaded image a RunnableImage belongs to. */
export function preparedOf(host: HostState, image: RunnableImage): PreparedImage | undefined {
  const prepared = host.images.get(toHex(image.imageHash));
  return prepared?.runnable === image ? prepared : undefined;
}
