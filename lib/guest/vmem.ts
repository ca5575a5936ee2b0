/**
 * amd64 4-level paging (PML4 -> PDPT -> PD -> PT) over guest-physical memory.
 *
 * The host uses it to build the guest's initial page tables, and to translate the
 * guest-virtual addresses the guest publishes (directory, entries, stored bytes)
 * through the guest's live tables. Tables the guest wrote are untrusted: every table
 * access is bounds-checked by GuestMemory, and no walk can loop (the depth is fixed
 * at four, and the multi-space walker scans each (table, depth) pair at most once).
 *
 * Virtual addresses are JS numbers in [0, 2^48): the low 48 bits of the address.
 * A canonical upper-half address is therefore written without its sign extension
 * (0xffff_8000_0000_0000 is 0x8000_0000_0000 here). Entries are read and written as
 * two u32 halves so no bigint appears on the hot path.
 */
import { Layout } from '../abi/guest-abi.js';
import { NubError } from '../errors.js';
import { GuestMemory, hex } from './guest-memory.js';

export type MappingKind =
  | { type: 'unmapped' }
  | { type: 'basic'; readable: boolean; writable: boolean; executable: boolean }
  | { type: 'cow'; readable: boolean; executable: boolean };

export interface Mapping {
  physBase: number;
  virtBase: number;
  len: number;
  kind: MappingKind;
  /** Whether ring 3 may use the mapping (the U/S bit), with the same permissions as the kernel. */
  userAccessible: boolean;
}

/** Where `map` writes: guest memory plus an allocator of zeroed 4 KiB tables. */
export interface TableOps {
  mem: GuestMemory;
  /** Guest-physical address of a fresh, zeroed, 4 KiB-aligned table. */
  allocTable(): number;
}

export interface Translation {
  pa: number;
  kind: MappingKind;
  userAccessible: boolean;
}

/** A leaf mapping in this space, or a link to a table first seen through another root. */
export type SpaceAwareMapping =
  | { type: 'thisSpace'; mapping: Mapping }
  | {
      type: 'anotherSpace';
      /** Depth below the root of the shared table: 1 = PDPT, 2 = PD, 3 = PT. */
      depth: 1 | 2 | 3;
      /** The root (page-table root GPA) that saw the table first. */
      space: number;
      /** First VA the shared table covers in our space, and in the owning space. */
      ourVa: number;
      theirVa: number;
    };

export interface WalkedSpace {
  root: number;
  mappings: SpaceAwareMapping[];
}

export interface MapOptions {
  /**
   * Largest page `map` may use where the range and the physical address are aligned
   * to it: 4 KiB, 2 MiB (default; every x86-64 CPU has it) or 1 GiB (needs the
   * guest CPUID to advertise pdpe1gb).
   */
  maxPageSize?: number;
}

export const PAGE_SIZE: number = Layout.values.PAGE_SIZE;
export const PAGE_2M = 0x20_0000;
export const PAGE_1G = 0x4000_0000;
/** Bytes of virtual address space the four levels cover. */
export const VA_LIMIT = 2 ** 48;

const ENTRIES_PER_TABLE = 512;
const ENTRY_SIZE = 8;
/** Bit position of the VA bits that index each level, root first. */
const LEVEL_SHIFT = [39, 30, 21, 12] as const;
const LEVEL_SPAN = LEVEL_SHIFT.map((s) => 2 ** s);
const LEAF_DEPTH = 3;
const TWO_POW_32 = 0x1_0000_0000;
const MAX_PA = 2 ** 52;

// Low-word entry bits.
const PRESENT = 1 << 0;
const WRITABLE = 1 << 1;
const USER = 1 << 2;
/**
 * Accessed and dirty, preset on every entry the host writes: a guest's first touch of
 * a page whose entry lacks them costs a shadow-paging fault (19-38 µs on kvm_pvm).
 */
const ACCESSED = 1 << 5;
const DIRTY = 1 << 6;
/** Page size: a PDPT or PD entry that maps 1 GiB / 2 MiB directly. Reserved in a PML4 entry. */
const HUGE = 1 << 7;
/** Software-available bit 9 marks a read-only page the kernel copies on write. */
const COW = 1 << 9;
const FLAG_BITS = 0xfff;
const ADDR_LO_MASK = 0xffff_f000;
// High-word entry bits.
const ADDR_HI_MASK = 0x000f_ffff;
const NO_EXECUTE_HI = 0x8000_0000;
/** Intermediate entries are permissive; the leaf decides what is allowed. */
const TABLE_LINK = PRESENT | WRITABLE | USER | ACCESSED;

