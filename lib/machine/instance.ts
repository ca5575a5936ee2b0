/**
 * Instances as both engines and the sandbox see them (docs/machine.md "Instances"):
 * an image plus the state a call leaves behind — its writable memory, registers, pc
 * and gas left. `instanceValue` is the one place the InstanceCap value (and so its
 * hash) is made from that state.
 */
import { capHash, compareKeys, DataCap, toHex, type ImageCap, type InstanceCapValue } from '../caps/index.js';
import { mappingIsPinned } from '../image/index.js';
import { NUM_REGS, PAGE_SIZE } from './abi.js';
import type { RootData } from './frame.js';

/** An image a frame can spawn Instances of. */
export interface RunnableImage {
  readonly imageCap: ImageCap;
  readonly rootData: RootData;
  /** Its Image cap hash: what an Instance names as its image. */
  readonly imageHash: Uint8Array;
  /**
   * Its root Image slots (one-byte keys) resolved to images, fixed when it was loaded:
   * DERIVE_SPAWN on a slot not here is NOT_LOADED.
   */
  readonly spawnable: ReadonlyMap<number, RunnableImage>;
}

/** The state of an Instance. Never mutated: a call that HALTs makes a new one. */
export interface InstanceRun {
  readonly image: RunnableImage;
  /** Each writable mapping's bytes (its whole size) by start. */
  readonly memory: ReadonlyMap<number, Uint8Array>;
  readonly regs: readonly bigint[];
  readonly pc: number;
  readonly gas: bigint;
}

/** The image's writable mappings: over a root slot that is not pinned (not read-only, not an argument cap's). */
function writableMappings(imageCap: ImageCap) {
  return imageCap.mappings.filter((m) => m.source.length === 1 && !mappingIsPinned(imageCap, m));
}

/** A fresh Instance: the image's writable mappings with their initial bytes, registers, pc and gas 0. */
export function spawnInstance(image: RunnableImage): InstanceRun {
  const memory = new Map<number, Uint8Array>();
  for (const m of writableMappings(image.imageCap)) {
    const bytes = new Uint8Array(Number(m.size));
    const data = image.rootData.get(toHex(m.source[0]!));
    if (data !== undefined) bytes.set(data.cap.leadingBytes(bytes.length));
    memory.set(Number(m.start), bytes);
  }
  return { image, memory, regs: new Array<bigint>(NUM_REGS).fill(0n), pc: 0, gas: 0n };
}

/** Pages of writable memory an Instance of `image` has: what DERIVE_SPAWN and CALL copy. */
export function instancePages(image: RunnableImage): number {
  return writableMappings(image.imageCap).reduce((n, m) => n + Number(m.size), 0) / PAGE_SIZE;
}

const cnodeHashes = new WeakMap<ImageCap, Uint8Array>();

/** The hash of the CNode of an image's root slots (pinned and initial), the cnode every Instance of it names. */
export function rootCnodeHash(imageCap: ImageCap): Uint8Array {
  let hash = cnodeHashes.get(imageCap);
  if (hash === undefined) {
    const slots = [...imageCap.pinned, ...imageCap.initial].map((e) => ({ key: e.slot, value: e.capHash }));
    slots.sort((a, b) => compareKeys(a.key, b.key));
    cnodeHashes.set(imageCap, (hash = capHash({ kind: 'CNode', value: { slots } })));
  }
  return hash;
}

/** The InstanceCap value of a state. */
export function instanceValue(run: InstanceRun): InstanceCapValue {
  return {
    image: run.image.imageHash,
    cnode: rootCnodeHash(run.image.imageCap),
    memory: [...run.memory].sort((a, b) => a[0] - b[0]).map(([start, bytes]) => ({ start: BigInt(start), data: DataCap.fromBytes(bytes).hash() })),
    regs: [...run.regs],
    pc: BigInt(run.pc),
    gas: run.gas,
  };
}

/** The Instance cap of a state, hashed when first asked. */
export function instanceCap(run: InstanceRun): { readonly kind: 'Instance'; readonly run: InstanceRun; readonly hash: Uint8Array } {
  let hash: Uint8Array | undefined;
  return { kind: 'Instance', run, get hash() { return (hash ??= capHash({ kind: 'Instance', value: instanceValue(run) })); } };
}
