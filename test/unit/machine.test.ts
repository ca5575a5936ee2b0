/**
 * The machine's rules beyond single instructions: legality, blocks and gas,
 * exits, control-flow integrity, the memory model, host calls, invocation of an
 * image, and a fuzz test that random code always ends in an exit.
 */
import assert from 'node:assert/strict';
import { encodeImage, ImageBuilder, admitImage } from '../../lib/image/index.js';
import {
  CODE_BASE, DATA_BASE, Exit, Gas, decodeAt, disassemble, invokeLocal, isBlockStart, prepareProgram, runMachine,
} from '../../lib/machine/index.js';
import { isNubError } from '../../lib/errors.js';
import { A, C, X, assemble, rType, iType, type Encoded } from '../support/machine-asm.js';
import { run } from './machine-helpers.js';

const { a0, a1, a2, a6, gp, tp, t6, s2, sp, ra } = X;

describe('machine: decoding', () => {
  it('refuses registers RV64E does not have, naming them', () => {
    for (const [inst, reg] of [[A.addi(gp, a0, 1), 'gp'], [A.add(a0, tp, a1), 'tp'], [A.sd(a6, sp, 0), 'a6'], [A.add(a0, a0, t6), 't6'], [C.mv(s2, a0), 's2']] as const) {
      const d = decodeAt(assemble(inst), 0);
      assert.equal(d.illegal, 'register', disassemble(d));
      assert.equal(d.isTerminator, true);
      assert.match(disassemble(d), new RegExp(`\\b${reg}\\b`));
    }
  });

  it('ignores register fields an instruction does not use', () => {
    // lui has no rs1/rs2; bits 19:15 of its immediate are not a register.
    assert.equal(decodeAt(assemble(A.lui(a0, 0xfffff)), 0).illegal, undefined);
  });

  it('decodes everything outside PVM2 as an illegal encoding', () => {
    const ILLEGAL: [string, Encoded][] = [
      ['ecall', A.ecall()], ['ebreak', A.ebreak()], ['csrrw', iType(1, 0x73)(a0, a1, 0x300)],
      ['amoadd.d', rType(0x00, 3, 0x2f)(a0, a1, a2)], ['flw', iType(2, 0x07)(a0, a1, 0)], ['fadd.s', rType(0x00, 0, 0x53)(a0, a1, a2)],
      ['custom-0 funct3 011', iType(3, 0x0b)(0, 0, 0)], ['branch funct3 010', iType(2, 0x63)(0, a0, 0)],
      ['c.ebreak', C.ebreak()], ['the zero halfword', { bits: 0, length: 2 }], ['c.fld', { bits: 0x2000, length: 2 }],
      ['c.addi4spn with 0', { bits: 0x0004, length: 2 }], ['c.jr x0', C.jr(0)], ['c.lwsp x0', C.lwsp(0, 4)],
      ['c.addiw x0', C.addiw(0, 1)], ['c.lui 0', C.lui(a0, 0)], ['c.addi16sp 0', C.addi16sp(0)],
      ['mul with funct7 3', rType(0x03, 0, 0x33)(a0, a1, a2)],
    ];
    for (const [name, inst] of ILLEGAL) {
      const d = decodeAt(assemble(inst), 0);
      assert.equal(d.illegal, 'encoding', name);
      assert.equal(d.isTerminator, true, name);
      assert.equal(run([inst]).exit, Exit.PANIC, name);
    }
  });

  it('an instruction cut off by the end of the code is illegal', () => {
    const code = assemble(A.addi(a0, a0, 1)).subarray(0, 3);
    assert.equal(decodeAt(code, 0).illegal, 'encoding');
    assert.equal(run(code).exit, Exit.PANIC);
  });

  it('panics on an illegal register only when executed', () => {
    const r = run([A.beq(0, 0, 8), A.addi(gp, gp, 1), A.ecalli(0)]);
    assert.equal(r.exit, Exit.HALT);
    const p = run([A.addi(a0, 0, 7), A.addi(gp, gp, 1), A.ecalli(0)]);
    assert.equal(p.exit, Exit.PANIC);
    assert.equal(p.pc, CODE_BASE + 4);
    assert.equal(p.x(a0), 7n, 'instructions before the illegal one took effect');
  });
});

