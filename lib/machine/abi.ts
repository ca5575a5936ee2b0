/**
 * The numbers every PVM2 engine must agree on: address-space constants, exit codes
 * and gas costs. Declared once here; the engine inside the guest includes the C
 * header generated from `MACHINE_CONSTANTS` (the same `defineConstants` groups as
 * `lib/abi/guest-abi.ts`), so the two engines cannot drift apart.
 */
import { defineConstants } from '../abi/struct.js';
import { CODE_BASE, DATA_BASE, MAX_CODE_SIZE, NUM_REGS, PAGE_SIZE, PHI_X_REGISTERS } from '../caps/constants.js';
import { KERNEL_CONSTANTS } from './kernel-ops.js';

export { CODE_BASE, DATA_BASE, MAX_CODE_SIZE, NUM_REGS, PAGE_SIZE, PHI_X_REGISTERS };

/** Register x-number of φ[i]. */
export function phiToX(i: number): number {
  return PHI_X_REGISTERS[i]!;
}

/** φ index of register x`n`, or -1 for a register that is no φ register (x0, x3, x4, x16..x31). */
export function xToPhi(x: number): number {
  return PHI_X_REGISTERS.indexOf(x);
}
/** Guest addresses are taken mod 2^32. */
export const ADDRESS_SPACE = 2 ** 32;

/** How an invocation ends; the same numbers in every engine (SPEC section 5). */
export const Exit = {
  HALT: 0,
  PANIC: 1,
  OUT_OF_GAS: 2,
  PAGE_FAULT: 3,
  HOST_CALL: 4,
  ECALL: 6,
  TRAP: 7,
} as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

/** The name of an exit number, for messages and `--json` output. */
export function exitName(exit: number): string {
  for (const [name, value] of Object.entries(Exit)) if (value === exit) return name;
  return `EXIT_${exit}`;
}

/**
 * Gas cost of one instruction, by class. SPEC section 5 fixes ALU, compare (`slt*`),
 * multiply, divide, load/store, branch, jal, jalr, ecalli/ecall.jar and
 * trap/fallthrough; the rest are our choices (docs/machine.md lists which mnemonic
 * is in which class): `lui`/`auipc`, Zba, Zbs, Zicond and most of Zbb are ALU;
 * Zbb's min/max compare like `slt`; `fence` is ALU; an illegal instruction costs 1.
 */
export const Gas = {
  ALU: 1,
  COMPARE: 3,
  MUL: 3,
  DIV: 60,
  MEMORY: 25,
  BRANCH: 20,
  JAL: 15,
  JALR: 22,
  CALL: 100,
  MARKER: 2,
  ILLEGAL: 1,
} as const;
export type GasClass = keyof typeof Gas;

/** Host calls are `ecalli` immediates in this range; 0 is reply/halt, 1..63 are kernel operations. */
export const HOST_CALL_MIN = 64;
export const HOST_CALL_MAX = 2047;

/** The groups the C header for the in-guest engine is generated from. */
export const MACHINE_CONSTANTS = [
  defineConstants('PVM', 'PVM2 address space (SPEC section 1).', {
    PAGE_SIZE,
    NUM_REGS,
    /** φ register i lives in x[PHI_X_REGISTERS[i]]. */
    PHI_X_REGISTERS,
    CODE_BASE,
    DATA_BASE,
    MAX_CODE_SIZE,
    ADDRESS_SPACE,
    HOST_CALL_MIN,
    HOST_CALL_MAX,
  }),
  defineConstants('PVM_EXIT', 'Exit numbers of an invocation (SPEC section 5).', Exit),
  defineConstants('PVM_GAS', 'Gas cost per instruction class (docs/machine.md).', Gas),
  ...KERNEL_CONSTANTS,
];
