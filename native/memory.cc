#include "memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "sys_error.h"

namespace nub {
namespace {
constexpr size_t kPage = 4096;
}  // namespace

Mapping::~Mapping() { Unmap(); }

void Mapping::Unmap() {
  if (addr_ != nullptr) munmap(addr_, size_);
  addr_ = nullptr;
}

GuestMemory CreateGuestMemory(size_t size) {
  GuestMemory mem;
  mem.memfd = memfd_create("nub-guest-memory", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mem.memfd < 0) ThrowErrno("memfd_create", nullptr, "cannot create the guest memory file");
  try {
    if (ftruncate(mem.memfd, static_cast<off_t>(size)) < 0)
      ThrowErrno("ftruncate", nullptr, "cannot size the guest memory file");
    void* reserved = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserved == MAP_FAILED) ThrowErrno("mmap", nullptr, "cannot reserve the guest address range");
    // From here on the Mapping owns the range, whatever happens next.
    mem.mapping = std::make_shared<Mapping>(reserved, size);
    void* mapped = mmap(reserved, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mem.memfd, 0);
    if (mapped == MAP_FAILED) ThrowErrno("mmap", nullptr, "cannot map guest memory");
  } catch (...) {
    close(mem.memfd);
    throw;
  }
  return mem;
}

void RemapCopyOnWrite(GuestMemory& mem, int fd) {
  void* mapped = mmap(mem.mapping->addr(), mem.mapping->size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
  if (mapped == MAP_FAILED) ThrowErrno("mmap", nullptr, "cannot map guest memory copy-on-write");
  if (mem.memfd >= 0 && mem.memfd != fd) close(mem.memfd);
  mem.memfd = -1;
}

void DiscardPages(const Mapping& mapping, const uint8_t* bitmap, size_t bitmapLen) {
  auto* base = static_cast<uint8_t*>(mapping.addr());
  size_t pages = std::min(mapping.size() / kPage, bitmapLen * 8);
  auto isSet = [&](size_t page) { return (bitmap[page / 8] >> (page % 8)) & 1; };
  for (size_t page = 0; page < pages;) {
    if (!isSet(page)) {
      page++;
      continue;
    }
    size_t end = page + 1;
    while (end < pages && isSet(end)) end++;
    if (madvise(base + page * kPage, (end - page) * kPage, MADV_DONTNEED) < 0)
      ThrowErrno("madvise", nullptr, "cannot discard guest pages");
    page = end;
  }
}

std::shared_ptr<Mapping> MapRunState(int vcpuFd, size_t size) {
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpuFd, 0);
  if (addr == MAP_FAILED) ThrowErrno("mmap", nullptr, "cannot map the vCPU's kvm_run structure");
  return std::make_shared<Mapping>(addr, size);
}

}  // namespace nub
