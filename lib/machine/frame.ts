/**
 * The frame of one invocation: its cap table (docs/machine.md "Caps at run time").
 * `frameSpec` describes it from the image, the endpoint and the argument caps, with
 * every input check; both engines start from that description (engine local builds
 * a `Frame` from it, the kvm host sends it to the guest), so they refuse the same
 * inputs with the same errors and start from the same slots.
 */
import { DataCap, toHex, type ImageCap, type ImageEndpointDef, type ImageMappingDef } from '../caps/index.js';
import { NubError } from '../errors.js';
import type { InstanceRun, RunnableImage } from './instance.js';
import { SlotRef } from './kernel-ops.js';

/**
 * A cap in a frame slot: a Data cap; an Image cap (with its image when that is loaded,
 * so DERIVE_SPAWN can make Instances of it); an Instance made in the run.
 */
export type FrameCap =
  | { readonly kind: 'Data'; readonly data: DataCap; readonly hash: Uint8Array }
  | { readonly kind: 'Image'; readonly hash: Uint8Array; readonly image?: RunnableImage }
  | { readonly kind: 'Instance'; readonly hash: Uint8Array; readonly run: InstanceRun };

/**
 * An argument cap as the caller passes it: a Data or Image cap, or a stored cap of
 * another kind by hash (refused: a host invoke passes no Instance, CNode or Type).
 */
export type ArgCap = Exclude<FrameCap, { kind: 'Instance' }> | { readonly kind: 'Instance' | 'CNode' | 'Type'; readonly hash: Uint8Array; readonly run?: undefined };

export interface FrameSlotSpec {
  /** Slot reference (SlotRef): 1..255 for root slot [b], ARG_BASE + i for argument i. */
  readonly ref: number;
  readonly pinned: boolean;
  readonly cap: FrameCap;
}

export interface FrameSpec {
  /** The filled slots, ascending by ref. */
  readonly slots: readonly FrameSlotSpec[];
  /** The endpoint's `arg_cnode_size`: argument slots 0..argSlots-1 exist, and are the results. */
  readonly argSlots: number;
}

/** Where a mapping's bytes come from: a root slot's Data cap, or argument cap `arg`. */
export type MappingSource = { readonly root: Uint8Array } | { readonly arg: number };

/** The source of a mapping: `[k]` is root slot k, `[[0], [i]]` argument i; anything else has none. */
export function mappingSource(m: ImageMappingDef): MappingSource | undefined {
  if (m.source.length === 1) return { root: m.source[0]! };
  const [cnode, slot] = m.source;
  if (m.source.length === 2 && cnode!.length === 1 && cnode![0] === 0 && slot!.length === 1) return { arg: slot![0]! };
  return undefined;
}

/** The image's pinned and initial Data caps by hex slot key (what admission returns). */
export type RootData = ReadonlyMap<string, { readonly cap: DataCap; readonly hash: Uint8Array }>;

function unresolved(m: ImageMappingDef, i: number): NubError {
  return new NubError('Machine.UnresolvedMapping', `mapping at 0x${m.start.toString(16)}: no Data cap at its source`, { path: `memory_mappings[${i}].source` });
}

/**
 * The Data cap behind each mapping, with the argument slot it comes from (argument
 * mappings are read-only). Errors: 'Machine.UnresolvedMapping', 'Machine.MissingCap', 'Machine.CapKind'.
 */
export function resolveMappings(imageCap: ImageCap, root: RootData, args: readonly (ArgCap | FrameCap)[]): { cap: FrameCap & { kind: 'Data' }; arg: number | undefined }[] {
  return imageCap.mappings.map((m, i) => {
    const source = mappingSource(m);
    if (source === undefined) throw unresolved(m, i);
    if ('root' in source) {
      const d = root.get(toHex(source.root));
      if (d === undefined) throw unresolved(m, i);
      return { cap: { kind: 'Data', data: d.cap, hash: d.hash }, arg: undefined };
    }
    const cap = args[source.arg];
    if (cap === undefined) throw new NubError('Machine.MissingCap', `mapping at 0x${m.start.toString(16)} shows argument cap ${source.arg}, which was not passed`, { path: `memory_mappings[${i}].source` });
    if (cap.kind !== 'Data') throw new NubError('Machine.CapKind', `argument cap ${source.arg} is ${cap.kind}; mapping at 0x${m.start.toString(16)} needs Data`, { path: `memory_mappings[${i}].source` });
    return { cap, arg: source.arg };
  });
}

/**
 * The frame of a call to `endpoint`. Errors: 'Machine.ReservedSlots' (the image declares
 * yield/gas/quota slots, which have no meaning yet), 'Machine.TooManyCaps', 'Machine.CapKind'.
 */
export function frameSpec(
  imageCap: ImageCap, endpoint: ImageEndpointDef, root: RootData, args: readonly (ArgCap | FrameCap)[], spawnable?: ReadonlyMap<number, RunnableImage>,
): FrameSpec {
  if (imageCap.yieldReceiverSlot !== null || imageCap.gasSlots.length > 0 || imageCap.quotaSlots.length > 0) {
    throw new NubError('Machine.ReservedSlots', 'the image declares yield_receiver_slot, gas_slots or quota_slots, which are reserved (docs/machine.md)');
  }
  if (args.length > endpoint.argCnodeSize) {
    throw new NubError('Machine.TooManyCaps', `${args.length} argument caps given; the endpoint's argument cnode has ${endpoint.argCnodeSize} slots`);
  }
  const slots = rootSlotSpecs(imageCap, root, spawnable);
  args.forEach((cap, i) => {
    // An Instance comes in only from a CALL (it carries its state); a host invoke cannot pass one.
    if (cap.kind !== 'Data' && cap.kind !== 'Image' && cap.run === undefined) {
      throw new NubError('Machine.CapKind', `argument cap ${i} is ${cap.kind}; a host invoke passes Data and Image caps`);
    }
    slots.push({ ref: SlotRef.ARG_BASE + i, pinned: false, cap: cap as FrameCap });
  });
  slots.sort((a, b) => a.ref - b.ref);
  return { slots, argSlots: endpoint.argCnodeSize };
}

/** The root slots a kernel operation can name (one-byte keys but [0]): pinned and initial caps, Image caps resolved through `spawnable`. */
export function rootSlotSpecs(imageCap: ImageCap, root: RootData, spawnable?: ReadonlyMap<number, RunnableImage>): FrameSlotSpec[] {
  const slots: FrameSlotSpec[] = [];
  const rootSlot = (slot: Uint8Array, pinned: boolean, hash: Uint8Array) => {
    if (slot.length !== 1 || slot[0] === 0) return; // not nameable by a kernel operation
    const d = root.get(toHex(slot));
    const image = spawnable?.get(slot[0]!);
    const cap: FrameCap = d !== undefined ? { kind: 'Data', data: d.cap, hash: d.hash } : image !== undefined ? { kind: 'Image', hash, image } : { kind: 'Image', hash };
    slots.push({ ref: slot[0]!, pinned, cap });
  };
  for (const p of imageCap.pinned) rootSlot(p.slot, true, p.capHash);
  for (const p of imageCap.initial) rootSlot(p.slot, false, p.capHash);
  return slots;
}

/** A Data cap made from bytes (a result, a minted cap): whole pages, zero-padded, possibly none. */
export function dataCapOf(bytes: Uint8Array): DataCap {
  return bytes.length === 0 ? DataCap.fromPages(0, []) : DataCap.fromBytes(bytes);
}
