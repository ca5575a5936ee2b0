#include "poller.h"
#include "nub_errors.h"

#include <immintrin.h>
#include <linux/kvm.h>
#include <sched.h>
#include <time.h>
#include <cstring>

namespace nub {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// A core this process may use other than `cpu`, or -1.
int OtherCpu(int cpu) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
  for (int i = 0; i < CPU_SETSIZE; i++)
    if (i != cpu && CPU_ISSET(i, &allowed)) return i;
  return -1;
}

// Keeps the calling thread off one core while it lives (when it is on that core now), and
// puts its affinity back after: a poll needs the caller and the vCPU on different cores.
class StayOff {
 public:
  explicit StayOff(int cpu) {
    if (cpu < 0 || sched_getcpu() != cpu || sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
    cpu_set_t away = saved_;
    CPU_CLR(cpu, &away);
    moved_ = CPU_COUNT(&away) > 0 && sched_setaffinity(0, sizeof away, &away) == 0;
  }
  ~StayOff() {
    if (moved_) sched_setaffinity(0, sizeof saved_, &saved_);
  }

 private:
  cpu_set_t saved_;
  bool moved_ = false;
};

}  // namespace

uint64_t Poller::Load(const PollCall& call, size_t offset) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(call.memory + offset), __ATOMIC_ACQUIRE);
}

bool Poller::IsIdleDoorbell(unsigned exitReason, uint16_t port) const {
  const auto* run = static_cast<const kvm_run*>(vcpu_.runState()->addr());
  return exitReason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT && run->io.port == port;
}

RunResult Poller::Collect() {
  while (state_.load(std::memory_order_acquire) != kStopped) _mm_pause();
  RunResult result = std::move(result_);
  result_ = RunResult{};
  state_.store(kIdle, std::memory_order_release);
  return result;
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
  // Two threads spinning on one core hand over only when the scheduler's time slice ends:
  // the vCPU thread gets a core of its own (once), and the caller stays off it.
  if (vcpuCpu_ < 0) {
    vcpuCpu_ = OtherCpu(sched_getcpu());
    vcpu_.PinThread(vcpuCpu_);
  }
  StayOff stayOff(vcpuCpu_);
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
      RunResult result = Collect();
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
      RunResult result = Collect();
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
  int state = state_.load(std::memory_order_acquire);
  if (state == kIdle) return;
  bool kicked = state == kRunning;
  if (kicked) vcpu_.Kick();
  Collect();  // a stopped run's outcome (a spin kicked, or idle) matters to no one once parked
  if (kicked) vcpu_.ClearKick();  // ours, if the run ended before it landed; anyone else's kick stays
}

}  // namespace nub
