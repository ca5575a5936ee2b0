// SandboxPool against the real /dev/kvm: concurrent invokes, a clean state for every
// use, replacement of poisoned sandboxes, the sync path.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MailboxOp, SelftestFault } from '../../lib/abi/guest-abi.js';
import { NubError } from '../../lib/errors.js';
import { ImageBuilder } from '../../lib/image/builder.js';
import { SandboxPool, type LoadedImage } from '../../lib/sandbox/index.js';
import { A, assemble, X } from '../support/machine-asm.js';
import { describeKvm } from './kvm-available.js';

const FIB = new Uint8Array(readFileSync(fileURLToPath(new URL('../../../examples/fib/fib.ssz', import.meta.url))));
const FIVE = new ImageBuilder().setCode(assemble(A.addi(X.a0, X.zero, 5), A.ecalli(0))).addEndpoint([1], { entryPc: 0 });

function fib(n: number): bigint {
  let [a, b] = [0n, 1n];
  for (let i = 0; i < n; i++) [a, b] = [b, BigInt.asUintN(64, a + b)];
  return a;
}

const isCode = (code: string) => (e: unknown) => e instanceof NubError && e.code === code;

describeKvm('SandboxPool', function () {
  this.timeout(60_000);
  let pool: SandboxPool;
  let image!: LoadedImage;
  beforeEach(() => {
    pool = SandboxPool.create({ size: 2, memorySize: 16 << 20, setup: (s) => void (image = s.loadImage(FIB)) });
  });
  afterEach(() => pool.close());

  it('runs concurrent invokes on its sandboxes, each with its own result', async () => {
    const ns = Array.from({ length: 40 }, (_, i) => i * 2);
    const results = await Promise.all(ns.map((n) => pool.invoke(image, 1, { args: [n] })));
    assert.deepEqual(results.map((r) => r.regs[7]), ns.map(fib));
    assert.deepEqual(pool.stats, { uses: 40, resets: 40, replaced: 0 });
    assert.equal(pool.invokeSync(image.contentHash, 1, { args: [50] }).regs[7], fib(50));
  });

  it('gives every use the snapshot state: what one use loads, the next does not see', async () => {
    const five = await pool.use((s) => s.loadImage(FIVE));
    for (let i = 0; i < 4; i++) await assert.rejects(pool.invoke(five, 1), isCode('UnknownImage'));
    await pool.use((s) => assert.ok(!s.reader.contains(five.imageHash)));
  });

  it('replaces a sandbox left poisoned, and keeps serving', async () => {
    await assert.rejects(
      pool.use((s) => s.guest!.request(MailboxOp.values.SELFTEST_FAULT, [SelftestFault.values.DIVIDE_ERROR])),
      isCode('GuestFault'),
    );
    assert.equal(pool.stats.replaced, 1);
    const results = await Promise.all([1, 2, 3, 4].map((n) => pool.invoke(image, 1, { args: [n] })));
    assert.deepEqual(results.map((r) => r.regs[7]), [1, 2, 3, 4].map(fib));
  });

  it('invokeSync refuses when every sandbox is borrowed; close() refuses everything', async () => {
    let release!: () => void;
    const held = [pool.use(() => new Promise<void>((r) => (release = r))), pool.use(() => new Promise<void>((r) => setTimeout(r, 20)))];
    assert.throws(() => pool.invokeSync(image, 1, { args: [1] }), isCode('PoolBusy'));
    release();
    await Promise.all(held);
    pool.close();
    await assert.rejects(pool.invoke(image, 1), isCode('Closed'));
  });
});
