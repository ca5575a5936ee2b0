// DERIVE_SPAWN and CALL on engine kvm: the same expectations as engine local (test/unit/instance-ops-suite.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { toHex } from '../../lib/caps/index.js';
import { Exit } from '../../lib/machine/abi.js';
import { Sandbox, type LoadedImage } from '../../lib/sandbox/index.js';
import { instanceOpsSuite } from '../unit/instance-ops-suite.js';
import { describeKvm } from './kvm-available.js';

describeKvm('Instances at run time: DERIVE_SPAWN and CALL (engine kvm)', function () {
  this.timeout(120_000);
  instanceOpsSuite('kvm');
});

describeKvm('nested calls: engine kvm agrees with engine local, and Instances survive snapshot/restore', function () {
  this.timeout(120_000);
  const example = (name: string) => new Uint8Array(readFileSync(new URL(`../../../examples/${name}/${name}.ssz`, import.meta.url)));
  const withParent = (options: Parameters<typeof Sandbox.create>[0]) => {
    const sandbox = Sandbox.create({ memorySize: 64 << 20, ...options });
    sandbox.loadImage(example('counter'));
    return { sandbox, parent: sandbox.loadImage(example('parent')) };
  };
  /** What a run shows: exit, reply, gas, its result caps' kinds and hashes, and a host call on the returned Instance. */
  const observe = (sandbox: Sandbox, parent: LoadedImage) => {
    const r = sandbox.invokeSync(parent, 1, { args: [4n, 3n], gas: 10_000_000n });
    const next = sandbox.invokeSync(r.caps[0]!.hash, 1, { args: [2n], gas: 1_000_000n });
    const deep = sandbox.invokeSync(parent, 2, { args: [0n], caps: [{ hash: parent.imageHash }], gas: 100_000_000n });
    return {
      exit: r.exit, reply: r.regs[7], gas: r.gasUsed, caps: r.caps.map((c) => [c.slot, c.kind, toHex(c.hash)]),
      next: [next.exit, next.regs[7], next.gasUsed, toHex(next.instance!)], deep: [deep.exit, deep.regs[7], deep.gasUsed],
    };
  };

  for (const kvmEngine of ['recompiler', 'interpreter'] as const) {
    it(`${kvmEngine}: the same exits, replies, gas and Instance hashes as engine local`, () => {
      const local = withParent({ engine: 'local' });
      const kvm = withParent({ engine: 'kvm', kvmEngine });
      try {
        assert.deepEqual(observe(kvm.sandbox, kvm.parent), observe(local.sandbox, local.parent));
      } finally {
        local.sandbox.close();
        kvm.sandbox.close();
      }
    });
  }

  it('an Instance a nested call returned is still invokable after snapshot()/restore(), with its state', () => {
    const { sandbox, parent } = withParent({ engine: 'kvm' });
    try {
      const instance = sandbox.invokeSync(parent, 1, { args: [2n, 5n], gas: 10_000_000n }).caps[0]!.hash;
      using snap = sandbox.snapshot();
      sandbox.invokeSync(parent, 1, { args: [9n, 9n], gas: 10_000_000n }); // reuses the guest memory the Instance was made in
      sandbox.restore(snap);
      const r = sandbox.invokeSync(instance, 1, { args: [1n], gas: 1_000_000n });
      assert.deepEqual([r.exit, r.regs[7]], [Exit.HALT, 11n]);
    } finally {
      sandbox.close();
    }
  });

  it('engine local runs a frame that can spawn on the calling thread, also through invoke()', async () => {
    const { sandbox, parent } = withParent({ engine: 'local' });
    try {
      const r = await sandbox.invoke(parent, 1, { args: [3n, 2n], gas: 10_000_000n });
      assert.deepEqual([r.exit, r.regs[7], r.caps[0]?.kind], [Exit.HALT, 6n, 'Instance']);
    } finally {
      sandbox.close();
    }
  });
});
