/**
 * The PVM2 address space of one invocation: the code (readable) at CODE_BASE and
 * the mappings (pinned read-only, initial writable); every other address faults.
 * Addresses are mod 2^32 and accesses may be misaligned, including across two
 * adjacent regions.
 */
import { NubError } from '../errors.js';
import { ADDRESS_SPACE, CODE_BASE, DATA_BASE, PAGE_SIZE } from './abi.js';

export interface Region {
  readonly start: number;
  /** Bytes; a whole number of pages. */
  readonly size: number;
  readonly writable: boolean;
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

/** What a mapping shows the machine: `size` bytes at `start`, the first of them from `content`, zeros beyond. */
export interface MappingSpec {
  start: number;
  size: number;
  writable: boolean;
  content: Uint8Array;
}

const roundUpToPage = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

function region(start: number, size: number, writable: boolean, content: Uint8Array): Region {
  const bytes = new Uint8Array(size);
  bytes.set(content.length > size ? content.subarray(0, size) : content);
  return { start, size, writable, bytes, view: new DataView(bytes.buffer) };
}

/** Checks one mapping against the layout rules, naming it by index in errors. */
function checkMapping(m: Pick<MappingSpec, 'start' | 'size'>, index: number): void {
  const where = `memory_mappings[${index}]`;
  if (!Number.isSafeInteger(m.start) || !Number.isSafeInteger(m.size) || m.start % PAGE_SIZE !== 0 || m.size % PAGE_SIZE !== 0) {
    throw new NubError('Machine.MappingNotPageAligned', `mapping at ${m.start} of ${m.size} bytes is not whole pages`, { path: where });
  }
  if (m.start < DATA_BASE || m.start + m.size > ADDRESS_SPACE) {
    throw new NubError('Machine.MappingOutOfRange', `mapping [0x${m.start.toString(16)}, +0x${m.size.toString(16)}) is outside [DATA_BASE, 2^32)`, { path: where });
  }
}

/**
 * The layout rules for a set of mappings (whole pages, inside [DATA_BASE, 2^32), no
 * overlap), without allocating them; `Memory` applies them, and the Sandbox checks an
 * image's mappings with them at load, so both engines refuse alike.
 */
export function checkMappings(mappings: readonly Pick<MappingSpec, 'start' | 'size'>[]): void {
  mappings.forEach(checkMapping);
  const sorted = mappings.map((m, index) => ({ m, index })).filter(({ m }) => m.size > 0).sort((x, y) => x.m.start - y.m.start);
  sorted.forEach(({ m, index }, i) => {
    const prev = i > 0 ? sorted[i - 1]!.m : undefined;
    if (prev && prev.start + prev.size > m.start) {
      throw new NubError('Machine.MappingsOverlap', `mapping at 0x${m.start.toString(16)} overlaps the one at 0x${prev.start.toString(16)}`, { path: `memory_mappings[${index}]` });
    }
  });
}

/** The code's region by program: it is read-only, so every run of a program shares one. */
const codeRegions = new WeakMap<object, Region>();

export class Memory {
  readonly regions: Region[];
  /** Where the last read's value is: the offset into the DataView `read` returned. */
  offset = 0;
  /** The address reported by the last failed access. */
  faultAddress = 0;
  private last: Region;
  private readonly scratch = new Uint8Array(8);
  private readonly scratchView = new DataView(this.scratch.buffer);

  /** `program` is the pre-decoded program (lib/machine/program.ts), or anything else holding the code. */
  constructor(program: { readonly code: Uint8Array }, mappings: readonly MappingSpec[]) {
    const { code } = program;
    checkMappings(mappings);
    const regions: Region[] = [];
    if (code.length > 0) {
      let codeRegion = codeRegions.get(program);
      if (codeRegion === undefined) codeRegions.set(program, (codeRegion = region(CODE_BASE, roundUpToPage(code.length), false, code)));
      regions.push(codeRegion);
    }
    for (const m of [...mappings].sort((x, y) => x.start - y.start)) {
      if (m.size > 0) regions.push(region(m.start, m.size, m.writable, m.content));
    }
    this.regions = regions;
    this.last = regions[0] ?? region(0, 0, false, new Uint8Array(0));
  }

  /** The region holding all of `[addr, addr + n)`, or null. */
  private find(addr: number, n: number): Region | null {
    const last = this.last;
    if (((addr - last.start) >>> 0) + n <= last.size) return last;
    for (const r of this.regions) {
      if (((addr - r.start) >>> 0) + n <= r.size) {
        this.last = r;
        return r;
      }
    }
    return null;
  }

