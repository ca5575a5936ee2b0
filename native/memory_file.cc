#include "memory_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "sys_error.h"

namespace nub {
namespace {
constexpr size_t kPage = 4096;
}  // namespace

std::shared_ptr<MemoryFile> MemoryFile::Create(size_t size) {
  int fd = memfd_create("nub-snapshot-memory", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) ThrowErrno("memfd_create", nullptr, "cannot create a snapshot memory file");
  auto file = std::make_shared<MemoryFile>(fd, size);
  if (ftruncate(fd, static_cast<off_t>(size)) < 0) ThrowErrno("ftruncate", nullptr, "cannot size the snapshot memory file");
  return file;
}

MemoryFile::~MemoryFile() {
  if (fd_ >= 0) close(fd_);
}

void MemoryFile::Write(size_t offset, const uint8_t* bytes, size_t len) {
  while (len > 0) {
    ssize_t n = pwrite(fd_, bytes, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ThrowErrno("pwrite", nullptr, "cannot write the snapshot memory file");
    bytes += n;
    offset += static_cast<size_t>(n);
    len -= static_cast<size_t>(n);
  }
}

void MemoryFile::Seal() {
  if (sealed_) return;
  if (fcntl(fd_, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
    ThrowErrno("fcntl", nullptr, "cannot seal the snapshot memory file");
  sealed_ = true;
}

std::shared_ptr<Mapping> MemoryFile::MapImmutable(const uint8_t* patch, const uint8_t* bitmap, size_t bitmapLen) const {
  void* addr = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd_, 0);
  if (addr == MAP_FAILED) ThrowErrno("mmap", nullptr, "cannot map the snapshot memory file");
  auto mapping = std::make_shared<Mapping>(addr, size_);
  auto* out = static_cast<uint8_t*>(addr);
  size_t pages = size_ / kPage;
  for (size_t page = 0; page < pages && page / 8 < bitmapLen; page++) {
    if (bitmap[page / 8] == 0) {
      page |= 7;  // skip the rest of an empty byte
      continue;
    }
    if (bitmap[page / 8] & (1u << (page % 8))) std::memcpy(out + page * kPage, patch + page * kPage, kPage);
  }
  if (mprotect(addr, size_, PROT_READ) < 0) ThrowErrno("mprotect", nullptr, "cannot make the snapshot view read-only");
  return mapping;
}

}  // namespace nub
