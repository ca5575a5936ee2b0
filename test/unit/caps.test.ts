import assert from 'node:assert/strict';
import { blake2b } from '@noble/hashes/blake2.js';
import {
  CapType, CNodeCapType, DataCap, DataCapType, Key, KeyList, OptionKey, PAGE_SIZE, TypeCapType, capHash,
  byteListRoot, compareKeys, decodeCap, encodeCap, toKey, typeChainExtend, typeChainStart, type CapValue,
} from '../../lib/caps/index.js';
import { byteListRoot as refByteListRoot, chunks, containerRoot, listRoot, merkleize, mixIn, refZeroHash, sha256 } from './caps-ssz-reference.test.js';
import { expectNubError as assertCode } from '../support/nub-error.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; out[i] = x >>> 24; }
  return out;
}

/** Reference root of a DataCap's page list: List[Vector[uint8, 4096], 2^20]. */
function refDataCapHash(content: Uint8Array): Uint8Array {
  const pageRoots: Uint8Array[] = [];
  for (let off = 0; off < content.length; off += PAGE_SIZE) pageRoots.push(merkleize(chunks(content.subarray(off, off + PAGE_SIZE)), 128));
  return mixIn(containerRoot([listRoot(pageRoots, 2 ** 20)]), 2);
}

describe('caps: keys', () => {
  it('orders byte-wise with a strict prefix first', () => {
    assert.ok(compareKeys(toKey([1]), toKey([1, 0])) < 0);
    assert.ok(compareKeys(toKey([1, 0]), toKey([2])) < 0);
    assert.ok(compareKeys(toKey([]), toKey([0])) < 0);
    assert.equal(compareKeys(toKey(7), Uint8Array.of(7)), 0);
  });
  it('rejects a non-byte', () => {
    assertCode(() => toKey(256), 'BadKey');
    assertCode(() => toKey([1, -1]), 'BadKey');
  });
  it('hashes like List[uint8, 2^32] (length mixed in)', () => {
    for (const k of [[], [0], [1, 2, 3], Array.from(bytesOf(70, 3))]) {
      assert.equal(hex(Key.hashTreeRoot(Uint8Array.from(k))), hex(refByteListRoot(Uint8Array.from(k))));
    }
    assert.notEqual(hex(Key.hashTreeRoot(new Uint8Array(0))), hex(Key.hashTreeRoot(new Uint8Array(1))));
  });
  it('hashes a list of keys with its length mixed in', () => {
    const keys = [[1], [2, 3], [4, 5, 6]].map((k) => Uint8Array.from(k));
    assert.equal(hex(KeyList.hashTreeRoot(keys)), hex(listRoot(keys.map(refByteListRoot))));
  });
});

describe('caps: Option and unions', () => {
  it('encodes and hashes Option[Key]', () => {
    assert.deepEqual(OptionKey.serialize({ selector: 0, value: null }), Uint8Array.of(0));
    assert.deepEqual(OptionKey.serialize({ selector: 1, value: Uint8Array.of(7, 8) }), Uint8Array.of(1, 7, 8));
    assert.equal(hex(OptionKey.hashTreeRoot({ selector: 0, value: null })), hex(mixIn(new Uint8Array(32), 0)));
    assert.equal(hex(OptionKey.hashTreeRoot({ selector: 1, value: Uint8Array.of(7) })), hex(mixIn(refByteListRoot(Uint8Array.of(7)), 1)));
  });
  it('mixes the Cap selector into the hash (Type = 4)', () => {
    const chain = sha256(Uint8Array.of(1));
    assert.equal(hex(capHash({ kind: 'Type', value: { imageHashChain: chain } })), hex(mixIn(containerRoot([chain]), 4)));
  });
  it('hashes sorted-map entries as (key, value) pair containers', () => {
    const h1 = sha256(Uint8Array.of(1));
    const h2 = sha256(Uint8Array.of(2));
    const slots = [{ key: Uint8Array.of(1), value: h1 }, { key: Uint8Array.of(2, 3), value: h2 }];
    const pairs = slots.map((s) => containerRoot([refByteListRoot(s.key), s.value]));
    assert.equal(hex(capHash({ kind: 'CNode', value: { slots } })), hex(mixIn(containerRoot([listRoot(pairs)]), 3)));
    assert.equal(hex(CNodeCapType.hashTreeRoot({ slots })), hex(containerRoot([listRoot(pairs)])));
  });
});

