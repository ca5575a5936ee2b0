/**
 * Engine local's async `invoke`: the reference interpreter on a worker thread, so the
 * event loop stays free. A timeout or an abort terminates the worker (the next invoke
 * starts a new one), which stops even an endless loop at once. Host functions run
 * here, on the caller's thread; they may be async.
 */
import { Worker } from 'node:worker_threads';
import { NubError } from '../errors.js';
import type { HostFunction, InvokeResult, MemoryView } from '../machine/invoke.js';
import { Command, CTRL, DATA_BYTES, DATA_OFFSET, inputToWire, PROGRESS_OFFSET, resultFromWire, sharedBuffer, State, VALUE_OFFSET, type LocalJob, type WorkerMessage } from './local-protocol.js';

export interface LocalRun {
  /** lib/machine's endpointInput for the call, and its gas. */
  input: Parameters<typeof inputToWire>[0];
  hostNumbers: number[];
  hostFunction: HostFunction<bigint | undefined | PromiseLike<bigint | undefined>>;
  /** performance.now() after which the invoke fails with 'Timeout'. */
  deadline?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** How long the host waits for the worker between checks that it is still alive. */
const WAIT_SLICE_MS = 100;

export class LocalThread {
  readonly #shared = sharedBuffer();
  readonly #ctrl = new Int32Array(this.#shared, 0, 8);
  readonly #data = new Uint8Array(this.#shared, DATA_OFFSET, DATA_BYTES);
  readonly #progress = new Float64Array(this.#shared, PROGRESS_OFFSET, 2);
  #worker: Worker | undefined;
  #closed = false;

