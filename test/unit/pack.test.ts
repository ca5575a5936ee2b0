/**
 * `nub pack`: ELF files are written here byte by byte (a tiny ELF64 writer and
 * hand-assembled RV64 instructions), so every refusal can be provoked exactly and
 * the tests need no cross-compiler. Two tests compile real C when the toolchain
 * is installed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NubError } from '../../lib/errors.js';
import { readElf, SHF, SHT, STT } from '../../lib/pack/elf.js';
import { DEFAULT_STACK_SIZE, packElf, STACK_TOP } from '../../lib/pack/index.js';
import { Image } from '../../lib/image/schema.js';
import { admitImage } from '../../lib/image/index.js';
import { Exit, invokeLocal } from '../../lib/machine/index.js';
import { nub } from '../support/cli.js';
import { compileForPvm, missingTools } from '../support/qemu-harness.js';
import { SeededRandom } from './seeded-random.js';
import { expectNubError as packError } from '../support/nub-error.js';

// ---- hand assembly (RV64, registers by number: ra=1 sp=2 a0=10 a1=11 a5=15 a6=16) ----

const R = (f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number) => (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
const I = (imm: number, rs1: number, f3: number, rd: number, op: number) => ((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
const asm = {
  add: (rd: number, rs1: number, rs2: number) => R(0, rs2, rs1, 0, rd, 0x33),
  addi: (rd: number, rs1: number, imm: number) => I(imm, rs1, 0, rd, 0x13),
  ld: (rd: number, rs1: number, imm: number) => I(imm, rs1, 3, rd, 0x03),
  sd: (rs2: number, rs1: number, imm: number) => (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((imm & 0x1f) << 7) | 0x23,
  lui: (rd: number, imm20: number) => (imm20 << 12) | (rd << 7) | 0x37,
  auipc: (rd: number, imm20: number) => (imm20 << 12) | (rd << 7) | 0x17,
  jalr: (rd: number, rs1: number, imm: number) => I(imm, rs1, 0, rd, 0x67),
  jal: (rd: number, offset: number) =>
    (((offset >> 20) & 1) << 31) | (((offset >> 1) & 0x3ff) << 21) | (((offset >> 11) & 1) << 20) | (((offset >> 12) & 0xff) << 12) | (rd << 7) | 0x6f,
  ecalli: (imm: number) => I(imm, 0, 2, 0, 0x0b),
  /** fadd.d fa0, fa0, fa1: floating point, not PVM2. */
  faddD: () => 0x02b57553,
};
const ret = asm.jalr(0, 1, 0);

function words(...ws: number[]): Uint8Array {
  const out = new Uint8Array(ws.length * 4);
  const view = new DataView(out.buffer);
  ws.forEach((w, i) => view.setUint32(i * 4, w >>> 0, true));
  return out;
}

function u64s(...vs: bigint[]): Uint8Array {
  const out = new Uint8Array(vs.length * 8);
  vs.forEach((v, i) => new DataView(out.buffer).setBigUint64(i * 8, v, true));
  return out;
}

function endpointRecord(key: number, entry: number, nargs: number): Uint8Array {
  const rec = new Uint8Array(16);
  new DataView(rec.buffer).setBigUint64(0, BigInt(entry), true);
  rec[8] = key;
  rec[9] = nargs;
  return rec;
}

// ---- a minimal ELF64 writer ----

interface SectionSpec {
  name: string;
  type?: number; // SHT_*, default PROGBITS
  flags: number;
  addr: number;
  bytes?: Uint8Array;
  size?: number; // NOBITS
}
interface SymbolSpec {
  name: string;
  value: number;
  type: number; // STT_*
  section: string;
}

const A = SHF.ALLOC, W = SHF.WRITE, X = SHF.EXECINSTR;

