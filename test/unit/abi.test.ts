// The guest ABI header: generated from lib/abi/guest-abi.ts, current, and checked by gcc.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BootInfo } from '../../lib/abi/guest-abi.js';

// This file runs from <root>/<out dir>/test/unit/.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const headerPath = join(root, 'guest', 'include', 'nub_abi.h');

/** Compiles `source` (which includes nub_abi.h) as freestanding C11; returns gcc's status and messages. */
function compile(source: string, includeDir: string): { status: number | null; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nub-abi-'));
  try {
    writeFileSync(join(dir, 'check.c'), source);
    const r = spawnSync('gcc', ['-std=c11', '-ffreestanding', '-Wall', '-Werror', '-fsyntax-only', '-I', includeDir, join(dir, 'check.c')], { encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a generator with --check: it fails when a file it writes is stale. */
function checkGenerated(script: string): void {
  const zx = join(root, 'node_modules', 'zx', 'build', 'cli.js');
  const r = spawnSync(process.execPath, [zx, join(root, 'scripts', script), '--check'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
}

describe('guest ABI header', () => {
  it('is what scripts/gen-abi.mjs generates from the TypeScript declaration', () => checkGenerated('gen-abi.mjs'));

  // The other generators share its emitter (scripts/c-header.mjs), and their outputs are checked the same way.
  for (const script of ['gen-engine-tables.mjs', 'gen-errors.mjs', 'gen-vcpu-fields.mjs']) {
    it(`and ${script}'s outputs are what it generates`, () => checkGenerated(script));
  }

  it('compiles with gcc, its _Static_asserts holding', () => {
    const r = compile('#include "nub_abi.h"\n', join(root, 'guest', 'include'));
    assert.equal(r.status, 0, r.stderr);
  });

  it('has _Static_asserts that catch a struct gcc lays out differently', () => {
    // Widen one field in a copy of the header: gcc must then reject it.
    const dir = mkdtempSync(join(tmpdir(), 'nub-abi-bad-'));
    try {
      const header = readFileSync(headerPath, 'utf8');
      const field = BootInfo.fields.find((f) => f.name === 'layout_version')!;
      assert.equal(field.scalar, 'u32');
      const tampered = header.replace(/(struct nub_boot_info \{[^}]*?)uint32_t layout_version;/, '$1uint64_t layout_version;');
      assert.notEqual(tampered, header);
      writeFileSync(join(dir, 'nub_abi.h'), tampered);
      const r = compile('#include "nub_abi.h"\n', dir);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /nub_boot_info/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
