/**
 * nub's door to /dev/kvm: query KVM, create a VM (one vCPU, one memory slot at
 * guest-physical 0), run it and decode its exits. The addon (native/) decides no policy;
 * see docs/native.md.
 */
import { isNubError, NubError } from '../errors.js';
import { binding, type Fpu, type KvmInfo, type NativeMemoryFile, type NativeVm, type Regs, type Sregs } from './binding.js';

export type { DescriptorTable, Fpu, KvmInfo, Regs, Segment, Sregs } from './binding.js';
export { decodeExit, KVM_EXIT, KVM_EXIT_IO_OUT, KVM_RUN, KVM_RUN_MIN_SIZE, type VmExit } from './exits.js';

export const DEFAULT_KVM_PATH = '/dev/kvm';

/** Opens and checks `path` (API version 12 and the capabilities nub needs) and reports it. */
export function kvmInfo(path = DEFAULT_KVM_PATH): KvmInfo {
  return binding().kvmInfo(path);
}

/**
 * Undefined when `path` is a KVM device nub can use (what `nub doctor` checks first), else
 * a 'KvmUnavailable' NubError saying why and what to do (`cause`: the open or ioctl failure).
 */
export function probeKvm(path = DEFAULT_KVM_PATH): NubError | undefined {
  try {
    kvmInfo(path);
    return undefined;
  } catch (cause) {
    if (isNubError(cause, 'AddonMissing')) throw cause;
    // The addon's message already says what to do (load the module, join the kvm group, ...).
    return new NubError('KvmUnavailable', `engine kvm is not available: ${(cause as Error).message}`, { cause, path });
  }
}

/** The largest memorySize Vm.create accepts (guest RAM stays below the x86 4 GiB hole). */
export function maxMemorySize(): number {
  return binding().maxMemorySize;
}

export interface VmOptions {
  /** Guest RAM in bytes: a positive multiple of 4096, at most maxMemorySize(). */
  memorySize: number;
  kvmPath?: string;
  /** Track written pages, for getDirtyLog(). */
  dirtyLog?: boolean;
}

/**
 * A memfd of guest memory that can be sealed: once sealed its bytes never change, so VMs
 * (Vm.adoptBase) and read-only views (mapImmutable) share its pages copy-on-write.
 * Errors: 'Closed', 'Sealed' (write after seal), 'NotSealed' (map or adopt before seal).
 */
export class MemoryFile {
  /** @internal the addon object, for Vm.adoptBase. */
  readonly native: NativeMemoryFile;

  constructor(native: NativeMemoryFile) {
    this.native = native;
  }

  /** A new zero-filled file of `size` bytes (a positive multiple of 4096). */
  static create(size: number): MemoryFile {
    return new MemoryFile(new (binding().NativeMemoryFile)(size));
  }

  get size(): number {
    return this.native.size;
  }
  get sealed(): boolean {
    return this.native.sealed;
  }
  get closed(): boolean {
    return this.native.closed;
  }
  write(offset: number, bytes: Uint8Array): void {
    this.native.write(offset, bytes);
  }
  seal(): void {
    this.native.seal();
  }
  /**
   * A PROT_READ mapping of the sealed file, with the pages set in `bitmap` taken from
   * `patch` instead (copied now: later writes to `patch` do not show). Writing to the
   * returned buffer from JS kills the process: keep it private (ImmutableMapping does).
   */
  mapImmutable(patch?: ArrayBuffer, bitmap?: Uint8Array): ArrayBuffer {
    return this.native.mapImmutable(patch, bitmap);
  }
  /** Drops this handle; the fd closes once no VM or view uses the file. Idempotent. */
  close(): void {
    this.native.close();
  }
}

/** Detaches a buffer returned by MemoryFile.mapImmutable; the mapping is unmapped by its finalizer. */
export function releaseBuffer(buffer: ArrayBuffer): void {
  binding().releaseBuffer(buffer);
}

/**
 * A micro-VM: one vCPU and `memorySize` bytes of guest RAM at guest-physical 0.
 * Every failure is a NubError: syscall failures carry `code` (`'EACCES'`, ...), `errno`,
 * `syscall` and `ioctl`; calls after close() throw code 'Closed'; a register or run call
 * while a runAsync() is in flight throws 'Busy'.
 */
/** One polled request (Vm.pollRun). */
export interface PollCall {
  seqOffset: number;
  seq: number;
  doneOffset: number;
  want: number;
  idlePort: number;
  timeoutMs?: number;
}

export class Vm {
  readonly #native: NativeVm;
  /** Cached: each native getter is an N-API call, and both are read on every guest exit. */
  #runState: ArrayBuffer | undefined;
  #closed = false;

  private constructor(native: NativeVm) {
    this.#native = native;
  }

  static create(opts: VmOptions): Vm {
    return new Vm(new (binding().NativeVm)(opts));
  }

  /** Guest-physical [0, memorySize) as ONE external ArrayBuffer; detached by close(). */
  get memory(): ArrayBuffer {
    return this.#native.memory;
  }

  get memorySize(): number {
    return this.#native.memorySize;
  }

