/**
 * Kernel operations (docs/machine.md "Caps at run time") through the Sandbox API, the
 * same expectations on every engine: test/unit/kernel-ops.test.ts runs them on engine
 * local, test/kvm/kernel-ops.test.ts on kvm. Every status of every operation, with
 * the exact gas, the resulting caps (by hash) and memory.
 */
import assert from 'node:assert/strict';
import { DataCap, toHex } from '../../lib/caps/index.js';
import { isNubError, type NubErrorCode } from '../../lib/errors.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { CODE_BASE, DATA_BASE, Exit, Gas } from '../../lib/machine/abi.js';
import { KernelGas, KernelOp, KernelStatus, SlotRef } from '../../lib/machine/kernel-ops.js';
import { Sandbox, type EngineName, type InvokeOptions, type LoadedImage, type SandboxResult } from '../../lib/sandbox/index.js';
import { A, assemble, X } from '../support/machine-asm.js';

const RO = DATA_BASE; // pinned slot 5, two pages
const RW = DATA_BASE + 0x4000; // initial slot 6, two pages (the cap has one)
const ARG_MAP = DATA_BASE + 0x10000; // argument cap 0, two pages
const PINNED = 5, INITIAL = 6, IMAGE = 7, FREE = 9;
const ARG = (i: number) => SlotRef.ARG_BASE + i;
const ARG_SLOTS = 3;
/** The gas of `ecalli op; ecalli 0` without the operation's own part. */
const FRAME_GAS = 2 * Gas.CALL;

const pinnedBytes = Uint8Array.from({ length: 0x2000 }, (_, i) => (i * 7 + 3) & 0xff);
const initialBytes = Uint8Array.from({ length: 0x1000 }, (_, i) => (i % 251) + 1);
const dataHash = (bytes: Uint8Array) => toHex(bytes.length === 0 ? DataCap.fromPages(0, []).hash() : DataCap.fromBytes(bytes).hash());

/** Endpoint `op` runs `ecalli op; ecalli 0` with φ7..φ10 = the invoke's args; endpoint 100 reads the argument mapping. */
export function opsImage(withArgMapping: boolean): ImageBuilder {
  const ops = [KernelOp.COPY, KernelOp.MOVE, KernelOp.DROP, KernelOp.DATA_SIZE, KernelOp.READ_DATA, KernelOp.MINT_DATA, 4, 19, 25, 63];
  const code = ops.flatMap((op) => [A.ecalli(op), A.ecalli(0)]);
  const b = new ImageBuilder()
    .addPinnedData(PINNED, pinnedBytes).addMapping(RO, 0x2000, PINNED)
    .addInitialData(INITIAL, initialBytes).addMapping(RW, 0x2000, INITIAL)
    .addPinnedImage(IMAGE, new Uint8Array(32).fill(0xab));
  ops.forEach((op, i) => b.addEndpoint(op, { entryPc: 8 * i, argCnodeSize: ARG_SLOTS }));
  if (withArgMapping) {
    // 100: a0 = [a0], a load from the argument mapping.
    code.push(A.ld(X.a0, X.a0, 0), A.ecalli(0));
    b.addEndpoint(100, { entryPc: 8 * ops.length, argCnodeSize: ARG_SLOTS }).addMapping(ARG_MAP, 0x2000, [0, 0]);
  }
  return b.setCode(assemble(...code));
}

