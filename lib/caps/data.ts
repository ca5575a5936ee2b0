/**
 * `DataCap` (SPEC section 4): content that is always a whole number of pages, in one
 * of two storage forms.
 *
 * - Inline: one buffer, a multiple of PAGE_SIZE.
 * - Paged: a sparse page table; an absent page reads as zeros. Pages are shared
 *   between clones and copied on the first write (copy-on-write), so cloning a large
 *   cap costs a table copy, not a byte copy. Sparse because an image may declare a
 *   large, mostly-zero slot: materialising it must not allocate what the file cannot
 *   justify.
 *
 * The hash is the SSZ root of `DataCapType` (the page list) inside the `Cap` union, so
 * it does not depend on the form. It is computed here directly, batching the SHA-256
 * work and skipping runs of zero pages, and cached until the next write.
 */
import { NubError } from '../errors.js';
import { MAX_DATA_PAGES, PAGE_SIZE } from './constants.js';
import { hashPairsInto, merkleizeLevels, mixIn, zeroHashes } from './hashing.js';
import { CapSelector } from './schema.js';

/** Levels of a page's own merkle tree: 4096 bytes = 128 chunks = 2^7. */
const PAGE_DEPTH = 7;
/** Depth of the page list's tree: the list limit is 2^20 pages. */
const LIST_DEPTH = Math.log2(MAX_DATA_PAGES);

/**
 * One page of a Paged cap. `owner` is the token of the only cap allowed to write it in
 * place. `bytes` may be shorter than a page (zeros follow) and may be shared.
 */
interface Page {
  bytes: Uint8Array;
  owner: object;
  root: Uint8Array | null;
}

/** Index of the last non-zero byte of `bytes`, or -1 when all are zero. */
export function lastNonZero(bytes: Uint8Array): number {
  let i = bytes.length - 1;
  while (i >= 0 && bytes[i] === 0) i--;
  return i;
}

/** The owner of borrowed pages (views given to fromPages): no cap writes them in place. */
const BORROWED = {};

/** A whole page: `bytes` itself, or a zero-padded copy of a shorter (borrowed) page. */
function fullPage(bytes: Uint8Array): Uint8Array {
  if (bytes.length === PAGE_SIZE) return bytes;
  const page = new Uint8Array(PAGE_SIZE);
  page.set(bytes);
  return page;
}

function pageCount(size: number): number {
  return size / PAGE_SIZE;
}

/** Rounds a byte count up to whole pages (at least one) and checks it fits the 4 GiB limit. */
export function paddedSize(contentLength: number, size: number | undefined): number {
  if (size !== undefined && (!Number.isSafeInteger(size) || size < contentLength)) {
    throw new NubError('DataCap.BadSize', `size ${size} is smaller than the ${contentLength} content bytes`);
  }
  const want = Math.max(size ?? 0, contentLength, 1);
  const padded = Math.ceil(want / PAGE_SIZE) * PAGE_SIZE;
  checkPageCount(padded / PAGE_SIZE);
  return padded;
}

function checkPageCount(pages: number): void {
  if (pages > MAX_DATA_PAGES) {
    throw new NubError('DataCap.TooLarge', `${pages} pages exceed the ${MAX_DATA_PAGES}-page (4 GiB) limit of a Data cap`);
  }
}

export class DataCap {
  /** Content size in bytes: a multiple of PAGE_SIZE. */
  readonly size: number;
  #inline: Uint8Array | null;
  #pages: Map<number, Page> | null;
  #owner: object = {};
  #hash: Uint8Array | null = null;

  private constructor(size: number, inline: Uint8Array | null, pages: Map<number, Page> | null) {
    this.size = size;
    this.#inline = inline;
    this.#pages = pages;
  }

  /** Inline form holding `bytes`, zero-padded to `size` (default: the bytes' length) rounded up to whole pages, at least one. */
  static fromBytes(bytes: Uint8Array, size?: number): DataCap {
    const buf = new Uint8Array(paddedSize(bytes.length, size));
    buf.set(bytes);
    return new DataCap(buf.length, buf, null);
  }

  /** Paged form of the same content as `fromBytes`; all-zero pages are not stored. */
  static paged(bytes: Uint8Array, size?: number): DataCap {
    const cap = new DataCap(paddedSize(bytes.length, size), null, new Map());
    for (let off = 0; off < bytes.length; off += PAGE_SIZE) {
      const chunk = bytes.subarray(off, off + PAGE_SIZE);
      if (lastNonZero(chunk) >= 0) cap.#setPage(off / PAGE_SIZE, chunk);
    }
    return cap;
  }