describe('caps: DataCap', () => {
  it('pads to whole pages, at least one', () => {
    assert.equal(DataCap.fromBytes(new Uint8Array(0)).size, PAGE_SIZE);
    assert.equal(DataCap.fromBytes(new Uint8Array(5)).contentLen(), PAGE_SIZE);
    assert.equal(DataCap.fromBytes(new Uint8Array(PAGE_SIZE + 1)).size, 2 * PAGE_SIZE);
    assert.equal(DataCap.fromBytes(Uint8Array.of(1), 3 * PAGE_SIZE - 10).size, 3 * PAGE_SIZE);
    const c = DataCap.fromBytes(Uint8Array.of(9, 8), 100);
    assert.deepEqual(c.bytes().subarray(0, 3), Uint8Array.of(9, 8, 0));
    assertCode(() => DataCap.fromBytes(new Uint8Array(10), 5), 'DataCap.BadSize');
  });
  it('hashes both forms the same, matching an independent merkleization', () => {
    const content = new Uint8Array(3 * PAGE_SIZE);
    content.set(bytesOf(PAGE_SIZE, 1), 0);
    content.set(bytesOf(100, 2), 2 * PAGE_SIZE + 17); // page 1 stays zero
    const expected = hex(refDataCapHash(content));
    assert.equal(hex(DataCap.fromBytes(content).hash()), expected);
    assert.equal(hex(DataCap.paged(content).hash()), expected);
    assert.equal(hex(capHash({ kind: 'Data', value: DataCap.paged(content) })), expected);
    const pages = [0, 1, 2].map((i) => content.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    assert.equal(hex(CapType.hashTreeRoot({ selector: 2, value: { pages } })), expected);
  });
  it('hashes a sparse Paged cap like its dense Inline twin', () => {
    const size = 301 * PAGE_SIZE;
    const dense = new Uint8Array(size);
    dense.set(bytesOf(50, 4), 5 * PAGE_SIZE);
    dense.set(bytesOf(PAGE_SIZE, 5), 300 * PAGE_SIZE);
    const sparse = DataCap.fromPages(size, [[5, bytesOf(50, 4)], [300, bytesOf(PAGE_SIZE, 5)]]);
    assert.equal(hex(sparse.hash()), hex(DataCap.fromBytes(dense).hash()));
    assert.equal(hex(sparse.hash()), hex(refDataCapHash(dense)));
    const pages = Array.from({ length: 301 }, (_, i) => dense.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    assert.equal(hex(sparse.hash()), hex(mixIn(DataCapType.hashTreeRoot({ pages }), 2)));
  });
  it('hashes a 4 GiB mostly-zero cap without allocating it, an explicit zero page like an absent one', () => {
    const size = 2 ** 32;
    const a = DataCap.fromPages(size, [[7, Uint8Array.of(1)]]);
    const b = DataCap.fromPages(size, [[7, Uint8Array.of(1)], [1000, new Uint8Array(PAGE_SIZE)]]);
    assert.equal(hex(a.hash()), hex(b.hash()));
    const empty = DataCap.fromPages(size, []);
    assert.equal(hex(empty.hash()), hex(mixIn(mixIn(refZeroHash(27), 2 ** 20), 2)));
    assertCode(() => DataCap.fromPages(size + PAGE_SIZE, []), 'DataCap.TooLarge');
  });
  it('shares pages between clones and copies on write', () => {
    const content = bytesOf(2 * PAGE_SIZE, 6);
    const original = DataCap.paged(content);
    const before = hex(original.hash());
    const copy = original.clone();
    assert.equal([...copy.storedPages()][1]![1], [...original.storedPages()][1]![1], 'a clone shares page bytes');
    copy.write(PAGE_SIZE - 1, Uint8Array.of(0xaa, 0xbb)); // straddles both pages
    assert.deepEqual(original.bytes(), content);
    assert.equal(hex(original.hash()), before);
    const expected = content.slice();
    expected.set([0xaa, 0xbb], PAGE_SIZE - 1);
    assert.deepEqual(copy.bytes(), expected);
    assert.equal(hex(copy.hash()), hex(DataCap.fromBytes(expected).hash()));
    original.write(0, Uint8Array.of(1)); // the original's pages are shared too: it must copy as well
    assert.equal(copy.bytes()[0], content[0]);
    assertCode(() => copy.write(2 * PAGE_SIZE - 1, Uint8Array.of(1, 2)), 'DataCap.OutOfRange');
  });
  it('clones the Inline form independently', () => {
    const a = DataCap.fromBytes(Uint8Array.of(1, 2, 3));
    const b = a.clone();
    b.write(0, Uint8Array.of(9));
    assert.equal(a.bytes()[0], 1);
    assert.notEqual(hex(a.hash()), hex(b.hash()));
  });
});

describe('caps: Cap bytes', () => {
  const samples: CapValue[] = [
    { kind: 'Type', value: { imageHashChain: sha256(Uint8Array.of(3)) } },
    { kind: 'CNode', value: { slots: [{ key: Uint8Array.of(1), value: sha256(Uint8Array.of(4)) }] } },
    { kind: 'Instance', value: { image: sha256(Uint8Array.of(5)), cnode: sha256(Uint8Array.of(6)), memory: [{ start: 0x1000_0000n, data: sha256(Uint8Array.of(7)) }], regs: Array.from({ length: 13 }, (_, i) => BigInt(i)), pc: 4n, gas: 1000n } },
    { kind: 'Data', value: DataCap.fromBytes(bytesOf(5000, 8)) },
  ];
  for (const cap of samples) {
    it(`round-trips a ${cap.kind} cap with an unchanged hash`, () => {
      const bytes = encodeCap(cap);
      const back = decodeCap(bytes);
      assert.equal(back.kind, cap.kind);
      assert.equal(hex(capHash(back)), hex(capHash(cap)));
      assert.deepEqual(encodeCap(back), bytes);
    });
  }
  it('decodes strictly', () => {
    const type = encodeCap(samples[0]!);
    assertCode(() => decodeCap(new Uint8Array(0)), 'Decode.Truncated');
    assertCode(() => decodeCap(Uint8Array.of(9, ...type.subarray(1))), 'Decode.BadSelector');
    assertCode(() => decodeCap(Uint8Array.of(...type, 0)), 'Decode.TrailingBytes');
    assertCode(() => decodeCap(type.subarray(0, 20)), 'Decode.Truncated');
    const h = sha256(Uint8Array.of(1));
    const cnode = (keys: number[][]) => encodeCap({ kind: 'CNode', value: { slots: keys.map((k) => ({ key: Uint8Array.from(k), value: h })) } });
    assert.equal(decodeCap(cnode([[1], [1, 0], [2]])).kind, 'CNode');
    assertCode(() => decodeCap(cnode([[2], [1]])), 'Decode.UnsortedKeys', 'slots[1]');
    assertCode(() => decodeCap(cnode([[1, 0], [1]])), 'Decode.UnsortedKeys', 'slots[1]');
    assertCode(() => decodeCap(cnode([[1], [1]])), 'Decode.DuplicateKey', 'slots[1]');
  });
  it('stores the TypeCap as the bare 32-byte chain after the selector', () => {
    const chain = sha256(Uint8Array.of(9));
    assert.deepEqual(encodeCap({ kind: 'Type', value: { imageHashChain: chain } }), Uint8Array.of(4, ...chain));
    assert.deepEqual(TypeCapType.serialize({ imageHashChain: chain }), chain);
  });
});

describe('caps: type chains', () => {
  it('uses Blake2b-256', () => {
    // RFC 7693 parameters with a 32-byte digest; the well-known hash of the empty input.
    assert.equal(hex(blake2b(new Uint8Array(0), { dkLen: 32 })), '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8');
  });
  it('extends as Blake2b-256(prev ‖ next) and depends on order', () => {
    const a = sha256(Uint8Array.of(1));
    const b = sha256(Uint8Array.of(2));
    const ab = typeChainExtend(typeChainStart(a), b);
    assert.equal(hex(ab.imageHashChain), hex(blake2b(Uint8Array.of(...a, ...b), { dkLen: 32 })));
    assert.notEqual(hex(ab.imageHashChain), hex(typeChainExtend(typeChainStart(b), a).imageHashChain));
    assert.deepEqual(typeChainStart(a).imageHashChain, a);
  });
});

describe('caps: batched byte-list merkleizer', () => {
  it('matches the reference for every chunk-count shape', () => {
    for (const n of [0, 1, 31, 32, 33, 64, 65, 96, 1000, 4096 * 3 + 5]) {
      const bytes = bytesOf(n, n + 1);
      assert.equal(hex(byteListRoot(bytes, 2 ** 32)), hex(refByteListRoot(bytes)), `length ${n}`);
    }
  });
});
