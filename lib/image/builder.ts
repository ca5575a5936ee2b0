/**
 * `ImageBuilder`: assembles images and always produces the canonical arena (SPEC
 * section 3): pinned then initial data, each in key order; all-zero pages left out;
 * each stored page trimmed after its last non-zero byte; identical pages stored once;
 * code appended last at its exact length. So equal content gives equal bytes and hash,
 * whatever order the parts were added in.
 */
import { createHash } from 'node:crypto';
import {
  DATA_BASE, MAX_CODE_SIZE, MAX_SOURCE_DEPTH, NUM_REGS, PAGE_SIZE, compareKeys, lastNonZero, paddedSize,
  toHex, toKey, type KeyLike,
} from '../caps/index.js';
import { NubError } from '../errors.js';
import { encodeImage } from './codec.js';
import { materialise } from './desc.js';
import { PinnedSelector, type DataDescValue, type ImageValue } from './schema.js';

export interface EndpointSpec {
  /** Byte offset into the code. */
  entryPc: bigint | number;
  /** Registers φ0..φ12 to preset; φ1 is the stack pointer (defaults to the stack's top, see `addStack`). */
  initialRegs?: Partial<Record<number, bigint | number>>;
  argRegisters?: number;
  argCnodeSize?: number;
}

interface DataPart { key: Uint8Array; bytes: Uint8Array; size: number }
type PinnedPart = (DataPart & { kind: 'data' }) | { kind: 'image'; key: Uint8Array; contentHash: Uint8Array };
interface EndpointPart { key: Uint8Array; entryPc: bigint; regs: Map<number, bigint>; argRegisters: number; argCnodeSize: number }

const ADDRESS_SPACE = 2n ** 32n;

function byKey<T extends { key: Uint8Array }>(parts: Iterable<T>): T[] {
  return [...parts].sort((a, b) => compareKeys(a.key, b.key));
}

function byteField(name: string, v: number | undefined): number {
  const n = v ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new NubError('Builder.BadEndpoint', `${name} ${n} is not a byte`);
  return n;
}

/** Appends pages to the arena, storing each distinct trimmed page once. */
class ArenaWriter {
  readonly parts: Uint8Array[] = [];
  length = 0;
  #seen = new Map<string, number>();

  append(bytes: Uint8Array): number {
    const at = this.length;
    this.parts.push(bytes);
    this.length += bytes.length;
    return at;
  }

