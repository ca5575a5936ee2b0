/**
 * The host end of NUB_OP_PREPARE and NUB_OP_INVOKE (layouts in lib/abi/guest-abi.ts).
 * `prepareInGuest` makes an image runnable once (the guest decodes it and builds its
 * address space). An invoke rewrites the image's writable pages with their initial
 * bytes (here, at host speed), writes the Invoke record, enters the guest, answers
 * host calls on NUB_PORT_HOST_CALL, and reads the result: without host calls one guest
 * entry and one exit. The final memory stays in place until the next invoke of that
 * guest, and `GuestInvocationMemory` reads it from there, without an exit.
 *
 * An entry stopped by the watchdog (`timeoutMs`) or a kick (an AbortSignal, async only)
 * restarts the vCPU at the kernel's resume point: the sandbox stays usable and the
 * invoke throws 'Timeout' or 'Cancelled'.
 */
import { CapPutLayout, Endpoint, FrameLayout, FrameSlot, InstanceRecord, Invoke, InvokeEngine, InvokeMapping, InvokeReply, MailboxOp, Prepare, ResultCap } from '../abi/guest-abi.js';
import { NubError } from '../errors.js';
import { CODE_BASE, Exit, HOST_CALL_MAX, HOST_CALL_MIN, NUM_REGS, PAGE_SIZE, type ExitCode } from '../machine/abi.js';
import { memoryAccess, memoryWrite, type HostFunction, type MachineStop, type MemoryView } from '../machine/invoke.js';
import { SlotRef } from '../machine/kernel-ops.js';
import { CapSelector } from '../caps/schema.js';
import type { GuestVm } from './guest-vm.js';
import { type GuestStop, MAILBOX_PAYLOAD_CAPACITY, MAILBOX_PAYLOAD_GPA } from './mailbox.js';

const I = Invoke.offsets;
const INVOKE_GPA = MAILBOX_PAYLOAD_GPA;
const MAPPINGS_GPA = MAILBOX_PAYLOAD_GPA + Prepare.size;
/** Root slots and endpoints a PREPARE may carry: one-byte keys only (the ones a kernel operation can name). */
const MAX_ROOT_SLOTS = 255;
const MAX_ENDPOINTS = 256;
const TWO_POW_32 = 0x1_0000_0000;
const DATA_PAGES = CapPutLayout.values.DATA_PAGES_OFFSET;
/** Mappings one PREPARE carries (what fits in the mailbox payload after the Prepare record). */
export const MAX_PREPARE_MAPPINGS = Math.floor((MAILBOX_PAYLOAD_CAPACITY - Prepare.size - MAX_ROOT_SLOTS * FrameSlot.size - MAX_ENDPOINTS * Endpoint.size) / InvokeMapping.size);

export interface GuestMapping {
  start: number;
  /** Bytes; a whole number of pages, not 0. */
  size: number;
  writable: boolean;
  /** Hash of the Data cap (stored in the guest's directory) the mapping shows; unused for an argument mapping. */
  dataHash: Uint8Array;
  /** The argument slot whose cap the mapping shows (read-only), mapped at each invoke. */
  arg?: number;
  /** Writable mappings: the bytes it starts with (the cap's first bytes; zeros follow up to `size`). */
  initial?: Uint8Array;
}

export interface GuestImageSpec {
  /** Hash of the Image cap in the guest's directory, and where its code is in the stored bytes. */
  imageHash: Uint8Array;
  codeOffset: number;
  codeLen: number;
  mappings: readonly GuestMapping[];
  /** The endpoints with one-byte keys (what a CALL can name). */
  endpoints: readonly { key: number; argSlots: number; entry: bigint; regs: readonly bigint[] }[];
  /** The image declares yield/gas/quota slots: a CALL of it is refused. */
  reservedSlots: boolean;
}

/** An image the guest has prepared: its id and where its memory lives. */
export interface PreparedGuestImage {
  readonly id: number;
  readonly codeLen: number;
  readonly regions: readonly Region[];
  /** Mappings over argument caps: their regions are known per invoke. */
  readonly argMappings: readonly { start: number; size: number; arg: number }[];
}

