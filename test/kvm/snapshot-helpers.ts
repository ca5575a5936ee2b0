// Shared by the snapshot and reliability tests: a booted guest kernel driven through the
// mailbox directly (the pieces GuestVm is made of), so a test can snapshot its Vm.
import assert from 'node:assert/strict';
import { MailboxOp } from '../../lib/abi/guest-abi.js';
import { loadKernelImage, prepareBoot } from '../../lib/guest/boot.js';
import { GuestCacheReader } from '../../lib/guest/cache-reader.js';
import { GuestMemory } from '../../lib/guest/guest-memory.js';
import { Mailbox } from '../../lib/guest/mailbox.js';
import { Vm } from '../../lib/native/index.js';

export const MEMORY_SIZE = 16 * 1024 * 1024;

/** A booted guest driven through the mailbox directly (the pieces GuestVm is made of). */
export class Guest {
  readonly mem: GuestMemory;
  mailbox: Mailbox;
  constructor(readonly vm: Vm) {
    this.mem = new GuestMemory(vm.memory);
    this.mailbox = new Mailbox(vm, this.mem);
  }
  static boot(): Guest {
    const vm = Vm.create({ memorySize: MEMORY_SIZE });
    prepareBoot(vm, loadKernelImage());
    const guest = new Guest(vm);
    guest.mailbox.awaitBoot();
    return guest;
  }
  /**
   * After a restore: the host's mailbox state starts over (the old one may be poisoned).
   * With `timeoutMs`, a guest entry that takes longer poisons it with 'Timeout'.
   */
  reset(timeoutMs?: number): this {
    this.mailbox = new Mailbox(this.vm, this.mem, timeoutMs);
    return this;
  }
  put(hash: Uint8Array, bytes: Uint8Array): void {
    assert.equal(this.mailbox.call(MailboxOp.values.PUT, [1, bytes.length], [hash, bytes]), 1);
  }
  ping(): void {
    this.mailbox.call(MailboxOp.values.PING, []);
  }
  has(hash: Uint8Array): boolean {
    return GuestCacheReader.fromBootInfo(this.mem).contains(hash);
  }
  get memoryBytes(): Uint8Array {
    return new Uint8Array(this.vm.memory);
  }
}

