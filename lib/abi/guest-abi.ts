/**
 * The host <-> guest ABI: every byte layout and number both sides rely on.
 * This module is the single source; `guest/include/nub_abi.h` is generated from it
 * by `scripts/gen-abi.mjs` (never edit the header by hand).
 *
 * The memory map, the ring map and the entry state are MEMORY_MAP below (the generated
 * header carries it too, for the guest's developers).
 */
import { NUM_REGS } from '../caps/constants.js';
import { MAX_IMAGES } from '../limits.js';
import { defineConstants, defineStruct } from './struct.js';

/** A cap hash (SHA-256 output): the directory's key. */
export const HASH_BYTES = 32;

/** How guest memory is laid out and what the host sets up before the first run; emitted as the generated header's opening comment. */
export const MEMORY_MAP = `
Guest-physical memory map (one KVM memory slot at GPA 0):

  0x0000_0000 +--------------------------+
              | null guard (never used)  |
  0x0000_1000 +--------------------------+ GDT, IDT at IDT_GPA, TSS at TSS_GPA (host-written)
  0x0000_2000 +--------------------------+ boot info (guest-written, host-read)
  0x0000_3000 +--------------------------+ fault record (guest-written on an exception)
  0x0000_4000 +--------------------------+ mailbox header + payload (MAILBOX_PAGES pages)
  0x0001_4000 +--------------------------+ host-function bitmap (host-written)
              | (reserved)               |
  0x0001_8000 +--------------------------+ exception stack (TSS IST1; every vector uses it)
  0x0002_0000 +--------------------------+ page tables, built by the host (lib/guest/boot)
  0x0010_0000 +--------------------------+ guest kernel image (guest/build/kernel.bin),
              | header                   |   starting with a KernelHeader
              | .text.supervisor (CPL0)  |   supervisor_start_va .. supervisor_end_va
              | .text .rodata            |   .. readonly_end_va
              | .data .bss               |
              +--------------------------+ stack guard page (left unmapped by the host)
              | kernel stack             | KERNEL_STACK_SIZE
              +--------------------------+ KernelHeader.stack_top_va: initial RSP, heap start
              |  heap                    |
              +--------------------------+ memory_size - CODE_ARENA_SIZE: heap end
              |  code arena (engine-generated x86 code)
              +--------------------------+ memory_size

Guest-virtual: all of guest-physical memory is mapped at GUEST_VA_BASE + gpa (the
kernel's linear map; the kernel is linked there), and the code arena a second time
at CODE_ALIAS_VA: writable (never executable) in the linear map, executable (never
writable) at the alias. Virtual addresses below GUEST_VA_BASE are left to the
engine. The null page (GPA 0) and the stack guard page are not mapped.

Rings (docs/guest.md, "Ring map"): everything the kernel does runs at CPL3 except the
exception handlers (KernelHeader.supervisor_*), which record a fault for the host.
Supervisor-only: the GDT/IDT/TSS page, the fault record, the exception stack, the
page tables, the kernel header and the handlers. The kernel's text and rodata are
read-only, its data, stack, heap and the mailbox writable and never executable.

Entry: the host starts the vCPU in 64-bit long mode at CPL3 at KernelHeader.entry_va
with RSP = stack_top_va, RDI = memory size in bytes, interrupts disabled, the IDT
loaded (so exceptions are reported from the first instruction), the TSS's I/O bitmap
allowing only the ports a ring-3 kernel uses (DOORBELL, CONSOLE, HOST_CALL), and guest
memory zero-filled outside the kernel image (the guest relies on zeroed bss and heap).
`;