  /** Runs one job; the Sandbox queues its invokes, so one runs at a time (one worker, one shared buffer). */
  run(run: LocalRun): Promise<InvokeResult> {
    if (this.#closed) return Promise.reject(new NubError('Closed', 'the sandbox is closed'));
    if (run.signal?.aborted) return Promise.reject(cancelled(run.signal));
    if (run.deadline !== undefined && performance.now() > run.deadline) return Promise.reject(timedOut(run.timeoutMs));
    const worker = this.#worker ?? this.#spawn();
    worker.ref();
    this.#progress.fill(Number.NaN); // until the worker starts the job
    return new Promise<InvokeResult>((resolve, reject) => {
      let settled = false;
      const settle = (err: unknown, result?: InvokeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        run.signal?.removeEventListener('abort', onAbort);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (this.#worker === worker) worker.unref();
        this.#progress.fill(Number.NaN);
        if (err === undefined) resolve(result!);
        else reject(err);
      };
      const stop = (err: NubError): void => {
        this.#kill(worker);
        settle(err);
      };
      const timer = run.deadline === undefined ? undefined : setTimeout(() => stop(timedOut(run.timeoutMs)), Math.max(0, run.deadline - performance.now()));
      const onAbort = (): void => stop(cancelled(run.signal!));
      run.signal?.addEventListener('abort', onAbort);
      const onError = (err: Error): void => stop(new NubError('Internal', `engine local's worker failed: ${err.message}`, { cause: err }));
      const onExit = (): void => stop(this.#closed ? new NubError('Closed', 'the sandbox was closed during the invoke') : new NubError('Internal', "engine local's worker exited"));
      const onMessage = async (m: WorkerMessage): Promise<void> => {
        if (m.type === 'done') return settle(undefined, resultFromWire(m.result));
        if (m.type === 'error') return settle(new NubError(m.code, m.message, m.path === undefined ? {} : { path: m.path }));
        const memory = this.#memoryView(worker);
        let value: bigint | undefined;
        try {
          value = await run.hostFunction(m.regs, memory.view, m.number);
        } catch (err) {
          const cause = err ?? new Error('undefined was thrown');
          return stop(new NubError('HostFunctionFailed', `host function ${m.number} threw: ${String(cause)}`, { cause }));
        } finally {
          memory.end();
        }
        if (settled) return;
        if (run.deadline !== undefined && performance.now() > run.deadline) return stop(timedOut(run.timeoutMs));
        this.#request(worker, Command.REPLY, value === undefined ? 0 : 1, 0, value);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage({ input: inputToWire(run.input), hostNumbers: run.hostNumbers, shared: this.#shared } satisfies LocalJob);
    });
  }

  /** The running invoke's gas left and instructions at its last checkpoint (about every CHECKPOINT_GAS gas). */
  progress(): { gasLeft: number; instructions: number } | undefined {
    const [gasLeft, instructions] = this.#progress;
    return Number.isNaN(gasLeft) ? undefined : { gasLeft: gasLeft!, instructions: instructions! };
  }

  close(): void {
    this.#closed = true;
    if (this.#worker) this.#kill(this.#worker);
  }

  #spawn(): Worker {
    Atomics.store(this.#ctrl, CTRL.STATE, State.IDLE);
    this.#worker = new Worker(new URL('./local-worker.js', import.meta.url));
    return this.#worker;
  }

  #kill(worker: Worker): void {
    if (this.#worker === worker) this.#worker = undefined;
    void worker.terminate();
  }

  /** A MemoryView over the blocked worker's machine memory, usable until `end()`. */
  #memoryView(worker: Worker): { view: MemoryView; end(): void } {
    let live = true;
    const check = (): void => {
      if (!live || this.#worker !== worker) throw new NubError('StaleMemory', 'the host call this memory belongs to has ended');
    };
    const view: MemoryView = {
      read: (address, length) => {
        check();
        const out = new Uint8Array(length);
        let off = 0;
        do {
          const n = Math.min(DATA_BYTES, length - off);
          if (!this.#request(worker, Command.READ, (address + off) >>> 0, n)) return undefined;
          out.set(this.#data.subarray(0, n), off);
          off += n;
        } while (off < length);
        return out;
      },
      write: (address, bytes) => {
        check();
        // Parts gather in the worker and are written at once, so a refused write writes nothing.
        for (let off = 0; ; off += DATA_BYTES) {
          const part = bytes.subarray(off, off + DATA_BYTES);
          this.#data.set(part);
          const last = off + DATA_BYTES >= bytes.length;
          const ok = this.#request(worker, last ? Command.WRITE : Command.WRITE_PART, address >>> 0, part.length);
          if (last) return ok;
        }
      },
    };
    return { view, end: () => { live = false; } };
  }

  /** One request to the worker; waits for its answer except for a REPLY (the worker goes on running). */
  #request(worker: Worker, command: number, address: number, length: number, value?: bigint): boolean {
    const ctrl = this.#ctrl;
    ctrl[CTRL.COMMAND] = command;
    ctrl[CTRL.ADDRESS] = address | 0;
    ctrl[CTRL.LENGTH] = length;
    if (value !== undefined) new BigUint64Array(this.#shared, VALUE_OFFSET, 1)[0] = BigInt.asUintN(64, value);
    Atomics.store(ctrl, CTRL.STATE, State.REQUEST);
    Atomics.notify(ctrl, CTRL.STATE);
    if (command === Command.REPLY) return true;
    while (Atomics.load(ctrl, CTRL.STATE) === State.REQUEST) {
      Atomics.wait(ctrl, CTRL.STATE, State.REQUEST, WAIT_SLICE_MS);
      if (this.#worker !== worker) throw new NubError('StaleMemory', 'the host call this memory belongs to has ended');
    }
    const ok = ctrl[CTRL.STATUS] === 1;
    Atomics.store(ctrl, CTRL.STATE, State.IDLE);
    return ok;
  }
}

function timedOut(timeoutMs: number | undefined): NubError {
  return new NubError('Timeout', `the invoke did not finish within ${timeoutMs} ms`);
}

function cancelled(signal: AbortSignal): NubError {
  return new NubError('Cancelled', 'the invoke was cancelled', { cause: signal.reason });
}
