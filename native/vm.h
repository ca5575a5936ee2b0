// One VM: its fd, its guest memory (one slot at guest-physical 0) and its single vCPU.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "memory.h"
#include "memory_file.h"
#include "system.h"
#include "vcpu.h"

namespace nub {

class Vm {
 public:
  // Guest memory size limits: page-granular, and below the 4 GiB hole where x86 keeps
  // the TSS KVM needs and the firmware/APIC ranges.
  static constexpr size_t kPageSize = 4096;
  static constexpr size_t kMaxMemorySize = size_t{3} << 30;

  Vm(std::shared_ptr<const KvmSystem> sys, size_t memorySize, bool dirtyLog);
  ~Vm() { Close(); }
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  Vcpu& vcpu() { return *vcpu_; }
  const std::shared_ptr<Mapping>& memory() const { return memory_.mapping; }
  size_t memorySize() const { return memorySize_; }

  // KVM_GET_DIRTY_LOG for the memory slot: one bit per 4 KiB page, cleared by the call.
  std::vector<unsigned char> GetDirtyLog() const;

  // Snapshot support (see docs/snapshots.md). FreezeMemory makes the current memory the
  // VM's sealed base file and maps it copy-on-write, so later writes (guest or host)
  // land in private pages; if the VM is already copy-on-write it returns the base as is.
  std::shared_ptr<MemoryFile> FreezeMemory();
  // Maps `base` copy-on-write as the VM's memory (every private page is dropped).
  void AdoptBase(std::shared_ptr<MemoryFile> base);
  const std::shared_ptr<MemoryFile>& base() const { return base_; }
  // Pages that differ from the base (bit i = page i); 'NotCopyOnWrite' before a freeze.
  std::vector<uint8_t> PrivatePages() const;
  // Makes the pages set in `bitmap` read as the base again.
  void DiscardPages(const uint8_t* bitmap, size_t bitmapLen);

  void Close();  // idempotent

 private:
  std::shared_ptr<const KvmSystem> sys_;
  size_t memorySize_;
  bool dirtyLog_;
  int fd_ = -1;
  GuestMemory memory_;
  std::shared_ptr<MemoryFile> base_;  // set once the memory is copy-on-write
  std::unique_ptr<Vcpu> vcpu_;
};

}  // namespace nub
