/**
 * The PVM2 instruction set as one table: for each mnemonic (of the expanded,
 * 32-bit form), its operand form, its gas class, the operation the reference
 * interpreter executes and the handler the C engine (interpreter and recompiler)
 * executes. The decoder, the disassembler, the pre-decoder, the docs' gas table and,
 * through scripts/gen-engine-tables.mjs, the C decoder all read this table.
 */
import type { GasClass } from './abi.js';

/**
 * Operand forms. `reg`: rd, rs1, rs2. `imm`: rd, rs1, imm. `upper`: rd, imm (lui,
 * auipc). `unary`: rd, rs1. `load`: rd, imm(rs1). `store`: rs2, imm(rs1). `branch`:
 * rs1, rs2, pc-relative imm. `jal`: rd, pc-relative imm. `jalr`: rd, imm(rs1).
 * `none`: no operands. `marker`: a custom-0 instruction without operands.
 * `ecalli`: imm only. `illegal`: not PVM2.
 */
export type Form = 'reg' | 'imm' | 'upper' | 'unary' | 'load' | 'store' | 'branch' | 'jal' | 'jalr' | 'none' | 'marker' | 'ecalli' | 'illegal';

/** Forms that end a basic block (SPEC section 5: control flow, custom-0, illegal). */
export const TERMINATOR_FORMS: ReadonlySet<Form> = new Set<Form>(['branch', 'jal', 'jalr', 'marker', 'ecalli', 'illegal']);

/** Which register fields each form reads or writes: only those are checked for legality. */
export const FORM_REGISTERS: Record<Form, { rd: boolean; rs1: boolean; rs2: boolean }> = {
  reg: { rd: true, rs1: true, rs2: true },
  imm: { rd: true, rs1: true, rs2: false },
  upper: { rd: true, rs1: false, rs2: false },
  unary: { rd: true, rs1: true, rs2: false },
  load: { rd: true, rs1: true, rs2: false },
  store: { rd: false, rs1: true, rs2: true },
  branch: { rd: false, rs1: true, rs2: true },
  jal: { rd: true, rs1: false, rs2: false },
  jalr: { rd: true, rs1: true, rs2: false },
  none: { rd: false, rs1: false, rs2: false },
  marker: { rd: false, rs1: false, rs2: false },
  ecalli: { rd: false, rs1: false, rs2: false },
  illegal: { rd: false, rs1: false, rs2: false },
};

/**
 * What the interpreter executes. An immediate operand is pre-decoded into a
 * constant register, so `addi` runs as ADD, `slli` as SLL, `lui` as ADD to x0.
 */
export const enum Op {
  /** Not an instruction boundary; never executed (jump targets are checked). */
  NONE = 0,
  ILLEGAL, END,
  ADD, SUB, SLL, SLT, SLTU, XOR, SRL, SRA, OR, AND,
  ADDW, SUBW, SLLW, SRLW, SRAW,
  MUL, MULH, MULHSU, MULHU, DIV, DIVU, REM, REMU,
  MULW, DIVW, DIVUW, REMW, REMUW,
  ANDN, ORN, XNOR, CLZ, CTZ, CPOP, CLZW, CTZW, CPOPW, MIN, MINU, MAX, MAXU,
  SEXTB, SEXTH, ZEXTH, ROL, ROR, ROLW, RORW, ORCB, REV8,
  ADDUW, SH1ADD, SH2ADD, SH3ADD, SH1ADDUW, SH2ADDUW, SH3ADDUW, SLLUW,
  BCLR, BSET, BINV, BEXT, CZEROEQZ, CZERONEZ,
  NOP,
  LB, LH, LW, LD, LBU, LHU, LWU, SB, SH, SW, SD,
  BEQ, BNE, BLT, BGE, BLTU, BGEU,
  JAL, JALR,
  TRAP, ECALLJAR, ECALLI, FALLTHROUGH,
}

