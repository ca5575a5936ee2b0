/**
 * Engine local's SandboxBackend: the reference interpreter (lib/machine) in this
 * process, with the caps in a map. `invokeSync` runs on the calling thread, checking the
 * deadline between slices of gas; `invoke` runs on a worker thread (local-thread.ts).
 */
import { decodeCap, toHex, type CapValue, type ImageCap } from '../caps/index.js';
import { NubError } from '../errors.js';
import type { StoredCap } from '../guest/index.js';
import type { CapToStore } from '../guest/guest-vm.js';
import { endpointInput, invokeLocal, type MemoryView } from '../machine/invoke.js';
import { PROGRAM_BYTES_PER_CODE_BYTE } from '../machine/program.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { PreparedCall, SandboxBackend, SandboxContext, StoredEntry } from './backend.js';
import { LocalThread } from './local-thread.js';
import type { CapReader, SandboxResult } from './sandbox.js';

/** A CapReader over caps held in this process. */
class LocalCapStore implements CapReader {
  readonly #caps = new Map<string, StoredCap>();
  put(c: CapToStore): boolean {
    const key = toHex(c.hash);
    if (this.#caps.has(key)) return false;
    this.#caps.set(key, { kind: c.kind, bytes: c.bytes });
    return true;
  }
  delete(key: string): void {
    this.#caps.delete(key);
  }
  len(): number {
    return this.#caps.size;
  }
  contains(hash: Uint8Array): boolean {
    return this.#caps.has(toHex(hash));
  }
  get(hash: Uint8Array): StoredCap | undefined {
    const c = this.#caps.get(toHex(hash));
    return c && { kind: c.kind, bytes: c.bytes.slice() };
  }
  getCap(hash: Uint8Array): CapValue | undefined {
    const c = this.#caps.get(toHex(hash));
    return c && decodeCap(c.bytes);
  }
}

/** Whether a call's frame can spawn Instances (then it cannot cross to the worker thread). */
function canSpawn(call: PreparedCall): boolean {
  return call.prepared.runnable.spawnable.size > 0 || call.caps.some((c) => c.kind === 'Image' && c.image !== undefined);
}

export class LocalBackend implements SandboxBackend {
  readonly engine = 'local' as const;
  readonly guest = undefined;
  readonly poisonedBy = undefined;
  readonly reader = new LocalCapStore();
  readonly #ctx: SandboxContext;
  /** Async invokes run here (started on first use). */
  #thread: LocalThread | undefined;

  constructor(ctx: SandboxContext) {
    this.#ctx = ctx;
  }

  /** The pre-decoded program: a budget bounds it, not the image's code size. */
  imageOverhead(imageCap: ImageCap): number {
    return Math.ceil(imageCap.code.length * PROGRAM_BYTES_PER_CODE_BYTE);
  }

  /** Nothing to make room in: the budget is the only bound. */
  withRoom<T>(work: () => T): T {
    return work();
  }

  putCaps(stores: CapToStore[]): number {
    return stores.filter((c) => this.reader.put(c)).length;
  }

  /** The interpreter decodes an image on its first run. */
  prepare(): void {}

  unload(_prepared: unknown, dropped: readonly StoredEntry[]): void {
    this.drop(dropped);
  }

  drop(dropped: readonly StoredEntry[]): void {
    for (const e of dropped) this.reader.delete(toHex(e.store.hash));
  }

  /** Host functions are looked up at each call. */
  hostFunctionChanged(): void {}

  /** On this thread; a deadline is checked between slices of gas and after each host call. */
  invokeSync({ prepared, endpoint, args, caps, gas, instance, timeoutMs }: PreparedCall): SandboxResult {
    const admitted = prepared.loaded.admitted;
    const deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
    const timeout = new NubError('Timeout', `the invoke did not finish within ${timeoutMs} ms`);
    const checkDeadline = deadline === undefined ? undefined : () => {
      if (performance.now() > deadline) throw timeout;
    };
    let failure: unknown;
    const hostFunction = (regs: bigint[], memory: MemoryView, n: number): bigint | undefined => {
      let value;
      try {
        value = this.#ctx.callHostFunction(regs, memory, n, false) as bigint | undefined;
      } catch (err) {
        failure = err ?? new Error('undefined was thrown');
        throw failure;
      }
      checkDeadline?.();
      return value;
    };
    try {
      return invokeLocal(admitted.imageCap, admitted, endpoint.key, {
        args, caps, gas, hostFunction, spawnable: prepared.runnable.spawnable, ...(instance === undefined ? {} : { memory: instance.memory }), ...(checkDeadline ? { checkpoint: checkDeadline } : {}),
      });
    } catch (err) {
      if (failure !== undefined && err === failure) {
        throw new NubError('HostFunctionFailed', `a host function threw: ${String(err)}`, { cause: err });
      }
      throw err;
    }
  }

  /** On the worker thread; a frame that can spawn holds images and Instances the worker cannot be sent, so it runs here. */
  async invoke(call: PreparedCall): Promise<SandboxResult> {
    if (canSpawn(call)) return this.invokeSync(call);
    const admitted = call.prepared.loaded.admitted;
    const input = endpointInput(admitted.imageCap, admitted, call.endpoint.key, call.args, call.caps, call.instance?.memory);
    this.#thread ??= new LocalThread();
    return this.#thread.run({
      input: { ...input, gas: call.gas },
      hostNumbers: [...this.#ctx.host().hostFunctions.keys()],
      hostFunction: (regs, memory, n) => this.#ctx.callHostFunction(regs, memory, n, true),
      ...(call.timeoutMs === undefined ? {} : { deadline: performance.now() + call.timeoutMs, timeoutMs: call.timeoutMs }),
      ...(call.signal === undefined ? {} : { signal: call.signal }),
    });
  }

  /** Nothing to restart: the interpreter keeps no state between calls. */
  reset(): void {}

  snapshot(): Snapshot {
    throw new NubError('Unsupported', 'snapshots need engine kvm');
  }

  restore(): void {
    throw new NubError('Unsupported', 'snapshots need engine kvm');
  }

  progress(): { gasLeft: number; instructions: number } | undefined {
    return this.#thread?.progress();
  }

  close(): void {
    this.#thread?.close();
  }
}
