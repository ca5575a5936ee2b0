// Host mappings that JS sees as external ArrayBuffers. A Mapping is shared (refcounted)
// between its owner (the VM or vCPU) and the ArrayBuffer's finalizer, so close() and
// garbage collection can happen in either order; the last one out unmaps.
#pragma once

#include <cstddef>
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

 private:
  void* addr_;
  size_t size_;
};

// Guest memory: a memfd of `size` bytes mapped MAP_SHARED over a reserved VA range.
// Reserving first keeps the range ours, so a later snapshot can remap the same memfd
// copy-on-write at the same address.
struct GuestMemory {
  int memfd = -1;                    // owned by the VM; closed on close()
  std::shared_ptr<Mapping> mapping;
};
GuestMemory CreateGuestMemory(size_t size);

// Maps a vCPU's kvm_run structure.
std::shared_ptr<Mapping> MapRunState(int vcpuFd, size_t size);

}  // namespace nub