describe('machine: blocks and gas', () => {
  // Block 0: addi, addi, beq (1 + 1 + 20); block 1: addi, ecalli (1 + 100).
  const code = [A.addi(a0, 0, 1), A.addi(a0, a0, 1), A.beq(a0, 0, 8), A.addi(a0, a0, 1), A.ecalli(0)];
  const block0 = Gas.ALU * 2 + Gas.BRANCH;
  const block1 = Gas.ALU + Gas.CALL;

  it('block starts are offset 0 and every offset after a terminator', () => {
    const p = prepareProgram(assemble(...code));
    assert.deepEqual([0, 4, 8, 12, 16].map((o) => isBlockStart(p, o)), [true, false, false, true, false]);
  });

  it('charges each whole block at entry', () => {
    const r = run(code, { gas: 1000n });
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.gasUsed, BigInt(block0 + block1));
    assert.equal(r.gasLeft, BigInt(1000 - block0 - block1));
  });

  it('runs with gas exactly enough, and stops before a block that does not fit, charging nothing for it', () => {
    assert.equal(run(code, { gas: block0 + block1 }).exit, Exit.HALT);
    const r = run(code, { gas: block0 + block1 - 1 });
    assert.equal(r.exit, Exit.OUT_OF_GAS);
    assert.equal(r.pc, CODE_BASE + 12);
    assert.equal(r.gasLeft, BigInt(block1 - 1));
    assert.equal(r.x(a0), 2n, 'the first block ran');
    const none = run(code, { gas: block0 - 1 });
    assert.equal(none.exit, Exit.OUT_OF_GAS);
    assert.equal(none.pc, CODE_BASE);
    assert.equal(none.gasLeft, BigInt(block0 - 1));
    assert.equal(none.x(a0), 0n);
  });

  it('a jump into the middle of a block charges from there to the block end', () => {
    // jal to offset 8 (the second addi of the block 4..12): charges addi + ecalli.
    const r = run([A.jal(0, 8), A.addi(a0, a0, 1), A.addi(a0, a0, 1), A.ecalli(0)], { gas: 1000n });
    assert.equal(r.x(a0), 1n);
    assert.equal(r.gasUsed, BigInt(Gas.JAL + Gas.ALU + Gas.CALL));
  });

  it('fallthrough ends a block without jumping', () => {
    const r = run([A.addi(a0, 0, 3), A.fallthrough(), A.ecalli(0)], { gas: 1000n });
    assert.equal(r.exitArg, 3n);
    assert.equal(r.gasUsed, BigInt(Gas.ALU + Gas.MARKER + Gas.CALL));
    assert.equal(isBlockStart(prepareProgram(assemble(A.addi(a0, 0, 3), A.fallthrough(), A.ecalli(0))), 8), true);
  });

  it('an endless loop ends with OUT_OF_GAS', () => {
    const r = run([A.addi(a0, a0, 1), A.jal(0, -4)], { gas: 10_000n });
    assert.equal(r.exit, Exit.OUT_OF_GAS);
    assert.ok(r.gasLeft < BigInt(Gas.ALU + Gas.JAL));
  });

  it('accepts any u64 of gas, and more than 2^53 stays exact', () => {
    const big = (1n << 64n) - 1n;
    const r = run(code, { gas: big });
    assert.equal(r.gasLeft, big - BigInt(block0 + block1));
    assert.throws(() => run(code, { gas: -1n }), (e) => isNubError(e, 'BadArgument'));
  });
});

