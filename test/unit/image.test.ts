import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CODE_BASE, DataCap, MAX_CODE_SIZE, PAGE_SIZE } from '../../lib/caps/index.js';
import { nub } from '../support/cli.js';
import {
  Image, ImageBuilder, admitImage, codeMapping, decodeImage, encodeImage, imageCap, imageContentHash,
  mappingIsPinned, materialise, validateDataDesc, type DataDescValue, type ImageValue,
} from '../../lib/image/index.js';
import { byteListRoot, containerRoot, listRoot, mixIn, uintChunk } from './caps-ssz-reference.test.js';
import { expectNubError as assertCode } from '../support/nub-error.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function filled(n: number, byte: number): Uint8Array {
  return new Uint8Array(n).fill(byte);
}

/** A small image touching every part of the format. */
function sampleBuilder(): ImageBuilder {
  const pinned = new Uint8Array(3 * PAGE_SIZE);
  pinned.set(filled(10, 0xab), 0); // page 0: ten bytes then zeros (trimmed to 10)
  pinned.set(filled(PAGE_SIZE, 0x11), 2 * PAGE_SIZE); // page 1 stays zero (elided)
  return new ImageBuilder()
    .setCode(Uint8Array.of(0x13, 0, 0, 0, 0x0b, 0x20, 0, 0))
    .addEndpoint(1, { entryPc: 4, initialRegs: { 7: 42n } })
    .addEndpoint(0, { entryPc: 0, argRegisters: 2, argCnodeSize: 1 })
    .addInitialData([2, 1], filled(PAGE_SIZE, 0x11)) // same page as pinned page 2: stored once
    .addPinnedData(5, pinned)
    .addStack(9, 0x2000_0000, 2 * PAGE_SIZE)
    .addMapping(0x1000_0000, 3 * PAGE_SIZE, 5)
    .addMapping(0x1100_0000, PAGE_SIZE, [[2, 1]])
    .setYieldReceiverSlot([7, 7])
    .addGasSlot(3)
    .addQuotaSlot(4);
}

describe('image: byte layout', () => {
  it('lays a minimal image out exactly as SPEC section 3', () => {
    const image = new ImageBuilder().build();
    const bytes = encodeImage(image);
    // code {0,0}; offsets of endpoints, mappings, pinned, initial, yield = 40 (all empty), then
    // gas, quota, arena = 41 after the one-byte None; then that None selector.
    const expected = Buffer.alloc(41);
    for (const [i, off] of [40, 40, 40, 40, 40, 41, 41, 41].entries()) expected.writeUInt32LE(off, 8 + 4 * i);
    assert.deepEqual(bytes, new Uint8Array(expected));
  });
  it('computes the content hash as hash_tree_root(Image) (independent merkleization)', () => {
    const image = new ImageBuilder().setCode(Uint8Array.of(1, 2, 3)).addGasSlot([5, 6]).setYieldReceiverSlot(4).build();
    const empty = listRoot([]);
    const expected = containerRoot([
      containerRoot([uintChunk(0, 4), uintChunk(3, 4)]), // code at arena offset 0, 3 bytes
      empty, empty, empty, empty,
      mixIn(byteListRoot(Uint8Array.of(4)), 1),
      listRoot([byteListRoot(Uint8Array.of(5, 6))]),
      empty,
      byteListRoot(Uint8Array.of(1, 2, 3)),
    ]);
    assert.equal(hex(imageContentHash(image)), hex(expected));
  });
  it('computes the same content hash as the generic SSZ path for larger arenas', () => {
    for (const codeLen of [1, 33, 100, 5000]) {
      const image = sampleBuilder().setCode(filled(codeLen, 3)).build();
      assert.equal(hex(imageContentHash(image)), hex(Image.hashTreeRoot(image)), `code ${codeLen}`);
    }
  });
});

