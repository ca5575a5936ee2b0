#include "memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include "sys_error.h"

namespace nub {

Mapping::~Mapping() { munmap(addr_, size_); }

GuestMemory CreateGuestMemory(size_t size) {
  GuestMemory mem;
  mem.memfd = memfd_create("nub-guest-memory", MFD_CLOEXEC);
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

std::shared_ptr<Mapping> MapRunState(int vcpuFd, size_t size) {
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpuFd, 0);
  if (addr == MAP_FAILED) ThrowErrno("mmap", nullptr, "cannot map the vCPU's kvm_run structure");
  return std::make_shared<Mapping>(addr, size);
}

}  // namespace nub