/** One page-table entry split into its two u32 halves. */
interface Entry {
  lo: number;
  hi: number;
}

function readEntry(mem: GuestMemory, gpa: number): Entry {
  mem.check(gpa, ENTRY_SIZE);
  return { lo: mem.view.getUint32(gpa, true), hi: mem.view.getUint32(gpa + 4, true) };
}

function writeEntry(mem: GuestMemory, gpa: number, lo: number, hi: number): void {
  mem.check(gpa, ENTRY_SIZE);
  mem.view.setUint32(gpa, lo >>> 0, true);
  mem.view.setUint32(gpa + 4, hi >>> 0, true);
}

function entryAddr(e: Entry): number {
  return ((e.lo & ADDR_LO_MASK) >>> 0) + (e.hi & ADDR_HI_MASK) * TWO_POW_32;
}

/** Points the entry at `gpa` to the table at `table`. */
function writeLink(mem: GuestMemory, gpa: number, table: number): void {
  writeEntry(mem, gpa, (table % TWO_POW_32) | TABLE_LINK, Math.floor(table / TWO_POW_32));
}

function entryGpa(table: number, va: number, depth: number): number {
  return table + (Math.floor(va / LEVEL_SPAN[depth]!) % ENTRIES_PER_TABLE) * ENTRY_SIZE;
}

/** True when the entry maps memory directly instead of pointing at a lower table. */
function isLeaf(e: Entry, depth: number): boolean {
  return depth === LEAF_DEPTH || (e.lo & HUGE) !== 0;
}

/** A PML4 entry with the page-size bit set is reserved: the CPU faults on it, so we treat it as absent. */
function isPresent(e: Entry, depth: number): boolean {
  return (e.lo & PRESENT) !== 0 && !(depth === 0 && (e.lo & HUGE) !== 0);
}

function leafKind(lo: number, writable: boolean, executable: boolean): MappingKind {
  if ((lo & COW) !== 0 && !writable) return { type: 'cow', readable: true, executable };
  return { type: 'basic', readable: true, writable, executable };
}

/** The kind as a small integer, so two kinds compare with ===. */
function kindBits(k: MappingKind): number {
  switch (k.type) {
    case 'unmapped': return 0;
    case 'basic': return 1 | (k.readable ? 4 : 0) | (k.writable ? 8 : 0) | (k.executable ? 16 : 0);
    case 'cow': return 2 | (k.readable ? 4 : 0) | (k.executable ? 16 : 0);
  }
}

/** The flag words of a leaf for `kind` (null for 'unmapped'). */
function leafFlags(kind: MappingKind, userAccessible: boolean): Entry | null {
  switch (kind.type) {
    case 'unmapped':
      return null;
    case 'basic':
      if (!kind.readable) throw unreadable();
      return { lo: PRESENT | ACCESSED | (kind.writable ? WRITABLE | DIRTY : 0) | (userAccessible ? USER : 0), hi: kind.executable ? 0 : NO_EXECUTE_HI };
    case 'cow':
      if (!kind.readable) throw unreadable();
      return { lo: PRESENT | ACCESSED | COW | (userAccessible ? USER : 0), hi: kind.executable ? 0 : NO_EXECUTE_HI };
  }
}

function unreadable(): NubError {
  return new NubError('UnsupportedMapping', 'amd64 paging cannot express a present page that is not readable; map it as unmapped instead');
}

function checkTable(mem: GuestMemory, table: number): void {
  if (table % PAGE_SIZE !== 0) throw new NubError('Misaligned', `page table at ${hex(table)} is not 4 KiB aligned`);
  mem.check(table, PAGE_SIZE);
}

/**
 * The table the entry at `gpa` (in a table at `depth`) points to, creating it when
 * the entry is empty and splitting a huge page into an equivalent table of smaller
 * ones, so a caller can change part of a huge page or link below it.
 */
