/**
 * The vCPU's registers as nub sees them (struct kvm_regs, kvm_sregs, kvm_fpu), declared
 * once: the JS types of lib/native, the addon's conversions (native/vcpu_fields.h, generated
 * by scripts/gen-vcpu-fields.mjs) and the byte layout of a saved vCPU state
 * (lib/snapshot/vcpu-codec.ts) all come from these field lists. A field's JS name is
 * camelCase; its kvm_* member is the same name in snake_case. `pad*` fields exist only in
 * the saved layout.
 */
import { defineStruct, type FieldType, type FieldValue } from '../abi/struct.js';

const REGS = {
  rax: 'u64', rbx: 'u64', rcx: 'u64', rdx: 'u64', rsi: 'u64', rdi: 'u64', rsp: 'u64', rbp: 'u64',
  r8: 'u64', r9: 'u64', r10: 'u64', r11: 'u64', r12: 'u64', r13: 'u64', r14: 'u64', r15: 'u64',
  rip: 'u64', rflags: 'u64',
} as const;

const SEGMENT = {
  base: 'u64', limit: 'u32', selector: 'u16', type: 'u8', present: 'u8',
  dpl: 'u8', db: 'u8', s: 'u8', l: 'u8', g: 'u8', avl: 'u8', unusable: 'u8', pad0: 'u8',
} as const;

const TABLE = { base: 'u64', limit: 'u16', pad0: 'u16', pad1: 'u32' } as const;

/** The scalar fields of kvm_sregs. */
const CONTROL = { cr0: 'u64', cr2: 'u64', cr3: 'u64', cr4: 'u64', cr8: 'u64', efer: 'u64', apicBase: 'u64' } as const;

const FPU = {
  fpr: ['u8', 128], fcw: 'u16', fsw: 'u16', ftwx: 'u8', pad0: 'u8', lastOpcode: 'u16',
  lastIp: 'u64', lastDp: 'u64', xmm: ['u8', 256], mxcsr: 'u32', pad1: 'u32',
} as const;

export const RegsLayout = defineStruct('kvm_regs', 'general-purpose registers', REGS);
export const SegmentLayout = defineStruct('kvm_segment', 'a segment register', SEGMENT);
export const TableLayout = defineStruct('kvm_dtable', 'a descriptor-table register (GDTR/IDTR)', TABLE);
export const ControlLayout = defineStruct('kvm_sregs', 'the scalar fields of kvm_sregs', CONTROL);
export const FpuLayout = defineStruct('kvm_fpu', 'x87/SSE state', FPU);

/** Fields a caller may leave out when setting (KVM reports them; a segment written from scratch need not say). */
export const OPTIONAL_ON_SET = ['unusable'] as const;
type Optional = (typeof OPTIONAL_ON_SET)[number];

/** The segment and descriptor-table members of kvm_sregs, in the saved layout's order. */
export const SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export const TABLES = ['gdt', 'idt'] as const;

type Value<F extends Record<string, FieldType>> = { -readonly [K in keyof F as K extends `pad${string}` ? never : K]: FieldValue<F[K]> };

/** General-purpose registers (struct kvm_regs). */
export type Regs = Value<typeof REGS>;
/** A segment register (struct kvm_segment). `unusable` is optional when setting. */
export type Segment = Omit<Value<typeof SEGMENT>, Optional> & Partial<Pick<Value<typeof SEGMENT>, Optional>>;
/** A descriptor-table register (GDTR/IDTR). */
export type DescriptorTable = Value<typeof TABLE>;
/** Special registers (struct kvm_sregs; the pending-interrupt bitmap is not exposed). */
export type Sregs = Record<(typeof SEGMENTS)[number], Segment> & Record<(typeof TABLES)[number], DescriptorTable> & Value<typeof CONTROL>;
/** x87/SSE state (struct kvm_fpu): `fpr` is 8 × 16 bytes, `xmm` 16 × 16 bytes. */
export type Fpu = Omit<Value<typeof FPU>, 'fpr' | 'xmm'> & { fpr: Uint8Array; xmm: Uint8Array };

/** Every general-purpose register at 0, to set a few from. */
export function zeroRegs(): Regs {
  return Object.fromEntries(RegsLayout.fields.map((f) => [f.name, 0n])) as Regs;
}
