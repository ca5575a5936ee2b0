// One vCPU: its fd, its kvm_run mapping, running it (on the calling thread or on a
// dedicated thread), kicking it out of KVM_RUN, and its register state.
#pragma once

#include <linux/kvm.h>
#include <pthread.h>
#include <sys/types.h>
#include <time.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "memory.h"
#include "sys_error.h"
#include "system.h"

namespace nub {

// A POSIX timer that sends the kick signal to one thread when a run overstays.
class Watchdog {
 public:
  explicit Watchdog(pid_t tid);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  pid_t tid() const { return tid_; }
  void Arm(unsigned timeoutMs);
  void Disarm();

 private:
  pid_t tid_;
  timer_t timer_;
};

// The outcome of one run on the vCPU thread: an exit reason, or the syscall error.
struct RunResult {
  unsigned exitReason = 0;
  std::optional<SysError> error;
  bool cancelled = false;  // the vCPU was closed before this run started
};

// Everything a snapshot restores on the vCPU, as the kernel structs (in-process only).
struct VcpuState {
  kvm_regs regs;
  kvm_sregs sregs;
  kvm_fpu fpu;
  // Pending/injected exceptions and interrupts: a vCPU stopped by a kick in the middle of
  // delivering an exception would otherwise deliver it again after a restore.
  kvm_vcpu_events events;
};

class Vcpu {
 public:
  static constexpr int kNoTimeout = -1;

  Vcpu(int vmFd, const KvmSystem& sys);
  ~Vcpu() { Close(); }
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  const std::shared_ptr<Mapping>& runState() const { return runState_; }

  // KVM_RUN on the calling thread. Returns kvm_run.exit_reason; a kicked or timed-out
  // run returns KVM_EXIT_INTR (and leaves it in kvm_run.exit_reason).
  unsigned Run(int timeoutMs);

  // Queues one KVM_RUN on the vCPU's own thread (started on first use); `done` is called
  // on that thread exactly once per accepted request, also when Close() cancels it.
  void RunAsync(int timeoutMs, std::function<void(RunResult)> done);

  // Makes a running KVM_RUN return promptly, or the next one return at once when none is
  // running. Safe from any thread.
  void Kick();
  // Drops a kick that no run consumed (the next run would return at once). Only while no run is in flight.
  void ClearKick() { run()->immediate_exit = 0; }
  // The guest TSC's frequency (KVM_GET_TSC_KHZ).
  unsigned TscKhz() const;
  // Keeps the vCPU's own thread (RunAsync's) on `cpu` from now on (-1: anywhere).
  void PinThread(int cpu);

  kvm_regs GetRegs() const;
  void SetRegs(const kvm_regs& regs) const;
  kvm_sregs GetSregs() const;
  void SetSregs(const kvm_sregs& sregs) const;
  kvm_fpu GetFpu() const;
  void SetFpu(const kvm_fpu& fpu) const;
  VcpuState SaveState() const;
  void LoadState(const VcpuState& state) const;  // sregs first: they set the mode the rest is read in

  // Stops the vCPU thread (kicking any run in flight), closes the fd. Idempotent.
  void Close();

 private:
  kvm_run* run() const { return static_cast<kvm_run*>(runState_->addr()); }
  unsigned RunOnThisThread(int timeoutMs, Watchdog* watchdog);
  void ThreadMain();

  int fd_ = -1;
  std::shared_ptr<Mapping> runState_;

  std::mutex kickMutex_;          // guards running_/runner_ against Kick()
  bool running_ = false;
  pthread_t runner_{};

  std::unique_ptr<Watchdog> callerWatchdog_;  // for Run(); tied to the caller's thread

  std::mutex asyncMutex_;         // guards the request fields below
  std::condition_variable asyncWake_;
  std::thread thread_;
  int pinnedCpu_ = -1;  // PinThread(), applied when the thread starts
  bool quit_ = false;
  bool requested_ = false;
  int requestTimeoutMs_ = kNoTimeout;
  std::function<void(RunResult)> requestDone_;
};

}  // namespace nub
