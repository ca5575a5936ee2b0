// The host end of the mailbox against fake vCPUs: every exit the guest can produce.
import type { NubErrorCode } from '../../lib/errors.js';
import assert from 'node:assert/strict';
import { FaultRecord, Layout, Mailbox as MailboxLayout, MailboxStatus, Ports } from '../../lib/abi/guest-abi.js';
import { GuestMemory } from '../../lib/guest/guest-memory.js';
import { Mailbox, MAILBOX_PAYLOAD_CAPACITY, MAILBOX_PAYLOAD_GPA } from '../../lib/guest/mailbox.js';
import { KVM_EXIT, KVM_RUN } from '../../lib/native/index.js';
import { expectNubError } from '../support/nub-error.js';

const L = Layout.values;
const M = MailboxLayout.offsets;
const IO_DATA_OFFSET = 1024;

/** A vCPU whose every run calls `guest` (which may edit guest memory) and exits as it returns. */
function fakeVm(mem: GuestMemory, guest: () => { reason: number; port?: number }) {
  const runState = new ArrayBuffer(4096);
  const view = new DataView(runState);
  return {
    runState,
    runs: 0,
    run() {
      this.runs++;
      const exit = guest();
      view.setUint32(KVM_RUN.exitReason, exit.reason, true);
      if (exit.reason === KVM_EXIT.IO) {
        view.setUint8(KVM_RUN.ioDirection, 1);
        view.setUint8(KVM_RUN.ioSize, 1);
        view.setUint16(KVM_RUN.ioPort, exit.port!, true);
        view.setUint32(KVM_RUN.ioCount, 1, true);
        view.setBigUint64(KVM_RUN.ioDataOffset, BigInt(IO_DATA_OFFSET), true);
      }
      return exit.reason;
    },
  };
}

/**
 * A guest that answers like guest/src/mailbox.c: status only when it is not OK,
 * results[0] = args[0] + 1, then done_seq.
 */
function honestGuest(mem: GuestMemory, status: number = MailboxStatus.values.OK) {
  return () => {
    const base = L.MAILBOX_GPA;
    if (status !== MailboxStatus.values.OK) mem.view.setUint32(base + M.status, status, true);
    mem.view.setBigUint64(base + M.results, mem.view.getBigUint64(base + M.args, true) + 1n, true);
    mem.view.setBigUint64(base + M.done_seq, mem.view.getBigUint64(base + M.seq, true), true);
    return { reason: KVM_EXIT.IO, port: Ports.values.DOORBELL };
  };
}


const newMemory = () => new GuestMemory(new ArrayBuffer(L.MIN_MEMORY_SIZE));