  /** The vCPU's kvm_run mapping (read exits with decodeExit); detached by close(). */
  get runState(): ArrayBuffer {
    return (this.#runState ??= this.#native.runState); // fixed for the VM's life; detached (length 0) by close()
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * KVM_RUN on the calling thread; returns kvm_run.exit_reason. With `timeoutMs`, a
   * watchdog kicks the vCPU when the time is up and the run returns KVM_EXIT.INTR.
   */
  run(timeoutMs?: number): number {
    return this.#native.run(timeoutMs);
  }

  /** KVM_RUN on the VM's own vCPU thread, leaving the JS thread free. Failures reject. */
  runAsync(timeoutMs?: number): Promise<number> {
    try {
      return this.#native.runAsync(timeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Makes a running KVM_RUN return promptly with KVM_EXIT.INTR; when none is running,
   * the next run returns at once instead. Safe to call while runAsync() is in flight.
   */
  kick(): void {
    this.#native.kick();
  }

  /**
   * Polling mode (native/poller.h): stores `call.seq` (unless 0) at `call.seqOffset` of guest
   * memory, keeps the vCPU running on its own thread, and spins on this thread until the u64
   * at `call.doneOffset` equals `call.want` (returns 0xffff_ffff; the vCPU goes on running) or a run
   * stops otherwise (returns its exit reason, as run() would). An `out` to `call.idlePort`
   * means the guest went idle: it is entered again. Register calls park a polling vCPU first.
   */
  pollRun(call: PollCall): number {
    return this.#native.pollRun(call.seqOffset, call.seq, call.doneOffset, call.want, call.idlePort, call.timeoutMs);
  }

  /** pollRun on a worker thread, leaving the event loop free. */
  pollRunAsync(call: PollCall): Promise<number> {
    try {
      return this.#native.pollRunAsync(call.seqOffset, call.seq, call.doneOffset, call.want, call.idlePort, call.timeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Stops a polling vCPU's spin and waits for it (nothing to do when it is idle). */
  parkPoller(): void {
    this.#native.parkPoller();
  }

  /** The guest TSC's frequency in kHz (for spin budgets the guest measures in TSC ticks). */
  tscKhz(): number {
    return this.#native.tscKhz();
  }

  getRegs(): Regs {
    return this.#native.getRegs();
  }
  setRegs(regs: Regs): void {
    this.#native.setRegs(regs);
  }
  getSregs(): Sregs {
    return this.#native.getSregs();
  }
  setSregs(sregs: Sregs): void {
    this.#native.setSregs(sregs);
  }
  getFpu(): Fpu {
    return this.#native.getFpu();
  }
  setFpu(fpu: Fpu): void {
    this.#native.setFpu(fpu);
  }

  /**
   * KVM_GET_DIRTY_LOG: one bit per 4 KiB page (bit i of byte j is page 8j+i) written
   * since the last call. Needs `dirtyLog: true` at create, else NubError 'DirtyLogDisabled'.
   */
  getDirtyLog(): Uint8Array {
    return this.#native.getDirtyLog();
  }

  /**
   * regs, sregs and fpu in one opaque buffer (the kernel structs; valid in this process
   * only), for loadVcpuState. MXCSR, which KVM_GET_FPU reports as 0, is saved as 0x1f80.
   */
  saveVcpuState(): ArrayBuffer {
    return this.#native.saveVcpuState();
  }
  /** Sets sregs, regs and fpu from a saveVcpuState() buffer, in three ioctls and one call. */
  loadVcpuState(state: ArrayBuffer): void {
    this.#native.loadVcpuState(state);
  }

  /**
   * Makes the VM's current memory its sealed base file and maps that copy-on-write at the
   * same address: from now on every write, by the guest or through `memory`, lands in a
   * private page and privatePages() lists them. Cheap (no copy). Already copy-on-write:
   * returns a handle to the same base. Close the returned file when done with it; the VM
   * keeps its own reference.
   */
  freezeMemory(): MemoryFile {
    return new MemoryFile(this.#native.freezeMemory());
  }

  /**
   * Replaces `memory` with a new ArrayBuffer over the same guest memory and detaches the
   * old one: a VM handed to a new owner is out of reach of the previous one's buffers.
   */
  renewMemory(): void {
    this.#native.renewMemory();
  }

  /** Maps `base` (sealed, memorySize bytes) copy-on-write as the VM's memory; private pages are dropped. */
  adoptBase(base: MemoryFile): void {
    this.#native.adoptBase(base.native);
  }

  /** True when the VM's memory is a copy-on-write map of `base` (the same file, through any handle). */
  usesBase(base: MemoryFile): boolean {
    return this.#native.usesBase(base.native);
  }

  /** Bit i set: page i differs from the base (written since freeze/adopt/discard). Needs a base ('NotCopyOnWrite'). */
  privatePages(): Uint8Array {
    return this.#native.privatePages();
  }

  /** Makes the pages set in `bitmap` read as the base again (MADV_DONTNEED on their private copies). */
  discardPages(bitmap: Uint8Array): void {
    this.#native.discardPages(bitmap);
  }

  /** Stops any run, closes every fd, detaches memory and runState. Idempotent. */
  close(): void {
    this.#native.close();
    this.#closed = true;
  }
}