describe('image: builder', () => {
  it('packs the canonical arena: pinned then initial in key order, zero pages out, trimmed, shared, code last', () => {
    const image = sampleBuilder().build();
    const pinnedDesc = (image.pinnedSlots[0]!.value.value as { desc: DataDescValue }).desc;
    assert.deepEqual(pinnedDesc.pages, [
      { pageIndex: 0, arenaOff: 0, len: 10 },
      { pageIndex: 2, arenaOff: 10, len: PAGE_SIZE },
    ]);
    assert.equal(pinnedDesc.size, BigInt(3 * PAGE_SIZE));
    const initial = image.initialSlots.map((s) => [Array.from(s.key), s.value.pages] as const);
    assert.deepEqual(initial, [
      [[2, 1], [{ pageIndex: 0, arenaOff: 10, len: PAGE_SIZE }]], // identical page stored once
      [[9], []], // the stack: all zero
    ]);
    assert.deepEqual(image.code, { arenaOff: 10 + PAGE_SIZE, len: 8 });
    assert.equal(image.arena.length, 10 + PAGE_SIZE + 8);
    assert.deepEqual(image.endpoints.map((e) => Array.from(e.key)), [[0], [1]]);
    assert.deepEqual(image.endpoints[1]!.value.initialRegs, [{ key: 1, value: 0x2000_0000n }, { key: 7, value: 42n }]);
  });
  it('gives the same bytes whatever order the parts are added in', () => {
    const a = new ImageBuilder().addInitialData(2, filled(5, 1)).addPinnedData(1, filled(5, 2)).addEndpoint(3, { entryPc: 0 }).addEndpoint(1, { entryPc: 0 });
    const b = new ImageBuilder().addEndpoint(1, { entryPc: 0 }).addEndpoint(3, { entryPc: 0 }).addPinnedData(1, filled(5, 2)).addInitialData(2, filled(5, 1));
    assert.deepEqual(a.encode(), b.encode());
  });
  it('round-trips: build, encode, decode, rebuild give identical bytes and hash', () => {
    const image = sampleBuilder().build();
    const bytes = encodeImage(image);
    const decoded = decodeImage(bytes);
    assert.deepEqual(encodeImage(decoded), bytes);
    const rebuilt = ImageBuilder.fromImage(decoded).encode();
    assert.deepEqual(rebuilt, bytes);
    assert.equal(hex(imageContentHash(decodeImage(rebuilt))), hex(imageContentHash(image)));
  });
  it('refuses bad parts', () => {
    assertCode(() => new ImageBuilder().addPinnedData(1, filled(1, 1)).addInitialData(1, filled(1, 1)), 'Builder.DuplicateSlot');
    assertCode(() => new ImageBuilder().addEndpoint(0, { entryPc: 0, initialRegs: { 13: 1 } }), 'RegisterIndexOutOfRange');
    assertCode(() => new ImageBuilder().addMapping(0x1000, PAGE_SIZE, 1), 'Builder.BadMapping');
    assertCode(() => new ImageBuilder().addMapping(0x1000_0000, PAGE_SIZE, []), 'SourcePathEmpty');
    assertCode(() => new ImageBuilder().addPinnedData(1, filled(10, 1), 5), 'DataCap.BadSize');
  });
});

