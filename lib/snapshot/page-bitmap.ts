/**
 * Page bitmaps as the addon speaks them (KVM's dirty-log layout): bit i of byte i >> 3
 * (least significant first) stands for 4 KiB page i.
 */
export const PAGE_SIZE = 4096;

export function bitmapBytes(pages: number): number {
  return Math.ceil(pages / 8);
}

export function hasPage(bitmap: Uint8Array, page: number): boolean {
  return ((bitmap[page >> 3]! >> (page & 7)) & 1) === 1;
}

export function setPage(bitmap: Uint8Array, page: number): void {
  bitmap[page >> 3]! |= 1 << (page & 7);
}

export function countPages(bitmap: Uint8Array): number {
  let n = 0;
  for (let byte of bitmap) {
    for (; byte !== 0; byte &= byte - 1) n++;
  }
  return n;
}

/** `a` without the pages of `b`, as a new bitmap. */
export function withoutPages(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! & ~(b[i] ?? 0);
  return out;
}

/** Calls `fn(firstPage, pageCount)` for each run of set bits, in order. */
export function forEachRun(bitmap: Uint8Array, fn: (first: number, count: number) => void): void {
  const pages = bitmap.length * 8;
  let page = 0;
  while (page < pages) {
    if (bitmap[page >> 3] === 0) {
      page = (page | 7) + 1;
      continue;
    }
    if (!hasPage(bitmap, page)) {
      page++;
      continue;
    }
    let end = page + 1;
    while (end < pages && hasPage(bitmap, end)) end++;
    fn(page, end - page);
    page = end;
  }
}

/** Copies the pages set in `bitmap` from `from` to `to` (same-sized page arrays), run by run. */
export function copyPages(bitmap: Uint8Array, from: Uint8Array, to: Uint8Array): void {
  forEachRun(bitmap, (first, count) => {
    const start = first * PAGE_SIZE;
    to.set(from.subarray(start, start + count * PAGE_SIZE), start);
  });
}