describe('machine: exits', () => {
  it('HALT: exitArg is a0 (φ7), pc is the ecalli', () => {
    const r = run([A.addi(a0, 0, -1), A.ecalli(0)]);
    assert.deepEqual([r.exit, r.exitArg, r.pc], [Exit.HALT, (1n << 64n) - 1n, CODE_BASE + 4]);
  });

  it('TRAP: pc is the trap; ECALL (ecall.jar): pc is the next instruction', () => {
    const t = run([A.trap()]);
    assert.deepEqual([t.exit, t.exitArg, t.pc], [Exit.TRAP, 0n, CODE_BASE]);
    const e = run([A.ecallJar(), A.ecalli(0)]);
    assert.deepEqual([e.exit, e.exitArg, e.pc], [Exit.ECALL, 0n, CODE_BASE + 4]);
  });

  it('HOST_CALL: exitArg is the number, pc the next instruction', () => {
    const r = run([A.ecalli(2047), A.ecalli(0)]);
    assert.deepEqual([r.exit, r.exitArg, r.pc], [Exit.HOST_CALL, 2047n, CODE_BASE + 4]);
  });

  it('ecalli 1..63 and negative numbers are a PANIC at the ecalli', () => {
    for (const n of [1, 63, -1, -2048]) {
      const r = run([A.ecalli(n)]);
      assert.deepEqual([r.exit, r.pc, r.exitArg], [Exit.PANIC, CODE_BASE, 0n], `ecalli ${n}`);
    }
    assert.equal(run([A.ecalli(64)]).exit, Exit.HOST_CALL);
  });

  it('a host function handles a call: a0 = its result, execution goes on (charged as a new block)', () => {
    const seen: [number, bigint][] = [];
    const r = run([A.addi(a1, 0, 5), A.ecalli(100), A.addi(a0, a0, 1), A.ecalli(0)], {
      gas: 1000n,
      hostFunction: (regs, _memory, n) => { seen.push([n, regs[8]!]); return 41n; },
    });
    assert.deepEqual(seen, [[100, 5n]]);
    assert.deepEqual([r.exit, r.exitArg], [Exit.HALT, 42n]);
    assert.equal(r.gasUsed, BigInt(Gas.ALU + Gas.CALL + Gas.ALU + Gas.CALL));
  });

  it('a host function may decline (HOST_CALL) and may use memory', () => {
    const mapping = { start: DATA_BASE, size: 4096, writable: true, content: Uint8Array.of(7) };
    const r = run([A.ecalli(70), A.ecalli(71)], {
      mappings: [mapping],
      hostFunction: (_regs, mem, n) => {
        if (n !== 70) return undefined;
        assert.deepEqual(mem.read(DATA_BASE, 1), Uint8Array.of(7));
        assert.equal(mem.read(DATA_BASE - 1, 2), undefined);
        assert.equal(mem.write(DATA_BASE + 1, Uint8Array.of(9)), true);
        assert.equal(mem.write(CODE_BASE, Uint8Array.of(9)), false);
        return 0n;
      },
    });
    assert.deepEqual([r.exit, r.exitArg, r.pc], [Exit.HOST_CALL, 71n, CODE_BASE + 8]);
    assert.equal(r.memory[0]!.bytes[1], 9);
  });
});

describe('machine: control-flow integrity', () => {
  it('a taken branch to the middle of an instruction is a PANIC at the branch', () => {
    const r = run([A.addi(a0, 0, 1), A.beq(0, 0, -2), A.ecalli(0)]);
    assert.deepEqual([r.exit, r.pc], [Exit.PANIC, CODE_BASE + 4]);
    assert.equal(r.x(a0), 1n);
    // not taken: fine
    assert.equal(run([A.bne(0, 0, -2), A.ecalli(0)]).exit, Exit.HALT);
  });

  it('a jal outside the code is a PANIC at the jal, and links nothing', () => {
    const r = run([A.jal(ra, 64), A.ecalli(0)]);
    assert.deepEqual([r.exit, r.pc, r.x(ra)], [Exit.PANIC, CODE_BASE, 0n]);
  });

  it('jalr must land on a block start (mod 2^32); otherwise PANIC at the jalr', () => {
    const code = [A.jalr(0, a0, 0), A.addi(a1, 0, 1), A.ecalli(0), A.ecalli(0)];
    // offset 12 follows a terminator; offset 8 does not (it follows addi).
    assert.equal(run(code, { x: { [a0]: BigInt(CODE_BASE + 12) } }).pc, CODE_BASE + 12);
    assert.equal(run(code, { x: { [a0]: (5n << 32n) + BigInt(CODE_BASE + 12) } }).exit, Exit.HALT);
    const bad = run(code, { x: { [a0]: BigInt(CODE_BASE + 8) } });
    assert.deepEqual([bad.exit, bad.pc], [Exit.PANIC, CODE_BASE]);
    assert.equal(run(code, { x: { [a0]: BigInt(CODE_BASE + 4096) } }).exit, Exit.PANIC);
    assert.equal(run(code, { x: { [a0]: 0n } }).exit, Exit.PANIC);
  });

  it('running off the end of the code is a PANIC at the end', () => {
    const r = run([A.addi(a0, 0, 1)]);
    assert.deepEqual([r.exit, r.pc, r.x(a0)], [Exit.PANIC, CODE_BASE + 4, 1n]);
  });

  it('an entry that is not a block start is a PANIC before anything runs', () => {
    for (const entry of [4, 2, 100, -1]) {
      const r = run([A.addi(a0, 0, 1), A.addi(a0, 0, 2), A.ecalli(0)], { entry, gas: 50n });
      assert.deepEqual([r.exit, r.gasLeft, r.pc], [Exit.PANIC, 50n, (CODE_BASE + entry) >>> 0], `entry ${entry}`);
    }
  });
});