  /** The region holding the byte at `addr`, if it allows the access. */
  private byteRegion(addr: number, write: boolean): Region | null {
    const r = this.find(addr, 1);
    return r !== null && (r.writable || !write) ? r : null;
  }

  /**
   * Checks every byte of an access that does not fit one region; on failure sets
   * `faultAddress` to the lowest inaccessible address (mod 2^32).
   */
  private checkBytes(addr: number, n: number, write: boolean): boolean {
    let lowest = -1;
    for (let i = 0; i < n; i++) {
      const a = (addr + i) >>> 0;
      if (this.byteRegion(a, write) === null && (lowest < 0 || a < lowest)) lowest = a;
    }
    if (lowest < 0) return true;
    this.faultAddress = lowest;
    return false;
  }

  /**
   * Makes `n` (1..8) bytes at `addr` readable as a DataView at `this.offset`;
   * null (with `faultAddress` set) when any byte is not readable.
   */
  read(addr: number, n: number): DataView | null {
    const r = this.find(addr, n);
    if (r !== null) {
      this.offset = addr - r.start;
      return r.view;
    }
    if (!this.checkBytes(addr, n, false)) return null;
    for (let i = 0; i < n; i++) {
      const a = (addr + i) >>> 0;
      const br = this.byteRegion(a, false)!;
      this.scratch[i] = br.bytes[a - br.start];
    }
    this.offset = 0;
    return this.scratchView;
  }

  /**
   * Stores the low `n` (1, 2, 4 or 8) bytes of the 64-bit value `lo | hi << 32` at
   * `addr`. False (nothing written, `faultAddress` set) when any byte is not writable.
   */
  write(addr: number, n: number, lo: number, hi: number): boolean {
    const r = this.find(addr, n);
    let view: DataView;
    let offset: number;
    if (r !== null && r.writable) {
      view = r.view;
      offset = addr - r.start;
    } else {
      if (!this.checkBytes(addr, n, true)) return false;
      view = this.scratchView;
      offset = 0;
    }
    switch (n) {
      case 1: view.setUint8(offset, lo & 0xff); break;
      case 2: view.setUint16(offset, lo & 0xffff, true); break;
      case 4: view.setInt32(offset, lo, true); break;
      default: view.setInt32(offset, lo, true); view.setInt32(offset + 4, hi, true); break;
    }
    if (view === this.scratchView) {
      for (let i = 0; i < n; i++) {
        const a = (addr + i) >>> 0;
        const br = this.byteRegion(a, true)!;
        br.bytes[a - br.start] = this.scratch[i];
      }
    }
    return true;
  }

  /**
   * Whether every byte of `[addr, addr + length)` (not wrapping: the kernel operations
   * refuse ranges past 2^32 first) is readable, or writable with `write`.
   */
  rangeAccessible(addr: number, length: number, write: boolean): boolean {
    for (let at = addr, end = addr + length; at < end;) {
      const r = this.find(at, 1);
      if (r === null || (write && !r.writable)) return false;
      at = r.start + r.size;
    }
    return true;
  }

  /** The bytes of an accessible range (rangeAccessible), region by region. */
  readRange(addr: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let at = addr, end = addr + length; at < end;) {
      const r = this.find(at, 1)!;
      const n = Math.min(end, r.start + r.size) - at;
      out.set(r.bytes.subarray(at - r.start, at - r.start + n), at - addr);
      at += n;
    }
    return out;
  }

  /** Writes a writable range (rangeAccessible), region by region. */
  writeRange(addr: number, bytes: Uint8Array): void {
    for (let at = addr, end = addr + bytes.length; at < end;) {
      const r = this.find(at, 1)!;
      const n = Math.min(end, r.start + r.size) - at;
      r.bytes.set(bytes.subarray(at - addr, at - addr + n), at - r.start);
      at += n;
    }
  }

  /** A copy of `length` bytes at `addr`, or undefined when any is not readable (for host functions). */
  readBytes(addr: number, length: number): Uint8Array | undefined {
    if (!this.checkBytes(addr, length, false)) return undefined;
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const a = (addr + i) >>> 0;
      const br = this.byteRegion(a, false)!;
      out[i] = br.bytes[a - br.start];
    }
    return out;
  }

  /** Writes `bytes` at `addr` when all of them are writable (for host functions); false otherwise, writing nothing. */
  writeBytes(addr: number, bytes: Uint8Array): boolean {
    if (!this.checkBytes(addr, bytes.length, true)) return false;
    for (let i = 0; i < bytes.length; i++) {
      const a = (addr + i) >>> 0;
      const br = this.byteRegion(a, true)!;
      br.bytes[a - br.start] = bytes[i];
    }
    return true;
  }
}
