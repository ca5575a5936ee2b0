import assert from 'node:assert/strict';
import { isNubError } from '../../lib/errors.js';
import { GuestMemory } from '../../lib/guest/guest-memory.js';
import {
  BumpTableAllocator, map, PAGE_1G, PAGE_2M, PageWalkCache, rebuildVaSpaces, virtToPhys, walkVaSpaces,
  type Mapping, type MappingKind, type SpaceAwareMapping, type WalkedSpace,
} from '../../lib/guest/vmem.js';
import { SeededRandom } from './seeded-random.js';
import { expectNubError as assertCode } from '../support/nub-error.js';

const KiB4 = 0x1000;
const RW: MappingKind = { type: 'basic', readable: true, writable: true, executable: false };
const RX: MappingKind = { type: 'basic', readable: true, writable: false, executable: true };
const COW: MappingKind = { type: 'cow', readable: true, executable: false };

/** Synthetic guest memory with the tables in its first `tableBytes`. */
function setup(memBytes = 0x40_0000, tableBytes = 0x10_0000) {
  const mem = new GuestMemory(new ArrayBuffer(memBytes));
  const ops = new BumpTableAllocator(mem, 0, tableBytes);
  const root = ops.allocTable();
  return { mem, ops, root };
}

function mapping(virtBase: number, physBase: number, len: number, kind: MappingKind = RW, userAccessible = false): Mapping {
  return { virtBase, physBase, len, kind, userAccessible };
}

/**
 * An independent reading of the Intel SDM (vol. 3, 4.5): the raw entries met on the
 * way to `va`, so the tests check the bits themselves rather than trusting vmem's decoder.
 */
function sdmWalk(mem: GuestMemory, root: number, va: number): bigint[] {
  const entries: bigint[] = [];
  let table = BigInt(root);
  for (const shift of [39n, 30n, 21n, 12n]) {
    const index = (BigInt(va) >> shift) & 511n;
    const e = mem.u64(Number(table + index * 8n));
    entries.push(e);
    if ((e & 1n) === 0n || shift === 12n || (e & 0x80n) !== 0n) break;
    table = e & 0x000f_ffff_ffff_f000n;
  }
  return entries;
}

const bit = (e: bigint, n: number) => ((e >> BigInt(n)) & 1n) === 1n;

