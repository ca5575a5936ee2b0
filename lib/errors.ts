/**
 * The one error class nub throws, and the catalogue of its codes. Every failure a
 * caller can act on carries a stable `code` from `ERROR_CODES` (tests assert codes,
 * never message text). The native addon constructs this same class with codes drawn
 * from the same table (scripts/gen-errors.mjs writes native/nub_errors.h from it), so
 * a failing ioctl and a malformed image look alike to the caller.
 */

/**
 * What a Sandbox is like after a call failed with the code: `usable` (nothing was
 * changed), `poisoned` (every later call throws 'Poisoned' until reset()/restore()),
 * `closed`, or `none` (not raised by a sandbox call: files, tools, builders).
 */
export type SandboxAfter = 'usable' | 'poisoned' | 'closed' | 'none';

interface CodeInfo {
  readonly meaning: string;
  readonly sandbox: SandboxAfter;
}

const code = (meaning: string, sandbox: SandboxAfter): CodeInfo => ({ meaning, sandbox });

/** Every NubError code: what it means and what it leaves a sandbox as. docs/errors.md is printed from this table. */
export const ERROR_CODES = {
  // Calls and arguments
  BadArgument: code('an argument has the wrong type or range (path: which one)', 'usable'),
  Busy: code('the sandbox or VM is already running a call that this one would disturb', 'usable'),
  Reentrant: code('a host function called a sandbox method that would disturb the invoke it serves', 'usable'),
  Closed: code('the sandbox, VM, memory or file was closed', 'closed'),
  Unsupported: code('this engine cannot do that (e.g. snapshots on local)', 'usable'),
  PollingUnavailable: code('polling mode needs the vCPU and the caller on different cores; this process has one', 'none'),
  UnknownImage: code('no such image is loaded in this sandbox', 'usable'),
  UnknownEndpoint: code('the image has no such endpoint', 'usable'),
  StaleMemory: code("a result's memory (or a minted result cap) was read after a later invoke reused it", 'usable'),
  UnknownCap: code('an argument cap { hash } names no cap stored in this sandbox', 'usable'),
  UnknownInstance: code('sandbox.instance(): no such Instance in this sandbox', 'usable'),
  ImageInUse: code('unloadImage(): a loaded image can spawn Instances of this one (a pinned Image slot); unload that image first', 'usable'),
  WrongKind: code('bytes() of a result cap that is not a Data cap', 'usable'),
  MemoryBudgetExceeded: code("loading would take the sandbox past its memory budget (SandboxOptions.memoryBudget)", 'usable'),
  TooManyMappings: code('an image has more mappings than an engine maps', 'usable'),
  TooManyImages: code('the sandbox already holds as many images as it can; unloadImage() one', 'usable'),
  HostFunctionFailed: code('a host function threw or rejected (cause); the invoke ended at the call', 'usable'),
  Timeout: code('timeoutMs passed; an invoke leaves the sandbox usable, a timed-out guest request poisons it', 'usable'),
  Cancelled: code('the AbortSignal fired', 'usable'),
  // Images, caps and decoding
  BadImage: code('the image failed decoding or admission (cause: the admission error, path)', 'usable'),
  BadHash: code('a hash is not 32 bytes', 'usable'),
  BadKey: code('a key is not 1..255 bytes', 'usable'),
  NotAFile: code('an image path names something that is not a regular file', 'none'),
  FileTooLarge: code('a file is larger than the reader accepts', 'none'),
  CodeTooLarge: code('code.len exceeds MAX_CODE_SIZE (SPEC 3)', 'usable'),
  CodeRefOutOfRange: code('the code lies outside the arena (SPEC 3)', 'usable'),
  RegisterIndexOutOfRange: code('an initial register index is 13 or more (SPEC 3)', 'usable'),
  SourcePathEmpty: code('a mapping source path is empty (SPEC 3)', 'usable'),
  SourcePathTooDeep: code('a mapping source path is too deep (SPEC 3)', 'usable'),
  'DataDesc.SizeNotPageMultiple': code('a Data desc size is not whole pages', 'usable'),
  'DataDesc.BadLen': code('a page ref length is not 1..4096', 'usable'),
  'DataDesc.OutOfRange': code('a page ref lies outside the arena', 'usable'),
  'DataDesc.PageIndexOutOfRange': code('a page index is at or past the page count', 'usable'),
  'DataDesc.NotCanonical': code('page indexes are not strictly ascending', 'usable'),
  'DataCap.TooLarge': code('a Data cap would exceed 4 GiB', 'usable'),
  'DataCap.BadSize': code('a Data cap size is not whole pages or is below its content', 'usable'),
  'DataCap.BadPage': code('a page does not fit the cap', 'usable'),
  'DataCap.OutOfRange': code('a write lies outside the cap', 'usable'),
  'Decode.Truncated': code('fewer bytes than a fixed part or an offset needs', 'usable'),
  'Decode.BadOffset': code('an SSZ offset is out of order or past the end', 'usable'),
  'Decode.BadLength': code('a list is not a whole number of its elements', 'usable'),
  'Decode.TooLong': code('a list has more elements than its limit', 'usable'),
  'Decode.BadSelector': code('a union selector is out of range', 'usable'),
  'Decode.TrailingBytes': code('bytes after a fixed-size value or a None', 'usable'),
  'Decode.UnsortedKeys': code('sorted-map keys out of order', 'usable'),
  'Decode.DuplicateKey': code('a sorted-map key repeats', 'usable'),
  'Decode.Malformed': code('the SSZ library refused bytes the strict walk accepted', 'usable'),
  'Decode.Inconsistent': code('two fields that must agree do not (stack_top vs φ1)', 'usable'),
  'Builder.BadEndpoint': code('ImageBuilder: a bad endpoint field', 'none'),
  'Builder.BadHash': code('ImageBuilder: a content hash is not 32 bytes', 'none'),
  'Builder.BadMapping': code('ImageBuilder: a mapping is not whole pages in [DATA_BASE, 4 GiB)', 'none'),
  'Builder.DuplicateEndpoint': code('ImageBuilder: an endpoint added twice', 'none'),
  'Builder.DuplicateSlot': code('ImageBuilder: a slot used twice', 'none'),
  // The reference machine (engine local), whose mapping rules both engines apply
  'Machine.UnresolvedMapping': code('no Data cap at a mapping source', 'usable'),
  'Machine.TooManyCaps': code("more argument caps than the endpoint's arg_cnode_size", 'usable'),
  'Machine.MissingCap': code('a mapping shows an argument cap that was not passed', 'usable'),
  'Machine.CapKind': code('an argument cap of a kind its use does not take (a mapping needs Data; frames hold Data and Image)', 'usable'),
  'Machine.ReservedSlots': code('the image declares yield_receiver_slot, gas_slots or quota_slots, which are reserved', 'usable'),
  'Machine.MappingNotPageAligned': code('a mapping is not whole pages', 'usable'),
  'Machine.MappingOutOfRange': code('a mapping lies outside [DATA_BASE, 2^32)', 'usable'),
  'Machine.MappingsOverlap': code('two mappings overlap', 'usable'),
  // The guest and its protocol
  GuestFault: code('the guest kernel took an exception (details: vector, rip, cr2)', 'poisoned'),
  GuestTripleFault: code('the guest kernel shut down', 'poisoned'),
  GuestHalted: code('the guest kernel halted', 'poisoned'),
  GuestProtocol: code('the guest broke the protocol (a bad address, a lie in a result)', 'poisoned'),
  UnexpectedExit: code('the guest left KVM in a way nub does not expect', 'poisoned'),
  VmEntryFailed: code('KVM could not enter the guest', 'poisoned'),
  KvmInternalError: code('KVM reported an internal error', 'poisoned'),
  Poisoned: code('an earlier failure left the guest unusable (cause); reset() reboots it', 'poisoned'),
  OutOfMemory: code("the guest's heap (or a synthetic one) is full", 'usable'),
  DirectoryFull: code("the guest's cap directory is full", 'usable'),
  GuestCapMissing: code('the guest lacks a cap a request names', 'usable'),
  GuestBadCap: code('the guest refused a stored cap', 'usable'),
  GuestBadOp: code('the guest does not know the request', 'usable'),
  GuestBadArgs: code("the guest refused a request's arguments", 'usable'),
  GuestBadStatus: code('the guest answered with an unknown status', 'usable'),
  PayloadTooLarge: code('a request does not fit the mailbox', 'usable'),
  // Guest memory views and layouts
  OutOfBounds: code('an access outside guest memory or a view', 'none'),
  Misaligned: code('a typed access at a misaligned address', 'none'),
  UnmappedAddress: code('a guest virtual address no page table maps', 'none'),
  NullPointer: code('a guest pointer is 0', 'none'),
  BadAddress: code('a guest pointer outside the linear map', 'none'),
  BadSpaceReference: code('a page-table reference outside guest memory', 'none'),
  PageTablesFull: code('no room for another page table', 'none'),
  UnsupportedMapping: code('a page-table entry nub cannot follow (huge page, ...)', 'none'),
  UninitialisedDirectoryVa: code('the guest has not published its directory', 'none'),
  BadDirectory: code('the guest directory is inconsistent', 'none'),
  BadMagic: code('a record lacks its magic', 'none'),
  BadExit: code('an exit record is inconsistent', 'none'),
  UnknownLayout: code('a layout name is unknown', 'none'),
  ValueTooLarge: code('a value does not fit its field', 'none'),
  SizeMismatch: code('two sizes that must agree do not', 'none'),
  // Snapshots and memory files
  BadSnapshotFile: code('a snapshot file is malformed', 'none'),
  BadSnapshotMagic: code('not a snapshot file', 'none'),
  UnsupportedSnapshotVersion: code('a snapshot file of another version', 'none'),
  SnapshotChecksumMismatch: code('a snapshot file is corrupt', 'none'),
  SnapshotUnreadable: code('a snapshot file cannot be read', 'none'),
  VcpuNotSettled: code('the vCPU state cannot be saved mid-run', 'none'),
  BadMemorySize: code('a memory size is not whole pages in range', 'none'),
  PoolBusy: code('every sandbox of the pool is in use and the pool is bounded', 'usable'),
  Sealed: code('the memory file is sealed', 'none'),
  DirtyLogDisabled: code('the VM was created without dirtyLog', 'none'),
  NotCopyOnWrite: code('the VM memory is not a copy-on-write map of a snapshot', 'none'),
  NotSealed: code('seal the memory file first', 'none'),
  // The host machine and the build
  KvmUnsupported: code('/dev/kvm lacks what nub needs', 'none'),
  KvmUnavailable: code("engine kvm (Sandbox.create's default) cannot be used here: why and what to do, as nub doctor says (cause: the device error); engine 'auto' falls back to local instead", 'none'),
  AddonMissing: code('the native addon is not built', 'none'),
  KernelMissing: code('the guest kernel is not built', 'none'),
  BadKernelImage: code('the guest kernel image is malformed', 'none'),
  RunFailed: code('a tool run failed', 'none'),
  Internal: code('a bug in nub', 'none'),
  // Tools
  'Cli.NoOutputCap': code('nub run --output: the endpoint returned no Data cap in argument slot 0', 'none'),
  'Cli.Usage': code('nub: a bad command line (exit status 2; the usage follows on stderr)', 'none'),
  'Cli.NoCrossCompiler': code('nub cc: riscv64-unknown-elf-gcc is not on PATH (the message says what to install)', 'none'),
  'Cli.CompileFailed': code("nub cc: the compiler failed (its output is in the message)", 'none'),
  'Pack.BadElf': code('nub pack: not a linked PVM executable', 'none'),
  'Pack.BadEndpoint': code('nub pack: an endpoint outside the code', 'none'),
  'Pack.EntryNotBlockStart': code('nub pack: an endpoint not at a block start', 'none'),
  'Pack.IllegalInstruction': code('nub pack: instructions PVM2 cannot run', 'none'),
  'Pack.JumpNotBlockStart': code('nub pack: a jump to a non-block start', 'none'),
  'Pack.Layout': code('nub pack: the layout does not fit', 'none'),
  'Pack.NoEndpoints': code('nub pack: no endpoints', 'none'),
} as const satisfies Record<string, CodeInfo>;

