// A failing syscall, described without any N-API types so the kernel-object code
// (system, memory, vm, vcpu) can run on any thread. The binding layer turns it into
// the JS NubError (see errors.cc).
#pragma once

#include <cerrno>
#include <string>

namespace nub {

struct SysError {
  int err;              // errno value
  const char* syscall;  // "open", "ioctl", "mmap", ...
  const char* ioctl;    // ioctl name when syscall is "ioctl", else nullptr
  std::string message;  // what we were doing, plus any hint for the user
};

// A failure that is not a syscall: bad state or an unsupported host.
struct NubFailure {
  std::string code;     // stable NubError code, e.g. "KvmUnsupported", "Busy"
  std::string message;
};

[[noreturn]] inline void ThrowErrno(const char* syscall, const char* ioctl, std::string message) {
  throw SysError{errno, syscall, ioctl, std::move(message)};
}

// ioctl that throws SysError naming the request. NUB_IOCTL(fd, KVM_RUN, arg) keeps the
// request number and its name from drifting apart.
long CheckedIoctl(int fd, unsigned long request, const char* name, unsigned long arg);
#define NUB_IOCTL(fd, req, arg) ::nub::CheckedIoctl((fd), (req), #req, (unsigned long)(arg))

}  // namespace nub
