// scripts/prune-dist.mjs: outputs of deleted sources leave dist/ (else a deleted test still runs and a deleted module still ships).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../lib/native/binding.js';

describe('scripts/prune-dist.mjs', () => {
  it('removes the outputs whose .ts source is gone and keeps the rest', async () => {
    const { pruneDist } = (await import(pathToFileURL(path.join(packageRoot(), 'scripts', 'prune-dist.mjs')).href)) as {
      pruneDist(root: string): string[];
    };
    const root = mkdtempSync(path.join(tmpdir(), 'nub-prune-'));
    try {
      mkdirSync(path.join(root, 'lib', 'x'), { recursive: true });
      mkdirSync(path.join(root, 'dist', 'lib', 'x'), { recursive: true });
      writeFileSync(path.join(root, 'lib', 'x', 'kept.ts'), '');
      const outputs = (base: string) => ['.js', '.d.ts', '.js.map'].map((ext) => path.join(root, 'dist', 'lib', 'x', base + ext));
      for (const f of [...outputs('kept'), ...outputs('gone')]) writeFileSync(f, '');
      assert.deepEqual(pruneDist(root).sort(), outputs('gone').sort());
      assert.ok(outputs('kept').every((f) => existsSync(f)));
      assert.ok(outputs('gone').every((f) => !existsSync(f)));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
