/**
 * Sandbox behaviour that must be the same on every engine: run by
 * test/unit/sandbox.test.ts (engine local) and test/kvm/sandbox.test.ts (engine kvm).
 */
import assert from 'node:assert/strict';
import { isNubError, NubError } from '../../lib/errors.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { DATA_BASE, Exit } from '../../lib/machine/abi.js';
import { DataCap } from '../../lib/caps/index.js';
import { Sandbox, type EngineName, type LoadedImage, type SandboxOptions } from '../../lib/sandbox/index.js';
import { A, assemble, X } from '../support/machine-asm.js';
import { expectNubError } from '../support/nub-error.js';

export const RW_PAGE = DATA_BASE + 0x1000;
const STACK_TOP = 0x8000_0000;

/**
 * One image, several endpoints:
 *   1: a0 = a0 + a1
 *   2: a0 = host(100)(a0) + 1
 *   3: host(101)(); a0 = [a1]      (the host function writes memory)
 *   4: [a1] = a0; a0 = [a1 + 8]    (reads the pinned page when a1 points there)
 *   5: ecalli 2047 (no host function registered there)
 *   6: loop forever
 */
export function testImage(): ImageBuilder {
  const { a0, a1, zero } = X;
  const code = [
    A.add(a0, a0, a1), A.ecalli(0), // 0
    A.ecalli(100), A.addi(a0, a0, 1), A.ecalli(0), // 8
    A.ecalli(101), A.ld(a0, a1, 0), A.ecalli(0), // 20
    A.sd(a0, a1, 0), A.ld(a0, a1, 8), A.ecalli(0), // 32
    A.ecalli(2047), // 44
    A.jal(zero, 0), // 48
  ];
  const pinned = new Uint8Array(16);
  new DataView(pinned.buffer).setBigUint64(8, 0x1122_3344_5566_7788n, true);
  return new ImageBuilder()
    .setCode(assemble(...code))
    .addEndpoint(1, { entryPc: 0 }).addEndpoint(2, { entryPc: 8 }).addEndpoint(3, { entryPc: 20 })
    .addEndpoint(4, { entryPc: 32 }).addEndpoint(5, { entryPc: 44 }).addEndpoint(6, { entryPc: 48 })
    .addPinnedData(7, pinned).addMapping(DATA_BASE, 0x1000, 7)
    .addInitialData(8, Uint8Array.of(1, 2, 3), 0x2000).addMapping(RW_PAGE, 0x2000, 8)
    .addStack(9, STACK_TOP, 0x4000);
}

/** A counter: endpoint 1 adds a0 to the u64 at RW_PAGE and returns the sum; endpoint 2 writes there, then TRAPs. */
export function counterImage(): ImageBuilder {
  const { a0, a1, a2, zero } = X;
  return new ImageBuilder()
    .setCode(assemble(
      A.lui(a1, RW_PAGE >>> 12), A.ld(a2, a1, 0), A.add(a2, a2, a0), A.sd(a2, a1, 0), A.add(a0, a2, zero), A.ecalli(0), // 0
      A.lui(a1, RW_PAGE >>> 12), A.sd(a0, a1, 0), A.trap(), // 24
    ))
    .addEndpoint(1, { entryPc: 0 }).addEndpoint(2, { entryPc: 24 })
    .addInitialData(8, Uint8Array.of(100), 0x1000).addMapping(RW_PAGE, 0x1000, 8)
    .addStack(9, STACK_TOP, 0x1000);
}

