// Host mappings that JS sees as external ArrayBuffers. A Mapping is shared (refcounted)
// between its owner (the VM or vCPU) and the ArrayBuffer's finalizer, so close() and
// garbage collection can happen in either order; the last one out unmaps. close()
// unmaps at once (Unmap) after detaching every ArrayBuffer over it: a detached buffer's
// finalizer runs only at some later GC, and until then the mapping would pin the VM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace nub {

class Mapping {
 public:
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  void* addr() const { return addr_; }
  size_t size() const { return size_; }
  // Unmaps now; only once nothing can reach the memory (every ArrayBuffer detached).
  void Unmap();

 private:
  void* addr_;
  size_t size_;
};

// Guest memory: a memfd of `size` bytes mapped MAP_SHARED over a reserved VA range.
// Reserving first keeps the range ours, so a snapshot can remap a memfd copy-on-write
// (MAP_PRIVATE) at the same address: `memfd` is then -1 and the VM holds the snapshot's
// sealed base file instead, which guest writes no longer reach.
struct GuestMemory {
  int memfd = -1;                    // owned by the VM; closed on close()
  std::shared_ptr<Mapping> mapping;
};
GuestMemory CreateGuestMemory(size_t size);

// Replaces the mapping of `mem` by a MAP_PRIVATE mapping of `fd` at the same address
// (the caller keeps `fd`; mem's own memfd, if any, is closed). Private pages are dropped.
void RemapCopyOnWrite(GuestMemory& mem, int fd);

// MADV_DONTNEED on every page set in `bitmap` (bit i = page i), in runs: in a
// copy-on-write mapping this drops the private copies, so those pages read as the file again.
void DiscardPages(const Mapping& mapping, const uint8_t* bitmap, size_t bitmapLen);

// Maps a vCPU's kvm_run structure.
std::shared_ptr<Mapping> MapRunState(int vcpuFd, size_t size);

}  // namespace nub