  /** Packs `bytes` (of a cap `size` bytes long) into a DataDesc. */
  packData(bytes: Uint8Array, size: number): DataDescValue {
    const pages: DataDescValue['pages'] = [];
    for (let index = 0; index * PAGE_SIZE < bytes.length; index++) {
      const page = bytes.subarray(index * PAGE_SIZE, (index + 1) * PAGE_SIZE);
      const len = lastNonZero(page) + 1;
      if (len === 0) continue;
      const trimmed = page.subarray(0, len);
      // Identical pages are found by their SHA-256: a short Map key, linear time overall.
      const id = createHash('sha256').update(trimmed).digest('base64');
      let arenaOff = this.#seen.get(id);
      if (arenaOff === undefined) {
        arenaOff = this.append(trimmed);
        this.#seen.set(id, arenaOff);
      }
      pages.push({ pageIndex: index, arenaOff, len });
    }
    return { size: BigInt(size), pages };
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

export class ImageBuilder {
  #code = new Uint8Array(0);
  #endpoints = new Map<string, EndpointPart>();
  #pinned = new Map<string, PinnedPart>();
  #initial = new Map<string, DataPart>();
  #mappings: { start: bigint; size: bigint; source: Uint8Array[] }[] = [];
  #yieldReceiverSlot: Uint8Array | null = null;
  #gasSlots: Uint8Array[] = [];
  #quotaSlots: Uint8Array[] = [];
  #stackTop: bigint | null = null;

  /** A builder holding an existing image's content (its data materialised), e.g. to rebuild it canonically. */
  static fromImage(image: ImageValue): ImageBuilder {
    const b = new ImageBuilder();
    b.setCode(image.arena.subarray(image.code.arenaOff, image.code.arenaOff + image.code.len));
    for (const { key, value } of image.endpoints) {
      const initialRegs: Record<number, bigint> = {};
      for (const r of value.initialRegs) initialRegs[r.key] = r.value;
      b.addEndpoint(key, { entryPc: value.entryPc, initialRegs, argRegisters: value.argRegisters, argCnodeSize: value.argCnodeSize });
    }
    for (const { key, value } of image.pinnedSlots) {
      if (value.selector === PinnedSelector.Image) {
        b.addPinnedImage(key, (value.value as { contentHash: Uint8Array }).contentHash);
      } else {
        const cap = materialise((value.value as { desc: DataDescValue }).desc, image.arena);
        b.addPinnedData(key, cap.leadingBytes(), cap.size);
      }
    }
    for (const { key, value } of image.initialSlots) {
      const cap = materialise(value, image.arena);
      b.addInitialData(key, cap.leadingBytes(), cap.size);
    }
    for (const m of image.memoryMappings) b.addMapping(m.start, m.size, m.source);
    if (image.yieldReceiverSlot.selector === 1) b.setYieldReceiverSlot(image.yieldReceiverSlot.value as Uint8Array);
    image.gasSlots.forEach((k) => b.addGasSlot(k));
    image.quotaSlots.forEach((k) => b.addQuotaSlot(k));
    return b;
  }

  setCode(code: Uint8Array): this {
    if (code.length > MAX_CODE_SIZE) throw new NubError('CodeTooLarge', `code is ${code.length} bytes, more than ${MAX_CODE_SIZE}`);
    this.#code = code.slice();
    return this;
  }

  addEndpoint(key: KeyLike, ep: EndpointSpec): this {
    const k = toKey(key);
    if (this.#endpoints.has(toHex(k))) throw new NubError('Builder.DuplicateEndpoint', `endpoint ${toHex(k)} added twice`);
    const regs = new Map<number, bigint>();
    for (const [index, v] of Object.entries(ep.initialRegs ?? {})) {
      const i = Number(index);
      if (!Number.isInteger(i) || i < 0 || i >= NUM_REGS) {
        throw new NubError('RegisterIndexOutOfRange', `register index ${index} is not in 0..${NUM_REGS - 1}`);
      }
      if (v !== undefined) regs.set(i, BigInt.asUintN(64, BigInt(v)));
    }
    this.#endpoints.set(toHex(k), {
      key: k,
      entryPc: BigInt(ep.entryPc),
      regs,
      argRegisters: byteField('argRegisters', ep.argRegisters),
      argCnodeSize: byteField('argCnodeSize', ep.argCnodeSize),
    });
    return this;
  }

  /** A read-only Data slot; `size` (bytes, default the data's length) is rounded up to whole pages. */
  addPinnedData(slot: KeyLike, bytes: Uint8Array, size?: number): this {
    const key = this.#freshSlot(slot);
    this.#pinned.set(toHex(key), { kind: 'data', key, bytes: bytes.slice(), size: paddedSize(bytes.length, size) });
    return this;
  }

  /** A pinned reference to another image, by its content hash. */
  addPinnedImage(slot: KeyLike, contentHash: Uint8Array): this {
    if (contentHash.length !== 32) throw new NubError('Builder.BadHash', 'a content hash is 32 bytes');
    const key = this.#freshSlot(slot);
    this.#pinned.set(toHex(key), { kind: 'image', key, contentHash: contentHash.slice() });
    return this;
  }

  /** A writable Data slot's initial content; `size` as for `addPinnedData`. */
  addInitialData(slot: KeyLike, bytes: Uint8Array, size?: number): this {
    const key = this.#freshSlot(slot);
    this.#initial.set(toHex(key), { key, bytes: bytes.slice(), size: paddedSize(bytes.length, size) });
    return this;
  }

  /**
   * Lays the Data cap at `source` at `[start, start+size)`. `source` is a slot path:
   * a single key (`3`, `Uint8Array`), or an array of keys (`[1, 0]` is the two-step
   * path `[1] → [0]`; write a multi-byte key as a `Uint8Array` or `[[1, 0]]`).
   */
  addMapping(start: bigint | number, size: bigint | number, source: KeyLike | KeyLike[]): this {
    const path = Array.isArray(source) ? (source as KeyLike[]).map(toKey) : [toKey(source as KeyLike)];
    const s = BigInt(start);
    const n = BigInt(size);
    const page = BigInt(PAGE_SIZE);
    if (s < BigInt(DATA_BASE) || s % page !== 0n || n <= 0n || n % page !== 0n || s + n > ADDRESS_SPACE) {
      throw new NubError('Builder.BadMapping', `mapping [${s}, +${n}) must be whole pages within [DATA_BASE, 4 GiB)`);
    }
    if (path.length === 0 || path.length > MAX_SOURCE_DEPTH) {
      throw new NubError(path.length === 0 ? 'SourcePathEmpty' : 'SourcePathTooDeep', `source path has ${path.length} steps`);
    }
    this.#mappings.push({ start: s, size: n, source: path });
    return this;
  }

  /**
   * A stack: a zero-filled writable slot of `size` bytes mapped just below `top`;
   * every endpoint that does not set φ1 starts with `φ1 = top`.
   */
  addStack(slot: KeyLike, top: bigint | number, size: number): this {
    const pages = paddedSize(0, size);
    this.addInitialData(slot, new Uint8Array(0), pages);
    this.addMapping(BigInt(top) - BigInt(pages), pages, slot);
    this.#stackTop = BigInt(top);
    return this;
  }

  setYieldReceiverSlot(slot: KeyLike | null): this {
    this.#yieldReceiverSlot = slot === null ? null : toKey(slot);
    return this;
  }

  addGasSlot(slot: KeyLike): this {
    this.#gasSlots.push(toKey(slot));
    return this;
  }

  addQuotaSlot(slot: KeyLike): this {
    this.#quotaSlots.push(toKey(slot));
    return this;
  }

  build(): ImageValue {
    const arena = new ArenaWriter();
    const pinnedSlots = byKey(this.#pinned.values()).map((p) => ({
      key: p.key,
      value: p.kind === 'image'
        ? { selector: PinnedSelector.Image, value: { contentHash: p.contentHash } }
        : { selector: PinnedSelector.Data, value: { desc: arena.packData(p.bytes, p.size) } },
    }));
    const initialSlots = byKey(this.#initial.values()).map((p) => ({ key: p.key, value: arena.packData(p.bytes, p.size) }));
    const code = this.#code.length === 0 ? { arenaOff: 0, len: 0 } : { arenaOff: arena.append(this.#code), len: this.#code.length };
    const endpoints = byKey(this.#endpoints.values()).map((e) => {
      const regs = new Map(e.regs);
      if (!regs.has(1) && this.#stackTop !== null) regs.set(1, this.#stackTop);
      return {
        key: e.key,
        value: {
          entryPc: e.entryPc,
          argRegisters: e.argRegisters,
          argCnodeSize: e.argCnodeSize,
          initialRegs: [...regs].sort(([a], [b]) => a - b).map(([key, value]) => ({ key, value })),
        },
      };
    });
    return {
      code,
      endpoints,
      memoryMappings: this.#mappings.map((m) => ({ ...m, source: [...m.source] })),
      pinnedSlots,
      initialSlots,
      yieldReceiverSlot: this.#yieldReceiverSlot === null ? { selector: 0, value: null } : { selector: 1, value: this.#yieldReceiverSlot },
      gasSlots: [...this.#gasSlots],
      quotaSlots: [...this.#quotaSlots],
      arena: arena.bytes(),
    };
  }

  encode(): Uint8Array {
    return encodeImage(this.build());
  }

  #freshSlot(slot: KeyLike): Uint8Array {
    const key = toKey(slot);
    if (this.#pinned.has(toHex(key)) || this.#initial.has(toHex(key))) {
      throw new NubError('Builder.DuplicateSlot', `slot ${toHex(key)} is already used`);
    }
    return key;
  }
}
