/** Shared set-up for the machine tests: run hand-assembled code and read registers by x number. */
import { NUM_REGS, runMachine, xToPhi, type InvokeResult, type MachineInput } from '../../lib/machine/index.js';
import { assemble, type Encoded } from '../support/machine-asm.js';

/** φ index of register x`n`. */
export function phiOf(x: number): number {
  const phi = xToPhi(x);
  if (phi < 0) throw new Error(`x${x} is not a PVM2 register`);
  return phi;
}

/** φ0..φ12 from values given by x number. */
export function regsFromX(values: Partial<Record<number, bigint>>): bigint[] {
  const regs = new Array<bigint>(NUM_REGS).fill(0n);
  for (const [x, v] of Object.entries(values)) regs[phiOf(Number(x))] = BigInt.asUintN(64, v!);
  return regs;
}

export interface RunOptions extends Partial<Omit<MachineInput, 'program' | 'regs'>> {
  x?: Partial<Record<number, bigint>>;
}

/** Runs `code` (bytes or instructions) from offset 0 with plenty of gas unless told otherwise. */
export function run(code: Uint8Array | Encoded[], opts: RunOptions = {}): InvokeResult & { x: (n: number) => bigint; sx: (n: number) => bigint } {
  const program = code instanceof Uint8Array ? code : assemble(...code);
  const result = runMachine({ mappings: [], entry: 0, gas: 1_000_000n, ...opts, program, regs: regsFromX(opts.x ?? {}) });
  return {
    ...result,
    x: (n: number) => (n === 0 ? 0n : result.regs[phiOf(n)]),
    sx: (n: number) => (n === 0 ? 0n : BigInt.asIntN(64, result.regs[phiOf(n)])),
  };
}

/** 64-bit two's complement of a signed value, for writing expectations. */
export const u64 = (v: bigint) => BigInt.asUintN(64, v);
