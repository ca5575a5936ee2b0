/** The machine constants of SPEC section 1, declared once. */

/** Every Data cap and every mapping is a whole number of pages. */
export const PAGE_SIZE = 4096;
/** Registers φ[0..12]. */
export const NUM_REGS = 13;
/** The RISC-V register x-number of each φ register: φ0 = x1 (ra), φ1 = x2 (sp), φ2..φ12 = x5..x15 (SPEC section 5). */
export const PHI_X_REGISTERS: readonly number[] = [1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/** PVM PC = CODE_BASE + byte offset into code; `[0, CODE_BASE)` is never mapped. */
export const CODE_BASE = 0x0040_0000;
/** First address a memory mapping may use. */
export const DATA_BASE = 0x1000_0000;
/** Larger code would alias data. */
export const MAX_CODE_SIZE = DATA_BASE - CODE_BASE;
/** Longest `SlotPath` of a mapping (checked at admission, not by the decoder). */
export const MAX_SOURCE_DEPTH = 8;
/** The guest address space is 4 GiB, so no Data cap can usefully be larger. */
export const MAX_DATA_PAGES = 2 ** 20;
/** SSZ limit of every list whose bound SPEC does not state (keys, paths, maps, the arena). */
export const LIST_LIMIT = 2 ** 32;
