/** Run images: the Sandbox (engines kvm and local), its errors, and engine `kvm` for lib/machine's Engine interface. */
export {
  Sandbox, defaultEngine, DEFAULT_GAS, DEFAULT_SANDBOX_MEMORY,
  type SandboxOptions, type InvokeOptions, type HostFunction, type LoadedImage, type CapReader, type SandboxResult, type EngineName,
} from './sandbox.js';
export { SandboxErrorCodes, type SandboxErrorCode } from './errors.js';
export { kvmEngine } from './engine.js';
