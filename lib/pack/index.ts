/**
 * `nub pack`: turns a RISC-V ELF executable built with the SDK
 * (examples/sdk/) into a canonical image. The layout it expects and produces
 * (examples/sdk/README.md):
 *
 *   ELF .text at CODE_BASE         → the image code (ELF addresses are PVM pcs)
 *   read-only sections ≥ DATA_BASE → pinned slot [1], mapped read-only
 *   writable sections (data, bss)  → initial slot [2], mapped read-write
 *   a zeroed stack                 → initial slot [3], mapped just below STACK_TOP
 *   .nub.endpoints records         → endpoints, φ1 (sp) = STACK_TOP
 *
 * It validates first and builds last: every instruction is decoded, and one
 * that is not PVM2 or names a register the machine lacks is refused with the
 * function and address it is in; so is a direct call (`auipc`+`jalr`) or an
 * endpoint entry that is not a block start, since running it would PANIC.
 */
import { NubError } from '../errors.js';
import { CODE_BASE, DATA_BASE, PAGE_SIZE } from '../caps/constants.js';
import { ImageBuilder } from '../image/index.js';
import { ADDRESS_SPACE, decodeAt, disassemble, type Instruction } from '../machine/index.js';
import { readElf, SHF, SHT, STT, type ElfFile, type ElfSection } from './elf.js';
import { ENDPOINT_SECTION, readEndpointRecords } from './endpoints.js';

/** Slot keys of the simple ABI used by packed programs (slot 0 is left for the argument cnode). */
export const RODATA_SLOT = 1;
export const DATA_SLOT = 2;
export const STACK_SLOT = 3;
/** The stack grows down from here; φ1 starts here. 2 GiB: far above the data, and every stack address is below 2^31. */
export const STACK_TOP = 0x8000_0000;
export const DEFAULT_STACK_SIZE = 64 * 1024;

const ADDRESS_LIMIT = BigInt(ADDRESS_SPACE);
const ELF_EXECUTABLE = 2;
/** Illegal instructions listed in a refusal's message; the rest are in `details`. */
const MESSAGE_LISTS_AT_MOST = 5;

export interface PackOptions {
  /** Bytes of stack, rounded up to whole pages. Default 64 KiB. */
  stackSize?: number;
  /** Pinned Image slots: root slot [slot] names the image with this content hash (DERIVE_SPAWN makes Instances of it). */
  images?: readonly { slot: number; contentHash: Uint8Array }[];
}

/** A loaded region: `bytes` at `start`, zero up to `size` (whole pages). */
export interface Region {
  start: number;
  size: number;
  bytes: Uint8Array;
}

export interface PackedEndpoint {
  key: number;
  /** Byte offset into the code (the image's `entry_pc`). */
  entryPc: number;
  nargs: number;
  /** Argument caps (the endpoint's arg_cnode_size). */
  ncaps: number;
  /** The function the stub at the entry calls, when the symbol table names it. */
  name?: string;
}

export interface PackResult {
  /** The encoded image (`image.ssz`). */
  image: Uint8Array;
  code: Uint8Array;
  endpoints: PackedEndpoint[];
  rodata?: Region;
  data?: Region;
  stack: Region;
  /** Things that are legal but may fail at run time (a function entry that is not a block start). */
  warnings: string[];
}

/** Packs the ELF file `elfBytes` into an image; see the module comment for the layout. */
export function packElf(elfBytes: Uint8Array, options: PackOptions = {}): PackResult {
  const elf = readElf(elfBytes);
  if (elf.fileType !== ELF_EXECUTABLE) {
    throw new NubError('Pack.BadElf', `not a linked executable (ELF type ${elf.fileType}); link with examples/sdk/pvm.ld first`);
  }
  const loaded = elf.sections.filter((s) => (s.flags & SHF.ALLOC) !== 0 && s.size > 0n);
  const code = joinCode(loaded.filter((s) => (s.flags & SHF.EXECINSTR) !== 0));
  const rodata = dataRegion(loaded.filter((s) => (s.flags & (SHF.EXECINSTR | SHF.WRITE)) === 0), 'read-only data');
  const data = dataRegion(loaded.filter((s) => (s.flags & SHF.EXECINSTR) === 0 && (s.flags & SHF.WRITE) !== 0), 'writable data');
  const requestedStack = options.stackSize ?? DEFAULT_STACK_SIZE;
  if (!Number.isSafeInteger(requestedStack) || requestedStack <= 0 || requestedStack > STACK_TOP - DATA_BASE) {
    throw new NubError('Pack.Layout', `stack size ${requestedStack} is not a whole number of bytes between 1 and ${STACK_TOP - DATA_BASE}`);
  }
  const stackSize = roundUpToPage(requestedStack);
  const stack: Region = { start: STACK_TOP - stackSize, size: stackSize, bytes: new Uint8Array(0) };
  checkDisjoint([
    ['read-only data', rodata],
    ['writable data', data],
    ['stack', stack],
  ]);

  const facts = checkCode(code, elf);
  checkPairedJumps(elf, facts);
  const endpoints = readEndpoints(elf, code, facts.blockStarts);
  const warnings = functionEntryWarnings(elf, code, facts.blockStarts);

  const builder = new ImageBuilder().setCode(code);
  for (const ep of endpoints) {
    builder.addEndpoint([ep.key], { entryPc: ep.entryPc, argRegisters: ep.nargs, argCnodeSize: ep.ncaps }); // φ1 = STACK_TOP, from addStack
  }
  if (rodata) {
    builder.addPinnedData(RODATA_SLOT, rodata.bytes, rodata.size).addMapping(rodata.start, rodata.size, RODATA_SLOT);
  }
  if (data) {
    builder.addInitialData(DATA_SLOT, data.bytes, data.size).addMapping(data.start, data.size, DATA_SLOT);
  }
  builder.addStack(STACK_SLOT, STACK_TOP, stack.size);
  for (const { slot, contentHash } of options.images ?? []) builder.addPinnedImage([slot], contentHash);
  return { image: builder.encode(), code, endpoints, ...(rodata && { rodata }), ...(data && { data }), stack, warnings };
}

