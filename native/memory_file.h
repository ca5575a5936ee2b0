// A memory file: a sealable memfd that holds guest memory as it was at a snapshot. Once
// sealed (no write, grow or shrink) nothing can change its bytes, so any number of VMs
// and views can map it copy-on-write and share its pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "memory.h"

namespace nub {

class MemoryFile {
 public:
  // A new zero-filled file of `size` bytes (a multiple of the page size).
  static std::shared_ptr<MemoryFile> Create(size_t size);
  // Takes ownership of `fd`, an open memfd of `size` bytes.
  MemoryFile(int fd, size_t size) : fd_(fd), size_(size) {}
  ~MemoryFile();
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  int fd() const { return fd_; }
  size_t size() const { return size_; }
  bool sealed() const { return sealed_; }

  // pwrite of `len` bytes at `offset`; fails with EPERM once sealed.
  void Write(size_t offset, const uint8_t* bytes, size_t len);
  // Adds F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL. Needs no writable
  // shared mapping of the file to exist (EBUSY otherwise).
  void Seal();

  // A read-only view of the file's bytes in which the pages set in `bitmap` (bit i =
  // page i) are replaced by the same pages of `patch` (a mapping of at least size()
  // bytes). The view is a MAP_PRIVATE mapping of the file, patched, then made PROT_READ:
  // its cost follows the patched pages, and later changes to `patch` do not show.
  std::shared_ptr<Mapping> MapImmutable(const uint8_t* patch, const uint8_t* bitmap, size_t bitmapLen) const;

 private:
  int fd_;
  size_t size_;
  bool sealed_ = false;
};

}  // namespace nub
