/** `DataDesc`: validation against the arena (SPEC section 3) and materialising into a `DataCap`. */
import { DataCap, MAX_DATA_PAGES, PAGE_SIZE } from '../caps/index.js';
import { NubError, type CodeFamily } from '../errors.js';
import type { DataDescValue } from './schema.js';

const PAGE = BigInt(PAGE_SIZE);

function join(base: string, rest: string): string {
  return base ? `${base}.${rest}` : rest;
}

/**
 * `DataDesc.validate(arena_len)`: throws `DataDesc.<Name>` at the first failure, in
 * SPEC order; the per-page checks run page by page. `path` locates the desc in errors.
 */
export function validateDataDesc(desc: DataDescValue, arenaLen: number, path = ''): void {
  const fail = (name: CodeFamily<'DataDesc'>, at: string, message: string): never => {
    throw new NubError(`DataDesc.${name}`, message, { path: join(path, at) });
  };
  if (desc.size % PAGE !== 0n) fail('SizeNotPageMultiple', 'size', `size ${desc.size} is not a multiple of ${PAGE_SIZE}`);
  const pageCount = desc.size / PAGE;
  let previous = -1;
  desc.pages.forEach((p, i) => {
    const at = `pages[${i}]`;
    if (p.len === 0 || p.len > PAGE_SIZE) fail('BadLen', at, `len ${p.len} is not in 1..${PAGE_SIZE}`);
    if (p.arenaOff + p.len > arenaLen) fail('OutOfRange', at, `arena[${p.arenaOff}, +${p.len}) is outside the ${arenaLen}-byte arena`);
    if (BigInt(p.pageIndex) >= pageCount) fail('PageIndexOutOfRange', at, `page_index ${p.pageIndex} >= page count ${pageCount}`);
    if (p.pageIndex <= previous) fail('NotCanonical', at, `page_index ${p.pageIndex} does not follow ${previous}`);
    previous = p.pageIndex;
  });
}

/**
 * The Data cap a desc describes, in the Paged form: only the pages the desc names
 * are stored, so a large declared size costs nothing until written. Validates first;
 * a size beyond the 4 GiB guest address space is `DataCap.TooLarge`.
 */
export function materialise(desc: DataDescValue, arena: Uint8Array, path = ''): DataCap {
  validateDataDesc(desc, arena.length, path);
  if (desc.size > BigInt(MAX_DATA_PAGES) * PAGE) {
    throw new NubError('DataCap.TooLarge', `size ${desc.size} exceeds the 4 GiB a Data cap can hold`, { path: join(path, 'size') });
  }
  // Refs to the same arena bytes share one view, so a page repeated 2^20 times is stored and hashed once.
  const views = new Map<number, Uint8Array>();
  const view = (off: number, len: number): Uint8Array => {
    const key = off * (PAGE_SIZE + 1) + len;
    let v = views.get(key);
    if (v === undefined) views.set(key, (v = arena.subarray(off, off + len)));
    return v;
  };
  return DataCap.fromPages(Number(desc.size), desc.pages.map((p) => [p.pageIndex, view(p.arenaOff, p.len)] as const));
}