describe('image: strict decoding', () => {
  const good = sampleBuilder().build();

  function withEndpoints(keys: number[][]): Uint8Array {
    const ep = good.endpoints[0]!.value;
    return Image.serialize({ ...good, endpoints: keys.map((k) => ({ key: Uint8Array.from(k), value: ep })) });
  }

  it('rejects unsorted and duplicate map keys', () => {
    assert.equal(decodeImage(withEndpoints([[0], [0, 0], [1]])).endpoints.length, 3);
    assertCode(() => decodeImage(withEndpoints([[1], [0]])), 'Decode.UnsortedKeys', 'endpoints[1]');
    assertCode(() => decodeImage(withEndpoints([[0], [0]])), 'Decode.DuplicateKey', 'endpoints[1]');
    const regs = [{ key: 7, value: 1n }, { key: 2, value: 1n }];
    const bytes = Image.serialize({ ...good, endpoints: [{ key: Uint8Array.of(0), value: { ...good.endpoints[0]!.value, initialRegs: regs } }] });
    assertCode(() => decodeImage(bytes), 'Decode.UnsortedKeys', 'endpoints[0].value.initial_regs[1]');
  });
  it('rejects truncation, bad offsets, bad selectors and trailing bytes', () => {
    const bytes = encodeImage(good);
    assertCode(() => decodeImage(bytes.subarray(0, 39)), 'Decode.Truncated', '(root)');
    const badFirst = bytes.slice();
    badFirst[8] = 44; // first offset must be 40
    assertCode(() => decodeImage(badFirst), 'Decode.BadOffset', 'endpoints');
    const yieldAt = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8 + 4 * 4, true);
    const badSelector = bytes.slice();
    badSelector[yieldAt] = 2;
    assertCode(() => decodeImage(badSelector), 'Decode.BadSelector', 'yield_receiver_slot');
    const noneWithBytes = bytes.slice();
    noneWithBytes[yieldAt] = 0; // None, but the key bytes still follow
    assertCode(() => decodeImage(noneWithBytes), 'Decode.TrailingBytes', 'yield_receiver_slot');
    const backwards = bytes.slice();
    new DataView(backwards.buffer).setUint32(8 + 4 * 2, 41, true); // pinned_slots before memory_mappings' start
    assertCode(() => decodeImage(backwards), 'Decode.BadOffset', 'pinned_slots');
  });
});

