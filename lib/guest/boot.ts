/**
 * Host side of the guest kernel's boot: load `guest/build/kernel.bin`, write the GDT,
 * IDT, TSS and page tables into guest memory, and set the registers so the first
 * KVM_RUN starts the kernel directly in 64-bit long mode (see "Entry" in
 * lib/abi/guest-abi.ts). The host builds the IDT (from the kernel's table of exception
 * stubs) because every guest instruction counts at boot, and so that a fault in the
 * kernel's very first instruction is already reported.
 *
 * Boot speed matters (a sandbox boots per use), so what does not depend on the VM is
 * computed once per process: the parsed kernel image and, per memory size, the bytes
 * of the initial page tables.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BOOT_INFO_LAYOUT_VERSION, Exceptions, KERNEL_HEADER_MAGIC, KernelHeader, Layout, Ports } from '../abi/guest-abi.js';
import { NubError } from '../errors.js';
import type { Regs, Segment, Sregs } from '../native/binding.js';
import { zeroRegs } from '../native/vcpu-layout.js';
import { GuestMemory, hex } from './guest-memory.js';
import { BumpTableAllocator, map, type MappingKind } from './vmem.js';

const L = Layout.values;
const PAGE = L.PAGE_SIZE;
const VA_BASE = Number(L.GUEST_VA_BASE);
const KERNEL_VA = VA_BASE + L.KERNEL_GPA;

// GDT selectors (the GDT the host writes at GDT_GPA). The kernel runs at CPL3 (user
// selectors, RPL 3); the CPL0 ones serve the exception gates only.
const CODE_SELECTOR = 0x08;
const DATA_SELECTOR = 0x10;
const TSS_SELECTOR = 0x18; // the 64-bit TSS descriptor takes two slots
const USER_DATA_SELECTOR = 0x28 | 3;
const USER_CODE_SELECTOR = 0x30 | 3;
const GDT_LIMIT = (USER_CODE_SELECTOR & ~3) + 8 - 1;
// The IDT: one gate per exception vector, all on the TSS's IST1 stack.
const EXCEPTION_VECTORS = Exceptions.values.VECTORS;
const IDT_GATE_SIZE = 16;
const IST_EXCEPTIONS = 1;
const GATE_INTERRUPT_PRESENT = 0x8e; // P=1, DPL=0, 64-bit interrupt gate
// The TSS: RSP0, IST1 and the I/O permission bitmap that follows it.
const TSS_SIZE = 104;
const TSS_RSP0_OFFSET = 0x04;
const TSS_IST1_OFFSET = 0x24;
const TSS_IOMAP_BASE_OFFSET = 0x66;
/**
 * The ports ring 3 may `out` to: one bitmap bit per port, 1 = denied (so NUB_PORT_FAULT,
 * which only the CPL0 handler signals, is refused). On kvm_pvm only this bitmap counts,
 * not IOPL, so IOPL stays 0.
 */
const USER_PORTS = [Ports.values.DOORBELL, Ports.values.CONSOLE, Ports.values.HOST_CALL];
const IO_BITMAP_BYTES = Math.floor(Math.max(...Object.values(Ports.values)) / 8) + 1;
/** The bitmap ends with an all-ones byte (the CPU may read one byte past the last port's). */
const TSS_LIMIT = TSS_SIZE + IO_BITMAP_BYTES + 1 - 1;
// Descriptor access bytes and segment types.
const CODE64_DESCRIPTOR = 0x00af_9b00_0000_ffffn; // P, DPL0, code exec/read/accessed, L=1, G=1
const DATA_DESCRIPTOR = 0x00cf_9300_0000_ffffn; // P, DPL0, data read/write/accessed, D/B=1, G=1
const USER_CODE64_DESCRIPTOR = 0x00af_fb00_0000_ffffn; // as CODE64 with DPL3
const USER_DATA_DESCRIPTOR = 0x00cf_f300_0000_ffffn; // as DATA with DPL3
const SEGMENT_TYPE_CODE = 0xb;
const SEGMENT_TYPE_DATA = 0x3;
const SEGMENT_TYPE_TSS_BUSY = 0xb;
const SEGMENT_TYPE_LDT = 0x2;
// Control registers.
const CR0_PE = 1n << 0n, CR0_MP = 1n << 1n, CR0_ET = 1n << 4n, CR0_NE = 1n << 5n, CR0_WP = 1n << 16n, CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n, CR4_OSFXSR = 1n << 9n, CR4_OSXMMEXCPT = 1n << 10n;
const EFER_LME = 1n << 8n, EFER_LMA = 1n << 10n, EFER_NXE = 1n << 11n;
const RFLAGS_RESERVED = 2n; // bit 1 is always set; IF stays clear