describe('machine: memory', () => {
  const RO = { start: DATA_BASE, size: 4096, writable: false, content: Uint8Array.of(1, 2, 3, 4) };
  const RW = { start: DATA_BASE + 4096, size: 8192, writable: true, content: Uint8Array.of(5, 6, 7, 8) };

  it('code is readable at CODE_BASE up to its page end (zeros after it) and not writable', () => {
    const code = [A.lbu(a0, a1, 0), A.ecalli(0)];
    assert.equal(run(code, { x: { [a1]: BigInt(CODE_BASE) } }).exitArg, BigInt(assemble(...code)[0]!));
    assert.equal(run(code, { x: { [a1]: BigInt(CODE_BASE + 4095) } }).exitArg, 0n);
    const past = run(code, { x: { [a1]: BigInt(CODE_BASE + 4096) } });
    assert.deepEqual([past.exit, past.exitArg, past.pc], [Exit.PAGE_FAULT, BigInt(CODE_BASE + 4096), CODE_BASE]);
    const store = run([A.sb(a0, a1, 0), A.ecalli(0)], { x: { [a1]: BigInt(CODE_BASE) } });
    assert.deepEqual([store.exit, store.exitArg], [Exit.PAGE_FAULT, BigInt(CODE_BASE)]);
  });

  it('a fault in the middle of a block: pc is the access, earlier effects stay, the block stays charged', () => {
    const r = run([A.addi(a0, 0, 7), A.ld(a2, a1, 0), A.addi(a0, 0, 8), A.ecalli(0)], { x: { [a1]: 0x10n }, gas: 1000n });
    assert.deepEqual([r.exit, r.exitArg, r.pc, r.x(a0)], [Exit.PAGE_FAULT, 0x10n, CODE_BASE + 4, 7n]);
    assert.equal(r.gasUsed, BigInt(3 * Gas.ALU - Gas.ALU + Gas.MEMORY + Gas.CALL));
  });

  it('a store to a pinned (read-only) mapping faults and writes nothing', () => {
    const r = run([A.sw(a2, a1, 0), A.ecalli(0)], { mappings: [RO, RW], x: { [a1]: BigInt(DATA_BASE), [a2]: -1n } });
    assert.deepEqual([r.exit, r.exitArg], [Exit.PAGE_FAULT, BigInt(DATA_BASE)]);
    assert.equal(r.memory.length, 1, 'only writable mappings are reported');
  });

  it('an access across two adjacent mappings works; the fault address is the first inaccessible byte', () => {
    const edge = BigInt(DATA_BASE + 4096);
    const ok = run([A.ld(a0, a1, -2), A.ecalli(0)], { mappings: [RO, RW], x: { [a1]: edge } });
    assert.equal(ok.exitArg, 0x0000_0807_0605_0000n); // bytes 0, 0 | 5, 6, 7, 8, 0, 0
    // A store across read-only then writable: faults at the read-only byte, writes nothing.
    const st = run([A.sd(a2, a1, -2), A.ecalli(0)], { mappings: [RO, RW], x: { [a1]: edge, [a2]: -1n } });
    assert.deepEqual([st.exit, st.exitArg], [Exit.PAGE_FAULT, edge - 2n]);
    assert.deepEqual(Array.from(st.memory[0]!.bytes.subarray(0, 4)), [5, 6, 7, 8]);
    // A load running off the end of the last mapping faults at its end.
    const end = BigInt(DATA_BASE + 3 * 4096);
    const off = run([A.lw(a0, a1, -2), A.ecalli(0)], { mappings: [RO, RW], x: { [a1]: end } });
    assert.deepEqual([off.exit, off.exitArg], [Exit.PAGE_FAULT, end]);
  });

  it('addresses wrap at 2^32: the lowest inaccessible address is reported', () => {
    const top = { start: 2 ** 32 - 4096, size: 4096, writable: true, content: new Uint8Array(0) };
    const r = run([A.sw(a2, a1, 0), A.ecalli(0)], { mappings: [top], x: { [a1]: 0xffff_fffen } });
    assert.deepEqual([r.exit, r.exitArg], [Exit.PAGE_FAULT, 0n]);
    assert.deepEqual(Array.from(r.memory[0]!.bytes.subarray(4094)), [0, 0]);
  });

  it('a mapping larger than its content reads zeros beyond it', () => {
    const r = run([A.lbu(a0, a1, 4), A.ecalli(0)], { mappings: [RW], x: { [a1]: BigInt(DATA_BASE + 4096) } });
    assert.equal(r.exitArg, 0n);
  });

  it('refuses mappings below DATA_BASE, not page-aligned, or overlapping', () => {
    const code = [A.ecalli(0)];
    assert.throws(() => run(code, { mappings: [{ ...RO, start: CODE_BASE }] }), (e) => isNubError(e, 'Machine.MappingOutOfRange'));
    assert.throws(() => run(code, { mappings: [{ ...RO, size: 100 }] }), (e) => isNubError(e, 'Machine.MappingNotPageAligned'));
    assert.throws(() => run(code, { mappings: [RO, { ...RW, start: DATA_BASE }] }), (e) => isNubError(e, 'Machine.MappingsOverlap'));
  });
});

