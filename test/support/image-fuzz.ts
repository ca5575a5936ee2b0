/**
 * Fuzzing support for decoding + admission, shared by the unit test (a quick seeded
 * sample) and `scripts/fuzz-image.mjs` (100,000 cases). Every input must end in a
 * value or a `NubError`; anything else is a bug and is thrown with the input attached.
 */
import { NubError } from '../../lib/errors.js';
import { admitImage } from '../../lib/image/admit.js';
import { ImageBuilder } from '../../lib/image/builder.js';
import { encodeImage } from '../../lib/image/codec.js';
import type { ImageValue } from '../../lib/image/schema.js';

/** xorshift32: small, seedable, and the same on every machine. */
export class Rng {
  #s: number;
  constructor(seed: number) { this.#s = seed >>> 0 || 1; }
  next(): number {
    let x = this.#s;
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    this.#s = x;
    return x;
  }
  below(n: number): number { return this.next() % n; }
  bytes(n: number): Uint8Array { return Uint8Array.from({ length: n }, () => this.next() & 0xff); }
}

/** A valid image with random content, used as the starting point for mutations. */
function seedImage(rng: Rng): ImageValue {
  const b = new ImageBuilder().setCode(rng.bytes(1 + rng.below(64)));
  for (let i = 0; i < 1 + rng.below(3); i++) b.addEndpoint([i, rng.below(4)], { entryPc: rng.below(64), initialRegs: { 1: 0x2000_0000, 7: rng.next() } });
  const page = rng.bytes(1 + rng.below(200));
  b.addPinnedData(1, Uint8Array.of(...page, ...new Uint8Array(4096), ...page), 4096 * (2 + rng.below(3)));
  b.addInitialData([2, 0], rng.bytes(rng.below(5000)));
  b.addStack(3, 0x3000_0000, 4096);
  b.addMapping(0x1000_0000, 8192, 1).addMapping(0x1100_0000, 4096, [[2, 0]]);
  if (rng.below(2)) b.setYieldReceiverSlot(rng.bytes(rng.below(3)));
  for (let i = rng.below(3); i > 0; i--) b.addGasSlot(rng.bytes(1 + rng.below(2)));
  b.addQuotaSlot(4);
  return b.build();
}

const BIG = [0, 1, 4095, 4096, 2 ** 31, 2 ** 32 - 1, 2 ** 32 - 4096];
const BIG64 = [0n, 1n, 4096n, 2n ** 32n, 2n ** 32n + 4096n, 2n ** 40n, 2n ** 63n, 2n ** 64n - 4096n, 2n ** 64n - 1n];

/** Structural edits to a valid image: lying sizes, far page indexes, deep paths, bad registers. */
function mutateStructure(rng: Rng, image: ImageValue): ImageValue {
  const pick = <T>(xs: readonly T[]): T => xs[rng.below(xs.length)]!;
  const desc = image.initialSlots[0]!.value;
  switch (rng.below(7)) {
    case 0: desc.size = pick(BIG64); break;
    case 1: desc.pages.push({ pageIndex: pick(BIG), arenaOff: pick(BIG), len: pick(BIG) }); break;
    case 2: image.code = { arenaOff: pick(BIG), len: pick(BIG) }; break;
    case 3: image.memoryMappings[0]!.source = Array.from({ length: rng.below(40) }, () => rng.bytes(rng.below(3))); break;
    case 4: image.endpoints[0]!.value.initialRegs.push({ key: 13 + rng.below(243), value: 1n }); break;
    case 5: image.memoryMappings[0]!.size = pick(BIG64); break;
    default: image.initialSlots.reverse(); image.endpoints.reverse(); break;
  }
  return image;
}

/** Byte-level damage: bit flips, truncation, offset and length tweaks, junk. */
function mutateBytes(rng: Rng, input: Uint8Array): Uint8Array {
  let bytes = input.slice();
  const rounds = 1 + rng.below(3);
  for (let r = 0; r < rounds && bytes.length > 0; r++) {
    const view = new DataView(bytes.buffer);
    switch (rng.below(6)) {
      case 0: for (let i = 1 + rng.below(8); i > 0; i--) bytes[rng.below(bytes.length)]! ^= 1 << rng.below(8); break;
      case 1: bytes = bytes.slice(0, rng.below(bytes.length)); break;
      case 2: { // an offset in the header (where most offsets live) or anywhere
        const at = rng.below(2) ? 8 + 4 * rng.below(8) : rng.below(Math.max(1, bytes.length - 3));
        if (at + 4 <= bytes.length) view.setUint32(at, (view.getUint32(at, true) + rng.below(9) - 4) >>> 0, true);
        break;
      }
      case 3: { // a length or size: a big value
        const at = rng.below(Math.max(1, bytes.length - 3));
        if (at + 4 <= bytes.length) view.setUint32(at, BIG[rng.below(BIG.length)]!, true);
        break;
      }
      case 4: bytes = Uint8Array.of(...bytes, ...rng.bytes(1 + rng.below(8))); break;
      default: { // drop a span
        const at = rng.below(bytes.length);
        bytes = Uint8Array.of(...bytes.subarray(0, at), ...bytes.subarray(at + 1 + rng.below(16)));
      }
    }
  }
  return bytes;
}

export interface FuzzStats {
  cases: number;
  admitted: number;
  errors: Map<string, number>;
  slowestMs: number;
}

/** Builds the `index`-th case of the run seeded with `seed`. */
export function fuzzInput(seed: number, index: number): Uint8Array {
  const rng = new Rng(seed * 1_000_003 + index);
  let image = seedImage(rng);
  if (rng.below(2)) image = mutateStructure(rng, image);
  const bytes = encodeImage(image);
  return rng.below(5) === 0 ? bytes : mutateBytes(rng, bytes);
}

/** Runs one input through decoding and admission; returns the error code, or null when admitted. */
export function fuzzOne(bytes: Uint8Array): string | null {
  try {
    const { image } = admitImage(bytes);
    // Strict decoding means an accepted input has exactly one encoding: its own.
    if (Buffer.compare(encodeImage(image), bytes) !== 0) {
      throw new Error('an admitted image re-encodes to different bytes');
    }
    return null;
  } catch (err) {
    if (err instanceof NubError) return err.code;
    const wrapped = new Error(`untyped failure on fuzz input: ${(err as Error).message}`, { cause: err });
    (wrapped as Error & { input?: string }).input = Buffer.from(bytes).toString('hex');
    throw wrapped;
  }
}

export function runFuzz(seed: number, cases: number, onProgress?: (done: number) => void): FuzzStats {
  const stats: FuzzStats = { cases, admitted: 0, errors: new Map(), slowestMs: 0 };
  for (let i = 0; i < cases; i++) {
    const input = fuzzInput(seed, i);
    const t = performance.now();
    const code = fuzzOne(input);
    stats.slowestMs = Math.max(stats.slowestMs, performance.now() - t);
    if (code === null) stats.admitted++;
    else stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1);
    if (onProgress && (i + 1) % 500 === 0) onProgress(i + 1);
  }
  return stats;
}