/** The parts of a VM the boot writes: its memory and its vCPU's registers. */
export interface BootTarget {
  readonly memory: ArrayBuffer;
  getSregs(): Sregs;
  setSregs(sregs: Sregs): void;
  setRegs(regs: Regs): void;
}

/** A validated kernel image; addresses are guest-physical unless named `Va`. */
export interface KernelImage {
  readonly path: string;
  readonly bytes: Uint8Array;
  readonly entryVa: number;
  /** End of the loaded bytes; .bss starts here. */
  readonly loadEndGpa: number;
  readonly stackGuardGpa: number;
  readonly stackTopVa: number;
  /** The IDT the host writes at IDT_GPA: one gate per exception stub of the kernel. */
  readonly idt: Uint8Array;
  /** [supervisorStartGpa, supervisorEndGpa): the CPL0 exception handlers. */
  readonly supervisorStartGpa: number;
  readonly supervisorEndGpa: number;
  /** Ring-3 text and rodata end here; data and bss follow. */
  readonly readonlyEndGpa: number;
}

/** Where the build puts the kernel: `<package root>/guest/build/kernel.bin` (this file is `<root>/<out>/lib/guest/`). */
export function defaultKernelPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'guest', 'build', 'kernel.bin');
}

/** What to do about a missing or mismatched kernel, for an installed package and for a checkout. */
const REBUILD_HINT = 'reinstall nub (`npm rebuild nub`), or run `npm run build` in a checkout of nub';

const kernelCache = new Map<string, KernelImage>();

/** Reads and validates the kernel once per path. NubError 'KernelMissing' or 'BadKernelImage'. */
export function loadKernelImage(path = defaultKernelPath()): KernelImage {
  let kernel = kernelCache.get(path);
  if (kernel === undefined) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(path));
    } catch (cause) {
      throw new NubError('KernelMissing', `cannot read the guest kernel ${path}; ${REBUILD_HINT}`, { path, cause });
    }
    kernel = parseKernelImage(bytes, path);
    kernelCache.set(path, kernel);
  }
  return kernel;
}

