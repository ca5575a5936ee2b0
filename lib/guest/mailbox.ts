/**
 * The host end of the mailbox (layout in lib/abi/guest-abi.ts): write one request,
 * enter the guest once, decode the one exit that comes back. The doorbell port means
 * "done"; anything else ends the VM's usefulness, so the mailbox is then poisoned and
 * every later call fails fast with code 'Poisoned' (the first error says why).
 *
 * Requests are opcodes over this one mechanism; `call` is send + enter + check. INVOKE
 * uses the parts itself: a host call is one more port (NUB_PORT_HOST_CALL) whose exit
 * the host answers before re-entering, and an invoke may be interrupted (timeout, cancel).
 *
 * Polling mode (`idleSpinTsc`): the vCPU stays in the guest between requests, spinning on
 * `seq`; the host publishes `seq` last and spins on `done_seq` (lib/native Vm.pollRun), so
 * a request crosses no VM exit. A guest idle for its budget rings the doorbell and the
 * next request enters it again.
 */
import { EXCEPTIONS, FaultRecord, Layout, Mailbox as MailboxLayout, MAILBOX_ARG_COUNT, MailboxOp, MailboxPayload, MailboxStatus, Ports } from '../abi/guest-abi.js';
import { NubError, type NubErrorCode } from '../errors.js';
import { decodeExit, KVM_EXIT, KVM_EXIT_IO_OUT, KVM_RUN, KVM_RUN_MIN_SIZE, type PollCall, type VmExit } from '../native/index.js';
import type { GuestMemory } from './guest-memory.js';

/** The VM operations the mailbox needs (lib/native's Vm has them). */
export interface RunnableVm {
  readonly runState: ArrayBuffer;
  run(timeoutMs?: number): number;
  runAsync?(timeoutMs?: number): Promise<number>;
  pollRun?(call: PollCall): number;
  pollRunAsync?(call: PollCall): Promise<number>;
}

export const MAILBOX_PAYLOAD_GPA = MailboxPayload.values.GPA;
/** Largest request payload, in bytes. */
export const MAILBOX_PAYLOAD_CAPACITY = MailboxPayload.values.CAPACITY;
export { MAILBOX_ARG_COUNT };

const M = MailboxLayout.offsets;
const MAILBOX = Layout.values.MAILBOX_GPA;
const TWO_POW_32 = 0x1_0000_0000;
/** What pollRun returns when the guest answered without an exit (native/poller.h kAnswered). */
const POLL_ANSWERED = 0xffff_ffff;

const STATUS_CODES: Record<number, NubErrorCode> = {
  [MailboxStatus.values.BAD_OP]: 'GuestBadOp',
  [MailboxStatus.values.BAD_ARGS]: 'GuestBadArgs',
  [MailboxStatus.values.NO_MEMORY]: 'OutOfMemory',
  [MailboxStatus.values.DIRECTORY_FULL]: 'DirectoryFull',
  [MailboxStatus.values.CAP_MISSING]: 'GuestCapMissing',
  [MailboxStatus.values.BAD_CAP]: 'GuestBadCap',
};

/**
 * How a guest entry ended, when it ended well: the guest answered (`doorbell`), stopped
 * an INVOKE for a host function (`hostCall`), or was stopped by a kick or the watchdog
 * (`interrupted`, only for entries that allow it).
 */
export type GuestStop = 'doorbell' | 'hostCall' | 'interrupted';

export class Mailbox {
  readonly #vm: RunnableVm;
  readonly #mem: GuestMemory;
  readonly #timeoutMs: number | undefined;
  #seq = 0;
  #poison: NubError | undefined;
  #runView: DataView | undefined;
  readonly #polling: boolean;
  /** Polling mode: the sequence number send() wrote everything but, for the next entry to publish. */
  #unpublished = 0;

