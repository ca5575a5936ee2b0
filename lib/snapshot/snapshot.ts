/**
 * Snapshot and restore of a VM: guest memory plus vCPU state.
 *
 * Memory: the first snapshot of a VM freezes its memory file (seals it and remaps the
 * VM's memory copy-on-write over it), so from then on every page anyone writes becomes
 * private to the VM and /proc/self/pagemap lists it. A snapshot is that sealed base file
 * plus the pages the VM had already changed (its `delta`, usually none). Restoring a VM
 * that maps the same base copies the snapshot's bytes over its private pages (and the
 * delta): the cost follows the pages the guest and the host wrote, not the memory size.
 * The pages stay private and mapped, so the guest does not fault them in again; with
 * `{ discard: true }` they are dropped instead (MADV_DONTNEED), giving the memory back.
 * A VM on another base (a new or recycled VM) is remapped onto this one, which is how
 * one boot clones into many VMs. See docs/snapshots.md.
 *
 * vCPU: general, special and x87/SSE registers, read after letting KVM finish the exit
 * it stopped at (an OUT is only completed by the next KVM_RUN).
 */
import { NubError } from '../errors.js';
import { KVM_EXIT, MemoryFile, Vm, type Fpu, type Regs, type Sregs } from '../native/index.js';
import { ImmutableMapping, readOnlyWindow } from './immutable-mapping.js';
import { bitmapBytes, copyPages, countPages, PAGE_SIZE, withoutPages } from './page-bitmap.js';

/** What the vCPU resumes with. */
export interface VcpuState {
  readonly regs: Regs;
  readonly sregs: Sregs;
  readonly fpu: Fpu;
}

export interface RestoreOptions {
  /** Drop the VM's private pages (MADV_DONTNEED) instead of overwriting them: frees memory, costs refaults later. */
  discard?: boolean;
}

export interface RestoreStats {
  /** Private pages dropped back to the base. */
  discardedPages: number;
  /** Pages overwritten with the snapshot's bytes. */
  copiedPages: number;
  /** True when the VM was remapped onto this snapshot's base (it was on another one). */
  remapped: boolean;
}

/** The power-on MXCSR (all SSE exceptions masked). KVM_GET_FPU reports MXCSR as 0. */
const MXCSR_DEFAULT = 0x1f80;

function orPages(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = a.slice();
  for (let i = 0; i < out.length; i++) out[i]! |= b[i] ?? 0;
  return out;
}

/**
 * Lets KVM complete the exit the vCPU stopped at (the skip past an OUT, the value of an
 * IN) without entering the guest: a kicked KVM_RUN does that and returns at once.
 */
function settleVcpu(vm: Vm): void {
  vm.parkPoller(); // a polling vCPU would take the kick itself, and the run below would enter the guest
  vm.kick();
  const reason = vm.run();
  if (reason !== KVM_EXIT.INTR) {
    throw new NubError('VcpuNotSettled', `a kicked KVM_RUN returned exit ${reason} instead of returning at once`);
  }
}

export class Snapshot implements Disposable {
  readonly memorySize: number;
  readonly vcpu: VcpuState;
  /** Guest-physical memory as of the snapshot. */
  readonly memory: ImmutableMapping;
  readonly #base: MemoryFile;
  /** Pages where `memory` differs from the base file. */
  readonly #delta: Uint8Array;
  /** `vcpu` as the addon's opaque buffer (one call to restore); made by the first restore when absent. */
  #vcpuBlob: ArrayBuffer | undefined;
  #closed = false;

  private constructor(base: MemoryFile, delta: Uint8Array, memory: ImmutableMapping, vcpu: VcpuState, vcpuBlob?: ArrayBuffer) {
    this.#base = base;
    this.#delta = delta;
    this.#vcpuBlob = vcpuBlob;
    this.memory = memory;
    this.memorySize = base.size;
    this.vcpu = vcpu;
  }

  /** Snapshots `vm` (stopped, not running). Its memory becomes copy-on-write over the snapshot's base. */
  static take(vm: Vm): Snapshot {
    settleVcpu(vm);
    const fpu = vm.getFpu();
    const vcpu: VcpuState = { regs: vm.getRegs(), sregs: vm.getSregs(), fpu: { ...fpu, mxcsr: fpu.mxcsr || MXCSR_DEFAULT } };
    const blob = vm.saveVcpuState();
    const base = vm.freezeMemory();
    try {
      const delta = vm.privatePages();
      return new Snapshot(base, delta, ImmutableMapping.ofFile(base, vm.memory, delta), vcpu, blob);
    } catch (err) {
      base.close();
      throw err;
    }
  }

  /** A snapshot whose memory is exactly `base` (sealed), e.g. one loaded from a file. Takes `base`. */
  static fromBase(base: MemoryFile, vcpu: VcpuState): Snapshot {
    if (!base.sealed) throw new NubError('NotSealed', 'a snapshot base must be a sealed memory file');
    const delta = new Uint8Array(bitmapBytes(base.size / PAGE_SIZE));
    return new Snapshot(base, delta, ImmutableMapping.ofFile(base), vcpu);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Pages the snapshot holds on top of its base (copied by every restore). */
  get deltaPages(): number {
    return countPages(this.#delta);
  }

  /** Puts `vm` (stopped, same memory size) back in this snapshot's state. */
  restore(vm: Vm, options: RestoreOptions = {}): RestoreStats {
    this.#check();
    if (vm.memorySize !== this.memorySize) {
      throw new NubError('SizeMismatch', `the snapshot has ${this.memorySize} bytes of memory, the VM ${vm.memorySize}`);
    }
    settleVcpu(vm); // else KVM would finish the old exit after we set the registers
    const stats: RestoreStats = { discardedPages: 0, copiedPages: 0, remapped: false };
    let copy = this.#delta;
    if (!vm.usesBase(this.#base)) {
      vm.adoptBase(this.#base);
      stats.remapped = true;
    } else if (options.discard) {
      const stale = withoutPages(vm.privatePages(), this.#delta);
      stats.discardedPages = countPages(stale);
      if (stats.discardedPages > 0) vm.discardPages(stale);
    } else {
      copy = orPages(vm.privatePages(), this.#delta);
    }
    copyPages(copy, readOnlyWindow(this.memory), new Uint8Array(vm.memory));
    stats.copiedPages = countPages(copy);
    if (this.#vcpuBlob === undefined) {
      vm.setSregs(this.vcpu.sregs);
      vm.setRegs(this.vcpu.regs);
      vm.setFpu(this.vcpu.fpu);
      this.#vcpuBlob = vm.saveVcpuState();
    } else {
      vm.loadVcpuState(this.#vcpuBlob);
    }
    return stats;
  }

  /** A VM in this snapshot's state: `reuse` if given (any stopped VM of the same size), else a new one. */
  createVm(options: { kvmPath?: string; reuse?: Vm } = {}): Vm {
    this.#check();
    const vm = options.reuse ?? Vm.create({ memorySize: this.memorySize, ...(options.kvmPath === undefined ? {} : { kvmPath: options.kvmPath }) });
    try {
      this.restore(vm);
      return vm;
    } catch (err) {
      if (options.reuse === undefined) vm.close();
      throw err;
    }
  }

  #check(): void {
    if (this.#closed) throw new NubError('Closed', 'the snapshot is closed');
  }

  /** Releases the memory view and this handle on the base (VMs using it keep it alive). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.memory.close();
    this.#base.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
