/**
 * The one error class nub throws. Every failure a caller can act on carries a
 * stable `code` (tests assert codes, never message text). The native addon
 * constructs this same class, so a failing ioctl and a malformed image look alike
 * to the caller.
 */
export class NubError extends Error {
  /** Stable machine-readable code, e.g. `'EACCES'`, `'BadMagic'`, `'DataDesc.OutOfRange'`. */
  readonly code: string;
  /** errno of the failing syscall, when there is one. */
  errno?: number;
  /** Name of the failing syscall (`'open'`, `'ioctl'`, `'mmap'`). */
  syscall?: string;
  /** Name of the failing ioctl (`'KVM_CREATE_VM'`), when `syscall === 'ioctl'`. */
  ioctl?: string;
  /** Where in a structured input the problem is, e.g. `initial_slots[[2]].pages[3]`. */
  path?: string;
  /** Anything else worth reporting (fault vector, rip, cr2, ...). */
  details?: Record<string, unknown>;

  constructor(code: string, message: string, extra: Partial<Pick<NubError, 'errno' | 'syscall' | 'ioctl' | 'path' | 'details'>> & { cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'NubError';
    this.code = code;
    if (extra.errno !== undefined) this.errno = extra.errno;
    if (extra.syscall !== undefined) this.syscall = extra.syscall;
    if (extra.ioctl !== undefined) this.ioctl = extra.ioctl;
    if (extra.path !== undefined) this.path = extra.path;
    if (extra.details !== undefined) this.details = extra.details;
  }
}

/** True when `err` is a NubError with the given code (or any NubError when no code is given). */
export function isNubError(err: unknown, code?: string): err is NubError {
  return err instanceof NubError && (code === undefined || err.code === code);
}
