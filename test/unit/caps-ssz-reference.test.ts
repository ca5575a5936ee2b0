/**
 * A tiny SSZ merkleizer written from the SSZ spec with node's own SHA-256, sharing no
 * code with lib/caps, so known-answer tests compare two independent computations.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

const ZERO = new Uint8Array(32);
const zero: Uint8Array[] = [ZERO];
for (let i = 1; i < 64; i++) zero.push(sha256(zero[i - 1]!, zero[i - 1]!));
export const refZeroHash = (depth: number): Uint8Array => zero[depth]!;

/** Right-pads to whole 32-byte chunks. */
export function chunks(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 32) {
    const c = new Uint8Array(32);
    c.set(bytes.subarray(i, i + 32));
    out.push(c);
  }
  return out;
}

/** merkleize(chunks, limit): a tree of depth ceil(log2(limit)), padded with zero chunks. */
export function merkleize(leaves: Uint8Array[], limit: number): Uint8Array {
  const depth = Math.ceil(Math.log2(Math.max(limit, 1)));
  let level = leaves;
  for (let d = 0; d < depth; d++) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(sha256(level[i]!, level[i + 1] ?? zero[d]!));
    level = next;
  }
  return level[0] ?? zero[depth]!;
}

export function uintChunk(n: number | bigint, bytes: number): Uint8Array {
  const c = new Uint8Array(32);
  let v = BigInt(n);
  for (let i = 0; i < bytes; i++) { c[i] = Number(v & 0xffn); v >>= 8n; }
  return c;
}

export function mixIn(root: Uint8Array, n: number): Uint8Array {
  return sha256(root, uintChunk(n, 8));
}

/** `Key` / any `List[uint8, 2^32]`. */
export function byteListRoot(bytes: Uint8Array): Uint8Array {
  return mixIn(merkleize(chunks(bytes), 2 ** 32 / 32), bytes.length);
}

export function containerRoot(fieldRoots: Uint8Array[]): Uint8Array {
  return merkleize(fieldRoots, fieldRoots.length);
}

export function listRoot(elementRoots: Uint8Array[], limit = 2 ** 32): Uint8Array {
  return mixIn(merkleize(elementRoots, limit), elementRoots.length);
}

describe('independent SSZ reference', () => {
  it('has the well-known zero hashes', () => {
    assert.equal(Buffer.from(refZeroHash(1)).toString('hex'), 'f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b');
  });
  it('merkleizes a padded list the long way round', () => {
    const a = uintChunk(1, 1);
    const b = uintChunk(2, 1);
    assert.deepEqual(merkleize([a, b, a], 8), sha256(sha256(sha256(a, b), sha256(a, ZERO)), refZeroHash(2)));
  });
});
