/**
 * SHA-256 for SSZ merkleization, shared by every schema in nub.
 *
 * @chainsafe/ssz defaults to a pure-JS hasher; we switch the whole process to the
 * native `hashtree` hasher (SHA-NI / AVX2, batched), which is what makes hashing a
 * 16 MiB image affordable. The hasher is read at call time, so setting it when this
 * module loads (before any hashing) is enough.
 */
import { hashInto } from '@chainsafe/hashtree';
import { setHasher } from '@chainsafe/persistent-merkle-tree';
import { hasher as hashtreeHasher } from '@chainsafe/persistent-merkle-tree/hasher/hashtree';
import { blake2b } from '@noble/hashes/blake2.js';

setHasher(hashtreeHasher);

/** `zeroHashes[d]` = root of a depth-`d` tree of zero chunks. */
export const zeroHashes: Uint8Array[] = [new Uint8Array(32)];
for (let d = 1; d <= 64; d++) zeroHashes.push(hashPair(zeroHashes[d - 1]!, zeroHashes[d - 1]!));

/** SHA-256(a ‖ b) for two 32-byte chunks. */
export function hashPair(a: Uint8Array, b: Uint8Array): Uint8Array {
  const input = new Uint8Array(64);
  input.set(a, 0);
  input.set(b, 32);
  const out = new Uint8Array(32);
  hashInto(input, out);
  return out;
}

/**
 * Hashes `input` (a whole number of 64-byte pairs) pairwise into `output` (half its
 * length), in one native call.
 */
export function hashPairsInto(input: Uint8Array, output: Uint8Array): void {
  hashInto(input, output);
}

/**
 * Hashes `chunks` (whole 32-byte chunks) up `levels` levels of a merkle tree, a whole
 * level per native call; an odd chunk out is paired with the zero subtree of its level.
 * Returns the chunks of the level reached.
 */
export function merkleizeLevels(chunks: Uint8Array, levels: number): Uint8Array {
  let input = chunks;
  for (let level = 0; level < levels; level++) {
    let count = input.length / 32;
    if (count % 2 === 1) {
      const padded = new Uint8Array((count + 1) * 32);
      padded.set(input);
      padded.set(zeroHashes[level]!, count * 32);
      input = padded;
      count++;
    }
    const out = new Uint8Array(count * 16);
    if (count > 0) hashInto(input, out);
    input = out;
  }
  return input;
}

/** `hash_tree_root` of a `List[uint8, limit]`, without copying the bytes more than once. */
export function byteListRoot(bytes: Uint8Array, limitBytes: number): Uint8Array {
  const depth = Math.ceil(Math.log2(Math.ceil(limitBytes / 32)));
  const chunkCount = Math.ceil(bytes.length / 32);
  const padded = new Uint8Array(chunkCount * 32);
  padded.set(bytes);
  const levels = chunkCount <= 1 ? 0 : Math.ceil(Math.log2(chunkCount));
  let root = chunkCount === 0 ? zeroHashes[0]! : merkleizeLevels(padded, levels);
  for (let d = levels; d < depth; d++) root = hashPair(root, zeroHashes[d]!);
  return mixIn(root, bytes.length);
}

/** `mix_in_length` / `mix_in_selector`: SHA-256(root ‖ uint256_le(n)). */
export function mixIn(root: Uint8Array, n: number): Uint8Array {
  const chunk = new Uint8Array(32);
  new DataView(chunk.buffer).setUint32(0, n >>> 0, true);
  new DataView(chunk.buffer).setUint32(4, Math.floor(n / 2 ** 32), true);
  return hashPair(root, chunk);
}

/** Blake2b-256, the hash that extends type chains (SPEC section 4). */
export function blake2b256(bytes: Uint8Array): Uint8Array {
  return blake2b(bytes, { dkLen: 32 });
}
