/**
 * Issue 14's regression tests below the Sandbox: admission's memory follows the bytes
 * stored, the local engine's pre-decoding stays off the JS heap and is bounded, no
 * write-able window on a read-only mapping is public, the tools refuse what is not a
 * regular file, and the host's check of a guest's INVOKE result.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataCap, MAX_CODE_SIZE } from '../../lib/caps/index.js';
import { resultLie, type GuestInvokeRequest } from '../../lib/guest/invoke.js';
import { admitImage, encodeImage, ImageBuilder } from '../../lib/image/index.js';
import { CODE_BASE, Exit, type ExitCode } from '../../lib/machine/abi.js';
import type { MachineStop } from '../../lib/machine/invoke.js';
import { prepareProgram } from '../../lib/machine/program.js';
import { ImmutableMapping } from '../../lib/snapshot/immutable-mapping.js';
import { expectNubError } from '../support/nub-error.js';
import { A, assemble } from '../support/machine-asm.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/** An image whose initial slot 2 names `refs` pages, every one the arena's first byte. */
function repeatedPageImage(refs: number): Uint8Array {
  const value = new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0 }).addInitialData(2, Uint8Array.of(1), refs * 4096).build();
  value.initialSlots[0]!.value.pages = Array.from({ length: refs }, (_, i) => ({ pageIndex: i, arenaOff: 0, len: 1 }));
  return encodeImage(value);
}

