/**
 * Builds a guest's memory on the host, without KVM: page tables (with vmem), the
 * boot-info block and a cap directory laid out exactly as the guest kernel lays them
 * out (the layouts of lib/abi/guest-abi.ts). Tests corrupt what it builds, and the
 * directory bench measures the reader on it.
 */
import {
  BOOT_INFO_LAYOUT_VERSION, BOOT_INFO_MAGIC, BootInfo, DIRECTORY_LAYOUT_ID, DirectoryEntry, DirectoryEntryState, DirectoryHeader, Layout,
} from '../../lib/abi/guest-abi.js';
import { NubError } from '../../lib/errors.js';
import { GuestMemory, hex } from '../../lib/guest/guest-memory.js';
import { CAP_HASH_BYTES } from '../../lib/guest/cache-reader.js';
import { BumpTableAllocator, map, PAGE_SIZE, PageWalkCache, readVirtual, virtToPhys, writeVirtual } from '../../lib/guest/vmem.js';

const L = Layout.values;
const RW = { type: 'basic', readable: true, writable: true, executable: false } as const;
/** Where 'scattered' guests put their heap: a window below the linear map. */
export const SCATTERED_HEAP_VA = 0x10_0000_0000;

export interface SyntheticGuestOptions {
  /** Bytes of guest memory (default 16 MiB). */
  memorySize?: number;
  /** Directory slots; a power of two. */
  capacity: number;
  /**
   * 'linear' (default): the heap is reached through the linear map at GUEST_VA_BASE,
   * as in the real guest. 'scattered': the heap lives in its own VA window whose pages
   * map to physical pages in descending order, so nothing virtually contiguous is
   * physically contiguous and the reader must translate every page.
   */
  heap?: 'linear' | 'scattered';
  /** Bytes to shift the entries array by (from its 64-byte alignment), so entries straddle pages. */
  entriesShift?: number;
}

/** A synthetic guest: memory, tables, boot info, and a directory the host fills like the guest would. */
export class DirectoryWriter {
  readonly mem: GuestMemory;
  /** GPA of the PML4. */
  readonly root: number;
  readonly capacity: number;
  readonly headerVa: number;
  readonly entriesVa: number;
  readonly tables: BumpTableAllocator;
  private readonly scattered: boolean;
  private readonly cache = new PageWalkCache();
  private heapVa: number;
  /** Scattered heap: end of the mapped window, and the next physical page handed out (downwards). */
  private heapMappedEnd: number;
  private physTop: number;
  private count = 0;

  constructor(options: SyntheticGuestOptions) {
    const size = options.memorySize ?? 16 << 20;
    const { capacity } = options;
    if (!Number.isInteger(capacity) || capacity < 1 || (capacity & (capacity - 1)) !== 0 || capacity > 0x8000_0000) {
      throw new NubError('BadArgument', `directory capacity ${capacity} is not a power of two`);
    }
    this.mem = new GuestMemory(new ArrayBuffer(size));
    this.tables = new BumpTableAllocator(this.mem, L.PAGE_TABLES_GPA, L.PAGE_TABLES_END_GPA);
    this.root = this.tables.allocTable();
    map(this.tables, this.root, { virtBase: Number(L.GUEST_VA_BASE), physBase: 0, len: size, kind: RW, userAccessible: false });
    this.capacity = capacity;
    this.scattered = options.heap === 'scattered';
    this.heapVa = this.scattered ? SCATTERED_HEAP_VA : Number(L.GUEST_VA_BASE) + L.KERNEL_GPA;
    this.heapMappedEnd = SCATTERED_HEAP_VA;
    this.physTop = size;

    this.headerVa = this.alloc(DirectoryHeader.size, DirectoryHeader.align);
    this.entriesVa = this.alloc(capacity * DirectoryEntry.size + (options.entriesShift ?? 0), 64) + (options.entriesShift ?? 0);
    const header = new DataView(new ArrayBuffer(DirectoryHeader.size));
    DirectoryHeader.set(header, 0, 'layout_id', DIRECTORY_LAYOUT_ID);
    DirectoryHeader.set(header, 0, 'capacity', capacity);
    DirectoryHeader.set(header, 0, 'entries_va', this.entriesVa);
    this.writeVirtual(this.headerVa, new Uint8Array(header.buffer));
    this.writeBootInfo(size);
  }

  get bootInfoGpa(): number {
    return L.BOOT_INFO_GPA;
  }

