/** The host side of the guest kernel: boot it, call it, read its cap directory. */
export { GuestVm, DEFAULT_MEMORY_SIZE, MAX_PUT_BYTES, type BootInfoValue, type GuestVmOptions } from './guest-vm.js';
export { GuestCacheReader, CAP_HASH_BYTES, type StoredCap } from './cache-reader.js';
export { GuestMemory } from './guest-memory.js';
export { Mailbox, MAILBOX_PAYLOAD_CAPACITY, MAILBOX_PAYLOAD_GPA } from './mailbox.js';
export { decodeSnapshot, encodeSnapshot, loadSnapshot, saveSnapshot, SNAPSHOT_FORMAT_VERSION } from './snapshot-file.js';
export { defaultKernelPath, loadKernelImage, parseKernelImage, prepareBoot, type KernelImage } from './boot.js';
