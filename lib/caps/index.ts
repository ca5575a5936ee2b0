/** The cap layer: keys, SSZ schemas, Data caps, cap hashes and the `Cap` union's bytes. */
export * from './constants.js';
export { byteListRoot, merkleizeLevels } from './hashing.js';
export { toKey, compareKeys, keysEqual, formatKey, toHex, type KeyLike } from './keys.js';
export { DataCap, paddedSize, lastNonZero } from './data.js';
export {
  capHash, encodeCap, encodedCapLength, decodeCap, typeChainStart, typeChainExtend, codeMapping,
  type CapValue, type ImageCap, type ImageEndpointDef, type ImageMappingDef, type ImageSlotEntry,
} from './cap.js';
export {
  Key, SlotPath, CapHash, Bytes32, Uint8, Uint32, Uint64, MemoryMapping, MemoryMappingList, OptionKey, KeyList,
  DataCapType, EndpointDef, ImageCapType, CNodeCapType, InstanceCapType, TypeCapType, CapType, CapSelector,
  sortedMap, option,
  type CNodeCapValue, type InstanceCapValue, type TypeCapValue, type MemoryMappingValue,
} from './schema.js';
export { decodeStrict } from './strict.js';
