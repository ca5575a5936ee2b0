/**
 * The image file (`image.ssz`, SPEC section 3), declared once as SSZ schemas. Field
 * order is the byte order; `arena` is last so the header decodes without it.
 */
import { ByteListType, ContainerType, ListCompositeType, UnionType, type ValueOf } from '@chainsafe/ssz';
import {
  Bytes32, Key, KeyList, LIST_LIMIT, MemoryMappingList, OptionKey, Uint32, Uint64, Uint8, sortedMap,
} from '../caps/index.js';

/** `{arena_off, len}`; `{0, 0}` = no code. */
export const CodeRef = new ContainerType({ arenaOff: Uint32, len: Uint32 }, { typeName: 'CodeRef' });

/** Logical page `pageIndex` = `arena[arenaOff, arenaOff+len)` then zeros up to 4096. */
export const ArenaPageRef = new ContainerType(
  { pageIndex: Uint32, arenaOff: Uint32, len: Uint32 },
  { typeName: 'ArenaPageRef' },
);

/** A Data cap's content described against the arena; unnamed pages are zero. */
export const DataDesc = new ContainerType(
  { size: Uint64, pages: new ListCompositeType(ArenaPageRef, LIST_LIMIT) },
  { typeName: 'DataDesc' },
);

/** selector 0 `Data{desc}`, selector 1 `Image{content_hash}`. */
export const PinnedCap = new UnionType(
  [
    new ContainerType({ desc: DataDesc }, { typeName: 'PinnedData' }),
    new ContainerType({ contentHash: Bytes32 }, { typeName: 'PinnedImage' }),
  ],
  { typeName: 'PinnedCap' },
);
export const PinnedSelector = { Data: 0, Image: 1 } as const;

export const ImageEndpoint = new ContainerType(
  {
    entryPc: Uint64,
    argRegisters: Uint8,
    argCnodeSize: Uint8,
    initialRegs: sortedMap(Uint8, Uint64, 'InitialRegs'),
  },
  { typeName: 'ImageEndpoint' },
);

export const Image = new ContainerType(
  {
    code: CodeRef,
    endpoints: sortedMap(Key, ImageEndpoint, 'ImageEndpoints'),
    memoryMappings: MemoryMappingList,
    pinnedSlots: sortedMap(Key, PinnedCap, 'PinnedSlots'),
    initialSlots: sortedMap(Key, DataDesc, 'InitialSlots'),
    yieldReceiverSlot: OptionKey,
    gasSlots: KeyList,
    quotaSlots: KeyList,
    arena: new ByteListType(LIST_LIMIT, { typeName: 'Arena' }),
  },
  { typeName: 'Image' },
);

export type ImageValue = ValueOf<typeof Image>;
export type ImageEndpointValue = ValueOf<typeof ImageEndpoint>;
export type DataDescValue = ValueOf<typeof DataDesc>;
export type PinnedCapValue = ValueOf<typeof PinnedCap>;
