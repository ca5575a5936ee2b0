/**
 * The kernel operations (`ecalli 1..63`, docs/machine.md "Caps at run time"): their
 * numbers, the statuses they return in φ7, their gas and the slot-reference encoding.
 * Declared once here; `MACHINE_CONSTANTS` (abi.ts) carries them into the C engine's
 * generated `pvm_tables.h`.
 */
import { CapPutLayout } from '../abi/guest-abi.js';
import { defineConstants } from '../abi/struct.js';
import { CapSelector } from '../caps/schema.js';

export const KernelOp = {
  COPY: 1,
  MOVE: 2,
  DROP: 3,
  DERIVE_SPAWN: 18,
  DATA_SIZE: 21,
  READ_DATA: 22,
  MINT_DATA: 23,
  CALL: 26,
} as const;

export const KernelStatus = {
  OK: 0,
  BAD_SLOT: 1,
  EMPTY: 2,
  OCCUPIED: 3,
  PINNED: 4,
  WRONG_KIND: 5,
  OUT_OF_RANGE: 6,
  BAD_MEMORY: 7,
  /** DERIVE_SPAWN: the Image cap's image is not loaded (or was not when the image naming it was). */
  NOT_LOADED: 8,
  /** CALL: the Instance's image has no endpoint [φ8]. */
  NO_ENDPOINT: 9,
  /** CALL: the child's frame cannot be built (the same checks as a host invoke's Machine.* errors). */
  REFUSED: 10,
  /** CALL: the child stopped other than by HALT; φ8 = its exit number. */
  CHILD_EXIT: 11,
  /** CALL: the call would nest deeper than CallLimit.MAX_DEPTH frames. */
  DEPTH: 12,
} as const;

/** Gas an operation charges beyond its `ecalli`: the fixed part always, the variable part on success. */
export const KernelGas = {
  SLOT_OP: 10,
  READ_FIXED: 20,
  /** READ_DATA charges 1 per this many bytes (rounded up). */
  READ_BYTES_PER_GAS: 64,
  MINT_FIXED: 50,
  MINT_PER_PAGE: 256,
  SPAWN_FIXED: 50,
  CALL_FIXED: 100,
  /** DERIVE_SPAWN and CALL copy the Instance's writable memory: this much per page. */
  COPY_PER_PAGE: 16,
} as const;

/** Nested calls: the host's invoke is depth 0; a CALL runs its child one deeper. */
export const CallLimit = {
  MAX_DEPTH: 8,
} as const;

/**
 * A slot reference in a register: 1..255 name root slot [b]; ARG_BASE + i names slot i
 * of the argument cnode [0]. The frame has SLOT_REFS possible references.
 */
export const SlotRef = {
  ARG_BASE: 0x100,
  SLOT_REFS: 0x200,
  /**
   * Where a Data cap's pages start in its stored encoding (the `Cap` selector and one
   * SSZ offset): what the guest engine writes in front of a minted cap's pages.
   */
  DATA_PAGES_OFFSET: CapPutLayout.values.DATA_PAGES_OFFSET,
} as const;

/** What an operation did to the run (the engines' internal contract, not a guest-visible number). */
/** NO_MEMORY is the guest's alone: it could not store a minted cap, and the invoke fails ('GuestOutOfMemory'). */
export const KernelOutcome = { CONTINUE: 0, PANIC: 1, OUT_OF_GAS: 2, NO_MEMORY: 3 } as const;
export type KernelOutcomeCode = (typeof KernelOutcome)[keyof typeof KernelOutcome];

export const KERNEL_CONSTANTS = [
  defineConstants('PVM_KOP', 'Kernel operation numbers (ecalli 1..63; docs/machine.md).', KernelOp),
  defineConstants('PVM_KSTATUS', 'Kernel operation statuses, returned in φ7.', KernelStatus),
  defineConstants('PVM_KGAS', 'Gas of the kernel operations beyond their ecalli.', KernelGas),
  defineConstants('PVM_KOUTCOME', 'What pvm_kernel_op did to the run.', KernelOutcome),
  defineConstants('PVM_CAP', 'Cap union selectors (SPEC section 2).', CapSelector),
  defineConstants('PVM_SLOT', 'Slot references of the kernel operations.', SlotRef),
  defineConstants('PVM_CALL', 'Nested calls (CALL).', CallLimit),
];
