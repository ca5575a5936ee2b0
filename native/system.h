// The /dev/kvm system fd: opened once per path, checked, and shared by every VM.
#pragma once

#include <linux/kvm.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace nub {

// linux/kvm.h declares struct kvm_cpuid2 with __DECLARE_FLEX_ARRAY, which in C++ adds an
// empty struct and makes it 12 bytes instead of C's 8: the entries move and the ioctl
// numbers (which encode the size) change. So the header is declared here, as in C.
struct CpuidHeader {
  __u32 nent;
  __u32 padding;
};
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);  // KVM_GET_SUPPORTED_CPUID
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);            // KVM_SET_CPUID2
static_assert(sizeof(CpuidHeader) == 8 && kGetSupportedCpuid == 0xc008ae05 && kSetCpuid2 == 0x4008ae90);

struct KvmSystem {
  std::string path;
  int fd = -1;                       // stays open for the life of the process
  int apiVersion = 0;
  int vcpuMmapSize = 0;              // size of the kvm_run mapping of each vCPU
  std::vector<std::pair<const char*, int>> capabilities;  // name -> KVM_CHECK_EXTENSION result
  std::vector<unsigned char> supportedCpuid;               // CpuidHeader + entries, for KVM_SET_CPUID2

  int Capability(const char* name) const;
};

// Opens and checks `path` (API version 12 and the capabilities nub relies on), or returns
// the cached result of an earlier successful open. Throws SysError (with a hint saying
// what to do when the device is missing or not accessible) or NubFailure KvmUnsupported.
std::shared_ptr<const KvmSystem> OpenKvm(const std::string& path);

}  // namespace nub
