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

export interface OpInfo {
  readonly form: Form;
  readonly gas: GasClass;
  readonly op: Op;
  /** The C engine's handler (PVM_HANDLERS in guest/engine/internal.h) when it is not the mnemonic's own name. */
  readonly engineHandler?: string;
}

const info = (form: Form, gas: GasClass, op: Op, engineHandler?: string): OpInfo => ({ form, gas, op, ...(engineHandler && { engineHandler }) });

/** The C engine's handler for a mnemonic: its name in capitals without dots (`add.uw` -> ADDUW) unless the table says otherwise. */
export function engineHandlerOf(mnemonic: string, spec: OpInfo): string {
  return spec.engineHandler ?? mnemonic.replace(/\./g, '').toUpperCase();
}

/** Every PVM2 mnemonic. Illegal encodings use `illegal` (their names in the decoder are only for messages). */
export const ISA: Readonly<Record<string, OpInfo>> = {
  // The C engine loads lui's value and auipc's pc + imm as one constant.
  lui: info('upper', 'ALU', Op.ADD, 'LI'), auipc: info('upper', 'ALU', Op.ADD, 'LI'),
  jal: info('jal', 'JAL', Op.JAL), jalr: info('jalr', 'JALR', Op.JALR),
  beq: info('branch', 'BRANCH', Op.BEQ), bne: info('branch', 'BRANCH', Op.BNE),
  blt: info('branch', 'BRANCH', Op.BLT), bge: info('branch', 'BRANCH', Op.BGE),
  bltu: info('branch', 'BRANCH', Op.BLTU), bgeu: info('branch', 'BRANCH', Op.BGEU),
  lb: info('load', 'MEMORY', Op.LB), lh: info('load', 'MEMORY', Op.LH), lw: info('load', 'MEMORY', Op.LW),
  ld: info('load', 'MEMORY', Op.LD), lbu: info('load', 'MEMORY', Op.LBU), lhu: info('load', 'MEMORY', Op.LHU),
  lwu: info('load', 'MEMORY', Op.LWU),
  sb: info('store', 'MEMORY', Op.SB), sh: info('store', 'MEMORY', Op.SH), sw: info('store', 'MEMORY', Op.SW),
  sd: info('store', 'MEMORY', Op.SD),
  addi: info('imm', 'ALU', Op.ADD), slti: info('imm', 'COMPARE', Op.SLT), sltiu: info('imm', 'COMPARE', Op.SLTU),
  xori: info('imm', 'ALU', Op.XOR), ori: info('imm', 'ALU', Op.OR), andi: info('imm', 'ALU', Op.AND),
  slli: info('imm', 'ALU', Op.SLL), srli: info('imm', 'ALU', Op.SRL), srai: info('imm', 'ALU', Op.SRA),
  addiw: info('imm', 'ALU', Op.ADDW), slliw: info('imm', 'ALU', Op.SLLW), srliw: info('imm', 'ALU', Op.SRLW),
  sraiw: info('imm', 'ALU', Op.SRAW),
  add: info('reg', 'ALU', Op.ADD), sub: info('reg', 'ALU', Op.SUB), sll: info('reg', 'ALU', Op.SLL),
  slt: info('reg', 'COMPARE', Op.SLT), sltu: info('reg', 'COMPARE', Op.SLTU), xor: info('reg', 'ALU', Op.XOR),
  srl: info('reg', 'ALU', Op.SRL), sra: info('reg', 'ALU', Op.SRA), or: info('reg', 'ALU', Op.OR),
  and: info('reg', 'ALU', Op.AND),
  addw: info('reg', 'ALU', Op.ADDW), subw: info('reg', 'ALU', Op.SUBW), sllw: info('reg', 'ALU', Op.SLLW),
  srlw: info('reg', 'ALU', Op.SRLW), sraw: info('reg', 'ALU', Op.SRAW),
  // M
  mul: info('reg', 'MUL', Op.MUL), mulh: info('reg', 'MUL', Op.MULH), mulhsu: info('reg', 'MUL', Op.MULHSU),
  mulhu: info('reg', 'MUL', Op.MULHU), mulw: info('reg', 'MUL', Op.MULW),
  div: info('reg', 'DIV', Op.DIV), divu: info('reg', 'DIV', Op.DIVU), rem: info('reg', 'DIV', Op.REM),
  remu: info('reg', 'DIV', Op.REMU), divw: info('reg', 'DIV', Op.DIVW), divuw: info('reg', 'DIV', Op.DIVUW),
  remw: info('reg', 'DIV', Op.REMW), remuw: info('reg', 'DIV', Op.REMUW),
  // Zba
  'add.uw': info('reg', 'ALU', Op.ADDUW), sh1add: info('reg', 'ALU', Op.SH1ADD), sh2add: info('reg', 'ALU', Op.SH2ADD),
  sh3add: info('reg', 'ALU', Op.SH3ADD), 'sh1add.uw': info('reg', 'ALU', Op.SH1ADDUW),
  'sh2add.uw': info('reg', 'ALU', Op.SH2ADDUW), 'sh3add.uw': info('reg', 'ALU', Op.SH3ADDUW),
  'slli.uw': info('imm', 'ALU', Op.SLLUW),
  // Zbb
  andn: info('reg', 'ALU', Op.ANDN), orn: info('reg', 'ALU', Op.ORN), xnor: info('reg', 'ALU', Op.XNOR),
  clz: info('unary', 'ALU', Op.CLZ), ctz: info('unary', 'ALU', Op.CTZ), cpop: info('unary', 'ALU', Op.CPOP),
  clzw: info('unary', 'ALU', Op.CLZW), ctzw: info('unary', 'ALU', Op.CTZW), cpopw: info('unary', 'ALU', Op.CPOPW),
  min: info('reg', 'COMPARE', Op.MIN), minu: info('reg', 'COMPARE', Op.MINU),
  max: info('reg', 'COMPARE', Op.MAX), maxu: info('reg', 'COMPARE', Op.MAXU),
  'sext.b': info('unary', 'ALU', Op.SEXTB), 'sext.h': info('unary', 'ALU', Op.SEXTH), 'zext.h': info('unary', 'ALU', Op.ZEXTH),
  rol: info('reg', 'ALU', Op.ROL), ror: info('reg', 'ALU', Op.ROR), rori: info('imm', 'ALU', Op.ROR),
  rolw: info('reg', 'ALU', Op.ROLW), rorw: info('reg', 'ALU', Op.RORW), roriw: info('imm', 'ALU', Op.RORW),
  'orc.b': info('unary', 'ALU', Op.ORCB), rev8: info('unary', 'ALU', Op.REV8),
  // Zbs
  bclr: info('reg', 'ALU', Op.BCLR), bclri: info('imm', 'ALU', Op.BCLR), bset: info('reg', 'ALU', Op.BSET),
  bseti: info('imm', 'ALU', Op.BSET), binv: info('reg', 'ALU', Op.BINV), binvi: info('imm', 'ALU', Op.BINV),
  bext: info('reg', 'ALU', Op.BEXT), bexti: info('imm', 'ALU', Op.BEXT),
  // Zicond
  'czero.eqz': info('reg', 'ALU', Op.CZEROEQZ), 'czero.nez': info('reg', 'ALU', Op.CZERONEZ),
  // fences are no-ops
  fence: info('none', 'ALU', Op.NOP, 'NOP'), 'fence.i': info('none', 'ALU', Op.NOP, 'NOP'),
  // custom-0
  trap: info('marker', 'MARKER', Op.TRAP), fallthrough: info('marker', 'MARKER', Op.FALLTHROUGH),
  'ecall.jar': info('marker', 'CALL', Op.ECALLJAR), ecalli: info('ecalli', 'CALL', Op.ECALLI),
};

/** Every illegal encoding shares this entry. */
export const ILLEGAL_INFO: OpInfo = info('illegal', 'ILLEGAL', Op.ILLEGAL);
