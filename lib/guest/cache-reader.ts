/**
 * The host's read-only view of the guest's cap directory, straight out of guest
 * memory: no VM exit, no guest code. The guest is untrusted, so every number read
 * from it is checked before use, every guest-virtual address goes through the
 * guest's own page tables (vmem), and every loop is bounded by the directory's
 * validated capacity. A lying guest can make a lookup throw a NubError; it cannot
 * make the host read outside guest memory, crash or hang.
 *
 * What the reader learns from the guest (boot info, directory header, page
 * translations) is only trusted until the guest runs again: the sandbox calls
 * `invalidate()` after every guest entry, and the next lookup re-reads and
 * re-validates it.
 */
import {
  BOOT_INFO_LAYOUT_VERSION, BOOT_INFO_MAGIC, BootInfo, DIRECTORY_LAYOUT_ID, DirectoryEntry, DirectoryEntryState, DirectoryHeader, HASH_BYTES, Layout,
} from '../abi/guest-abi.js';
import { CapSelector, decodeCap, type CapValue } from '../caps/index.js';
import { NubError } from '../errors.js';
import { GuestMemory, hex } from './guest-memory.js';
import { canonicalVa, PAGE_SIZE, PageWalkCache, readVirtual, VA_LIMIT, virtToPhys } from './vmem.js';

/** Bytes in a cap hash (the directory key). */
export const CAP_HASH_BYTES = HASH_BYTES;

/** A stored cap as the guest holds it: the Cap union selector and its encoded bytes (a copy). */
export interface StoredCap {
  kind: number;
  bytes: Uint8Array;
}

const ENTRY_SIZE = DirectoryEntry.size;
const ENTRY = DirectoryEntry.offsets;
const USED = DirectoryEntryState.values.USED;
const EMPTY = DirectoryEntryState.values.EMPTY;
const HASH_WORDS = CAP_HASH_BYTES / 4;

/** The directory header after validation, and the GPAs of the entry pages met so far. */
interface Directory {
  root: number;
  capacity: number;
  count: number;
  entriesVa: number;
  /** GPA of each page the entries array touches (page 0 holds entriesVa), -1 until translated. */
  entryPages: Float64Array;
}

export class GuestCacheReader {
  private readonly mem: GuestMemory;
  private readonly bootInfoGpa: number;
  private readonly walkCache = new PageWalkCache();
  private dir: Directory | null = null;
  /** Where `locate` left the entry: guest memory itself, or `scratch` for an entry that straddles two pages. */
  private entryView: DataView;
  private readonly scratch = new DataView(new ArrayBuffer(ENTRY_SIZE));
  private readonly query = new Uint32Array(HASH_WORDS);

  private constructor(mem: GuestMemory, bootInfoGpa: number) {
    this.mem = mem;
    this.bootInfoGpa = bootInfoGpa;
    this.entryView = mem.view;
  }

  /**
   * A reader for the directory the boot info at `bootInfoGpa` describes, validated now.
   * Errors (NubError codes): BadMagic, UnknownLayout, UninitialisedDirectoryVa,
   * NullPointer, UnmappedAddress, OutOfBounds, Misaligned, BadDirectory.
   */
  static fromBootInfo(mem: GuestMemory, bootInfoGpa: number = Layout.values.BOOT_INFO_GPA): GuestCacheReader {
    const reader = new GuestCacheReader(mem, bootInfoGpa);
    reader.directory();
    return reader;
  }

  /** Forgets everything read from the guest; the next call re-reads and re-validates it. */
  invalidate(): void {
    this.dir = null;
    this.walkCache.clear();
  }

  /** Number of caps in the directory. */
  len(): number {
    return this.directory().count;
  }

  isEmpty(): boolean {
    return this.len() === 0;
  }

  contains(hash: Uint8Array): boolean {
    return this.find(hash) >= 0;
  }

  /** The stored cap for `hash`, copied out of guest memory, or undefined when absent. */
  get(hash: Uint8Array): StoredCap | undefined {
    const entry = this.entry(hash);
    if (entry === undefined) return undefined;
    if (entry.len === 0) return { kind: entry.kind, bytes: new Uint8Array(0) };
    return { kind: entry.kind, bytes: this.copy(this.directory().root, guestVa(entry.dataVa, 'data_va'), entry.len) };
  }