describe('machine: invoking an image (engine local)', () => {
  // sum(a0 = n, a1 = step): walks the table in the pinned slot, adds each word times a1,
  // stores the result in the initial slot, spills ra to the stack and reloads it, replies.
  const code = assemble(
    A.addi(sp, sp, -16), A.sd(ra, sp, 8),
    A.lui(a2, DATA_BASE >>> 12), // a2 = table
    A.addi(X.t0, 0, 0), // t0 = sum
    // loop (offset 16): t1 = *a2; t0 += t1 * a1; a2 += 4; a0 -= 1; bnez a0 loop
    A.lw(X.t1, a2, 0), A.mul(X.t1, X.t1, a1), A.add(X.t0, X.t0, X.t1), A.addi(a2, a2, 4), A.addi(a0, a0, -1), A.bne(a0, 0, -20),
    A.lui(a2, (DATA_BASE + 0x1000) >>> 12), A.sd(X.t0, a2, 0),
    A.ld(ra, sp, 8), A.addi(sp, sp, 16), A.add(a0, X.t0, 0), A.ecalli(0),
  );
  const table = new Uint8Array(16);
  new DataView(table.buffer).setInt32(0, 10, true);
  new DataView(table.buffer).setInt32(4, 20, true);
  new DataView(table.buffer).setInt32(8, -5, true);
  const stackTop = DATA_BASE + 0x10_0000;
  const admitted = admitImage(encodeImage(new ImageBuilder()
    .setCode(code)
    .addEndpoint(3, { entryPc: 0, initialRegs: { 0: 0x1234n } })
    .addEndpoint(4, { entryPc: 2 })
    .addPinnedData(1, table)
    .addMapping(DATA_BASE, 4096, 1)
    .addInitialData(2, new Uint8Array(0), 4096)
    .addMapping(DATA_BASE + 0x1000, 4096, 2)
    .addStack(5, stackTop, 4096)
    .build()));

  it('runs an endpoint with arguments and reports registers, gas and writable memory', () => {
    const r = invokeLocal(admitted.imageCap, admitted, 3, { args: [3, 2], gas: 10_000 });
    assert.equal(r.exit, Exit.HALT);
    assert.equal(r.exitArg, 50n);
    assert.equal(r.regs[0], 0x1234n, 'ra came from initial_regs and survived the spill');
    assert.equal(r.regs[1], BigInt(stackTop), 'sp starts at the stack top');
    const out = r.memory.find((m) => m.start === DATA_BASE + 0x1000)!;
    assert.equal(new DataView(out.bytes.buffer).getBigUint64(0, true), 50n);
    assert.equal(r.gasLeft + r.gasUsed, 10_000n);
  });

  it('each invocation gets private writable memory', () => {
    const first = invokeLocal(admitted.imageCap, admitted, 3, { args: [1, 1], gas: 10_000 });
    const second = invokeLocal(admitted.imageCap, admitted, 3, { args: [2, 1], gas: 10_000 });
    assert.equal(first.exitArg, 10n);
    assert.equal(second.exitArg, 30n);
    assert.notEqual(first.memory[0]!.bytes, second.memory[0]!.bytes);
  });

  it('an endpoint not at a block start panics; unknown endpoints and extra arguments are refused', () => {
    assert.equal(invokeLocal(admitted.imageCap, admitted, 4, { gas: 100 }).exit, Exit.PANIC);
    assert.throws(() => invokeLocal(admitted.imageCap, admitted, 9, { gas: 100 }), (e) => isNubError(e, 'UnknownEndpoint'));
    assert.throws(() => invokeLocal(admitted.imageCap, admitted, 3, { gas: 100, args: [1, 2, 3, 4, 5] }), (e) => isNubError(e, 'BadArgument'));
  });
});

