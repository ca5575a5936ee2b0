/**
 * Snapshots on disk, for loading in another process. Only the pages the guest can reach
 * are stored: its page-table pages and the pages its tables map (walkVaSpaces from
 * CR3), minus all-zero pages (a loaded snapshot starts from a zero-filled file). It is
 * lib/guest's, not lib/snapshot's, because what to keep follows the guest's paging.
 *
 * Layout, little-endian:
 *
 *   header      SnapshotHeader (64 bytes)
 *   vcpu        VCPU_STATE_SIZE bytes (vcpu-codec.ts)
 *   page index  page_count × u32 page numbers, strictly increasing, < memory_size / 4096
 *   pages       page_count × 4096 bytes, in index order
 *
 * `checksum` is SHA-256 over the whole file with the checksum field zeroed. Every field
 * is checked on load; failures are NubError 'BadSnapshotFile' (structure),
 * 'BadSnapshotMagic', 'UnsupportedSnapshotVersion' or 'SnapshotChecksumMismatch'.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { defineStruct } from '../abi/struct.js';
import { NubError, fromSystemError } from '../errors.js';
import { GuestMemory } from './guest-memory.js';
import { walkVaSpaces } from './vmem.js';
import { maxMemorySize, MemoryFile } from '../native/index.js';
import { readOnlyWindow } from '../snapshot/immutable-mapping.js';
import { PAGE_SIZE } from '../snapshot/page-bitmap.js';
import { Snapshot, type VcpuState } from '../snapshot/snapshot.js';
import { decodeVcpuState, encodeVcpuState, VCPU_STATE_SIZE } from '../snapshot/vcpu-codec.js';

export const SNAPSHOT_MAGIC = 0x3150_414e_5342_554en; // "NUBSNAP1" read as a little-endian u64
export const SNAPSHOT_FORMAT_VERSION = 1;
const CHECKSUM_BYTES = 32;

const SnapshotHeader = defineStruct('nub_snapshot_header', 'start of a saved snapshot file', {
  magic: 'u64',
  version: 'u32',
  header_size: 'u32',
  memory_size: 'u64',
  page_count: 'u32',
  vcpu_size: 'u32',
  checksum: ['u8', CHECKSUM_BYTES],
});

const CR0_PG = 1n << 31n;
const CR3_ROOT_MASK = 0x000f_ffff_ffff_f000n;

function isZeroPage(mem: GuestMemory, page: number): boolean {
  const words = new Uint32Array(mem.buffer, page * PAGE_SIZE, PAGE_SIZE / 4);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  return true;
}

/** Page numbers worth storing, ascending: reachable through the guest's paging (or all, with paging off) and not zero. */
export function reachablePages(mem: GuestMemory, sregs: VcpuState['sregs']): number[] {
  const pageCount = mem.size / PAGE_SIZE;
  let reachable: (page: number) => boolean = () => true;
  if ((sregs.cr0 & CR0_PG) !== 0n) {
    const root = Number(sregs.cr3 & CR3_ROOT_MASK);
    const marked = new Uint8Array(pageCount);
    for (const space of walkVaSpaces(mem, [root], (table) => { marked[table / PAGE_SIZE] = 1; })) {
      for (const m of space.mappings) {
        if (m.type !== 'thisSpace') continue;
        const first = Math.floor(m.mapping.physBase / PAGE_SIZE);
        const end = Math.min(pageCount, Math.ceil((m.mapping.physBase + m.mapping.len) / PAGE_SIZE));
        marked.fill(1, Math.min(first, pageCount), end);
      }
    }
    reachable = (page) => marked[page] === 1;
  }
  const pages: number[] = [];
  for (let page = 0; page < pageCount; page++) if (reachable(page) && !isZeroPage(mem, page)) pages.push(page);
  return pages;
}

function checksum(file: Uint8Array): Uint8Array {
  const at = SnapshotHeader.offsets.checksum;
  const saved = file.slice(at, at + CHECKSUM_BYTES);
  file.fill(0, at, at + CHECKSUM_BYTES);
  const digest = createHash('sha256').update(file).digest();
  file.set(saved, at);
  return new Uint8Array(digest);
}