  /** Where the guest stores the cap for `hash` (kind, length, guest-virtual address), read without copying; undefined when absent. */
  entry(hash: Uint8Array): { kind: number; len: number; dataVa: bigint } | undefined {
    const index = this.find(hash);
    if (index < 0) return undefined;
    const at = this.locate(this.directory(), index);
    const view = this.entryView;
    const kind = view.getUint32(at + ENTRY.kind, true);
    // Approximate above 2^53, which is still far above any memory size.
    const len = view.getUint32(at + ENTRY.len, true) + view.getUint32(at + ENTRY.len + 4, true) * 0x1_0000_0000;
    if (len > this.mem.size) throw badDirectory(`entry ${index} claims ${len} bytes, more than guest memory`, { index, len });
    const dataVa = view.getBigUint64(at + ENTRY.data_va, true);
    if (len > 0 && dataVa === 0n) throw new NubError('NullPointer', `entry ${index} has ${len} bytes at address 0`, { details: { index } });
    return { kind, len, dataVa };
  }

  /**
   * The stored cap for `hash` decoded (its bytes are the `Cap` union encoding, as
   * `encodeCap` makes them), or undefined when absent. Bytes that do not decode throw
   * the decoder's NubError; a union selector that disagrees with the entry's kind
   * throws 'BadDirectory'.
   */
  getCap(hash: Uint8Array): CapValue | undefined {
    const stored = this.get(hash);
    if (!stored) return undefined;
    const cap = decodeCap(stored.bytes);
    if (CapSelector[cap.kind] !== stored.kind) {
      throw badDirectory(`entry kind ${stored.kind} disagrees with its ${cap.kind} cap bytes`, { kind: stored.kind, decoded: cap.kind });
    }
    return cap;
  }

  /** Slot index of `hash`, or -1. Linear probing from the hash's low bits, at most `capacity` probes. */
  private find(hash: Uint8Array): number {
    if (!(hash instanceof Uint8Array) || hash.length !== CAP_HASH_BYTES) {
      throw new NubError('BadHash', `a cap hash is ${CAP_HASH_BYTES} bytes`);
    }
    const dir = this.directory();
    const q = this.query;
    for (let w = 0; w < HASH_WORDS; w++) {
      q[w] = (hash[4 * w]! | (hash[4 * w + 1]! << 8) | (hash[4 * w + 2]! << 16) | (hash[4 * w + 3]! << 24)) >>> 0;
    }
    const mask = dir.capacity - 1;
    let index = q[0]! & mask;
    for (let probe = 0; probe < dir.capacity; probe++, index = (index + 1) & mask) {
      const at = this.locate(dir, index);
      const view = this.entryView;
      const state = view.getUint32(at + ENTRY.state, true);
      if (state === EMPTY) return -1;
      if (state !== USED) throw badDirectory(`entry ${index} has unknown state ${state}`, { index, state });
      let w = 0;
      while (w < HASH_WORDS && view.getUint32(at + ENTRY.hash + 4 * w, true) === q[w]) w++;
      if (w === HASH_WORDS) return index;
    }
    return -1;
  }

  /** The offset of entry `index` in `this.entryView` (which it sets). */
  private locate(dir: Directory, index: number): number {
    const offset = (dir.entriesVa % PAGE_SIZE) + index * ENTRY_SIZE;
    const inPage = offset % PAGE_SIZE;
    if (inPage + ENTRY_SIZE <= PAGE_SIZE) {
      const page = (offset - inPage) / PAGE_SIZE;
      let gpa = dir.entryPages[page]!;
      if (gpa < 0) gpa = dir.entryPages[page] = this.translate(dir.root, dir.entriesVa - (dir.entriesVa % PAGE_SIZE) + page * PAGE_SIZE, PAGE_SIZE);
      this.entryView = this.mem.view;
      return gpa + inPage;
    }
    new Uint8Array(this.scratch.buffer).set(this.copy(dir.root, dir.entriesVa + index * ENTRY_SIZE, ENTRY_SIZE));
    this.entryView = this.scratch;
    return 0;
  }

  /** GPA of [va, va + len), which must lie in one page, be mapped, and be inside guest memory. */
  private translate(root: number, va: number, len: number): number {
    const t = virtToPhys(this.mem, root, va, this.walkCache);
    if (!t) throw new NubError('UnmappedAddress', `guest virtual address ${hex(va)} is not mapped`, { details: { va } });
    if (t.pa < PAGE_SIZE) throw new NubError('NullPointer', `guest virtual address ${hex(va)} points into the null guard page`, { details: { va } });
    this.mem.check(t.pa, len);
    return t.pa;
  }

