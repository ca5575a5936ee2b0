/**
 * nub's public API: run PVM2 images in a KVM sandbox (or the reference interpreter),
 * build and admit images, and work with caps. See README.md ("Using nub from Node").
 */
export {
  Sandbox, SandboxSnapshot, SandboxPool, DEFAULT_GAS, DEFAULT_SANDBOX_MEMORY,
  type SandboxOptions, type SandboxPoolOptions, type FromSnapshotOptions, type InvokeOptions, type HostFunction, type LoadedImage, type CapReader, type SandboxResult,
  type EngineName,
} from './sandbox/index.js';
export { NubError, isNubError, ERROR_CODES, isNubErrorCode, type NubErrorCode, type SandboxAfter } from './errors.js';
export { admitImage, ImageBuilder, decodeImage, encodeImage, type AdmittedImage, type EndpointSpec } from './image/index.js';
export { capHash, encodeCap, decodeCap, DataCap, toKey, toHex, type CapValue, type KeyLike, type ImageCap } from './caps/index.js';
export {
  Exit, exitName, invokeLocal, runMachine,
  type InvokeResult, type MemoryView, type ExitCode,
} from './machine/index.js';
export { ImmutableMapping, Snapshot, VmCache, type RestoreStats } from './snapshot/index.js';
export { GuestVm, saveSnapshot, loadSnapshot, type GuestCacheReader } from './guest/index.js';
