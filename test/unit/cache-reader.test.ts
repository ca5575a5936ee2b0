import assert from 'node:assert/strict';
import { BOOT_INFO_LAYOUT_VERSION, BOOT_INFO_MAGIC, BootInfo, DirectoryEntry, DirectoryHeader, Layout } from '../../lib/abi/guest-abi.js';
import { CapSelector, DataCap, encodeCap } from '../../lib/caps/index.js';
import { isNubError, type NubErrorCode } from '../../lib/errors.js';
import { CAP_HASH_BYTES, GuestCacheReader } from '../../lib/guest/cache-reader.js';
import { DirectoryWriter, type SyntheticGuestOptions } from '../support/directory-writer.js';
import { GuestMemory } from '../../lib/guest/guest-memory.js';
import { map } from '../../lib/guest/vmem.js';
import { SeededRandom } from './seeded-random.js';
import { expectNubError as assertCode } from '../support/nub-error.js';

const VA_BASE = Number(Layout.values.GUEST_VA_BASE);
/** Every code the reader may throw on bad guest memory: anything else (TypeError, RangeError, a hang) is a bug. */
const READER_CODES = new Set(['BadMagic', 'UnknownLayout', 'UninitialisedDirectoryVa', 'NullPointer', 'UnmappedAddress', 'OutOfBounds', 'Misaligned', 'BadDirectory']);

function u64le(value: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value), true);
  return out;
}

function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

/** A hash whose first four bytes (the slot selector) are `low`, the rest random. */
function hashWithLow(rng: SeededRandom, low: number): Uint8Array {
  const h = rng.bytes(CAP_HASH_BYTES);
  h.set(u32le(low), 0);
  return h;
}

function setBoot(g: DirectoryWriter, field: Parameters<typeof BootInfo.set>[2], value: number | bigint): void {
  g.mem.setField(BootInfo, g.bootInfoGpa, field, value);
}

function fill(options: SyntheticGuestOptions, rng: SeededRandom, n: number) {
  const g = new DirectoryWriter(options);
  const caps = Array.from({ length: n }, (_, i) => ({
    hash: rng.bytes(CAP_HASH_BYTES),
    kind: rng.below(5),
    // Empty, small, and longer than a page (so stored bytes span pages).
    bytes: rng.bytes(i % 7 === 0 ? 0 : i % 7 === 1 ? 5000 + rng.below(3000) : rng.below(200)),
  }));
  for (const c of caps) g.put(c.hash, c.kind, c.bytes);
  return { g, caps };
}

