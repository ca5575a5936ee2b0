// lib/snapshot without KVM: page bitmaps, the vCPU state codec, ImmutableMapping of
// plain bytes, and the snapshot file format over synthetic guest memory (a sealed memory
// file from the addon; no VM needed).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { NubError } from '../../lib/errors.js';
import { GuestMemory } from '../../lib/guest/guest-memory.js';
import { BumpTableAllocator, map, type MappingKind } from '../../lib/guest/vmem.js';
import { MemoryFile, type Fpu, type Regs, type Segment, type Sregs } from '../../lib/native/index.js';
import { ImmutableMapping } from '../../lib/snapshot/immutable-mapping.js';
import { copyPages, countPages, forEachRun, hasPage, setPage, withoutPages } from '../../lib/snapshot/page-bitmap.js';
import { decodeSnapshot, encodeSnapshot, SNAPSHOT_FORMAT_VERSION } from '../../lib/guest/snapshot-file.js';
import { Snapshot, type VcpuState } from '../../lib/snapshot/snapshot.js';
import { decodeVcpuState, encodeVcpuState, VCPU_STATE_SIZE } from '../../lib/snapshot/vcpu-codec.js';
import { SeededRandom } from './seeded-random.js';
import { expectNubError } from '../support/nub-error.js';

const PAGE = 4096;


function randomBitmap(rng: SeededRandom, bytes: number): Uint8Array {
  // Mostly empty, with runs: the shapes dirty logs have.
  const bitmap = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) bitmap[i] = rng.below(3) === 0 ? rng.below(256) : rng.bool() ? 0xff : 0;
  return bitmap;
}

const pagesOf = (bitmap: Uint8Array): number[] => [...Array(bitmap.length * 8).keys()].filter((p) => (bitmap[p >> 3]! >> (p & 7)) & 1);

function randomSegment(rng: SeededRandom): Segment {
  const bit = () => rng.below(2);
  return {
    base: BigInt(rng.below(2 ** 31)) << 16n, limit: rng.below(2 ** 31), selector: rng.below(0x10000), type: rng.below(16),
    present: bit(), dpl: rng.below(4), db: bit(), s: bit(), l: bit(), g: bit(), avl: bit(), unusable: bit(),
  };
}

function randomVcpu(rng: SeededRandom, sregsExtra: Partial<Sregs> = {}): VcpuState {
  const u64 = () => (BigInt(rng.below(2 ** 32)) << 32n) | BigInt(rng.below(2 ** 32));
  const names = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'];
  const regs = Object.fromEntries(names.map((n) => [n, u64()])) as unknown as Regs;
  const sregs: Sregs = {
    cs: randomSegment(rng), ds: randomSegment(rng), es: randomSegment(rng), fs: randomSegment(rng),
    gs: randomSegment(rng), ss: randomSegment(rng), tr: randomSegment(rng), ldt: randomSegment(rng),
    gdt: { base: u64(), limit: rng.below(0x10000) }, idt: { base: u64(), limit: rng.below(0x10000) },
    cr0: u64(), cr2: u64(), cr3: u64(), cr4: u64(), cr8: u64(), efer: u64(), apicBase: u64(), ...sregsExtra,
  };
  const fpu: Fpu = {
    fpr: rng.bytes(128), fcw: rng.below(0x10000), fsw: rng.below(0x10000), ftwx: rng.below(256), lastOpcode: rng.below(0x10000),
    lastIp: u64(), lastDp: u64(), xmm: rng.bytes(256), mxcsr: rng.below(2 ** 32),
  };
  return { regs, sregs, fpu };
}

/** Guest memory whose tables (at page 1) map only [MAPPED_FROM, MAPPED_TO) linearly. */
const MEMORY = 64 * PAGE;
const MAPPED_FROM = 16 * PAGE;
const MAPPED_TO = 32 * PAGE;
function syntheticGuest(): { bytes: Uint8Array; root: number } {
  const mem = new GuestMemory(new ArrayBuffer(MEMORY));
  const ops = new BumpTableAllocator(mem, PAGE, 8 * PAGE);
  const root = ops.allocTable();
  const rw: MappingKind = { type: 'basic', readable: true, writable: true, executable: false };
  map(ops, root, { physBase: MAPPED_FROM, virtBase: 0x4000_0000, len: MAPPED_TO - MAPPED_FROM, kind: rw, userAccessible: false });
  return { bytes: mem.u8s, root };
}

function sealedFile(bytes: Uint8Array): MemoryFile {
  const file = MemoryFile.create(bytes.length);
  file.write(0, bytes);
  file.seal();
  return file;
}

/** Rewrites the checksum the way docs/snapshots.md specifies it, so structural checks can be reached. */
function reseal(file: Uint8Array): Uint8Array {
  const at = 32; // header: magic u64, version u32, header_size u32, memory_size u64, page_count u32, vcpu_size u32
  file.fill(0, at, at + 32);
  file.set(createHash('sha256').update(file).digest(), at);
  return file;
}