/** One filled frame slot, where the guest stores its cap (GuestCacheReader.entry). */
export interface GuestFrameSlot {
  ref: number;
  kind: number;
  pinned: boolean;
  /** 0 for an Image cap the guest does not hold. */
  dataVa: bigint;
  len: number;
  /** An Image cap's prepared image id + 1; 0 when it is not loaded. */
  image: number;
}

/** An argument slot after the run, as the guest reports it (bounds-checked). */
export interface GuestResultCap {
  slot: number;
  kind: number;
  /** Index into the request's frame slots, or undefined for a cap minted in the run. */
  origin: number | undefined;
  /** Guest-physical address and length of a minted Data cap's pages. */
  pagesGpa: number;
  pagesLen: number;
  /** A cap from a root slot of an image a CALL ran: that image's id and the slot. */
  root?: { imageId: number; ref: number };
  /** An Instance made in the run (InstanceRecord): its memory is read from guest memory when needed. */
  instance?: GuestInstance;
}

/** An InstanceRecord as the host read it. */
export interface GuestInstance {
  imageId: number;
  regs: bigint[];
  pc: number;
  gas: bigint;
  memoryGpa: number;
  memoryLen: number;
}

export interface GuestInvokeRequest {
  image: PreparedGuestImage;
  /** Byte offset of the entry point in the code (the guest's pvm_enter applies the entry rule). */
  entry: bigint;
  /** φ0..φ12. */
  regs: readonly bigint[];
  gas: bigint;
  /** The guest's engine (default the recompiler). */
  engine?: KvmEngine;
  /** The frame's filled slots, and how many argument slots it has (the results). */
  slots: readonly GuestFrameSlot[];
  resultCount: number;
  /** An Instance's writable memory by mapping start, instead of the image's initial bytes. */
  memory?: ReadonlyMap<number, Uint8Array>;
}

/** The PVM2 engines of the guest (InvokeEngine). */
export type KvmEngine = 'recompiler' | 'interpreter';
const ENGINE_VALUES: Record<KvmEngine, number> = { recompiler: InvokeEngine.values.RECOMPILER, interpreter: InvokeEngine.values.INTERPRETER };


export interface GuestInvokeOptions {
  /** Per invoke, across all its entries and host calls. */
  timeoutMs?: number;
  /** Async only: aborting kicks the vCPU. */
  signal?: AbortSignal;
  /** Called for the numbers set in the guest's host-function bitmap; throwing (or rejecting) ends the invoke. A promise is awaited by the async driver only. */
  hostFunction?: HostFunction<bigint | undefined | PromiseLike<bigint | undefined>>;
}

export interface GuestInvokeOutcome {
  /** As the guest reported it, checked by resultLie. */
  state: MachineStop;
  /** The invocation's memory in the guest; valid until the guest's next INVOKE. */
  memory: GuestInvocationMemory;
  /** The filled argument slots; a minted cap's pages stay valid until the guest's next INVOKE. */
  results: GuestResultCap[];
}

/** One region of an image's address space and where the guest keeps it. */
interface Region {
  readonly start: number;
  readonly size: number;
  readonly writable: boolean;
  /** Guest-physical address of the first `backedLen` bytes; the rest of the region reads as zero. */
  readonly gpa: number;
  readonly backedLen: number;
  /** Writable regions: their bytes at the start of every invoke (zeros after). */
  readonly initial?: Uint8Array;
}

/**
 * PREPARE: one guest entry that makes an image runnable (its Image and Data caps must be
 * stored). Errors: the guest's 'GuestCapMissing' / 'GuestBadCap' / 'OutOfMemory'.
 */
/** Writes FrameSlot records at `at` (an INVOKE's frame, a PREPARE's root slots). */
function writeFrameSlots(view: DataView, at: number, slots: readonly GuestFrameSlot[]): void {
  slots.forEach((slot, i) => {
    const o = at + i * FrameSlot.size;
    FrameSlot.set(view, o, 'ref', slot.ref);
    FrameSlot.set(view, o, 'kind', slot.kind);
    FrameSlot.set(view, o, 'pinned', slot.pinned ? 1 : 0);
    FrameSlot.set(view, o, 'image', slot.image);
    FrameSlot.set(view, o, 'data_va', slot.dataVa);
    FrameSlot.set(view, o, 'len', BigInt(slot.len));
  });
}

