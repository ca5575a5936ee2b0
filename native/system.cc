#include "system.h"
#include "nub_errors.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <map>
#include <mutex>

#include "sys_error.h"

namespace nub {
namespace {

constexpr int kExpectedApiVersion = 12;

struct CapabilityQuery {
  const char* name;
  int id;
  bool required;
};

// The capabilities reported by kvmInfo(); `required` ones are checked at open.
constexpr CapabilityQuery kCapabilities[] = {
    {"userMemory", KVM_CAP_USER_MEMORY, true},        // KVM_SET_USER_MEMORY_REGION
    {"immediateExit", KVM_CAP_IMMEDIATE_EXIT, true},  // race-free kick()
    {"extCpuid", KVM_CAP_EXT_CPUID, true},            // KVM_GET_SUPPORTED_CPUID
    {"vcpuEvents", KVM_CAP_VCPU_EVENTS, true},        // snapshots restore pending exceptions
    {"syncMmu", KVM_CAP_SYNC_MMU, false},
    {"setTssAddr", KVM_CAP_SET_TSS_ADDR, false},
    {"readonlyMem", KVM_CAP_READONLY_MEM, false},
    {"nrMemslots", KVM_CAP_NR_MEMSLOTS, false},
    {"maxVcpus", KVM_CAP_MAX_VCPUS, false},
    {"manualDirtyLogProtect2", KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, false},
    {"dirtyLogRing", KVM_CAP_DIRTY_LOG_RING, false},
};

std::string OpenHint(const std::string& path, int err) {
  switch (err) {
    case ENOENT:
      return "cannot open " + path + ": no such device. KVM is not available: enable virtualization (VT-x/AMD-V) "
             "in the firmware and load the module (`sudo modprobe kvm_intel` or `sudo modprobe kvm_amd`); "
             "inside a VM, enable nested virtualization.";
    case EACCES:
    case EPERM:
      return "cannot open " + path + ": permission denied. Add your user to the kvm group "
             "(`sudo usermod -aG kvm $USER`, then log in again), or check the device's permissions and ACLs "
             "(`ls -l " + path + "`, `getfacl " + path + "`).";
    default:
      return "cannot open " + path;
  }
}

void FetchSupportedCpuid(KvmSystem& sys) {
  // The kernel answers E2BIG until the buffer is large enough.
  for (unsigned entries = 64; entries <= 4096; entries *= 2) {
    std::vector<unsigned char> blob(sizeof(CpuidHeader) + entries * sizeof(kvm_cpuid_entry2));
    auto* header = reinterpret_cast<CpuidHeader*>(blob.data());
    header->nent = entries;
    if (ioctl(sys.fd, kGetSupportedCpuid, header) == 0) {
      blob.resize(sizeof(CpuidHeader) + header->nent * sizeof(kvm_cpuid_entry2));
      sys.supportedCpuid = std::move(blob);
      return;
    }
    if (errno != E2BIG) ThrowErrno("ioctl", "KVM_GET_SUPPORTED_CPUID", "KVM_GET_SUPPORTED_CPUID failed");
  }
  throw NubFailure{code::kKvmUnsupported, "KVM_GET_SUPPORTED_CPUID reports an implausible number of entries"};
}

std::shared_ptr<const KvmSystem> Open(const std::string& path) {
  auto sys = std::make_shared<KvmSystem>();
  sys->path = path;
  sys->fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (sys->fd < 0) ThrowErrno("open", nullptr, OpenHint(path, errno));
  try {
    // A file that is not a KVM device (e.g. /dev/null) fails here with ENOTTY.
    sys->apiVersion = static_cast<int>(ioctl(sys->fd, KVM_GET_API_VERSION, 0));
    if (sys->apiVersion < 0) ThrowErrno("ioctl", "KVM_GET_API_VERSION", path + " is not a KVM device");
    if (sys->apiVersion != kExpectedApiVersion)
      throw NubFailure{code::kKvmUnsupported, path + " reports KVM API version " + std::to_string(sys->apiVersion) +
                                             ", nub needs " + std::to_string(kExpectedApiVersion)};
    for (const auto& cap : kCapabilities) {
      int value = static_cast<int>(NUB_IOCTL(sys->fd, KVM_CHECK_EXTENSION, cap.id));
      if (cap.required && value <= 0)
        throw NubFailure{code::kKvmUnsupported, path + " lacks the KVM capability " + cap.name + ", which nub needs"};
      sys->capabilities.emplace_back(cap.name, value);
    }
    sys->vcpuMmapSize = static_cast<int>(NUB_IOCTL(sys->fd, KVM_GET_VCPU_MMAP_SIZE, 0));
    FetchSupportedCpuid(*sys);
  } catch (...) {
    close(sys->fd);
    throw;
  }
  return sys;
}

}  // namespace

int KvmSystem::Capability(const char* name) const {
  for (const auto& [capName, value] : capabilities)
    if (std::string(capName) == name) return value;
  return 0;
}

std::shared_ptr<const KvmSystem> OpenKvm(const std::string& path) {
  // Process-wide: worker threads share one fd per path; failures are not cached so a
  // fixed permission problem is picked up on the next attempt.
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const KvmSystem>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(path);
  if (it != cache.end()) return it->second;
  auto sys = Open(path);
  cache.emplace(path, sys);
  return sys;
}

}  // namespace nub
