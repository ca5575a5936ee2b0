/**
 * A booted guest kernel: a KVM VM running guest/, its boot info, the mailbox to call
 * it and the reader of its cap directory. One guest entry and one exit per call.
 *
 *   using guest = GuestVm.boot();
 *   guest.put(hash, kind, bytes);
 *   guest.reader.get(hash); // read straight out of guest memory, no exit
 *
 * Snapshots (docs/snapshots.md): `guest.snapshot()`, `guest.restore(snapshot)` (also
 * clears poisoning), `GuestVm.fromSnapshot(snapshot, { vmCache })` to start a guest
 * without booting, and `close()` gives the VM back to that cache.
 */
import { availableParallelism } from 'node:os';
import { BootInfo, CapPut, CapPutLayout, Layout, MailboxOp } from '../abi/guest-abi.js';
import type { FieldType, FieldValue, StructLayout } from '../abi/struct.js';
import { NubError } from '../errors.js';
import { KVM_RUN, Vm } from '../native/index.js';
import { Snapshot, type RestoreOptions, type RestoreStats } from '../snapshot/snapshot.js';
import type { VmCache } from '../snapshot/vm-cache.js';
import { loadKernelImage, prepareBoot } from './boot.js';
import { CAP_HASH_BYTES, GuestCacheReader } from './cache-reader.js';
import { GuestMemory } from './guest-memory.js';
import { Mailbox, MAILBOX_PAYLOAD_CAPACITY, MAILBOX_PAYLOAD_GPA } from './mailbox.js';

/**
 * Default guest RAM: 16 MiB gives a directory of 16,384 slots (12,288 caps at the 3/4
 * load limit) and about 14 MiB of heap. Bigger guests boot more slowly in practice:
 * V8 counts the whole memory ArrayBuffer as external memory and collects garbage sooner.
 */
export const DEFAULT_MEMORY_SIZE = 16 * 1024 * 1024;
/** Largest cap `put` stores in one request (the mailbox payload minus the hash). */
export const MAX_PUT_BYTES = MAILBOX_PAYLOAD_CAPACITY - CAP_HASH_BYTES;
const MAX_KIND = 0xffff_ffff;
const NO_ARGS: readonly number[] = [];
const VA_BASE = Number(Layout.values.GUEST_VA_BASE);
const RFLAGS_RESERVED = 2n; // bit 1 is always set; IF stays clear
/**
 * How long a polling guest spins for the next request before it rings the doorbell and
 * lets its core go: a few exit round trips' worth, so back-to-back calls never exit.
 */
export const POLL_IDLE_US = 150;
/** CapPut records one PUT_CAPS request carries. */
export const PUT_CAPS_BATCH = Math.floor(MAILBOX_PAYLOAD_CAPACITY / CapPut.size);

/** One cap for `putCaps`: its hash and kind, its encoding, and which byte to put on a page boundary. */
export interface CapToStore {
  hash: Uint8Array;
  kind: number;
  bytes: Uint8Array;
  /** Byte of `bytes` the guest places at a page start (a Data cap's first page); default: none. */
  pageOffset?: number;
}

export interface GuestVmOptions {
  /** Guest RAM in bytes (default DEFAULT_MEMORY_SIZE); a multiple of 4 KiB. */
  memorySize?: number;
  /** The kernel image (default: guest/build/kernel.bin of this package). */
  kernelPath?: string;
  kvmPath?: string;
  /** Stops the guest (poisoning the VM with 'Timeout') when boot or a call takes longer. Default: no limit. */
  timeoutMs?: number;
  /** Calls without a VM exit (docs/guest.md, "Polling mode"); needs two cores ('PollingUnavailable'). */
  polling?: boolean;
}

export interface GuestFromSnapshotOptions {
  kvmPath?: string;
  timeoutMs?: number;
  polling?: boolean;
  /** Take the VM from this cache when it has one of the right size, and give it back on close(). */
  vmCache?: VmCache;
}

type StructValue<S> = S extends StructLayout<infer F> ? { -readonly [K in keyof F]: FieldValue<F[K]> } : never;
/** The boot-info block as the guest published it. */
export type BootInfoValue = StructValue<typeof BootInfo>;