  /**
   * Paged form from sparse pages: `pages` yields `[pageIndex, bytes]` with indexes
   * below `size / PAGE_SIZE` and at most a page of bytes each (zero-filled after).
   * `size` may be 0 (an empty cap). The bytes are kept, not copied (a write copies the
   * page first), so the caller must not change them; pages given as the same
   * Uint8Array share storage and their hash work. Memory and time follow the pages given.
   */
  static fromPages(size: number, pages: Iterable<readonly [number, Uint8Array]>): DataCap {
    if (!Number.isSafeInteger(size) || size < 0 || size % PAGE_SIZE !== 0) {
      throw new NubError('DataCap.BadSize', `size ${size} is not a whole number of pages`);
    }
    checkPageCount(pageCount(size));
    const cap = new DataCap(size, null, new Map());
    for (const [index, bytes] of pages) {
      if (!Number.isInteger(index) || index < 0 || index >= pageCount(size) || bytes.length > PAGE_SIZE) {
        throw new NubError('DataCap.BadPage', `page ${index} (${bytes.length} bytes) does not fit a ${size}-byte cap`);
      }
      cap.#pages!.set(index, { bytes, owner: BORROWED, root: null });
    }
    return cap;
  }

  get form(): 'Inline' | 'Paged' {
    return this.#inline ? 'Inline' : 'Paged';
  }

  /** Total content size in bytes, always a multiple of PAGE_SIZE (the seed's `content_len`). */
  contentLen(): number {
    return this.size;
  }

