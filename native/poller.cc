#include "poller.h"
#include "nub_errors.h"

#include <immintrin.h>
#include <linux/kvm.h>
#include <time.h>
#include <cstring>

namespace nub {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

uint64_t Poller::Load(const PollCall& call, size_t offset) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(call.memory + offset), __ATOMIC_ACQUIRE);
}

bool Poller::IsIdleDoorbell(unsigned exitReason, uint16_t port) const {
  const auto* run = static_cast<const kvm_run*>(vcpu_.runState()->addr());
  return exitReason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT && run->io.port == port;
}

void Poller::Start() {
  state_.store(kRunning, std::memory_order_release);
  vcpu_.RunAsync(Vcpu::kNoTimeout, [this](RunResult result) {
    result_ = std::move(result);
    state_.store(kStopped, std::memory_order_release);
  });
}

unsigned Poller::Call(const PollCall& call) {
  struct InCall {
    std::atomic<bool>& flag;
    explicit InCall(std::atomic<bool>& f) : flag(f) { flag.store(true); }
    ~InCall() { flag.store(false); }
  } inCall(inCall_);
  if (quit_.load()) throw NubFailure{code::kClosed, "the VM is closed"};
  if (call.seqOffset + 8 > call.memorySize || call.doneOffset + 8 > call.memorySize || call.seqOffset % 8 || call.doneOffset % 8)
    throw NubFailure{code::kBadArgument, "poll offsets must be 8-byte aligned words inside guest memory"};
  if (call.seq != 0) __atomic_store_n(reinterpret_cast<uint64_t*>(call.memory + call.seqOffset), call.seq, __ATOMIC_SEQ_CST);
  const uint64_t deadline = call.timeoutMs == Vcpu::kNoTimeout ? UINT64_MAX : NowNs() + uint64_t(call.timeoutMs) * 1000000u;
  for (unsigned spins = 0;; spins++) {
    if (quit_.load(std::memory_order_relaxed)) throw NubFailure{code::kClosed, "the VM was closed during the call"};
    int state = state_.load(std::memory_order_acquire);
    if (state == kIdle) {
      Start();
      continue;
    }
    if (state == kStopped) {
      RunResult result = std::move(result_);
      state_.store(kIdle, std::memory_order_release);
      if (result.error) throw *result.error;
      if (result.cancelled) throw NubFailure{code::kClosed, "the vCPU was closed during the call"};
      if (Load(call, call.doneOffset) == call.want) return kAnswered;  // answered, then went idle
      // Idle before it saw the request: enter again and it serves it at once.
      if (IsIdleDoorbell(result.exitReason, call.idlePort)) continue;
      return result.exitReason;
    }
    if (Load(call, call.doneOffset) == call.want) return kAnswered;
    if (spins % 1024 == 0 && NowNs() >= deadline) {
      vcpu_.Kick();
      while (state_.load(std::memory_order_acquire) != kStopped) _mm_pause();
      RunResult result = std::move(result_);
      state_.store(kIdle, std::memory_order_release);
      vcpu_.ClearKick();  // the run may have ended before the kick landed
      if (result.error) throw *result.error;
      if (Load(call, call.doneOffset) == call.want) return kAnswered;
      return IsIdleDoorbell(result.exitReason, call.idlePort) ? KVM_EXIT_INTR : result.exitReason;
    }
    _mm_pause();
  }
}

void Poller::Shutdown() {
  quit_.store(true);
  while (inCall_.load()) _mm_pause();
  Park();
}

void Poller::Park() {
  bool kicked = state_.load(std::memory_order_acquire) == kRunning;
  if (kicked) {
    vcpu_.Kick();
    while (state_.load(std::memory_order_acquire) != kStopped) _mm_pause();
  }
  if (state_.load(std::memory_order_acquire) == kStopped) {
    result_ = RunResult{};
    state_.store(kIdle, std::memory_order_release);
  }
  if (kicked) vcpu_.ClearKick();  // ours, if the run ended before it landed; anyone else's kick stays
}

}  // namespace nub