export const Layout = defineConstants('NUB', 'Guest memory map and boot parameters.', {
  PAGE_SIZE: 4096,
  GUEST_VA_BASE: 0x40_0000_0000n,
  GDT_GPA: 0x1000,
  /** 32 exception gates, pointing at the kernel's stubs (KernelHeader.exception_stubs_va). */
  IDT_GPA: 0x1400,
  TSS_GPA: 0x1800,
  BOOT_INFO_GPA: 0x2000,
  FAULT_GPA: 0x3000,
  MAILBOX_GPA: 0x4000,
  MAILBOX_PAGES: 16,
  /**
   * Host-function bitmap (host-written, guest-read): bit n set = the host handles
   * `ecalli n`. HOST_FUNCTION_BITMAP_BYTES bytes, one bit per number 0..2047.
   */
  HOST_FUNCTIONS_GPA: 0x1_4000,
  HOST_FUNCTION_BITMAP_BYTES: 256,
  EXCEPTION_STACK_GPA: 0x1_8000,
  EXCEPTION_STACK_END_GPA: 0x2_0000,
  PAGE_TABLES_GPA: 0x2_0000,
  PAGE_TABLES_END_GPA: 0x10_0000,
  KERNEL_GPA: 0x10_0000,
  KERNEL_STACK_SIZE: 0x1_0000,
  /** Smallest guest memory the kernel boots in. */
  MIN_MEMORY_SIZE: 0x40_0000,
  /** The last bytes of guest memory, kept out of the heap for engine-generated code. */
  CODE_ARENA_SIZE: 0x10_0000,
  /** Where ring 3 executes the code arena (read-only there; written through the linear map). */
  CODE_ALIAS_VA: 0x20_0000_0000n,
  HASH_BYTES,
  /** Images one guest holds prepared (the host keeps a sandbox to as many: lib/limits.ts). */
  MAX_IMAGES,
});

/** Port numbers of the guest's `out` instructions; each is one VM exit the host decodes. */
export const Ports = defineConstants('NUB_PORT', 'I/O ports the guest writes to signal the host.', {
  /** The guest finished a mailbox request (or booted) and waits for the next one. */
  DOORBELL: 0x10,
  /** The guest took an exception; the fault record is filled in. */
  FAULT: 0x11,
  /** Debug console: one byte per `out`. */
  CONSOLE: 0x12,
  /**
   * The guest stopped an INVOKE at `ecalli n` for a host function: the Invoke record
   * holds the registers and the number. The host writes φ7 and `host_reply` and re-enters.
   */
  HOST_CALL: 0x13,
});

export const BOOT_INFO_MAGIC = 0x3154_4f4f_4242_554en; // "NUBBOOT1" read as little-endian u64
export const BOOT_INFO_LAYOUT_VERSION = 2;
export const DIRECTORY_LAYOUT_ID = 0x4449_5231; // "DIR1"

export const KERNEL_HEADER_MAGIC = 0x314e_5245_4b42_554en; // "NUBKERN1" read as little-endian u64

export const BootMagic = defineConstants('NUB_BOOT', 'Boot-info identification.', {
  INFO_MAGIC: BOOT_INFO_MAGIC,
  INFO_LAYOUT_VERSION: BOOT_INFO_LAYOUT_VERSION,
  DIRECTORY_LAYOUT_ID,
  KERNEL_HEADER_MAGIC,
});

/**
 * The first bytes of `kernel.bin` (the linker script puts it there). It tells the host
 * where to enter and where the stack goes, so the host never parses the ELF.
 * Every address is guest-virtual (GUEST_VA_BASE + KERNEL_GPA + offset in the file).
 */
export const KernelHeader = defineStruct('nub_kernel_header', 'Header at the start of the guest kernel image.', {
  magic: 'u64',
  /** BOOT_INFO_LAYOUT_VERSION the kernel was built against. */
  layout_version: 'u32',
  _pad0: 'u32',
  entry_va: 'u64',
  /** End of the bytes in kernel.bin; .bss follows. */
  load_end_va: 'u64',
  /** One page the host leaves unmapped, so a stack overflow faults. */
  stack_guard_va: 'u64',
  /** Initial RSP; the heap starts here. */
  stack_top_va: 'u64',
  /** 32 u64 addresses: the exception stub of each vector, for the IDT the host writes. */
  exception_stubs_va: 'u64',
  /** [supervisor_start_va, supervisor_end_va): page-aligned CPL0 code (the exception handlers), not user-accessible. */
  supervisor_start_va: 'u64',
  supervisor_end_va: 'u64',
  /** The ring-3 text and rodata end here (page-aligned): read-only before, writable and non-executable after. */
  readonly_end_va: 'u64',
});

/** Published by the guest at BOOT_INFO_GPA once it is ready for requests. */
export const BootInfo = defineStruct('nub_boot_info', 'What the guest tells the host about itself after boot.', {
  magic: 'u64',
  layout_version: 'u32',
  directory_layout: 'u32',
  /** Guest-virtual address of the cap directory header (0 until initialised). */
  directory_va: 'u64',
  guest_va_base: 'u64',
  memory_size: 'u64',
  heap_start: 'u64',
  heap_end: 'u64',
  /** Guest-physical address of the live PML4 (the guest's CR3). */
  page_table_root: 'u64',
  kernel_version: 'u32',
  _pad0: 'u32',
  /**
   * Where the host may restart the vCPU (with RSP = the kernel stack top) after it
   * stopped an INVOKE part-way: the kernel then serves the next mailbox request as
   * if the stopped one had finished.
   */
  resume_va: 'u64',
});