describe('GuestCacheReader on synthetic guest memory', () => {
  it('reads an empty directory', () => {
    const g = new DirectoryWriter({ capacity: 64, memorySize: 0x20_0000 });
    const reader = GuestCacheReader.fromBootInfo(g.mem);
    assert.equal(reader.len(), 0);
    assert.equal(reader.isEmpty(), true);
    assert.equal(reader.contains(new Uint8Array(CAP_HASH_BYTES)), false);
    assert.equal(reader.get(new Uint8Array(CAP_HASH_BYTES).fill(9)), undefined);
  });

  const layouts: [string, Omit<SyntheticGuestOptions, 'capacity'>][] = [
    ['linear heap', {}],
    ['scattered heap, entries straddling pages', { heap: 'scattered', entriesShift: 40 }],
  ];
  for (const [label, options] of layouts) {
    it(`agrees with what was put: ${label}`, () => {
      const rng = new SeededRandom(0xd1_0001);
      const { g, caps } = fill({ capacity: 256, ...options }, rng, 180);
      const reader = GuestCacheReader.fromBootInfo(g.mem);
      assert.equal(reader.len(), caps.length);
      assert.equal(reader.isEmpty(), false);
      for (const c of caps) {
        assert.equal(reader.contains(c.hash), true);
        assert.deepEqual(reader.get(c.hash), { kind: c.kind, bytes: c.bytes });
      }
      for (let i = 0; i < 500; i++) {
        const h = rng.bytes(CAP_HASH_BYTES);
        assert.equal(reader.contains(h), false);
        assert.equal(reader.get(h), undefined);
      }
    });
  }

  it('follows probe chains through collisions and around the end of the table', () => {
    const rng = new SeededRandom(0xd1_0002);
    const g = new DirectoryWriter({ capacity: 16, memorySize: 0x20_0000 });
    // Five hashes aimed at slot 14 (occupying 14, 15, 0, 1, 2), one at slot 0 (lands in 3).
    const chain = Array.from({ length: 5 }, () => hashWithLow(rng, 14 + 16 * rng.below(1000)));
    const late = hashWithLow(rng, 0);
    chain.forEach((h, i) => g.put(h, i, u32le(i)));
    assert.equal(g.put(late, 4, u32le(99)), 3);
    const reader = GuestCacheReader.fromBootInfo(g.mem);
    chain.forEach((h, i) => assert.deepEqual(reader.get(h), { kind: i, bytes: u32le(i) }));
    assert.deepEqual(reader.get(late)?.bytes, u32le(99));
    // Same slot, different tail bytes: not found (the probe stops at the empty slot 4).
    const lookalike = chain[0]!.slice();
    lookalike[31]! ^= 1;
    assert.equal(reader.contains(lookalike), false);
  });

  it('returns copies that stay valid after the guest changes its memory', () => {
    const rng = new SeededRandom(0xd1_0003);
    const { g, caps } = fill({ capacity: 32 }, rng, 8);
    const target = caps.find((c) => c.bytes.length > 0)!;
    const reader = GuestCacheReader.fromBootInfo(g.mem);
    const got = reader.get(target.hash)!;
    g.mem.fill(Layout.values.KERNEL_GPA, g.mem.size - Layout.values.KERNEL_GPA, 0xee);
    assert.deepEqual(got.bytes, target.bytes);
  });

  it('sees the guest\'s changes (new entries, remapped pages) after invalidate()', () => {
    const rng = new SeededRandom(0xd1_0004);
    const { g, caps } = fill({ capacity: 64, heap: 'scattered' }, rng, 10);
    const reader = GuestCacheReader.fromBootInfo(g.mem);
    const added = rng.bytes(CAP_HASH_BYTES);
    g.put(added, 3, u32le(7));
    reader.invalidate();
    assert.equal(reader.len(), 11);
    assert.deepEqual(reader.get(added), { kind: 3, bytes: u32le(7) });
    // The guest moves the entries' first page elsewhere (copying it) and scribbles on the old copy.
    const page = g.entriesVa - (g.entriesVa % 0x1000);
    const oldGpa = g.gpaOf(page);
    const newGpa = 0xf_0000;
    g.mem.writeBytes(newGpa, g.mem.bytes(oldGpa, 0x1000));
    map(g.tables, g.root, { virtBase: page, physBase: newGpa, len: 0x1000, kind: { type: 'basic', readable: true, writable: true, executable: false }, userAccessible: false });
    g.mem.fill(oldGpa, 0x1000, 0xab);
    reader.invalidate();
    for (const c of caps) assert.deepEqual(reader.get(c.hash)?.bytes, c.bytes);
  });

  it('reports released guest memory as Closed', () => {
    const g = new DirectoryWriter({ capacity: 16, memorySize: 0x20_0000 });
    const reader = GuestCacheReader.fromBootInfo(g.mem);
    assert.equal(reader.contains(new Uint8Array(CAP_HASH_BYTES)), false);
    structuredClone(g.mem.buffer, { transfer: [g.mem.buffer] });
    assertCode(() => reader.contains(new Uint8Array(CAP_HASH_BYTES)), 'Closed');
    reader.invalidate();
    assertCode(() => reader.len(), 'Closed');
  });

  it('getCap decodes the stored Cap union bytes and checks them against the entry kind', () => {
    const rng = new SeededRandom(0xd1_0009);
    const g = new DirectoryWriter({ capacity: 16, memorySize: 0x20_0000 });
    const encoded = encodeCap({ kind: 'Data', value: DataCap.fromBytes(rng.bytes(300)) });
    const [good, wrongKind, garbage] = [rng.bytes(CAP_HASH_BYTES), rng.bytes(CAP_HASH_BYTES), rng.bytes(CAP_HASH_BYTES)];
    g.put(good, CapSelector.Data, encoded);
    g.put(wrongKind, CapSelector.Image, encoded);
    g.put(garbage, CapSelector.Data, rng.bytes(7));
    const reader = GuestCacheReader.fromBootInfo(g.mem);
    const cap = reader.getCap(good);
    assert.equal(cap?.kind, 'Data');
    assert.deepEqual(encodeCap(cap!), encoded);
    assert.equal(reader.getCap(rng.bytes(CAP_HASH_BYTES)), undefined);
    assertCode(() => reader.getCap(wrongKind), 'BadDirectory');
    assert.throws(() => reader.getCap(garbage), (err) => isNubError(err) && err.code.startsWith('Decode.'));
  });

  it('rejects a hash that is not 32 bytes', () => {
    const reader = GuestCacheReader.fromBootInfo(new DirectoryWriter({ capacity: 16, memorySize: 0x20_0000 }).mem);
    assertCode(() => reader.contains(new Uint8Array(31)), 'BadHash');
  });
});

