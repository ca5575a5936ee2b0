/**
 * Image decode + admission vs one SHA-256 of the same bytes, in the same run, and
 * building time at several sizes (it should grow linearly).
 * Run: `node dist/bench/image-decode.js` after `npm run build:ts`.
 */
import { createHash } from 'node:crypto';
import { ImageBuilder, admitImage, checkImage, decodeImage, encodeImage, imageCap } from '../lib/image/index.js';

const MiB = 2 ** 20;

function random(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const words = new Uint32Array(out.buffer);
  let x = seed;
  for (let i = 0; i < words.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; words[i] = x >>> 0; }
  return out;
}

/** An image of about `total` bytes, `dataShare` of it pinned and initial data (random, so nothing dedupes), the rest code. */
function builder(total: number, dataShare = 0.75): ImageBuilder {
  const data = Math.round((total * dataShare) / 3 / 4096) * 4096;
  return new ImageBuilder()
    .setCode(random(total - 3 * data, 1))
    .addEndpoint(0, { entryPc: 0 })
    .addPinnedData(1, random(data, 2))
    .addInitialData(2, random(2 * data, 3))
    .addStack(3, 0x8000_0000, MiB)
    .addMapping(0x1000_0000, Math.max(data, 4096), 1)
    .addMapping(0x2000_0000, Math.max(2 * data, 4096), 2);
}

function median(runs: number, fn: () => void): number {
  fn(); // warm up
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

for (const share of [0.75, 0.25]) {
  const bytes = builder(16 * MiB, share).encode();
  const sha = median(15, () => { createHash('sha256').update(bytes).digest(); });
  const rows: [string, number][] = [
    ['SHA-256 of the bytes (baseline)', sha],
    ['decodeImage', median(15, () => { decodeImage(bytes); })],
    ['decode + admission checks', median(15, () => { checkImage(decodeImage(bytes)); })],
    ['decode + imageCap (+ data cap hashes)', median(15, () => { imageCap(decodeImage(bytes)); })],
    ['admitImage (+ content hash)', median(5, () => { admitImage(bytes); })],
  ];
  console.log(`\nimage: ${(bytes.length / MiB).toFixed(2)} MiB, ${share * 100}% data, the rest code; median of runs`);
  console.log('  step                                     ms  × SHA-256');
  for (const [name, ms] of rows) console.log(`  ${name.padEnd(38)} ${ms.toFixed(2).padStart(6)}  ${(ms / sha).toFixed(2).padStart(8)}`);
}

console.log('\nbuilding (ImageBuilder.build + encode, 75% data)');
console.log('  size        ms  ms/MiB');
for (const size of [4, 8, 16, 32]) {
  const b = builder(size * MiB);
  const ms = median(5, () => { encodeImage(b.build()); });
  console.log(`  ${String(size).padStart(2)} MiB ${ms.toFixed(2).padStart(8)}  ${(ms / size).toFixed(2).padStart(6)}`);
}
