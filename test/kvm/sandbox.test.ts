// The Sandbox on engine kvm: the shared API suite, then what only a real guest can do
// (timeouts and cancellation that kick the vCPU, guest faults, poisoning and reset).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { MailboxOp, SelftestFault } from '../../lib/abi/guest-abi.js';
import { Exit } from '../../lib/machine/abi.js';
import { Sandbox, type LoadedImage } from '../../lib/sandbox/index.js';
import { sandboxSuite, testImage } from '../unit/sandbox-suite.js';
import { expectNubError as expectCode } from '../support/nub-error.js';
import { describeKvm } from './kvm-available.js';

describeKvm('Sandbox (engine kvm)', function () {
  this.timeout(60_000);
  sandboxSuite('kvm');
  describe('in polling mode', () => sandboxSuite('kvm', { polling: true }));

  for (const polling of [false, true]) describe(`stopping and recovering${polling ? ', polling' : ''}`, () => {
    let sandbox: Sandbox;
    let image: LoadedImage;
    beforeEach(() => {
      sandbox = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20, polling });
      image = sandbox.loadImage(testImage());
    });
    afterEach(() => sandbox.close());

    it('a guest kernel fault poisons the sandbox; reset() boots a working one with the same images and host functions', async () => {
      sandbox.registerHostFunction(100, (regs) => regs[7]! + 100n);
      await expectCode(() => sandbox.guest!.request(MailboxOp.values.SELFTEST_FAULT, [SelftestFault.values.PAGE_FAULT]), 'GuestFault');
      const poisoned = await expectCode(() => sandbox.invokeSync(image, 1), 'Poisoned');
      assert.equal((poisoned.cause as { code: string }).code, 'GuestFault');
      assert.equal(sandbox.poisonedBy?.code, 'GuestFault');
      sandbox.reset();
      assert.equal(sandbox.poisonedBy, undefined);
      const r = sandbox.invokeSync(image, 2, { args: [1n] });
      assert.equal(r.exit, Exit.HALT);
      assert.equal(r.regs[7], 102n);
    });

    it('refuses to read a result\'s memory after a later invoke reused it', async () => {
      const first = sandbox.invokeSync(image, 1, { args: [1n, 1n] });
      sandbox.invokeSync(image, 1, { args: [1n, 1n] });
      await expectCode(() => first.memory, 'StaleMemory');
    });

    it(polling ? 'one invoke without host calls is one poll, and a host call one more' : 'one invoke without host calls is one guest entry and one exit', () => {
      const guest = sandbox.guest!;
      let entries = 0;
      const mailbox = guest.mailbox;
      const enter = mailbox.enter.bind(mailbox);
      mailbox.enter = (...a) => { entries++; return enter(...a); };
      sandbox.invokeSync(image, 1, { args: [1n, 1n] });
      assert.equal(entries, 1);
      sandbox.registerHostFunction(100, () => 1n);
      sandbox.invokeSync(image, 2, { args: [1n] });
      assert.equal(entries, 3, 'a host call adds one exit and one entry');
    });
  });
});

describeKvm('Sandbox polling mode', function () {
  this.timeout(60_000);

  it('survives snapshot, restore and clones (which keep polling)', () => {
    using polled = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20, polling: true });
    const image = polled.loadImage(testImage());
    const add = (s: Sandbox, a: bigint) => s.invokeSync(image, 1, { args: [a, 1n] }).regs[7];
    assert.equal(add(polled, 1n), 2n);
    const snap = polled.snapshot(); // parks the spinning vCPU
    assert.equal(add(polled, 2n), 3n);
    polled.restore(snap);
    assert.equal(add(polled, 3n), 4n);
    using clone = Sandbox.fromSnapshot(snap);
    assert.equal(clone.guest!.polling, true, 'a clone keeps the mode of its snapshot');
    assert.equal(add(clone, 4n), 5n);
  });

  it('snapshots right after a call, while the guest still spins for the next one', () => {
    using polled = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20, polling: true });
    const image = polled.loadImage(testImage());
    for (let i = 0; i < 20; i++) {
      assert.equal(polled.invokeSync(image, 1, { args: [BigInt(i), 1n] }).regs[7], BigInt(i + 1));
      polled.snapshot().close(); // parks the spinning vCPU before it settles it
    }
  });

  it('takes polling as a boolean only (BadArgument)', () => {
    for (const polling of ['yes', 1, null]) expectCode(() => Sandbox.create({ engine: 'kvm', polling: polling as never }), 'BadArgument');
  });

  it('refuses with PollingUnavailable where the process has one core', () => {
    const script = `import('${new URL('../../lib/sandbox/index.js', import.meta.url).href}').then(({ Sandbox }) => {
      try { Sandbox.create({ engine: 'kvm', polling: true }); console.log('created'); } catch (e) { console.log(e.code); }
    });`;
    const out = spawnSync('taskset', ['-c', '0', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(out.stdout.trim(), 'PollingUnavailable', out.stderr);
  });
});