  /** A fresh copy of the whole content (every page, zeros included). */
  bytes(): Uint8Array {
    if (this.#inline) return this.#inline.slice();
    const out = new Uint8Array(this.size);
    for (const [index, page] of this.#pages!) out.set(page.bytes, index * PAGE_SIZE);
    return out;
  }

  /**
   * The content's first bytes up to its last non-zero byte, at most `limit` of them (all
   * that follow are zero). Allocates what is stored, not the declared size.
   */
  leadingBytes(limit = this.size): Uint8Array {
    if (this.#inline) return this.#inline.slice(0, Math.min(lastNonZero(this.#inline) + 1, limit));
    let end = 0;
    for (const [index, page] of this.#pages!) {
      const last = lastNonZero(page.bytes);
      if (last >= 0) end = Math.max(end, index * PAGE_SIZE + last + 1);
    }
    const out = new Uint8Array(Math.min(end, limit));
    for (const [index, page] of this.#pages!) {
      const at = index * PAGE_SIZE;
      if (at < out.length) out.set(page.bytes.subarray(0, out.length - at), at);
    }
    return out;
  }

  /** Indexes and bytes of the pages that may be non-zero, ascending; an absent page is zero. Do not mutate the bytes. */
  *storedPages(): Generator<[number, Uint8Array]> {
    if (this.#inline) {
      for (let i = 0; i < pageCount(this.size); i++) yield [i, this.#inline.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)];
      return;
    }
    for (const index of [...this.#pages!.keys()].sort((a, b) => a - b)) yield [index, fullPage(this.#pages!.get(index)!.bytes)];
  }

  /** Another cap with the same content. Paged pages are shared until either side writes them. */
  clone(): DataCap {
    if (this.#inline) {
      const copy = new DataCap(this.size, this.#inline.slice(), null);
      copy.#hash = this.#hash;
      return copy;
    }
    // Neither cap owns the existing pages any more: the first write to each copies it.
    this.#owner = {};
    const copy = new DataCap(this.size, null, new Map(this.#pages!));
    copy.#hash = this.#hash;
    return copy;
  }

  /** Writes `bytes` at `offset`; for the Paged form, shared pages are copied first. */
  write(offset: number, bytes: Uint8Array): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.length > this.size) {
      throw new NubError('DataCap.OutOfRange', `write of ${bytes.length} bytes at ${offset} outside a ${this.size}-byte cap`);
    }
    this.#hash = null;
    if (this.#inline) {
      this.#inline.set(bytes, offset);
      return;
    }
    let done = 0;
    while (done < bytes.length) {
      const at = offset + done;
      const index = Math.floor(at / PAGE_SIZE);
      const within = at % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - within, bytes.length - done);
      const page = this.#writablePage(index);
      page.bytes.set(bytes.subarray(done, done + n), within);
      page.root = null;
      done += n;
    }
  }

  /** The cap hash: `hash_tree_root` of `Cap::Data` (selector 2). */
  hash(): Uint8Array {
    this.#hash ??= mixIn(this.#listRoot(), CapSelector.Data);
    return this.#hash.slice();
  }

  #setPage(index: number, bytes: Uint8Array): void {
    const page = new Uint8Array(PAGE_SIZE);
    page.set(bytes);
    this.#pages!.set(index, { bytes: page, owner: this.#owner, root: null });
  }

  #writablePage(index: number): Page {
    const page = this.#pages!.get(index);
    if (page && page.owner === this.#owner) return page;
    this.#setPage(index, page?.bytes ?? new Uint8Array(0));
    return this.#pages!.get(index)!;
  }

  /**
   * Root of the page list = the container root of `DataCapType` (a one-field
   * container's root is its field's root).
   */
  #listRoot(): Uint8Array {
    const n = pageCount(this.size);
    let indexes: number[];
    let roots: Uint8Array;
    if (this.#inline) {
      indexes = Array.from({ length: n }, (_, i) => i);
      roots = pageRoots(this.#inline, n);
    } else {
      indexes = [...this.#pages!.keys()].sort((a, b) => a - b);
      // Pages sharing one bytes object (an image's repeated page refs) are hashed once.
      const pending = [...new Set(indexes.filter((i) => this.#pages!.get(i)!.root === null).map((i) => this.#pages!.get(i)!.bytes))];
      if (pending.length > 0) {
        const joined = new Uint8Array(pending.length * PAGE_SIZE);
        pending.forEach((bytes, k) => joined.set(bytes, k * PAGE_SIZE));
        const fresh = pageRoots(joined, pending.length);
        const rootOf = new Map(pending.map((bytes, k) => [bytes, fresh.subarray(k * 32, k * 32 + 32)]));
        for (const i of indexes) {
          const page = this.#pages!.get(i)!;
          page.root ??= rootOf.get(page.bytes)!;
        }
      }
      roots = new Uint8Array(indexes.length * 32);
      indexes.forEach((i, k) => roots.set(this.#pages!.get(i)!.root!, k * 32));
    }
    return mixIn(sparseListRoot(n, indexes, roots), n);
  }
}

/** Merkle roots of `count` consecutive pages in `bytes`, 32 bytes each. */
function pageRoots(bytes: Uint8Array, count: number): Uint8Array {
  return merkleizeLevels(bytes.subarray(0, count * PAGE_SIZE), PAGE_DEPTH);
}

/**
 * Root of the list tree (depth 20) over `n` pages, given the roots of the listed
 * pages (`indexes` ascending). An unlisted page below `n` is a zero page, whose
 * subtrees are `zeroHashes[7 + h]`; positions at or past `n` are zero chunks
 * (`zeroHashes[h]`). Only nodes above listed pages or straddling `n` are hashed.
 */
function sparseListRoot(n: number, indexes: number[], roots: Uint8Array): Uint8Array {
  // Each level as ascending node indexes with their hashes side by side (arrays, not maps: a
  // cap may list 2^20 pages).
  let idx = indexes;
  let nodes = roots;
  for (let h = 0; h < LIST_DEPTH; h++) {
    const implicit = (i: number): Uint8Array => (i * 2 ** h >= n ? zeroHashes[h]! : zeroHashes[PAGE_DEPTH + h]!);
    const parents: number[] = [];
    for (const i of idx) {
      const p = Math.floor(i / 2);
      if (parents[parents.length - 1] !== p) parents.push(p);
    }
    // The node straddling the end of the list is never implicit; it is at or after every listed parent.
    const span = 2 ** (h + 1);
    const straddling = Math.floor(n / span);
    if (n % span !== 0 && !(parents.length > 0 && parents[parents.length - 1]! >= straddling)) parents.push(straddling);
    const input = new Uint8Array(parents.length * 64);
    let j = 0;
    parents.forEach((p, k) => {
      for (let side = 0; side < 2; side++) {
        const child = 2 * p + side;
        while (j < idx.length && idx[j]! < child) j++;
        input.set(j < idx.length && idx[j] === child ? nodes.subarray(j * 32, j * 32 + 32) : implicit(child), k * 64 + side * 32);
      }
    });
    const output = new Uint8Array(parents.length * 32);
    if (parents.length > 0) hashPairsInto(input, output);
    idx = parents;
    nodes = output;
  }
  if (idx[0] === 0) return nodes.subarray(0, 32);
  return n === 0 ? zeroHashes[LIST_DEPTH]! : zeroHashes[PAGE_DEPTH + LIST_DEPTH]!;
}
