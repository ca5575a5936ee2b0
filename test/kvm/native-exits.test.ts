// decodeExit on fake kvm_run buffers: no KVM needed.
import assert from 'node:assert/strict';
import { decodeExit, KVM_EXIT, KVM_RUN } from '../../lib/native/index.js';

const RUN_SIZE = 4096;

/** A fake kvm_run whose fields are filled by `fill`. */
function fakeRun(fill: (view: DataView, bytes: Uint8Array) => void): { runState: ArrayBuffer } {
  const runState = new ArrayBuffer(RUN_SIZE);
  fill(new DataView(runState), new Uint8Array(runState));
  return { runState };
}

function fakeIo(direction: number, size: number, port: number, count: number, dataOffset: bigint) {
  return fakeRun((view) => {
    view.setUint8(KVM_RUN.ioDirection, direction);
    view.setUint8(KVM_RUN.ioSize, size);
    view.setUint16(KVM_RUN.ioPort, port, true);
    view.setUint32(KVM_RUN.ioCount, count, true);
    view.setBigUint64(KVM_RUN.ioDataOffset, dataOffset, true);
  });
}

describe('decodeExit on fake exits', () => {
  it('decodes a 2-byte out and exposes its data inside runState', () => {
    const run = fakeIo(1, 2, 0x3f8, 1, 0xc00n);
    new DataView(run.runState).setUint16(0xc00, 0xbeef, true);
    const exit = decodeExit(run, KVM_EXIT.IO);
    assert.equal(exit.kind, 'io');
    if (exit.kind !== 'io') return;
    assert.deepEqual([exit.direction, exit.port, exit.size, exit.count, exit.value], ['out', 0x3f8, 2, 1, 0xbeef]);
    assert.equal(exit.data.buffer, run.runState);
    assert.deepEqual([...exit.data], [0xef, 0xbe]);
  });

  it('lets the host answer an in by writing into data', () => {
    const run = fakeIo(0, 4, 0x70, 1, 0x800n);
    const exit = decodeExit(run, KVM_EXIT.IO);
    assert.ok(exit.kind === 'io' && exit.direction === 'in');
    exit.data.set([1, 2, 3, 4]);
    assert.equal(new DataView(run.runState).getUint32(0x800, true), 0x04030201);
  });

  it('covers rep string I/O (count > 1)', () => {
    const exit = decodeExit(fakeIo(1, 1, 0x10, 5, 0x900n), KVM_EXIT.IO);
    assert.ok(exit.kind === 'io');
    assert.equal(exit.data.length, 5);
  });

  it('rejects io data outside kvm_run, absurd sizes, zero counts and bad directions', () => {
    for (const [direction, size, count, offset] of [
      [1, 1, 1, BigInt(RUN_SIZE)],
      [1, 4, 1, BigInt(RUN_SIZE - 3)],
      [1, 2, 0x8000_0000, 0x100n],
      [1, 1, 1, 2n ** 63n],
      [1, 3, 1, 0x100n],
      [1, 1, 0, 0x100n],
      [7, 1, 1, 0x100n],
    ] as const) {
      assert.throws(() => decodeExit(fakeIo(direction, size, 0x10, count, offset), KVM_EXIT.IO), { code: 'BadExit' });
    }
  });

  it('decodes mmio and rejects a length over 8', () => {
    const write = fakeRun((view, bytes) => {
      view.setBigUint64(KVM_RUN.mmioPhysAddr, 0xfee0_0030n, true);
      view.setUint32(KVM_RUN.mmioLen, 4, true);
      view.setUint8(KVM_RUN.mmioIsWrite, 1);
      bytes.set([9, 8, 7, 6], KVM_RUN.mmioData);
    });
    const exit = decodeExit(write, KVM_EXIT.MMIO);
    assert.ok(exit.kind === 'mmio');
    assert.deepEqual([exit.physAddr, exit.isWrite, exit.len, [...exit.data]], [0xfee0_0030n, true, 4, [9, 8, 7, 6]]);
    const tooLong = fakeRun((view) => view.setUint32(KVM_RUN.mmioLen, 9, true));
    assert.throws(() => decodeExit(tooLong, KVM_EXIT.MMIO), { code: 'BadExit' });
  });

  it('decodes failed entry and internal errors, clamping an absurd ndata', () => {
    const fail = fakeRun((view) => {
      view.setBigUint64(KVM_RUN.failEntryHardwareReason, 0x80000021n, true);
      view.setUint32(KVM_RUN.failEntryCpu, 3, true);
    });
    assert.deepEqual(decodeExit(fail, KVM_EXIT.FAIL_ENTRY), { kind: 'failEntry', hardwareReason: 0x80000021n, cpu: 3 });
    const internal = fakeRun((view) => {
      view.setUint32(KVM_RUN.internalSuberror, 1, true);
      view.setUint32(KVM_RUN.internalNdata, 0xffff_ffff, true);
      view.setBigUint64(KVM_RUN.internalData, 42n, true);
    });
    const exit = decodeExit(internal, KVM_EXIT.INTERNAL_ERROR);
    assert.ok(exit.kind === 'internalError');
    assert.equal(exit.suberror, 1);
    assert.equal(exit.data.length, 16);
    assert.equal(exit.data[0], 42n);
  });

  it('maps the payload-free exits and leaves unknown reasons as unknown', () => {
    const run = fakeRun(() => {});
    assert.deepEqual(decodeExit(run, KVM_EXIT.HLT), { kind: 'hlt' });
    assert.deepEqual(decodeExit(run, KVM_EXIT.SHUTDOWN), { kind: 'shutdown' });
    assert.deepEqual(decodeExit(run, KVM_EXIT.INTR), { kind: 'interrupted' });
    assert.deepEqual(decodeExit(run, 1234), { kind: 'unknown', reason: 1234 });
  });

  it('refuses a runState too small to be kvm_run', () => {
    assert.throws(() => decodeExit({ runState: new ArrayBuffer(64) }, KVM_EXIT.HLT), { code: 'BadExit' });
  });

  it('says Closed for a detached runState', () => {
    const runState = new ArrayBuffer(RUN_SIZE);
    structuredClone(runState, { transfer: [runState] });
    assert.throws(() => decodeExit({ runState }, KVM_EXIT.HLT), { code: 'Closed' });
  });
});