/**
 * Where the 32-bit encoding names a mnemonic: the bits `mask` selects (the major
 * opcode, funct3 and whichever of funct7, funct6 or the 12-bit immediate the
 * instruction fixes) equal `match`. Compressed forms are expansions into these.
 */
export interface Encoding {
  readonly mask: number;
  readonly match: number;
}
const OPCODE = 0x7f, FUNCT3 = 0x7000;
const encoding = (mask: number, match: number): Encoding => ({ mask: mask >>> 0, match: match >>> 0 });
const opc = (opcode: number) => encoding(OPCODE, opcode);
const f3 = (opcode: number, funct3: number) => encoding(OPCODE | FUNCT3, (funct3 << 12) | opcode);
/** funct7 in 31:25 (R-type; the OP-IMM-32 shifts, whose 5-bit amount is the rs2 field). */
const r = (opcode: number, funct3: number, funct7: number) => encoding(0xfe000000 | OPCODE | FUNCT3, (funct7 << 25) | (funct3 << 12) | opcode);
/** funct6 in 31:26 (shifts by a 6-bit amount and the Zbs immediates). */
const f6 = (opcode: number, funct3: number, funct6: number) => encoding(0xfc000000 | OPCODE | FUNCT3, (funct6 << 26) | (funct3 << 12) | opcode);
/** The whole 12-bit immediate (the Zbb unary forms). */
const f12 = (opcode: number, funct3: number, imm: number) => encoding(0xfff00000 | OPCODE | FUNCT3, (imm << 20) | (funct3 << 12) | opcode);

export interface OpInfo {
  readonly enc: Encoding;
  readonly form: Form;
  readonly gas: GasClass;
  readonly op: Op;
  /** The C engine's handler (PVM_HANDLERS in guest/engine/internal.h) when it is not the mnemonic's own name. */
  readonly engineHandler?: string;
}

const info = (enc: Encoding, form: Form, gas: GasClass, op: Op, engineHandler?: string): OpInfo => ({ enc, form, gas, op, ...(engineHandler && { engineHandler }) });

/** The C engine's handler for a mnemonic: its name in capitals without dots (`add.uw` -> ADDUW) unless the table says otherwise. */
export function engineHandlerOf(mnemonic: string, spec: OpInfo): string {
  return spec.engineHandler ?? mnemonic.replace(/\./g, '').toUpperCase();
}