describe('mailbox (host end)', () => {
  it('writes the request, enters once, and returns results[0]', () => {
    const mem = newMemory();
    const vm = fakeVm(mem, honestGuest(mem));
    const mailbox = new Mailbox(vm, mem);
    assert.equal(mailbox.call(7, [41, 2, 3], [Uint8Array.of(1, 2), Uint8Array.of(3)]), 42);
    assert.equal(vm.runs, 1);
    assert.equal(mem.u32(L.MAILBOX_GPA + M.op), 7);
    assert.equal(mem.u64(L.MAILBOX_GPA + M.payload_len), 3n);
    assert.deepEqual(mem.bytes(MAILBOX_PAYLOAD_GPA, 3), Uint8Array.of(1, 2, 3));
    assert.equal(mem.u64(L.MAILBOX_GPA + M.args + 8), 2n);
    assert.equal(mailbox.call(7, [1]), 2);
    assert.equal(mem.u64(L.MAILBOX_GPA + M.seq), 2n, 'every request gets a new sequence number');
    assert.equal(mem.u64(L.MAILBOX_GPA + M.args + 8), 0n, 'unused arguments are cleared');
  });

  it('maps a refusal to a coded error and stays usable', () => {
    const mem = newMemory();
    let status: number = MailboxStatus.values.DIRECTORY_FULL;
    const vm = fakeVm(mem, () => honestGuest(mem, status)());
    const mailbox = new Mailbox(vm, mem);
    expectNubError(() => mailbox.call(2, []), 'DirectoryFull');
    status = 99;
    expectNubError(() => mailbox.call(2, []), 'GuestBadStatus');
    status = MailboxStatus.values.OK;
    assert.equal(mailbox.call(1, [5]), 6, 'the host resets the status the last refusal left');
  });

  it('rejects bad requests before entering the guest', () => {
    const mem = newMemory();
    const vm = fakeVm(mem, honestGuest(mem));
    const mailbox = new Mailbox(vm, mem);
    expectNubError(() => mailbox.call(1, [], [new Uint8Array(MAILBOX_PAYLOAD_CAPACITY + 1)]), 'PayloadTooLarge');
    expectNubError(() => mailbox.call(1, [0, 0, 0, 0, 0, 0, 0]), 'BadArgument');
    expectNubError(() => mailbox.call(1, [-1]), 'BadArgument');
    expectNubError(() => mailbox.call(1, [0.5]), 'BadArgument');
    assert.equal(vm.runs, 0);
  });

  it('reports a guest fault with the fault record, then refuses every call', () => {
    const mem = newMemory();
    const vm = fakeVm(mem, () => {
      const at = L.FAULT_GPA;
      mem.setField(FaultRecord, at, 'vector', 14);
      mem.setField(FaultRecord, at, 'error_code', 2);
      mem.setField(FaultRecord, at, 'rip', 0x40_0010_0123n);
      mem.setField(FaultRecord, at, 'cr2', 0x40_0000_0008n);
      mem.setField(FaultRecord, at, 'count', 1);
      return { reason: KVM_EXIT.IO, port: Ports.values.FAULT };
    });
    const mailbox = new Mailbox(vm, mem);
    const err = expectNubError(() => mailbox.call(1, []), 'GuestFault');
    assert.deepEqual(
      { vector: err.details!.vector, errorCode: err.details!.errorCode, rip: err.details!.rip, cr2: err.details!.cr2, count: err.details!.count },
      { vector: 14, errorCode: 2n, rip: 0x40_0010_0123n, cr2: 0x40_0000_0008n, count: 1n },
    );
    const poisoned = expectNubError(() => mailbox.call(1, []), 'Poisoned');
    assert.equal(poisoned.cause, err);
    assert.equal(mailbox.poisonedBy, err);
    assert.equal(vm.runs, 1, 'a poisoned mailbox never enters the guest again');
  });

  const fatalExits: [string, { reason: number; port?: number }, NubErrorCode][] = [
    ['hlt', { reason: KVM_EXIT.HLT }, 'GuestHalted'],
    ['a triple fault', { reason: KVM_EXIT.SHUTDOWN }, 'GuestTripleFault'],
    ['a failed entry', { reason: KVM_EXIT.FAIL_ENTRY }, 'VmEntryFailed'],
    ['a KVM internal error', { reason: KVM_EXIT.INTERNAL_ERROR }, 'KvmInternalError'],
    ['a timeout', { reason: KVM_EXIT.INTR }, 'Timeout'],
    ['an unknown port', { reason: KVM_EXIT.IO, port: 0x99 }, 'UnexpectedExit'],
    ['an mmio access', { reason: KVM_EXIT.MMIO }, 'UnexpectedExit'],
  ];
  for (const [what, exit, code] of fatalExits) {
    it(`poisons the VM on ${what}`, () => {
      const mem = newMemory();
      const mailbox = new Mailbox(fakeVm(mem, () => exit), mem);
      expectNubError(() => mailbox.call(1, []), code);
      expectNubError(() => mailbox.call(1, []), 'Poisoned');
    });
  }

  it('poisons the VM when the guest rings without finishing the request', () => {
    const mem = newMemory();
    const mailbox = new Mailbox(fakeVm(mem, () => ({ reason: KVM_EXIT.IO, port: Ports.values.DOORBELL })), mem);
    expectNubError(() => mailbox.call(1, []), 'GuestProtocol');
    expectNubError(() => mailbox.call(1, []), 'Poisoned');
  });
});
