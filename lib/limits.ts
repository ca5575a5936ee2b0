/**
 * The resource limits a sandbox and the tools keep, declared once (docs/limits.md
 * states them in one table). Each bounds what hostile input can make the host spend.
 */

/** Largest file `nub inspect` / `nub run` / `nub pack` read: code (MAX_CODE_SIZE, 252 MiB) plus room for data. */
export const MAX_IMAGE_FILE_BYTES = 512 * 1024 * 1024;
