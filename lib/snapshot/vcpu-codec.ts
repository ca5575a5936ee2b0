/**
 * The byte layout of a saved vCPU state (regs, sregs, fpu): lib/native's field lists
 * (vcpu-layout.ts), used both ways. Field names are the JS property names, so encode
 * and decode are one loop each; `pad*` fields are written as zero and must read as zero.
 */
import { readScalar, writeScalar, type FieldLayout } from '../abi/struct.js';
import { NubError } from '../errors.js';
import type { DescriptorTable, Fpu, Regs, Segment, Sregs } from '../native/index.js';
import { ControlLayout, FpuLayout, RegsLayout, SEGMENTS, SegmentLayout, TABLES, TableLayout } from '../native/vcpu-layout.js';
import type { VcpuState } from './snapshot.js';

/** Bytes of an encoded VcpuState. */
export const VCPU_STATE_SIZE =
  RegsLayout.size + SEGMENTS.length * SegmentLayout.size + TABLES.length * TableLayout.size + ControlLayout.size + FpuLayout.size;

type Fields = Record<string, unknown>;
/** What the loops need of a StructLayout, whatever its field types. */
interface Layout {
  readonly fields: readonly FieldLayout[];
  readonly size: number;
}
const isPad = (f: FieldLayout): boolean => f.name.startsWith('pad');

function writeStruct(view: DataView, at: number, layout: Layout, value: Fields): number {
  for (const f of layout.fields) {
    if (isPad(f)) continue;
    const v = value[f.name];
    if (f.isArray) new Uint8Array(view.buffer, view.byteOffset + at + f.offset, f.count).set(v as Uint8Array);
    else writeScalar(view, at + f.offset, f.scalar, (v ?? 0) as number | bigint);
  }
  return at + layout.size;
}

function readStruct(view: DataView, at: number, layout: Layout, path: string): Fields {
  const out: Fields = {};
  for (const f of layout.fields) {
    if (f.isArray) {
      out[f.name] = new Uint8Array(view.buffer, view.byteOffset + at + f.offset, f.count).slice();
      continue;
    }
    const v = readScalar(view, at + f.offset, f.scalar);
    if (isPad(f)) {
      if (v !== 0 && v !== 0n) throw new NubError('BadSnapshotFile', `${path}.${f.name} is not zero`, { path: `${path}.${f.name}` });
      continue;
    }
    out[f.name] = v;
  }
  return out;
}

export function encodeVcpuState(state: VcpuState): Uint8Array {
  const bytes = new Uint8Array(VCPU_STATE_SIZE);
  const view = new DataView(bytes.buffer);
  const sregs = state.sregs as unknown as Fields;
  let at = writeStruct(view, 0, RegsLayout, state.regs as unknown as Fields);
  for (const name of SEGMENTS) at = writeStruct(view, at, SegmentLayout, sregs[name] as Fields);
  for (const name of TABLES) at = writeStruct(view, at, TableLayout, sregs[name] as Fields);
  at = writeStruct(view, at, ControlLayout, sregs);
  writeStruct(view, at, FpuLayout, state.fpu as unknown as Fields);
  return bytes;
}

/** Decodes what encodeVcpuState wrote; NubError 'BadSnapshotFile' for a wrong size or non-zero padding. */
export function decodeVcpuState(bytes: Uint8Array): VcpuState {
  if (bytes.length !== VCPU_STATE_SIZE) {
    throw new NubError('BadSnapshotFile', `the vCPU state is ${bytes.length} bytes, not ${VCPU_STATE_SIZE}`, { path: 'vcpu' });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const regs = readStruct(view, 0, RegsLayout, 'regs') as unknown as Regs;
  let at = RegsLayout.size;
  const sregs: Fields = {};
  for (const name of SEGMENTS) {
    sregs[name] = readStruct(view, at, SegmentLayout, `sregs.${name}`) as unknown as Segment;
    at += SegmentLayout.size;
  }
  for (const name of TABLES) {
    sregs[name] = readStruct(view, at, TableLayout, `sregs.${name}`) as unknown as DescriptorTable;
    at += TableLayout.size;
  }
  Object.assign(sregs, readStruct(view, at, ControlLayout, 'sregs'));
  at += ControlLayout.size;
  const fpu = readStruct(view, at, FpuLayout, 'fpu') as unknown as Fpu;
  return { regs, sregs: sregs as unknown as Sregs, fpu };
}
