/**
 * Guest-physical memory as seen by the host: one ArrayBuffer (the VM's shared
 * mapping, or a synthetic buffer in tests) behind accessors that bounds-check every
 * access. Everything the guest wrote is untrusted, so no host code indexes the
 * buffer with a guest-supplied number without going through `check` first.
 *
 * All multi-byte values are little-endian (x86-64). Addresses are guest-physical
 * (GPA) byte offsets into the buffer.
 */
import type { FieldType, FieldValue, StructLayout } from '../abi/struct.js';
import { NubError } from '../errors.js';

const TWO_POW_32 = 0x1_0000_0000;

export class GuestMemory {
  readonly buffer: ArrayBuffer;
  /** Bytes of guest memory when the view was made (the buffer shrinks to 0 once the VM is closed). */
  readonly size: number;
  readonly view: DataView;
  readonly u8s: Uint8Array;

  constructor(buffer: ArrayBuffer) {
    this.buffer = buffer;
    this.size = buffer.byteLength;
    this.view = new DataView(buffer);
    this.u8s = new Uint8Array(buffer);
  }

  /** True when [gpa, gpa + len) lies inside guest memory (and both are non-negative integers). */
  contains(gpa: number, len: number): boolean {
    return Number.isSafeInteger(gpa) && Number.isSafeInteger(len) && gpa >= 0 && len >= 0 && gpa + len <= this.buffer.byteLength;
  }

  /** Throws NubError 'OutOfBounds' (or 'Closed' once the VM's memory is gone) unless [gpa, gpa + len) is inside guest memory. */
  check(gpa: number, len: number): void {
    if (this.contains(gpa, len)) return;
    if (this.buffer.byteLength === 0 && this.size !== 0) {
      throw new NubError('Closed', 'guest memory was released (the VM is closed)');
    }
    throw new NubError('OutOfBounds', `guest range [${hex(gpa)}, +${hex(len)}) is outside guest memory (${hex(this.size)} bytes)`, {
      details: { gpa, len, memorySize: this.size },
    });
  }

  u8(gpa: number): number {
    this.check(gpa, 1);
    return this.view.getUint8(gpa);
  }

  u16(gpa: number): number {
    this.check(gpa, 2);
    return this.view.getUint16(gpa, true);
  }

  u32(gpa: number): number {
    this.check(gpa, 4);
    return this.view.getUint32(gpa, true);
  }

  u64(gpa: number): bigint {
    this.check(gpa, 8);
    return this.view.getBigUint64(gpa, true);
  }

  /**
   * A u64 that must fit a JS number exactly (an address or a length). Throws
   * NubError 'ValueTooLarge' above 2^53 - 1, which no guest address or size reaches.
   */
  u64AsNumber(gpa: number): number {
    this.check(gpa, 8);
    const value = this.view.getUint32(gpa, true) + this.view.getUint32(gpa + 4, true) * TWO_POW_32;
    if (!Number.isSafeInteger(value)) {
      throw new NubError('ValueTooLarge', `u64 at ${hex(gpa)} does not fit a JS number`, { details: { gpa, value: this.view.getBigUint64(gpa, true) } });
    }
    return value;
  }

  /** A copy of [gpa, gpa + len): stays valid whatever the guest does next. */
  bytes(gpa: number, len: number): Uint8Array {
    this.check(gpa, len);
    return this.u8s.slice(gpa, gpa + len);
  }

  writeU8(gpa: number, value: number): void {
    this.check(gpa, 1);
    this.view.setUint8(gpa, value);
  }

  writeU16(gpa: number, value: number): void {
    this.check(gpa, 2);
    this.view.setUint16(gpa, value, true);
  }

  writeU32(gpa: number, value: number): void {
    this.check(gpa, 4);
    this.view.setUint32(gpa, value, true);
  }

  writeU64(gpa: number, value: number | bigint): void {
    this.check(gpa, 8);
    this.view.setBigUint64(gpa, BigInt(value), true);
  }

  writeBytes(gpa: number, src: Uint8Array): void {
    this.check(gpa, src.length);
    this.u8s.set(src, gpa);
  }

  fill(gpa: number, len: number, value = 0): void {
    this.check(gpa, len);
    this.u8s.fill(value, gpa, gpa + len);
  }

  /** Reads one field of a declared struct at `gpa`, after checking the whole struct is in memory. */
  field<F extends Record<string, FieldType>, K extends keyof F & string>(layout: StructLayout<F>, gpa: number, name: K): FieldValue<F[K]> {
    this.check(gpa, layout.size);
    return layout.get(this.view, gpa, name);
  }

  /** Writes one scalar field of a declared struct at `gpa`, after checking the whole struct is in memory. */
  setField<F extends Record<string, FieldType>>(layout: StructLayout<F>, gpa: number, name: keyof F & string, value: number | bigint): void {
    this.check(gpa, layout.size);
    layout.set(this.view, gpa, name, value);
  }
}

export function hex(n: number | bigint): string {
  return typeof n === 'number' && !Number.isSafeInteger(n) ? String(n) : `0x${n.toString(16)}`;
}