describe('snapshot: page bitmaps', () => {
  it('runs, differences, counts and copies agree with a page-by-page reading', () => {
    const rng = new SeededRandom(6);
    for (let round = 0; round < 50; round++) {
      const a = randomBitmap(rng, 1 + rng.below(40));
      const b = randomBitmap(rng, a.length);
      const runs: number[] = [];
      forEachRun(a, (first, count) => {
        assert.ok(count > 0);
        for (let p = first; p < first + count; p++) runs.push(p);
        assert.ok(!hasPage(a, first + count) || first + count === a.length * 8, 'a run stops at a clear bit');
      });
      assert.deepEqual(runs, pagesOf(a));
      assert.equal(countPages(a), pagesOf(a).length);
      assert.deepEqual(pagesOf(withoutPages(a, b)), pagesOf(a).filter((p) => !pagesOf(b).includes(p)));

      const from = rng.bytes(a.length * 8 * PAGE);
      const to = new Uint8Array(from.length);
      copyPages(a, from, to);
      for (let p = 0; p < a.length * 8; p++) {
        const expected = hasPage(a, p) ? from.subarray(p * PAGE, (p + 1) * PAGE) : new Uint8Array(PAGE);
        assert.deepEqual(to.subarray(p * PAGE, (p + 1) * PAGE), expected, `page ${p}`);
      }
    }
    const one = new Uint8Array(2);
    setPage(one, 9);
    assert.deepEqual(pagesOf(one), [9]);
  });
});

describe('snapshot: vCPU state codec', () => {
  it('round-trips every field', () => {
    const rng = new SeededRandom(61);
    for (let i = 0; i < 20; i++) {
      const state = randomVcpu(rng);
      const bytes = encodeVcpuState(state);
      assert.equal(bytes.length, VCPU_STATE_SIZE);
      assert.deepEqual(decodeVcpuState(bytes), state);
    }
  });

  it('rejects a wrong size and non-zero padding', () => {
    const bytes = encodeVcpuState(randomVcpu(new SeededRandom(62)));
    expectNubError(() => decodeVcpuState(bytes.subarray(1)), 'BadSnapshotFile');
    // Find a padding byte: one whose change is not visible in the decoded state.
    const clean = decodeVcpuState(bytes);
    let rejected = 0;
    for (let i = 0; i < bytes.length; i++) {
      const flipped = bytes.slice();
      flipped[i] ^= 1;
      try {
        assert.notDeepEqual(decodeVcpuState(flipped), clean, `byte ${i} changed nothing yet was accepted`);
      } catch (err) {
        if (!(err instanceof NubError)) throw err;
        assert.equal(err.code, 'BadSnapshotFile');
        rejected++;
      }
    }
    assert.ok(rejected > 0, 'some bytes are padding');
  });
});

describe('snapshot: ImmutableMapping of bytes', () => {
  const mappings = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('nub-snapshot-memory')).length;

  it('holds the bytes as they were; later writes to the source do not show', () => {
    const source = new SeededRandom(63).bytes(3 * PAGE + 17);
    const copy = source.slice();
    using view = ImmutableMapping.fromBytes(source);
    source.fill(0xee);
    assert.equal(view.length, copy.length);
    assert.deepEqual(view.read(0, view.length), copy);
    assert.ok(view.equals(PAGE, copy.subarray(PAGE, 2 * PAGE)));
    assert.equal(view.u8(view.length - 1), copy[copy.length - 1]);
    const into = new Uint8Array(5);
    view.readInto(10, into);
    assert.deepEqual(into, copy.subarray(10, 15));
    expectNubError(() => view.read(view.length - 1, 2), 'OutOfBounds');
    expectNubError(() => view.u8(-1), 'OutOfBounds');
  });

  it('maps nothing for zero bytes, and close() releases the mapping', async () => {
    await nextTurn();
    const before = mappings();
    const empty = ImmutableMapping.fromBytes(new Uint8Array(0));
    assert.equal(empty.length, 0);
    assert.deepEqual(empty.read(0, 0), new Uint8Array(0));
    assert.equal(mappings(), before);
    empty.close();
    expectNubError(() => empty.read(0, 0), 'Closed');

    const view = ImmutableMapping.fromBytes(new Uint8Array(PAGE).fill(1));
    assert.equal(mappings(), before + 1);
    view.close();
    view.close();
    assert.ok(view.closed);
    expectNubError(() => view.u8(0), 'Closed');
    for (let i = 0; i < 10 && mappings() > before; i++) await nextTurn(); // the finalizer unmaps
    assert.equal(mappings(), before);
  });

  it('a memory file refuses writes once sealed and cannot be mapped before', () => {
    const file = MemoryFile.create(PAGE);
    try {
      expectNubError(() => file.mapImmutable(), 'NotSealed');
      file.write(0, new Uint8Array([1, 2, 3]));
      file.seal();
      expectNubError(() => file.write(0, new Uint8Array(1)), 'Sealed');
      const view = ImmutableMapping.ofFile(file);
      assert.deepEqual(view.read(0, 4), new Uint8Array([1, 2, 3, 0]));
      view.close();
    } finally {
      file.close();
    }
    expectNubError(() => file.seal(), 'Closed');
  });
});