/** PREPARE: `rootSlots` are the image's root slots as the guest holds them now (a CALL's child frame starts from them). */
export function prepareInGuest(guest: GuestVm, spec: GuestImageSpec, rootSlots: readonly GuestFrameSlot[], timeoutMs?: number): PreparedGuestImage {
  const { mappings, endpoints } = spec;
  if (mappings.length > MAX_PREPARE_MAPPINGS) {
    throw new NubError('TooManyMappings', `an image has at most ${MAX_PREPARE_MAPPINGS} mappings here, not ${mappings.length}`);
  }
  if (rootSlots.length > MAX_ROOT_SLOTS || endpoints.length > MAX_ENDPOINTS) throw new NubError('Internal', 'more one-byte root slots or endpoints than keys');
  const slotsAt = Prepare.size + mappings.length * InvokeMapping.size;
  const endpointsAt = slotsAt + rootSlots.length * FrameSlot.size;
  const record = new Uint8Array(endpointsAt + endpoints.length * Endpoint.size);
  const view = new DataView(record.buffer);
  record.set(spec.imageHash, Prepare.offsets.image_hash);
  Prepare.set(view, 0, 'code_offset', spec.codeOffset);
  Prepare.set(view, 0, 'code_len', spec.codeLen);
  Prepare.set(view, 0, 'mapping_count', mappings.length);
  Prepare.set(view, 0, 'root_slot_count', rootSlots.length);
  Prepare.set(view, 0, 'endpoint_count', endpoints.length);
  Prepare.set(view, 0, 'reserved_slots', spec.reservedSlots ? 1 : 0);
  writeFrameSlots(view, slotsAt, rootSlots);
  endpoints.forEach((e, i) => {
    const at = endpointsAt + i * Endpoint.size;
    Endpoint.set(view, at, 'key', e.key);
    Endpoint.set(view, at, 'arg_slots', e.argSlots);
    Endpoint.set(view, at, 'entry', e.entry);
    for (let r = 0; r < NUM_REGS; r++) view.setBigUint64(at + Endpoint.offsets.regs + 8 * r, e.regs[r] ?? 0n, true);
  });
  mappings.forEach((m, i) => {
    const at = Prepare.size + i * InvokeMapping.size;
    InvokeMapping.set(view, at, 'start', m.start);
    InvokeMapping.set(view, at, 'size', m.size);
    InvokeMapping.set(view, at, 'writable', m.writable ? 1 : 0);
    InvokeMapping.set(view, at, 'arg_slot', m.arg ?? FrameLayout.values.NO_ARG_SLOT);
    record.set(m.dataHash, at + InvokeMapping.offsets.data_hash);
  });
  // One entry, bounded by `timeoutMs` (running out poisons: the guest is mid-PREPARE).
  try {
    guest.mailbox.call(MailboxOp.values.PREPARE, [], [record], timeoutMs);
  } finally {
    guest.reader.invalidate();
  }

  const mem = guest.memory;
  const regions: Region[] = [];
  const codeSize = Math.ceil(spec.codeLen / PAGE_SIZE) * PAGE_SIZE;
  if (codeSize > 0) {
    const codeVa = mem.field(Prepare, MAILBOX_PAYLOAD_GPA, 'code_va');
    regions.push({ start: CODE_BASE, size: codeSize, writable: false, gpa: guest.gpaOf(codeVa, spec.codeLen), backedLen: spec.codeLen });
  }
  mappings.forEach((m, i) => {
    if (m.arg !== undefined) return;
    const at = MAPPINGS_GPA + i * InvokeMapping.size;
    const backedLen = mem.field(InvokeMapping, at, 'backed_len');
    if (backedLen > BigInt(m.size) || (m.writable && backedLen !== BigInt(m.size))) {
      throw guest.mailbox.poison(new NubError('GuestProtocol', `the guest backed mapping ${i} with ${backedLen} of its ${m.size} bytes`));
    }
    const len = Number(backedLen);
    const gpa = guest.gpaOf(mem.field(InvokeMapping, at, 'backing_va'), len);
    regions.push({ start: m.start, size: m.size, writable: m.writable, gpa, backedLen: len, ...(m.writable ? { initial: m.initial ?? new Uint8Array(0) } : {}) });
  });
  const argMappings = mappings.flatMap((m) => (m.arg === undefined ? [] : [{ start: m.start, size: m.size, arg: m.arg }]));
  return { id: mem.field(Prepare, MAILBOX_PAYLOAD_GPA, 'image_id'), codeLen: spec.codeLen, regions, argMappings };
}

