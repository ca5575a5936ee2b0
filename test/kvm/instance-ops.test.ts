// DERIVE_SPAWN and CALL on engine kvm: the same expectations as engine local (test/unit/instance-ops-suite.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { toHex } from '../../lib/caps/index.js';
import { isNubError } from '../../lib/errors.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { KernelOp, SlotRef } from '../../lib/machine/kernel-ops.js';
import { A, assemble, X } from '../support/machine-asm.js';
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

  it('an Instance of an image without writable memory comes back as a result cap with the hash engine local gives', () => {
    const hashes = (['local', 'kvm'] as const).map((engine) => {
      using sandbox = Sandbox.create({ engine, memorySize: 64 << 20 });
      const bare = sandbox.loadImage(new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0 }));
      const spawner = sandbox.loadImage(new ImageBuilder().setCode(assemble(
        A.addi(X.a0, X.zero, 7), A.addi(X.a1, X.zero, SlotRef.ARG_BASE), A.ecalli(KernelOp.DERIVE_SPAWN), A.ecalli(0),
      )).addPinnedImage(7, bare.contentHash).addEndpoint(1, { entryPc: 0, argCnodeSize: 1 }));
      const r = sandbox.invokeSync(spawner, 1, { gas: 10_000n });
      assert.deepEqual([r.exit, r.regs[7], r.caps[0]?.kind], [Exit.HALT, 0n, 'Instance'], engine);
      return toHex(r.caps[0]!.hash);
    });
    assert.equal(hashes[1], hashes[0]);
  });

  it('a timeout in the middle of nested calls stops the invoke; the next one runs as if it had not happened', () => {
    const { sandbox, parent } = withParent({ engine: 'kvm' });
    try {
      assert.throws(() => sandbox.invokeSync(parent, 1, { args: [1n << 40n, 1n], gas: 1n << 60n, timeoutMs: 100 }), (e) => isNubError(e, 'Timeout'));
      const r = sandbox.invokeSync(parent, 1, { args: [3n, 4n], gas: 10_000_000n });
      assert.deepEqual([r.exit, r.regs[7]], [Exit.HALT, 12n]);
      assert.equal(sandbox.invokeSync(r.caps[0]!.hash, 1, { args: [1n], gas: 1_000_000n }).regs[7], 13n);
    } finally {
      sandbox.close();
    }
  });

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

  it('a CALL whose copy does not fit in guest memory fails the invoke with OutOfMemory; the sandbox stays usable', () => {
    using sandbox = Sandbox.create({ engine: 'kvm', memorySize: 64 << 20 });
    const big = 24 << 20;
    const child = sandbox.loadImage(new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0 })
      .addInitialData(2, new Uint8Array(8), big).addMapping(0x4000_0000, big, 2));
    const parent = sandbox.loadImage(new ImageBuilder().setCode(assemble(
      A.addi(X.a0, X.zero, 7), A.addi(X.a1, X.zero, 8), A.ecalli(KernelOp.DERIVE_SPAWN),
      A.addi(X.a0, X.zero, 8), A.addi(X.a1, X.zero, 1), A.addi(X.a2, X.zero, 0), A.ecalli(KernelOp.CALL), A.ecalli(0),
    )).addPinnedImage(7, child.contentHash).addEndpoint(1, { entryPc: 0 }));
    assert.throws(() => sandbox.invokeSync(parent, 1, { gas: 10n ** 9n }), (e) => isNubError(e, 'OutOfMemory'));
    assert.equal(sandbox.invokeSync(child, 1, { gas: 1000n }).exit, Exit.HALT);
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
