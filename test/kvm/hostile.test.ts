/**
 * Issue 14 on engine kvm: the shared hostile suite, and what only a real guest shows:
 * close() releasing the VM at once, concurrent and mid-invoke calls, a lying guest
 * kernel, bounded loads, unloadImage freeing guest memory, the pool's setup.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Invoke, Prepare } from '../../lib/abi/guest-abi.js';
import { NubError } from '../../lib/errors.js';
import { MAILBOX_PAYLOAD_GPA } from '../../lib/guest/mailbox.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { DATA_BASE, Exit } from '../../lib/machine/abi.js';
import { Sandbox, SandboxPool } from '../../lib/sandbox/index.js';
import { expectNubError } from '../support/nub-error.js';
import { A, assemble } from '../support/machine-asm.js';
import { hostileSuite } from '../unit/hostile-suite.js';
import { testImage } from '../unit/sandbox-suite.js';
import { describeKvm } from './kvm-available.js';

const NO_GAS_LIMIT = (1n << 64n) - 1n;

/** Mappings of this process backed by a KVM vCPU (kvm_run) or guest memory. */
function vmMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('kvm-vcpu') || l.includes('nub-guest-memory')).length;
}

describeKvm('hostile input (issue 14), engine kvm', function () {
  this.timeout(120_000);
  hostileSuite('kvm');

  it('item 3: close() unmaps kvm_run and guest memory at once, without waiting for a GC', () => {
    const before = vmMappings();
    for (let i = 0; i < 3; i++) {
      const s = Sandbox.create({ engine: 'kvm', memorySize: 4 << 20 });
      const img = s.loadImage(testImage());
      assert.equal(s.invokeSync(img, 1, { args: [1n, 2n] }).regs[7], 3n);
      assert.ok(vmMappings() > before);
      s.close();
      assert.equal(vmMappings(), before, `after close ${i}`);
    }
  });

  describe('one sandbox, many callers', () => {
    let sandbox: Sandbox;
    let image: ReturnType<Sandbox['loadImage']>;
    beforeEach(() => {
      sandbox = Sandbox.create({ engine: 'kvm', memorySize: 64 << 20 });
      image = sandbox.loadImage(testImage());
    });
    afterEach(() => sandbox.close());

    it('item 9: concurrent invokes queue; invokeSync, loadImage, reset and restore during one are Busy; nothing is poisoned', async () => {
      const results = await Promise.all([1n, 2n, 3n].map((a) => sandbox.invoke(image, 1, { args: [a, 10n] })));
      assert.deepEqual(results.map((r) => r.regs[7]), [11n, 12n, 13n]);
      const running = sandbox.invoke(image, 6, { gas: NO_GAS_LIMIT, timeoutMs: 300 });
      await new Promise((r) => setTimeout(r, 20));
      expectNubError(() => sandbox.invokeSync(image, 1), 'Busy');
      expectNubError(() => sandbox.loadImage(new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0 })), 'Busy');
      expectNubError(() => sandbox.reset(), 'Busy');
      await expectNubError(running, 'Timeout');
      assert.equal(sandbox.poisonedBy, undefined);
      assert.equal(sandbox.invokeSync(image, 1, { args: [2n, 3n] }).regs[7], 5n);
    });

    it('item 11: a snapshot() refused during an invoke does not kick it', async () => {
      const started = performance.now();
      const running = sandbox.invoke(image, 6, { gas: NO_GAS_LIMIT, timeoutMs: 500 }); // an endless loop
      await new Promise((r) => setTimeout(r, 20));
      expectNubError(() => sandbox.snapshot(), 'Busy');
      const err = await expectNubError(running, 'Timeout');
      assert.ok(performance.now() - started >= 450, 'the invoke ran its whole timeout: nothing kicked it');
      assert.match(err.message, /500 ms/);
      using snap = sandbox.snapshot();
      assert.equal(snap.memorySize, 64 << 20);
    });

    it('item 13: a guest kernel that lies in any reported field poisons the sandbox (GuestProtocol) instead of returning the lie', () => {
      const lies: [string, (v: DataView) => void][] = [
        ['exit', (v) => v.setUint32(MAILBOX_PAYLOAD_GPA + Invoke.offsets.exit, 0x7fff_ffff, true)],
        ['gas left', (v) => v.setBigUint64(MAILBOX_PAYLOAD_GPA + Invoke.offsets.gas, 18446744073709541615n, true)],
        ['pc', (v) => v.setUint32(MAILBOX_PAYLOAD_GPA + Invoke.offsets.pc, 0xffff_ffff, true)],
        ['instructions', (v) => v.setBigUint64(MAILBOX_PAYLOAD_GPA + Invoke.offsets.instructions, 18_000_000_000_000_000_000n, true)],
        ['exitArg', (v) => v.setBigUint64(MAILBOX_PAYLOAD_GPA + Invoke.offsets.exit_arg, 99n, true)],
      ];
      for (const [field, lie] of lies) {
        const guest = sandbox.guest!;
        const mailbox = guest.mailbox;
        const enter = mailbox.enter.bind(mailbox);
        // A hostile kernel: the real guest runs, then the record it hands back is rewritten.
        mailbox.enter = (...a: Parameters<typeof enter>) => {
          const stop = enter(...a);
          lie(new DataView(guest.memory.view.buffer));
          return stop;
        };
        expectNubError(() => sandbox.invokeSync(image, 1, { args: [2n, 3n], gas: 1000n }), 'GuestProtocol');
        expectNubError(() => sandbox.invokeSync(image, 1), 'Poisoned');
        sandbox.reset();
        image = sandbox.loadImage(testImage());
        assert.equal(sandbox.invokeSync(image, 1, { args: [2n, 3n] }).regs[7], 5n, `after the ${field} lie`);
      }
    });

    it('fuzz corpus (api, guest): a poisoned sandbox cannot be snapshotted; an image id the guest reuses poisons', () => {
      const guest = sandbox.guest!;
      const mailbox = guest.mailbox;
      const enter = mailbox.enter.bind(mailbox);
      mailbox.enter = (...a: Parameters<typeof enter>) => {
        const stop = enter(...a);
        guest.memory.view.setUint32(MAILBOX_PAYLOAD_GPA + Prepare.offsets.image_id, 0, true); // testImage's: the first this guest prepared
        return stop;
      };
      expectNubError(() => sandbox.loadImage(testImage().addEndpoint(77, { entryPc: 0 })), 'GuestProtocol');
      mailbox.enter = enter;
      expectNubError(() => sandbox.snapshot(), 'Poisoned');
      sandbox.reset();
      using snap = sandbox.snapshot();
      assert.equal(snap.memorySize, 64 << 20);
    });

    it('item 7: loadImage takes a timeout (a load that runs out poisons, reset() recovers) and an aborted signal', () => {
      const step = assemble(A.addi(10, 10, 1));
      const code = new Uint8Array((1 << 20) * step.length + 4);
      for (let at = 0; at < code.length - 4; at += step.length) code.set(step, at);
      code.set(assemble(A.ecalli(0)), code.length - 4);
      const big = new ImageBuilder().setCode(code).addEndpoint(1, { entryPc: 0 }); // 4 MiB of code
      const started = performance.now();
      expectNubError(() => sandbox.loadImage(big, { timeoutMs: 1 }), 'Timeout');
      assert.ok(performance.now() - started < 5_000);
      expectNubError(() => sandbox.invokeSync(image, 1), 'Poisoned');
      sandbox.reset();
      expectNubError(() => sandbox.loadImage(big, { signal: AbortSignal.abort() }), 'Cancelled');
      assert.equal(sandbox.invokeSync(image, 1, { args: [2n, 3n] }).regs[7], 5n);
    });

    it('item 18: loading and unloading many images never fills the guest (it is rebooted without the unloaded ones)', () => {
      using small = Sandbox.create({ engine: 'kvm', memorySize: 4 << 20 });
      for (let i = 0; i < 80; i++) {
        const img = small.loadImage(new ImageBuilder().setCode(assemble(A.addi(10, 0, i), A.ecalli(0))).addEndpoint(1, { entryPc: 0 })
          .addInitialData(2, Uint8Array.of(i), 64 << 10).addMapping(DATA_BASE, 64 << 10, 2));
        const r = small.invokeSync(img, 1);
        assert.equal(r.exit, Exit.HALT);
        assert.equal(r.regs[7], BigInt(i));
        small.unloadImage(img);
      }
    });
  });

  it('an invoke whose argument caps fill the guest reboots it and runs the image it named, under its new id', () => {
    using small = Sandbox.create({ engine: 'kvm', memorySize: 8 << 20 });
    const filler = (i: number) => new ImageBuilder().setCode(assemble(A.addi(10, 0, i), A.ecalli(0))).addEndpoint(1, { entryPc: 0 })
      .addInitialData(2, Uint8Array.of(i), 512 << 10).addMapping(DATA_BASE, 512 << 10, 2);
    const garbage = Array.from({ length: 5 }, (_, i) => small.loadImage(filler(i)));
    // Loaded after the others, so a reboot without them gives it another id.
    const image = small.loadImage(new ImageBuilder().setCode(assemble(A.addi(10, 0, 77), A.ecalli(0))).addEndpoint(1, { entryPc: 0, argCnodeSize: 1 }));
    for (const g of garbage) small.unloadImage(g);
    const r = small.invokeSync(image, 1, { caps: [new Uint8Array(4 << 20).fill(5)] }); // no room for 4 MiB until the reboot
    assert.deepEqual([r.exit, r.regs[7]], [Exit.HALT, 77n]);
  });

  it('item 20: SandboxPool refuses an async setup (BadArgument, no unhandled rejection); createAsync awaits it', async () => {
    let unhandled = 0;
    const onUnhandled = (): void => { unhandled++; };
    process.on('unhandledRejection', onUnhandled);
    try {
      expectNubError(() => SandboxPool.create({ size: 1, memorySize: 4 << 20, setup: async () => { throw new Error('late'); } }), 'BadArgument');
      let loaded: ReturnType<Sandbox['loadImage']> | undefined;
      const pool = await SandboxPool.createAsync({ size: 1, memorySize: 4 << 20, setup: async (s) => {
        await new Promise((r) => setTimeout(r, 5));
        loaded = s.loadImage(testImage());
      } });
      try {
        assert.equal((await pool.invoke(loaded!, 1, { args: [4n, 5n] })).regs[7], 9n);
        let kept: Sandbox | undefined;
        await pool.use((s) => { kept = s; });
        expectNubError(() => kept!.invokeSync(loaded!, 1), 'Closed');
      } finally {
        pool.close();
      }
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(unhandled, 0);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('item 8: worker.terminate() ends a worker stuck in invokeSync without a timeout, and process.exit() then exits', () => {
    const worker = new URL('./hostile-worker.js', import.meta.url).href;
    const script = `
      import { Worker } from 'node:worker_threads';
      const w = new Worker(new URL(${JSON.stringify(worker)}), { execArgv: [] });
      await new Promise((resolve) => w.once('message', resolve));
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      await w.terminate();
      console.log('terminated after', Date.now() - started, 'ms');
      const again = new Worker(new URL(${JSON.stringify(worker)}), { execArgv: [] });
      await new Promise((resolve) => again.once('message', resolve));
      process.exit(0);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `the child did not exit by itself (signal ${r.signal}): ${r.stdout} ${r.stderr}`);
    assert.match(r.stdout, /terminated after \d+ ms/);
  });

  it('item 12: timeoutMs of 2^31 is BadArgument and the sandbox is not poisoned', () => {
    using s = Sandbox.create({ engine: 'kvm', memorySize: 4 << 20 });
    const img = s.loadImage(testImage());
    const err = expectNubError(() => s.invokeSync(img, 1, { timeoutMs: 2 ** 31 }), 'BadArgument');
    assert.ok(err instanceof NubError);
    assert.equal(s.poisonedBy, undefined);
    assert.equal(s.invokeSync(img, 1, { args: [1n, 1n] }).regs[7], 2n);
  });
});