function writeElf(sections: SectionSpec[], symbols: SymbolSpec[] = [], opts: { machine?: number; fileType?: number; pad?: number } = {}): Uint8Array {
  const strtab = new StringTable();
  const shstrtab = new StringTable();
  const all: Array<SectionSpec & { link?: number; entsize?: number }> = [...sections];
  const index = (name: string) => all.findIndex((s) => s.name === name) + 1;
  const symBytes = new Uint8Array(24 * (symbols.length + 1));
  const symView = new DataView(symBytes.buffer);
  symbols.forEach((s, i) => {
    const at = 24 * (i + 1);
    symView.setUint32(at, strtab.add(s.name), true);
    symBytes[at + 4] = (1 << 4) | s.type; // STB_GLOBAL
    symView.setUint16(at + 6, index(s.section), true);
    symView.setBigUint64(at + 8, BigInt(s.value), true);
  });
  all.push({ name: '.symtab', type: SHT.SYMTAB, flags: 0, addr: 0, bytes: symBytes, link: all.length + 2, entsize: 24 });
  all.push({ name: '.strtab', type: SHT.STRTAB, flags: 0, addr: 0, bytes: strtab.bytes() });
  all.push({ name: '.shstrtab', type: SHT.STRTAB, flags: 0, addr: 0, bytes: new Uint8Array(0) });
  const names = all.map((s) => shstrtab.add(s.name));
  all[all.length - 1]!.bytes = shstrtab.bytes();

  const chunks: Uint8Array[] = [new Uint8Array(64 + (opts.pad ?? 0))];
  let offset = chunks[0]!.length;
  const offsets = all.map((s) => {
    const at = offset;
    if (s.type !== SHT.NOBITS && s.bytes) {
      chunks.push(s.bytes);
      offset += s.bytes.length;
    }
    return at;
  });
  const shoff = offset;
  const table = new Uint8Array(64 * (all.length + 1));
  const tv = new DataView(table.buffer);
  all.forEach((s, i) => {
    const at = 64 * (i + 1);
    tv.setUint32(at, names[i]!, true);
    tv.setUint32(at + 4, s.type ?? SHT.PROGBITS, true);
    tv.setBigUint64(at + 8, BigInt(s.flags), true);
    tv.setBigUint64(at + 16, BigInt(s.addr), true);
    tv.setBigUint64(at + 24, BigInt(offsets[i]!), true);
    tv.setBigUint64(at + 32, BigInt(s.type === SHT.NOBITS ? s.size! : s.bytes!.length), true);
    tv.setUint32(at + 40, s.link ?? 0, true);
    tv.setBigUint64(at + 56, BigInt(s.entsize ?? 0), true);
  });
  chunks.push(table);
  const out = Buffer.concat(chunks);
  const hv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  hv.setUint16(16, opts.fileType ?? 2, true);
  hv.setUint16(18, opts.machine ?? 243, true);
  hv.setBigUint64(40, BigInt(shoff), true);
  hv.setUint16(52, 64, true);
  hv.setUint16(58, 64, true);
  hv.setUint16(60, all.length + 1, true);
  hv.setUint16(62, all.length, true);
  return new Uint8Array(out);
}

class StringTable {
  private parts: Buffer[] = [Buffer.from([0])];
  private size = 1;
  add(s: string): number {
    const at = this.size;
    this.parts.push(Buffer.from(`${s}\0`));
    this.size += s.length + 1;
    return at;
  }
  bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.parts));
  }
}

// ---- the program most tests pack ----

const CODE_BASE = 0x400000;
const RODATA = 0x1000_0000;
const DATA = 0x1000_1000;
const A0 = 10, A1 = 11, A5 = 15, RA = 1, SP = 2;

/**
 * Two endpoint stubs, then
 *   f(x) = x + rodata[0]
 *   g(x) = x + ++data[0], spilling x on the stack on the way
 */
function program(overrides: { f?: number[]; endpoints?: Uint8Array; extraSymbols?: SymbolSpec[]; pad?: number } = {}): Uint8Array {
  const f = overrides.f ?? [asm.lui(A5, RODATA >>> 12), asm.ld(A1, A5, 0), asm.add(A0, A0, A1), ret];
  const g = [
    asm.addi(SP, SP, -16), asm.sd(A0, SP, 8),
    asm.lui(A5, DATA >>> 12), asm.ld(A1, A5, 0), asm.addi(A1, A1, 1), asm.sd(A1, A5, 0),
    asm.ld(A0, SP, 8), asm.add(A0, A0, A1), asm.addi(SP, SP, 16), ret,
  ];
  const fAt = 16, gAt = fAt + 4 * f.length;
  const code = words(asm.jal(RA, fAt - 0), asm.ecalli(0), asm.jal(RA, gAt - 8), asm.ecalli(0), ...f, ...g);
  return writeElf(
    [
      { name: '.text', flags: A | X, addr: CODE_BASE, bytes: code },
      { name: '.rodata', flags: A, addr: RODATA, bytes: u64s(1000n) },
      { name: '.data', flags: A | W, addr: DATA, bytes: u64s(5n) },
      { name: '.bss', type: SHT.NOBITS, flags: A | W, addr: DATA + 8, size: 0x2000 },
      { name: '.nub.endpoints', flags: 0, addr: 0, bytes: overrides.endpoints ?? Buffer.concat([endpointRecord(1, CODE_BASE, 1), endpointRecord(2, CODE_BASE + 8, 1)]) },
    ],
    [
      { name: 'f', value: CODE_BASE + fAt, type: STT.FUNC, section: '.text' },
      { name: 'g', value: CODE_BASE + gAt, type: STT.FUNC, section: '.text' },
      ...(overrides.extraSymbols ?? []),
    ],
    { pad: overrides.pad ?? 0 },
  );
}

