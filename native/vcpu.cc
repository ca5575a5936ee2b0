#include "vcpu.h"
#include "nub_errors.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace nub {

namespace {

void ApplyPin(std::thread& thread, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &set);
  } else {
    CPU_SET(cpu, &set);
  }
  pthread_setaffinity_np(thread.native_handle(), sizeof set, &set);  // best effort: a cpuset may forbid it
}

constexpr uint32_t kMxcsrDefault = 0x1f80;  // power-on value: all SSE exceptions masked

// A real-time signal Node and libuv leave alone (glibc keeps SIGRTMIN's first ones for
// itself and SIGRTMIN already accounts for that).
int KickSignal() { return SIGRTMIN + 4; }

// The kvm_run of the vCPU this thread is about to enter or is running, for the handler.
thread_local kvm_run* tlKickTarget = nullptr;

void OnKickSignal(int) {
  // The signal may land after this thread armed tlKickTarget but before it entered
  // KVM_RUN; immediate_exit makes that KVM_RUN return at once instead of running on.
  if (kvm_run* run = tlKickTarget) run->immediate_exit = 1;
}

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_handler = OnKickSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must come back with EINTR
    if (sigaction(KickSignal(), &action, nullptr) < 0)
      ThrowErrno("sigaction", nullptr, "cannot install the vCPU kick signal handler");
  });
}

void UnblockKickSignalOnThisThread() {
  thread_local bool done = false;
  if (done) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, KickSignal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  done = true;
}

pid_t CurrentTid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

}  // namespace

Watchdog::Watchdog(pid_t tid) : tid_(tid) {
  sigevent event;
  std::memset(&event, 0, sizeof event);
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = KickSignal();
  event._sigev_un._tid = tid;
  if (timer_create(CLOCK_MONOTONIC, &event, &timer_) < 0)
    ThrowErrno("timer_create", nullptr, "cannot create the vCPU run watchdog");
}

Watchdog::~Watchdog() { timer_delete(timer_); }

void Watchdog::Arm(unsigned timeoutMs) {
  itimerspec spec{};
  spec.it_value.tv_sec = timeoutMs / 1000;
  spec.it_value.tv_nsec = static_cast<long>(timeoutMs % 1000) * 1000000L;
  if (timeoutMs == 0) spec.it_value.tv_nsec = 1;  // an all-zero it_value would disarm
  if (timer_settime(timer_, 0, &spec, nullptr) < 0) ThrowErrno("timer_settime", nullptr, "cannot arm the watchdog");
}

void Watchdog::Disarm() {
  itimerspec spec{};
  timer_settime(timer_, 0, &spec, nullptr);
}

Vcpu::Vcpu(int vmFd, const KvmSystem& sys) {
  InstallKickHandler();
  fd_ = static_cast<int>(NUB_IOCTL(vmFd, KVM_CREATE_VCPU, 0));
  try {
    runState_ = MapRunState(fd_, static_cast<size_t>(sys.vcpuMmapSize));
    // Hand the guest everything KVM supports, so long mode, SSE and friends are visible.
    CheckedIoctl(fd_, kSetCpuid2, "KVM_SET_CPUID2", reinterpret_cast<unsigned long>(sys.supportedCpuid.data()));
  } catch (...) {
    close(fd_);
    fd_ = -1;
    throw;
  }
}

unsigned Vcpu::Run(int timeoutMs) {
  if (timeoutMs == kNoTimeout) return RunOnThisThread(kNoTimeout, nullptr);
  pid_t tid = CurrentTid();
  if (!callerWatchdog_ || callerWatchdog_->tid() != tid) callerWatchdog_ = std::make_unique<Watchdog>(tid);
  return RunOnThisThread(timeoutMs, callerWatchdog_.get());
}

unsigned Vcpu::RunOnThisThread(int timeoutMs, Watchdog* watchdog) {
  UnblockKickSignalOnThisThread();
  kvm_run* state = run();

  // Everything Kick() and the watchdog need is in place before the timer is armed, and
  // torn down (whatever happens) before this returns.
  class RunScope {
   public:
    RunScope(Vcpu& vcpu, kvm_run* state, Watchdog* watchdog) : vcpu_(vcpu), state_(state), watchdog_(watchdog) {
      tlKickTarget = state;
      std::lock_guard<std::mutex> lock(vcpu_.kickMutex_);
      vcpu_.running_ = true;
      vcpu_.runner_ = pthread_self();
    }
    ~RunScope() {
      if (watchdog_) watchdog_->Disarm();
      tlKickTarget = nullptr;
      std::lock_guard<std::mutex> lock(vcpu_.kickMutex_);
      vcpu_.running_ = false;
      state_->immediate_exit = 0;  // a kick is consumed by the run it interrupted
    }

   private:
    Vcpu& vcpu_;
    kvm_run* state_;
    Watchdog* watchdog_;
  };

  int result;
  int err;
  {
    RunScope scope(*this, state, watchdog);
    if (watchdog) watchdog->Arm(static_cast<unsigned>(timeoutMs));
    // Our kick and the watchdog set immediate_exit before KVM_RUN returns EINTR; any
    // other signal (a profiler's SIGPROF, ...) leaves it clear: just enter again.
    do {
      result = ioctl(fd_, KVM_RUN, 0);
      err = errno;
    } while (result < 0 && err == EINTR && !state->immediate_exit);
  }
  if (result < 0) {
    if (err != EINTR) {
      errno = err;
      ThrowErrno("ioctl", "KVM_RUN", "KVM_RUN failed");
    }
    state->exit_reason = KVM_EXIT_INTR;  // the kernel leaves it stale after immediate_exit
  }
  return state->exit_reason;
}

