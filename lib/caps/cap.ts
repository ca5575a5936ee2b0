/**
 * The `Cap` union (selectors Instance 0, Image 1, Data 2, CNode 3, Type 4): hashes,
 * encoding and strict decoding, plus the admitted image (`ImageCap`) and type chains.
 */
import type { ValueOf } from '@chainsafe/ssz';
import { CapPutLayout } from '../abi/guest-abi.js';
import { NubError } from '../errors.js';
import { CODE_BASE, PAGE_SIZE } from './constants.js';
import { DataCap } from './data.js';
import { blake2b256 } from './hashing.js';
import {
  CapSelector, CapType, type CNodeCapValue, type ImageCapSsz, type InstanceCapValue, type TypeCapValue,
} from './schema.js';
import { decodeStrict } from './strict.js';

/** An admitted endpoint (SPEC section 4): dense registers, `stackTop = initialRegs[1]`. */
export interface ImageEndpointDef {
  key: Uint8Array;
  entryPc: bigint;
  argRegisters: number;
  argCnodeSize: number;
  /** φ0..φ12; an index the image does not set is 0. */
  initialRegs: bigint[];
  stackTop: bigint;
}

export interface ImageMappingDef {
  start: bigint;
  size: bigint;
  source: Uint8Array[];
}

export interface ImageSlotEntry {
  slot: Uint8Array;
  capHash: Uint8Array;
}

/** The admitted form of an image; see `imageCap` in `lib/image`. */
export interface ImageCap {
  /** Exact-length code. */
  code: Uint8Array;
  endpoints: ImageEndpointDef[];
  mappings: ImageMappingDef[];
  pinned: ImageSlotEntry[];
  initial: ImageSlotEntry[];
  yieldReceiverSlot: Uint8Array | null;
  gasSlots: Uint8Array[];
  quotaSlots: Uint8Array[];
}

export type CapValue =
  | { kind: 'Instance'; value: InstanceCapValue }
  | { kind: 'Image'; value: ImageCap }
  | { kind: 'Data'; value: DataCap }
  | { kind: 'CNode'; value: CNodeCapValue }
  | { kind: 'Type'; value: TypeCapValue };

type CapSsz = ValueOf<typeof CapType>;

function imageCapToSsz(cap: ImageCap): ImageCapSsz {
  return {
    code: cap.code,
    endpoints: cap.endpoints.map(({ key, ...ep }) => ({
      key,
      value: { entryPc: ep.entryPc, stackTop: ep.stackTop, argRegisters: ep.argRegisters, argCnodeSize: ep.argCnodeSize, initialRegs: ep.initialRegs },
    })),
    mappings: cap.mappings,
    pinned: cap.pinned,
    initial: cap.initial,
    yieldReceiverSlot: cap.yieldReceiverSlot === null ? { selector: 0, value: null } : { selector: 1, value: cap.yieldReceiverSlot },
    gasSlots: cap.gasSlots,
    quotaSlots: cap.quotaSlots,
  };
}

function imageCapFromSsz(v: ImageCapSsz): ImageCap {
  return {
    code: v.code,
    endpoints: v.endpoints.map(({ key, value }) => ({ key, ...value })),
    mappings: v.mappings,
    pinned: v.pinned,
    initial: v.initial,
    yieldReceiverSlot: v.yieldReceiverSlot.selector === 1 ? (v.yieldReceiverSlot.value as Uint8Array) : null,
    gasSlots: v.gasSlots,
    quotaSlots: v.quotaSlots,
  };
}

function dataCapToSsz(cap: DataCap): { pages: Uint8Array[] } {
  const bytes = cap.bytes();
  const pages: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += PAGE_SIZE) pages.push(bytes.subarray(off, off + PAGE_SIZE));
  return { pages };
}

function toSsz(cap: CapValue): CapSsz {
  const selector = CapSelector[cap.kind];
  switch (cap.kind) {
    case 'Image': return { selector, value: imageCapToSsz(cap.value) };
    case 'Data': return { selector, value: dataCapToSsz(cap.value) };
    default: return { selector, value: cap.value };
  }
}

/** The cap's hash: SSZ `hash_tree_root` (SHA-256) of the `Cap` union, selector mixed in. */
export function capHash(cap: CapValue): Uint8Array {
  if (cap.kind === 'Data') return cap.value.hash(); // same root, computed without building the page list
  return CapType.hashTreeRoot(toSsz(cap));
}

/** The `Cap` union's SSZ bytes. */
export function encodeCap(cap: CapValue): Uint8Array {
  return CapType.serialize(toSsz(cap));
}

/** `encodeCap(cap).length`, without encoding a Data cap (whose encoding is every page of its declared size). */
export function encodedCapLength(cap: CapValue): number {
  return cap.kind === 'Data' ? CapPutLayout.values.DATA_PAGES_OFFSET + cap.value.size : encodeCap(cap).length;
}

/** Strictly decodes `Cap` union bytes; a Data cap comes back in the Inline form. */
export function decodeCap(bytes: Uint8Array): CapValue {
  const { selector, value } = decodeStrict(CapType, bytes, 'Cap');
  switch (selector) {
    case CapSelector.Instance: return { kind: 'Instance', value: value as InstanceCapValue };
    case CapSelector.Image: {
      const image = imageCapFromSsz(value as ImageCapSsz);
      if (image.endpoints.some((e) => e.stackTop !== e.initialRegs[1])) {
        throw new NubError('Decode.Inconsistent', 'endpoint stack_top differs from initial_regs[1]', { path: 'endpoints' });
      }
      return { kind: 'Image', value: image };
    }
    case CapSelector.Data: {
      const { pages } = value as { pages: Uint8Array[] };
      const bytes = new Uint8Array(pages.length * PAGE_SIZE);
      pages.forEach((p, i) => bytes.set(p, i * PAGE_SIZE));
      if (pages.length === 0) return { kind: 'Data', value: DataCap.fromPages(0, []) };
      return { kind: 'Data', value: DataCap.fromBytes(bytes) };
    }
    case CapSelector.CNode: return { kind: 'CNode', value: value as CNodeCapValue };
    case CapSelector.Type: return { kind: 'Type', value: value as TypeCapValue };
    default: throw new NubError('Decode.BadSelector', `Cap selector ${selector}`);
  }
}

/** A type chain starts at an image's content hash. */
export function typeChainStart(imageContentHash: Uint8Array): TypeCapValue {
  return { imageHashChain: imageContentHash.slice() };
}

/** Extends a chain: `Blake2b-256(prev ‖ next_image_hash)`. */
export function typeChainExtend(chain: TypeCapValue, nextImageHash: Uint8Array): TypeCapValue {
  const input = new Uint8Array(64);
  input.set(chain.imageHashChain, 0);
  input.set(nextImageHash, 32);
  return { imageHashChain: blake2b256(input) };
}

/** The executable code region, or null for a codeless image (which cannot run). */
export function codeMapping(cap: ImageCap): { base: number; bytes: Uint8Array } | null {
  return cap.code.length === 0 ? null : { base: CODE_BASE, bytes: cap.code };
}