/**
 * The cap directory: a flat open-addressed table from cap hash to stored bytes.
 * Slot index = (first 8 bytes of the hash, little-endian) mod capacity, then linear
 * probing; capacity is a power of two. The hash is SHA-256 output, so no hasher
 * internals are part of the layout. Entries are never removed (no tombstones).
 */
export const DirectoryHeader = defineStruct('nub_directory', 'Cap directory header.', {
  layout_id: 'u32',
  /** Number of entries in the table; a power of two. */
  capacity: 'u32',
  /** Number of occupied entries. */
  count: 'u32',
  _pad0: 'u32',
  /** Guest-virtual address of `capacity` consecutive DirectoryEntry records. */
  entries_va: 'u64',
});

export const DirectoryEntryState = defineConstants('NUB_DIR_ENTRY', 'DirectoryEntry.state values.', {
  EMPTY: 0,
  USED: 1,
});

export const DirectoryEntry = defineStruct('nub_directory_entry', 'One cap directory slot.', {
  hash: ['u8', HASH_BYTES],
  state: 'u32',
  /** The cap's kind: the `Cap` union selector (Instance 0, Image 1, Data 2, CNode 3, Type 4). */
  kind: 'u32',
  /** Length in bytes of the stored cap encoding. */
  len: 'u64',
  /** Guest-virtual address of the stored bytes. */
  data_va: 'u64',
  _pad0: 'u64',
});

/** Filled in by the guest's exception handler before it signals NUB_PORT_FAULT. */
export const FaultRecord = defineStruct('nub_fault', 'A guest kernel exception.', {
  vector: 'u64',
  error_code: 'u64',
  rip: 'u64',
  cs: 'u64',
  rflags: 'u64',
  rsp: 'u64',
  cr2: 'u64',
  /** Number of faults seen so far (a fault inside the handler shows up as count > 1). */
  count: 'u64',
});

/**
 * Mailbox requests. The host writes a request into the mailbox header (and any bulk
 * input into the payload that follows it), enters the guest, and the guest answers
 * with a status and results and signals NUB_PORT_DOORBELL: one entry, one exit.
 * Later requests (batched puts, invoke, host calls) add opcodes, not new mechanisms.
 */
export const MailboxOp = defineConstants('NUB_OP', 'Mailbox request opcodes.', {
  NONE: 0,
  /** Round trip only, in as few guest instructions as possible: no args, no results. */
  PING: 1,
  /**
   * Store one cap: args[0] = kind, args[1] = byte length; the payload is the 32-byte
   * hash then the bytes. results[0] = 1 if it was inserted, 0 if the hash was present.
   */
  PUT: 2,
  /**
   * Store many caps in one entry: args[0] = record count; the payload is that many
   * CapPut records. The guest reserves room for each cap it does not hold yet, inserts
   * it, and writes `data_va`; the host then copies the bytes straight into guest
   * memory (so caps of any size take one entry, and the guest copies nothing).
   * results[0] = number inserted.
   */
  PUT_CAPS: 3,
  /**
   * Make an image runnable, once per image: the payload is one Prepare record then
   * `mapping_count` InvokeMapping records. The guest decodes the code, builds the
   * image's address space (pinned mappings on the stored Data cap pages, writable ones
   * on pages of their own) and answers with the image id and where each mapping lives.
   * The host writes the writable mappings' initial bytes itself, before every INVOKE.
   */
  PREPARE: 4,
  /**
   * Run a prepared image: the payload is one Invoke record. The guest answers in the
   * same record (exit, registers, pc, gas). Host functions stop it on NUB_PORT_HOST_CALL.
   */
  INVOKE: 5,
  /** Test-only: fault on purpose; args[0] selects a SelftestFault scenario (guest/src/selftest.c). */
  SELFTEST_FAULT: 0x7f00,
});

/**
 * The 32 x86 exception vectors: each has a stub in guest/src/entry.S and a gate in the IDT
 * the host writes; `errorCode` says whether the CPU pushes an error code for it.
 */
