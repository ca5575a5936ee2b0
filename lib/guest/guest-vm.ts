/**
 * A booted guest kernel: a KVM VM running guest/, its boot info, the mailbox to call
 * it and the reader of its cap directory. One guest entry and one exit per call.
 *
 *   using guest = GuestVm.boot();
 *   guest.put(hash, kind, bytes);
 *   guest.reader.get(hash); // read straight out of guest memory, no exit
 */
import { BootInfo, Layout, MailboxOp } from '../abi/guest-abi.js';
import type { FieldType, FieldValue, StructLayout } from '../abi/struct.js';
import { NubError } from '../errors.js';
import { Vm } from '../native/index.js';
import { loadKernelImage, prepareBoot } from './boot.js';
import { CAP_HASH_BYTES, GuestCacheReader } from './cache-reader.js';
import { GuestMemory } from './guest-memory.js';
import { Mailbox, MAILBOX_PAYLOAD_CAPACITY } from './mailbox.js';

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

export interface GuestVmOptions {
  /** Guest RAM in bytes (default DEFAULT_MEMORY_SIZE); a multiple of 4 KiB. */
  memorySize?: number;
  /** The kernel image (default: guest/build/kernel.bin of this package). */
  kernelPath?: string;
  kvmPath?: string;
  /** Stops the guest (poisoning the VM with 'GuestTimeout') when boot or a call takes longer. Default: no limit. */
  timeoutMs?: number;
}

type StructValue<S> = S extends StructLayout<infer F> ? { -readonly [K in keyof F]: FieldValue<F[K]> } : never;
/** The boot-info block as the guest published it. */
export type BootInfoValue = StructValue<typeof BootInfo>;

function readStruct<F extends Record<string, FieldType>>(mem: GuestMemory, layout: StructLayout<F>, gpa: number): StructValue<StructLayout<F>> {
  const value: Record<string, unknown> = {};
  for (const f of layout.fields) value[f.name] = mem.field(layout, gpa, f.name);
  return value as StructValue<StructLayout<F>>;
}

export class GuestVm {
  readonly #vm: Vm;
  readonly #mailbox: Mailbox;
  /** Guest-physical memory (detached once closed). */
  readonly memory: GuestMemory;
  /** Reads the cap directory without entering the guest; refreshed after every call. */
  readonly reader: GuestCacheReader;
  readonly bootInfo: BootInfoValue;
  /** Milliseconds GuestVm.boot took, from the start to boot info ready. */
  readonly bootTimeMs: number;

  private constructor(vm: Vm, started: number, timeoutMs: number | undefined) {
    this.#vm = vm;
    this.memory = new GuestMemory(vm.memory);
    this.#mailbox = new Mailbox(vm, this.memory, timeoutMs);
    this.#mailbox.awaitBoot();
    this.reader = GuestCacheReader.fromBootInfo(this.memory); // validates magic, layout and directory
    this.bootInfo = readStruct(this.memory, BootInfo, Layout.values.BOOT_INFO_GPA);
    this.bootTimeMs = performance.now() - started;
  }

  /** Creates a VM, loads the kernel and runs it until its boot info is published. */
  static boot(options: GuestVmOptions = {}): GuestVm {
    const started = performance.now();
    const kernel = loadKernelImage(options.kernelPath);
    const memorySize = options.memorySize ?? DEFAULT_MEMORY_SIZE;
    const vm = Vm.create({ memorySize, ...(options.kvmPath === undefined ? {} : { kvmPath: options.kvmPath }) });
    try {
      prepareBoot(vm, kernel);
      return new GuestVm(vm, started, options.timeoutMs);
    } catch (err) {
      vm.close();
      throw err;
    }
  }

  get closed(): boolean {
    return this.#vm.closed;
  }

  /** One round trip through the guest (the mailbox checks the guest finished this very request). */
  ping(): void {
    this.request(MailboxOp.values.PING, NO_ARGS);
  }

  /**
   * Stores a cap in the guest's directory through the guest itself. Returns false when
   * the hash was already there (the guest keeps the first copy). Errors: 'BadHash',
   * 'BadArgument', 'PayloadTooLarge', and the guest's 'DirectoryFull' / 'GuestOutOfMemory'.
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
   * A raw mailbox request (opcode, args, payload): one guest entry and exit; returns
   * results[0]. The typed methods above are built on it; tests use it for
   * NUB_OP_SELFTEST_FAULT.
   */
  request(op: number, args: readonly number[], payload?: readonly Uint8Array[]): number {
    if (this.#vm.closed) throw new NubError('Closed', 'the guest VM is closed');
    try {
      return this.#mailbox.call(op, args, payload);
    } finally {
      this.reader.invalidate();
    }
  }

  /** Stops the VM and releases its memory. Idempotent. */
  close(): void {
    this.#vm.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
