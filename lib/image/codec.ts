/** The image file's bytes and content hash. */
import type { Type } from '@chainsafe/ssz';
import { LIST_LIMIT, byteListRoot, decodeStrict, merkleizeLevels } from '../caps/index.js';
import { Image, type ImageValue } from './schema.js';

/** Strictly decodes `image.ssz` bytes; any violation is a `NubError` with a `Decode.*` code and a path. */
export function decodeImage(bytes: Uint8Array): ImageValue {
  return decodeStrict(Image, bytes, 'Image');
}

export function encodeImage(image: ImageValue): Uint8Array {
  return Image.serialize(image);
}

/**
 * `hash_tree_root(Image)`. The header fields go through their schemas; the arena,
 * nearly all of the bytes, through the batched byte-list merkleizer (several times
 * faster than the generic path for a large arena, same root).
 */
export function imageContentHash(image: ImageValue): Uint8Array {
  const roots = new Uint8Array(32 * Image.fieldsEntries.length);
  Image.fieldsEntries.forEach(({ fieldName, fieldType }, i) => {
    const root = fieldName === 'arena'
      ? byteListRoot(image.arena, LIST_LIMIT)
      : (fieldType as Type<unknown>).hashTreeRoot(image[fieldName]);
    roots.set(root, 32 * i);
  });
  return merkleizeLevels(roots, Math.ceil(Math.log2(Image.fieldsEntries.length)));
}
