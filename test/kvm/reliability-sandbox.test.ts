// The Sandbox under abuse against the real /dev/kvm: endless loops stopped by gas and,
// with no gas limit, by timeout or cancel; several sandboxes at once in worker_threads.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { NubError } from '../../lib/errors.js';
import { ImageBuilder } from '../../lib/image/builder.js';
import { Exit } from '../../lib/machine/abi.js';
import { Sandbox } from '../../lib/sandbox/index.js';
import { A, assemble, X } from '../unit/machine-asm.js';
import { describeKvm } from './kvm-available.js';

const FIB = fileURLToPath(new URL('../../../examples/fib/fib.ssz', import.meta.url));
const NO_GAS_LIMIT = (1n << 64n) - 1n;

/** fib(n) mod 2^64, as endpoint 1 of examples/fib computes it. */
function fib(n: number): bigint {
  let [a, b] = [0n, 1n];
  for (let i = 0; i < n; i++) [a, b] = [b, BigInt.asUintN(64, a + b)];
  return a;
}

/** Endpoint 1 counts in a0 forever: `addi a0, a0, 1; jal zero, -4`. */
const endlessLoop = new ImageBuilder().setCode(assemble(A.addi(X.a0, X.a0, 1), A.jal(X.zero, -4))).addEndpoint([1], { entryPc: 0 });

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof NubError && err.code === code);
}

describeKvm('reliability: sandboxes under abuse', function () {
  this.timeout(120_000);
  let sandbox: Sandbox;
  before(() => {
    sandbox = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20 });
  });
  after(() => sandbox.close());

  it('an endless loop is stopped by gas exactly where the reference interpreter stops it, and the sandbox carries on', () => {
    const loop = sandbox.loadImage(endlessLoop);
    using reference = Sandbox.create({ engine: 'local' });
    const referenceLoop = reference.loadImage(endlessLoop);
    for (const gas of [1_000n, 250_000n]) {
      const r = sandbox.invokeSync(loop, 1, { gas });
      const expected = reference.invokeSync(referenceLoop, 1, { gas });
      assert.equal(r.exit, Exit.OUT_OF_GAS);
      assert.ok(r.regs[7]! > 0n, 'the loop ran');
      assert.deepEqual([r.gasLeft, r.regs, r.pc], [expected.gasLeft, expected.regs, expected.pc], `gas ${gas}`);
    }
  });

  it('without a gas limit, an endless loop is stopped by the timeout (sync and async) or by cancel; the sandbox stays usable', async () => {
    const loop = sandbox.loadImage(endlessLoop);
    for (const timeoutMs of [20, 100]) {
      const t0 = performance.now();
      assert.throws(() => sandbox.invokeSync(loop, 1, { gas: NO_GAS_LIMIT, timeoutMs }), (e: unknown) => e instanceof NubError && e.code === 'Timeout');
      const took = performance.now() - t0;
      assert.ok(took >= timeoutMs && took < timeoutMs + 1000, `stopped after ${took.toFixed(0)} ms`);
    }
    await rejectsWith(sandbox.invoke(loop, 1, { gas: NO_GAS_LIMIT, timeoutMs: 30 }), 'Timeout');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    await rejectsWith(sandbox.invoke(loop, 1, { gas: NO_GAS_LIMIT, signal: controller.signal }), 'Cancelled');
    assert.equal(sandbox.poisonedBy, undefined);
    assert.equal(sandbox.invokeSync(loop, 1, { gas: 5_000n }).exit, Exit.OUT_OF_GAS, 'still usable');
  });

  it('several sandboxes at once in worker_threads each get their own results', async () => {
    const jobs = [[10, 20, 30], [40, 50, 60], [70, 80, 90]].map((args) => ({ imagePath: FIB, args, rounds: 50 }));
    const workerFile = new URL('./reliability-worker.js', import.meta.url);
    const outcomes = await Promise.all(jobs.map((job) => new Promise<{ results: string[]; startedAt: number; endedAt: number }>((resolve, reject) => {
      const worker = new Worker(workerFile, { workerData: job });
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
    })));
    outcomes.forEach((outcome, i) => {
      const expected = Array.from({ length: jobs[i]!.rounds }, () => jobs[i]!.args.map((n) => fib(n).toString())).flat();
      assert.deepEqual(outcome.results, expected, `worker ${i}`);
    });
    const overlap = Math.min(...outcomes.map((o) => o.endedAt)) - Math.max(...outcomes.map((o) => o.startedAt));
    assert.ok(overlap > 0, 'the workers ran at the same time');
  });
});
