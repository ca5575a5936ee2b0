/**
 * Idle VMs kept for reuse. Creating a VM costs a few hundred microseconds (the kernel
 * sets up a VM, a vCPU and a memory slot); restoring a snapshot into an existing one
 * costs tens. A sandbox started from a snapshot takes a VM from here when one of the
 * right size is idle, and gives it back when it closes. Any VM may come back (poisoned,
 * faulted, on another snapshot's base): Snapshot.restore resets all of it.
 */
import { Vm } from '../native/index.js';

export const DEFAULT_VM_CACHE_CAPACITY = 4;

export class VmCache implements Disposable {
  readonly capacity: number;
  readonly #idle: Vm[] = [];
  #closed = false;

  constructor(capacity = DEFAULT_VM_CACHE_CAPACITY) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.#idle.length;
  }

  /** An idle VM of `memorySize` bytes, or undefined. */
  take(memorySize: number): Vm | undefined {
    const i = this.#idle.findIndex((vm) => vm.memorySize === memorySize);
    if (i < 0) return undefined;
    return this.#idle.splice(i, 1)[0];
  }

  /**
   * Keeps `vm` for reuse, or closes it when the cache is full (or it is closed already).
   * Its `memory` buffer is renewed: buffers the previous owner kept are detached.
   */
  give(vm: Vm): void {
    if (vm.closed) return;
    if (this.#closed || this.#idle.length >= this.capacity) {
      vm.close();
      return;
    }
    vm.renewMemory();
    this.#idle.push(vm);
  }

  /** Closes every idle VM; VMs given back later are closed at once. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const vm of this.#idle.splice(0)) vm.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