  /**
   * With `timeoutMs`, a guest entry that takes longer is stopped and poisons the mailbox
   * ('Timeout'). With `idleSpinTsc` > 0, polling mode (the VM needs pollRun).
   */
  constructor(vm: RunnableVm, mem: GuestMemory, timeoutMs?: number, idleSpinTsc = 0) {
    this.#vm = vm;
    this.#mem = mem;
    this.#timeoutMs = timeoutMs;
    this.#polling = idleSpinTsc > 0;
    if (this.#polling && (vm.pollRun === undefined || vm.pollRunAsync === undefined)) throw new NubError('Unsupported', 'this VM cannot poll');
    setU64(mem.view, MAILBOX + M.idle_spin_tsc, idleSpinTsc);
  }

  /** The error that poisoned the mailbox, if one did. */
  get poisonedBy(): NubError | undefined {
    return this.#poison;
  }

  /** Runs the freshly prepared VM until the kernel's first doorbell ("booted"). */
  awaitBoot(): void {
    this.#throwIfPoisoned();
    this.#expectDoorbell(this.#stop(this.#runOnce(() => this.#vm.run(this.#timeoutMs)), false));
  }

  /**
   * One request: returns the guest's `results[0]` (a number; results beyond 2^53 are
   * not used by any opcode yet). A non-OK status throws a NubError without poisoning.
   * The payload parts are written back to back at MAILBOX_PAYLOAD_GPA.
   */
  call(op: number, args: readonly number[], payload: readonly Uint8Array[] = [], timeoutMs = this.#timeoutMs): number {
    const seq = this.send(op, args, payload);
    this.#expectDoorbell(this.enter(timeoutMs));
    this.checkDone(seq);
    const err = this.statusError(op);
    if (err) throw err;
    return this.result(0);
  }

  /**
   * Writes a request (header, args, payload parts) without entering the guest; returns its
   * sequence number. `inPlace` bytes at MAILBOX_PAYLOAD_GPA, already written by the caller,
   * come before the parts.
   */
  send(op: number, args: readonly number[], payload: readonly Uint8Array[] = [], inPlace = 0): number {
    const view = this.#mem.view;
    let payloadLen = inPlace;
    for (const part of payload) payloadLen += part.length;
    if (payloadLen > MAILBOX_PAYLOAD_CAPACITY) {
      throw new NubError('PayloadTooLarge', `a request payload holds at most ${MAILBOX_PAYLOAD_CAPACITY} bytes, not ${payloadLen}`);
    }
    if (args.length > MAILBOX_ARG_COUNT || !args.every((a) => Number.isSafeInteger(a) && a >= 0)) {
      throw new NubError('BadArgument', `a request has at most ${MAILBOX_ARG_COUNT} arguments, each a non-negative safe integer`);
    }
    this.#throwIfPoisoned();
    const seq = ++this.#seq;
    if (this.#polling) this.#unpublished = seq; // published by the poll, after everything else
    else setU64(view, MAILBOX + M.seq, seq);
    view.setUint32(MAILBOX + M.op, op, true);
    view.setUint32(MAILBOX + M.status, MailboxStatus.values.OK, true); // the guest writes it only on failure
    setU64(view, MAILBOX + M.payload_len, payloadLen);
    for (let i = 0; i < MAILBOX_ARG_COUNT; i++) setU64(view, MAILBOX + M.args + 8 * i, args[i] ?? 0);
    let at = MAILBOX_PAYLOAD_GPA + inPlace;
    for (const part of payload) {
      this.#mem.u8s.set(part, at);
      at += part.length;
    }
    return seq;
  }

  /**
   * One guest entry on this thread. `timeoutMs` defaults to the mailbox's; with
   * `interruptible`, a timeout returns 'interrupted' instead of poisoning (the caller
   * must then restart the guest somewhere sane). Any exit that is not a stop poisons.
   */
  enter(timeoutMs = this.#timeoutMs, interruptible = false): GuestStop {
    this.#throwIfPoisoned();
    if (this.#polling) return this.#stop(this.#runOnce(() => this.#vm.pollRun!(this.#pollCall(timeoutMs))), interruptible);
    return this.#stop(this.#runOnce(() => this.#vm.run(timeoutMs)), interruptible);
  }

  #runOnce(run: () => number): number {
    try {
      return run();
    } catch (err) {
      throw this.#poisonWith(asNubError(err));
    }
  }

  /** The next poll: publish the unpublished request (if any) and wait for the latest one. */
  #pollCall(timeoutMs: number | undefined): PollCall {
    const call: PollCall = {
      seqOffset: MAILBOX + M.seq, seq: this.#unpublished, doneOffset: MAILBOX + M.done_seq, want: this.#seq, idlePort: Ports.values.DOORBELL,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    };
    this.#unpublished = 0;
    return call;
  }

  /** `enter` on the VM's own thread (lib/native runAsync), so the event loop keeps running; a kick interrupts it. */
  async enterAsync(timeoutMs = this.#timeoutMs, interruptible = false): Promise<GuestStop> {
    this.#throwIfPoisoned();
    if (this.#vm.runAsync === undefined) throw new NubError('Unsupported', 'this VM cannot run asynchronously');
    let reason: number;
    try {
      reason = await (this.#polling ? this.#vm.pollRunAsync!(this.#pollCall(timeoutMs)) : this.#vm.runAsync(timeoutMs));
    } catch (err) {
      throw this.#poisonWith(asNubError(err));
    }
    return this.#stop(reason, interruptible);
  }

  /** Poisons (and throws) unless the guest finished request `seq`. */
  checkDone(seq: number): void {
    if (getU64(this.#mem.view, MAILBOX + M.done_seq) !== seq) {
      throw this.#poisonWith(new NubError('GuestProtocol', `the guest rang the doorbell without finishing request ${seq}`));
    }
  }

  /** The guest's refusal of the last request as a NubError (the VM stays usable), or undefined when it succeeded. */
  statusError(op: number): NubError | undefined {
    const status = this.#mem.view.getUint32(MAILBOX + M.status, true);
    if (status === MailboxStatus.values.OK) return undefined;
    const name = Object.entries(MailboxOp.values).find(([, v]) => v === op)?.[0] ?? `op ${op}`;
    const hint = status === MailboxStatus.values.NO_MEMORY
      ? ': guest memory is full (loaded images and caps, and what this request made: minted caps, Instances); give the sandbox more memorySize, or unloadImage() some'
      : '';
    return new NubError(STATUS_CODES[status] ?? 'GuestBadStatus', `the guest refused ${name} with status ${status}${hint}`, {
      details: { op, status },
    });
  }

  /** `results[i]` of the last request. */
  result(i: number): number {
    return getU64(this.#mem.view, MAILBOX + M.results + 8 * i);
  }

  /** Marks the mailbox unusable (the first error is kept) and returns `err`, for the caller to throw. */
  poison(err: NubError): NubError {
    return this.#poisonWith(err);
  }

  #stop(reason: number, interruptible: boolean): GuestStop {
    if (reason === POLL_ANSWERED) return 'doorbell';
    // The two stops of every call, read straight from kvm_run (their data is never used);
    // anything else is decoded in full, and is an error unless it is an allowed interruption.
    if (reason === KVM_EXIT.IO) {
      const state = this.#vm.runState; // detached (length 0) once the VM is closed
      const run = state.byteLength >= KVM_RUN_MIN_SIZE ? (this.#runView ??= new DataView(state)) : undefined;
      if (run !== undefined && run.getUint8(KVM_RUN.ioDirection) === KVM_EXIT_IO_OUT) {
        const port = run.getUint16(KVM_RUN.ioPort, true);
        if (port === Ports.values.DOORBELL) return 'doorbell';
        if (port === Ports.values.HOST_CALL) return 'hostCall';
      }
    }
    let exit: VmExit;
    try {
      exit = decodeExit(this.#vm, reason);
    } catch (err) {
      throw this.#poisonWith(asNubError(err));
    }
    if (exit.kind === 'interrupted' && interruptible) return 'interrupted';
    throw this.#poisonWith(this.#exitError(exit));
  }

  #expectDoorbell(stop: GuestStop): void {
    if (stop !== 'doorbell') throw this.#poisonWith(new NubError('GuestProtocol', `the guest stopped with ${stop} outside an invoke`));
  }

  #exitError(exit: VmExit): NubError {
    switch (exit.kind) {
      case 'io':
        return exit.port === Ports.values.FAULT && exit.direction === 'out'
          ? this.#faultError()
          : new NubError('UnexpectedExit', `the guest used port ${exit.port} (${exit.direction})`, { details: { port: exit.port } });
      case 'hlt':
        return new NubError('GuestHalted', 'the guest kernel halted');
      case 'shutdown':
        return new NubError('GuestTripleFault', 'the guest kernel shut down (triple fault)');
      case 'failEntry':
        return new NubError('VmEntryFailed', `KVM could not enter the guest (hardware reason ${exit.hardwareReason})`, {
          details: { hardwareReason: exit.hardwareReason },
        });
      case 'internalError':
        return new NubError('KvmInternalError', `KVM internal error, suberror ${exit.suberror}`, {
          details: { suberror: exit.suberror, data: exit.data },
        });
      case 'interrupted':
        return new NubError('Timeout', 'the guest did not answer in time (the VM was stopped)');
      default:
        return new NubError('UnexpectedExit', `unexpected VM exit ${exit.kind}`, { details: { exit } });
    }
  }

  /** The fault record, read with bounds checks like any guest-written data. */
  #faultError(): NubError {
    const at = Layout.values.FAULT_GPA;
    const read = (field: 'vector' | 'error_code' | 'rip' | 'cs' | 'cr2' | 'rsp' | 'count'): bigint => this.#mem.field(FaultRecord, at, field);
    const vector = Number(read('vector') & 0xffn);
    /** The privilege level the fault was raised at: the RPL of the saved CS (3 for the kernel's own work). */
    const ring = Number(read('cs') & 3n);
    const details = {
      vector, name: EXCEPTIONS[vector]?.name ?? 'reserved', ring, rip: read('rip'), cr2: read('cr2'), errorCode: read('error_code'), rsp: read('rsp'), count: read('count'),
    };
    return new NubError('GuestFault', `guest kernel exception ${vector} (${details.name}) in ring ${ring} at rip 0x${details.rip.toString(16)}, cr2 0x${details.cr2.toString(16)}`, {
      details,
    });
  }

  #poisonWith(err: NubError): NubError {
    this.#poison ??= err;
    return err;
  }

  #throwIfPoisoned(): void {
    if (this.#poison) {
      throw new NubError('Poisoned', `the guest VM is unusable after an earlier error [${this.#poison.code}]: ${this.#poison.message}`, {
        cause: this.#poison,
      });
    }
  }
}

function asNubError(err: unknown): NubError {
  return err instanceof NubError ? err : new NubError('RunFailed', String(err), { cause: err });
}

// u64 fields as two u32 halves: the protocol's numbers stay below 2^53, and no BigInt is made per call.
function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % TWO_POW_32, true);
  view.setUint32(at + 4, Math.floor(value / TWO_POW_32), true);
}

function getU64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_POW_32;
}
