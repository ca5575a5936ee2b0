/**
 * The SSZ schemas of the cap layer, each declared once; TS types are derived from
 * them. Lists whose bound SPEC does not state use `LIST_LIMIT` (2^32); the limit is
 * part of every hash, so changing one changes hashes.
 */
import {
  ByteListType, ByteVectorType, ContainerType, ListCompositeType, NoneType, UintBigintType,
  UintNumberType, UnionType, VectorBasicType, type Type, type ValueOf,
} from '@chainsafe/ssz';
import './hashing.js';
import { LIST_LIMIT, MAX_DATA_PAGES, NUM_REGS, PAGE_SIZE } from './constants.js';

export const Uint8 = new UintNumberType(1);
export const Uint32 = new UintNumberType(4);
export const Uint64 = new UintBigintType(8);
export const Bytes32 = new ByteVectorType(32);

/** `Key`: encoded and hashed exactly like `List[uint8, 2^32]`. */
export const Key = new ByteListType(LIST_LIMIT, { typeName: 'Key' });
/** `SlotPath`: the keys to walk from a cnode to a cap. */
export const SlotPath = new ListCompositeType(Key, LIST_LIMIT, { typeName: 'SlotPath' });
export const CapHash = new ByteVectorType(32, { typeName: 'CapHash' });

/** Marks the list types that are sorted maps, so the strict decoder checks their key order. */
export const sortedMapTypes = new WeakSet<object>();

/** A sorted map `K → V`: a list of `(key, value)` containers, strictly ascending by key. */
export function sortedMap<K extends Type<unknown>, V extends Type<unknown>>(key: K, value: V, typeName: string) {
  const entry = new ContainerType({ key, value }, { typeName: `${typeName}Entry` });
  const map = new ListCompositeType(entry, LIST_LIMIT, { typeName });
  sortedMapTypes.add(map);
  return map;
}

/** `Option[T]`: selector 0 = nothing, 1 = T; the zero chunk is None's root. */
export function option<T extends Type<unknown>>(inner: T, typeName: string) {
  return new UnionType([new NoneType(), inner], { typeName });
}

export const OptionKey = option(Key, 'Option[Key]');
export const KeyList = new ListCompositeType(Key, LIST_LIMIT, { typeName: 'KeyList' });

/** `MemoryMapping`: `[start, start+size)` laid from the Data cap at `source`. */
export const MemoryMapping = new ContainerType(
  { start: Uint64, size: Uint64, source: SlotPath },
  { typeName: 'MemoryMapping' },
);
export const MemoryMappingList = new ListCompositeType(MemoryMapping, LIST_LIMIT, { typeName: 'MemoryMappings' });

// ---- caps (SPEC section 4) ----

const Page = new ByteVectorType(PAGE_SIZE, { typeName: 'Page' });

/**
 * `DataCap`: the page list, whatever the storage form (Inline or Paged), so both
 * forms of the same bytes hash the same.
 */
export const DataCapType = new ContainerType(
  { pages: new ListCompositeType(Page, MAX_DATA_PAGES) },
  { typeName: 'DataCap' },
);

/** An admitted endpoint: dense registers, `stack_top = initial_regs[1]`. */
export const EndpointDef = new ContainerType(
  {
    entryPc: Uint64,
    stackTop: Uint64,
    argRegisters: Uint8,
    argCnodeSize: Uint8,
    initialRegs: new VectorBasicType(Uint64, NUM_REGS),
  },
  { typeName: 'EndpointDef' },
);

const SlotEntry = new ContainerType({ slot: Key, capHash: CapHash }, { typeName: 'ImageSlotEntry' });
const SlotEntryList = new ListCompositeType(SlotEntry, LIST_LIMIT);

export const ImageCapType = new ContainerType(
  {
    code: new ByteListType(LIST_LIMIT),
    endpoints: sortedMap(Key, EndpointDef, 'Endpoints'),
    mappings: MemoryMappingList,
    pinned: SlotEntryList,
    initial: SlotEntryList,
    yieldReceiverSlot: OptionKey,
    gasSlots: KeyList,
    quotaSlots: KeyList,
  },
  { typeName: 'ImageCap' },
);

export const CNodeCapType = new ContainerType(
  { slots: sortedMap(Key, CapHash, 'CNodeSlots') },
  { typeName: 'CNodeCap' },
);

/** A running instance: its image, root cnode, writable memory (as Data caps), registers, pc, gas. */
export const InstanceCapType = new ContainerType(
  {
    image: CapHash,
    cnode: CapHash,
    memory: new ListCompositeType(
      new ContainerType({ start: Uint64, data: CapHash }, { typeName: 'InstanceMemory' }),
      LIST_LIMIT,
    ),
    regs: new VectorBasicType(Uint64, NUM_REGS),
    pc: Uint64,
    gas: Uint64,
  },
  { typeName: 'InstanceCap' },
);

export const TypeCapType = new ContainerType({ imageHashChain: Bytes32 }, { typeName: 'TypeCap' });

/** Selectors: Instance 0, Image 1, Data 2, CNode 3, Type 4. */
export const CapType = new UnionType(
  [InstanceCapType, ImageCapType, DataCapType, CNodeCapType, TypeCapType],
  { typeName: 'Cap' },
);

export const CapSelector = { Instance: 0, Image: 1, Data: 2, CNode: 3, Type: 4 } as const;

export type ImageCapSsz = ValueOf<typeof ImageCapType>;
export type CNodeCapValue = ValueOf<typeof CNodeCapType>;
export type InstanceCapValue = ValueOf<typeof InstanceCapType>;
export type TypeCapValue = ValueOf<typeof TypeCapType>;
export type MemoryMappingValue = ValueOf<typeof MemoryMapping>;
