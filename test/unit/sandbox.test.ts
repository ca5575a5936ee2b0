// The Sandbox API on engine local (the reference interpreter); test/kvm/sandbox.test.ts runs the same suite on kvm.
import assert from 'node:assert/strict';
import type { NubError } from '../../lib/errors.js';
import { Sandbox } from '../../lib/sandbox/index.js';
import { expectNubError } from '../support/nub-error.js';
import { sandboxSuite, testImage } from './sandbox-suite.js';

describe('Sandbox (engine local)', () => sandboxSuite('local'));

describe('Sandbox engine selection', () => {
  it('fails with KvmUnavailable when the KVM device cannot be opened, saying what to do', async () => {
    const err = await expectNubError(() => Sandbox.create({ kvmPath: '/dev/nub-no-such-kvm' }), 'KvmUnavailable');
    assert.match(err.message, /\/dev\/nub-no-such-kvm/);
    assert.equal((err.cause as NubError).code, 'ENOENT');
    await expectNubError(() => Sandbox.create({ engine: 'kvm', kvmPath: '/dev/null' }), 'KvmUnavailable');
  });

  it("engine 'auto' falls back to local and says why", () => {
    using sandbox = Sandbox.create({ engine: 'auto', kvmPath: '/dev/nub-no-such-kvm' });
    assert.equal(sandbox.engine, 'local');
    assert.equal(sandbox.kvmUnavailable?.code, 'KvmUnavailable');
    assert.equal(sandbox.invokeSync(sandbox.loadImage(testImage()), 1, { args: [1n, 2n] }).regs[7], 3n);
  });
});

describe('Sandbox (engine local): its worker thread', () => {
  it('runs concurrent invokes one after another, each with its own result', async () => {
    using sandbox = Sandbox.create({ engine: 'local' });
    const image = sandbox.loadImage(testImage());
    sandbox.registerHostFunction(100, async (regs) => regs[7]! * 10n);
    const results = await Promise.all([1n, 2n, 3n, 4n].map((n) => sandbox.invoke(image, 2, { args: [n] })));
    assert.deepEqual(results.map((r) => r.regs[7]), [11n, 21n, 31n, 41n]);
  });

  it('reports the running invoke\'s progress (gas left, instructions), nothing when idle', async () => {
    using sandbox = Sandbox.create({ engine: 'local' });
    const image = sandbox.loadImage(testImage());
    assert.equal(sandbox.progress(), undefined);
    const stop = new AbortController();
    const running = sandbox.invoke(image, 6, { gas: 10n ** 15n, signal: stop.signal });
    const seen: number[] = [];
    while (seen.length < 2) { // the worker starts in a few hundred ms; then the count grows
      await new Promise((r) => setTimeout(r, 50));
      const p = sandbox.progress();
      if (p && p.instructions > 0) {
        assert.ok(p.gasLeft < 1e15);
        seen.push(p.instructions);
      }
    }
    assert.ok(seen[1]! > seen[0]!, `instructions ${seen}`);
    stop.abort();
    await expectNubError(running, 'Cancelled');
    assert.equal(sandbox.progress(), undefined);
  });

  it('close() during a running invoke ends it with Closed', async () => {
    const sandbox = Sandbox.create({ engine: 'local' });
    const image = sandbox.loadImage(testImage());
    const running = sandbox.invoke(image, 6, { gas: (1n << 64n) - 1n });
    await new Promise((r) => setTimeout(r, 50));
    sandbox.close();
    await expectNubError(running, 'Closed');
  });
});
