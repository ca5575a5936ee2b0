/**
 * A pool of warm, interchangeable members (sandboxes, VMs) that are reset between uses.
 * `use(fn)` borrows an idle member (waiting when all are busy), runs `fn`, resets the
 * member and returns it. A member that is poisoned after use, or that fails to reset,
 * is closed and replaced by a new one, so one bad call never leaks into the next.
 * lib/sandbox/pool.ts builds SandboxPool on it, resetting by snapshot restore.
 */
import { NubError } from '../errors.js';

export interface PoolAdapter<M> {
  /** A new member, ready to use. */
  create(): M;
  /** Puts a used member back in its initial state; throws when it cannot. */
  reset(member: M): void;
  /** True when the member must not be reused even after a reset. */
  isBroken?(member: M): boolean;
  /** Closes a member for good (replaced or pool closed). */
  destroy(member: M): void;
}

export interface PoolStats {
  uses: number;
  resets: number;
  /** Members closed and replaced (poisoned, or the reset failed). */
  replaced: number;
}

export class Pool<M> {
  readonly size: number;
  readonly #adapter: PoolAdapter<M>;
  readonly #idle: M[] = [];
  readonly #waiting: { resolve: (member: M) => void; reject: (err: Error) => void }[] = [];
  /** Members alive, idle or in use. */
  #members = 0;
  #closed = false;
  readonly stats: PoolStats = { uses: 0, resets: 0, replaced: 0 };

  /** Creates `size` members now, so the first uses find them warm. */
  constructor(adapter: PoolAdapter<M>, size: number) {
    if (!Number.isInteger(size) || size < 1) throw new NubError('BadArgument', `a pool holds at least one member, not ${size}`);
    this.#adapter = adapter;
    this.size = size;
    try {
      for (let i = 0; i < size; i++) this.#idle.push(this.#create());
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Idle members right now. */
  get idle(): number {
    return this.#idle.length;
  }

  /** Borrows a member for `fn` (waiting for one when all are busy), then resets and returns it. */
  async use<T>(fn: (member: M) => T | Promise<T>): Promise<T> {
    const member = this.#idle.pop() ?? (await this.#wait());
    try {
      return await fn(member);
    } finally {
      this.#giveBack(member);
    }
  }

  /** `use` without waiting: throws 'PoolBusy' when no member is idle (a sync caller cannot wait). */
  useSync<T>(fn: (member: M) => T): T {
    this.#check();
    const member = this.#idle.pop();
    if (member === undefined) throw new NubError('PoolBusy', `all ${this.size} pool members are in use`);
    try {
      return fn(member);
    } finally {
      this.#giveBack(member);
    }
  }

  /** Closes every member; uses in flight finish, then their members are closed too. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const member of this.#idle.splice(0)) this.#destroy(member);
    this.#rejectWaiting(new NubError('Closed', 'the pool is closed'));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#closed) throw new NubError('Closed', 'the pool is closed');
  }

  #wait(): Promise<M> {
    this.#check();
    return new Promise<M>((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #rejectWaiting(err: Error): void {
    for (const { reject } of this.#waiting.splice(0)) reject(err);
  }

  #create(): M {
    const member = this.#adapter.create();
    this.#members++;
    return member;
  }

  #destroy(member: M): void {
    this.#members--;
    this.#adapter.destroy(member);
  }

  #giveBack(member: M): void {
    this.stats.uses++;
    if (this.#closed) {
      this.#destroy(member);
      return;
    }
    let next = member;
    try {
      if (this.#adapter.isBroken?.(member)) throw new NubError('Poisoned', 'the member is broken');
      this.#adapter.reset(member);
      this.stats.resets++;
    } catch {
      this.#destroy(member);
      this.stats.replaced++;
      try {
        next = this.#create();
      } catch (err) {
        // The pool shrinks; it keeps working while any member is left.
        if (this.#members === 0) this.#rejectWaiting(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
    const waiter = this.#waiting.shift();
    if (waiter) waiter.resolve(next);
    else this.#idle.push(next);
  }
}