export function kernelOpsSuite(engine: EngineName): void {
  let sandbox: Sandbox;
  let ops: LoadedImage;
  let mapped: LoadedImage;
  before(() => {
    sandbox = Sandbox.create({ engine, memorySize: 64 << 20 });
    ops = sandbox.loadImage(opsImage(false));
    mapped = sandbox.loadImage(opsImage(true));
  });
  after(() => sandbox.close());

  const run = (op: number, args: bigint[], opts: Omit<InvokeOptions, 'args'> = {}, image = ops): SandboxResult =>
    sandbox.invokeSync(image, op, { gas: 1_000_000n, ...opts, args });
  const capsOf = (r: SandboxResult) => r.caps.map((c) => [c.slot, c.kind, toHex(c.hash)]);
  /** Runs `op` and checks HALT, its status and the exact gas. */
  const expectStatus = (op: number, args: bigint[], status: number, opGas: number, opts: Omit<InvokeOptions, 'args'> = {}) => {
    const r = run(op, args, opts);
    assert.equal(r.exit, Exit.HALT, `op ${op}(${args}): exit ${r.exit}`);
    assert.equal(r.regs[7], BigInt(status), `op ${op}(${args}): status`);
    assert.equal(r.gasUsed, BigInt(FRAME_GAS + opGas), `op ${op}(${args}): gas`);
    return r;
  };
  const S = KernelStatus;
  const b = BigInt;

  it('COPY: copies a cap into an empty slot, from pinned slots too; every status in order', () => {
    const r = expectStatus(KernelOp.COPY, [b(PINNED), b(ARG(1))], S.OK, KernelGas.SLOT_OP);
    assert.deepEqual(capsOf(r), [[1, 'Data', dataHash(pinnedBytes)]]);
    const img = expectStatus(KernelOp.COPY, [b(IMAGE), b(ARG(0))], S.OK, KernelGas.SLOT_OP);
    assert.deepEqual(capsOf(img), [[0, 'Image', 'ab'.repeat(32)]]);
    const given = expectStatus(KernelOp.COPY, [b(ARG(0)), b(ARG(2))], S.OK, KernelGas.SLOT_OP, { caps: [Uint8Array.of(1, 2, 3)] });
    assert.deepEqual(capsOf(given), [[0, 'Data', dataHash(Uint8Array.of(1, 2, 3))], [2, 'Data', dataHash(Uint8Array.of(1, 2, 3))]]);
    for (const [src, dst, status] of [
      [0, ARG(1), S.BAD_SLOT], [ARG(ARG_SLOTS), ARG(1), S.BAD_SLOT], [0x200, ARG(1), S.BAD_SLOT], [PINNED, 0, S.BAD_SLOT], [PINNED, ARG(3), S.BAD_SLOT],
      [FREE, 0, S.BAD_SLOT], // src is checked for existence only after both references
      [FREE, ARG(1), S.EMPTY], [ARG(1), ARG(2), S.EMPTY], [INITIAL, PINNED, S.PINNED], [FREE, PINNED, S.EMPTY],
      [PINNED, INITIAL, S.OCCUPIED], [INITIAL, INITIAL, S.OCCUPIED],
    ] as const) expectStatus(KernelOp.COPY, [b(src), b(dst)], status, KernelGas.SLOT_OP);
    // 2^64 - 1 and a value with high bits are no slot either.
    expectStatus(KernelOp.COPY, [(1n << 64n) - 1n, b(ARG(1))], S.BAD_SLOT, KernelGas.SLOT_OP);
    expectStatus(KernelOp.COPY, [(1n << 32n) + b(PINNED), b(ARG(1))], S.BAD_SLOT, KernelGas.SLOT_OP);
  });

  it('MOVE: moves a cap and empties its source; a pinned slot cannot be moved from or into', () => {
    const r = expectStatus(KernelOp.MOVE, [b(ARG(0)), b(ARG(2))], S.OK, KernelGas.SLOT_OP, { caps: [Uint8Array.of(9)] });
    assert.deepEqual(capsOf(r), [[2, 'Data', dataHash(Uint8Array.of(9))]]);
    const init = expectStatus(KernelOp.MOVE, [b(INITIAL), b(ARG(0))], S.OK, KernelGas.SLOT_OP);
    assert.deepEqual(capsOf(init), [[0, 'Data', dataHash(initialBytes)]]);
    for (const [src, dst, status] of [
      [0, ARG(0), S.BAD_SLOT], [INITIAL, ARG(5), S.BAD_SLOT], [FREE, ARG(0), S.EMPTY], [PINNED, ARG(0), S.PINNED],
      [IMAGE, ARG(0), S.PINNED], [INITIAL, PINNED, S.PINNED], [INITIAL, INITIAL, S.OCCUPIED],
    ] as const) expectStatus(KernelOp.MOVE, [b(src), b(dst)], status, KernelGas.SLOT_OP);
  });

  it('DROP: empties a slot; not a pinned one', () => {
    const r = expectStatus(KernelOp.DROP, [b(ARG(1))], S.OK, KernelGas.SLOT_OP, { caps: [Uint8Array.of(1), Uint8Array.of(2)] });
    assert.deepEqual(capsOf(r), [[0, 'Data', dataHash(Uint8Array.of(1))]]);
    expectStatus(KernelOp.DROP, [b(INITIAL)], S.OK, KernelGas.SLOT_OP);
    for (const [slot, status] of [[0, S.BAD_SLOT], [ARG(3), S.BAD_SLOT], [FREE, S.EMPTY], [ARG(0), S.EMPTY], [PINNED, S.PINNED], [IMAGE, S.PINNED]] as const) {
      expectStatus(KernelOp.DROP, [b(slot)], status, KernelGas.SLOT_OP);
    }
  });

  it('DATA_SIZE: the size in bytes in φ8; WRONG_KIND for an Image cap', () => {
    const r = expectStatus(KernelOp.DATA_SIZE, [b(PINNED), 77n], S.OK, KernelGas.SLOT_OP);
    assert.equal(r.regs[8], 0x2000n);
    assert.equal(expectStatus(KernelOp.DATA_SIZE, [b(ARG(0)), 77n], S.OK, KernelGas.SLOT_OP, { caps: [new Uint8Array(0)] }).regs[8], 0n);
    assert.equal(expectStatus(KernelOp.DATA_SIZE, [b(ARG(0)), 77n], S.OK, KernelGas.SLOT_OP, { caps: [new Uint8Array(5000)] }).regs[8], 0x2000n);
    for (const [slot, status] of [[0, S.BAD_SLOT], [FREE, S.EMPTY], [IMAGE, S.WRONG_KIND]] as const) {
      assert.equal(expectStatus(KernelOp.DATA_SIZE, [b(slot), 77n], status, KernelGas.SLOT_OP).regs[8], 77n, 'φ8 is untouched on failure');
    }
  });

  it('READ_DATA: copies bytes into writable memory, charging per 64 bytes; every status in order', () => {
    const readGas = (len: number) => KernelGas.READ_FIXED + Math.ceil(len / KernelGas.READ_BYTES_PER_GAS);
    // Across the end of the initial page into the zero page after it, from an offset in the pinned cap.
    const r = expectStatus(KernelOp.READ_DATA, [b(PINNED), 0x0ff0n, b(RW + 0xf80), 0x100n], S.OK, readGas(0x100));
    const rw = r.memory.find((m) => m.start === RW)!.bytes;
    assert.deepEqual(rw.subarray(0xf80, 0x1080), pinnedBytes.subarray(0xff0, 0x10f0));
    assert.deepEqual(rw.subarray(0, 0xf80), initialBytes.subarray(0, 0xf80), 'bytes before the range are untouched');
    expectStatus(KernelOp.READ_DATA, [b(PINNED), 0x2000n, b(RW), 0n], S.OK, readGas(0)); // empty, at the very end
    expectStatus(KernelOp.READ_DATA, [b(ARG(0)), 1n, b(RW), 1n], S.OK, readGas(1), { caps: [Uint8Array.of(5, 6)] });
    for (const [slot, offset, address, length, status] of [
      [0, 0, RW, 8, S.BAD_SLOT], [FREE, 0, RW, 8, S.EMPTY], [IMAGE, 0, RW, 8, S.WRONG_KIND],
      [PINNED, 0x1ff9, RW, 8, S.OUT_OF_RANGE], [PINNED, 0, RW, 0x2001, S.OUT_OF_RANGE], [PINNED, 2 ** 40, 0, 0, S.OUT_OF_RANGE],
      [PINNED, 0, RO, 8, S.BAD_MEMORY], [PINNED, 0, RW + 0x1ffc, 8, S.BAD_MEMORY], [PINNED, 0, 0x100, 8, S.BAD_MEMORY],
      [PINNED, 0, 2 ** 32 - 4, 8, S.BAD_MEMORY], [PINNED, 0, 2 ** 33, 0, S.BAD_MEMORY],
    ] as const) {
      const bad = expectStatus(KernelOp.READ_DATA, [b(slot), b(offset), b(address), b(length)], status, KernelGas.READ_FIXED);
      assert.deepEqual(bad.memory.find((m) => m.start === RW)!.bytes.subarray(0, 0x1000), initialBytes, 'a failed read writes nothing');
    }
  });

  it('MINT_DATA: a new Data cap of whole pages, zero-padded, hashed like any Data cap; every status in order', () => {
    const mintGas = (len: number) => KernelGas.MINT_FIXED + Math.ceil(len / 0x1000) * KernelGas.MINT_PER_PAGE;
    // Across the two pages of the read-only mapping: two pages, the second one partly.
    const r = expectStatus(KernelOp.MINT_DATA, [b(ARG(0)), b(RO + 0x400), 0x1801n], S.OK, mintGas(0x1801));
    const expected = pinnedBytes.subarray(0x400, 0x400 + 0x1801);
    assert.deepEqual(capsOf(r), [[0, 'Data', dataHash(expected)]]);
    const bytes = r.caps[0]!.bytes();
    assert.equal(bytes.length, 0x2000);
    assert.deepEqual(bytes.subarray(0, 0x1801), expected);
    assert.ok(bytes.subarray(0x1801).every((x) => x === 0), 'zero-padded to the page');
    const empty = expectStatus(KernelOp.MINT_DATA, [b(ARG(2)), 0n, 0n], S.OK, mintGas(0));
    assert.deepEqual(capsOf(empty), [[2, 'Data', dataHash(new Uint8Array(0))]]);
    assert.equal(empty.caps[0]!.bytes().length, 0);
    expectStatus(KernelOp.MINT_DATA, [b(FREE), b(CODE_BASE), 8n], S.OK, mintGas(8)); // the code is readable
    for (const [slot, address, length, status] of [
      [0, RW, 8, S.BAD_SLOT], [ARG(3), RW, 8, S.BAD_SLOT], [PINNED, RW, 8, S.PINNED], [INITIAL, RW, 8, S.OCCUPIED],
      [FREE, RO + 0x1ff8, 16, S.BAD_MEMORY], [FREE, 0x10, 1, S.BAD_MEMORY], [FREE, 2 ** 32 - 8, 16, S.BAD_MEMORY], [FREE, 2 ** 32 + 1, 0, S.BAD_MEMORY],
    ] as const) expectStatus(KernelOp.MINT_DATA, [b(slot), b(address), b(length)], status, KernelGas.MINT_FIXED);
  });

  it('an operation whose charge does not fit stops OUT_OF_GAS at its ecalli, having done nothing', () => {
    for (const [op, args, cost] of [
      [KernelOp.COPY, [b(PINNED), b(ARG(0))], KernelGas.SLOT_OP],
      [KernelOp.DROP, [b(FREE)], KernelGas.SLOT_OP], // the fixed part is charged on failure too
      [KernelOp.READ_DATA, [b(PINNED), 0n, b(RW), 0x41n], KernelGas.READ_FIXED + 2],
      [KernelOp.MINT_DATA, [b(ARG(0)), b(RO), 0x1001n], KernelGas.MINT_FIXED + 2 * KernelGas.MINT_PER_PAGE],
    ] as const) {
      const short = run(op, [...args], { gas: BigInt(Gas.CALL + cost - 1) });
      assert.equal(short.exit, Exit.OUT_OF_GAS, `op ${op}`);
      assert.equal(short.pc, CODE_BASE + 8 * [KernelOp.COPY, KernelOp.MOVE, KernelOp.DROP, KernelOp.DATA_SIZE, KernelOp.READ_DATA, KernelOp.MINT_DATA].indexOf(op));
      assert.equal(short.gasLeft, BigInt(cost - 1));
      assert.equal(short.regs[7], args[0], 'φ7 untouched');
      assert.deepEqual(short.caps, []);
      const exact = run(op, [...args], { gas: BigInt(FRAME_GAS + cost) });
      assert.equal(exact.exit, Exit.HALT, `op ${op} with exactly enough gas`);
      assert.equal(exact.gasLeft, 0n);
    }
  });

  it('kernel numbers without an operation are a PANIC at the ecalli', () => {
    [4, 19, 25, 63].forEach((op, i) => {
      const r = run(op, [b(PINNED), b(ARG(0))]);
      assert.equal(r.exit, Exit.PANIC, `ecalli ${op}`);
      assert.equal(r.pc, CODE_BASE + 8 * (6 + i));
      assert.equal(r.gasUsed, BigInt(Gas.CALL));
    });
  });

  it('maps an argument cap read-only at its mapping, zeros past its end, without it in any slot list', () => {
    const arg = Uint8Array.from({ length: 0x1000 }, (_, i) => i & 0xff);
    new DataView(arg.buffer).setBigUint64(0x10, 0x0102_0304_0506_0708n, true);
    assert.equal(sandbox.invokeSync(mapped, 100, { args: [b(ARG_MAP + 0x10)], caps: [arg] }).regs[7], 0x0102_0304_0506_0708n);
    assert.equal(sandbox.invokeSync(mapped, 100, { args: [b(ARG_MAP + 0x1000)], caps: [arg] }).regs[7], 0n, 'past the cap: zeros (also when the zero page reuses memory a minted cap had)');
    const other = sandbox.invokeSync(mapped, 100, { args: [b(ARG_MAP + 0x10)], caps: [Uint8Array.of(0x42)] });
    assert.equal(other.regs[7], 0n, 'a later invoke maps its own cap');
    const first8 = sandbox.invokeSync(mapped, 100, { args: [b(ARG_MAP)], caps: [Uint8Array.of(0x42)] });
    assert.equal(first8.regs[7], 0x42n);
    // Read-only: reading it into itself is BAD_MEMORY, and the mapping is not in `memory`.
    const self = sandbox.invokeSync(mapped, KernelOp.READ_DATA, { args: [b(ARG(0)), 0n, b(ARG_MAP), 8n], caps: [arg] });
    assert.equal(self.regs[7], BigInt(S.BAD_MEMORY));
    assert.ok(!self.memory.some((m) => m.start === ARG_MAP));
    // Passed by hash once stored: the result is the same cap.
    const byHash = sandbox.invokeSync(mapped, KernelOp.COPY, { args: [b(ARG(0)), b(ARG(1))], caps: [{ hash: DataCap.fromBytes(arg).hash() }] });
    assert.deepEqual(capsOf(byHash), [[0, 'Data', dataHash(arg)], [1, 'Data', dataHash(arg)]]);
    assert.deepEqual(byHash.caps[1]!.bytes(), arg);
  });

  it('shows an argument mapping to host functions too: readable, not writable', () => {
    const arg = Uint8Array.from({ length: 0x1800 }, (_, i) => (i * 5) & 0xff);
    let seen: (Uint8Array | undefined)[] = [];
    let wrote: boolean | undefined;
    sandbox.registerHostFunction(100, (_regs, memory) => {
      seen = [memory.read(ARG_MAP + 0xffc, 8), memory.read(ARG_MAP + 0x1ff8, 8)];
      wrote = memory.write(ARG_MAP, Uint8Array.of(1));
      return 0n;
    });
    try {
      const image = sandbox.loadImage(new ImageBuilder().setCode(assemble(A.ecalli(100), A.ecalli(0)))
        .addEndpoint(1, { entryPc: 0, argCnodeSize: 1 }).addMapping(ARG_MAP, 0x2000, [0, 0]));
      assert.equal(sandbox.invokeSync(image, 1, { caps: [arg] }).exit, Exit.HALT);
    } finally {
      sandbox.unregisterHostFunction(100);
    }
    assert.deepEqual(seen[0], arg.subarray(0xffc, 0x1004), 'across the page boundary inside the cap');
    assert.deepEqual(seen[1], new Uint8Array(8), 'past the cap: zeros, to the mapping\'s end');
    assert.equal(wrote, false, 'read-only');
  });

  it('refuses bad argument caps before anything runs, with typed errors', () => {
    const code = (f: () => unknown, c: NubErrorCode) => assert.throws(f, (e) => isNubError(e, c), c);
    code(() => run(KernelOp.COPY, [], { caps: [Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3), Uint8Array.of(4)] }), 'Machine.TooManyCaps');
    code(() => sandbox.invokeSync(mapped, 100, { args: [b(ARG_MAP)] }), 'Machine.MissingCap');
    code(() => sandbox.invokeSync(mapped, 100, { args: [b(ARG_MAP)], caps: [{ hash: mapped.imageHash }] }), 'Machine.CapKind');
    code(() => run(KernelOp.COPY, [], { caps: [{ hash: new Uint8Array(32).fill(7) }] }), 'UnknownCap');
    code(() => run(KernelOp.COPY, [], { caps: [42 as unknown as Uint8Array] }), 'BadArgument');
    const reserved = sandbox.loadImage(new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0 }).addGasSlot(3));
    code(() => sandbox.invokeSync(reserved, 1), 'Machine.ReservedSlots');
    // An Image cap is a valid argument where no mapping needs Data.
    const image = run(KernelOp.DATA_SIZE, [b(ARG(0))], { caps: [{ hash: mapped.imageHash }] });
    assert.equal(image.regs[7], BigInt(S.WRONG_KIND));
    assert.deepEqual(capsOf(image), [[0, 'Image', toHex(mapped.imageHash)]]);
  });

  it('keeps argument caps while there is room, then drops the oldest: fresh caps call after call never fill the budget or the guest', () => {
    using small = Sandbox.create({ engine, memorySize: 16 << 20, memoryBudget: 8 << 20 });
    const image = small.loadImage(opsImage(false));
    const size = 1 << 20;
    for (let i = 0; i < 40; i++) { // 40 MiB of caps in all
      const r = small.invokeSync(image, KernelOp.DATA_SIZE, { args: [b(ARG(0))], caps: [new Uint8Array(size).fill(i + 1)] });
      assert.deepEqual([r.exit, r.regs[7], r.regs[8]], [Exit.HALT, b(S.OK), b(size)], `call ${i}`);
      assert.ok(small.memoryUsed <= small.memoryBudget, `call ${i}: ${small.memoryUsed} bytes used`);
    }
    // The last one is still stored, so it can be named by hash; the first is gone.
    const last = DataCap.fromBytes(new Uint8Array(size).fill(40)).hash();
    assert.equal(small.invokeSync(image, KernelOp.DATA_SIZE, { args: [b(ARG(0))], caps: [{ hash: last }] }).regs[7], b(S.OK));
    const first = DataCap.fromBytes(new Uint8Array(size).fill(1)).hash();
    assert.throws(() => small.invokeSync(image, KernelOp.DATA_SIZE, { args: [b(ARG(0))], caps: [{ hash: first }] }), (e) => isNubError(e, 'UnknownCap'));
  });

  it('returns caps only after HALT', () => {
    const r = run(KernelOp.COPY, [b(PINNED), b(ARG(0))], { gas: BigInt(Gas.CALL + KernelGas.SLOT_OP) }); // the op fits, the halt does not
    assert.equal(r.exit, Exit.OUT_OF_GAS);
    assert.deepEqual(r.caps, []);
  });
}