function readStruct<F extends Record<string, FieldType>>(mem: GuestMemory, layout: StructLayout<F>, gpa: number): StructValue<StructLayout<F>> {
  const value: Record<string, unknown> = {};
  for (const f of layout.fields) value[f.name] = mem.field(layout, gpa, f.name);
  return value as StructValue<StructLayout<F>>;
}

/** The polling guest's idle budget in its own TSC ticks. 'PollingUnavailable' with fewer than two cores. */
function idleSpinTsc(vm: Vm): number {
  const cores = availableParallelism();
  if (cores < 2) {
    throw new NubError('PollingUnavailable', `polling needs the vCPU and the caller on different cores; this process may use ${cores}. Create the guest without polling`);
  }
  return Math.max(1, Math.round(vm.tscKhz() * POLL_IDLE_US / 1000));
}

export class GuestVm {
  readonly #vm: Vm;
  readonly #timeoutMs: number | undefined;
  /** TSC ticks a polling guest spins between requests; 0 when not polling. */
  readonly #idleSpinTsc: number;
  #mailbox: Mailbox;
  /** Where close() puts the VM instead of closing it (guests started from a snapshot). */
  readonly #vmCache: VmCache | undefined;
  /** Set once close() has given the VM to the cache: the VM lives on, this guest does not. */
  #detached = false;
  /** Guest-physical memory (detached once closed). */
  readonly memory: GuestMemory;
  /** Reads the cap directory without entering the guest; refreshed after every call. */
  readonly reader: GuestCacheReader;
  #bootInfo: BootInfoValue;
  /** Milliseconds from the start of GuestVm.boot (or fromSnapshot) to boot info ready. */
  readonly bootTimeMs: number;

  private constructor(vm: Vm, started: number, timeoutMs: number | undefined, polling: boolean | undefined, restored?: { vmCache: VmCache | undefined }) {
    this.#vm = vm;
    this.#timeoutMs = timeoutMs;
    this.#idleSpinTsc = polling ? idleSpinTsc(vm) : 0;
    this.#vmCache = restored?.vmCache;
    this.memory = new GuestMemory(vm.memory);
    this.#mailbox = new Mailbox(vm, this.memory, timeoutMs, this.#idleSpinTsc);
    if (restored === undefined) this.#mailbox.awaitBoot();
    this.reader = GuestCacheReader.fromBootInfo(this.memory); // validates magic, layout and directory
    this.#bootInfo = readStruct(this.memory, BootInfo, Layout.values.BOOT_INFO_GPA);
    this.bootTimeMs = performance.now() - started;
  }

  /**
   * A guest in the state of `snapshot` (taken of a booted guest with snapshot()), without
   * booting: in a VM from `options.vmCache` when one of the right size is idle (tens of
   * microseconds), else in a new VM.
   */
  static fromSnapshot(snapshot: Snapshot, options: GuestFromSnapshotOptions = {}): GuestVm {
    const started = performance.now();
    const reuse = options.vmCache?.take(snapshot.memorySize);
    let vm: Vm;
    try {
      vm = snapshot.createVm({ ...(reuse === undefined ? {} : { reuse }), ...(options.kvmPath === undefined ? {} : { kvmPath: options.kvmPath }) });
    } catch (err) {
      reuse?.close(); // createVm closes a VM it made itself, not one it was lent
      throw err;
    }
    try {
      return new GuestVm(vm, started, options.timeoutMs, options.polling, { vmCache: options.vmCache });
    } catch (err) {
      vm.close();
      throw err;
    }
  }