/** Every PVM2 mnemonic. Illegal encodings use `illegal` (their names in the decoder are only for messages). */
export const ISA: Readonly<Record<string, OpInfo>> = {
  // The C engine loads lui's value and auipc's pc + imm as one constant.
  lui: info(opc(0x37), 'upper', 'ALU', Op.ADD, 'LI'), auipc: info(opc(0x17), 'upper', 'ALU', Op.ADD, 'LI'),
  jal: info(opc(0x6f), 'jal', 'JAL', Op.JAL), jalr: info(f3(0x67, 0), 'jalr', 'JALR', Op.JALR),
  beq: info(f3(0x63, 0), 'branch', 'BRANCH', Op.BEQ), bne: info(f3(0x63, 1), 'branch', 'BRANCH', Op.BNE),
  blt: info(f3(0x63, 4), 'branch', 'BRANCH', Op.BLT), bge: info(f3(0x63, 5), 'branch', 'BRANCH', Op.BGE),
  bltu: info(f3(0x63, 6), 'branch', 'BRANCH', Op.BLTU), bgeu: info(f3(0x63, 7), 'branch', 'BRANCH', Op.BGEU),
  lb: info(f3(0x03, 0), 'load', 'MEMORY', Op.LB), lh: info(f3(0x03, 1), 'load', 'MEMORY', Op.LH), lw: info(f3(0x03, 2), 'load', 'MEMORY', Op.LW),
  ld: info(f3(0x03, 3), 'load', 'MEMORY', Op.LD), lbu: info(f3(0x03, 4), 'load', 'MEMORY', Op.LBU), lhu: info(f3(0x03, 5), 'load', 'MEMORY', Op.LHU),
  lwu: info(f3(0x03, 6), 'load', 'MEMORY', Op.LWU),
  sb: info(f3(0x23, 0), 'store', 'MEMORY', Op.SB), sh: info(f3(0x23, 1), 'store', 'MEMORY', Op.SH), sw: info(f3(0x23, 2), 'store', 'MEMORY', Op.SW),
  sd: info(f3(0x23, 3), 'store', 'MEMORY', Op.SD),
  addi: info(f3(0x13, 0), 'imm', 'ALU', Op.ADD), slti: info(f3(0x13, 2), 'imm', 'COMPARE', Op.SLT), sltiu: info(f3(0x13, 3), 'imm', 'COMPARE', Op.SLTU),
  xori: info(f3(0x13, 4), 'imm', 'ALU', Op.XOR), ori: info(f3(0x13, 6), 'imm', 'ALU', Op.OR), andi: info(f3(0x13, 7), 'imm', 'ALU', Op.AND),
  slli: info(f6(0x13, 1, 0x00), 'imm', 'ALU', Op.SLL), srli: info(f6(0x13, 5, 0x00), 'imm', 'ALU', Op.SRL), srai: info(f6(0x13, 5, 0x10), 'imm', 'ALU', Op.SRA),
  addiw: info(f3(0x1b, 0), 'imm', 'ALU', Op.ADDW), slliw: info(r(0x1b, 1, 0x00), 'imm', 'ALU', Op.SLLW), srliw: info(r(0x1b, 5, 0x00), 'imm', 'ALU', Op.SRLW),
  sraiw: info(r(0x1b, 5, 0x20), 'imm', 'ALU', Op.SRAW),
  add: info(r(0x33, 0, 0x00), 'reg', 'ALU', Op.ADD), sub: info(r(0x33, 0, 0x20), 'reg', 'ALU', Op.SUB), sll: info(r(0x33, 1, 0x00), 'reg', 'ALU', Op.SLL),
  slt: info(r(0x33, 2, 0x00), 'reg', 'COMPARE', Op.SLT), sltu: info(r(0x33, 3, 0x00), 'reg', 'COMPARE', Op.SLTU), xor: info(r(0x33, 4, 0x00), 'reg', 'ALU', Op.XOR),
  srl: info(r(0x33, 5, 0x00), 'reg', 'ALU', Op.SRL), sra: info(r(0x33, 5, 0x20), 'reg', 'ALU', Op.SRA), or: info(r(0x33, 6, 0x00), 'reg', 'ALU', Op.OR),
  and: info(r(0x33, 7, 0x00), 'reg', 'ALU', Op.AND),
  addw: info(r(0x3b, 0, 0x00), 'reg', 'ALU', Op.ADDW), subw: info(r(0x3b, 0, 0x20), 'reg', 'ALU', Op.SUBW), sllw: info(r(0x3b, 1, 0x00), 'reg', 'ALU', Op.SLLW),
  srlw: info(r(0x3b, 5, 0x00), 'reg', 'ALU', Op.SRLW), sraw: info(r(0x3b, 5, 0x20), 'reg', 'ALU', Op.SRAW),
  // M
  mul: info(r(0x33, 0, 0x01), 'reg', 'MUL', Op.MUL), mulh: info(r(0x33, 1, 0x01), 'reg', 'MUL', Op.MULH), mulhsu: info(r(0x33, 2, 0x01), 'reg', 'MUL', Op.MULHSU),
  mulhu: info(r(0x33, 3, 0x01), 'reg', 'MUL', Op.MULHU), mulw: info(r(0x3b, 0, 0x01), 'reg', 'MUL', Op.MULW),
  div: info(r(0x33, 4, 0x01), 'reg', 'DIV', Op.DIV), divu: info(r(0x33, 5, 0x01), 'reg', 'DIV', Op.DIVU), rem: info(r(0x33, 6, 0x01), 'reg', 'DIV', Op.REM),
  remu: info(r(0x33, 7, 0x01), 'reg', 'DIV', Op.REMU), divw: info(r(0x3b, 4, 0x01), 'reg', 'DIV', Op.DIVW), divuw: info(r(0x3b, 5, 0x01), 'reg', 'DIV', Op.DIVUW),
  remw: info(r(0x3b, 6, 0x01), 'reg', 'DIV', Op.REMW), remuw: info(r(0x3b, 7, 0x01), 'reg', 'DIV', Op.REMUW),
  // Zba
  'add.uw': info(r(0x3b, 0, 0x04), 'reg', 'ALU', Op.ADDUW), sh1add: info(r(0x33, 2, 0x10), 'reg', 'ALU', Op.SH1ADD), sh2add: info(r(0x33, 4, 0x10), 'reg', 'ALU', Op.SH2ADD),
  sh3add: info(r(0x33, 6, 0x10), 'reg', 'ALU', Op.SH3ADD), 'sh1add.uw': info(r(0x3b, 2, 0x10), 'reg', 'ALU', Op.SH1ADDUW),
  'sh2add.uw': info(r(0x3b, 4, 0x10), 'reg', 'ALU', Op.SH2ADDUW), 'sh3add.uw': info(r(0x3b, 6, 0x10), 'reg', 'ALU', Op.SH3ADDUW),
  'slli.uw': info(f6(0x1b, 1, 0x02), 'imm', 'ALU', Op.SLLUW),
  // Zbb
  andn: info(r(0x33, 7, 0x20), 'reg', 'ALU', Op.ANDN), orn: info(r(0x33, 6, 0x20), 'reg', 'ALU', Op.ORN), xnor: info(r(0x33, 4, 0x20), 'reg', 'ALU', Op.XNOR),
  clz: info(f12(0x13, 1, 0x600), 'unary', 'ALU', Op.CLZ), ctz: info(f12(0x13, 1, 0x601), 'unary', 'ALU', Op.CTZ), cpop: info(f12(0x13, 1, 0x602), 'unary', 'ALU', Op.CPOP),
  clzw: info(f12(0x1b, 1, 0x600), 'unary', 'ALU', Op.CLZW), ctzw: info(f12(0x1b, 1, 0x601), 'unary', 'ALU', Op.CTZW), cpopw: info(f12(0x1b, 1, 0x602), 'unary', 'ALU', Op.CPOPW),
  min: info(r(0x33, 4, 0x05), 'reg', 'COMPARE', Op.MIN), minu: info(r(0x33, 5, 0x05), 'reg', 'COMPARE', Op.MINU),
  max: info(r(0x33, 6, 0x05), 'reg', 'COMPARE', Op.MAX), maxu: info(r(0x33, 7, 0x05), 'reg', 'COMPARE', Op.MAXU),
  'sext.b': info(f12(0x13, 1, 0x604), 'unary', 'ALU', Op.SEXTB), 'sext.h': info(f12(0x13, 1, 0x605), 'unary', 'ALU', Op.SEXTH), 'zext.h': info(f12(0x3b, 4, 0x080), 'unary', 'ALU', Op.ZEXTH),
  rol: info(r(0x33, 1, 0x30), 'reg', 'ALU', Op.ROL), ror: info(r(0x33, 5, 0x30), 'reg', 'ALU', Op.ROR), rori: info(f6(0x13, 5, 0x18), 'imm', 'ALU', Op.ROR),
  rolw: info(r(0x3b, 1, 0x30), 'reg', 'ALU', Op.ROLW), rorw: info(r(0x3b, 5, 0x30), 'reg', 'ALU', Op.RORW), roriw: info(r(0x1b, 5, 0x30), 'imm', 'ALU', Op.RORW),
  'orc.b': info(f12(0x13, 5, 0x287), 'unary', 'ALU', Op.ORCB), rev8: info(f12(0x13, 5, 0x6b8), 'unary', 'ALU', Op.REV8),
  // Zbs
  bclr: info(r(0x33, 1, 0x24), 'reg', 'ALU', Op.BCLR), bclri: info(f6(0x13, 1, 0x12), 'imm', 'ALU', Op.BCLR), bset: info(r(0x33, 1, 0x14), 'reg', 'ALU', Op.BSET),
  bseti: info(f6(0x13, 1, 0x0a), 'imm', 'ALU', Op.BSET), binv: info(r(0x33, 1, 0x34), 'reg', 'ALU', Op.BINV), binvi: info(f6(0x13, 1, 0x1a), 'imm', 'ALU', Op.BINV),
  bext: info(r(0x33, 5, 0x24), 'reg', 'ALU', Op.BEXT), bexti: info(f6(0x13, 5, 0x12), 'imm', 'ALU', Op.BEXT),
  // Zicond
  'czero.eqz': info(r(0x33, 5, 0x07), 'reg', 'ALU', Op.CZEROEQZ), 'czero.nez': info(r(0x33, 7, 0x07), 'reg', 'ALU', Op.CZERONEZ),
  // fences are no-ops
  fence: info(f3(0x0f, 0), 'none', 'ALU', Op.NOP, 'NOP'), 'fence.i': info(f3(0x0f, 1), 'none', 'ALU', Op.NOP, 'NOP'),
  // custom-0
  trap: info(f3(0x0b, 0), 'marker', 'MARKER', Op.TRAP), fallthrough: info(f3(0x0b, 4), 'marker', 'MARKER', Op.FALLTHROUGH),
  'ecall.jar': info(f3(0x0b, 1), 'marker', 'CALL', Op.ECALLJAR), ecalli: info(f3(0x0b, 2), 'ecalli', 'CALL', Op.ECALLI),
};

