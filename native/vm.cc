#include "vm.h"
#include "nub_errors.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <string>

#include "pagemap.h"

namespace nub {
namespace {

constexpr unsigned kMemorySlot = 0;
// Three pages KVM on Intel needs for its real-mode TSS, just under the 4 GiB line.
constexpr unsigned long kTssAddress = 0xfffbd000;

}  // namespace

Vm::Vm(std::shared_ptr<const KvmSystem> sys, size_t memorySize, bool dirtyLog)
    : sys_(std::move(sys)), memorySize_(memorySize), dirtyLog_(dirtyLog) {
  fd_ = static_cast<int>(NUB_IOCTL(sys_->fd, KVM_CREATE_VM, 0));
  try {
    if (sys_->Capability("setTssAddr") > 0) NUB_IOCTL(fd_, KVM_SET_TSS_ADDR, kTssAddress);
    memory_ = CreateGuestMemory(memorySize);
    kvm_userspace_memory_region region{};
    region.slot = kMemorySlot;
    region.flags = dirtyLog ? KVM_MEM_LOG_DIRTY_PAGES : 0;
    region.guest_phys_addr = 0;
    region.memory_size = memorySize;
    region.userspace_addr = reinterpret_cast<unsigned long>(memory_.mapping->addr());
    NUB_IOCTL(fd_, KVM_SET_USER_MEMORY_REGION, &region);
    vcpu_ = std::make_unique<Vcpu>(fd_, *sys_);
  } catch (...) {
    Close();
    throw;
  }
}

std::vector<unsigned char> Vm::GetDirtyLog() const {
  if (!dirtyLog_) throw NubFailure{code::kDirtyLogDisabled, "the VM was created without dirtyLog: true"};
  size_t pages = memorySize_ / kPageSize;
  std::vector<unsigned char> bitmap((pages + 63) / 64 * 8);  // KVM writes whole u64 words
  kvm_dirty_log log{};
  log.slot = kMemorySlot;
  log.dirty_bitmap = bitmap.data();
  NUB_IOCTL(fd_, KVM_GET_DIRTY_LOG, &log);
  bitmap.resize((pages + 7) / 8);
  return bitmap;
}

std::shared_ptr<MemoryFile> Vm::FreezeMemory() {
  if (!memory_.mapping) throw NubFailure{code::kClosed, "the VM is closed"};
  if (base_) return base_;
  auto base = std::make_shared<MemoryFile>(memory_.memfd, memorySize_);
  memory_.memfd = -1;  // the base file owns it now
  RemapCopyOnWrite(memory_, base->fd());
  base->Seal();  // no shared writable mapping is left, so this cannot be EBUSY
  base_ = std::move(base);
  return base_;
}

void Vm::AdoptBase(std::shared_ptr<MemoryFile> base) {
  if (!memory_.mapping) throw NubFailure{code::kClosed, "the VM is closed"};
  if (base->size() != memorySize_)
    throw NubFailure{code::kSizeMismatch, "the base file has " + std::to_string(base->size()) + " bytes, the VM " +
                                         std::to_string(memorySize_)};
  if (!base->sealed()) throw NubFailure{code::kNotSealed, "only a sealed memory file can back a VM copy-on-write"};
  RemapCopyOnWrite(memory_, base->fd());
  base_ = std::move(base);
}

std::vector<uint8_t> Vm::PrivatePages() const {
  if (!base_) throw NubFailure{code::kNotCopyOnWrite, "the VM's memory has no snapshot base yet"};
  return nub::PrivatePages(memory_.mapping->addr(), memorySize_);
}

void Vm::DiscardPages(const uint8_t* bitmap, size_t bitmapLen) {
  if (!base_) throw NubFailure{code::kNotCopyOnWrite, "the VM's memory has no snapshot base yet"};
  nub::DiscardPages(*memory_.mapping, bitmap, bitmapLen);
}

void Vm::Close() {
  if (vcpu_) vcpu_->Close();
  vcpu_.reset();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (memory_.memfd >= 0) close(memory_.memfd);
  memory_.memfd = -1;
  memory_.mapping.reset();
  base_.reset();  // the ArrayBuffer over it may still hold its own reference
}

}  // namespace nub
