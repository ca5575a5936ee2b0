/**
 * Engine kvm's SandboxBackend: a guest (lib/guest) that stores the caps, prepares the
 * images and runs the calls. It rebuilds the guest from the Sandbox's host state when
 * it reboots, and reads results out of guest memory without entering the guest.
 */
import { Layout } from '../abi/guest-abi.js';
import { capHash, DataCap, toHex } from '../caps/index.js';
import { CapSelector } from '../caps/schema.js';
import { NubError, isNubError } from '../errors.js';
import { GuestVm } from '../guest/index.js';
import type { CapToStore } from '../guest/guest-vm.js';
import {
  invokeInGuest, invokeInGuestAsync, prepareInGuest,
  type GuestFrameSlot, type GuestInstance, type GuestInvokeOptions, type GuestInvokeOutcome, type GuestInvokeRequest, type PreparedGuestImage,
} from '../guest/invoke.js';
import { DEFAULT_SANDBOX_MEMORY, MAX_IMAGES } from '../limits.js';
import { Exit, NUM_REGS } from '../machine/abi.js';
import { dataCapOf, rootSlotSpecs, type FrameCap, type FrameSlotSpec, type FrameSpec } from '../machine/frame.js';
import { instanceValue, type InstanceRun } from '../machine/instance.js';
import { resultCapsOf, type ResultCap } from '../machine/invoke.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { preparedOf, type PreparedCall, type PreparedImage, type SandboxBackend, type SandboxContext, type StoredEntry } from './backend.js';
import type { SandboxResult } from './sandbox.js';

/** The guest's refusals that a reboot without the unloaded images can cure. */
const GUEST_FULL = ['OutOfMemory', 'DirectoryFull'] as const;

export class KvmBackend implements SandboxBackend {
  readonly engine = 'kvm' as const;
  readonly #ctx: SandboxContext;
  #guest: GuestVm;

  /** Boots a guest, or takes one started from a snapshot. */
  constructor(ctx: SandboxContext, guest?: GuestVm) {
    this.#ctx = ctx;
    this.#guest = guest ?? this.#boot();
  }

  get guest(): GuestVm {
    return this.#guest;
  }

  get poisonedBy(): NubError | undefined {
    return this.#guest.mailbox.poisonedBy;
  }

  get reader() {
    return this.#guest.reader;
  }

  imageOverhead(): number {
    return 0;
  }

  /** Runs a guest request; when the guest is full, drops what the host can (`makeRoom`), reboots without what was dropped, and tries once more. */
  withRoom<T>(work: () => T, makeRoom: () => void): T {
    const host = this.#ctx.host();
    if (host.garbage > 0 && host.guestImages >= MAX_IMAGES) this.#reboot();
    try {
      return work();
    } catch (err) {
      if (!GUEST_FULL.some((c) => isNubError(err, c))) throw err;
      makeRoom();
      if (host.garbage === 0) throw err;
      this.#reboot();
      return work();
    }
  }

  putCaps(stores: CapToStore[], timeoutMs: number): number {
    return this.#guest.putCaps(stores, timeoutMs);
  }

  prepare(prepared: PreparedImage, timeoutMs: number): void {
    prepared.guest = this.#checkImageId(prepareInGuest(this.#guest, prepared.spec, this.#rootSlotsInGuest(prepared), timeoutMs));
    this.#ctx.host().guestImages++;
  }

  /** The guest keeps what the image stored until its next reboot. */
  unload(prepared: PreparedImage, dropped: readonly StoredEntry[]): void {
    this.#ctx.host().garbage += prepared.spaceBytes;
    this.drop(dropped);
  }

  drop(dropped: readonly StoredEntry[]): void {
    this.#ctx.host().garbage += dropped.reduce((n, e) => n + e.store.bytes.length, 0);
  }

  hostFunctionChanged(n: number, registered: boolean): void {
    const gpa = Layout.values.HOST_FUNCTIONS_GPA + (n >> 3);
    const mem = this.#guest.memory;
    const byte = mem.u8(gpa);
    mem.writeU8(gpa, registered ? byte | (1 << (n & 7)) : byte & ~(1 << (n & 7)));
  }