function childTable(ops: TableOps, gpa: number, depth: number): number {
  const e = readEntry(ops.mem, gpa);
  if (isPresent(e, depth) && !isLeaf(e, depth)) return entryAddr(e);
  const child = ops.allocTable();
  checkTable(ops.mem, child);
  if (isPresent(e, depth)) {
    // A huge leaf: fill the new table with the same mapping in pieces one level smaller.
    const span = LEVEL_SPAN[depth + 1]!;
    const base = entryAddr(e) - (entryAddr(e) % LEVEL_SPAN[depth]!); // drops the huge-page PAT bit (12)
    const flags = (e.lo & FLAG_BITS & ~HUGE) | (depth + 1 === LEAF_DEPTH ? 0 : HUGE);
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      const pa = base + i * span;
      writeEntry(ops.mem, child + i * ENTRY_SIZE, ((pa % TWO_POW_32) | flags) >>> 0, Math.floor(pa / TWO_POW_32) | (e.hi & NO_EXECUTE_HI));
    }
  }
  writeLink(ops.mem, gpa, child);
  return child;
}

/**
 * Maps [virtBase, virtBase + len) to [physBase, ...) in the tree at `root` (kind
 * 'unmapped' clears it). Ranges need not be page-aligned: every page the range
 * touches is mapped, so virtBase and physBase must share their offset in the page.
 * Ranges are split across table boundaries as needed; huge pages are used where the
 * range covers a whole aligned block (up to `options.maxPageSize`). Existing tables
 * are written through, never replaced, so a table shared with another root stays shared.
 */
export function map(ops: TableOps, root: number, mapping: Mapping, options: MapOptions = {}): void {
  const { virtBase, physBase, len, kind, userAccessible } = mapping;
  const maxPageSize = options.maxPageSize ?? PAGE_2M;
  if (maxPageSize !== PAGE_SIZE && maxPageSize !== PAGE_2M && maxPageSize !== PAGE_1G) {
    throw new NubError('BadArgument', `maxPageSize must be 4 KiB, 2 MiB or 1 GiB, not ${hex(maxPageSize)}`);
  }
  if (!Number.isSafeInteger(len) || len < 0 || !Number.isSafeInteger(virtBase) || virtBase < 0 || virtBase + len > VA_LIMIT) {
    throw new NubError('BadAddress', `virtual range [${hex(virtBase)}, +${hex(len)}) is outside the 48-bit address space`);
  }
  const flags = leafFlags(kind, userAccessible);
  if (flags && (!Number.isSafeInteger(physBase) || physBase < 0 || physBase + len > MAX_PA)) {
    throw new NubError('BadAddress', `physical range [${hex(physBase)}, +${hex(len)}) is outside the 52-bit address space`);
  }
  if (flags && virtBase % PAGE_SIZE !== physBase % PAGE_SIZE) {
    throw new NubError('Misaligned', `virtual ${hex(virtBase)} and physical ${hex(physBase)} sit at different offsets in their pages`);
  }
  checkTable(ops.mem, root);
  if (len === 0) return;
  const start = virtBase - (virtBase % PAGE_SIZE);
  const end = Math.ceil((virtBase + len) / PAGE_SIZE) * PAGE_SIZE;
  mapRange(ops, root, 0, start, end, { flags, delta: physBase - virtBase, maxPageSize });
}

interface LeafPlan {
  /** Leaf flag words, or null to clear. */
  flags: Entry | null;
  /** pa = va + delta. */
  delta: number;
  maxPageSize: number;
}

function mapRange(ops: TableOps, table: number, depth: number, start: number, end: number, plan: LeafPlan): void {
  const span = LEVEL_SPAN[depth]!;
  for (let va = start; va < end; ) {
    const blockStart = va - (va % span);
    const segEnd = Math.min(end, blockStart + span);
    const gpa = entryGpa(table, va, depth);
    const e = readEntry(ops.mem, gpa);
    const present = isPresent(e, depth);
    const wholeBlock = va === blockStart && segEnd === blockStart + span;
    if (depth === LEAF_DEPTH || (wholeBlock && (!present || isLeaf(e, depth)) && canBeLeaf(depth, va, plan))) {
      writeLeaf(ops.mem, gpa, va, depth, plan);
    } else if (present || plan.flags) {
      // Clearing needs no table where nothing is mapped; anything else goes one level down.
      mapRange(ops, childTable(ops, gpa, depth), depth + 1, va, segEnd, plan);
    }
    va = segEnd;
  }
}

