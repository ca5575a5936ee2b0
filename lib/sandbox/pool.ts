/**
 * SandboxPool: N warm kvm sandboxes started from one snapshot, each restored to it after
 * every use, so every invoke starts from the same state and one bad invoke never leaks
 * into the next. An invoke borrows an idle sandbox (waiting when all are busy); a
 * sandbox left poisoned is closed and replaced by a new one from the snapshot.
 *
 *   using pool = SandboxPool.create({ size: 2, setup: (s) => s.loadImage(bytes) });
 *   const r = await pool.invoke(imageHash, 1, { args: [10] });
 *
 * Async invokes run on each VM's own thread, so a pool of two keeps two cores busy.
 */
import { availableParallelism } from 'node:os';
import { NubError } from '../errors.js';
import type { KeyLike } from '../caps/index.js';
import { Pool, type PoolStats } from './member-pool.js';
import { VmCache } from '../snapshot/vm-cache.js';
import { Sandbox, type InvokeOptions, type LoadedImage, type SandboxOptions, type SandboxResult, type SandboxSnapshot } from './sandbox.js';

export interface SandboxPoolOptions extends Omit<SandboxOptions, 'engine'> {
  /** Sandboxes kept warm (default: the number of CPUs). */
  size?: number;
  /** Prepares the template sandbox before the snapshot: load images, store caps, register host functions. */
  /** Prepares the template sandbox (load images, register host functions); `createAsync` awaits one that returns a Promise. */
  setup?: (sandbox: Sandbox) => void | Promise<void>;
}

/** A result whose `memory` was read before the sandbox went back to the pool. */
/** A stand-in for `sandbox` that forwards every call until end(), then throws 'Closed'. */
function lend(sandbox: Sandbox): { sandbox: Sandbox; end(): void } {
  let ended = false;
  const proxy = new Proxy(sandbox, {
    get(target, key) {
      if (ended) throw new NubError('Closed', 'this sandbox went back to its pool when the use() callback settled');
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { sandbox: proxy, end: () => { ended = true; } };
}

function detached(result: SandboxResult): SandboxResult {
  return { ...result, memory: result.memory };
}

export class SandboxPool implements Disposable {
  /** The state every pooled sandbox starts from and returns to. */
  readonly snapshot: SandboxSnapshot;
  readonly #vmCache: VmCache;
  readonly #pool: Pool<Sandbox>;

  private constructor(snapshot: SandboxSnapshot, size: number) {
    this.snapshot = snapshot;
    this.#vmCache = new VmCache(size);
    this.#pool = new Pool<Sandbox>(
      {
        create: () => Sandbox.fromSnapshot(snapshot, { vmCache: this.#vmCache }),
        reset: (sandbox) => sandbox.restore(snapshot),
        isBroken: (sandbox) => sandbox.poisonedBy !== undefined,
        destroy: (sandbox) => sandbox.close(), // a poisoned sandbox's VM is closed, not recycled
      },
      size,
    );
  }

  /** Boots one sandbox, runs `setup` on it, snapshots it, and starts `size` sandboxes from the snapshot. */
  static create(options: SandboxPoolOptions = {}): SandboxPool {
    const { size = availableParallelism(), setup, ...sandboxOptions } = options;
    let snapshot: SandboxSnapshot;
    {
      using template = Sandbox.create({ ...sandboxOptions, engine: 'kvm' });
      const done = setup?.(template);
      if (done instanceof Promise) {
        done.catch(() => {}); // refused below; its failure must not go unhandled
        throw new NubError('BadArgument', 'setup returned a Promise; use SandboxPool.createAsync to await it', { path: 'setup' });
      }
      snapshot = template.snapshot();
    }
    return SandboxPool.#fromSnapshot(snapshot, size);
  }

  /** `create` for a `setup` that returns a Promise: the pool starts once it has settled. */
  static async createAsync(options: SandboxPoolOptions = {}): Promise<SandboxPool> {
    const { size = availableParallelism(), setup, ...sandboxOptions } = options;
    let snapshot: SandboxSnapshot;
    {
      using template = Sandbox.create({ ...sandboxOptions, engine: 'kvm' });
      await setup?.(template);
      snapshot = template.snapshot();
    }
    return SandboxPool.#fromSnapshot(snapshot, size);
  }

  static #fromSnapshot(snapshot: SandboxSnapshot, size: number): SandboxPool {
    try {
      return new SandboxPool(snapshot, size);
    } catch (err) {
      snapshot.close();
      throw err;
    }
  }

  get size(): number {
    return this.#pool.size;
  }

  /** Uses, restores and replacements so far. */
  get stats(): PoolStats {
    return { ...this.#pool.stats };
  }

  /**
   * Invokes on a borrowed sandbox, on the VM's thread. The image is named by a LoadedImage
   * from `setup` or its hash. The result's `memory` is read before the sandbox is restored.
   */
  invoke(image: LoadedImage | Uint8Array, endpoint: KeyLike, opts: InvokeOptions = {}): Promise<SandboxResult> {
    return this.#pool.use(async (sandbox) => detached(await sandbox.invoke(image, endpoint, opts)));
  }

  /** invoke on this thread (fastest per call); throws 'PoolBusy' when no sandbox is idle. */
  invokeSync(image: LoadedImage | Uint8Array, endpoint: KeyLike, opts: InvokeOptions = {}): SandboxResult {
    return this.#pool.useSync((sandbox) => detached(sandbox.invokeSync(image, endpoint, opts)));
  }

  /** Borrows a sandbox for several calls (results' memory readable inside `fn`); restored afterwards. */
  /**
   * Lends a sandbox to `fn`. The sandbox `fn` gets works only until `fn` settles: kept
   * and used later (when another borrower has it) every call throws 'Closed'.
   */
  use<T>(fn: (sandbox: Sandbox) => T | Promise<T>): Promise<T> {
    return this.#pool.use(async (sandbox) => {
      const lease = lend(sandbox);
      try {
        return await fn(lease.sandbox);
      } finally {
        lease.end();
      }
    });
  }

  /** Closes every sandbox, the idle VMs and the snapshot. Idempotent. */
  close(): void {
    this.#pool.close();
    this.#vmCache.close();
    this.snapshot.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