  /** Number of entries stored. */
  get len(): number {
    return this.count;
  }

  /** Guest-physical address of guest-virtual `va` (throws when unmapped). */
  gpaOf(va: number): number {
    const t = virtToPhys(this.mem, this.root, va, this.cache);
    if (!t) throw new NubError('UnmappedAddress', `${hex(va)} is not mapped`);
    return t.pa;
  }

  entryVa(index: number): number {
    return this.entriesVa + index * DirectoryEntry.size;
  }

  /** Stores a cap as the guest's `put` does: bytes on the heap, then the slot, then the count. Returns the slot index. */
  put(hash: Uint8Array, kind: number, bytes: Uint8Array): number {
    if (hash.length !== CAP_HASH_BYTES) throw new NubError('BadHash', 'a cap hash is 32 bytes');
    const mask = this.capacity - 1;
    let index = new DataView(hash.buffer, hash.byteOffset, 4).getUint32(0, true) & mask;
    for (let probe = 0; probe < this.capacity; probe++, index = (index + 1) & mask) {
      const entry = this.readEntry(index);
      if (DirectoryEntry.get(entry, 0, 'state') === DirectoryEntryState.values.USED) {
        if (equalBytes(DirectoryEntry.get(entry, 0, 'hash') as Uint8Array, hash)) return index;
        continue;
      }
      // Like the guest: page-sized buffers stay page-aligned (SPEC section 7).
      const dataVa = bytes.length === 0 ? 0 : this.alloc(bytes.length, bytes.length % PAGE_SIZE === 0 ? PAGE_SIZE : 8);
      if (bytes.length > 0) this.writeVirtual(dataVa, bytes);
      new Uint8Array(entry.buffer).set(hash, DirectoryEntry.offsets.hash);
      DirectoryEntry.set(entry, 0, 'state', DirectoryEntryState.values.USED);
      DirectoryEntry.set(entry, 0, 'kind', kind);
      DirectoryEntry.set(entry, 0, 'len', bytes.length);
      DirectoryEntry.set(entry, 0, 'data_va', dataVa);
      this.writeVirtual(this.entryVa(index), new Uint8Array(entry.buffer));
      this.count++;
      this.writeVirtual(this.headerVa + DirectoryHeader.offsets.count, u32le(this.count));
      return index;
    }
    throw new NubError('DirectoryFull', `the directory's ${this.capacity} slots are all used`);
  }

  /** Writes `bytes` at guest-virtual `va` (tests use it to corrupt what was built). */
  writeVirtual(va: number, bytes: Uint8Array): void {
    writeVirtual(this.mem, this.root, va, bytes, this.cache);
  }

  private readEntry(index: number): DataView {
    return new DataView(readVirtual(this.mem, this.root, this.entryVa(index), DirectoryEntry.size, this.cache).buffer);
  }

  /** Bump allocation on the guest heap; returns the VA. */
  private alloc(len: number, align: number): number {
    const va = Math.ceil(this.heapVa / align) * align;
    this.heapVa = va + len;
    if (this.scattered) {
      for (; this.heapMappedEnd < this.heapVa; this.heapMappedEnd += PAGE_SIZE) {
        this.physTop -= PAGE_SIZE;
        if (this.physTop < L.KERNEL_GPA) throw new NubError('OutOfMemory', 'synthetic guest heap is full');
        map(this.tables, this.root, { virtBase: this.heapMappedEnd, physBase: this.physTop, len: PAGE_SIZE, kind: RW, userAccessible: false });
      }
    } else if (this.heapVa - Number(L.GUEST_VA_BASE) > this.mem.size) {
      throw new NubError('OutOfMemory', 'synthetic guest heap is full');
    }
    return va;
  }

  private writeBootInfo(size: number): void {
    const at = L.BOOT_INFO_GPA;
    const set = (name: Parameters<typeof BootInfo.set>[2], value: number | bigint) => this.mem.setField(BootInfo, at, name, value);
    set('magic', BOOT_INFO_MAGIC);
    set('layout_version', BOOT_INFO_LAYOUT_VERSION);
    set('directory_layout', DIRECTORY_LAYOUT_ID);
    set('directory_va', this.headerVa);
    set('guest_va_base', L.GUEST_VA_BASE);
    set('memory_size', size);
    set('heap_start', L.KERNEL_GPA);
    set('heap_end', size);
    set('page_table_root', this.root);
  }
}

function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
