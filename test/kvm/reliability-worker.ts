// A worker thread of the reliability suite: its own sandbox, its own fib arguments;
// posts back what it computed (not a test file: reliability-sandbox.test.ts runs it).
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Sandbox } from '../../lib/sandbox/index.js';

interface Job {
  imagePath: string;
  args: number[];
  rounds: number;
  /** Int32Array over a SharedArrayBuffer: [workers ready, workers in all]. */
  barrier: Int32Array;
}

const job = workerData as Job;
using sandbox = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20 });
const image = sandbox.loadImage(new Uint8Array(readFileSync(job.imagePath)));
// Start together: the calls are fast enough that a worker could otherwise finish before the next one has booted.
Atomics.add(job.barrier, 0, 1);
Atomics.notify(job.barrier, 0);
for (let ready; (ready = Atomics.load(job.barrier, 0)) < job.barrier[1]!; ) Atomics.wait(job.barrier, 0, ready, 10_000);
const started = performance.now();
const results: string[] = [];
for (let round = 0; round < job.rounds; round++) {
  for (const n of job.args) results.push(sandbox.invokeSync(image, 1, { args: [n] }).regs[7]!.toString());
}
parentPort!.postMessage({ results, startedAt: performance.timeOrigin + started, endedAt: performance.timeOrigin + performance.now() });