describe('image: admission', () => {
  const good = sampleBuilder().build();
  const arenaLen = good.arena.length;
  const desc = (size: number, pages: [number, number, number][]): DataDescValue => ({
    size: BigInt(size), pages: pages.map(([pageIndex, arenaOff, len]) => ({ pageIndex, arenaOff, len })),
  });

  it('admits the sample image into an ImageCap', () => {
    const cap = imageCap(good);
    assert.equal(hex(cap.code), '130000000b200000');
    assert.deepEqual(cap.endpoints.map((e) => [Array.from(e.key), e.entryPc, e.argRegisters, e.argCnodeSize, e.stackTop]), [
      [[0], 0n, 2, 1, 0x2000_0000n],
      [[1], 4n, 0, 0, 0x2000_0000n],
    ]);
    assert.equal(cap.endpoints[1]!.initialRegs.length, 13);
    assert.equal(cap.endpoints[1]!.initialRegs[7], 42n);
    const pinned = new Uint8Array(3 * PAGE_SIZE);
    pinned.set(filled(10, 0xab), 0);
    pinned.set(filled(PAGE_SIZE, 0x11), 2 * PAGE_SIZE);
    assert.deepEqual(cap.pinned.map((p) => [Array.from(p.slot), hex(p.capHash)]), [[[5], hex(DataCap.fromBytes(pinned).hash())]]);
    assert.deepEqual(cap.initial.map((p) => Array.from(p.slot)), [[2, 1], [9]]);
    assert.equal(hex(cap.initial[1]!.capHash), hex(DataCap.fromBytes(new Uint8Array(0), 2 * PAGE_SIZE).hash()));
    assert.deepEqual(cap.yieldReceiverSlot, Uint8Array.of(7, 7));
    const at = (start: bigint) => cap.mappings.find((m) => m.start === start)!;
    assert.ok(mappingIsPinned(cap, at(0x1000_0000n)));
    assert.ok(!mappingIsPinned(cap, at(0x1100_0000n)));
    assert.deepEqual(codeMapping(cap), { base: CODE_BASE, bytes: cap.code });
    assert.equal(codeMapping(imageCap(new ImageBuilder().build())), null);
  });
  it('returns the data caps and content hash from admitImage', () => {
    const admitted = admitImage(encodeImage(good));
    assert.equal(hex(admitted.contentHash), hex(imageContentHash(good)));
    const stack = admitted.dataCaps.get('09')!;
    assert.equal(stack.pinned, false);
    assert.equal(stack.cap.size, 2 * PAGE_SIZE);
    assert.equal(admitted.dataCaps.get('05')!.pinned, true);
    assert.deepEqual(admitted.dataCaps.get('0201')!.cap.bytes(), filled(PAGE_SIZE, 0x11));
  });
  it('checks code size, then the code window', () => {
    assertCode(() => imageCap({ ...good, code: { arenaOff: 2 ** 32 - 1, len: MAX_CODE_SIZE + 1 } }), 'CodeTooLarge', 'code.len');
    assertCode(() => imageCap({ ...good, code: { arenaOff: arenaLen - 3, len: 4 } }), 'CodeRefOutOfRange', 'code');
    assertCode(() => imageCap({ ...good, code: { arenaOff: 2 ** 32 - 1, len: 2 } }), 'CodeRefOutOfRange', 'code');
  });
  it('validates DataDesc in SPEC order, first failure wins', () => {
    const check = (d: DataDescValue) => () => validateDataDesc(d, arenaLen);
    assertCode(check(desc(100, [[9, arenaLen, 0]])), 'DataDesc.SizeNotPageMultiple', 'size');
    assertCode(check(desc(PAGE_SIZE, [[9, arenaLen, 0]])), 'DataDesc.BadLen', 'pages[0]');
    assertCode(check(desc(PAGE_SIZE, [[0, 0, PAGE_SIZE + 1]])), 'DataDesc.BadLen', 'pages[0]');
    assertCode(check(desc(PAGE_SIZE, [[9, arenaLen, 1]])), 'DataDesc.OutOfRange', 'pages[0]');
    assertCode(check(desc(PAGE_SIZE, [[0, 2 ** 32 - 1, 2]])), 'DataDesc.OutOfRange', 'pages[0]');
    assertCode(check(desc(PAGE_SIZE, [[1, 0, 1]])), 'DataDesc.PageIndexOutOfRange', 'pages[0]');
    assertCode(check(desc(3 * PAGE_SIZE, [[1, 0, 1], [1, 0, 1]])), 'DataDesc.NotCanonical', 'pages[1]');
    assertCode(check(desc(3 * PAGE_SIZE, [[2, 0, 1], [1, 0, 1]])), 'DataDesc.NotCanonical', 'pages[1]');
    assert.doesNotThrow(check(desc(0, [])));
  });
  it('checks pinned descs before initial ones, with the slot in the path', () => {
    const bad = desc(100, []);
    const image: ImageValue = {
      ...good,
      pinnedSlots: [{ key: Uint8Array.of(5), value: { selector: 0, value: { desc: desc(PAGE_SIZE, [[3, 0, 1]]) } } }],
      initialSlots: [{ key: Uint8Array.of(2), value: bad }],
    };
    assertCode(() => imageCap(image), 'DataDesc.PageIndexOutOfRange', 'pinned_slots[[5]].desc.pages[0]');
    assertCode(() => imageCap({ ...image, pinnedSlots: [] }), 'DataDesc.SizeNotPageMultiple', 'initial_slots[[2]].size');
    const badPage = { ...image, pinnedSlots: [], initialSlots: [{ key: Uint8Array.of(2), value: desc(PAGE_SIZE, [[0, 0, 1], [0, 0, 1]]) }] };
    assertCode(() => imageCap(badPage), 'DataDesc.NotCanonical', 'initial_slots[[2]].pages[1]');
  });
  it('checks register indexes, then mapping source paths', () => {
    const ep = { ...good.endpoints[0]!.value, initialRegs: [{ key: 13, value: 1n }] };
    const regs: ImageValue = { ...good, endpoints: [{ key: Uint8Array.of(4), value: ep }], memoryMappings: [] };
    assertCode(() => imageCap(regs), 'RegisterIndexOutOfRange', 'endpoints[[4]].initial_regs[13]');
    const mapping = (steps: number) => ({ start: 0x1000_0000n, size: 4096n, source: Array.from({ length: steps }, () => Uint8Array.of(5)) });
    assertCode(() => imageCap({ ...good, memoryMappings: [mapping(1), mapping(0)] }), 'SourcePathEmpty', 'memory_mappings[1].source');
    assertCode(() => imageCap({ ...good, memoryMappings: [mapping(9)] }), 'SourcePathTooDeep', 'memory_mappings[0].source');
    assert.equal(imageCap({ ...good, memoryMappings: [mapping(8)] }).mappings[0]!.source.length, 8);
    // A bad desc is reported before a bad register.
    assertCode(() => imageCap({ ...regs, initialSlots: [{ key: Uint8Array.of(2), value: desc(1, []) }] }), 'DataDesc.SizeNotPageMultiple');
  });
  it('materialises large declared sizes sparsely, and refuses more than 4 GiB', () => {
    const arena = filled(3, 7);
    const cap = materialise(desc(2 ** 32, [[10, 0, 3]]), arena);
    assert.equal(cap.size, 2 ** 32);
    assert.equal(cap.form, 'Paged');
    assert.deepEqual([...cap.storedPages()].map(([i, b]) => [i, Array.from(b.subarray(0, 4))]), [[10, [7, 7, 7, 0]]]);
    assertCode(() => materialise(desc(2 ** 32 + PAGE_SIZE, []), arena), 'DataCap.TooLarge', 'size');
    const huge: ImageValue = { ...good, initialSlots: [{ key: Uint8Array.of(2), value: { size: 2n ** 64n - 4096n, pages: [] } }] };
    assertCode(() => imageCap(huge), 'DataCap.TooLarge', 'initial_slots[[2]].size');
  });
});

