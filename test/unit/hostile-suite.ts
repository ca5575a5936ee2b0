/**
 * Issue 14's regression tests that hold on every engine: hostile arguments, images
 * and host functions get typed errors, the same on both engines, and never poison.
 * Run by test/unit/hostile.test.ts (local) and test/kvm/hostile.test.ts (kvm).
 */
import assert from 'node:assert/strict';
import { DataCap } from '../../lib/caps/index.js';
import { NubError } from '../../lib/errors.js';
import { encodeImage, ImageBuilder } from '../../lib/image/index.js';
import { DATA_BASE, Exit } from '../../lib/machine/abi.js';
import { Sandbox, type EngineName, type LoadedImage } from '../../lib/sandbox/index.js';
import { MAX_PREPARE_MAPPINGS as MAX_MAPPINGS } from '../../lib/guest/invoke.js';
import { expectNubError } from '../support/nub-error.js';
import { A, assemble, X } from '../support/machine-asm.js';
import { testImage } from './sandbox-suite.js';

const TOP_PAGE = 0xffff_f000;

/** Endpoint 1: ecalli 100, then HALT. Endpoint 2: [a1] = a0, HALT. A writable page at the top of the address space and one at RW. */
function probeImage(): ImageBuilder {
  const { a0, a1 } = X;
  return new ImageBuilder()
    .setCode(assemble(A.ecalli(100), A.ecalli(0), A.sd(a0, a1, 0), A.ecalli(0)))
    .addEndpoint(1, { entryPc: 0 }).addEndpoint(2, { entryPc: 8 })
    .addInitialData(3, Uint8Array.of(0x5a), 0x1000).addMapping(TOP_PAGE, 0x1000, 3)
    .addInitialData(4, Uint8Array.of(7), 0x1000).addMapping(DATA_BASE, 0x1000, 4);
}

