/**
 * Strict SSZ decoding of untrusted bytes.
 *
 * @chainsafe/ssz checks offsets but lets some malformed inputs through or fails with
 * plain `Error`s (a None option followed by bytes, an empty union, a truncated fixed
 * part read past the end). So before handing bytes to it we walk the schema itself
 * and check every offset, length, selector and sorted-map key order, failing with a
 * `NubError` whose code is `Decode.<What>` and whose `path` names the field. Every
 * size the walk uses comes from the input's own length, so nothing is allocated
 * from a declared size.
 */
import {
  ByteListType, ContainerType, ListBasicType, ListCompositeType, NoneType, UnionType, type Type,
} from '@chainsafe/ssz';
import { NubError, type CodeFamily } from '../errors.js';
import { compareKeys } from './keys.js';
import { sortedMapTypes } from './schema.js';

type AnyType = Type<unknown>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the walk reflects over any schema
type AnyContainer = ContainerType<any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyList = ListCompositeType<any>;
interface Range { start: number; end: number }

/** Validates `bytes` against `type` completely, then deserialises them. */
export function decodeStrict<T>(type: Type<T>, bytes: Uint8Array, what: string): T {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  walk(type as AnyType, view, 0, bytes.length, '');
  try {
    return type.deserialize(bytes);
  } catch (err) {
    // Unreachable if the walk above is complete; kept so no plain Error escapes.
    throw new NubError('Decode.Malformed', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

function fail(code: CodeFamily<'Decode'>, path: string, message: string): never {
  throw new NubError(`Decode.${code}`, message, { path: path || '(root)' });
}

/** Error paths use the SPEC's snake_case field names: `initial_slots[2].pages[3]`. */
function fieldPath(path: string, name: string): string {
  const snake = name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return path ? `${path}.${snake}` : snake;
}

function walk(type: AnyType, view: DataView, start: number, end: number, path: string): void {
  const size = end - start;
  if (type.fixedSize !== null) {
    if (size < type.fixedSize) fail('Truncated', path, `${type.typeName} needs ${type.fixedSize} bytes, has ${size}`);
    if (size > type.fixedSize) fail('TrailingBytes', path, `${size - type.fixedSize} bytes after ${type.typeName}`);
    return; // every fixed-size type nub declares accepts any bit pattern
  }
  if (type instanceof ByteListType) {
    if (size > type.limitBytes) fail('TooLong', path, `${size} bytes exceed the limit ${type.limitBytes}`);
  } else if (type instanceof ListBasicType) {
    const elem = type.elementType.byteLength;
    if (size % elem !== 0) fail('BadLength', path, `${size} bytes is not a whole number of ${elem}-byte elements`);
    if (size / elem > type.limit) fail('TooLong', path, `${size / elem} elements exceed the limit ${type.limit}`);
  } else if (type instanceof ContainerType) {
    const ranges = containerFieldRanges(type, view, start, end, path);
    type.fieldsEntries.forEach(({ fieldName, fieldType }, i) => {
      const r = ranges[i]!;
      walk(fieldType as AnyType, view, r.start, r.end, fieldPath(path, String(fieldName)));
    });
  } else if (type instanceof ListCompositeType) {
    const elems = listElementRanges(type, view, start, end, path);
    const isMap = sortedMapTypes.has(type);
    let prevKey: Uint8Array | null = null;
    elems.forEach((r, i) => {
      const elemPath = `${path}[${i}]`;
      walk(type.elementType as AnyType, view, r.start, r.end, elemPath);
      if (!isMap) return;
      const k = containerFieldRanges(type.elementType as AnyContainer, view, r.start, r.end, elemPath)[0]!;
      const key = new Uint8Array(view.buffer, view.byteOffset + k.start, k.end - k.start);
      if (prevKey !== null) {
        const c = compareKeys(prevKey, key);
        if (c === 0) fail('DuplicateKey', elemPath, `map key repeats the previous entry's`);
        if (c > 0) fail('UnsortedKeys', elemPath, `map key sorts before the previous entry's`);
      }
      prevKey = key;
    });
  } else if (type instanceof UnionType) {
    if (size < 1) fail('Truncated', path, 'union has no selector byte');
    const selector = view.getUint8(start);
    const variant = (type.types as AnyType[])[selector];
    if (variant === undefined) fail('BadSelector', path, `selector ${selector} > ${type.types.length - 1}`);
    if (variant instanceof NoneType) {
      if (size !== 1) fail('TrailingBytes', path, `${size - 1} bytes after a None selector`);
    } else {
      walk(variant, view, start + 1, end, path);
    }
  } else {
    throw new Error(`strict decoder has no rule for ${type.typeName}`);
  }
}

/** The byte range of each field of a variable-size container, offsets checked. */
function containerFieldRanges(type: AnyContainer, view: DataView, start: number, end: number, path: string): Range[] {
  const size = end - start;
  if (size < type.fixedEnd) fail('Truncated', path, `${type.typeName} fixed part needs ${type.fixedEnd} bytes, has ${size}`);
  const ranges: Range[] = [];
  const variable: number[] = [];
  let pos = 0;
  for (const { fieldName, fieldType } of type.fieldsEntries as { fieldName: string; fieldType: AnyType }[]) {
    if (fieldType.fixedSize !== null) {
      ranges.push({ start: start + pos, end: start + pos + fieldType.fixedSize });
      pos += fieldType.fixedSize;
      continue;
    }
    const offset = view.getUint32(start + pos, true);
    if (variable.length === 0 && offset !== type.fixedEnd) {
      fail('BadOffset', fieldPath(path, fieldName), `first offset ${offset} != end of fixed part ${type.fixedEnd}`);
    }
    if (offset > size) fail('BadOffset', fieldPath(path, fieldName), `offset ${offset} past the end (${size})`);
    if (variable.length > 0 && offset < ranges[variable[variable.length - 1]!]!.start - start) {
      fail('BadOffset', fieldPath(path, fieldName), `offset ${offset} goes backwards`);
    }
    variable.push(ranges.length);
    ranges.push({ start: start + offset, end });
    pos += 4;
  }
  // Each variable field ends where the next one starts; the last ends at `end`.
  for (let i = 0; i + 1 < variable.length; i++) ranges[variable[i]!]!.end = ranges[variable[i + 1]!]!.start;
  return ranges;
}

/** The byte range of each element of a composite list, offsets checked. */
function listElementRanges(type: AnyList, view: DataView, start: number, end: number, path: string): Range[] {
  const size = end - start;
  const elemSize = type.elementType.fixedSize;
  const ranges: Range[] = [];
  if (elemSize !== null) {
    if (size % elemSize !== 0) fail('BadLength', path, `${size} bytes is not a whole number of ${elemSize}-byte elements`);
    if (size / elemSize > type.limit) fail('TooLong', path, `${size / elemSize} elements exceed the limit ${type.limit}`);
    for (let p = start; p < end; p += elemSize) ranges.push({ start: p, end: p + elemSize });
    return ranges;
  }
  if (size === 0) return ranges;
  if (size < 4) fail('Truncated', path, `list of ${size} bytes cannot hold an offset`);
  const first = view.getUint32(start, true);
  if (first === 0 || first % 4 !== 0 || first > size) fail('BadOffset', `${path}[0]`, `bad first offset ${first} (list is ${size} bytes)`);
  const count = first / 4; // bounded by the input: each element needs a 4-byte offset
  if (count > type.limit) fail('TooLong', path, `${count} elements exceed the limit ${type.limit}`);
  let prev = first;
  for (let i = 0; i < count; i++) {
    const next = i + 1 < count ? view.getUint32(start + 4 * (i + 1), true) : size;
    if (next < prev || next > size) fail('BadOffset', `${path}[${i + 1}]`, `offset ${next} outside [${prev}, ${size}]`);
    ranges.push({ start: start + prev, end: start + next });
    prev = next;
  }
  return ranges;
}