/** Every illegal encoding shares this entry. */
export const ILLEGAL_INFO: OpInfo = info(encoding(0xffffffff, 0), 'illegal', 'ILLEGAL', Op.ILLEGAL);

/** Bits an encoding fixes: the more, the more specific (a 12-bit immediate beats funct7 beats funct6 beats funct3). */
const fixedBits = (e: Encoding) => e.mask.toString(2).replace(/0/g, '').length;

/**
 * The mnemonics by major opcode (bits 6:2, the low two being 11) and funct3, most
 * specific encoding first: a word's mnemonic is the first whose bits match. Both
 * decoders use this order (the C one through the generated pvm_tables.h).
 */
export const ENCODING_GROUPS: readonly (readonly string[])[] = (() => {
  const groups: string[][] = Array.from({ length: 32 * 8 }, () => []);
  for (const [name, spec] of Object.entries(ISA)) {
    const opcodeGroup = (spec.enc.match & OPCODE) >>> 2;
    // An encoding that leaves funct3 open (lui, auipc, jal) belongs to all eight.
    const funct3s = spec.enc.mask & FUNCT3 ? [(spec.enc.match >>> 12) & 7] : [0, 1, 2, 3, 4, 5, 6, 7];
    for (const f of funct3s) groups[opcodeGroup * 8 + f]!.push(name);
  }
  for (const g of groups) g.sort((a, b) => fixedBits(ISA[b]!.enc) - fixedBits(ISA[a]!.enc));
  return groups;
})();

/** The mnemonic a 32-bit word encodes, or undefined when it is not PVM2. */
export function mnemonicOf(word: number): string | undefined {
  const group = ENCODING_GROUPS[((word & OPCODE) >>> 2) * 8 + ((word >>> 12) & 7)]!;
  return group.find((name) => ((word & ISA[name]!.enc.mask) >>> 0) === ISA[name]!.enc.match);
}
