/**
 * The resource limits a sandbox and the tools keep, declared once (docs/limits.md
 * states them in one table). Each bounds what hostile input can make the host spend.
 * The mapping limit is derived from the mailbox's size, so it lives with the protocol:
 * MAX_PREPARE_MAPPINGS in lib/guest/invoke.ts. This module imports nothing (every layer may use it).
 */

/** Largest file `nub inspect` / `nub run` / `nub pack` read: code (MAX_CODE_SIZE, 252 MiB) plus room for data. */
export const MAX_IMAGE_FILE_BYTES = 512 * 1024 * 1024;

/** The longest `timeoutMs` (the addon's watchdog takes a signed 32-bit count of milliseconds). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** How long a `loadImage` may keep the guest (PUT_CAPS and PREPARE together) when the caller sets no `timeoutMs`. */
export const DEFAULT_LOAD_TIMEOUT_MS = 120_000;

/** Images one sandbox holds at once; the guest kernel holds as many (NUB_MAX_IMAGES, generated from this). */
export const MAX_IMAGES = 1024;

/** Default memory budget of a sandbox, and the default guest RAM: room for the examples' largest mapping (8 MiB) stored once and copied once per invoke. */
export const DEFAULT_SANDBOX_MEMORY = 64 * 1024 * 1024;

/** Largest pre-decoded program engine local builds (about 16 bytes per byte of code: 64 MiB of code). */
export const MAX_PROGRAM_BYTES = 1024 * 1024 * 1024;