describe('nub pack', () => {
  describe('readElf', () => {
    it('reads sections and symbols of a written file', () => {
      const elf = readElf(program());
      const text = elf.sections.find((s) => s.name === '.text')!;
      assert.equal(text.addr, BigInt(CODE_BASE));
      assert.equal(elf.sections.find((s) => s.name === '.bss')!.size, 0x2000n);
      assert.deepEqual(elf.symbols.filter((s) => s.name !== '').map((s) => s.name), ['f', 'g']);
    });

    it('fails only with NubErrors on corrupted files (seeded)', () => {
      const valid = program();
      const random = new SeededRandom(0x5eed);
      let refused = 0;
      for (let round = 0; round < 500; round++) {
        const file = valid.slice(0, random.bool() ? valid.length : random.below(valid.length));
        for (let flips = 1 + random.below(8); flips > 0; flips--) file[random.below(file.length)] = random.u32() & 0xff;
        try {
          packElf(file);
        } catch (err) {
          assert.ok(err instanceof NubError, `round ${round}: ${String(err)}`);
          refused++;
        }
      }
      assert.ok(refused > 0);
    });

    it('refuses what is not a RISC-V ELF64 file, or lies about its sizes', () => {
      packError(() => readElf(new Uint8Array(10)), 'Pack.BadElf');
      packError(() => readElf(new TextEncoder().encode('#!/bin/sh\n'.padEnd(80))), 'Pack.BadElf');
      packError(() => readElf(writeElf([{ name: '.text', flags: A | X, addr: CODE_BASE, bytes: words(ret) }], [], { machine: 62 })), 'Pack.BadElf');
      const truncated = program().subarray(0, 200);
      packError(() => readElf(truncated), 'Pack.BadElf');
      const lying = program();
      new DataView(lying.buffer).setBigUint64(40, 1n << 40n, true); // e_shoff far past the end
      packError(() => readElf(lying), 'Pack.BadElf');
    });
  });

  describe('packElf', () => {
    it('lays out code, endpoints, read-only data, data + bss and a stack', () => {
      const result = packElf(program());
      const image = Image.deserialize(result.image);
      assert.deepEqual(image.endpoints.map((e) => [Array.from(e.key), e.value.entryPc, e.value.argRegisters]), [[[1], 0n, 1], [[2], 8n, 1]]);
      for (const e of image.endpoints) assert.deepEqual(e.value.initialRegs.map((r) => [r.key, r.value]), [[1, BigInt(STACK_TOP)]]);
      const mappings = image.memoryMappings.map((m) => [Number(m.start), Number(m.size), m.source.map((k) => Array.from(k))]);
      assert.deepEqual(mappings, [
        [RODATA, 4096, [[1]]],
        [DATA, 3 * 4096, [[2]]], // 8 bytes of .data and 0x2000 of .bss: three pages
        [STACK_TOP - DEFAULT_STACK_SIZE, DEFAULT_STACK_SIZE, [[3]]],
      ]);
      assert.deepEqual(image.pinnedSlots.map((s) => Array.from(s.key)), [[1]]);
      assert.deepEqual(image.initialSlots.map((s) => [Array.from(s.key), Number(s.value.size)]), [[[2], 3 * 4096], [[3], DEFAULT_STACK_SIZE]]);
      assert.equal(result.warnings.length, 0);
    });

    it('makes an image that runs: read-only data, writable data and the stack are where the code expects', () => {
      const admitted = admitImage(packElf(program()).image);
      const f = invokeLocal(admitted.imageCap, admitted, [1], { args: [7n], gas: 10_000n });
      assert.equal(f.exit, Exit.HALT);
      assert.equal(f.exitArg, 1007n);
      const g = invokeLocal(admitted.imageCap, admitted, [2], { args: [7n], gas: 10_000n });
      assert.equal(g.exit, Exit.HALT);
      assert.equal(g.exitArg, 7n + 6n);
    });

    it('is canonical: where the sections sit in the file does not matter', () => {
      assert.deepEqual(packElf(program({ pad: 0 })).image, packElf(program({ pad: 13 })).image);
    });

    it('refuses an instruction naming a register PVM2 lacks, with function and address', () => {
      const f = [asm.add(16, A0, A0), asm.add(A0, 16, A0), ret]; // add a6, a0, a0; add a0, a6, a0
      const err = packError(() => packElf(program({ f })), 'Pack.IllegalInstruction');
      const illegal = err.details!.illegal as Array<{ address: string; function: string }>;
      assert.deepEqual(illegal.map((i) => [i.address, i.function]), [
        ['0x400010', 'f+0x0 (0x400010)'],
        ['0x400014', 'f+0x4 (0x400014)'],
      ]);
    });

    it('refuses an instruction that is not PVM2', () => {
      const err = packError(() => packElf(program({ f: [asm.faddD(), ret] })), 'Pack.IllegalInstruction');
      assert.deepEqual((err.details!.illegal as Array<{ function: string }>).map((i) => i.function), ['f+0x0 (0x400010)']);
    });

    it('refuses an endpoint that does not start a block', () => {
      // 0x400010 (f) follows an ecalli, 0x400014 is f's second instruction
      packElf(program({ endpoints: endpointRecord(1, CODE_BASE + 0x10, 1) }));
      packError(() => packElf(program({ endpoints: endpointRecord(1, CODE_BASE + 0x14, 1) })), 'Pack.EntryNotBlockStart');
    });

    it('refuses a direct call into the middle of a block', () => {
      // f tail-calls g+4 (mid-block) through auipc+jalr, as gcc -mno-relax emits calls
      const gAt = 16 + 4 * 2;
      const toG = (extra: number) => [asm.auipc(A5, 0), asm.jalr(0, A5, gAt + extra - 16)];
      packElf(program({ f: toG(0) }));
      packError(() => packElf(program({ f: toG(4) })), 'Pack.JumpNotBlockStart');
    });

    it('warns about a function symbol that is not a block start', () => {
      const result = packElf(program({ extraSymbols: [{ name: 'mid', value: CODE_BASE + 0x14, type: STT.FUNC, section: '.text' }] }));
      assert.equal(result.warnings.length, 1);
      assert.match(result.warnings[0]!, /\bmid\b/);
    });

    it('refuses bad endpoint tables', () => {
      packError(() => packElf(program({ endpoints: new Uint8Array(0) })), 'Pack.NoEndpoints');
      packError(() => packElf(program({ endpoints: new Uint8Array(15) })), 'Pack.BadEndpoint');
      packError(() => packElf(program({ endpoints: Buffer.concat([endpointRecord(1, CODE_BASE, 0), endpointRecord(1, CODE_BASE + 8, 0)]) })), 'Pack.BadEndpoint');
      packError(() => packElf(program({ endpoints: endpointRecord(1, CODE_BASE, 5) })), 'Pack.BadEndpoint');
      packError(() => packElf(program({ endpoints: endpointRecord(1, CODE_BASE + 0x1000, 0) })), 'Pack.BadEndpoint');
    });

    it('refuses layouts it cannot express', () => {
      const text = { name: '.text', flags: A | X, addr: CODE_BASE, bytes: words(asm.ecalli(0)) };
      const eps = { name: '.nub.endpoints', flags: 0, addr: 0, bytes: endpointRecord(1, CODE_BASE, 0) };
      packElf(writeElf([text, eps]));
      packError(() => packElf(writeElf([{ ...text, addr: 0x10000 }, eps])), 'Pack.Layout');
      packError(() => packElf(writeElf([text, eps, { name: '.rodata', flags: A, addr: 0x8000, bytes: u64s(1n) }])), 'Pack.Layout');
      packError(() => packElf(writeElf([text, eps, { name: '.data', flags: A | W, addr: STACK_TOP - 8, bytes: u64s(1n) }])), 'Pack.Layout');
      packError(() => packElf(writeElf([text, eps], [], { fileType: 1 })), 'Pack.BadElf');
      packError(() => packElf(writeElf([text, eps]), { stackSize: STACK_TOP }), 'Pack.Layout');
      packError(() => packElf(writeElf([text, eps]), { stackSize: Number.NaN }), 'Pack.Layout');
    });
  });

  describe('nub pack (command)', () => {
    it('writes the packed image, and wants -o', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'nub-pack-'));
      try {
        writeFileSync(join(dir, 'p.elf'), program());
        const packed = nub(['pack', join(dir, 'p.elf'), '-o', join(dir, 'p.ssz'), '--json']);
        assert.equal(packed.status, 0, packed.stderr);
        assert.deepEqual(packed.json, { ok: true, output: join(dir, 'p.ssz'), imageBytes: packElf(program()).image.length, codeBytes: packElf(program()).code.length, endpoints: packed.json!.endpoints, warnings: [] });
        assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'p.ssz'))), packElf(program()).image);
        const noOutput = nub(['pack', join(dir, 'p.elf')]);
        assert.equal(noOutput.status, 2);
        assert.match(noOutput.stderr, /^nub pack: -o FILE is required\n\nusage: nub pack/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('C built with the SDK (needs the cross-compiler)', function () {
    this.timeout(30_000);
    let dir = '';
    before(function () {
      const missing = missingTools(['compiler']);
      if (missing) {
        console.log(`      SKIPPED: ${missing}`);
        this.skip();
      }
      dir = mkdtempSync(join(tmpdir(), 'nub-pack-cc-'));
    });
    after(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    function build(name: string, lines: string[]): Uint8Array {
      writeFileSync(join(dir, `${name}.c`), ['#include "nub.h"', ...lines].join('\n'));
      compileForPvm(join(dir, `${name}.c`), join(dir, `${name}.elf`));
      return readFileSync(join(dir, `${name}.elf`));
    }

    it('refuses a call with more than six arguments, naming the functions that use a6/a7', () => {
      const elf = build('many', [
        '__attribute__((noinline)) uint64_t many(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, uint64_t f, uint64_t g, uint64_t h) { return a + b + c + d + e + f + g + h; }',
        'uint64_t caller(uint64_t x) { return many(x, 1, 2, 3, 4, 5, 6, 7); }',
        'NUB_ENDPOINT(1, caller, 1);',
      ]);
      const err = packError(() => packElf(elf), 'Pack.IllegalInstruction');
      const functions = new Set((err.details!.illegal as Array<{ function: string }>).map((i) => i.function.split('+')[0]));
      assert.deepEqual([...functions].sort(), ['caller', 'many']);
    });

    it('nub_host_call reaches the host function with its arguments; nub_trap ends with TRAP', () => {
      const admitted = admitImage(packElf(build('host', [
        'uint64_t via_host(uint64_t x) { return nub_host_call(100, x, 3, 0, 0, 0, 7) + 1; }',
        'uint64_t trap_unless_zero(uint64_t x) { if (x) nub_trap(); return 5; }',
        'NUB_ENDPOINT(1, via_host, 1);',
        'NUB_ENDPOINT(2, trap_unless_zero, 1);',
      ])).image);
      const seen: Array<[number, bigint[]]> = [];
      const hostFunction = (regs: bigint[], _memory: unknown, n: number) => {
        seen.push([n, regs.slice(7, 13)]);
        return regs[7]! * regs[8]!;
      };
      const handled = invokeLocal(admitted.imageCap, admitted, [1], { args: [14n], gas: 10_000n, hostFunction });
      assert.deepEqual([handled.exit, handled.exitArg], [Exit.HALT, 14n * 3n + 1n]);
      assert.deepEqual(seen, [[100, [14n, 3n, 0n, 0n, 0n, 7n]]]);
      const unhandled = invokeLocal(admitted.imageCap, admitted, [1], { args: [14n], gas: 10_000n });
      assert.deepEqual([unhandled.exit, unhandled.exitArg], [Exit.HOST_CALL, 100n]);
      assert.equal(invokeLocal(admitted.imageCap, admitted, [2], { args: [1n], gas: 10_000n }).exit, Exit.TRAP);
      const halted = invokeLocal(admitted.imageCap, admitted, [2], { args: [0n], gas: 10_000n });
      assert.deepEqual([halted.exit, halted.exitArg], [Exit.HALT, 5n]);
    });
  });
});
