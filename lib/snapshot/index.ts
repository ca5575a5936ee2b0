/** Snapshots of VMs, read-only memory views, saved snapshot files. See docs/snapshots.md. */
export { ImmutableMapping } from './immutable-mapping.js';
export { Snapshot, type RestoreStats, type VcpuState } from './snapshot.js';
export { decodeSnapshot, encodeSnapshot, loadSnapshot, saveSnapshot, SNAPSHOT_FORMAT_VERSION } from './snapshot-file.js';
export { VmCache, DEFAULT_VM_CACHE_CAPACITY } from './vm-cache.js';
export { Pool, type PoolAdapter, type PoolStats } from './pool.js';