/** Whether a whole block at `depth` can be one leaf: clearing always can; a huge page needs size and alignment. */
function canBeLeaf(depth: number, va: number, plan: LeafPlan): boolean {
  if (!plan.flags) return true;
  const span = LEVEL_SPAN[depth]!;
  return depth > 0 && span <= plan.maxPageSize && (va + plan.delta) % span === 0;
}

function writeLeaf(mem: GuestMemory, gpa: number, va: number, depth: number, plan: LeafPlan): void {
  if (!plan.flags) {
    writeEntry(mem, gpa, 0, 0);
    return;
  }
  const pa = va + plan.delta;
  const huge = depth === LEAF_DEPTH ? 0 : HUGE;
  writeEntry(mem, gpa, ((pa % TWO_POW_32) | plan.flags.lo | huge) >>> 0, Math.floor(pa / TWO_POW_32) | plan.flags.hi);
}

/**
 * Remembers translations per 4 KiB page for one root. Valid only while the tables
 * are unchanged: clear it whenever the guest may have run.
 */
export class PageWalkCache {
  private root = -1;
  private readonly pages = new Map<number, Translation | null>();

  /** The cached translation of the page holding `va` in `root`'s tree; undefined when not cached. */
  lookup(root: number, va: number): Translation | null | undefined {
    if (root !== this.root) return undefined;
    return this.pages.get(Math.floor(va / PAGE_SIZE));
  }

  store(root: number, va: number, page: Translation | null): void {
    if (root !== this.root) {
      this.pages.clear();
      this.root = root;
    }
    this.pages.set(Math.floor(va / PAGE_SIZE), page);
  }

  clear(): void {
    this.pages.clear();
  }
}

/**
 * Translates `va` through the tree at `root` as the CPU would (permissions are the
 * combination of every level), or returns null when it is not mapped. Table
 * addresses outside guest memory throw NubError 'OutOfBounds'; the returned `pa`
 * itself is not checked (the caller knows how many bytes it needs there).
 */
export function virtToPhys(mem: GuestMemory, root: number, va: number, cache?: PageWalkCache): Translation | null {
  if (!Number.isSafeInteger(va) || va < 0 || va >= VA_LIMIT) return null;
  const offset = va % PAGE_SIZE;
  let page = cache?.lookup(root, va);
  if (page === undefined) {
    page = walkPage(mem, root, va - offset);
    cache?.store(root, va, page);
  }
  return page && { pa: page.pa + offset, kind: page.kind, userAccessible: page.userAccessible };
}

function walkPage(mem: GuestMemory, root: number, va: number): Translation | null {
  checkTable(mem, root);
  let table = root;
  let writable = true;
  let user = true;
  let executable = true;
  for (let depth = 0; ; depth++) {
    const e = readEntry(mem, entryGpa(table, va, depth));
    if (!isPresent(e, depth)) return null;
    writable &&= (e.lo & WRITABLE) !== 0;
    user &&= (e.lo & USER) !== 0;
    executable &&= (e.hi & NO_EXECUTE_HI) === 0;
    if (isLeaf(e, depth)) {
      const span = LEVEL_SPAN[depth]!;
      const base = entryAddr(e) - (entryAddr(e) % span);
      return { pa: base + (va % span), kind: leafKind(e.lo, writable, executable), userAccessible: user };
    }
    table = entryAddr(e);
  }
}

/**
 * Walks several roots in order of primacy and lists each one's mappings in VA order.
 * Adjacent leaves that continue each other (same kind, contiguous physical memory)
 * are merged, so the result does not depend on page sizes. An intermediate table
 * reached again (through a later root, or twice through one) is reported once as
 * an 'anotherSpace' link to where it was first seen instead of being walked again,
 * so shared kernel tables stay shared and no walk can revisit a table.
 * `visitTable` is given the address of every table the walk reads (roots included).
 */
export function walkVaSpaces(mem: GuestMemory, roots: number[], visitTable: (table: number) => void = () => {}): WalkedSpace[] {
  /** (table page, depth) -> where it was first seen. */
  const seen = new Map<number, { space: number; va: number }>();
  return roots.map((root) => {
    checkTable(mem, root);
    visitTable(root);
    const mappings: SpaceAwareMapping[] = [];
    walkTable(mem, { root, seen, mappings, visitTable }, root, 0, 0, { writable: true, user: true, executable: true });
    return { root, mappings };
  });
}