/** Checks the KernelHeader at the start of `bytes` against the layout this host was built with. */
export function parseKernelImage(bytes: Uint8Array, path = '<memory>'): KernelImage {
  const bad = (why: string): NubError => new NubError('BadKernelImage', `${path}: ${why}; ${REBUILD_HINT}`, { path });
  if (bytes.length < KernelHeader.size) throw bad(`${bytes.length} bytes is too short for a kernel header`);
  const mem = new GuestMemory(bytes.slice(0, KernelHeader.size).buffer);
  type AddressField = 'entry_va' | 'load_end_va' | 'stack_guard_va' | 'stack_top_va' | 'exception_stubs_va' | 'supervisor_start_va' | 'supervisor_end_va' | 'readonly_end_va';
  const field = (name: AddressField): number => {
    const value = mem.u64(KernelHeader.offsets[name]);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${name} ${hex(value)} is not a guest address`);
    return Number(value);
  };
  if (mem.u64(KernelHeader.offsets.magic) !== KERNEL_HEADER_MAGIC) throw bad('no kernel header magic');
  const version = mem.u32(KernelHeader.offsets.layout_version);
  if (version !== BOOT_INFO_LAYOUT_VERSION) throw bad(`built for layout version ${version}, the host speaks ${BOOT_INFO_LAYOUT_VERSION}`);
  const [entryVa, loadEndVa, guardVa, stackTopVa] = [field('entry_va'), field('load_end_va'), field('stack_guard_va'), field('stack_top_va')];
  if (loadEndVa !== KERNEL_VA + bytes.length) throw bad(`header says the image ends at ${hex(loadEndVa)}, the file ends at ${hex(KERNEL_VA + bytes.length)}`);
  if (entryVa < KERNEL_VA + KernelHeader.size || entryVa >= loadEndVa) throw bad(`entry ${hex(entryVa)} is outside the image`);
  if (guardVa % PAGE !== 0 || guardVa < loadEndVa || stackTopVa !== guardVa + PAGE + L.KERNEL_STACK_SIZE) {
    throw bad(`stack guard ${hex(guardVa)} / top ${hex(stackTopVa)} do not follow the image`);
  }
  const [supervisorStartVa, supervisorEndVa, readonlyEndVa] = [field('supervisor_start_va'), field('supervisor_end_va'), field('readonly_end_va')];
  const pageAligned = [supervisorStartVa, supervisorEndVa, readonlyEndVa].every((va) => va % PAGE === 0);
  if (!pageAligned || supervisorStartVa < KERNEL_VA + KernelHeader.size || supervisorEndVa < supervisorStartVa ||
      readonlyEndVa < supervisorEndVa || readonlyEndVa > guardVa || entryVa < supervisorEndVa || entryVa >= readonlyEndVa) {
    throw bad('its supervisor / read-only sections are not page-aligned, in order, around the entry point');
  }
  const stubsVa = field('exception_stubs_va');
  if (stubsVa % 8 !== 0 || stubsVa < KERNEL_VA + KernelHeader.size || stubsVa + 8 * EXCEPTION_VECTORS > loadEndVa) {
    throw bad(`exception stub table ${hex(stubsVa)} is outside the image`);
  }
  const stubs = new DataView(bytes.buffer, bytes.byteOffset + (stubsVa - KERNEL_VA), 8 * EXCEPTION_VECTORS);
  const idt = new DataView(new ArrayBuffer(IDT_GATE_SIZE * EXCEPTION_VECTORS));
  for (let v = 0; v < EXCEPTION_VECTORS; v++) {
    const stub = stubs.getBigUint64(8 * v, true);
    if (stub < BigInt(supervisorStartVa) || stub >= BigInt(supervisorEndVa)) throw bad(`the exception stub of vector ${v} (${hex(stub)}) is outside the supervisor section`);
    writeInterruptGate(idt, v * IDT_GATE_SIZE, stub);
  }
  return {
    path, bytes, entryVa, loadEndGpa: loadEndVa - VA_BASE, stackGuardGpa: guardVa - VA_BASE, stackTopVa, idt: new Uint8Array(idt.buffer),
    supervisorStartGpa: supervisorStartVa - VA_BASE, supervisorEndGpa: supervisorEndVa - VA_BASE, readonlyEndGpa: readonlyEndVa - VA_BASE,
  };
}

/** A 64-bit interrupt gate (present, DPL 0, IF cleared on entry) to `target`, on IST1 (the exception stack). */
function writeInterruptGate(idt: DataView, at: number, target: bigint): void {
  idt.setUint16(at, Number(target & 0xffffn), true);
  idt.setUint16(at + 2, CODE_SELECTOR, true);
  idt.setUint8(at + 4, IST_EXCEPTIONS);
  idt.setUint8(at + 5, GATE_INTERRUPT_PRESENT);
  idt.setUint16(at + 6, Number((target >> 16n) & 0xffffn), true);
  idt.setUint32(at + 8, Number(target >> 32n), true);
  idt.setUint32(at + 12, 0, true);
}

/** Smallest memory the kernel boots in: its image, stack, room for its heap, and the code arena. */
export function minMemorySize(kernel: KernelImage): number {
  return Math.max(L.MIN_MEMORY_SIZE, kernel.stackTopVa - VA_BASE + L.MIN_MEMORY_SIZE / 4 + L.CODE_ARENA_SIZE);
}

/** Writes the GDT (null, code, data, TSS, user data, user code) and the TSS: exception stack and I/O bitmap. */
function writeGdtAndTss(mem: GuestMemory): void {
  const tssVa = BigInt(VA_BASE + L.TSS_GPA);
  const tssLow =
    BigInt(TSS_LIMIT) | ((tssVa & 0xff_ffffn) << 16n) | (BigInt(SEGMENT_TYPE_TSS_BUSY | 0x80) << 40n) | (((tssVa >> 24n) & 0xffn) << 56n);
  mem.writeU64(L.GDT_GPA + CODE_SELECTOR, CODE64_DESCRIPTOR);
  mem.writeU64(L.GDT_GPA + DATA_SELECTOR, DATA_DESCRIPTOR);
  mem.writeU64(L.GDT_GPA + TSS_SELECTOR, tssLow);
  mem.writeU64(L.GDT_GPA + TSS_SELECTOR + 8, tssVa >> 32n);
  mem.writeU64(L.GDT_GPA + (USER_DATA_SELECTOR & ~3), USER_DATA_DESCRIPTOR);
  mem.writeU64(L.GDT_GPA + (USER_CODE_SELECTOR & ~3), USER_CODE64_DESCRIPTOR);
  // Every vector has its IST1 gate; RSP0 is set too, so no entry from ring 3 can use a stale stack.
  mem.writeU64(L.TSS_GPA + TSS_RSP0_OFFSET, VA_BASE + L.EXCEPTION_STACK_END_GPA);
  mem.writeU64(L.TSS_GPA + TSS_IST1_OFFSET, VA_BASE + L.EXCEPTION_STACK_END_GPA);
  mem.writeU16(L.TSS_GPA + TSS_IOMAP_BASE_OFFSET, TSS_SIZE);
  const bitmap = new Uint8Array(IO_BITMAP_BYTES + 1).fill(0xff);
  for (const port of USER_PORTS) bitmap[port >> 3]! &= ~(1 << (port & 7));
  mem.writeBytes(L.TSS_GPA + TSS_SIZE, bitmap);
}

const RO: MappingKind = { type: 'basic', readable: true, writable: false, executable: false };
const RX: MappingKind = { type: 'basic', readable: true, writable: false, executable: true };
const RW: MappingKind = { type: 'basic', readable: true, writable: true, executable: false };

/**
 * The page tables, built into a scratch buffer that covers the page-table region: the
 * linear map of all guest memory at GUEST_VA_BASE with the ring map of
 * lib/abi/guest-abi.ts (supervisor-only system pages and exception handlers; ring 3's
 * read-only text, writable data, stack and heap), plus the code arena's executable
 * alias. The null page and the stack guard page stay unmapped. Returns the used bytes.
 */
function buildPageTables(kernel: KernelImage, memorySize: number): Uint8Array {
  const scratch = new GuestMemory(new ArrayBuffer(L.PAGE_TABLES_END_GPA));
  const tables = new BumpTableAllocator(scratch, L.PAGE_TABLES_GPA, L.PAGE_TABLES_END_GPA);
  const root = tables.allocTable();
  const arena = memorySize - L.CODE_ARENA_SIZE;
  const USER = true, SUPERVISOR = false;
  const ranges: [number, number, MappingKind, boolean][] = [
    [PAGE, L.BOOT_INFO_GPA, RW, SUPERVISOR], // GDT, IDT, TSS
    [L.BOOT_INFO_GPA, L.FAULT_GPA, RW, USER],
    [L.FAULT_GPA, L.MAILBOX_GPA, RW, SUPERVISOR],
    [L.MAILBOX_GPA, L.HOST_FUNCTIONS_GPA, RW, USER],
    [L.HOST_FUNCTIONS_GPA, L.EXCEPTION_STACK_GPA, RO, USER], // host-written
    [L.EXCEPTION_STACK_GPA, L.KERNEL_GPA, RW, SUPERVISOR], // and the page tables
    [L.KERNEL_GPA, kernel.supervisorStartGpa, RO, SUPERVISOR], // the kernel header
    [kernel.supervisorStartGpa, kernel.supervisorEndGpa, RX, SUPERVISOR],
    [kernel.supervisorEndGpa, kernel.readonlyEndGpa, RX, USER],
    [kernel.readonlyEndGpa, kernel.stackGuardGpa, RW, USER],
    [kernel.stackGuardGpa + PAGE, memorySize, RW, USER],
  ];
  for (const [start, end, kind, userAccessible] of ranges) {
    map(tables, root, { physBase: start, virtBase: VA_BASE + start, len: end - start, kind, userAccessible });
  }
  map(tables, root, { physBase: arena, virtBase: Number(L.CODE_ALIAS_VA), len: L.CODE_ARENA_SIZE, kind: RX, userAccessible: USER });
  return scratch.u8s.slice(L.PAGE_TABLES_GPA, L.PAGE_TABLES_GPA + tables.used);
}

const pageTableCache = new Map<string, Uint8Array>();

function pageTablesFor(kernel: KernelImage, memorySize: number): Uint8Array {
  const key = `${kernel.path}:${memorySize}`;
  let tables = pageTableCache.get(key);
  if (tables === undefined) {
    tables = buildPageTables(kernel, memorySize);
    pageTableCache.set(key, tables);
  }
  return tables;
}

function segment(selector: number, type: number, extra: Partial<Segment> = {}): Segment {
  return { base: 0n, limit: 0xffff_ffff, selector, type, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 1, avl: 0, unusable: 0, ...extra };
}

/**
 * Prepares a fresh (zero-filled) VM to run the kernel: image, GDT, TSS, page tables,
 * special and general registers. The first run then executes the kernel's boot.
 */
export function prepareBoot(vm: BootTarget, kernel: KernelImage): void {
  const mem = new GuestMemory(vm.memory);
  if (mem.size < minMemorySize(kernel)) {
    throw new NubError('BadMemorySize', `guest memory of ${hex(mem.size)} bytes is below the ${hex(minMemorySize(kernel))} the kernel needs`);
  }
  mem.writeBytes(L.KERNEL_GPA, kernel.bytes);
  writeGdtAndTss(mem);
  mem.writeBytes(L.IDT_GPA, kernel.idt);
  mem.writeBytes(L.PAGE_TABLES_GPA, pageTablesFor(kernel, mem.size));

  // The kernel starts (and stays) at CPL3: CS and SS carry DPL 3.
  const data = segment(USER_DATA_SELECTOR, SEGMENT_TYPE_DATA, { db: 1, dpl: 3 });
  vm.setSregs({
    ...vm.getSregs(),
    cs: segment(USER_CODE_SELECTOR, SEGMENT_TYPE_CODE, { l: 1, dpl: 3 }),
    ds: data, es: data, fs: data, gs: data, ss: data,
    tr: segment(TSS_SELECTOR, SEGMENT_TYPE_TSS_BUSY, { base: BigInt(VA_BASE + L.TSS_GPA), limit: TSS_LIMIT, s: 0, g: 0 }),
    ldt: segment(0, SEGMENT_TYPE_LDT, { limit: 0, s: 0, g: 0, present: 0, unusable: 1 }),
    gdt: { base: BigInt(VA_BASE + L.GDT_GPA), limit: GDT_LIMIT },
    idt: { base: BigInt(VA_BASE + L.IDT_GPA), limit: kernel.idt.length - 1 },
    cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
    cr3: BigInt(L.PAGE_TABLES_GPA), // the root is the first table allocated
    cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT,
    efer: EFER_LME | EFER_LMA | EFER_NXE,
  });
  vm.setRegs({
    ...zeroRegs(),
    rdi: BigInt(mem.size),
    rsp: BigInt(kernel.stackTopVa),
    rip: BigInt(kernel.entryVa),
    rflags: RFLAGS_RESERVED,
  });
}