export const EXCEPTIONS: readonly { name: string; errorCode: boolean }[] = [
  'divide error', 'debug', 'NMI', 'breakpoint', 'overflow', 'bound range', 'invalid opcode', 'device not available',
  'double fault', 'coprocessor overrun', 'invalid TSS', 'segment not present', 'stack fault', 'general protection',
  'page fault', 'reserved', 'x87 error', 'alignment check', 'machine check', 'SIMD error', 'virtualization',
  'control protection', 'reserved', 'reserved', 'reserved', 'reserved', 'reserved', 'reserved', 'hypervisor injection',
  'VMM communication', 'security', 'reserved',
].map((name, vector) => ({ name, errorCode: [8, 10, 11, 12, 13, 14, 17, 21, 29, 30].includes(vector) }));

export const Exceptions = defineConstants('NUB_EXCEPTION', 'x86 exception vectors (EXCEPTIONS in lib/abi/guest-abi.ts).', {
  VECTORS: EXCEPTIONS.length,
  /** Bit v set: the CPU pushes an error code for vector v (entry.S pushes a 0 for the others). */
  ERROR_CODE_MASK: EXCEPTIONS.reduce((mask, e, v) => (e.errorCode ? mask | (1 << v) : mask), 0) >>> 0,
});

/** Scenarios of NUB_OP_SELFTEST_FAULT. */
export const SelftestFault = defineConstants('NUB_SELFTEST', 'Deliberate guest faults, for tests.', {
  DIVIDE_ERROR: 1,
  /** Reads the (unmapped) null page. */
  PAGE_FAULT: 2,
  INVALID_OPCODE: 3,
  /** Recurses into the stack guard page: the handler must still run (on its own stack). */
  STACK_OVERFLOW: 4,
  /** Ring 3 writes its own page tables: they are supervisor-only, so it page-faults. */
  WRITE_PAGE_TABLES: 5,
  /** Ring 3 writes its own (read-only) text. */
  WRITE_TEXT: 6,
  /** Ring 3 runs a privileged instruction (`hlt`): a general-protection fault. */
  PRIVILEGED_INSTRUCTION: 7,
});

export const MailboxStatus = defineConstants('NUB_STATUS', 'Mailbox response status.', {
  OK: 0,
  BAD_OP: 1,
  BAD_ARGS: 2,
  NO_MEMORY: 3,
  DIRECTORY_FULL: 4,
  /** PREPARE: the image or a mapping's Data cap is not in the directory; INVOKE: no such image id. */
  CAP_MISSING: 5,
  /** PREPARE: a stored cap is not what the request says (wrong kind, bad encoding, code outside it). */
  BAD_CAP: 6,
});

/** Mailbox.args and Mailbox.results hold this many u64s each. */
export const MAILBOX_ARG_COUNT = 6;

export const Mailbox = defineStruct('nub_mailbox', 'Host <-> guest request block at MAILBOX_GPA.', {
  /** Incremented by the host for every request; echoed in `done_seq` by the guest. */
  seq: 'u64',
  done_seq: 'u64',
  op: 'u32',
  /** Written OK by the host with each request; the guest writes it only when the request fails. */
  status: 'u32',
  /** Bytes of request payload that follow the header. */
  payload_len: 'u64',
  args: ['u64', MAILBOX_ARG_COUNT],
  results: ['u64', MAILBOX_ARG_COUNT],
  /**
   * Host-written: 0, the guest rings the doorbell (one exit) after every request; else the
   * guest first spins this many TSC ticks on `seq` for the next request and serves it
   * without an exit (polling mode, docs/guest.md), ringing only once it has been idle that long.
   */
  idle_spin_tsc: 'u64',
});

/** Bytes of request payload that fit after the mailbox header. */
export const MailboxPayload = defineConstants('NUB_MAILBOX_PAYLOAD', 'The mailbox payload, after the header.', {
  GPA: Layout.values.MAILBOX_GPA + Mailbox.size,
  CAPACITY: Layout.values.MAILBOX_PAGES * Layout.values.PAGE_SIZE - Mailbox.size,
});

/** A stored cap's encoding (SSZ): the `Cap` union selector, then its container, whose variable fields are found by 4-byte offsets. */
const SELECTOR_BYTES = 1;
const SSZ_OFFSET_BYTES = 4;

export const CapPutLayout = defineConstants('NUB_CAP_PUT', 'Where PUT_CAPS places stored bytes, and the cap encodings the guest reads.', {
  /** `page_offset` value: no page alignment wanted (the bytes are 8-byte aligned). */
  NO_PAGE_OFFSET: 0xffff_ffff,
  SELECTOR_BYTES,
  SSZ_OFFSET_BYTES,
  /** A Data cap's container has one field, its pages, so its one offset is this. */
  DATA_FIRST_OFFSET: SSZ_OFFSET_BYTES,
  /** A Data cap's pages start at this offset of the stored bytes (after the selector and the one offset). */
  DATA_PAGES_OFFSET: SELECTOR_BYTES + SSZ_OFFSET_BYTES,
});

