// The code block of README.md's "Using nub from Node" section must run as written (with 'nub' resolved to this build).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url)); // <out>/test/unit
const root = join(here, '..', '..', '..');
const libIndex = join(here, '..', '..', 'lib', 'index.js');

function readmeExample(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Using nub from Node'));
  assert.ok(section, 'README.md has a "Using nub from Node" section');
  const block = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the section has a js code block');
  return block.replace(/from 'nub'/g, `from '${pathToFileURL(libIndex).href}'`);
}

describe('README: Using nub from Node', () => {
  it('runs and prints what it says', function () {
    this.timeout(60_000);
    const dir = mkdtempSync(join(tmpdir(), 'nub-readme-'));
    try {
      const file = join(dir, 'example.mjs');
      writeFileSync(file, readmeExample());
      const out = execFileSync(process.execPath, [file], { encoding: 'utf8' });
      assert.equal(out.trim(), '42n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
