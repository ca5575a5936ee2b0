// Calls without a VM exit (polling mode, docs/guest.md): the vCPU keeps running on its
// own thread, spinning in the guest on a request sequence number in shared memory, while
// the caller publishes a request and spins on the reply. An exit happens only when the
// guest needs the host (a host call, a fault) or has been idle for its spin budget.
#pragma once
#include <atomic>
#include <cstdint>
#include "vcpu.h"

namespace nub {

// Where a call's words live in guest memory, and how the guest says it went idle.
struct PollCall {
  uint8_t* memory;    // guest memory as the host maps it now
  size_t memorySize;
  size_t seqOffset;   // u64 the caller stores `seq` into (release), unless seq == 0
  uint64_t seq;
  size_t doneOffset;  // u64 the guest sets to `want` when it has answered
  uint64_t want;
  uint16_t idlePort;  // `out` to this port: idle, waiting to be entered again
  int timeoutMs;      // Vcpu::kNoTimeout for none
};

class Poller {
 public:
  // What Call returns when the guest answered (no KVM exit reason is this large).
  static constexpr unsigned kAnswered = 0xffffffffu;

  explicit Poller(Vcpu& vcpu) : vcpu_(vcpu) {}
  ~Poller() {
    if (!quit_.load()) Shutdown();  // after Shutdown() it never touches the vCPU again
  }
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Publishes the request, keeps the vCPU running and spins until the guest answers
  // (returns kAnswered; the vCPU may go on running) or a run stops for another reason (returns
  // its exit reason, the vCPU idle: KVM_EXIT_INTR after a kick or the timeout). Safe to
  // call from one thread at a time; throws SysError when KVM_RUN fails.
  unsigned Call(const PollCall& call);
  // Stops a run in flight and waits for it, so the vCPU's registers may be used; drops a
  // kick that landed after the run had ended.
  void Park();
  bool running() const { return state_.load(std::memory_order_acquire) != kIdle; }
  // Makes a Call in flight (on any thread) throw "Closed" and waits for it, then parks.
  // Later calls throw "Closed" too. Before the vCPU closes.
  void Shutdown();

 private:
  enum State { kIdle, kRunning, kStopped };
  void Start();
  // Waits for the run in flight to stop, takes its result and makes the poller idle.
  RunResult Collect();
  static uint64_t Load(const PollCall& call, size_t offset);
  bool IsIdleDoorbell(unsigned exitReason, uint16_t port) const;

  Vcpu& vcpu_;
  int vcpuCpu_ = -1;  // the core the vCPU thread is kept on, away from the caller's
  std::atomic<int> state_{kIdle};
  std::atomic<bool> quit_{false};
  std::atomic<bool> inCall_{false};
  RunResult result_;  // written by the vCPU thread before state_ becomes kStopped
};

}  // namespace nub
