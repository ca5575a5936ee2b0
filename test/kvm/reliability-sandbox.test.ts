// The Sandbox under abuse against the real /dev/kvm: 10,000 create/invoke/close cycles
// with fds and RSS flat; endless loops stopped by gas and, with no gas limit, by timeout
// or cancel; a guest kernel scribbled over and a faulted guest, then restored; several
// sandboxes at once in worker_threads.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { NubError } from '../../lib/errors.js';
import { ImageBuilder } from '../../lib/image/builder.js';
import { Exit } from '../../lib/machine/abi.js';
import { BootInfo, Layout, MailboxOp, SelftestFault } from '../../lib/abi/guest-abi.js';
import { Sandbox, type SandboxSnapshot } from '../../lib/sandbox/index.js';
import { A, assemble, X } from '../support/machine-asm.js';
import { describeKvm } from './kvm-available.js';
import { expectNubError as rejectsWith } from '../support/nub-error.js';

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

  describe('from one snapshot', () => {
    let snapshot: SandboxSnapshot;
    let fibHash: Uint8Array;
    before(() => {
      using template = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20 });
      fibHash = template.loadImage(new Uint8Array(readFileSync(FIB))).contentHash;
      snapshot = template.snapshot();
    });
    after(() => snapshot.close());

    it('10,000 create/invoke/close cycles leave open fds and RSS flat (in a process of their own)', () => {
      const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(new URL('./cycles-child.js', import.meta.url))], { encoding: 'utf8', timeout: 300_000 });
      assert.equal(child.status, 0, child.stderr);
      const { fds, rss } = JSON.parse(child.stdout) as { fds: number[]; rss: number[] };
      assert.ok(fds.every((n) => n === fds[0]), `open fds ${fds.join(', ')}`);
      // The V8 heap breathes by a few MiB; a leak of a VM or a mapping per cycle would not.
      const firstHalf = Math.max(...rss.slice(0, 5));
      const secondHalf = Math.max(...rss.slice(5));
      assert.ok(secondHalf - firstHalf < 16 * 2 ** 20, `RSS ${rss.map((b) => (b / 2 ** 20).toFixed(0)).join(', ')} MiB`);
    });

    it('a restore after a fault, or after the kernel was scribbled over, gives a working sandbox', () => {
      using sandbox = Sandbox.fromSnapshot(snapshot);
      // The codes a scribble may end in; `null` also allows no error at all.
      const scribbles: [string, () => void, (string | null)[]][] = [
        ['fault', () => sandbox.guest!.request(MailboxOp.values.SELFTEST_FAULT, [SelftestFault.values.STACK_OVERFLOW]), ['GuestFault']],
        ['boot info', () => {
          sandbox.guest!.memory.writeU64(Layout.values.BOOT_INFO_GPA + BootInfo.offsets.magic, 0n);
          sandbox.guest!.reader.invalidate(); // as if the guest had written it while running
          sandbox.reader.len();
        }, ['BadMagic']],
        // Whether the guest sees host-written page tables depends on the host: under shadow
        // paging (kvm_pvm) it goes on with the mappings it had until the shadows are dropped;
        // the host's reader, which walks the tables itself, refuses them at once.
        ['page tables', () => {
          sandbox.guest!.memory.fill(Layout.values.PAGE_TABLES_GPA, 4096, 0);
          sandbox.invokeSync(fibHash, 1, { args: [5] });
        }, ['GuestTripleFault', 'GuestFault', 'UnmappedAddress', null]],
      ];
      for (const [what, scribble, codes] of scribbles) {
        try {
          scribble();
          assert.ok(codes.includes(null), `${what}: no error`);
        } catch (e) {
          assert.ok(e instanceof NubError && codes.includes(e.code), `${what}: ${String(e)}`);
        }
        sandbox.restore(snapshot);
        assert.equal(sandbox.invokeSync(fibHash, 1, { args: [30] }).regs[7], fib(30), `after ${what}`);
        assert.ok(sandbox.reader.len() > 0, 'the reader reads the restored directory');
      }
    });
  });

  it('other signals landing during a guest run (profilers, SIGUSR2 handlers) neither end it nor shorten the timeout', async () => {
    const loop = sandbox.loadImage(endlessLoop);
    const onSignal = (): void => {};
    process.on('SIGUSR2', onSignal);
    try {
      // Signals every 20 ms from another process while this thread sits in KVM_RUN.
      const child = spawn('sh', ['-c', `for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.02; kill -USR2 ${process.pid}; done`]);
      const t0 = performance.now();
      assert.throws(() => sandbox.invokeSync(loop, 1, { gas: NO_GAS_LIMIT, timeoutMs: 400 }), (e: unknown) => e instanceof NubError && e.code === 'Timeout');
      assert.ok(performance.now() - t0 >= 400, 'the run went on until the timeout');
      await new Promise((resolve) => child.once('exit', resolve));
    } finally {
      process.off('SIGUSR2', onSignal);
    }
  });

  it('several sandboxes at once in worker_threads each get their own results', async () => {
    const barrier = new Int32Array(new SharedArrayBuffer(8));
    barrier[1] = 3;
    const jobs = [[10, 20, 30], [40, 50, 60], [70, 80, 90]].map((args) => ({ imagePath: FIB, args, rounds: 50, barrier }));
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
