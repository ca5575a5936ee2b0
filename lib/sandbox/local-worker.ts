/** The worker thread of engine local's async `invoke` (local-thread.ts): runs one job at a time, answers with the result. */
import { parentPort } from 'node:worker_threads';
import { isNubError } from '../errors.js';
import { runMachine, type MemoryView } from '../machine/invoke.js';
import { Command, CTRL, DATA_OFFSET, inputFromWire, PROGRESS_OFFSET, resultToWire, State, VALUE_OFFSET, type LocalJob, type WorkerMessage } from './local-protocol.js';

const port = parentPort!;
const post = (m: WorkerMessage): void => port.postMessage(m);

/** Blocks until the host sends a request, serves memory requests, returns φ7 (or undefined) at the reply. */
function serveHostCall(shared: SharedArrayBuffer, memory: MemoryView): bigint | undefined {
  const ctrl = new Int32Array(shared, 0, 8);
  const data = new Uint8Array(shared, DATA_OFFSET);
  let pending: Uint8Array[] = [];
  for (;;) {
    const state = Atomics.load(ctrl, CTRL.STATE);
    if (state !== State.REQUEST) {
      Atomics.wait(ctrl, CTRL.STATE, state);
      continue;
    }
    const command = ctrl[CTRL.COMMAND];
    const address = ctrl[CTRL.ADDRESS]! >>> 0;
    const length = ctrl[CTRL.LENGTH]!;
    if (command === Command.REPLY) {
      Atomics.store(ctrl, CTRL.STATE, State.IDLE);
      return address === 1 ? new BigUint64Array(shared, VALUE_OFFSET, 1)[0] : undefined;
    }
    let ok = true;
    if (command === Command.READ) {
      const bytes = memory.read(address, length);
      if (bytes === undefined) ok = false;
      else data.set(bytes);
    } else {
      pending.push(data.slice(0, length));
      if (command === Command.WRITE) {
        const whole = Buffer.concat(pending);
        pending = [];
        ok = memory.write(address, whole);
      }
    }
    ctrl[CTRL.STATUS] = ok ? 1 : 0;
    Atomics.store(ctrl, CTRL.STATE, State.DONE);
    Atomics.notify(ctrl, CTRL.STATE);
  }
}

port.on('message', (job: LocalJob) => {
  const hostNumbers = new Set(job.hostNumbers);
  const progress = new Float64Array(job.shared, PROGRESS_OFFSET, 2);
  progress.set([Number(job.input.gas), 0]);
  try {
    const result = runMachine({
      ...inputFromWire(job.input),
      hostFunction: (regs, memory, number) => {
        if (!hostNumbers.has(number)) return undefined;
        post({ type: 'hostCall', number, regs });
        return serveHostCall(job.shared, memory);
      },
      checkpoint: (gasLeft, instructions) => progress.set([Number(gasLeft), instructions]),
    });
    post({ type: 'done', result: resultToWire(result) });
  } catch (err) {
    post(isNubError(err)
      ? { type: 'error', code: err.code, message: err.message, ...(err.path === undefined ? {} : { path: err.path }) }
      : { type: 'error', code: 'Internal', message: String(err instanceof Error ? err.stack : err) });
  }
});