/** One cap of a PUT_CAPS request. */
export const CapPut = defineStruct('nub_cap_put', 'One cap of a PUT_CAPS request.', {
  hash: ['u8', HASH_BYTES],
  /** The cap's kind (its `Cap` union selector). */
  kind: 'u32',
  /** The guest places byte `page_offset` of the cap on a page boundary (NO_PAGE_OFFSET: none), so pinned pages map without copying. */
  page_offset: 'u32',
  len: 'u64',
  /** Guest-written: where the host must write the bytes; 0 when the hash was already stored. */
  data_va: 'u64',
});

export const InvokeReply = defineConstants('NUB_HOST_REPLY', 'Invoke.host_reply, written by the host before it re-enters after a host call.', {
  /** φ7 holds the host function's result: continue at the next instruction. */
  RESUME: 1,
  /** The host function failed: end the invoke now (exit HOST_CALL, registers as at the call). */
  ABORT: 2,
});

/** Which PVM2 engine runs an invoke: the values of enum pvm_engine (guest/engine/pvm.h; guest/src/invoke.c asserts they agree). */
export const InvokeEngine = defineConstants('NUB_ENGINE', 'Invoke.engine: the PVM2 engine that runs the invoke.', {
  INTERPRETER: 0,
  /** Translated to x86-64 on the image's first such invoke; an image the code arena has no room for is interpreted. */
  RECOMPILER: 1,
});

/** The PREPARE record, at the start of the payload; InvokeMapping records follow it. */
export const Prepare = defineStruct('nub_prepare', 'A PREPARE request and its result.', {
  /** The Image cap's hash in the directory. */
  image_hash: ['u8', HASH_BYTES],
  /** Where the code is inside the stored Image cap bytes. */
  code_offset: 'u32',
  code_len: 'u32',
  mapping_count: 'u32',
  /** FrameSlot records after the mappings: the image's root slots, as a CALL's child frame starts. */
  root_slot_count: 'u32',
  /** Endpoint records after the root slots: the endpoints a CALL can name (one-byte keys). */
  endpoint_count: 'u32',
  /** 1 when the image declares yield/gas/quota slots: every CALL of it is REFUSED (docs/machine.md). */
  reserved_slots: 'u32',
  /** Out: the id INVOKE names the image by. */
  image_id: 'u32',
  _pad0: 'u32',
  /** Out: guest-virtual address of the code (code_len bytes; the rest of its last page reads as zero). */
  code_va: 'u64',
});

/**
 * The INVOKE record, at the start of the payload. The host fills the inputs; the guest
 * overwrites the state fields (regs, pc, gas, exit...) when it stops, both at a host
 * call and at the end.
 */
export const Invoke = defineStruct('nub_invoke', 'An INVOKE request and its result.', {
  /** From PREPARE. */
  image_id: 'u32',
  _pad0: 'u32',
  /** Byte offset of the entry point in the code (pvm_enter: not a block start = PANIC there). */
  entry: 'u64',
  /** In: gas for the invocation. Out: gas left. */
  gas: 'u64',
  /** In: φ0..φ12 at entry. Out: at the stop. */
  regs: ['u64', NUM_REGS],
  /** Out: the PVM pc of the stop. */
  pc: 'u32',
  /** Out: the PVM exit (lib/machine Exit numbers). */
  exit: 'u32',
  exit_arg: 'u64',
  /** Out: instructions completed (statistics). */
  instructions: 'u64',
  /** In, after a host call: an InvokeReply value. */
  host_reply: 'u32',
  /** In: an InvokeEngine value. */
  engine: 'u32',
  /** In: FrameSlot records after this record (the frame's filled slots). */
  slot_count: 'u32',
  /** In: ResultCap records after the FrameSlots, one per argument slot (the endpoint's arg_cnode_size). */
  result_count: 'u32',
});

export const FrameLayout = defineConstants('NUB_FRAME', 'Frame records of an INVOKE.', {
  /** InvokeMapping.arg_slot of a mapping over a root slot's Data cap. */
  NO_ARG_SLOT: 0xffff_ffff,
  /** ResultCap.kind of an empty argument slot. */
  EMPTY_KIND: 0xffff_ffff,
  /** ResultCap.origin of a cap minted in the run. */
  NO_ORIGIN: 0xffff_ffff,
  /**
   * ResultCap.origin of a cap from a root slot of an image a CALL ran (it came back
   * through the child's argument slot 0): ROOT_ORIGIN | image_id << 8 | ref.
   */
  ROOT_ORIGIN: 0x8000_0000,
});

