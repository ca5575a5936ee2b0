/** Snapshots of VMs and read-only memory views. See docs/snapshots.md (saved snapshot files are lib/guest's: which pages to keep follows the guest's page tables). */
export { ImmutableMapping } from './immutable-mapping.js';
export { Snapshot, type RestoreStats, type VcpuState } from './snapshot.js';
export { VmCache, DEFAULT_VM_CACHE_CAPACITY } from './vm-cache.js';
