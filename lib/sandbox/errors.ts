/**
 * The codes a Sandbox call fails with (always a NubError, lib/errors.ts). Other codes
 * pass through from the layers below (e.g. 'Machine.MappingsOverlap' from loading an
 * image whose mappings the machine refuses, 'DirectoryFull', 'GuestOutOfMemory').
 */
export const SandboxErrorCodes = {
  /** The image failed decoding or admission; `cause` is the admission error (with its own code and path). */
  BadImage: 'BadImage',
  /** `timeoutMs` passed before the guest finished; the sandbox is usable. */
  Timeout: 'Timeout',
  /** The AbortSignal fired; the sandbox is usable. */
  Cancelled: 'Cancelled',
  /** An earlier failure left the guest unusable (`cause` says which); `reset()` reboots it. */
  Poisoned: 'Poisoned',
  /** The sandbox was closed. */
  Closed: 'Closed',
  /** The guest kernel took an exception (details: vector, rip, cr2...); the sandbox is poisoned. */
  GuestFault: 'GuestFault',
  /** The image has no such endpoint. */
  UnknownEndpoint: 'UnknownEndpoint',
  /** A host function threw (`cause`); the invoke ended at the call and the sandbox is usable. */
  HostFunctionFailed: 'HostFunctionFailed',
  /** The image (by hash) was never loaded into this sandbox. */
  UnknownImage: 'UnknownImage',
  /** A bad argument to a Sandbox method (args, gas, host-function number...). */
  BadArgument: 'BadArgument',
  /** A result's memory was read after a later invoke on the same sandbox reused it. */
  StaleMemory: 'StaleMemory',
} as const;

export type SandboxErrorCode = (typeof SandboxErrorCodes)[keyof typeof SandboxErrorCodes];