/** The file bytes of `snapshot`. */
export function encodeSnapshot(snapshot: Snapshot): Uint8Array {
  const memory = readOnlyWindow(snapshot.memory);
  const pages = reachablePages(new GuestMemory(memory.buffer as ArrayBuffer), snapshot.vcpu.sregs);
  const indexAt = SnapshotHeader.size + VCPU_STATE_SIZE;
  const dataAt = indexAt + pages.length * 4;
  const file = new Uint8Array(dataAt + pages.length * PAGE_SIZE);
  const view = new DataView(file.buffer);
  SnapshotHeader.set(view, 0, 'magic', SNAPSHOT_MAGIC);
  SnapshotHeader.set(view, 0, 'version', SNAPSHOT_FORMAT_VERSION);
  SnapshotHeader.set(view, 0, 'header_size', SnapshotHeader.size);
  SnapshotHeader.set(view, 0, 'memory_size', BigInt(snapshot.memorySize));
  SnapshotHeader.set(view, 0, 'page_count', pages.length);
  SnapshotHeader.set(view, 0, 'vcpu_size', VCPU_STATE_SIZE);
  file.set(encodeVcpuState(snapshot.vcpu), SnapshotHeader.size);
  pages.forEach((page, i) => {
    view.setUint32(indexAt + i * 4, page, true);
    file.set(memory.subarray(page * PAGE_SIZE, (page + 1) * PAGE_SIZE), dataAt + i * PAGE_SIZE);
  });
  file.set(checksum(file), SnapshotHeader.offsets.checksum);
  return file;
}

function bad(message: string, path: string): NubError {
  return new NubError('BadSnapshotFile', message, { path });
}

/** Checks every field of a snapshot file and builds the Snapshot (its memory in a new sealed file). */
export function decodeSnapshot(file: Uint8Array): Snapshot {
  if (file.length < SnapshotHeader.size) throw bad(`${file.length} bytes is too short for a snapshot header`, 'header');
  const view = new DataView(file.buffer, file.byteOffset, file.length);
  if (SnapshotHeader.get(view, 0, 'magic') !== SNAPSHOT_MAGIC) throw new NubError('BadSnapshotMagic', 'not a nub snapshot file', { path: 'header.magic' });
  const version = SnapshotHeader.get(view, 0, 'version');
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    throw new NubError('UnsupportedSnapshotVersion', `snapshot format ${version}; this nub reads ${SNAPSHOT_FORMAT_VERSION}`, { path: 'header.version' });
  }
  const expected = file.slice(SnapshotHeader.offsets.checksum, SnapshotHeader.offsets.checksum + CHECKSUM_BYTES);
  const actual = checksum(file.slice());
  if (!expected.every((b, i) => b === actual[i])) throw new NubError('SnapshotChecksumMismatch', 'the snapshot file is corrupt (checksum mismatch)', { path: 'header.checksum' });

  if (SnapshotHeader.get(view, 0, 'header_size') !== SnapshotHeader.size) throw bad('unexpected header size', 'header.header_size');
  const memorySize = SnapshotHeader.get(view, 0, 'memory_size');
  if (memorySize === 0n || memorySize % BigInt(PAGE_SIZE) !== 0n || memorySize > BigInt(maxMemorySize())) {
    throw bad(`memory size ${memorySize} is not a positive multiple of ${PAGE_SIZE} up to ${maxMemorySize()}`, 'header.memory_size');
  }
  if (SnapshotHeader.get(view, 0, 'vcpu_size') !== VCPU_STATE_SIZE) throw bad(`the vCPU state must be ${VCPU_STATE_SIZE} bytes`, 'header.vcpu_size');
  const pageCount = SnapshotHeader.get(view, 0, 'page_count');
  const memoryPages = Number(memorySize) / PAGE_SIZE;
  const indexAt = SnapshotHeader.size + VCPU_STATE_SIZE;
  const dataAt = indexAt + pageCount * 4;
  if (pageCount > memoryPages || file.length !== dataAt + pageCount * PAGE_SIZE) {
    throw bad(`${pageCount} pages do not fit ${file.length} bytes and ${memoryPages} pages of memory`, 'header.page_count');
  }
  const vcpu = decodeVcpuState(file.subarray(SnapshotHeader.size, indexAt));

  const base = MemoryFile.create(Number(memorySize));
  try {
    let previous = -1;
    for (let i = 0; i < pageCount; i++) {
      const page = view.getUint32(indexAt + i * 4, true);
      if (page <= previous || page >= memoryPages) throw bad(`page ${page} is out of order or outside memory`, `pages[${i}]`);
      previous = page;
      base.write(page * PAGE_SIZE, file.subarray(dataAt + i * PAGE_SIZE, dataAt + (i + 1) * PAGE_SIZE));
    }
    base.seal();
    return Snapshot.fromBase(base, vcpu);
  } catch (err) {
    base.close();
    throw err;
  }
}

export function saveSnapshot(snapshot: Snapshot, path: string): void {
  const bytes = encodeSnapshot(snapshot);
  try {
    writeFileSync(path, bytes);
  } catch (err) {
    throw fromSystemError(err, `cannot write the snapshot to ${path}`);
  }
}

export function loadSnapshot(path: string): Snapshot {
  let file: Uint8Array;
  try {
    file = new Uint8Array(readFileSync(path));
  } catch (cause) {
    throw new NubError('SnapshotUnreadable', `cannot read snapshot file ${path}`, { path, cause });
  }
  return decodeSnapshot(file);
}