describe('nub inspect', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nub-inspect-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports an image as JSON', async () => {
    const file = join(dir, 'image.ssz');
    const image = sampleBuilder().build();
    writeFileSync(file, encodeImage(image));
    const run = nub(['inspect', file, '--json']);
    assert.equal(run.status, 0);
    assert.equal(run.json!.ok, true);
    const report = run.json!.image;
    assert.equal(report.contentHash, hex(imageContentHash(image)));
    assert.equal(report.codeSize, 8);
    assert.deepEqual(report.endpoints[1].registers, [{ index: 1, value: '0x20000000' }, { index: 7, value: '0x2a' }]);
    assert.deepEqual(report.mappings.map((m: { access: string }) => m.access), ['writable', 'read-only', 'writable']);
    assert.deepEqual(report.slots.map((s: { slot: string; kind: string; size: number }) => [s.slot, s.kind, s.size]), [
      ['[5]', 'pinned data', 3 * PAGE_SIZE], ['[2,1]', 'initial data', PAGE_SIZE], ['[9]', 'initial data', 2 * PAGE_SIZE],
    ]);
    assert.deepEqual([report.yieldReceiverSlot, report.gasSlots, report.quotaSlots], ['[7,7]', ['[3]'], ['[4]']]);
  });
  it('prints tables', async () => {
    const file = join(dir, 'image.ssz');
    writeFileSync(file, sampleBuilder().encode());
    const run = nub(['inspect', file]);
    assert.equal(run.status, 0);
    assert.match(run.stdout, /0x10000000\s+0x3000\s+read-only\s+\[5\]/);
  });
  it('reports the admission error with its path and fails', async () => {
    const file = join(dir, 'bad.ssz');
    const image = sampleBuilder().build();
    writeFileSync(file, encodeImage({ ...image, initialSlots: [{ key: Uint8Array.of(2), value: { size: 4096n, pages: [{ pageIndex: 0, arenaOff: 0, len: 0 }] } }] }));
    const json = nub(['inspect', file, '--json']);
    assert.equal(json.status, 1);
    assert.deepEqual(json.json, { ok: false, error: { code: json.json!.error.code, message: json.json!.error.message, path: 'initial_slots[[2]].pages[0]' } });
    const text = nub(['inspect', file]);
    assert.equal(text.status, 1);
    assert.match(text.stderr, /DataDesc\.BadLen.*initial_slots\[\[2\]\]\.pages\[0\]/);
  });
});