/**
 * One filled slot of the frame, host-written after the Invoke record. The host looks
 * the cap up in the guest's directory (through the cache reader) and passes where it is.
 */
export const FrameSlot = defineStruct('nub_frame_slot', 'One filled slot of an INVOKE\'s frame.', {
  /** Slot reference (lib/machine/kernel-ops.ts SlotRef). */
  ref: 'u32',
  /** Cap union selector. */
  kind: 'u32',
  pinned: 'u32',
  /** An Image cap's prepared image (its PREPARE image_id + 1), or 0: not loaded, DERIVE_SPAWN is NOT_LOADED. */
  image: 'u32',
  /** The stored encoding (0 for an Image cap the guest does not hold). */
  data_va: 'u64',
  len: 'u64',
});

/** One endpoint of a PREPARE (after the root slots): what a CALL of it starts from. */
export const Endpoint = defineStruct('nub_endpoint', 'One endpoint of a PREPARE.', {
  /** Its one-byte key. */
  key: 'u32',
  /** The endpoint's arg_cnode_size. */
  arg_slots: 'u32',
  /** Byte offset of its entry in the code (anything not a block start PANICs, as at a host invoke). */
  entry: 'u64',
  /** φ0..φ12 at entry (initial_regs; a CALL puts its arguments in φ7..φ9). */
  regs: ['u64', NUM_REGS],
});

/**
 * An Instance made in a run (DERIVE_SPAWN, or a CALL that HALTed), guest-written; a
 * result cap of kind Instance points at one. Its writable memory is one block: the
 * image's writable mappings in PREPARE order, each its whole size.
 */
export const InstanceRecord = defineStruct('nub_instance', 'An Instance made in a run.', {
  /** The PREPARE image_id of its image. */
  image_id: 'u32',
  pc: 'u32',
  memory_va: 'u64',
  memory_len: 'u64',
  gas: 'u64',
  regs: ['u64', NUM_REGS],
});

/** One argument slot after the run (guest-written after the FrameSlots): the endpoint's result caps. */
export const ResultCap = defineStruct('nub_result_cap', 'One argument slot after an INVOKE.', {
  /** Cap union selector, or FrameLayout.EMPTY_KIND. */
  kind: 'u32',
  /** Index of the FrameSlot record the cap came from, FrameLayout.ROOT_ORIGIN | image_id << 8 | ref (a CALLed image's root slot), or FrameLayout.NO_ORIGIN (made in the run). */
  origin: 'u32',
  /** Where the guest holds the stored encoding (until its next INVOKE, for minted caps); an Instance's InstanceRecord. */
  data_va: 'u64',
  len: 'u64',
});

/** One memory mapping of a PREPARE (they follow the Prepare record). */
export const InvokeMapping = defineStruct('nub_invoke_mapping', 'One memory mapping of a PREPARE.', {
  start: 'u32',
  size: 'u32',
  writable: 'u32',
  /** FrameLayout.NO_ARG_SLOT, or the argument slot whose cap the mapping shows (read-only, mapped at each INVOKE; data_hash unused). */
  arg_slot: 'u32',
  /** The Data cap shown at `start`: its first `size` bytes, zeros beyond the cap. */
  data_hash: ['u8', HASH_BYTES],
  /**
   * Out: guest-virtual address of the memory behind the mapping's first `backed_len`
   * bytes, which are contiguous (the rest reads as zero and is not writable). A writable
   * mapping is backed whole, by pages the host fills before each INVOKE; a read-only one
   * by the cap's own stored pages.
   */
  backing_va: 'u64',
  backed_len: 'u64',
});

/** Everything `scripts/gen-abi.mjs` emits into the C header, in order. */
export const GUEST_ABI = {
  overview: MEMORY_MAP,
  constants: [Layout, Ports, Exceptions, BootMagic, DirectoryEntryState, MailboxOp, SelftestFault, MailboxStatus, MailboxPayload, CapPutLayout, InvokeReply, InvokeEngine, FrameLayout],
  structs: [KernelHeader, BootInfo, DirectoryHeader, DirectoryEntry, FaultRecord, Mailbox, CapPut, Prepare, Invoke, InvokeMapping, FrameSlot, Endpoint, InstanceRecord, ResultCap],
};