/** Runs an async function body in a fresh node (`dist` is the compiled tree) and returns what it returns. */
function inChild(body: string): Record<string, any> {
  const script = `const dist = ${JSON.stringify(join(root, 'dist'))}; const out = await (async () => { ${body} })(); console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, any>;
}

function nub(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'dist/lib/cli/main.js'), ...args], { encoding: 'utf8', timeout: 30_000, maxBuffer: 1 << 20 });
  return { status: r.status, stderr: r.stderr };
}

describe('hostile input below the sandbox (issue 14)', function () {
  this.timeout(60_000);
  it('item 1: repeated page refs are stored and hashed once: 2^20 − 1 refs to one byte cost what the file holds', () => {
    const smallImage = admitImage(repeatedPageImage(1000));
    const small = smallImage.dataCaps.values().next().value!.cap;
    const content = new Uint8Array(1000 * 4096);
    for (let i = 0; i < 1000; i++) content[i * 4096] = smallImage.image.arena[0]!;
    assert.deepEqual(small.hash(), DataCap.paged(content).hash());
    assert.deepEqual(Array.from(small.leadingBytes(4097)).filter((b) => b !== 0).length, 2);
    // Measured in a child process, so only admission counts. Linear in the file (the page
    // list's hash levels are transient arrays), where it was 4 GiB of pages.
    const r = inChild(`
      const { admitImage, encodeImage, ImageBuilder } = await import(dist + '/lib/image/index.js');
      const refs = 2 ** 20 - 1;
      const value = new ImageBuilder().setCode(Uint8Array.of(0x0b, 0x20, 0, 0)).addEndpoint(1, { entryPc: 0 }).addInitialData(2, Uint8Array.of(1), refs * 4096).build();
      value.initialSlots[0].value.pages = Array.from({ length: refs }, (_, i) => ({ pageIndex: i, arenaOff: 0, len: 1 }));
      const bytes = encodeImage(value);
      const before = process.memoryUsage().arrayBuffers;
      const cap = admitImage(bytes).dataCaps.values().next().value.cap;
      return { file: bytes.length, grew: process.memoryUsage().arrayBuffers - before, size: cap.size };`);
    assert.equal(r.size, (2 ** 20 - 1) * 4096);
    assert.ok(r.grew < 32 * r.file, `admission allocated ${r.grew} bytes of buffers for a ${r.file}-byte file`);
  });

  it('item 2: pre-decoding keeps no object per instruction, and code past the local limit is MemoryBudgetExceeded, not a dead process', () => {
    expectNubError(() => prepareProgram(new Uint8Array(MAX_CODE_SIZE)), 'MemoryBudgetExceeded');
    const r = inChild(`
      const { prepareProgram } = await import(dist + '/lib/machine/program.js');
      const before = process.memoryUsage().heapUsed;
      const program = prepareProgram(new Uint8Array(8 << 20)); // 4 Mi illegal compressed instructions
      return { grew: process.memoryUsage().heapUsed - before, starts: [program.blockStart[0], program.blockStart[1]] };`);
    assert.ok(r.grew < 64 << 20, `the JS heap grew by ${r.grew} bytes`);
    assert.deepEqual(r.starts, [1, 1], 'an illegal instruction ends its block');
  });

  it('item 5: no read-only mapping hands out a writable Uint8Array (nothing named unsafeBytes, in the class or its .d.ts)', () => {
    const m = ImmutableMapping.fromBytes(Uint8Array.of(1, 2, 3));
    try {
      assert.equal('unsafeBytes' in m, false);
      assert.ok(!readFileSync(join(root, 'dist/lib/snapshot/immutable-mapping.d.ts'), 'utf8').includes('unsafeBytes'));
      assert.deepEqual(Array.from(m.read(0, 3)), [1, 2, 3]);
    } finally {
      m.close();
    }
  });

  it('items 6 and 21: nub inspect / nub run refuse /dev/zero, a directory and a missing path with a typed error, no stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nub-hostile-'));
    try {
      for (const [args, code] of [
        [['inspect', '/dev/zero'], 'NotAFile'], [['run', '--engine', 'local', '/dev/zero'], 'NotAFile'],
        [['inspect', dir], 'NotAFile'], [['inspect', join(dir, 'missing.ssz')], 'ENOENT'], [['run', '--engine', 'local', join(dir, 'missing.ssz')], 'ENOENT'],
      ] as const) {
        const r = nub(...args);
        assert.notEqual(r.status, 0, args.join(' '));
        assert.ok(r.stderr.includes(`[${code}]`), `${args.join(' ')}: ${r.stderr}`);
        assert.ok(!r.stderr.includes('internal error') && !r.stderr.includes('    at '), r.stderr);
      }
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  describe('item 13: the host checks every field of a guest INVOKE result', () => {
    const req = { image: { id: 0, codeLen: 64, regions: [] }, entry: 8n, regs: [], gas: 1000n } as unknown as GuestInvokeRequest;
    const ok: MachineStop = { exit: Exit.HALT, exitArg: 5n, regs: [0n, 0n, 0n, 0n, 0n, 0n, 0n, 5n, 0n, 0n, 0n, 0n, 0n], pc: CODE_BASE + 12, gasLeft: 900n, instructions: 4 };
    it('accepts what could be true (also a PANIC at a bad entry past the code)', () => {
      assert.equal(resultLie(ok, req), undefined);
      assert.equal(resultLie({ ...ok, exit: Exit.PANIC, exitArg: 0n, pc: CODE_BASE + 4000, gasLeft: 1000n, instructions: 0 }, { ...req, entry: 4000n }), undefined);
      assert.equal(resultLie({ ...ok, exit: Exit.PAGE_FAULT, exitArg: 0xffff_fff0n }, req), undefined);
      assert.equal(resultLie({ ...ok, exit: Exit.HOST_CALL, exitArg: 2047n, pc: CODE_BASE + 64 }, req), undefined);
    });
    const lies: [string, Partial<MachineStop>][] = [
      ['an unknown exit', { exit: 0x7fff_ffff as ExitCode }],
      ['more gas left than given', { gasLeft: 18446744073709541615n }],
      ['a pc outside the code', { pc: 0xffff_ffff }],
      ['a pc below the code', { pc: CODE_BASE - 2 }],
      ['more instructions than gas', { instructions: 1.8e19 }],
      ['more instructions than gas used', { instructions: 101 }],
      ['a HALT whose exitArg is not φ7', { exitArg: 6n }],
      ['a fault address past 2^32', { exit: Exit.PAGE_FAULT, exitArg: 1n << 32n }],
      ['a host call number outside 64..2047', { exit: Exit.HOST_CALL, exitArg: 3n }],
      ['an exitArg on OUT_OF_GAS', { exit: Exit.OUT_OF_GAS, exitArg: 1n }],
    ];
    for (const [what, lie] of lies) it(`refuses ${what}`, () => assert.ok(resultLie({ ...ok, ...lie }, req) !== undefined));
  });
});
