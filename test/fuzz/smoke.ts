/** Mocha tests running each fuzzer for `cases` seeded cases; nothing may be found. */
import assert from 'node:assert/strict';
import type { FuzzOptions, FuzzReport } from './common.js';

export function fuzzSmoke(kvm: boolean, fuzzers: Record<string, (o: FuzzOptions) => Promise<FuzzReport>>, cases: number): void {
  for (const [name, fuzz] of Object.entries(fuzzers)) {
    it(`${name}: ${cases} seeded cases, nothing found`, async () => {
      const report = await fuzz({ seed: 14, cases, seconds: 120, kvm });
      assert.equal(report.cases, cases);
      assert.deepEqual(report.findings, []);
    });
  }
}

