import assert from 'node:assert/strict';
import { runFuzz } from '../support/image-fuzz.js';

describe('image: fuzzed decoding and admission', () => {
  it('ends every mutated image in a value or a typed error, quickly and without big allocations', function () {
    this.timeout(60_000);
    const before = process.memoryUsage().arrayBuffers;
    const stats = runFuzz(20261122, 3000);
    const grown = process.memoryUsage().arrayBuffers - before;
    // The run must reach both outcomes and several distinct checks, or it proves little.
    assert.ok(stats.admitted > 50, `only ${stats.admitted} admitted`);
    const codes = [...stats.errors.keys()];
    for (const family of ['Decode.', 'DataDesc.', 'SourcePath', 'CodeRefOutOfRange', 'RegisterIndexOutOfRange']) {
      assert.ok(codes.some((c) => c.startsWith(family)), `no ${family} error among ${codes.join(', ')}`);
    }
    assert.ok(stats.slowestMs < 1000, `slowest case took ${stats.slowestMs} ms`);
    // Declared sizes reach 2^64: none of them may turn into buffers.
    assert.ok(grown < 64 * 2 ** 20, `array buffers grew by ${grown} bytes`);
  });
});