  invokeSync(call: PreparedCall): SandboxResult {
    const outcome = invokeInGuest(this.#guest, this.#request(call), this.#guestOptions(call, false), call.epoch, this.#ctx.epoch);
    return this.#result(outcome, call);
  }

  async invoke(call: PreparedCall): Promise<SandboxResult> {
    const outcome = await invokeInGuestAsync(this.#guest, this.#request(call), this.#guestOptions(call, true), call.epoch, this.#ctx.epoch);
    return this.#result(outcome, call);
  }

  reset(): void {
    this.#reboot();
  }

  snapshot(): Snapshot {
    // A poisoned guest may be stopped mid-request: a snapshot of it could never be restored to anything usable.
    const poison = this.poisonedBy;
    if (poison) throw new NubError('Poisoned', `a poisoned sandbox cannot be snapshotted [${poison.code}]; reset() or restore() it first`, { cause: poison });
    return this.#guest.snapshot();
  }

  restore(snapshot: Snapshot): void {
    this.#guest.restore(snapshot);
  }

  /** The guest keeps these counts to itself until the invoke ends. */
  progress(): undefined {
    return undefined;
  }

  close(): void {
    this.#guest.close();
  }

  #boot(): GuestVm {
    const o = this.#ctx.options;
    return GuestVm.boot({
      memorySize: o.memorySize ?? DEFAULT_SANDBOX_MEMORY,
      ...(o.kvmPath === undefined ? {} : { kvmPath: o.kvmPath }),
      ...(o.polling === undefined ? {} : { polling: o.polling }),
      ...(o.kernelPath === undefined ? {} : { kernelPath: o.kernelPath }),
    });
  }

  /** A fresh guest with every cap, image and host function the host keeps (and nothing unloaded). */
  #reboot(): void {
    this.#guest.close();
    this.#guest = this.#boot();
    const host = this.#ctx.host();
    host.garbage = 0;
    host.guestImages = 0;
    this.#guest.putCaps([...host.caps.values()].map((e) => e.store));
    for (const e of host.caps.values()) delete e.where;
    for (const prepared of new Set(host.images.values())) {
      prepared.guest = prepareInGuest(this.#guest, prepared.spec, this.#rootSlotsInGuest(prepared));
      host.guestImages++;
    }
    for (const n of host.hostFunctions.keys()) this.hostFunctionChanged(n, true);
  }

  /** A guest that hands out an image id it already gave another live image, or one past its table, is lying: poison. */
  #checkImageId(image: PreparedGuestImage): PreparedGuestImage {
    const taken = [...this.#ctx.host().images.values()].some((p) => p.guest?.id === image.id);
    if (taken || image.id >= MAX_IMAGES) {
      throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest named image id ${image.id}, which ${taken ? 'another loaded image has' : 'is past its image table'}`));
    }
    return image;
  }

  /**
   * The INVOKE request: the endpoint's registers with the arguments, and the frame's slots.
   * Built after the Sandbox stored the argument caps, so it names the image as the guest
   * knows it now (storing may have rebooted a full guest, which renumbers its images).
   */
  #request(call: PreparedCall): GuestInvokeRequest {
    const regs = call.endpoint.initialRegs.slice(0, NUM_REGS);
    call.args.forEach((v, i) => { regs[7 + i] = v; });
    return {
      image: call.prepared.guest!, entry: call.endpoint.entryPc, regs, gas: call.gas, engine: this.#ctx.options.kvmEngine ?? 'recompiler',
      resultCount: call.frame.argSlots, slots: this.#guestSlots(call.frame.slots),
      ...(call.instance === undefined ? {} : { memory: call.instance.memory }),
    };
  }

  /** The image's root slots as a CALL's child frame starts from them, for its PREPARE. */
  #rootSlotsInGuest(prepared: PreparedImage): GuestFrameSlot[] {
    const { imageCap, rootData, spawnable } = prepared.runnable;
    return this.#guestSlots(rootSlotSpecs(imageCap, rootData, spawnable));
  }

  /**
   * Frame slots as the guest takes them: where it stores each cap, read through its
   * directory the first time and remembered (reading the directory again after every
   * entry was most of a trivial invoke's host time), and an Image cap's prepared image.
   */
  #guestSlots(slots: readonly FrameSlotSpec[]): GuestFrameSlot[] {
    const host = this.#ctx.host();
    return slots.map((s) => {
      const stored = host.caps.get(toHex(s.cap.hash));
      const where = stored?.where ?? this.#guest.reader.entry(s.cap.hash);
      if (stored !== undefined && where !== undefined) stored.where = { dataVa: where.dataVa, len: where.len };
      if (where === undefined && s.cap.kind === 'Data') throw new NubError('Internal', `Data cap ${toHex(s.cap.hash)} of slot ${s.ref} is not stored in the guest`);
      const image = s.cap.kind === 'Image' && s.cap.image !== undefined ? preparedOf(host, s.cap.image)?.guest : undefined;
      return { ref: s.ref, kind: CapSelector[s.cap.kind], pinned: s.pinned, dataVa: where?.dataVa ?? 0n, len: where?.len ?? 0, image: image === undefined ? 0 : image.id + 1 };
    });
  }

  #guestOptions(call: PreparedCall, async: boolean): GuestInvokeOptions {
    return {
      ...(call.timeoutMs === undefined ? {} : { timeoutMs: call.timeoutMs }),
      ...(call.signal === undefined ? {} : { signal: call.signal }),
      hostFunction: (regs, memory, n) => this.#ctx.callHostFunction(regs, memory, n, async),
    };
  }

  #result(outcome: GuestInvokeOutcome, call: PreparedCall): SandboxResult {
    const { state, memory, results } = outcome;
    let bytes: { start: number; bytes: Uint8Array }[] | undefined;
    return {
      ...state,
      gasUsed: call.gas - state.gasLeft,
      get memory() {
        bytes ??= memory.writableMappings();
        return bytes;
      },
      caps: state.exit === Exit.HALT ? this.#guestResultCaps(results, call.frame, call.epoch) : [],
    };
  }

  /**
   * Result caps of a kvm invoke: a cap the frame was given keeps its known hash; a
   * minted one is read from guest memory (no exit) and hashed on the host when first
   * asked, until the next invoke ('StaleMemory').
   */
  #guestResultCaps(results: GuestInvokeOutcome['results'], frame: FrameSpec, epoch: number): ResultCap[] {
    const mem = this.#guest.memory;
    const slots: (FrameCap | undefined)[] = new Array(frame.argSlots);
    const read = (gpa: number, len: number) => {
      if (this.#ctx.epoch() !== epoch) throw new NubError('StaleMemory', 'this result cap was made in guest memory that a later invoke reused');
      return mem.bytes(gpa, len);
    };
    for (const r of results) {
      if (r.origin !== undefined) { slots[r.slot] = frame.slots[r.origin]!.cap; continue; }
      if (r.root !== undefined) { slots[r.slot] = this.#rootCap(r.root, r.kind); continue; }
      if (r.instance !== undefined) { slots[r.slot] = this.#guestInstanceCap(r.instance, read); continue; }
      if (r.kind !== CapSelector.Data) throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest made a cap of kind ${r.kind} in argument slot ${r.slot}`));
      let data: DataCap | undefined;
      slots[r.slot] = { kind: 'Data', get data() { return (data ??= dataCapOf(read(r.pagesGpa, r.pagesLen))); }, get hash() { return this.data.hash(); } };
    }
    return resultCapsOf(slots, (cap) => cap.data.bytes());
  }

  /** The loaded image with guest image id `id` ('GuestProtocol' when there is none: the guest lied). */
  #preparedByGuestId(id: number): PreparedImage {
    const prepared = [...this.#ctx.host().images.values()].find((p) => p.guest?.id === id);
    if (prepared === undefined) throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest named image id ${id}, which no loaded image has`));
    return prepared;
  }

  /** The cap in root slot `ref` of the image with guest id `imageId` (a CALL handed it back), as engine local has it. */
  #rootCap(root: { imageId: number; ref: number }, kind: number): FrameCap {
    const { imageCap, rootData, spawnable } = this.#preparedByGuestId(root.imageId).runnable;
    const spec = rootSlotSpecs(imageCap, rootData, spawnable).find((s) => s.ref === root.ref);
    if (spec === undefined || CapSelector[spec.cap.kind] !== kind) {
      throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest returned a cap of kind ${kind} from root slot ${root.ref} of image ${root.imageId}, which has none such`));
    }
    return spec.cap;
  }

  /** An Instance the guest made: its memory is read (and split by mapping) only when its hash or state is needed. */
  #guestInstanceCap(record: GuestInstance, read: (gpa: number, len: number) => Uint8Array): FrameCap {
    const prepared = this.#preparedByGuestId(record.imageId);
    const writable = prepared.spec.mappings.filter((m) => m.writable);
    if (writable.reduce((n, m) => n + m.size, 0) !== record.memoryLen) {
      throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest returned an Instance with ${record.memoryLen} bytes of memory for an image with other writable mappings`));
    }
    let run: InstanceRun | undefined;
    const state = (): InstanceRun => {
      if (run !== undefined) return run;
      const bytes = read(record.memoryGpa, record.memoryLen);
      const memory = new Map<number, Uint8Array>();
      let at = 0;
      for (const m of writable) { memory.set(m.start, bytes.slice(at, at + m.size)); at += m.size; }
      return (run = { image: prepared.runnable, memory, regs: record.regs, pc: record.pc, gas: record.gas });
    };
    let hash: Uint8Array | undefined;
    return { kind: 'Instance', get run() { return state(); }, get hash() { return (hash ??= capHash({ kind: 'Instance', value: instanceValue(state()) })); } };
  }
}