/** Puts the image's writable memory back to its initial bytes, or an Instance's (host-side, so no guest time). */
function restoreWritable(guest: GuestVm, image: PreparedGuestImage, memory: ReadonlyMap<number, Uint8Array> | undefined): void {
  const u8s = guest.memory.u8s;
  for (const r of image.regions) {
    if (r.initial === undefined) continue;
    const initial = memory?.get(r.start) ?? r.initial;
    const shown = Math.min(initial.length, r.size);
    u8s.set(initial.subarray(0, shown), r.gpa);
    u8s.fill(0, r.gpa + shown, r.gpa + r.size);
  }
}

/**
 * The invocation's PVM memory as the guest holds it: the code, then every mapping,
 * read and written through bounds-checked guest memory. Addresses are mod 2^32 like
 * the machine's; an access touching any byte without the permission does nothing.
 */
export class GuestInvocationMemory implements MemoryView {
  readonly #guest: GuestVm;
  readonly #regions: readonly Region[];
  readonly #epoch: number;
  readonly #currentEpoch: () => number;

  constructor(guest: GuestVm, regions: readonly Region[], epoch: number, currentEpoch: () => number) {
    this.#guest = guest;
    this.#regions = regions;
    this.#epoch = epoch;
    this.#currentEpoch = currentEpoch;
  }

  read(address: number, length: number): Uint8Array | undefined {
    this.#checkCurrent();
    ({ address, length } = memoryAccess(address, length));
    const chunks = this.#chunks(address, length, false);
    const out = new Uint8Array(chunks === undefined ? 0 : length);
    if (chunks === undefined) return undefined;
    const u8s = this.#guest.memory.u8s;
    for (const { region, offset, at, len } of chunks) {
      const backed = Math.max(0, Math.min(len, region.backedLen - offset));
      if (backed > 0) out.set(u8s.subarray(region.gpa + offset, region.gpa + offset + backed), at);
    }
    return out;
  }

  write(address: number, bytes: Uint8Array): boolean {
    this.#checkCurrent();
    ({ address, bytes } = memoryWrite(address, bytes));
    const chunks = this.#chunks(address, bytes.length, true);
    if (chunks === undefined) return false;
    const u8s = this.#guest.memory.u8s;
    for (const { region, offset, at, len } of chunks) u8s.set(bytes.subarray(at, at + len), region.gpa + offset);
    return true;
  }

  /** Final bytes of every writable mapping, ascending by start (what lib/machine's InvokeResult.memory holds). */
  writableMappings(): { start: number; bytes: Uint8Array }[] {
    this.#checkCurrent();
    return this.#regions.filter((r) => r.writable).sort((a, b) => a.start - b.start)
      .map((r) => ({ start: r.start, bytes: this.#guest.memory.bytes(r.gpa, r.size) }));
  }

  /** Splits an access into per-region pieces; undefined when a byte lies outside every region (or a write hits a read-only one). */
  #chunks(address: number, length: number, write: boolean): { region: Region; offset: number; at: number; len: number }[] | undefined {
    const chunks = [];
    for (let at = 0; at < length;) {
      const addr = (address + at) % TWO_POW_32;
      const region = this.#regions.find((r) => addr >= r.start && addr < r.start + r.size);
      if (region === undefined || (write && !region.writable)) return undefined;
      const offset = addr - region.start;
      const len = Math.min(length - at, region.size - offset);
      chunks.push({ region, offset, at, len });
      at += len;
    }
    return chunks;
  }

  #checkCurrent(): void {
    if (this.#currentEpoch() !== this.#epoch) {
      throw new NubError('StaleMemory', 'this invocation\'s memory is gone: the guest has run another invoke since');
    }
  }
}

/** One INVOKE in progress: what happens at each stop of the guest. Shared by the sync and async drivers. */
class InvokeCall {
  readonly #guest: GuestVm;
  readonly #req: GuestInvokeRequest;
  readonly #opts: GuestInvokeOptions;
  readonly #deadline: number | undefined;
  readonly #epoch: number;
  readonly #currentEpoch: () => number;
  #seq = 0;
  #hostError: unknown;
  #regions: Region[] | undefined;

