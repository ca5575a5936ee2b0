/**
 * ImmutableMapping: a read-only view of memory as it was when the view was made. Later
 * writes to the source never show in it, and nothing can write through it.
 *
 * On Linux it is a MAP_PRIVATE, PROT_READ mapping of a sealed memfd (see
 * docs/snapshots.md). For guest memory the memfd is the VM's own memory file, frozen
 * (sealed, the VM remapped copy-on-write over it) the first time; the pages the VM has
 * changed since are copied into the view, so making one costs what changed, not the
 * memory size. A zero-size view maps nothing.
 *
 * The mapping is PROT_READ, so it is never handed out as an ArrayBuffer (a JS write to
 * it would kill the process): read it with `read`, `readInto` or `u8`.
 */
import { NubError } from '../errors.js';
import { MemoryFile, releaseBuffer, type Vm } from '../native/index.js';
import { PAGE_SIZE } from './page-bitmap.js';

const EMPTY = new Uint8Array(0);

let windowOf: (m: ImmutableMapping) => Uint8Array;

/**
 * lib/snapshot's own read-only window on a mapping, for copies without a copy (never
 * written: a write would be SIGSEGV). A function of this module, not a method, so no
 * holder of an ImmutableMapping can reach it.
 */
export function readOnlyWindow(m: ImmutableMapping): Uint8Array {
  return windowOf(m);
}

export class ImmutableMapping implements Disposable {
  /** The mapped buffer; undefined for a zero-size view. */
  readonly #buffer: ArrayBuffer | undefined;
  #bytes: Uint8Array;
  #closed = false;
  readonly length: number;

  private constructor(buffer: ArrayBuffer | undefined, length = buffer?.byteLength ?? 0) {
    this.#buffer = buffer;
    this.#bytes = buffer === undefined ? EMPTY : new Uint8Array(buffer, 0, length);
    this.length = length;
  }

  /**
   * Guest memory of `vm` as it is now. Side effect, once per VM: its memory becomes a
   * copy-on-write map of a sealed file (vm.freezeMemory()), invisible to the guest.
   */
  static ofVm(vm: Vm): ImmutableMapping {
    const base = vm.freezeMemory();
    try {
      return ImmutableMapping.ofFile(base, vm.memory, vm.privatePages());
    } finally {
      base.close();
    }
  }

  /** A sealed file's bytes, with the pages set in `bitmap` taken from `patch` (copied now). */
  static ofFile(file: MemoryFile, patch?: ArrayBuffer, bitmap?: Uint8Array): ImmutableMapping {
    return new ImmutableMapping(file.mapImmutable(patch, bitmap));
  }

  /**
   * Any bytes (a JS buffer, another mapping): copied once into a sealed memfd, so the
   * view is backed by a file like the others. Zero bytes map nothing.
   */
  static fromBytes(bytes: Uint8Array | ArrayBuffer): ImmutableMapping {
    const src = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    if (src.length === 0) return new ImmutableMapping(undefined);
    const file = MemoryFile.create(Math.ceil(src.length / PAGE_SIZE) * PAGE_SIZE);
    try {
      file.write(0, src);
      file.seal();
      return new ImmutableMapping(file.mapImmutable(), src.length); // the file is page-rounded
    } finally {
      file.close();
    }
  }

  /** A zero-length view; maps nothing. */
  static empty(): ImmutableMapping {
    return new ImmutableMapping(undefined);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Copies `length` bytes at `offset` out of the view. */
  read(offset: number, length: number): Uint8Array {
    return this.#range(offset, length).slice();
  }

  /** Copies `target.length` bytes at `offset` into `target`. */
  readInto(offset: number, target: Uint8Array): void {
    target.set(this.#range(offset, target.length));
  }

  u8(offset: number): number {
    return this.#range(offset, 1)[0]!;
  }

  /** True when the view holds exactly `bytes` at `offset`. */
  equals(offset: number, bytes: Uint8Array): boolean {
    const mine = this.#range(offset, bytes.length);
    for (let i = 0; i < bytes.length; i++) if (mine[i] !== bytes[i]) return false;
    return true;
  }

  static {
    windowOf = (m) => m.#range(0, m.length);
  }

  #range(offset: number, length: number): Uint8Array {
    if (this.closed) throw new NubError('Closed', 'the immutable mapping is closed');
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.length) {
      throw new NubError('OutOfBounds', `[${offset}, +${length}) is outside the ${this.length}-byte mapping`);
    }
    return this.#bytes.subarray(offset, offset + length);
  }

  /** Releases the mapping (unmapped when its buffer's finalizer runs). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#bytes = EMPTY;
    if (this.#buffer !== undefined) releaseBuffer(this.#buffer);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