describe('machine: bad input always ends in an exit', () => {
  // Seeded xorshift so a failure reproduces.
  let state = 0x2545f491;
  const next = () => { state ^= state << 13; state ^= state >>> 17; state ^= state << 5; return state >>> 0; };
  const EXITS = new Set<number>(Object.values(Exit));

  it('random bytes as code', () => {
    for (let i = 0; i < 300; i++) {
      const code = new Uint8Array(64 + (next() % 512));
      for (let j = 0; j < code.length; j++) code[j] = next() & 0xff;
      const r = runMachine({ program: code, mappings: [], entry: 0, regs: [], gas: 100_000 });
      assert.ok(EXITS.has(r.exit));
    }
  });

  it('random valid instructions with random jumps and memory', () => {
    const regs = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const reg = () => regs[next() % regs.length]!;
    const makers: (() => Encoded)[] = [
      () => A.addi(reg(), reg(), (next() % 4096) - 2048),
      () => A.add(reg(), reg(), reg()),
      () => A.mul(reg(), reg(), reg()),
      () => A.divu(reg(), reg(), reg()),
      () => A.lui(reg(), next() & 0xfffff),
      () => A.ld(reg(), reg(), (next() % 4096) - 2048),
      () => A.sw(reg(), reg(), (next() % 4096) - 2048),
      () => A.beq(reg(), reg(), ((next() % 64) - 32) * 2),
      () => A.jal(reg(), ((next() % 64) - 32) * 2),
      () => A.jalr(reg(), reg(), (next() % 64) - 32),
      () => C.addi(reg() || 1, (next() % 63) - 31 || 1),
      () => C.bnez(8 + (next() % 8), ((next() % 32) - 16) * 2),
      () => A.ecalli(next() % 2 ? 0 : 64 + (next() % 100)),
      () => A.rol(reg(), reg(), reg()),
    ];
    const mapping = { start: DATA_BASE, size: 8192, writable: true, content: new Uint8Array(0) };
    for (let i = 0; i < 300; i++) {
      const insts = Array.from({ length: 16 + (next() % 64) }, () => makers[next() % makers.length]!());
      const seeds = Array.from({ length: 13 }, () => (next() % 3 === 0 ? BigInt(DATA_BASE + (next() % 8192)) : BigInt(next())));
      const r = runMachine({
        program: assemble(...insts), mappings: [mapping], entry: 0, regs: seeds, gas: 50_000,
        hostFunction: (_regs, _memory, n) => (n % 2 ? BigInt(n) : undefined),
      });
      assert.ok(EXITS.has(r.exit));
      assert.ok(r.gasLeft >= 0n && r.gasLeft <= 50_000n);
    }
  });
});