interface WalkState {
  root: number;
  seen: Map<number, { space: number; va: number }>;
  mappings: SpaceAwareMapping[];
  visitTable: (table: number) => void;
}

interface Inherited {
  writable: boolean;
  user: boolean;
  executable: boolean;
}

function walkTable(mem: GuestMemory, st: WalkState, table: number, depth: number, vaBase: number, up: Inherited): void {
  const span = LEVEL_SPAN[depth]!;
  for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
    const e = readEntry(mem, table + i * ENTRY_SIZE);
    if (!isPresent(e, depth)) continue;
    const va = vaBase + i * span;
    const perms = {
      writable: up.writable && (e.lo & WRITABLE) !== 0,
      user: up.user && (e.lo & USER) !== 0,
      executable: up.executable && (e.hi & NO_EXECUTE_HI) === 0,
    };
    const addr = entryAddr(e);
    if (isLeaf(e, depth)) {
      const mapping = { physBase: addr - (addr % span), virtBase: va, len: span, kind: leafKind(e.lo, perms.writable, perms.executable), userAccessible: perms.user };
      appendLeaf(st.mappings, mapping);
      continue;
    }
    const key = (addr / PAGE_SIZE) * 4 + depth + 1;
    const first = st.seen.get(key);
    if (first) {
      st.mappings.push({ type: 'anotherSpace', depth: (depth + 1) as 1 | 2 | 3, space: first.space, ourVa: va, theirVa: first.va });
      continue;
    }
    st.seen.set(key, { space: st.root, va });
    checkTable(mem, addr);
    st.visitTable(addr);
    walkTable(mem, st, addr, depth + 1, va, perms);
  }
}

function appendLeaf(out: SpaceAwareMapping[], m: Mapping): void {
  const last = out[out.length - 1];
  if (last?.type === 'thisSpace') {
    const p = last.mapping;
    if (p.virtBase + p.len === m.virtBase && p.physBase + p.len === m.physBase && p.userAccessible === m.userAccessible && kindBits(p.kind) === kindBits(m.kind)) {
      p.len += m.len;
      return;
    }
  }
  out.push({ type: 'thisSpace', mapping: m });
}

/**
 * Replays one entry of a walk into the tree at `root`. A 'thisSpace' mapping is
 * mapped; an 'anotherSpace' link makes our entry point at the table the owning
 * space's rebuilt tree has at `theirVa` (`builtRoots`: old root -> rebuilt root;
 * it must already hold the owner, which the walk order guarantees when roots are
 * rebuilt in order, and the space being rebuilt itself for links within one space).
 */
export function spaceAwareMap(ops: TableOps, root: number, m: SpaceAwareMapping, builtRoots: Map<number, number>, options: MapOptions = {}): void {
  if (m.type === 'thisSpace') {
    map(ops, root, m.mapping, options);
    return;
  }
  const theirRoot = builtRoots.get(m.space);
  if (theirRoot === undefined) {
    throw new NubError('BadSpaceReference', `link to space ${hex(m.space)}, which has not been rebuilt yet`);
  }
  for (const va of [m.ourVa, m.theirVa]) {
    if (!Number.isSafeInteger(va) || va < 0 || va >= VA_LIMIT || va % LEVEL_SPAN[m.depth - 1]! !== 0) {
      throw new NubError('BadSpaceReference', `${hex(va)} is not the start of a depth-${m.depth} table's range`);
    }
  }
  checkTable(ops.mem, root);
  checkTable(ops.mem, theirRoot);
  const shared = tableAt(ops, theirRoot, m.theirVa, m.depth);
  const parent = tableAt(ops, root, m.ourVa, m.depth - 1);
  writeLink(ops.mem, entryGpa(parent, m.ourVa, m.depth - 1), shared);
}

/** The table at `depth` covering `va`, creating (or splitting into) tables on the way. */
function tableAt(ops: TableOps, root: number, va: number, depth: number): number {
  let table = root;
  for (let d = 0; d < depth; d++) table = childTable(ops, entryGpa(table, va, d), d);
  return table;
}