function roundUpToPage(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

function byAddress(a: ElfSection, b: ElfSection): number {
  return a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0;
}

/** The executable sections, which must be one gap-free run starting at CODE_BASE. */
function joinCode(sections: ElfSection[]): Uint8Array {
  if (sections.length === 0) throw new NubError('Pack.Layout', 'the ELF file has no code');
  sections.sort(byAddress);
  let next = BigInt(CODE_BASE);
  for (const s of sections) {
    if (s.addr !== next) {
      throw new NubError('Pack.Layout', `code section ${s.name} is at ${hex(s.addr)}, expected ${hex(next)}: code must be one run starting at CODE_BASE ${hex(CODE_BASE)} (link with examples/sdk/pvm.ld)`);
    }
    if (s.type === SHT.NOBITS) throw new NubError('Pack.Layout', `code section ${s.name} has no contents`);
    next += s.size;
  }
  if (next > BigInt(DATA_BASE)) throw new NubError('Pack.Layout', `code ends at ${hex(next)}, past DATA_BASE ${hex(DATA_BASE)}`);
  return Uint8Array.from(Buffer.concat(sections.map((s) => s.bytes)));
}

/** The pages covering `sections`, with their file contents at the right offsets (NOBITS stays zero). */
function dataRegion(sections: ElfSection[], what: string): Region | undefined {
  if (sections.length === 0) return undefined;
  sections.sort(byAddress);
  const first = sections[0]!;
  const last = sections.reduce((a, s) => (s.addr + s.size > a.addr + a.size ? s : a));
  const end = last.addr + last.size;
  if (first.addr < BigInt(DATA_BASE) || end > ADDRESS_LIMIT) {
    throw new NubError('Pack.Layout', `${what} (${first.name} at ${hex(first.addr)} .. ${last.name} ending ${hex(end)}) is outside [DATA_BASE ${hex(DATA_BASE)}, 4 GiB)`);
  }
  const start = Number(first.addr) - (Number(first.addr) % PAGE_SIZE);
  const size = roundUpToPage(Number(end) - start);
  const withBytes = sections.filter((s) => s.type !== SHT.NOBITS);
  const bytesEnd = withBytes.reduce((e, s) => Math.max(e, Number(s.addr + s.size) - start), 0);
  const bytes = new Uint8Array(bytesEnd);
  for (const s of withBytes) bytes.set(s.bytes, Number(s.addr) - start);
  return { start, size, bytes };
}

function checkDisjoint(regions: Array<[string, Region | undefined]>): void {
  const present = regions.filter((r): r is [string, Region] => r[1] !== undefined);
  for (let i = 0; i < present.length; i++) {
    for (let j = i + 1; j < present.length; j++) {
      const [an, a] = present[i]!;
      const [bn, b] = present[j]!;
      if (a.start < b.start + b.size && b.start < a.start + a.size) {
        throw new NubError('Pack.Layout', `${an} [${hex(a.start)}, ${hex(a.start + a.size)}) and ${bn} [${hex(b.start)}, ${hex(b.start + b.size)}) share pages`);
      }
    }
  }
}

/** Where a code offset is, for messages: `sort+0x1a (0x40003e)`. */
function describeAddress(elf: ElfFile, pc: number): string {
  let best: { name: string; value: bigint } | undefined;
  for (const sym of elf.symbols) {
    if (sym.type !== STT.FUNC || sym.name === '') continue;
    if (sym.value <= BigInt(pc) && (best === undefined || sym.value > best.value)) best = sym;
  }
  const where = best ? `${best.name}+${hex(BigInt(pc) - best.value)}` : 'unknown function';
  return `${where} (${hex(pc)})`;
}

/** What decoding the whole code tells the packer. */
interface CodeFacts {
  blockStarts: Set<number>;
  /** `auipc r; jalr _, off(r)` pairs (how GCC calls without relaxation): where each jalr goes. */
  pairedJumps: Array<{ offset: number; target: number }>;
}

/**
 * Decodes the whole code, refusing it (`Pack.IllegalInstruction`) if any
 * instruction is not PVM2 or names x3, x4 or x16..x31.
 */
function checkCode(code: Uint8Array, elf: ElfFile): CodeFacts {
  const facts: CodeFacts = { blockStarts: new Set<number>([0]), pairedJumps: [] };
  const illegal: Array<{ address: string; function: string; instruction: string; reason: string }> = [];
  let previous: Instruction | undefined;
  for (let offset = 0; offset < code.length; ) {
    const inst = decodeAt(code, offset);
    if (inst.illegal) {
      const pc = CODE_BASE + offset;
      illegal.push({
        address: hex(pc),
        function: describeAddress(elf, pc),
        instruction: disassemble(inst),
        reason: inst.illegal === 'register' ? 'names a register PVM2 does not have (x3, x4, x16..x31)' : 'is not a PVM2 instruction',
      });
    } else if (inst.op === 'jalr' && previous?.op === 'auipc' && previous.rd !== 0 && previous.rd === inst.rs1) {
      facts.pairedJumps.push({ offset, target: previous.offset + previous.imm + inst.imm });
    }
    offset += inst.length;
    if (inst.isTerminator) facts.blockStarts.add(offset);
    previous = inst;
  }
  if (illegal.length > 0) {
    const lines = illegal.slice(0, MESSAGE_LISTS_AT_MOST).map((i) => `  ${i.function}: '${i.instruction}' ${i.reason}`);
    if (illegal.length > MESSAGE_LISTS_AT_MOST) lines.push(`  ... and ${illegal.length - MESSAGE_LISTS_AT_MOST} more`);
    lines.push('(compile with the flags in examples/sdk/toolchain.json; a call may pass at most six integer arguments)');
    throw new NubError('Pack.IllegalInstruction', `${illegal.length} instruction(s) cannot run on PVM2:\n${lines.join('\n')}`, {
      details: { illegal },
    });
  }
  return facts;
}

/** A call or tail call whose target is not a block start would PANIC: refuse it now (`Pack.JumpNotBlockStart`). */
function checkPairedJumps(elf: ElfFile, facts: CodeFacts): void {
  for (const { offset, target } of facts.pairedJumps) {
    if (facts.blockStarts.has(target)) continue;
    const from = describeAddress(elf, CODE_BASE + offset);
    throw new NubError('Pack.JumpNotBlockStart', `the jalr at ${from} jumps to ${describeAddress(elf, CODE_BASE + target)}, which is not a block start (it would PANIC)`);
  }
}

function readEndpoints(elf: ElfFile, code: Uint8Array, blockStarts: Set<number>): PackedEndpoint[] {
  const section = elf.sections.find((s) => s.name === ENDPOINT_SECTION);
  const records = section ? readEndpointRecords(section.bytes) : [];
  if (records.length === 0) {
    throw new NubError('Pack.NoEndpoints', `the ELF file defines no endpoints (no ${ENDPOINT_SECTION} records; use NUB_ENDPOINT from examples/sdk/nub.h)`);
  }
  return records.map((r) => {
    const entryPc = Number(r.entry) - CODE_BASE;
    const path = `endpoint ${r.key}`;
    if (r.entry < BigInt(CODE_BASE) || entryPc >= code.length) {
      throw new NubError('Pack.BadEndpoint', `endpoint ${r.key} enters at ${hex(r.entry)}, outside the code`, { path });
    }
    if (!blockStarts.has(entryPc)) {
      throw new NubError('Pack.EntryNotBlockStart', `endpoint ${r.key} enters at ${describeAddress(elf, Number(r.entry))}, which is not a block start (it must be offset 0 or follow a terminator)`, { path });
    }
    const name = calleeName(elf, code, entryPc);
    return { key: r.key, entryPc, nargs: r.nargs, ncaps: r.ncaps, ...(name !== undefined && { name }) };
  });
}

/** The function an entry stub's first instruction (`jal ra, fn`) calls, if that is what it is. */
function calleeName(elf: ElfFile, code: Uint8Array, entryPc: number): string | undefined {
  const inst = decodeAt(code, entryPc);
  if (inst.op !== 'jal') return undefined;
  const target = BigInt(CODE_BASE + entryPc) + BigInt(inst.imm);
  return elf.symbols.find((s) => s.type === STT.FUNC && s.value === target)?.name;
}

/**
 * A function reached through a pointer must start a block, or the `jalr` into it
 * panics. We cannot tell which functions are, so report every one that does not.
 */
function functionEntryWarnings(elf: ElfFile, code: Uint8Array, blockStarts: Set<number>): string[] {
  const warnings: string[] = [];
  for (const sym of elf.symbols) {
    if (sym.type !== STT.FUNC) continue;
    const offset = Number(sym.value) - CODE_BASE;
    if (offset < 0 || offset >= code.length || blockStarts.has(offset)) continue;
    warnings.push(`function ${sym.name} at ${hex(sym.value)} is not a block start: calling it through a pointer would panic`);
  }
  return warnings;
}