describe('vmem: map and virtToPhys', () => {
  it('maps a 4 KiB page with the hardware bits the SDM prescribes', () => {
    const { mem, ops, root } = setup();
    map(ops, root, mapping(0x40_0000_0000 + 0x5000, 0x12_3000, KiB4, RW, true));
    const path = sdmWalk(mem, root, 0x40_0000_5123);
    assert.equal(path.length, 4);
    const pte = path[3]!;
    assert.ok(bit(pte, 0) && bit(pte, 1) && bit(pte, 2), 'present, writable, user');
    assert.ok(bit(pte, 63), 'not executable: NX set');
    assert.equal(pte & 0x000f_ffff_ffff_f000n, 0x12_3000n);
    assert.deepEqual(virtToPhys(mem, root, 0x40_0000_5123), { pa: 0x12_3123, kind: RW, userAccessible: true });
    assert.equal(virtToPhys(mem, root, 0x40_0000_4fff), null);
    assert.equal(virtToPhys(mem, root, 0x40_0000_6000), null);
  });

  it('encodes read-only, executable and copy-on-write kinds distinctly', () => {
    const { mem, ops, root } = setup();
    map(ops, root, mapping(0x1000, 0x20_1000, KiB4, RX));
    map(ops, root, mapping(0x2000, 0x20_2000, KiB4, COW));
    const rx = sdmWalk(mem, root, 0x1000)[3]!;
    assert.ok(!bit(rx, 1) && !bit(rx, 63) && !bit(rx, 2), 'read-only, executable, kernel only');
    const cow = sdmWalk(mem, root, 0x2000)[3]!;
    assert.ok(!bit(cow, 1) && bit(cow, 63), 'copy-on-write pages are read-only to the CPU');
    assert.deepEqual(virtToPhys(mem, root, 0x1000)?.kind, RX);
    assert.deepEqual(virtToPhys(mem, root, 0x2000)?.kind, COW);
  });

  it('combines permissions across levels as the CPU does', () => {
    const { mem, ops, root } = setup();
    map(ops, root, mapping(0x1000, 0x20_1000, KiB4, { type: 'basic', readable: true, writable: true, executable: true }, true));
    // Clear writable and user in the PML4 entry, set NX in the PDPT entry.
    const [pml4e, pdpte] = sdmWalk(mem, root, 0x1000);
    mem.writeU64(root, pml4e! & ~0b110n);
    mem.writeU64(Number(pml4e! & 0xffff_f000n), pdpte! | (1n << 63n));
    assert.deepEqual(virtToPhys(mem, root, 0x1000), { pa: 0x20_1000, kind: { type: 'basic', readable: true, writable: false, executable: false }, userAccessible: false });
  });

  it('maps every page an unaligned range touches, split across table boundaries', () => {
    const { mem, ops, root } = setup();
    // 2 bytes either side of a 2 MiB boundary, and 2 bytes either side of a 512 GiB one.
    map(ops, root, mapping(PAGE_2M - 2, 0x30_0000 - 2, 4));
    const pml4Span = 2 ** 39;
    map(ops, root, mapping(pml4Span - 2, 0x10_0000 - 2, 4));
    for (const [va, pa] of [[PAGE_2M - KiB4, 0x2f_f000], [PAGE_2M, 0x30_0000], [pml4Span - KiB4, 0xf_f000], [pml4Span, 0x10_0000]]) {
      assert.equal(virtToPhys(mem, root, va! + 0x10)?.pa, pa! + 0x10, `va ${va!.toString(16)}`);
    }
    for (const va of [PAGE_2M - 2 * KiB4, PAGE_2M + KiB4, pml4Span - 2 * KiB4, pml4Span + KiB4]) {
      assert.equal(virtToPhys(mem, root, va), null, `va ${va.toString(16)} stays unmapped`);
    }
    // The two sides of each boundary live in different tables.
    assert.notEqual(sdmWalk(mem, root, PAGE_2M - KiB4)[2], sdmWalk(mem, root, PAGE_2M)[2]);
    assert.notEqual(sdmWalk(mem, root, pml4Span - KiB4)[0], sdmWalk(mem, root, pml4Span)[0]);
  });

  it('uses 2 MiB pages for aligned blocks and splits them when part is remapped', () => {
    const { mem, ops, root } = setup();
    map(ops, root, mapping(0x40_0000_0000, 0, 2 * PAGE_2M + KiB4));
    const pde = sdmWalk(mem, root, 0x40_0000_0000);
    assert.equal(pde.length, 3, 'walk stops at the PD');
    assert.ok(bit(pde[2]!, 7), 'PS set in the PD entry');
    assert.equal(sdmWalk(mem, root, 0x40_0000_0000 + 2 * PAGE_2M).length, 4, 'the tail is a 4 KiB page');
    const tablesBefore = ops.used;
    // Punch a hole into the first huge page: the rest of it still maps as before.
    map(ops, root, { virtBase: 0x40_0000_3000, physBase: 0, len: KiB4, kind: { type: 'unmapped' }, userAccessible: false });
    assert.equal(ops.used - tablesBefore, KiB4, 'one new PT for the split');
    assert.equal(virtToPhys(mem, root, 0x40_0000_3000), null);
    for (const off of [0, 0x2fff, 0x4000, PAGE_2M - 1, PAGE_2M]) {
      assert.deepEqual(virtToPhys(mem, root, 0x40_0000_0000 + off), { pa: off, kind: RW, userAccessible: false });
    }
  });

  it('honours maxPageSize (4 KiB only, or 1 GiB pages)', () => {
    const small = setup();
    map(small.ops, small.root, mapping(0, 0, PAGE_2M), { maxPageSize: KiB4 });
    assert.equal(sdmWalk(small.mem, small.root, 0x1000).length, 4);
    const huge = setup();
    map(huge.ops, huge.root, mapping(PAGE_1G, 0, PAGE_1G), { maxPageSize: PAGE_1G });
    const path = sdmWalk(huge.mem, huge.root, PAGE_1G + 0x1234);
    assert.equal(path.length, 2);
    assert.ok(bit(path[1]!, 7));
    assert.equal(virtToPhys(huge.mem, huge.root, PAGE_1G + 0x1234_5678)?.pa, 0x1234_5678);
    // A hole in the 1 GiB page splits it into 2 MiB pages, then one of those into 4 KiB pages.
    map(huge.ops, huge.root, { virtBase: PAGE_1G + PAGE_2M, physBase: 0, len: KiB4, kind: { type: 'unmapped' }, userAccessible: false });
    assert.equal(virtToPhys(huge.mem, huge.root, PAGE_1G + PAGE_2M), null);
    for (const off of [0, PAGE_2M + KiB4, 2 * PAGE_2M, PAGE_1G - 1]) {
      assert.deepEqual(virtToPhys(huge.mem, huge.root, PAGE_1G + off), { pa: off, kind: RW, userAccessible: false });
    }
    assert.equal(sdmWalk(huge.mem, huge.root, PAGE_1G + 2 * PAGE_2M).length, 3, 'the untouched part stays in 2 MiB pages');
  });

  it('rejects what amd64 cannot express, with typed errors', () => {
    const { mem, ops, root } = setup(0x10_0000, 0x2000);
    assertCode(() => map(ops, root, mapping(0x1000, 0x2001, 8)), 'Misaligned');
    assertCode(() => map(ops, root, mapping(0x1000, 0x1000, 8, { type: 'basic', readable: false, writable: true, executable: false })), 'UnsupportedMapping');
    assertCode(() => map(ops, root, mapping(2 ** 48 - KiB4, 0, 2 * KiB4)), 'BadAddress');
    assertCode(() => map(ops, root + 8, mapping(0, 0, KiB4)), 'Misaligned');
    assertCode(() => map(ops, root, mapping(0, 0, KiB4), { maxPageSize: 0x1234 }), 'BadArgument');
    // One table left: a fresh PDPT fits, the PD it needs does not.
    assertCode(() => map(ops, root, mapping(0x1000, 0x1000, KiB4)), 'PageTablesFull');
    assertCode(() => virtToPhys(mem, 0x10_0000, 0), 'OutOfBounds');
  });

  it('agrees with a page-by-page model over many random maps (seeded)', () => {
    const rng = new SeededRandom(0x5eed_0001);
    const { mem, ops, root } = setup(0x100_0000, 0x80_0000);
    const model = new Map<number, { pa: number; kind: MappingKind; user: boolean }>();
    const kinds: MappingKind[] = [RW, RX, COW, { type: 'unmapped' }, { type: 'basic', readable: true, writable: false, executable: false }];
    // A few VA windows so maps overlap, cross 2 MiB / 1 GiB boundaries and split huge pages.
    const windows = [0, PAGE_1G - 4 * PAGE_2M, 0x40_0000_0000, 2 ** 47 - 8 * PAGE_2M];
    for (let round = 0; round < 300; round++) {
      const va = rng.pick(windows) + rng.below(8 * PAGE_2M);
      const len = rng.bool() ? rng.below(4 * KiB4) + 1 : rng.below(3 * PAGE_2M) + 1;
      const pa = rng.bool() ? (va % PAGE_2M) + rng.below(4) * PAGE_2M : (va % KiB4) + rng.below(0x400) * KiB4;
      const kind = rng.pick(kinds);
      const user = rng.bool();
      map(ops, root, mapping(va, pa, len, kind, user));
      for (let page = va - (va % KiB4); page < va + len; page += KiB4) {
        if (kind.type === 'unmapped') model.delete(page);
        else model.set(page, { pa: page - va + pa, kind, user });
      }
    }
    const cache = new PageWalkCache();
    for (const window of windows) {
      for (let page = window; page < window + 11 * PAGE_2M; page += KiB4) {
        const want = model.get(page);
        const off = page % 0xfff;
        const got = virtToPhys(mem, root, page + off, rng.bool() ? cache : undefined);
        assert.deepEqual(got, want ? { pa: want.pa + off, kind: want.kind, userAccessible: want.user } : null, `page ${page.toString(16)}`);
      }
    }
  });
});