/** Rebuilds every space of a walk into fresh tables, in walk order; returns old root -> new root. */
export function rebuildVaSpaces(ops: TableOps, spaces: WalkedSpace[], options: MapOptions = {}): Map<number, number> {
  const built = new Map<number, number>();
  for (const { root, mappings } of spaces) {
    const fresh = ops.allocTable();
    built.set(root, fresh);
    for (const m of mappings) spaceAwareMap(ops, fresh, m, built, options);
  }
  return built;
}

/** Hands out zeroed tables from [startGpa, endGpa); NubError 'PageTablesFull' when it runs out. */
export class BumpTableAllocator implements TableOps {
  readonly mem: GuestMemory;
  readonly startGpa: number;
  readonly endGpa: number;
  private next: number;

  constructor(mem: GuestMemory, startGpa: number, endGpa: number) {
    if (startGpa % PAGE_SIZE !== 0 || endGpa % PAGE_SIZE !== 0 || endGpa < startGpa) {
      throw new NubError('Misaligned', `page-table region [${hex(startGpa)}, ${hex(endGpa)}) must be 4 KiB aligned`);
    }
    mem.check(startGpa, endGpa - startGpa);
    this.mem = mem;
    this.startGpa = startGpa;
    this.endGpa = endGpa;
    this.next = startGpa;
  }

  /** Bytes handed out so far. */
  get used(): number {
    return this.next - this.startGpa;
  }

  allocTable(): number {
    if (this.next + PAGE_SIZE > this.endGpa) {
      throw new NubError('PageTablesFull', `no room for another page table in [${hex(this.startGpa)}, ${hex(this.endGpa)})`);
    }
    const table = this.next;
    this.next += PAGE_SIZE;
    this.mem.fill(table, PAGE_SIZE);
    return table;
  }
}

/**
 * A u64 virtual address as this module's 48-bit number, or null when it is not
 * canonical (bits 63..48 must all equal bit 47, or the CPU faults on it).
 */
export function canonicalVa(va: bigint): number | null {
  const high = va >> 47n;
  if (high !== 0n && high !== 0x1_ffffn) return null;
  return Number(va & 0xffff_ffff_ffffn);
}

/**
 * Calls `fn` for each page-sized piece of [va, va + len) with the piece's GPA (checked
 * to lie in guest memory) and its offset in the range. Throws NubError
 * 'UnmappedAddress' at the first page that is not mapped.
 */
function forEachPiece(mem: GuestMemory, root: number, va: number, len: number, cache: PageWalkCache | undefined, fn: (gpa: number, offset: number, n: number) => void): void {
  // No range larger than guest memory can be backed by it without aliasing; refusing it bounds the work.
  if (!Number.isSafeInteger(len) || len < 0 || len > mem.size) {
    throw new NubError('OutOfBounds', `virtual range of ${hex(len)} bytes is larger than guest memory`, { details: { va, len } });
  }
  for (let offset = 0; offset < len; ) {
    const at = va + offset;
    const t = virtToPhys(mem, root, at, cache);
    if (!t) throw new NubError('UnmappedAddress', `guest virtual address ${hex(at)} is not mapped`, { details: { va: at, root } });
    const n = Math.min(len - offset, PAGE_SIZE - (at % PAGE_SIZE));
    mem.check(t.pa, n);
    fn(t.pa, offset, n);
    offset += n;
  }
}

/** A copy of `len` bytes at guest-virtual `va`, gathered page by page through the tables at `root`. */
export function readVirtual(mem: GuestMemory, root: number, va: number, len: number, cache?: PageWalkCache): Uint8Array {
  const out = new Uint8Array(len);
  forEachPiece(mem, root, va, len, cache, (gpa, offset, n) => out.set(mem.u8s.subarray(gpa, gpa + n), offset));
  return out;
}

/** Writes `bytes` at guest-virtual `va`, scattered page by page through the tables at `root` (ignoring permissions: the host is privileged). */
export function writeVirtual(mem: GuestMemory, root: number, va: number, bytes: Uint8Array, cache?: PageWalkCache): void {
  forEachPiece(mem, root, va, bytes.length, cache, (gpa, offset, n) => mem.u8s.set(bytes.subarray(offset, offset + n), gpa));
}
