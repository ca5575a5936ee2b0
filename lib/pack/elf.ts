/**
 * A reader for the little ELF64 files `nub pack` consumes: RISC-V, little-endian,
 * an executable or object with section headers and (optionally) a symbol table.
 * Every offset and size read from the file is checked against the file before
 * use; anything malformed is a `Pack.BadElf` NubError.
 */
import { NubError } from '../errors.js';

/** Section header type numbers we care about (ELF gABI). */
export const SHT = { PROGBITS: 1, SYMTAB: 2, STRTAB: 3, NOBITS: 8 } as const;
/** Section flag bits (ELF gABI). */
export const SHF = { WRITE: 0x1, ALLOC: 0x2, EXECINSTR: 0x4 } as const;
/** Symbol types (low nibble of st_info). */
export const STT = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3, FILE: 4 } as const;

const EM_RISCV = 243;
const ELF_HEADER_SIZE = 64;
const SECTION_HEADER_SIZE = 64;
const SYMBOL_SIZE = 24;

export interface ElfSection {
  name: string;
  type: number;
  flags: number;
  addr: bigint;
  size: bigint;
  /** The file bytes of the section; empty for NOBITS (e.g. .bss). */
  bytes: Uint8Array;
}

export interface ElfSymbol {
  name: string;
  value: bigint;
  size: bigint;
  /** One of `STT`. */
  type: number;
  /** Index of the section the symbol is defined in (0 = undefined). */
  sectionIndex: number;
}

export interface ElfFile {
  /** 2 = executable, 1 = relocatable object, ... */
  fileType: number;
  sections: ElfSection[];
  symbols: ElfSymbol[];
}

function bad(message: string, details?: Record<string, unknown>): NubError {
  return new NubError('Pack.BadElf', message, details ? { details } : {});
}

/** Parses `bytes` as a little-endian ELF64 RISC-V file. */
export function readElf(bytes: Uint8Array): ElfFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < ELF_HEADER_SIZE) throw bad(`file too short for an ELF header (${bytes.length} bytes)`);
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) throw bad('not an ELF file (bad magic)');
  if (bytes[4] !== 2) throw bad('not a 64-bit ELF file');
  if (bytes[5] !== 1) throw bad('not a little-endian ELF file');
  const machine = view.getUint16(18, true);
  if (machine !== EM_RISCV) throw bad(`not a RISC-V ELF file (e_machine ${machine})`);

  const fileType = view.getUint16(16, true);
  const shoff = view.getBigUint64(40, true);
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  const shstrndx = view.getUint16(62, true);
  if (shnum === 0) throw bad('the file has no section headers');
  if (shentsize !== SECTION_HEADER_SIZE) throw bad(`unexpected section header size ${shentsize}`);
  const tableOffset = checkedRange(bytes, shoff, BigInt(shnum * SECTION_HEADER_SIZE), 'section header table');

  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = tableOffset + i * SECTION_HEADER_SIZE;
    const type = view.getUint32(at + 4, true);
    const offset = view.getBigUint64(at + 24, true);
    const size = view.getBigUint64(at + 32, true);
    const bytesOf = type === SHT.NOBITS || type === 0 ? new Uint8Array(0) : fileSlice(bytes, offset, size, `section ${i}`);
    return {
      nameOffset: view.getUint32(at, true),
      type,
      flags: Number(view.getBigUint64(at + 8, true) & 0xffffffffn),
      addr: view.getBigUint64(at + 16, true),
      size,
      link: view.getUint32(at + 40, true),
      bytes: bytesOf,
    };
  });
  if (shstrndx >= shnum) throw bad(`section name table index ${shstrndx} out of range`);
  const names = raw[shstrndx]!.bytes;
  const sections: ElfSection[] = raw.map((s) => ({
    name: cString(names, s.nameOffset, 'section name'),
    type: s.type,
    flags: s.flags,
    addr: s.addr,
    size: s.size,
    bytes: s.bytes,
  }));

  const symbols: ElfSymbol[] = [];
  const symtab = raw.find((s) => s.type === SHT.SYMTAB);
  if (symtab) {
    if (symtab.link >= shnum) throw bad(`symbol string table index ${symtab.link} out of range`);
    const strings = raw[symtab.link]!.bytes;
    const table = symtab.bytes;
    const symView = new DataView(table.buffer, table.byteOffset, table.byteLength);
    for (let at = 0; at + SYMBOL_SIZE <= table.length; at += SYMBOL_SIZE) {
      symbols.push({
        name: cString(strings, symView.getUint32(at, true), 'symbol name'),
        type: table[at + 4]! & 0xf,
        sectionIndex: symView.getUint16(at + 6, true),
        value: symView.getBigUint64(at + 8, true),
        size: symView.getBigUint64(at + 16, true),
      });
    }
  }
  return { fileType, sections, symbols };
}

/** Checks that [offset, offset+size) lies in the file and returns offset as a number. */
function checkedRange(bytes: Uint8Array, offset: bigint, size: bigint, what: string): number {
  if (offset + size > BigInt(bytes.length)) {
    throw bad(`${what} at file offset ${offset} (+${size} bytes) runs past the end of the file (${bytes.length} bytes)`);
  }
  return Number(offset);
}

function fileSlice(bytes: Uint8Array, offset: bigint, size: bigint, what: string): Uint8Array {
  const start = checkedRange(bytes, offset, size, what);
  return bytes.subarray(start, start + Number(size));
}

function cString(table: Uint8Array, offset: number, what: string): string {
  if (offset >= table.length) {
    if (offset === 0) return '';
    throw bad(`${what} offset ${offset} is outside its string table`);
  }
  const end = table.indexOf(0, offset);
  if (end < 0) throw bad(`${what} at offset ${offset} is not NUL-terminated`);
  return new TextDecoder().decode(table.subarray(offset, end));
}
