/** Run images: the Sandbox (engines kvm and local), its errors, and engine `kvm` for lib/machine's Engine interface. */
export {
  Sandbox, SandboxSnapshot, DEFAULT_GAS, DEFAULT_SANDBOX_MEMORY,
  type SandboxOptions, type FromSnapshotOptions, type InvokeOptions, type HostFunction, type LoadedImage, type CapReader, type SandboxResult, type EngineName,
} from './sandbox.js';
export { kvmEngine } from './engine.js';
export { SandboxPool, type SandboxPoolOptions } from './pool.js';