  constructor(guest: GuestVm, req: GuestInvokeRequest, opts: GuestInvokeOptions, epoch: number, currentEpoch: () => number) {
    this.#guest = guest;
    this.#req = req;
    this.#opts = opts;
    this.#epoch = epoch;
    this.#currentEpoch = currentEpoch;
    this.#deadline = opts.timeoutMs === undefined ? undefined : performance.now() + opts.timeoutMs;
  }

  /** Restores the image's writable memory and writes the request: the Invoke record, the frame slots, room for the results. */
  start(): void {
    const req = this.#req;
    restoreWritable(this.#guest, req.image, req.memory);
    // The records are written in place (the payload's first bytes): send() then only sets the header.
    const mem = this.#guest.memory;
    const length = Invoke.size + req.slots.length * FrameSlot.size + req.resultCount * ResultCap.size;
    mem.check(INVOKE_GPA, length);
    const view = mem.view;
    view.setUint32(INVOKE_GPA + I.image_id, req.image.id, true);
    view.setBigUint64(INVOKE_GPA + I.entry, req.entry, true);
    view.setBigUint64(INVOKE_GPA + I.gas, req.gas, true);
    for (let i = 0; i < NUM_REGS; i++) view.setBigUint64(INVOKE_GPA + I.regs + 8 * i, req.regs[i] ?? 0n, true);
    mem.u8s.fill(0, INVOKE_GPA + I.pc, INVOKE_GPA + Invoke.size); // the outputs and host_reply of the previous call
    view.setUint32(INVOKE_GPA + I.engine, ENGINE_VALUES[req.engine ?? 'recompiler'], true);
    view.setUint32(INVOKE_GPA + I.slot_count, req.slots.length, true);
    view.setUint32(INVOKE_GPA + I.result_count, req.resultCount, true);
    writeFrameSlots(view, INVOKE_GPA + Invoke.size, req.slots);
    this.#seq = this.#guest.mailbox.send(MailboxOp.values.INVOKE, [], [], length);
  }

  /** Milliseconds the next entry may take (at least 1 once a deadline is set), or undefined for no limit. */
  get entryTimeoutMs(): number | undefined {
    return this.#deadline === undefined ? undefined : Math.max(1, Math.ceil(this.#deadline - performance.now()));
  }

  /** Handles one stop: true when the guest must be entered again, false when the invoke is done. */
  onStop(stop: GuestStop): boolean {
    const guest = this.#guest;
    guest.reader.invalidate();
    if (stop === 'interrupted') throw this.stopped();
    if (stop === 'hostCall') {
      // The sync driver's host function answers synchronously (invokeInGuest's contract).
      this.#finishHostCall(this.#startHostCall() as bigint | undefined);
      return true;
    }
    guest.clearPendingKick(); // a cancel that came too late must not stop the next request
    const mb = guest.mailbox;
    mb.checkDone(this.#seq);
    const refused = mb.statusError(MailboxOp.values.INVOKE);
    if (refused) throw refused;
    if (this.#hostError !== undefined) {
      throw new NubError('HostFunctionFailed', `host function ${this.#readState().exitArg} threw: ${String(this.#hostError)}`, { cause: this.#hostError });
    }
    return false;
  }

  outcome(): GuestInvokeOutcome {
    const state = this.#readState();
    const lie = resultLie(state, this.#req);
    if (lie !== undefined) throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest reported an impossible result: ${lie}`, { details: { state } }));
    return { state, memory: this.#memory(), results: this.#readResults() };
  }

  #memory(): GuestInvocationMemory {
    this.#regions ??= [...this.#req.image.regions, ...this.#argRegions()];
    return new GuestInvocationMemory(this.#guest, this.#regions, this.#epoch, this.#currentEpoch);
  }

  /** The argument mappings' regions: read-only, on the stored pages of this invoke's caps. */
  #argRegions(): Region[] {
    const req = this.#req;
    return req.image.argMappings.map((m) => {
      const slot = req.slots.find((s) => s.ref === SlotRef.ARG_BASE + m.arg);
      if (slot === undefined) throw new NubError('Internal', `argument mapping at 0x${m.start.toString(16)} has no cap`);
      const capBytes = slot.len - DATA_PAGES;
      return { start: m.start, size: m.size, writable: false, gpa: this.#guest.gpaOf(slot.dataVa + BigInt(DATA_PAGES), capBytes), backedLen: Math.min(capBytes, m.size) };
    });
  }

  /** The filled argument slots as the guest left them; anything it names is checked before use. */
  #readResults(): GuestResultCap[] {
    const req = this.#req;
    const mem = this.#guest.memory;
    const base = INVOKE_GPA + Invoke.size + req.slots.length * FrameSlot.size;
    mem.check(base, req.resultCount * ResultCap.size);
    const results: GuestResultCap[] = [];
    for (let slot = 0; slot < req.resultCount; slot++) {
      const at = base + slot * ResultCap.size;
      const kind = mem.field(ResultCap, at, 'kind');
      if (kind === FrameLayout.values.EMPTY_KIND) continue;
      const originField = mem.field(ResultCap, at, 'origin');
      const { NO_ORIGIN, ROOT_ORIGIN } = FrameLayout.values;
      let pagesGpa = 0, pagesLen = 0;
      if (originField !== NO_ORIGIN && originField >= ROOT_ORIGIN) {
        // Checked against the image's root slots by the backend, which knows them.
        results.push({ slot, kind, origin: undefined, pagesGpa, pagesLen, root: { imageId: (originField - ROOT_ORIGIN) >>> 8, ref: originField & 0xff } });
        continue;
      }
      const origin = originField === NO_ORIGIN ? undefined : originField;
      if (origin !== undefined && (origin >= req.slots.length || req.slots[origin]!.kind !== kind)) {
        throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest returned argument slot ${slot} from frame slot ${origin}, which it was not given`));
      }
      if (origin === undefined && kind === CapSelector.Instance) {
        results.push({ slot, kind, origin, pagesGpa, pagesLen, instance: this.#readInstance(mem.field(ResultCap, at, 'data_va'), slot) });
        continue;
      }
      if (origin === undefined) {
        const len = mem.field(ResultCap, at, 'len');
        if (len < BigInt(DATA_PAGES) || (len - BigInt(DATA_PAGES)) % BigInt(PAGE_SIZE) !== 0n || len > BigInt(mem.size)) {
          throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest minted a ${len}-byte Data cap encoding in argument slot ${slot}`));
        }
        pagesLen = Number(len) - DATA_PAGES;
        pagesGpa = this.#guest.gpaOf(mem.field(ResultCap, at, 'data_va') + BigInt(DATA_PAGES), pagesLen);
      }
      results.push({ slot, kind, origin, pagesGpa, pagesLen });
    }
    return results;
  }

  /** An InstanceRecord the guest points a result at; its memory block is bounds-checked here. */
  #readInstance(va: bigint, slot: number): GuestInstance {
    const mem = this.#guest.memory;
    const at = this.#guest.gpaOf(va, InstanceRecord.size);
    const memoryLen = mem.field(InstanceRecord, at, 'memory_len');
    if (memoryLen > BigInt(mem.size)) throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest returned a ${memoryLen}-byte Instance memory in argument slot ${slot}`));
    const regs = Array.from({ length: NUM_REGS }, (_, i) => mem.view.getBigUint64(at + InstanceRecord.offsets.regs + 8 * i, true));
    return {
      imageId: mem.field(InstanceRecord, at, 'image_id'),
      regs,
      pc: mem.field(InstanceRecord, at, 'pc'),
      gas: mem.field(InstanceRecord, at, 'gas'),
      memoryGpa: memoryLen === 0n ? 0 : this.#guest.gpaOf(mem.field(InstanceRecord, at, 'memory_va'), Number(memoryLen)), // no block without writable mappings
      memoryLen: Number(memoryLen),
    };
  }

  /** The error for an entry the watchdog or a kick stopped (or a deadline/abort during a host call); restarts the vCPU at the kernel's resume point. */
  stopped(): NubError {
    this.#guest.restartAfterInterrupt();
    return this.#opts.signal?.aborted
      ? new NubError('Cancelled', 'the invoke was cancelled', { cause: this.#opts.signal.reason })
      : new NubError('Timeout', `the invoke did not finish within ${this.#opts.timeoutMs} ms`);
  }

  /** Async driver: a host call whose function may return a promise; the deadline and the signal still apply while it runs. */
  async answerHostCallAsync(): Promise<void> {
    const value = this.#startHostCall();
    if (!isPromiseLike(value)) return this.#finishHostCall(value);
    const signal = this.#opts.signal;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const interrupted = new Promise<'stop'>((resolve) => {
      if (this.#deadline !== undefined) timer = setTimeout(() => resolve('stop'), Math.max(0, this.#deadline - performance.now()));
      onAbort = () => resolve('stop');
      signal?.addEventListener('abort', onAbort);
    });
    const answered = Promise.resolve(value).then((v) => ({ v }), (err: unknown) => ({ err: err ?? new Error('undefined was thrown') }));
    try {
      const first = await Promise.race([answered, interrupted]);
      if (first === 'stop') throw this.stopped();
      if ('err' in first) {
        this.#hostError = first.err;
        return this.#finishHostCall(undefined);
      }
      this.#finishHostCall(first.v);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Calls the host function; a throw is recorded (the invoke then ends at the call) and reads as undefined. */
  #startHostCall(): bigint | undefined | PromiseLike<bigint | undefined> {
    const state = this.#readState();
    if (this.#opts.hostFunction === undefined) {
      throw this.#guest.mailbox.poison(new NubError('GuestProtocol', `the guest asked for host function ${state.exitArg}, which is not registered`));
    }
    try {
      return this.#opts.hostFunction(state.regs, this.#memory(), Number(state.exitArg));
    } catch (err) {
      this.#hostError = err ?? new Error('undefined was thrown');
      return undefined;
    }
  }

  /** Writes the reply (φ7 and RESUME, or ABORT); a host call that outlived the deadline ends the invoke with 'Timeout'. */
  #finishHostCall(value: bigint | undefined): void {
    if (this.#deadline !== undefined && performance.now() > this.#deadline) throw this.stopped();
    const mem = this.#guest.memory;
    let reply = InvokeReply.values.ABORT;
    if (value !== undefined && this.#hostError === undefined) {
      mem.view.setBigUint64(INVOKE_GPA + I.regs + 8 * 7, BigInt.asUintN(64, value), true);
      reply = InvokeReply.values.RESUME;
    }
    mem.view.setUint32(INVOKE_GPA + I.host_reply, reply, true);
  }

  /** The record's state; its exit is any u32 until resultLie has checked it. */
  #readState(): MachineStop {
    const mem = this.#guest.memory;
    const view = mem.view;
    mem.check(INVOKE_GPA, Invoke.size);
    const regs = new Array<bigint>(NUM_REGS);
    for (let i = 0; i < NUM_REGS; i++) regs[i] = view.getBigUint64(INVOKE_GPA + I.regs + 8 * i, true);
    return {
      exit: view.getUint32(INVOKE_GPA + I.exit, true) as ExitCode,
      exitArg: view.getBigUint64(INVOKE_GPA + I.exit_arg, true),
      regs,
      pc: view.getUint32(INVOKE_GPA + I.pc, true),
      gasLeft: view.getBigUint64(INVOKE_GPA + I.gas, true),
      instructions: Number(view.getBigUint64(INVOKE_GPA + I.instructions, true)),
    };
  }
}

const EXITS = new Set<number>(Object.values(Exit));

/**
 * What is impossible in a guest's INVOKE result (docs/machine.md, "Exits"), or undefined
 * when it could be true: an exit nub does not know, more gas left than given, more
 * instructions than gas used (every instruction costs at least 1), a pc outside the
 * code (but for the entry's own PANIC), an exitArg its exit cannot have.
 */
export function resultLie(state: MachineStop, req: GuestInvokeRequest): string | undefined {
  const { exit, exitArg, pc, gasLeft, instructions } = state;
  if (!EXITS.has(exit)) return `exit ${exit}`;
  if (gasLeft > req.gas) return `${gasLeft} gas left of ${req.gas}`;
  if (!Number.isSafeInteger(instructions) || BigInt(instructions) > req.gas - gasLeft) return `${instructions} instructions for ${req.gas - gasLeft} gas`;
  const entryPc = Number(BigInt.asUintN(32, BigInt(CODE_BASE) + req.entry));
  const atEntry = pc === entryPc && instructions === 0 && gasLeft === req.gas;
  if (!atEntry && (pc < CODE_BASE || pc > CODE_BASE + req.image.codeLen)) return `pc 0x${pc.toString(16)} outside the ${req.image.codeLen}-byte code`;
  const arg = exit === Exit.HALT ? (exitArg === state.regs[7] ? undefined : 'a HALT whose exitArg is not φ7')
    : exit === Exit.PAGE_FAULT ? (exitArg < BigInt(TWO_POW_32) ? undefined : `fault address ${exitArg}`)
      : exit === Exit.HOST_CALL ? (exitArg >= BigInt(HOST_CALL_MIN) && exitArg <= BigInt(HOST_CALL_MAX) ? undefined : `host call ${exitArg}`)
        : exitArg === 0n ? undefined : `exitArg ${exitArg} for exit ${exit}`;
  return arg;
}

/**
 * Invokes on this thread; `opts.hostCall` must answer synchronously. `epoch`/`currentEpoch` let the returned memory refuse reads
 * after the caller's next invoke (the guest reuses that memory).
 */
export function invokeInGuest(guest: GuestVm, req: GuestInvokeRequest, opts: GuestInvokeOptions, epoch: number, currentEpoch: () => number): GuestInvokeOutcome {
  const call = new InvokeCall(guest, req, opts, epoch, currentEpoch);
  call.start();
  while (call.onStop(guest.mailbox.enter(call.entryTimeoutMs, true)));
  return call.outcome();
}

/** Invokes on the VM's own thread; `opts.signal` kicks the vCPU out of the guest. */
export async function invokeInGuestAsync(
  guest: GuestVm, req: GuestInvokeRequest, opts: GuestInvokeOptions, epoch: number, currentEpoch: () => number,
): Promise<GuestInvokeOutcome> {
  const call = new InvokeCall(guest, req, opts, epoch, currentEpoch);
  if (opts.signal?.aborted) throw new NubError('Cancelled', 'the invoke was cancelled before it started', { cause: opts.signal.reason });
  call.start();
  let inGuest = false;
  const onAbort = (): void => {
    if (inGuest) guest.kick();
  };
  opts.signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      inGuest = true;
      const stop = await guest.mailbox.enterAsync(call.entryTimeoutMs, true).finally(() => { inGuest = false; });
      if (stop === 'hostCall') {
        guest.reader.invalidate();
        if (opts.signal?.aborted) throw call.stopped();
        await call.answerHostCallAsync();
      } else if (!call.onStop(stop)) break;
      // An abort that landed between two entries (during a host call) stops the next one at once.
      if (opts.signal?.aborted) guest.kick();
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  return call.outcome();
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | undefined)?.then === 'function';
}

