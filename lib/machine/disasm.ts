/** Text form of a decoded instruction, in the expanded (32-bit) syntax with ABI register names. */
import type { Instruction } from './decoder.js';
import { ILLEGAL_INFO, ISA } from './isa.js';

const ABI_NAMES = [
  'zero', 'ra', 'sp', 'gp', 'tp', 't0', 't1', 't2', 's0', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5',
  'a6', 'a7', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9', 's10', 's11', 't3', 't4', 't5', 't6',
];

/** ABI name of register x`n` (`a0` for x10). */
export function registerName(n: number): string {
  return ABI_NAMES[n] ?? `x${n}`;
}

/** E.g. `addi a0, a0, 1`, `ld ra, 8(sp)`, `beq a0, zero, -12` (branch and jal offsets are pc-relative). */
export function disassemble(inst: Instruction): string {
  const { op, imm } = inst;
  const [rd, rs1, rs2] = [registerName(inst.rd), registerName(inst.rs1), registerName(inst.rs2)];
  const form = inst.illegal === 'encoding' ? 'illegal' : (ISA[op] ?? ILLEGAL_INFO).form;
  switch (form) {
    case 'reg': return `${op} ${rd}, ${rs1}, ${rs2}`;
    case 'imm': return `${op} ${rd}, ${rs1}, ${imm}`;
    case 'upper': return `${op} ${rd}, 0x${(imm >>> 12).toString(16)}`;
    case 'unary': return `${op} ${rd}, ${rs1}`;
    case 'load': return `${op} ${rd}, ${imm}(${rs1})`;
    case 'store': return `${op} ${rs2}, ${imm}(${rs1})`;
    case 'branch': return `${op} ${rs1}, ${rs2}, ${imm}`;
    case 'jal': return `${op} ${rd}, ${imm}`;
    case 'jalr': return `${op} ${rd}, ${imm}(${rs1})`;
    case 'ecalli': return `${op} ${imm}`;
    case 'none': case 'marker': return op;
    case 'illegal': return `illegal (${op})`;
  }
}
