// Sandbox snapshots against the real /dev/kvm: start sandboxes from one, restore one
// (after loading more, after a guest fault), recycle VMs through a VmCache.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MailboxOp, SelftestFault } from '../../lib/abi/guest-abi.js';
import { ImageBuilder } from '../../lib/image/builder.js';
import { Exit } from '../../lib/machine/abi.js';
import { Sandbox, type SandboxSnapshot } from '../../lib/sandbox/index.js';
import { VmCache } from '../../lib/snapshot/vm-cache.js';
import { A, assemble, X } from '../support/machine-asm.js';
import { counterImage } from '../unit/sandbox-suite.js';
import { describeKvm } from './kvm-available.js';
import { expectNubError as throwsCode } from '../support/nub-error.js';

const FIB = new Uint8Array(readFileSync(fileURLToPath(new URL('../../../examples/fib/fib.ssz', import.meta.url))));
const MEMORY = 16 << 20;
/** Endpoint 1: `ecalli 100` then halt (`ecalli 0`): a0 is what host function 100 returned. */
const HOST_CALLER = new ImageBuilder().setCode(assemble(A.ecalli(100), A.ecalli(0))).addEndpoint([1], { entryPc: 0 });
/** Endpoint 1 halts with a0 = 5. */
const FIVE = new ImageBuilder().setCode(assemble(A.addi(X.a0, X.zero, 5), A.ecalli(0))).addEndpoint([1], { entryPc: 0 });

function fib(n: number): bigint {
  let [a, b] = [0n, 1n];
  for (let i = 0; i < n; i++) [a, b] = [b, BigInt.asUintN(64, a + b)];
  return a;
}


describeKvm('sandbox snapshots', function () {
  this.timeout(60_000);
  let snapshot: SandboxSnapshot;
  let fibHash: Uint8Array;

  before(() => {
    using template = Sandbox.create({ engine: 'kvm', memorySize: MEMORY });
    fibHash = template.loadImage(FIB).contentHash;
    template.loadImage(HOST_CALLER);
    template.registerHostFunction(100, () => 4242n);
    snapshot = template.snapshot();
  });
  after(() => snapshot.close());

  it('starts sandboxes that have the images and host functions, independent of each other', () => {
    using a = Sandbox.fromSnapshot(snapshot);
    using b = Sandbox.fromSnapshot(snapshot);
    assert.equal(a.invokeSync(fibHash, 1, { args: [90] }).regs[7], fib(90));
    const r = b.invokeSync(b.loadImage(HOST_CALLER), 1);
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.regs[7], 4242n, 'the host function registered before the snapshot');
    b.registerHostFunction(100, () => 7n);
    assert.equal(b.invokeSync(b.loadImage(HOST_CALLER), 1).regs[7], 7n);
    assert.equal(a.invokeSync(a.loadImage(HOST_CALLER), 1).regs[7], 4242n, 'a is unaffected');
  });

  it('keeps Instances across snapshot/restore and in sandboxes started from a snapshot', () => {
    using sandbox = Sandbox.create({ engine: 'kvm', memorySize: MEMORY });
    const counter = sandbox.loadImage(counterImage());
    const one = sandbox.invokeSync(sandbox.spawn(counter), 1, { args: [1n] }).instance!;
    using snap = sandbox.snapshot();
    const two = sandbox.invokeSync(one, 1, { args: [10n] });
    assert.equal(two.regs[7], 111n);
    sandbox.restore(snap);
    throwsCode(() => sandbox.invokeSync(two.instance!, 1), 'UnknownImage'); // made after the snapshot
    assert.equal(sandbox.invokeSync(one, 1, { args: [2n] }).regs[7], 103n);
    using copy = Sandbox.fromSnapshot(snap);
    assert.equal(copy.invokeSync(one, 1, { args: [3n] }).regs[7], 104n);
  });

  it('restore undoes images, caps and host functions added since, and a guest fault', () => {
    using sandbox = Sandbox.fromSnapshot(snapshot);
    const other = sandbox.loadImage(FIVE);
    const five = sandbox.invokeSync(other, 1);
    assert.deepEqual([five.exit, five.regs[7]], [Exit.HALT, 5n]);
    const readerLen = sandbox.reader.len();
    sandbox.restore(snapshot);
    throwsCode(() => sandbox.invokeSync(other, 1), 'UnknownImage');
    assert.ok(sandbox.reader.len() < readerLen, 'the caps stored since are gone from the guest too');
    assert.ok(!sandbox.reader.contains(other.imageHash));

    throwsCode(() => sandbox.guest!.request(MailboxOp.values.SELFTEST_FAULT, [SelftestFault.values.PAGE_FAULT]), 'GuestFault');
    throwsCode(() => sandbox.invokeSync(fibHash, 1, { args: [10] }), 'Poisoned');
    sandbox.restore(snapshot);
    assert.equal(sandbox.poisonedBy, undefined);
    assert.equal(sandbox.invokeSync(fibHash, 1, { args: [10] }).regs[7], fib(10));
  });

  it('a result read after a restore is stale, not the snapshot bytes', () => {
    using sandbox = Sandbox.fromSnapshot(snapshot);
    const r = sandbox.invokeSync(fibHash, 1, { args: [3] });
    sandbox.restore(snapshot);
    throwsCode(() => r.memory, 'StaleMemory');
  });

  it('recycles VMs through a VmCache; a recycled VM is out of reach of its previous sandbox', () => {
    using cache = new VmCache(2);
    const first = Sandbox.fromSnapshot(snapshot, { vmCache: cache });
    const oldMemory = first.guest!.memory;
    first.close();
    assert.equal(cache.size, 1, 'the healthy VM went back to the cache');
    throwsCode(() => oldMemory.u8(0), 'Closed');
    using second = Sandbox.fromSnapshot(snapshot, { vmCache: cache });
    assert.equal(cache.size, 0, 'and was taken again');
    assert.equal(second.invokeSync(fibHash, 1, { args: [20] }).regs[7], fib(20));

    const poisoned = Sandbox.fromSnapshot(snapshot, { vmCache: cache });
    throwsCode(() => poisoned.guest!.request(MailboxOp.values.SELFTEST_FAULT, [SelftestFault.values.INVALID_OPCODE]), 'GuestFault');
    poisoned.close();
    assert.equal(cache.size, 0, 'a poisoned VM is closed, not recycled');
  });

  it('engine local has no snapshots', () => {
    using local = Sandbox.create({ engine: 'local' });
    throwsCode(() => local.snapshot(), 'Unsupported');
  });
});
