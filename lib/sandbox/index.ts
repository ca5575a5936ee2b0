/** Run images: the Sandbox (engines kvm and local) and SandboxPool. */
export {
  Sandbox, SandboxSnapshot, DEFAULT_GAS, DEFAULT_SANDBOX_MEMORY,
  type SandboxOptions, type FromSnapshotOptions, type InvokeOptions, type HostFunction, type LoadedImage, type CapReader, type SandboxResult, type EngineName,
} from './sandbox.js';
export { SandboxPool, type SandboxPoolOptions } from './pool.js';