describe('GuestCacheReader against a lying guest', () => {
  const small = { capacity: 64, memorySize: 0x20_0000 };

  function withGuest(corrupt: (g: DirectoryWriter) => void, code: NubErrorCode, options: SyntheticGuestOptions = small): void {
    const rng = new SeededRandom(0xbad);
    const g = new DirectoryWriter(options);
    const hashes = Array.from({ length: 5 }, () => rng.bytes(CAP_HASH_BYTES));
    for (const h of hashes) g.put(h, 1, rng.bytes(40));
    corrupt(g);
    assertCode(() => {
      const reader = GuestCacheReader.fromBootInfo(g.mem);
      for (const h of hashes) reader.get(h);
    }, code);
  }
  const header = (g: DirectoryWriter, field: keyof typeof DirectoryHeader.offsets, bytes: Uint8Array) => g.writeVirtual(g.headerVa + DirectoryHeader.offsets[field], bytes);
  const entry = (g: DirectoryWriter, index: number, field: keyof typeof DirectoryEntry.offsets, bytes: Uint8Array) => g.writeVirtual(g.entryVa(index) + DirectoryEntry.offsets[field], bytes);
  const usedSlot = (g: DirectoryWriter) => [...Array(g.capacity).keys()].find((i) => g.mem.u32(g.gpaOf(g.entryVa(i)) + DirectoryEntry.offsets.state) === 1)!;

  it('BadMagic', () => withGuest((g) => setBoot(g, 'magic', 0x1234n), 'BadMagic'));
  it('UnknownLayout (boot info version, directory id in boot info and in the header)', () => {
    withGuest((g) => setBoot(g, 'layout_version', BOOT_INFO_LAYOUT_VERSION + 1), 'UnknownLayout');
    withGuest((g) => setBoot(g, 'directory_layout', 0x4449_5232), 'UnknownLayout');
    withGuest((g) => header(g, 'layout_id', u32le(0)), 'UnknownLayout');
  });
  it('UninitialisedDirectoryVa', () => withGuest((g) => setBoot(g, 'directory_va', 0), 'UninitialisedDirectoryVa'));
  it('NullPointer (directory in the null page, no entries array, bytes at address 0)', () => {
    withGuest((g) => setBoot(g, 'directory_va', VA_BASE + 0x10), 'NullPointer');
    withGuest((g) => header(g, 'entries_va', u64le(0)), 'NullPointer');
    withGuest((g) => entry(g, usedSlot(g), 'data_va', u64le(0)), 'NullPointer');
  });
  it('OutOfBounds (boot info, page-table root, entries or bytes outside memory)', () => {
    const g = new DirectoryWriter(small);
    assertCode(() => GuestCacheReader.fromBootInfo(g.mem, g.mem.size - 8), 'OutOfBounds');
    withGuest((g) => setBoot(g, 'page_table_root', 0x1_0000_0000n), 'OutOfBounds');
    withGuest((g) => setBoot(g, 'page_table_root', 0x2_0008n), 'OutOfBounds');
    // Map the entries' page to physical memory past the end (the walk itself is fine).
    withGuest((g) => map(g.tables, g.root, { virtBase: g.entriesVa - (g.entriesVa % 0x1000), physBase: 0x4000_0000, len: 0x1000, kind: { type: 'basic', readable: true, writable: false, executable: false }, userAccessible: false }), 'OutOfBounds');
    withGuest((g) => entry(g, usedSlot(g), 'len', u64le(2n ** 63n)), 'BadDirectory');
  });
  it('UnmappedAddress (unmapped and non-canonical addresses)', () => {
    withGuest((g) => setBoot(g, 'directory_va', 0x7000_0000), 'UnmappedAddress');
    withGuest((g) => setBoot(g, 'directory_va', 0x0001_0000_0000_0000n), 'UnmappedAddress');
    withGuest((g) => entry(g, usedSlot(g), 'data_va', u64le(VA_BASE + 0x20_0000 - 4)), 'UnmappedAddress');
  });
  it('BadDirectory (absurd capacity and count, unknown entry state)', () => {
    withGuest((g) => header(g, 'capacity', u32le(48)), 'BadDirectory');
    withGuest((g) => header(g, 'capacity', u32le(0)), 'BadDirectory');
    withGuest((g) => header(g, 'capacity', u32le(0x8000_0000)), 'BadDirectory');
    withGuest((g) => header(g, 'count', u32le(0xffff_ffff)), 'BadDirectory');
    withGuest((g) => entry(g, usedSlot(g), 'state', u32le(7)), 'BadDirectory');
  });
  it('Misaligned entries array', () => withGuest((g) => header(g, 'entries_va', u64le(g.entriesVa + 3)), 'Misaligned'));

  it('a directory whose entries point into itself ends in an answer or a typed error', () => {
    const rng = new SeededRandom(0xd1_0005);
    const g = new DirectoryWriter(small);
    // entries_va = the header: entry 0 overlaps the header, data_va of each slot points back at the header.
    header(g, 'entries_va', u64le(g.headerVa));
    for (let i = 1; i < g.capacity; i++) {
      entry(g, i, 'state', u32le(1));
      entry(g, i, 'len', u64le(64));
      entry(g, i, 'data_va', u64le(g.headerVa));
    }
    const reader = GuestCacheReader.fromBootInfo(g.mem);
    for (let i = 0; i < 200; i++) {
      try {
        const got = reader.get(hashWithLow(rng, i));
        assert.ok(got === undefined || got.bytes.length === 64);
      } catch (err) {
        assert.ok(isNubError(err) && READER_CODES.has(err.code), String(err));
      }
    }
  });

  it('a table full of USED entries that never match: bounded probing, not a hang', () => {
    const g = new DirectoryWriter({ capacity: 4096, memorySize: 0x80_0000 });
    const rng = new SeededRandom(0xd1_0006);
    for (let i = 0; i < g.capacity; i++) entry(g, i, 'state', u32le(1));
    header(g, 'count', u32le(g.capacity));
    const reader = GuestCacheReader.fromBootInfo(g.mem);
    const start = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) assert.equal(reader.contains(rng.bytes(CAP_HASH_BYTES)), false);
    assert.ok(Number(process.hrtime.bigint() - start) < 2e9, 'each miss costs at most capacity probes');
  });

  it('page tables that loop back on themselves end in an answer or a typed error', () => {
    const g = new DirectoryWriter(small);
    // PML4 slot 3 points at the PML4: a VA with index 3 at every level walks root -> root -> root -> root.
    g.mem.writeU64(g.root + 3 * 8, BigInt(g.root) | 0x7n);
    const loopVa = 3 * 2 ** 39 + 3 * 2 ** 30 + 3 * 2 ** 21 + 3 * 2 ** 12;
    for (const va of [loopVa, loopVa + 0x10]) {
      setBoot(g, 'directory_va', va);
      assert.throws(() => GuestCacheReader.fromBootInfo(g.mem).len(), (err) => isNubError(err) && READER_CODES.has(err.code));
    }
  });

  it('random corruption anywhere only ever gives answers or typed errors (seeded)', () => {
    const rng = new SeededRandom(0xd1_0007);
    for (const options of [{ capacity: 64, memorySize: 0x20_0000 }, { capacity: 64, memorySize: 0x20_0000, heap: 'scattered' as const, entriesShift: 24 }]) {
      const { g, caps } = fill(options, rng, 40);
      const pristine = g.mem.u8s.slice();
      const regions = [
        [g.bootInfoGpa, BootInfo.size],
        [g.gpaOf(g.headerVa), DirectoryHeader.size],
        [g.gpaOf(g.entriesVa), 0x1000],
        [Layout.values.PAGE_TABLES_GPA, g.tables.used],
        [0, g.mem.size],
      ] as const;
      const seen = new Map<string, number>();
      for (let trial = 0; trial < 400; trial++) {
        g.mem.u8s.set(pristine);
        const [start, len] = rng.pick(regions);
        const flips = 1 + rng.below(trial % 10 === 0 ? 5000 : 8);
        for (let i = 0; i < flips; i++) g.mem.u8s[start + rng.below(len)] = rng.u32() & 0xff;
        let outcome = 'ok';
        try {
          const reader = GuestCacheReader.fromBootInfo(g.mem);
          reader.len();
          for (let i = 0; i < 10; i++) reader.get(rng.pick(caps).hash);
          for (let i = 0; i < 5; i++) reader.contains(rng.bytes(CAP_HASH_BYTES));
        } catch (err) {
          assert.ok(isNubError(err) && READER_CODES.has(err.code), `trial ${trial}: ${String(err)}`);
          outcome = err.code;
        }
        seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
      }
      assert.ok(seen.size >= 4, `corruption reached several checks: ${JSON.stringify([...seen])}`);
    }
  });

  it('memory of random bytes only ever gives typed errors (seeded)', () => {
    const rng = new SeededRandom(0xd1_0008);
    for (let trial = 0; trial < 100; trial++) {
      const mem = new GuestMemory(new ArrayBuffer(0x4_0000));
      mem.u8s.set(rng.bytes(mem.size));
      if (trial % 2 === 0) mem.setField(BootInfo, Layout.values.BOOT_INFO_GPA, 'magic', BOOT_INFO_MAGIC);
      try {
        GuestCacheReader.fromBootInfo(mem).contains(rng.bytes(CAP_HASH_BYTES));
      } catch (err) {
        assert.ok(isNubError(err) && READER_CODES.has(err.code), String(err));
      }
    }
  });
});