  /** Closed, or its VM given back to the cache. */
  get #gone(): boolean {
    return this.#detached || this.#vm.closed;
  }

  /** The boot info the guest published (re-read by restore()). */
  get bootInfo(): BootInfoValue {
    return this.#bootInfo;
  }

  /** Snapshot of the guest, stopped between calls: memory and vCPU (its memory turns copy-on-write; see docs/snapshots.md). */
  snapshot(): Snapshot {
    if (this.#gone) throw new NubError('Closed', 'the guest VM is closed');
    return Snapshot.take(this.#vm);
  }

  /**
   * Puts the guest back in `snapshot`'s state (any snapshot of a guest of the same memory
   * size). Clears poisoning: the mailbox starts over. Cost: the pages written since.
   */
  restore(snapshot: Snapshot, options?: RestoreOptions): RestoreStats {
    if (this.#gone) throw new NubError('Closed', 'the guest VM is closed');
    const stats = snapshot.restore(this.#vm, options);
    this.#mailbox = new Mailbox(this.#vm, this.memory, this.#timeoutMs, this.#idleSpinTsc);
    this.reader.invalidate();
    this.#bootInfo = readStruct(this.memory, BootInfo, Layout.values.BOOT_INFO_GPA);
    return stats;
  }

  /** Creates a VM, loads the kernel and runs it until its boot info is published. */
  static boot(options: GuestVmOptions = {}): GuestVm {
    const started = performance.now();
    const kernel = loadKernelImage(options.kernelPath);
    const memorySize = options.memorySize ?? DEFAULT_MEMORY_SIZE;
    const vm = Vm.create({ memorySize, ...(options.kvmPath === undefined ? {} : { kvmPath: options.kvmPath }) });
    try {
      prepareBoot(vm, kernel);
      return new GuestVm(vm, started, options.timeoutMs, options.polling);
    } catch (err) {
      vm.close();
      throw err;
    }
  }

  get closed(): boolean {
    return this.#gone;
  }

  /** Whether calls cross no VM exit (polling mode). */
  get polling(): boolean {
    return this.#idleSpinTsc > 0;
  }

  /** One round trip through the guest (the mailbox checks the guest finished this very request). */
  ping(): void {
    this.request(MailboxOp.values.PING, NO_ARGS);
  }

  /**
   * Stores a cap in the guest's directory through the guest itself. Returns false when
   * the hash was already there (the guest keeps the first copy). Errors: 'BadHash',
   * 'BadArgument', 'PayloadTooLarge', and the guest's 'DirectoryFull' / 'OutOfMemory'.
   */
  put(hash: Uint8Array, kind: number, bytes: Uint8Array): boolean {
    if (!(hash instanceof Uint8Array) || hash.length !== CAP_HASH_BYTES) throw new NubError('BadHash', `a cap hash is ${CAP_HASH_BYTES} bytes`);
    if (!Number.isInteger(kind) || kind < 0 || kind > MAX_KIND) throw new NubError('BadArgument', `cap kind ${kind} is not a u32`);
    if (!(bytes instanceof Uint8Array)) throw new NubError('BadArgument', 'cap bytes must be a Uint8Array');
    if (bytes.length > MAX_PUT_BYTES) {
      throw new NubError('PayloadTooLarge', `one put carries at most ${MAX_PUT_BYTES} bytes, not ${bytes.length}`);
    }
    return this.request(MailboxOp.values.PUT, [kind, bytes.length], [hash, bytes]) === 1;
  }

  /**
   * Stores many caps with one guest entry per PUT_CAPS_BATCH of them: the guest reserves
   * room and the host writes the bytes straight into guest memory, so a cap may be any
   * size. Returns how many were new. Errors as `put`, and 'GuestProtocol' (poisoning)
   * when the guest names memory outside itself.
   */
  putCaps(caps: readonly CapToStore[], timeoutMs?: number): number {
    for (const c of caps) {
      if (!(c.hash instanceof Uint8Array) || c.hash.length !== CAP_HASH_BYTES) throw new NubError('BadHash', `a cap hash is ${CAP_HASH_BYTES} bytes`);
      if (!Number.isInteger(c.kind) || c.kind < 0 || c.kind > MAX_KIND) throw new NubError('BadArgument', `cap kind ${c.kind} is not a u32`);
      const offset = c.pageOffset;
      if (offset !== undefined && (!Number.isInteger(offset) || offset < 0 || offset > c.bytes.length)) {
        throw new NubError('BadArgument', `page offset ${offset} is outside the cap's ${c.bytes.length} bytes`);
      }
    }
    let inserted = 0;
    // `timeoutMs` bounds all the batches together; running out poisons ('Timeout').
    const deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
    for (let i = 0; i < caps.length; i += PUT_CAPS_BATCH) {
      const left = deadline === undefined ? undefined : Math.max(1, Math.ceil(deadline - performance.now()));
      inserted += this.#putBatch(caps.slice(i, i + PUT_CAPS_BATCH), left);
    }
    return inserted;
  }

  #putBatch(caps: readonly CapToStore[], timeoutMs: number | undefined): number {
    if (this.#gone) throw new NubError('Closed', 'the guest VM is closed');
    const records = new Uint8Array(caps.length * CapPut.size);
    const view = new DataView(records.buffer);
    caps.forEach((c, i) => {
      const at = i * CapPut.size;
      records.set(c.hash, at + CapPut.offsets.hash);
      CapPut.set(view, at, 'kind', c.kind);
      CapPut.set(view, at, 'page_offset', c.pageOffset ?? CapPutLayout.values.NO_PAGE_OFFSET);
      CapPut.set(view, at, 'len', BigInt(c.bytes.length));
    });
    const mb = this.#mailbox;
    try {
      const seq = mb.send(MailboxOp.values.PUT_CAPS, [caps.length], [records]);
      if (mb.enter(timeoutMs) !== 'doorbell') throw mb.poison(new NubError('GuestProtocol', 'the guest stopped a PUT_CAPS for a host call'));
      mb.checkDone(seq);
      // Records the guest reserved (even before a refusal) are in its directory: fill them all.
      caps.forEach((c, i) => {
        const va = this.memory.field(CapPut, MAILBOX_PAYLOAD_GPA + i * CapPut.size, 'data_va');
        if (va !== 0n) this.memory.u8s.set(c.bytes, this.#gpaOf(va, c.bytes.length));
      });
      const refused = mb.statusError(MailboxOp.values.PUT_CAPS);
      if (refused) throw refused;
      return mb.result(0);
    } finally {
      this.reader.invalidate();
    }
  }

  /**
   * Guest-physical address of `len` bytes at a guest-virtual address in the kernel's
   * linear map (which the host built and the kernel never changes); a guest that names
   * anything else poisons the VM.
   */
  #gpaOf(va: bigint, len: number): number {
    const gpa = Number(va) - VA_BASE;
    if (va < BigInt(VA_BASE) || va > BigInt(Number.MAX_SAFE_INTEGER) || gpa + len > this.memory.size || gpa < Layout.values.PAGE_SIZE) {
      throw this.#mailbox.poison(new NubError('GuestProtocol', `the guest named memory at 0x${va.toString(16)} (+${len}) outside itself`));
    }
    return gpa;
  }

  /** `#gpaOf` for the invoke protocol (lib/guest/invoke.ts). */
  gpaOf(va: bigint, len: number): number {
    return this.#gpaOf(va, len);
  }

  /** The mailbox, for protocols built from its parts (lib/guest/invoke.ts). Throws 'Closed' once closed. */
  get mailbox(): Mailbox {
    if (this.#gone) throw new NubError('Closed', 'the guest VM is closed');
    return this.#mailbox;
  }

  /** Stops the guest's current (or next) run: it returns as 'interrupted'. */
  kick(): void {
    if (!this.#gone) this.#vm.kick();
  }

  /**
   * After an interrupted INVOKE: drop any kick still pending and restart the vCPU at the
   * kernel's resume point (BootInfo.resume_va, on a fresh stack), where it serves the
   * next request. The stopped invoke's state is all scratch, so nothing is left half done.
   */
  restartAfterInterrupt(): void {
    this.clearPendingKick();
    this.#vm.setRegs({ ...this.#vm.getRegs(), rip: this.bootInfo.resume_va, rflags: RFLAGS_RESERVED });
  }

  /** Drops a kick that arrived after the run it was meant for had already ended. */
  clearPendingKick(): void {
    if (!this.#gone) new Uint8Array(this.#vm.runState)[KVM_RUN.immediateExit] = 0;
  }

  /**
   * A raw mailbox request (opcode, args, payload): one guest entry and exit; returns
   * results[0]. The typed methods above are built on it; tests use it for
   * NUB_OP_SELFTEST_FAULT.
   */
  request(op: number, args: readonly number[], payload?: readonly Uint8Array[]): number {
    if (this.#gone) throw new NubError('Closed', 'the guest VM is closed');
    try {
      return this.#mailbox.call(op, args, payload);
    } finally {
      this.reader.invalidate();
    }
  }

  /**
   * Stops the VM and releases its memory. Idempotent. A guest started from a snapshot
   * with a VM cache gives a healthy VM back to the cache instead (a poisoned one is closed).
   */
  close(): void {
    if (this.#gone) return;
    if (this.#vmCache !== undefined && this.#mailbox.poisonedBy === undefined) {
      this.#detached = true;
      this.#vmCache.give(this.#vm);
      return;
    }
    this.#vm.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