describe('vmem: walkVaSpaces and spaceAwareMap', () => {
  it('reports a table shared by two roots as a link to the root that saw it first', () => {
    const { mem, ops, root: a } = setup();
    map(ops, a, mapping(0x40_0000_0000, 0, 0x3000));
    map(ops, a, mapping(0x1000, 0x8000, KiB4, RX, true));
    // b aliases a's slot-0 PDPT (low memory and the kernel base 0x40_0000_0000) from its
    // PML4 slot 1, and has its own table in slot 0.
    const b = ops.allocTable();
    mem.writeU64(b + 8, sdmWalk(mem, a, 0x40_0000_0000)[0]!);
    map(ops, b, mapping(0x2000, 0x9000, KiB4, COW, true));
    const [wa, wb] = walkVaSpaces(mem, [a, b]);
    assert.deepEqual(wa!.mappings, [
      { type: 'thisSpace', mapping: mapping(0x1000, 0x8000, KiB4, RX, true) },
      { type: 'thisSpace', mapping: mapping(0x40_0000_0000, 0, 0x3000) },
    ]);
    assert.deepEqual(wb!.mappings, [
      { type: 'thisSpace', mapping: mapping(0x2000, 0x9000, KiB4, COW, true) },
      { type: 'anotherSpace', depth: 1, space: a, ourVa: 2 ** 39, theirVa: 0 },
    ]);
    // Writes through the shared table are visible in both spaces.
    map(ops, a, mapping(0x40_0000_5000, 0x5000, KiB4));
    assert.equal(virtToPhys(mem, b, 2 ** 39 + 0x40_0000_5000)?.pa, 0x5000);
  });

  it('walk -> rebuild -> walk gives the same mappings, with shared tables still shared', () => {
    const rng = new SeededRandom(0x5eed_0002);
    for (let trial = 0; trial < 20; trial++) {
      const { mem, ops } = setup(0x200_0000, 0x100_0000);
      const roots = [ops.allocTable(), ops.allocTable(), ops.allocTable()];
      for (const root of roots) {
        for (let i = 0; i < 12; i++) {
          const va = rng.pick([0, 0x40_0000_0000, 0x7f_0000_0000]) + rng.below(4 * PAGE_2M);
          map(ops, root, mapping(va, va % KiB4 + rng.below(0x800) * KiB4, rng.below(5 * KiB4) + 1, rng.pick([RW, RX, COW]), rng.bool()));
        }
      }
      // Later roots alias random intermediate tables of earlier ones, at all three depths.
      for (let r = 1; r < roots.length; r++) {
        for (let link = 0; link < 3; link++) {
          const owner = roots[rng.below(r)]!;
          const va = rng.pick([0, 0x40_0000_0000, 0x7f_0000_0000]) + rng.below(4) * PAGE_2M;
          const path = sdmWalk(mem, owner, va);
          const depth = 1 + rng.below(Math.min(3, path.length - 1));
          if ((path[depth - 1]! & 1n) === 0n) continue;
          const ourVa = va + (r + 1) * 2 ** 39;
          linkAt(mem, ops, roots[r]!, ourVa, depth, path[depth - 1]!);
        }
      }
      const first = walkVaSpaces(mem, roots);
      const target = new BumpTableAllocator(mem, 0x100_0000, 0x180_0000);
      const built = rebuildVaSpaces(target, first);
      const again = walkVaSpaces(mem, roots.map((r) => built.get(r)!));
      assert.deepEqual(again, renameSpaces(first, built), `trial ${trial}`);
      // And the rebuilt tables translate every page like the originals.
      for (let probe = 0; probe < 200; probe++) {
        const root = rng.pick(roots);
        const va = rng.pick([0, 0x40_0000_0000, 0x7f_0000_0000]) + (1 + rng.below(3)) * 2 ** 39 * rng.below(2) + rng.below(4 * PAGE_2M);
        assert.deepEqual(virtToPhys(mem, built.get(root)!, va), virtToPhys(mem, root, va));
      }
    }
  });

  it('terminates on self-referencing and looping tables', () => {
    const { mem, ops, root } = setup();
    map(ops, root, mapping(0x1000, 0x5000, KiB4));
    // PML4[1] -> the PML4 itself; the PDPT of slot 0 also points back at the root from its slot 5.
    mem.writeU64(root + 8, BigInt(root) | 0x7n);
    const pdpt = Number(sdmWalk(mem, root, 0)[0]! & 0xffff_f000n);
    mem.writeU64(pdpt + 5 * 8, BigInt(root) | 0x7n);
    const [walked] = walkVaSpaces(mem, [root]);
    assert.ok(walked!.mappings.some((m) => m.type === 'anotherSpace' && m.space === root), 'the loop is reported as a link, not followed');
    assert.equal(virtToPhys(mem, root, 0x1000)?.pa, 0x5000);
  });

  it('on random tables, only ever returns or throws a typed error (seeded)', () => {
    const rng = new SeededRandom(0x5eed_0003);
    const size = 0x4_0000;
    for (let trial = 0; trial < 40; trial++) {
      const mem = new GuestMemory(new ArrayBuffer(size));
      const words = new Uint32Array(mem.buffer);
      for (let i = 0; i < words.length; i += 2) {
        // Half the entries point inside memory (so walks go deep), the rest anywhere.
        words[i] = rng.u32();
        words[i + 1] = rng.below(4) === 0 ? rng.u32() : rng.u32() & 0x8000_0000;
        if (rng.bool()) words[i] = (words[i]! & 0xfff) | (rng.below(size / KiB4) * KiB4);
      }
      const roots = [0, KiB4 * rng.below(size / KiB4), KiB4 * rng.below(size / KiB4)];
      for (let i = 0; i < 50; i++) {
        try {
          virtToPhys(mem, rng.pick(roots), rng.below(2 ** 48));
        } catch (err) {
          assert.ok(isNubError(err, 'OutOfBounds'), String(err));
        }
      }
      try {
        walkVaSpaces(mem, roots);
      } catch (err) {
        assert.ok(isNubError(err, 'OutOfBounds'), String(err));
      }
    }
  });
});

/** Points the depth-`depth - 1` entry for `va` in `root` at the table `entry` refers to. */
function linkAt(mem: GuestMemory, ops: BumpTableAllocator, root: number, va: number, depth: number, entry: bigint): void {
  const slot = (table: number, d: number) => table + (Math.floor(va / 2 ** [39, 30, 21][d]!) % 512) * 8;
  let table = root;
  for (let d = 0; d < depth - 1; d++) {
    let e = mem.u64(slot(table, d));
    if ((e & 1n) === 0n || (e & 0x80n) !== 0n) {
      e = BigInt(ops.allocTable()) | 0x7n;
      mem.writeU64(slot(table, d), e);
    }
    table = Number(e & 0xffff_f000n);
  }
  mem.writeU64(slot(table, depth - 1), (entry & 0x000f_ffff_ffff_f000n) | 0x7n);
}

function renameSpaces(spaces: WalkedSpace[], built: Map<number, number>): WalkedSpace[] {
  return spaces.map(({ root, mappings }) => ({
    root: built.get(root)!,
    mappings: mappings.map((m): SpaceAwareMapping => (m.type === 'anotherSpace' ? { ...m, space: built.get(m.space)! } : m)),
  }));
}
