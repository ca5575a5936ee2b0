/**
 * Admission (SPEC section 3, `image_cap` in seed 001): validate the image's structure
 * completely, in SPEC order, then build the `ImageCap` and the Data caps it names.
 * Code bytes are never inspected here.
 */
import {
  DataCap, MAX_CODE_SIZE, MAX_SOURCE_DEPTH, NUM_REGS, compareKeys, formatKey, keysEqual, toHex,
  type ImageCap, type ImageMappingDef, type ImageSlotEntry,
} from '../caps/index.js';
import { NubError } from '../errors.js';
import { decodeImage, imageContentHash } from './codec.js';
import { materialise, validateDataDesc } from './desc.js';
import { PinnedSelector, type DataDescValue, type ImageValue } from './schema.js';

export interface AdmittedData {
  slot: Uint8Array;
  pinned: boolean;
  cap: DataCap;
  hash: Uint8Array;
}

export interface AdmittedImage {
  image: ImageValue;
  contentHash: Uint8Array;
  imageCap: ImageCap;
  /** The image's Data caps by slot key (hex). */
  dataCaps: Map<string, AdmittedData>;
}

/** Slot descs in admission order: pinned Data descs, then initial descs, each in map order. */
function dataDescs(image: ImageValue): { slot: Uint8Array; pinned: boolean; desc: DataDescValue; path: string }[] {
  const out = [];
  for (const { key, value } of image.pinnedSlots) {
    if (value.selector === PinnedSelector.Data) {
      out.push({ slot: key, pinned: true, desc: (value.value as { desc: DataDescValue }).desc, path: `pinned_slots[${formatKey(key)}].desc` });
    }
  }
  for (const { key, value } of image.initialSlots) {
    out.push({ slot: key, pinned: false, desc: value, path: `initial_slots[${formatKey(key)}]` });
  }
  return out;
}

/** Admission's checks alone (SPEC section 3, in order), without building anything. */
export function checkImage(image: ImageValue): void {
  const { arenaOff, len } = image.code;
  if (len > MAX_CODE_SIZE) {
    throw new NubError('CodeTooLarge', `code is ${len} bytes, more than MAX_CODE_SIZE ${MAX_CODE_SIZE}`, { path: 'code.len' });
  }
  if (arenaOff + len > image.arena.length) {
    throw new NubError('CodeRefOutOfRange', `code [${arenaOff}, +${len}) is outside the ${image.arena.length}-byte arena`, { path: 'code' });
  }
  for (const d of dataDescs(image)) validateDataDesc(d.desc, image.arena.length, d.path);
  for (const { key, value } of image.endpoints) {
    for (const reg of value.initialRegs) {
      if (reg.key >= NUM_REGS) {
        throw new NubError('RegisterIndexOutOfRange', `register index ${reg.key} >= ${NUM_REGS}`, {
          path: `endpoints[${formatKey(key)}].initial_regs[${reg.key}]`,
        });
      }
    }
  }
  image.memoryMappings.forEach((m, i) => {
    const path = `memory_mappings[${i}].source`;
    if (m.source.length === 0) throw new NubError('SourcePathEmpty', 'mapping source path is empty', { path });
    if (m.source.length > MAX_SOURCE_DEPTH) {
      throw new NubError('SourcePathTooDeep', `source path has ${m.source.length} steps, more than ${MAX_SOURCE_DEPTH}`, { path });
    }
  });
}

function bySlot(a: ImageSlotEntry, b: ImageSlotEntry): number {
  return compareKeys(a.slot, b.slot);
}

function admit(image: ImageValue): { imageCap: ImageCap; dataCaps: Map<string, AdmittedData> } {
  checkImage(image);
  const dataCaps = new Map<string, AdmittedData>();
  for (const d of dataDescs(image)) {
    const cap = materialise(d.desc, image.arena, d.path);
    dataCaps.set(toHex(d.slot), { slot: d.slot, pinned: d.pinned, cap, hash: cap.hash() });
  }
  const hashOf = (slot: Uint8Array): Uint8Array => dataCaps.get(toHex(slot))!.hash;
  // A pinned image is referenced by its content hash.
  const pinned = image.pinnedSlots.map(({ key, value }) => ({
    slot: key,
    capHash: value.selector === PinnedSelector.Data ? hashOf(key) : (value.value as { contentHash: Uint8Array }).contentHash,
  }));
  const initial = image.initialSlots.map(({ key }) => ({ slot: key, capHash: hashOf(key) }));
  const { arenaOff, len } = image.code;
  const imageCap: ImageCap = {
    code: image.arena.slice(arenaOff, arenaOff + len),
    endpoints: image.endpoints
      .map(({ key, value }) => {
        const initialRegs = new Array<bigint>(NUM_REGS).fill(0n);
        for (const r of value.initialRegs) initialRegs[r.key] = r.value;
        return {
          key, entryPc: value.entryPc, argRegisters: value.argRegisters, argCnodeSize: value.argCnodeSize,
          initialRegs, stackTop: initialRegs[1]!,
        };
      })
      .sort((a, b) => compareKeys(a.key, b.key)),
    mappings: image.memoryMappings.map((m) => ({ start: m.start, size: m.size, source: m.source })),
    pinned: pinned.sort(bySlot),
    initial: initial.sort(bySlot),
    yieldReceiverSlot: image.yieldReceiverSlot.selector === 1 ? (image.yieldReceiverSlot.value as Uint8Array) : null,
    gasSlots: image.gasSlots,
    quotaSlots: image.quotaSlots,
  };
  return { imageCap, dataCaps };
}

/** Admits an image: every SPEC check in SPEC order (`NubError` with code and path), then the `ImageCap`. */
export function imageCap(image: ImageValue): ImageCap {
  return admit(image).imageCap;
}

/** Every AdmittedImage admitImage made, so a Sandbox can tell one from a look-alike object. */
const admittedImages = new WeakSet<AdmittedImage>();

/** Decodes, hashes and admits `image.ssz` bytes, returning the image's Data caps as well. */
export function admitImage(bytes: Uint8Array): AdmittedImage {
  const image = decodeImage(bytes);
  const admitted: AdmittedImage = { image, contentHash: imageContentHash(image), ...admit(image) };
  admittedImages.add(admitted);
  return admitted;
}

/** True for an AdmittedImage that admitImage returned (not an object shaped like one). */
export function isAdmittedImage(value: unknown): value is AdmittedImage {
  return typeof value === 'object' && value !== null && admittedImages.has(value as AdmittedImage);
}

/**
 * True when `mapping` draws from a pinned slot (the first key of its own source names
 * one), so it is laid read-only. Judged per mapping, not by its start: another mapping
 * at the same address (a zero-size one) must not change it.
 */
export function mappingIsPinned(cap: ImageCap, mapping: ImageMappingDef): boolean {
  const first = mapping.source[0];
  return first !== undefined && cap.pinned.some((p) => keysEqual(p.slot, first));
}