/** A failing syscall's errno name ('EACCES', 'ENOENT', ...): errno, syscall and ioctl say more. */
export type ErrnoCode = `E${Uppercase<string>}`;

export type NubErrorCode = keyof typeof ERROR_CODES | ErrnoCode;

/** The names of a code family: `CodeFamily<'Decode'>` is 'Truncated' | 'BadOffset' | ... */
export type CodeFamily<P extends string, C = keyof typeof ERROR_CODES> = C extends `${P}.${infer S}` ? S : never;

/** True for every code nub can throw: a catalogue entry or an errno name. */
export function isNubErrorCode(value: string): value is NubErrorCode {
  return Object.hasOwn(ERROR_CODES, value) || /^E[A-Z0-9]+$/.test(value);
}

export class NubError extends Error {
  /** Stable machine-readable code from ERROR_CODES, or an errno name. */
  readonly code: NubErrorCode;
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

  constructor(code: NubErrorCode, message: string, extra: Partial<Pick<NubError, 'errno' | 'syscall' | 'ioctl' | 'path' | 'details'>> & { cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'NubError';
    // The addon passes codes as plain strings; an unknown one is a bug worth seeing, not hiding.
    this.code = isNubErrorCode(code) ? code : 'Internal';
    if (this.code !== code) this.message = `[${String(code)}] ${message}`;
    if (extra.errno !== undefined) this.errno = extra.errno;
    if (extra.syscall !== undefined) this.syscall = extra.syscall;
    if (extra.ioctl !== undefined) this.ioctl = extra.ioctl;
    if (extra.path !== undefined) this.path = extra.path;
    if (extra.details !== undefined) this.details = extra.details;
  }
}

/** True when `err` is a NubError with the given code (or any NubError when no code is given). */
export function isNubError(err: unknown, code?: NubErrorCode): err is NubError {
  return err instanceof NubError && (code === undefined || err.code === code);
}

/** A Node fs/system error as a NubError with its errno name as the code ('ENOENT', ...); `what` says what was being done. */
export function fromSystemError(err: unknown, what: string): NubError {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) ? (e.code as ErrnoCode) : 'EIO';
  return new NubError(code, `${what}: ${e?.message ?? String(err)}`, {
    ...(e?.syscall === undefined ? {} : { syscall: e.syscall }),
    ...(e?.errno === undefined ? {} : { errno: Math.abs(e.errno) }),
    cause: err,
  });
}
