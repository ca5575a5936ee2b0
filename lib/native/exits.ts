/**
 * VM exits: the part of struct kvm_run (linux/kvm.h) that nub reads, and the one
 * decoder that turns it into a `VmExit`. Works on any ArrayBuffer shaped like kvm_run,
 * so tests can feed it fake exits. test/kvm/native.test.ts checks these offsets against
 * the addon's offsetof().
 */
import { NubError } from '../errors.js';

/** Byte offsets in struct kvm_run. The exit-specific union starts at 32. */
export const KVM_RUN = {
  immediateExit: 1,          // __u8 immediate_exit
  exitReason: 8,             // __u32 exit_reason
  hwHardwareExitReason: 32,  // hw.hardware_exit_reason (u64)
  failEntryHardwareReason: 32, // fail_entry.hardware_entry_failure_reason (u64)
  failEntryCpu: 40,          // fail_entry.cpu (u32)
  ioDirection: 32,           // io.direction (u8): KVM_EXIT_IO_IN / _OUT
  ioSize: 33,                // io.size (u8): 1, 2 or 4
  ioPort: 34,                // io.port (u16)
  ioCount: 36,               // io.count (u32): > 1 for rep ins/outs
  ioDataOffset: 40,          // io.data_offset (u64): from the start of kvm_run
  mmioPhysAddr: 32,          // mmio.phys_addr (u64)
  mmioData: 40,              // mmio.data[8]
  mmioLen: 48,               // mmio.len (u32)
  mmioIsWrite: 52,           // mmio.is_write (u8)
  internalSuberror: 32,      // internal.suberror (u32)
  internalNdata: 36,         // internal.ndata (u32)
  internalData: 40,          // internal.data[16] (u64)
} as const;

/** The fixed part of kvm_run every exit reads (through the end of internal.data). */
export const KVM_RUN_MIN_SIZE = KVM_RUN.internalData + 16 * 8;
const INTERNAL_DATA_MAX = 16;

/** KVM_EXIT_* values nub handles. */
export const KVM_EXIT = {
  IO: 2,
  HLT: 5,
  MMIO: 6,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  INTERNAL_ERROR: 17,
} as const;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

export type VmExit =
  | {
      kind: 'io';
      port: number;
      direction: 'in' | 'out';
      size: 1 | 2 | 4;
      count: number;
      /** size × count bytes inside runState: what the guest wrote, or where to put the answer to an `in`. */
      data: Uint8Array;
      /** The first element of `data`, little-endian (the value an `out` wrote). */
      value: number;
    }
  | { kind: 'hlt' }
  | { kind: 'mmio'; physAddr: bigint; isWrite: boolean; len: number; /** `len` bytes inside runState. */ data: Uint8Array }
  | { kind: 'shutdown' }
  | { kind: 'failEntry'; hardwareReason: bigint; cpu: number }
  | { kind: 'internalError'; suberror: number; data: bigint[] }
  /** KVM_RUN returned early: kick(), a run timeout, or a signal. */
  | { kind: 'interrupted' }
  | { kind: 'unknown'; reason: number };

const views = new WeakMap<ArrayBuffer, DataView>();

function viewOf(runState: ArrayBuffer): DataView {
  // A closed VM's runState is detached: byteLength 0 (checked before touching any view).
  if (runState.byteLength === 0) throw new NubError('Closed', 'the VM is closed (its runState is detached)');
  let view = views.get(runState);
  if (view === undefined) {
    if (runState.byteLength < KVM_RUN_MIN_SIZE) {
      throw new NubError('BadExit', `runState is ${runState.byteLength} bytes, smaller than kvm_run's ${KVM_RUN_MIN_SIZE}`);
    }
    view = new DataView(runState);
    views.set(runState, view);
  }
  return view;
}

function badExit(message: string, details: Record<string, unknown>): NubError {
  return new NubError('BadExit', message, { details });
}

function decodeIo(view: DataView, runState: ArrayBuffer): VmExit {
  const direction = view.getUint8(KVM_RUN.ioDirection);
  const size = view.getUint8(KVM_RUN.ioSize);
  const port = view.getUint16(KVM_RUN.ioPort, true);
  const count = view.getUint32(KVM_RUN.ioCount, true);
  const dataOffset = view.getBigUint64(KVM_RUN.ioDataOffset, true);
  if (direction !== KVM_EXIT_IO_IN && direction !== KVM_EXIT_IO_OUT) throw badExit(`io exit with direction ${direction}`, { direction });
  if (size !== 1 && size !== 2 && size !== 4) throw badExit(`io exit with size ${size}`, { size });
  const length = BigInt(size) * BigInt(count);
  if (count === 0 || dataOffset + length > BigInt(runState.byteLength)) {
    throw badExit('io exit data lies outside kvm_run', { dataOffset, size, count });
  }
  const offset = Number(dataOffset);
  const value = size === 1 ? view.getUint8(offset) : size === 2 ? view.getUint16(offset, true) : view.getUint32(offset, true);
  return {
    kind: 'io',
    port,
    direction: direction === KVM_EXIT_IO_IN ? 'in' : 'out',
    size,
    count,
    data: new Uint8Array(runState, offset, Number(length)),
    value,
  };
}

/**
 * Decodes the exit a run just returned, from `source.runState` (a Vm, or anything with a
 * kvm_run-shaped ArrayBuffer). Throws NubError 'BadExit' when the fields are
 * inconsistent, 'Closed' when the VM is closed.
 */
export function decodeExit(source: { readonly runState: ArrayBuffer }, reason: number): VmExit {
  const runState = source.runState;
  const view = viewOf(runState);
  switch (reason) {
    case KVM_EXIT.IO:
      return decodeIo(view, runState);
    case KVM_EXIT.HLT:
      return { kind: 'hlt' };
    case KVM_EXIT.MMIO: {
      const len = view.getUint32(KVM_RUN.mmioLen, true);
      if (len > 8) throw badExit(`mmio exit with length ${len}`, { len });
      return {
        kind: 'mmio',
        physAddr: view.getBigUint64(KVM_RUN.mmioPhysAddr, true),
        isWrite: view.getUint8(KVM_RUN.mmioIsWrite) !== 0,
        len,
        data: new Uint8Array(runState, KVM_RUN.mmioData, len),
      };
    }
    case KVM_EXIT.SHUTDOWN:
      return { kind: 'shutdown' };
    case KVM_EXIT.FAIL_ENTRY:
      return {
        kind: 'failEntry',
        hardwareReason: view.getBigUint64(KVM_RUN.failEntryHardwareReason, true),
        cpu: view.getUint32(KVM_RUN.failEntryCpu, true),
      };
    case KVM_EXIT.INTERNAL_ERROR: {
      const ndata = Math.min(view.getUint32(KVM_RUN.internalNdata, true), INTERNAL_DATA_MAX);
      const data = Array.from({ length: ndata }, (_, i) => view.getBigUint64(KVM_RUN.internalData + 8 * i, true));
      return { kind: 'internalError', suberror: view.getUint32(KVM_RUN.internalSuberror, true), data };
    }
    case KVM_EXIT.INTR:
      return { kind: 'interrupted' };
    default:
      return { kind: 'unknown', reason };
  }
}