describe('snapshot: file format', () => {
  function sample(): { snapshot: Snapshot; bytes: Uint8Array } {
    const { bytes, root } = syntheticGuest();
    const rng = new SeededRandom(64);
    bytes.set(rng.bytes(PAGE), MAPPED_FROM + 3 * PAGE); // mapped, non-zero: stored
    bytes.set(rng.bytes(PAGE), MAPPED_TO + 5 * PAGE); // not mapped: dropped
    bytes[MAPPED_TO - 1] = 0x5a; // the last mapped page
    const vcpu = randomVcpu(rng, { cr0: 0x8000_0011n, cr3: BigInt(root) });
    return { snapshot: Snapshot.fromBase(sealedFile(bytes), vcpu), bytes };
  }

  it('stores only page tables and mapped non-zero pages, and loads them back', () => {
    const { snapshot, bytes } = sample();
    try {
      const file = encodeSnapshot(snapshot);
      const view = new DataView(file.buffer);
      const pageCount = view.getUint32(24, true);
      const indexAt = 64 + VCPU_STATE_SIZE;
      const stored = Array.from({ length: pageCount }, (_, i) => view.getUint32(indexAt + 4 * i, true));
      // PML4, PDPT, PD, PT (pages 1-4), then the two non-zero mapped pages.
      assert.deepEqual(stored, [1, 2, 3, 4, MAPPED_FROM / PAGE + 3, MAPPED_TO / PAGE - 1]);
      assert.equal(file.length, indexAt + pageCount * (4 + PAGE));

      using loaded = decodeSnapshot(file);
      assert.equal(loaded.memorySize, MEMORY);
      assert.deepEqual(loaded.vcpu, snapshot.vcpu);
      const expected = new Uint8Array(MEMORY);
      for (const page of stored) expected.set(bytes.subarray(page * PAGE, (page + 1) * PAGE), page * PAGE);
      assert.deepEqual(loaded.memory.read(0, MEMORY), expected);
    } finally {
      snapshot.close();
    }
  });

  it('with paging off stores every non-zero page', () => {
    const bytes = new Uint8Array(8 * PAGE);
    bytes[5 * PAGE + 9] = 1;
    bytes[7 * PAGE] = 2;
    using snapshot = Snapshot.fromBase(sealedFile(bytes), randomVcpu(new SeededRandom(65), { cr0: 0x11n }));
    using loaded = decodeSnapshot(encodeSnapshot(snapshot));
    assert.deepEqual(loaded.memory.read(0, bytes.length), bytes);
  });

  it('rejects corrupt files with typed errors', () => {
    const { snapshot } = sample();
    const file = encodeSnapshot(snapshot);
    snapshot.close();
    const edit = (fn: (f: Uint8Array, v: DataView) => void, fix = true): Uint8Array => {
      const f = file.slice();
      fn(f, new DataView(f.buffer));
      return fix ? reseal(f) : f;
    };
    expectNubError(() => decodeSnapshot(file.subarray(0, 10)), 'BadSnapshotFile');
    expectNubError(() => decodeSnapshot(edit((f) => (f[0] ^= 1), false)), 'BadSnapshotMagic');
    expectNubError(() => decodeSnapshot(edit((_, v) => v.setUint32(8, SNAPSHOT_FORMAT_VERSION + 1, true))), 'UnsupportedSnapshotVersion');
    expectNubError(() => decodeSnapshot(edit((f) => (f[f.length - 1] ^= 1), false)), 'SnapshotChecksumMismatch');
    expectNubError(() => decodeSnapshot(edit((f) => (f[40] ^= 1), false)), 'SnapshotChecksumMismatch');
    expectNubError(() => decodeSnapshot(reseal(file.slice(0, file.length - 1))), 'BadSnapshotFile');
    expectNubError(() => decodeSnapshot(edit((_, v) => v.setUint32(12, 65, true))), 'BadSnapshotFile');
    expectNubError(() => decodeSnapshot(edit((_, v) => v.setBigUint64(16, 4097n, true))), 'BadSnapshotFile');
    expectNubError(() => decodeSnapshot(edit((_, v) => v.setBigUint64(16, 0n, true))), 'BadSnapshotFile');
    expectNubError(() => decodeSnapshot(edit((_, v) => v.setUint32(28, VCPU_STATE_SIZE + 1, true))), 'BadSnapshotFile');
    const indexAt = 64 + VCPU_STATE_SIZE;
    expectNubError(() => decodeSnapshot(edit((_, v) => v.setUint32(indexAt + 4, 1, true))), 'BadSnapshotFile'); // not increasing
    expectNubError(() => decodeSnapshot(edit((_, v) => v.setUint32(indexAt + 20, MEMORY / PAGE, true))), 'BadSnapshotFile'); // outside memory
  });
});
