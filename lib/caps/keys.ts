/** Keys (SPEC section 2): byte strings naming cnode slots, ordered byte-wise with a prefix first. */
import { NubError } from '../errors.js';

/** Anything the API accepts as a key: bytes, a number `n` (the one-byte key `[n]`), or byte values. */
export type KeyLike = Uint8Array | number | readonly number[];

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/** Normalises a KeyLike to a fresh `Uint8Array`; throws `BadKey` for a value that is not a byte. */
export function toKey(k: KeyLike): Uint8Array {
  if (k instanceof Uint8Array) return k.slice();
  const bytes = typeof k === 'number' ? [k] : k;
  if (!Array.isArray(bytes)) throw new NubError('BadKey', `a key is bytes, a byte or an array of bytes, not ${describe(k)}`);
  for (const b of bytes) {
    if (!Number.isInteger(b) || b < 0 || b > 255) {
      throw new NubError('BadKey', `key byte ${String(b)} is not an integer in 0..255`);
    }
  }
  return Uint8Array.from(bytes);
}

/** Lexicographic by byte, a strict prefix first: `[1] < [1,0] < [2]`. */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  return compareKeys(a, b) === 0;
}

/** How a key appears in error paths and listings: `[1,0]`. */
export function formatKey(key: Uint8Array): string {
  return `[${Array.from(key).join(',')}]`;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
