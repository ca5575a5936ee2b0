/** docs/machine.md's gas table must say what lib/machine/isa.ts does. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Gas, ISA } from '../../lib/machine/index.js';

describe('machine: docs/machine.md', () => {
  it('lists every mnemonic under its gas class with that class cost', () => {
    const doc = readFileSync(fileURLToPath(new URL('../../../docs/machine.md', import.meta.url)), 'utf8');
    const start = doc.indexOf('| class | gas |');
    const table = doc.slice(start, doc.indexOf('\n\n', start));
    const rows = new Map<string, { gas: number; mnemonics: string[] }>();
    for (const match of table.matchAll(/^\| ([A-Z]+) \| (\d+) \| (.*) \|$/gm)) {
      rows.set(match[1]!, { gas: Number(match[2]), mnemonics: [...match[3]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!) });
    }
    assert.deepEqual([...rows.keys()].sort(), Object.keys(Gas).sort());
    for (const [cls, cost] of Object.entries(Gas)) {
      const expected = Object.entries(ISA).filter(([, info]) => info.gas === cls).map(([name]) => name).sort();
      assert.equal(rows.get(cls)!.gas, cost, `cost of ${cls}`);
      assert.deepEqual(rows.get(cls)!.mnemonics.sort(), expected, `mnemonics of ${cls}`);
    }
  });
});