void Vcpu::Kick() {
  std::lock_guard<std::mutex> lock(kickMutex_);
  if (!runState_) return;
  run()->immediate_exit = 1;
  if (running_) pthread_kill(runner_, KickSignal());
}

void Vcpu::RunAsync(int timeoutMs, std::function<void(RunResult)> done) {
  std::lock_guard<std::mutex> lock(asyncMutex_);
  if (quit_) throw NubFailure{code::kClosed, "the vCPU is closed"};
  if (requested_) throw NubFailure{code::kBusy, "a run is already queued on this vCPU"};
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { ThreadMain(); });
    ApplyPin(thread_, pinnedCpu_);
  }
  requested_ = true;
  requestTimeoutMs_ = timeoutMs;
  requestDone_ = std::move(done);
  asyncWake_.notify_one();
}

void Vcpu::ThreadMain() {
  std::optional<Watchdog> watchdog;
  std::unique_lock<std::mutex> lock(asyncMutex_);
  for (;;) {
    asyncWake_.wait(lock, [this] { return quit_ || requested_; });
    if (!requested_) return;  // quit with nothing queued
    auto done = std::move(requestDone_);
    int timeoutMs = requestTimeoutMs_;
    bool cancelled = quit_;
    requested_ = false;
    lock.unlock();
    RunResult result;
    if (cancelled) {
      result.cancelled = true;
    } else {
      try {
        if (timeoutMs != kNoTimeout && !watchdog) watchdog.emplace(CurrentTid());
        result.exitReason = RunOnThisThread(timeoutMs, watchdog ? &*watchdog : nullptr);
      } catch (const SysError& e) {
        result.error = e;
      }
    }
    done(std::move(result));
    lock.lock();
  }
}

void Vcpu::Close() {
  {
    std::lock_guard<std::mutex> lock(asyncMutex_);
    quit_ = true;
    asyncWake_.notify_one();
  }
  if (thread_.joinable()) {
    Kick();
    thread_.join();
  }
  callerWatchdog_.reset();
  std::lock_guard<std::mutex> lock(kickMutex_);
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  runState_.reset();
}

void Vcpu::PinThread(int cpu) {
  std::lock_guard<std::mutex> lock(asyncMutex_);
  pinnedCpu_ = cpu;
  if (thread_.joinable()) ApplyPin(thread_, cpu);
}

unsigned Vcpu::TscKhz() const { return static_cast<unsigned>(NUB_IOCTL(fd_, KVM_GET_TSC_KHZ, 0)); }

kvm_regs Vcpu::GetRegs() const {
  kvm_regs regs;
  NUB_IOCTL(fd_, KVM_GET_REGS, &regs);
  return regs;
}
void Vcpu::SetRegs(const kvm_regs& regs) const { NUB_IOCTL(fd_, KVM_SET_REGS, &regs); }

kvm_sregs Vcpu::GetSregs() const {
  kvm_sregs sregs;
  NUB_IOCTL(fd_, KVM_GET_SREGS, &sregs);
  return sregs;
}
void Vcpu::SetSregs(const kvm_sregs& sregs) const { NUB_IOCTL(fd_, KVM_SET_SREGS, &sregs); }

kvm_fpu Vcpu::GetFpu() const {
  kvm_fpu fpu;
  NUB_IOCTL(fd_, KVM_GET_FPU, &fpu);
  return fpu;
}
void Vcpu::SetFpu(const kvm_fpu& fpu) const { NUB_IOCTL(fd_, KVM_SET_FPU, &fpu); }

VcpuState Vcpu::SaveState() const {
  VcpuState state{GetRegs(), GetSregs(), GetFpu(), {}};
  NUB_IOCTL(fd_, KVM_GET_VCPU_EVENTS, &state.events);
  // KVM_GET_FPU reports MXCSR as 0; restoring that would unmask every SSE exception.
  if (state.fpu.mxcsr == 0) state.fpu.mxcsr = kMxcsrDefault;
  return state;
}

void Vcpu::LoadState(const VcpuState& state) const {
  SetSregs(state.sregs);
  SetRegs(state.regs);
  SetFpu(state.fpu);
  NUB_IOCTL(fd_, KVM_SET_VCPU_EVENTS, &state.events);
}

}  // namespace nub