export function sandboxSuite(engine: EngineName, options: SandboxOptions = {}): void {
  let sandbox: Sandbox;
  let image: LoadedImage;
  beforeEach(() => {
    sandbox = Sandbox.create({ engine, memorySize: 16 << 20, ...options });
    image = sandbox.loadImage(testImage());
  });
  afterEach(() => sandbox.close());

  it('invokes sync and async with the same result', async () => {
    // Read `memory` at once: an invoke may reuse the previous one's memory.
    const sync = { ...sandbox.invokeSync(image, 1, { args: [40n, 2], gas: 1000n }) };
    const async_ = { ...await sandbox.invoke(image.contentHash, [1], { args: [40n, 2], gas: 1000n }) };
    for (const r of [sync, async_]) {
      assert.equal(r.exit, Exit.HALT);
      assert.equal(r.regs[7], 42n);
      assert.equal(r.gasUsed + r.gasLeft, 1000n);
    }
    assert.deepEqual(async_, sync);
  });

  it('reads and writes the invocation memory from the result and from host functions', async () => {
    const stored = sandbox.invokeSync(image, 4, { args: [0xabcdn, RW_PAGE] });
    assert.equal(stored.regs[7], 0n); // [RW_PAGE + 8] of the initial data is zero
    const rw = stored.memory.find((m) => m.start === RW_PAGE)!;
    assert.deepEqual([...rw.bytes.subarray(0, 8)], [0xcd, 0xab, 0, 0, 0, 0, 0, 0]);
    // The next invoke starts from the initial bytes again.
    const again = sandbox.invokeSync(image, 4, { args: [7n, DATA_BASE + 0x10] });
    assert.equal(again.exit, Exit.PAGE_FAULT); // the pinned page is read-only
    assert.equal(again.exitArg, BigInt(DATA_BASE + 0x10));
    assert.deepEqual([...again.memory.find((m) => m.start === RW_PAGE)!.bytes.subarray(0, 4)], [1, 2, 3, 0]);

    let seen: Uint8Array | undefined;
    sandbox.registerHostFunction(101, (regs, memory) => {
      seen = memory.read(DATA_BASE + 8, 8);
      assert.equal(memory.write(DATA_BASE, Uint8Array.of(1)), false, 'the pinned page is read-only');
      assert.equal(memory.read(0x10, 1), undefined, 'nothing is mapped there');
      assert.equal(memory.write(Number(regs[8]), Uint8Array.of(9, 8, 7, 6, 5, 4, 3, 2)), true);
      return 0n;
    });
    const r = await sandbox.invoke(image, 3, { args: [0, RW_PAGE + 0x1ff8] });
    assert.deepEqual([...seen!], [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.regs[7], 0x0203_0405_0607_0809n);
  });

  it('resumes after a host function with its result in φ7, and charges gas as the reference does', () => {
    sandbox.registerHostFunction(100, (regs) => regs[7]! * 2n);
    const r = sandbox.invokeSync(image, 2, { args: [20n], gas: 10_000n });
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.regs[7], 41n);
    assert.equal(sandbox.unregisterHostFunction(100), true);
    const unhandled = sandbox.invokeSync(image, 2, { args: [20n], gas: 10_000n });
    assert.equal(unhandled.exit, Exit.HOST_CALL);
    assert.equal(unhandled.exitArg, 100n);
    assert.ok(unhandled.gasUsed < r.gasUsed);
  });

  it('ends with HOST_CALL for an unregistered number and with HostFunctionFailed when one throws', async () => {
    const r = sandbox.invokeSync(image, 5);
    assert.equal(r.exit, Exit.HOST_CALL);
    assert.equal(r.exitArg, 2047n);
    const boom = new Error('boom');
    sandbox.registerHostFunction(100, () => { throw boom; });
    const err = await expectNubError(() => sandbox.invokeSync(image, 2, { args: [1n] }), 'HostFunctionFailed');
    assert.equal(err.cause, boom);
    await expectNubError(sandbox.invoke(image, 2, { args: [1n] }), 'HostFunctionFailed');
    assert.equal(sandbox.invokeSync(image, 1, { args: [1n, 2n] }).regs[7], 3n, 'the sandbox is still usable');
  });

  it('stops at the gas limit', () => {
    const r = sandbox.invokeSync(image, 6, { gas: 500n });
    assert.equal(r.exit, Exit.OUT_OF_GAS);
    assert.equal(r.gasLeft < 500n, true);
  });

  it('refuses bad input with stable codes', async () => {
    const bad = await expectNubError(() => sandbox.loadImage(Uint8Array.of(1, 2, 3)), 'BadImage');
    assert.ok(bad.cause instanceof NubError && bad.cause.code.startsWith('Decode.'));
    await expectNubError(() => sandbox.invokeSync(image, 99), 'UnknownEndpoint');
    await expectNubError(() => sandbox.invokeSync(new Uint8Array(32), 1), 'UnknownImage');
    await expectNubError(() => sandbox.invokeSync(image, 1, { args: [1, 2, 3, 4, 5] }), 'BadArgument');
    await expectNubError(() => sandbox.registerHostFunction(63, () => 0n), 'BadArgument');
    const aborted = AbortSignal.abort();
    await expectNubError(sandbox.invoke(image, 1, { signal: aborted }), 'Cancelled');
    sandbox.close();
    await expectNubError(() => sandbox.invokeSync(image, 1), 'Closed');
    await expectNubError(() => sandbox.loadImage(testImage()), 'Closed');
  });

  it('keeps an Instance\'s memory across calls; each HALT makes a new Instance, other exits keep it', async () => {
    const counter = sandbox.loadImage(counterImage());
    const first = sandbox.spawn(counter);
    assert.equal(sandbox.spawn(counter.contentHash).length, 32);
    assert.deepEqual(sandbox.spawn(counter), first, 'spawning is deterministic: the same Instance');
    const one = sandbox.invokeSync(first, 1, { args: [1n] });
    assert.equal(one.regs[7], 101n);
    const two = sandbox.invokeSync(one.instance!, 1, { args: [2n] });
    assert.equal(two.regs[7], 103n);
    assert.notDeepEqual(two.instance, one.instance);
    assert.equal(sandbox.invokeSync(one.instance!, 1, { args: [5n] }).regs[7], 106n, 'an older Instance still has its own state');
    assert.equal(sandbox.invokeSync(counter, 1, { args: [1n] }).regs[7], 101n, 'the image itself starts fresh');
    const trapped = sandbox.invokeSync(two.instance!, 2, { args: [7n] });
    assert.equal(trapped.exit, Exit.TRAP);
    assert.deepEqual(trapped.instance, two.instance, 'a run that does not HALT changes nothing');
    assert.equal(sandbox.invokeSync(two.instance!, 1, { args: [0n] }).regs[7], 103n);
    const value = sandbox.instance(two.instance!);
    assert.deepEqual(value.image, counter.imageHash);
    assert.equal(value.memory.length, 2); // the counter page and the stack
    assert.deepEqual(value.memory[0]!.data, DataCap.fromBytes(Uint8Array.of(103), 0x1000).hash());
    assert.equal(value.regs[7], 103n);
    assert.equal(value.gas, two.gasLeft);
    await expectNubError(() => sandbox.instance(new Uint8Array(32)), 'UnknownInstance');
  });

  describe('time limits, cancelling and async host functions', () => {
    const ENDLESS = 6;
    const HUGE_GAS = (1n << 64n) - 1n;
    const usable = () => assert.equal(sandbox.invokeSync(image, 1, { args: [2n, 3n] }).regs[7], 5n);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    it('timeoutMs stops an endless loop within 50 ms of its deadline (sync and async); the sandbox stays usable', async () => {
      const TIMEOUT = 100;
      for (const run of [() => sandbox.invokeSync(image, ENDLESS, { gas: HUGE_GAS, timeoutMs: TIMEOUT }),
        () => sandbox.invoke(image, ENDLESS, { gas: HUGE_GAS, timeoutMs: TIMEOUT })]) {
        await sandbox.invoke(image, 1); // the async path's thread is up, so only the run is timed
        const started = performance.now();
        await expectNubError(run, 'Timeout');
        const late = performance.now() - started - TIMEOUT;
        assert.ok(late < 50, `stopped ${late.toFixed(1)} ms after the deadline`);
        usable();
      }
    });

    it('an AbortSignal cancels a running invoke, and the event loop runs meanwhile', async () => {
      const controller = new AbortController();
      const running = sandbox.invoke(image, ENDLESS, { gas: HUGE_GAS, signal: controller.signal });
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 10);
      await sleep(200);
      clearInterval(ticker);
      assert.ok(ticks >= 5, `the event loop ran ${ticks} timer ticks in 200 ms`);
      const abortedAt = performance.now();
      controller.abort(new Error('enough'));
      const err = await expectNubError(running, 'Cancelled');
      assert.ok(performance.now() - abortedAt < 200, 'stopped promptly');
      assert.equal((err.cause as Error).message, 'enough');
      usable();
    });

    it('invokeSync refuses a signal', async () => {
      await expectNubError(() => sandbox.invokeSync(image, 1, { signal: new AbortController().signal }), 'BadArgument');
    });

    it('awaits an async host function on invoke (memory usable while it runs); invokeSync fails it', async () => {
      sandbox.registerHostFunction(100, async (regs) => { await sleep(20); return regs[7]! * 2n; });
      sandbox.registerHostFunction(101, async (_regs, memory) => {
        await sleep(5);
        assert.ok(memory.write(RW_PAGE + 16, Uint8Array.of(9, 8, 7, 6, 5, 4, 3, 2)));
        return 0n;
      });
      assert.equal((await sandbox.invoke(image, 2, { args: [20n] })).regs[7], 41n);
      assert.equal((await sandbox.invoke(image, 3, { args: [0n, RW_PAGE + 16] })).regs[7], 0x0203040506070809n);
      const refused = await expectNubError(() => sandbox.invokeSync(image, 2, { args: [20n] }), 'HostFunctionFailed');
      assert.ok(isNubError(refused.cause, 'BadArgument'));
      usable();
    });

    it('a rejecting host function is HostFunctionFailed with the reason as cause, never an unhandled rejection', async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        const reason = new Error('no');
        sandbox.registerHostFunction(100, async () => { await sleep(5); throw reason; });
        const err = await expectNubError(sandbox.invoke(image, 2, { args: [1n] }), 'HostFunctionFailed');
        assert.equal(err.cause, reason);
        await expectNubError(() => sandbox.invokeSync(image, 2, { args: [1n] }), 'HostFunctionFailed');
        await sleep(20);
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      usable();
    });

    it('timeoutMs and the signal cover time spent in host functions', async () => {
      sandbox.registerHostFunction(100, (regs) => {
        const until = performance.now() + 150;
        while (performance.now() < until); // a slow synchronous host function
        return regs[7];
      });
      await expectNubError(() => sandbox.invokeSync(image, 2, { timeoutMs: 50 }), 'Timeout');
      await expectNubError(sandbox.invoke(image, 2, { timeoutMs: 50 }), 'Timeout');
      sandbox.registerHostFunction(100, async (regs) => { await sleep(300); return regs[7]; });
      const started = performance.now();
      await expectNubError(sandbox.invoke(image, 2, { timeoutMs: 50 }), 'Timeout');
      assert.ok(performance.now() - started < 200, 'the deadline does not wait for the host function');
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 30);
      await expectNubError(sandbox.invoke(image, 2, { signal: controller.signal }), 'Cancelled');
      sandbox.unregisterHostFunction(100);
      await sleep(300); // the abandoned host functions finish; nothing may break
      usable();
    });
  });

  it('stores caps and reads them back through the reader', () => {
    const data = DataCap.fromBytes(Uint8Array.of(5, 6, 7));
    assert.equal(sandbox.putCaps([{ kind: 'Data', value: data }]), 1);
    assert.equal(sandbox.putCaps([{ kind: 'Data', value: data }]), 0);
    const back = sandbox.reader.getCap(data.hash());
    assert.equal(back?.kind, 'Data');
    assert.deepEqual((back!.value as DataCap).bytes(), data.bytes());
    assert.ok(sandbox.reader.contains(image.imageHash));
    assert.equal(sandbox.reader.getCap(image.imageHash)?.kind, 'Image');
  });
}