export function hostileSuite(engine: EngineName): void {
  let sandbox: Sandbox;
  let image: LoadedImage;
  beforeEach(() => {
    sandbox = Sandbox.create({ engine, memorySize: 16 << 20 });
    image = sandbox.loadImage(testImage());
  });
  afterEach(() => sandbox.close());

  const healthy = (): void => {
    assert.equal(sandbox.invokeSync(image, 1, { args: [2n, 3n] }).regs[7], 5n);
    assert.equal(sandbox.poisonedBy, undefined);
  };

  it('item 19: argument mistakes are BadArgument (also strings where numbers belong), and nothing is poisoned', async () => {
    const bad: [string, () => unknown][] = [
      ['gas 1.5', () => sandbox.invokeSync(image, 1, { gas: 1.5 })],
      ['gas NaN', () => sandbox.invokeSync(image, 1, { gas: NaN })],
      ['gas null', () => sandbox.invokeSync(image, 1, { gas: null as never })],
      ['gas {}', () => sandbox.invokeSync(image, 1, { gas: {} as never })],
      ['gas "1000"', () => sandbox.invokeSync(image, 1, { gas: '1000' as never })],
      ['gas -1', () => sandbox.invokeSync(image, 1, { gas: -1 })],
      ['args [null]', () => sandbox.invokeSync(image, 1, { args: [null as never] })],
      ['args "s"', () => sandbox.invokeSync(image, 1, { args: 's' as never })],
      ['args {length}', () => sandbox.invokeSync(image, 1, { args: { length: 1 } as never })],
      ['args ["5"]', () => sandbox.invokeSync(image, 1, { args: ['5' as never] })],
      ['args 2^53', () => sandbox.invokeSync(image, 1, { args: [2 ** 53] })],
      ['opts null', () => sandbox.invokeSync(image, 1, null as never)],
      ['signal {}', () => sandbox.invokeSync(image, 1, { signal: {} as never })],
      ['timeoutMs 2^31', () => sandbox.invokeSync(image, 1, { timeoutMs: 2 ** 31 })],
      ['timeoutMs "5"', () => sandbox.invokeSync(image, 1, { timeoutMs: '5' as never })],
      ['image null', () => sandbox.invokeSync(null as never, 1)],
      ['endpoint null', () => sandbox.invokeSync(image, null as never)],
      ['endpoint {}', () => sandbox.invokeSync(image, {} as never)],
      ['loadImage(null)', () => sandbox.loadImage(null as never)],
      ['loadImage("s")', () => sandbox.loadImage('s' as never)],
      ['loadImage({})', () => sandbox.loadImage({} as never)],
      ['loadImage(ArrayBuffer)', () => sandbox.loadImage(new ArrayBuffer(8) as never)],
      ['loadImage(DataView)', () => sandbox.loadImage(new DataView(new ArrayBuffer(8)) as never)],
      ['loadImage(Uint16Array)', () => sandbox.loadImage(new Uint16Array(8) as never)],
      ['loadImage({ timeoutMs: -1 })', () => sandbox.loadImage(testImage(), { timeoutMs: -1 })],
      ['putCaps(null)', () => sandbox.putCaps(null as never)],
      ['putCaps([{}])', () => sandbox.putCaps([{} as never])],
      ['restore({})', () => sandbox.restore({} as never)],
      ['fromSnapshot(null)', () => Sandbox.fromSnapshot(null as never)],
      ['Sandbox.create(null)', () => Sandbox.create(null as never)],
    ];
    for (const [what, call] of bad) {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof NubError && err.code === 'BadArgument', `${what}: ${err instanceof NubError ? err.code : String(err)}`);
    }
    await expectNubError(sandbox.invoke(image, 1, { gas: '1' as never }), 'BadArgument');
    await expectNubError(sandbox.invoke(image, 1, { signal: {} as never }), 'BadArgument');
    healthy();
  });

  it('item 19: a host function returning "7", true or a Promise fails the invoke (HostFunctionFailed, cause BadArgument); a rejected Promise is not left unhandled (item 4)', async () => {
    let unhandled = 0;
    const onUnhandled = (): void => { unhandled++; };
    process.on('unhandledRejection', onUnhandled);
    try {
      for (const value of ['7', true, Promise.reject(new Error('async host function'))]) {
        sandbox.registerHostFunction(100, () => value as never);
        const err = expectNubError(() => sandbox.invokeSync(image, 2, { args: [1n] }), 'HostFunctionFailed');
        assert.ok(err.cause instanceof NubError && err.cause.code === 'BadArgument', String(err.cause));
        healthy();
      }
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(unhandled, 0);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('item 10: a host function may not close, reset, invoke, load or snapshot its sandbox (Reentrant); the sandbox carries on', async () => {
    const calls: [string, () => unknown][] = [
      ['close', () => sandbox.close()],
      ['reset', () => sandbox.reset()],
      ['invokeSync', () => sandbox.invokeSync(image, 1)],
      ['loadImage', () => sandbox.loadImage(probeImage())],
      ['unloadImage', () => sandbox.unloadImage(image)],
      ['putCaps', () => sandbox.putCaps([{ kind: 'Data', value: DataCap.fromBytes(Uint8Array.of(1)) }])],
    ];
    if (engine === 'kvm') calls.push(['snapshot', () => sandbox.snapshot()]);
    for (const [what, call] of calls) {
      sandbox.registerHostFunction(100, () => {
        call();
        return 0n;
      });
      const err = expectNubError(() => sandbox.invokeSync(image, 2, { args: [1n] }), 'HostFunctionFailed');
      assert.ok(err.cause instanceof NubError && err.cause.code === 'Reentrant', `${what}: ${String(err.cause)}`);
      healthy();
    }
    let inner: Promise<unknown> | undefined;
    sandbox.registerHostFunction(100, () => {
      inner = sandbox.invoke(image, 1);
      return 1n;
    });
    assert.equal(sandbox.invokeSync(image, 2, { args: [1n] }).regs[7], 2n);
    await expectNubError(inner!, 'Reentrant');
    healthy();
  });

  it('item 20: an already-aborted signal cancels invokeSync and invoke at once', async () => {
    const signal = AbortSignal.abort();
    const started = performance.now();
    expectNubError(() => sandbox.invokeSync(image, 6, { gas: (1n << 64n) - 1n, timeoutMs: 5_000, signal }), 'Cancelled');
    await expectNubError(sandbox.invoke(image, 6, { gas: (1n << 64n) - 1n, timeoutMs: 5_000, signal }), 'Cancelled');
    assert.ok(performance.now() - started < 2_000, 'nothing ran');
    healthy();
  });

  it('item 16: a MemoryView reads the same on both engines: −4096 is 0xFFFFF000, bigints work, bad lengths are BadArgument; after close() it is Closed', () => {
    const probe = sandbox.loadImage(probeImage());
    let seen: (Uint8Array | undefined)[] = [];
    let kept: { read(a: number, n: number): unknown } | undefined;
    sandbox.registerHostFunction(100, (_regs, memory) => {
      kept = memory;
      seen = [memory.read(-4096, 1), memory.read(0xffff_f000n as never, 1), memory.read(0xffff_ffff, 2), memory.read(DATA_BASE, 1)];
      return 0n;
    });
    sandbox.invokeSync(probe, 1);
    assert.deepEqual(seen.map((b) => b && Array.from(b)), [[0x5a], [0x5a], undefined, [7]]);
    for (const length of [1.5, NaN, -1, 2 ** 33, 1n]) {
      sandbox.registerHostFunction(100, (_regs, memory) => {
        memory.read(DATA_BASE, length as never);
        return 0n;
      });
      const err = expectNubError(() => sandbox.invokeSync(probe, 1), 'HostFunctionFailed');
      assert.equal((err.cause as NubError).code, 'BadArgument', String(length));
    }
    sandbox.close();
    expectNubError(() => kept!.read(DATA_BASE, 1), 'Closed');
  });

  it('item 17: a zero-size pinned mapping at the same start does not make an initial-slot mapping read-only', () => {
    const value = probeImage().addPinnedData(9, Uint8Array.of(1), 0x1000).build();
    value.memoryMappings.unshift({ start: BigInt(DATA_BASE), size: 0n, source: [Uint8Array.of(9)] });
    const loaded = sandbox.loadImage(encodeImage(value));
    const r = sandbox.invokeSync(loaded, 2, { args: [0x1234n, BigInt(DATA_BASE)] });
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.memory.find((m) => m.start === DATA_BASE)!.bytes[0], 0x34);
  });

  it('item 15: an entry pc at or past 2^32 is a PANIC at the entry with the writable mappings as the reference reports them', () => {
    const loaded = sandbox.loadImage(probeImage().addEndpoint(9, { entryPc: 1n << 32n }));
    const r = sandbox.invokeSync(loaded, 9);
    assert.equal(r.exit, Exit.PANIC);
    assert.equal(r.gasUsed, 0n);
    assert.deepEqual(r.memory.map((m) => [m.start, m.bytes.length, m.bytes[0]]), [[DATA_BASE, 0x1000, 7], [TOP_PAGE, 0x1000, 0x5a]]);
  });

  it('items 1 and 14: a slot of 4 GiB, or 4 GiB − 4 KiB, is refused at once with MemoryBudgetExceeded; a budget can be set', () => {
    for (const size of [2 ** 32, 2 ** 32 - 0x1000]) {
      const started = performance.now();
      const huge = new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0 }).addInitialData(2, Uint8Array.of(1), size);
      expectNubError(() => sandbox.loadImage(huge), 'MemoryBudgetExceeded');
      assert.ok(performance.now() - started < 2_000, `refused without allocating ${size} bytes`);
    }
    healthy();
    using small = Sandbox.create({ engine, memorySize: 16 << 20, memoryBudget: 64 << 10 });
    expectNubError(() => small.loadImage(probeImage().addInitialData(5, new Uint8Array(0), 1 << 20).addMapping(DATA_BASE + 0x10_0000, 1 << 20, 5)), 'MemoryBudgetExceeded');
    small.loadImage(probeImage());
  });

  it('fuzz corpus (api): the reader takes only 32-byte hashes (BadHash), never an untyped TypeError', () => {
    for (const bad of [undefined, null, 'x', new Uint8Array(3), {}]) {
      expectNubError(() => sandbox.reader.contains(bad as never), 'BadHash');
      expectNubError(() => sandbox.reader.get(bad as never), 'BadHash');
    }
    assert.equal(sandbox.reader.contains(image.imageHash), true);
  });

  it('item 18: more mappings than MAX_MAPPINGS are TooManyMappings on both engines; unloadImage frees an image and its caps', () => {
    const many = new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0 }).addPinnedData(2, Uint8Array.of(1), 0x1000);
    for (let i = 0; i <= MAX_MAPPINGS; i++) many.addMapping(DATA_BASE + i * 0x1000, 0x1000, 2);
    expectNubError(() => sandbox.loadImage(many), 'TooManyMappings');
    const used = sandbox.memoryUsed;
    const probe = sandbox.loadImage(probeImage());
    assert.ok(sandbox.memoryUsed > used);
    assert.equal(sandbox.unloadImage(probe), true);
    assert.equal(sandbox.memoryUsed, used);
    assert.equal(sandbox.unloadImage(probe), false);
    expectNubError(() => sandbox.invokeSync(probe, 1), 'UnknownImage');
    if (engine === 'local') assert.equal(sandbox.reader.contains(probe.imageHash), false);
    const again = sandbox.loadImage(probeImage());
    assert.equal(sandbox.invokeSync(again, 2, { args: [1n, BigInt(DATA_BASE)] }).exit, Exit.HALT);
  });
}