  /** A copy of `len` bytes at guest-virtual `va`, which may span pages. */
  private copy(root: number, va: number, len: number): Uint8Array {
    this.translate(root, va, Math.min(len, PAGE_SIZE - (va % PAGE_SIZE)));
    return readVirtual(this.mem, root, va, len, this.walkCache);
  }

  private directory(): Directory {
    // A closed VM detaches the buffer: reload, so the bounds check reports Closed.
    if (this.dir && this.mem.buffer.byteLength !== 0) return this.dir;
    return (this.dir = this.load());
  }

  /** Reads and validates the boot info and the directory header. */
  private load(): Directory {
    const mem = this.mem;
    const at = this.bootInfoGpa;
    mem.check(at, BootInfo.size);
    const magic = mem.field(BootInfo, at, 'magic');
    if (magic !== BOOT_INFO_MAGIC) throw new NubError('BadMagic', `boot info magic is ${hex(magic)}, not ${hex(BOOT_INFO_MAGIC)}`, { details: { magic } });
    const version = mem.field(BootInfo, at, 'layout_version');
    if (version !== BOOT_INFO_LAYOUT_VERSION) throw unknownLayout('boot info layout version', version, BOOT_INFO_LAYOUT_VERSION);
    const dirLayout = mem.field(BootInfo, at, 'directory_layout');
    if (dirLayout !== DIRECTORY_LAYOUT_ID) throw unknownLayout('directory layout id', dirLayout, DIRECTORY_LAYOUT_ID);
    const directoryVa = mem.field(BootInfo, at, 'directory_va');
    if (directoryVa === 0n) throw new NubError('UninitialisedDirectoryVa', 'the guest has not published its directory yet (directory_va is 0)');
    const rootField = mem.field(BootInfo, at, 'page_table_root');
    if (rootField % BigInt(PAGE_SIZE) !== 0n || rootField > BigInt(mem.size - PAGE_SIZE)) {
      throw new NubError('OutOfBounds', `page_table_root ${hex(rootField)} is not a 4 KiB-aligned table inside guest memory`, { details: { root: rootField } });
    }
    // The root must be known before anything is translated.
    const root = Number(rootField);
    const header = new DataView(this.copy(root, guestVa(directoryVa, 'directory_va'), DirectoryHeader.size).buffer);
    const layout = DirectoryHeader.get(header, 0, 'layout_id');
    if (layout !== DIRECTORY_LAYOUT_ID) throw unknownLayout('directory header layout id', layout, DIRECTORY_LAYOUT_ID);
    const capacity = DirectoryHeader.get(header, 0, 'capacity');
    const count = DirectoryHeader.get(header, 0, 'count');
    if (capacity === 0 || (capacity & (capacity - 1)) !== 0) throw badDirectory(`capacity ${capacity} is not a power of two`, { capacity });
    if (capacity * ENTRY_SIZE > this.mem.size) throw badDirectory(`${capacity} entries do not fit in guest memory`, { capacity });
    if (count > capacity) throw badDirectory(`count ${count} exceeds capacity ${capacity}`, { count, capacity });
    const entriesField = DirectoryHeader.get(header, 0, 'entries_va');
    if (entriesField === 0n) throw new NubError('NullPointer', 'the directory has no entries array (entries_va is 0)');
    const entriesVa = guestVa(entriesField, 'entries_va');
    if (entriesVa + capacity * ENTRY_SIZE > VA_LIMIT) throw badDirectory('the entries array runs past the end of the address space', { entriesVa, capacity });
    if (entriesVa % DirectoryEntry.align !== 0) throw new NubError('Misaligned', `entries_va ${hex(entriesVa)} is not ${DirectoryEntry.align}-byte aligned`);
    const pages = Math.ceil(((entriesVa % PAGE_SIZE) + capacity * ENTRY_SIZE) / PAGE_SIZE);
    return { root, capacity, count, entriesVa, entryPages: new Float64Array(pages).fill(-1) };
  }
}

function guestVa(va: bigint, field: string): number {
  const n = canonicalVa(va);
  if (n === null) throw new NubError('UnmappedAddress', `${field} ${hex(va)} is not a canonical address`, { details: { [field]: va } });
  return n;
}

function unknownLayout(what: string, got: number, want: number): NubError {
  return new NubError('UnknownLayout', `${what} is ${hex(got)}; this host reads ${hex(want)}`, { details: { got, want } });
}

function badDirectory(message: string, details: Record<string, unknown>): NubError {
  return new NubError('BadDirectory', message, { details });
}
