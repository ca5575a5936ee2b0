// The N-API surface: kvmInfo(), the NativeVm class, the kvm_run layout as this compiler
// sees it, and setErrorClass(). Typed in lib/native/binding.ts; loaded only by
// lib/native/index.ts.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "convert.h"
#include "nub_errors.h"
#include "errors.h"
#include "instance_data.h"
#include "memory_file.h"
#include "poller.h"
#include "system.h"
#include "vm.h"

namespace nub {
namespace {

class NativeVm;

// Every open NativeVm, so an exiting environment (main thread or worker) can close its
// own. Deliberately never destroyed: finalizers may run after static destructors.
std::mutex gLiveMutex;
std::set<NativeVm*>& LiveVms() {
  static auto* live = new std::set<NativeVm*>();
  return *live;
}

Napi::ArrayBuffer ExternalArrayBuffer(Napi::Env env, const std::shared_ptr<Mapping>& mapping) {
  // The ArrayBuffer holds its own reference; the finalizer drops it (and may unmap).
  auto* hold = new std::shared_ptr<Mapping>(mapping);
  return Napi::ArrayBuffer::New(env, mapping->addr(), mapping->size(),
                                [](Napi::Env, void*, std::shared_ptr<Mapping>* held) { delete held; }, hold);
}

int ReadTimeout(const Napi::CallbackInfo& info, size_t index = 0) {
  Napi::Value v = info[index];
  if (v.IsUndefined()) return Vcpu::kNoTimeout;
  if (v.IsNumber()) {
    double ms = v.As<Napi::Number>().DoubleValue();
    if (ms >= 0 && ms <= 2147483647.0 && std::floor(ms) == ms) return static_cast<int>(ms);
  }
  ThrowInvalid(info.Env(), "timeoutMs", "expected an integer number of milliseconds in [0, 2^31)");
}

// A bitmap argument: one bit per page, at least `pages` bits.
const Napi::Uint8Array& PageBitmap(const Napi::Value& v, size_t pages, const char* path, Napi::Uint8Array& out) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    ThrowInvalid(v.Env(), path, "expected a Uint8Array page bitmap");
  out = v.As<Napi::Uint8Array>();
  if (out.ByteLength() < (pages + 7) / 8)
    ThrowInvalid(v.Env(), path, "the bitmap needs " + std::to_string((pages + 7) / 8) + " bytes");
  return out;
}

// JS face of MemoryFile: new NativeMemoryFile(size), or handed out by a VM's freezeMemory().
class NativeMemoryFile : public Napi::ObjectWrap<NativeMemoryFile> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeMemoryFile",
                       {
                           InstanceAccessor<&NativeMemoryFile::Size>("size"),
                           InstanceAccessor<&NativeMemoryFile::Sealed>("sealed"),
                           InstanceAccessor<&NativeMemoryFile::Closed>("closed"),
                           InstanceMethod<&NativeMemoryFile::Write>("write"),
                           InstanceMethod<&NativeMemoryFile::Seal>("seal"),
                           InstanceMethod<&NativeMemoryFile::MapImmutable>("mapImmutable"),
                           InstanceMethod<&NativeMemoryFile::Close>("close"),
                       });
  }

  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<MemoryFile> file) {
    return GetInstanceData(env).memoryFileClass.New({Napi::External<std::shared_ptr<MemoryFile>>::New(env, &file)});
  }

  // The file behind a JS argument, or a BadArgument/Closed error.
  static std::shared_ptr<MemoryFile> From(const Napi::Value& v, const char* path) {
    Napi::Env env = v.Env();
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(GetInstanceData(env).memoryFileClass.Value()))
      ThrowInvalid(env, path, "expected a NativeMemoryFile");
    auto* self = Unwrap(v.As<Napi::Object>());
    if (!self->file_) throw MakeError(env, code::kClosed, "the memory file is closed");
    return self->file_;
  }

  explicit NativeMemoryFile(const Napi::CallbackInfo& info) : ObjectWrap(info) {
    Napi::Env env = info.Env();
    if (info[0].IsExternal()) {
      file_ = *info[0].As<Napi::External<std::shared_ptr<MemoryFile>>>().Data();
      return;
    }
    double bytes = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(bytes > 0 && bytes <= static_cast<double>(Vm::kMaxMemorySize) && std::floor(bytes) == bytes &&
          static_cast<size_t>(bytes) % Vm::kPageSize == 0))
      ThrowInvalid(env, "size", "expected a positive multiple of 4096 no larger than " + std::to_string(Vm::kMaxMemorySize));
    file_ = Guarded(env, [&] { return MemoryFile::Create(static_cast<size_t>(bytes)); });
  }

 private:
  MemoryFile& Open(Napi::Env env) {
    if (!file_) throw MakeError(env, code::kClosed, "the memory file is closed");
    return *file_;
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(Open(info.Env()).size()));
  }
  Napi::Value Sealed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Open(info.Env()).sealed()); }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !file_); }

  // write(offset, bytes): before seal() only.
  void Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    MemoryFile& file = Open(env);
    double offset = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      ThrowInvalid(env, "bytes", "expected a Uint8Array");
    auto bytes = info[1].As<Napi::Uint8Array>();
    if (!(offset >= 0 && std::floor(offset) == offset && offset + bytes.ByteLength() <= file.size()))
      ThrowInvalid(env, "offset", "the write must lie inside the file");
    if (file.sealed()) throw MakeError(env, code::kSealed, "the memory file is sealed");
    Guarded(env, [&] { file.Write(static_cast<size_t>(offset), bytes.Data(), bytes.ByteLength()); });
  }

  void Seal(const Napi::CallbackInfo& info) {
    MemoryFile& file = Open(info.Env());
    Guarded(info.Env(), [&] { file.Seal(); });
  }

  // mapImmutable(patch?: ArrayBuffer, bitmap?: Uint8Array) -> ArrayBuffer (PROT_READ).
  Napi::Value MapImmutable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    MemoryFile& file = Open(env);
    if (!file.sealed()) throw MakeError(env, code::kNotSealed, "seal the memory file before mapping it immutable");
    const uint8_t* patch = nullptr;
    Napi::Uint8Array bitmap;
    if (!info[0].IsUndefined()) {
      if (!info[0].IsArrayBuffer() || info[0].As<Napi::ArrayBuffer>().ByteLength() < file.size())
        ThrowInvalid(env, "patch", "expected an ArrayBuffer at least as large as the file");
      patch = static_cast<const uint8_t*>(info[0].As<Napi::ArrayBuffer>().Data());
      PageBitmap(info[1], file.size() / Vm::kPageSize, "bitmap", bitmap);
    }
    auto mapping = Guarded(env, [&] {
      return file.MapImmutable(patch, patch ? bitmap.Data() : nullptr, patch ? bitmap.ByteLength() : 0);
    });
    return ExternalArrayBuffer(env, mapping);
  }

  void Close(const Napi::CallbackInfo&) { file_.reset(); }

  std::shared_ptr<MemoryFile> file_;  // shared with the VMs and views that use it
};

class NativeVm : public Napi::ObjectWrap<NativeVm> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeVm",
                       {
                           InstanceAccessor<&NativeVm::Memory>("memory"),
                           InstanceAccessor<&NativeVm::RunState>("runState"),
                           InstanceAccessor<&NativeVm::MemorySize>("memorySize"),
                           InstanceAccessor<&NativeVm::Closed>("closed"),
                           InstanceMethod<&NativeVm::Run>("run"),
                           InstanceMethod<&NativeVm::RunAsync>("runAsync"),
                           InstanceMethod<&NativeVm::Kick>("kick"),
                           InstanceMethod<&NativeVm::PollRun>("pollRun"),
                           InstanceMethod<&NativeVm::PollRunAsync>("pollRunAsync"),
                           InstanceMethod<&NativeVm::ParkPoller>("parkPoller"),
                           InstanceMethod<&NativeVm::TscKhz>("tscKhz"),
                           InstanceMethod<&NativeVm::GetRegs>("getRegs"),
                           InstanceMethod<&NativeVm::SetRegs>("setRegs"),
                           InstanceMethod<&NativeVm::GetSregs>("getSregs"),
                           InstanceMethod<&NativeVm::SetSregs>("setSregs"),
                           InstanceMethod<&NativeVm::GetFpu>("getFpu"),
                           InstanceMethod<&NativeVm::SetFpu>("setFpu"),
                           InstanceMethod<&NativeVm::GetDirtyLog>("getDirtyLog"),
                           InstanceMethod<&NativeVm::SaveVcpuState>("saveVcpuState"),
                           InstanceMethod<&NativeVm::LoadVcpuState>("loadVcpuState"),
                           InstanceMethod<&NativeVm::FreezeMemory>("freezeMemory"),
                           InstanceMethod<&NativeVm::RenewMemory>("renewMemory"),
                           InstanceMethod<&NativeVm::AdoptBase>("adoptBase"),
                           InstanceMethod<&NativeVm::UsesBase>("usesBase"),
                           InstanceMethod<&NativeVm::PrivatePages>("privatePages"),
                           InstanceMethod<&NativeVm::DiscardPages>("discardPages"),
                           InstanceMethod<&NativeVm::Close>("close"),
                       });
  }

  // new NativeVm({ memorySize, kvmPath, dirtyLog })
  explicit NativeVm(const Napi::CallbackInfo& info) : ObjectWrap(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) ThrowInvalid(env, "opts", "expected an object");
    Napi::Object opts = info[0].As<Napi::Object>();
    Napi::Value size = opts.Get("memorySize");
    double bytes = size.IsNumber() ? size.As<Napi::Number>().DoubleValue() : -1;
    if (!(bytes > 0 && bytes <= static_cast<double>(Vm::kMaxMemorySize) && std::floor(bytes) == bytes &&
          static_cast<size_t>(bytes) % Vm::kPageSize == 0))
      ThrowInvalid(env, "opts.memorySize",
                   "expected a positive multiple of 4096 no larger than " + std::to_string(Vm::kMaxMemorySize));
    Napi::Value path = opts.Get("kvmPath");
    if (!path.IsUndefined() && !path.IsString()) ThrowInvalid(env, "opts.kvmPath", "expected a string");
    Napi::Value dirtyLog = opts.Get("dirtyLog");
    if (!dirtyLog.IsUndefined() && !dirtyLog.IsBoolean()) ThrowInvalid(env, "opts.dirtyLog", "expected a boolean");

    Guarded(env, [&] {
      auto sys = OpenKvm(path.IsString() ? path.As<Napi::String>().Utf8Value() : "/dev/kvm");
      vm_ = std::make_unique<Vm>(sys, static_cast<size_t>(bytes), dirtyLog.IsBoolean() && dirtyLog.As<Napi::Boolean>());
    });
    memorySize_ = static_cast<size_t>(bytes);
    memory_ = Napi::Persistent(ExternalArrayBuffer(env, vm_->memory()));
    runState_ = Napi::Persistent(ExternalArrayBuffer(env, vm_->vcpu().runState()));
    std::lock_guard<std::mutex> lock(gLiveMutex);
    LiveVms().insert(this);
  }

  ~NativeVm() override { CloseNative(); }

  // Environment teardown: close this environment's VMs without touching JS.
  static void CloseAllIn(napi_env env) {
    std::set<NativeVm*> live;
    {
      std::lock_guard<std::mutex> lock(gLiveMutex);
      live = LiveVms();
    }
    for (NativeVm* vm : live)
      if (vm->env_ == env) vm->CloseNative();
  }

 private:
  // Settles the runAsync() promise on the JS thread.
  static void OnRunDone(Napi::Env env, Napi::Function, NativeVm* self, RunResult* heap) {
    std::unique_ptr<RunResult> result(heap);
    if (env == nullptr) return;
    auto deferred = *self->pending_;
    self->pending_.reset();
    if (self->runDone_) self->runDone_->Unref(env);
    self->Unref();
    if (!self->vm_ || result->cancelled)
      deferred.Reject(MakeError(env, code::kClosed, "the VM was closed while it was running").Value());
    else if (result->error)
      deferred.Reject(MakeError(env, *result->error).Value());
    else
      deferred.Resolve(Napi::Number::New(env, result->exitReason));
  }

  using RunDone = Napi::TypedThreadSafeFunction<NativeVm, RunResult, &NativeVm::OnRunDone>;

  Vm& Open(Napi::Env env) {
    if (!vm_) throw MakeError(env, code::kClosed, "the VM is closed");
    return *vm_;
  }
  // The vCPU, for calls that must not overlap a runAsync() in flight (they would block
  // the JS thread until the guest exits).
  // A polling run is parked first (it is only spinning, or idle, between calls).
  Vcpu& IdleVcpu(Napi::Env env) {
    Vm& vm = Open(env);
    if (pending_) throw MakeError(env, code::kBusy, "a runAsync() on this VM has not settled yet");
    if (pollPending_) throw MakeError(env, code::kBusy, "a pollRunAsync() on this VM has not settled yet");
    if (poller_) poller_->Park();
    return vm.vcpu();
  }

  // pollRun(seqOffset, seq, doneOffset, want, idlePort, timeoutMs?): see native/poller.h.
  PollCall ReadPollCall(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto word = [&](size_t i, const char* name) -> uint64_t {
      double v = info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
      if (!(v >= 0 && v <= 9007199254740991.0 && std::floor(v) == v)) ThrowInvalid(env, name, "expected a non-negative safe integer");
      return static_cast<uint64_t>(v);
    };
    const auto& memory = Open(env).memory();
    PollCall call{static_cast<uint8_t*>(memory->addr()), memory->size(), word(0, "seqOffset"), word(1, "seq"),
                  word(2, "doneOffset"), word(3, "want"), 0, ReadTimeout(info, 5)};
    uint64_t port = word(4, "idlePort");
    if (port > 0xffff) ThrowInvalid(env, "idlePort", "expected a port number");
    call.idlePort = static_cast<uint16_t>(port);
    if (pending_ || pollPending_) throw MakeError(env, code::kBusy, "a run on this VM has not settled yet");
    if (!poller_) poller_ = std::make_shared<Poller>(Open(env).vcpu());
    return call;
  }

  Napi::Value PollRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    PollCall call = ReadPollCall(info);
    return Napi::Number::New(env, Guarded(env, [&] { return poller_->Call(call); }));
  }

  // The same spin on a libuv worker thread, so the event loop keeps running.
  class PollWorker : public Napi::AsyncWorker {
   public:
    PollWorker(Napi::Env env, NativeVm* vm, PollCall call)
        : AsyncWorker(env, "nub.poll"), vm_(vm), poller_(vm->poller_), call_(call), deferred_(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise Promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        exitReason_ = poller_->Call(call_);
      } catch (const SysError& e) {
        sysError_ = e;
      } catch (const NubFailure& f) {
        failure_ = f;
      }
    }
    void OnOK() override {
      Napi::Env env = Env();
      vm_->pollPending_ = false;
      vm_->Unref();
      if (sysError_) deferred_.Reject(MakeError(env, *sysError_).Value());
      else if (failure_) deferred_.Reject(MakeError(env, failure_->code, failure_->message).Value());
      else deferred_.Resolve(Napi::Number::New(env, exitReason_));
    }

   private:
    NativeVm* vm_;
    std::shared_ptr<Poller> poller_;
    PollCall call_;
    Napi::Promise::Deferred deferred_;
    unsigned exitReason_ = 0;
    std::optional<SysError> sysError_;
    std::optional<NubFailure> failure_;
  };

  Napi::Value PollRunAsync(const Napi::CallbackInfo& info) {
    PollCall call = ReadPollCall(info);
    auto* worker = new PollWorker(info.Env(), this, call);
    Napi::Promise promise = worker->Promise();
    pollPending_ = true;
    Ref();  // PollWorker uses this object until it settles
    worker->Queue();
    return promise;
  }

  void ParkPoller(const Napi::CallbackInfo& info) {
    Open(info.Env());
    if (pollPending_) throw MakeError(info.Env(), code::kBusy, "a pollRunAsync() on this VM has not settled yet");
    if (poller_) poller_->Park();
  }

  Napi::Value TscKhz(const Napi::CallbackInfo& info) {
    Vcpu& vcpu = Open(info.Env()).vcpu();
    return Napi::Number::New(info.Env(), Guarded(info.Env(), [&] { return vcpu.TscKhz(); }));
  }

  Napi::Value Memory(const Napi::CallbackInfo&) { return memory_.Value(); }
  Napi::Value RunState(const Napi::CallbackInfo&) { return runState_.Value(); }
  Napi::Value MemorySize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(memorySize_));
  }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !vm_); }

  // A sync run blocks this JS thread in KVM_RUN, where worker.terminate() and
  // process.exit() cannot reach it: the cleanup hook that closes the VM runs only after
  // it returns. So it runs in slices and, between them, asks whether this environment
  // can still run JS; once it cannot (it is being torn down), the run ends as
  // interrupted. A slice boundary is one exit to this thread, invisible to the guest.
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int timeoutMs = ReadTimeout(info);
    Vcpu& vcpu = IdleVcpu(env);
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    const auto elapsedMs = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count(); };
    Napi::Function probe = Napi::Function::New(env, [](const Napi::CallbackInfo&) {});
    for (;;) {
      long left = timeoutMs == Vcpu::kNoTimeout ? kRunSliceMs : timeoutMs - elapsedMs();
      int slice = static_cast<int>(std::max(0L, std::min<long>(left, kRunSliceMs)));
      const auto sliceStart = Clock::now();
      unsigned reason = Guarded(env, [&] { return vcpu.Run(slice); });
      bool sliceOver = Clock::now() - sliceStart >= std::chrono::milliseconds(slice);
      // An interruption before the slice was over is a kick; past the caller's timeout, the timeout.
      if (reason != KVM_EXIT_INTR || !sliceOver || (timeoutMs != Vcpu::kNoTimeout && elapsedMs() >= timeoutMs))
        return Napi::Number::New(env, reason);
      napi_value result;
      if (napi_call_function(env, env.Undefined(), probe, 0, nullptr, &result) != napi_ok)
        return Napi::Number::New(env, reason);  // the environment is going away
    }
  }
  static constexpr long kRunSliceMs = 200;

  Napi::Value RunAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int timeoutMs = ReadTimeout(info);
    Vcpu& vcpu = IdleVcpu(env);
    if (!runDone_) runDone_ = RunDone::New(env, "nub.vcpu", 0, 1, this);
    auto deferred = Napi::Promise::Deferred::New(env);
    Guarded(env, [&] {
      vcpu.RunAsync(timeoutMs, [tsfn = *runDone_](RunResult result) mutable {
        auto* heap = new RunResult(std::move(result));
        if (tsfn.NonBlockingCall(heap) != napi_ok) delete heap;  // environment is going away
      });
    });
    pending_ = deferred;
    runDone_->Ref(env);  // keep the event loop alive until the run settles
    Ref();               // and this object, which OnRunDone uses
    return deferred.Promise();
  }

  void Kick(const Napi::CallbackInfo& info) { Open(info.Env()).vcpu().Kick(); }

  Napi::Value GetRegs(const Napi::CallbackInfo& info) {
    Vcpu& vcpu = IdleVcpu(info.Env());
    return RegsToJs(info.Env(), Guarded(info.Env(), [&] { return vcpu.GetRegs(); }));
  }
  void SetRegs(const Napi::CallbackInfo& info) {
    Vcpu& vcpu = IdleVcpu(info.Env());
    kvm_regs regs = RegsFromJs(info[0]);
    Guarded(info.Env(), [&] { vcpu.SetRegs(regs); });
  }
  Napi::Value GetSregs(const Napi::CallbackInfo& info) {
    Vcpu& vcpu = IdleVcpu(info.Env());
    return SregsToJs(info.Env(), Guarded(info.Env(), [&] { return vcpu.GetSregs(); }));
  }
  void SetSregs(const Napi::CallbackInfo& info) {
    Vcpu& vcpu = IdleVcpu(info.Env());
    kvm_sregs sregs = SregsFromJs(info[0]);
    Guarded(info.Env(), [&] { vcpu.SetSregs(sregs); });
  }
  Napi::Value GetFpu(const Napi::CallbackInfo& info) {
    Vcpu& vcpu = IdleVcpu(info.Env());
    return FpuToJs(info.Env(), Guarded(info.Env(), [&] { return vcpu.GetFpu(); }));
  }
  void SetFpu(const Napi::CallbackInfo& info) {
    Vcpu& vcpu = IdleVcpu(info.Env());
    kvm_fpu fpu = FpuFromJs(info[0]);
    Guarded(info.Env(), [&] { vcpu.SetFpu(fpu); });
  }

  Napi::Value GetDirtyLog(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Vm& vm = Open(env);
    auto bitmap = Guarded(env, [&] { return vm.GetDirtyLog(); });
    auto array = Napi::Uint8Array::New(env, bitmap.size());
    std::copy(bitmap.begin(), bitmap.end(), array.Data());
    return array;
  }

  // The vCPU state as an opaque ArrayBuffer (the kernel structs), for a fast restore
  // in this process. Files use lib/snapshot's own encoding instead.
  Napi::Value SaveVcpuState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Vcpu& vcpu = IdleVcpu(env);
    VcpuState state = Guarded(env, [&] { return vcpu.SaveState(); });
    auto buffer = Napi::ArrayBuffer::New(env, sizeof state);
    std::memcpy(buffer.Data(), &state, sizeof state);
    return buffer;
  }

  void LoadVcpuState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Vcpu& vcpu = IdleVcpu(env);
    if (!info[0].IsArrayBuffer() || info[0].As<Napi::ArrayBuffer>().ByteLength() != sizeof(VcpuState))
      ThrowInvalid(env, "state", "expected an ArrayBuffer from saveVcpuState()");
    VcpuState state;
    std::memcpy(&state, info[0].As<Napi::ArrayBuffer>().Data(), sizeof state);
    Guarded(env, [&] { vcpu.LoadState(state); });
  }

  Napi::Value FreezeMemory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    IdleVcpu(env);  // the guest must not run while its memory is remapped
    return NativeMemoryFile::Wrap(env, Guarded(env, [&] { return vm_->FreezeMemory(); }));
  }

  // A new `memory` ArrayBuffer over the same guest memory; the old one is detached, so
  // whoever held it (a previous user of a recycled VM) can no longer reach the memory.
  void RenewMemory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Vm& vm = Open(env);
    Napi::ArrayBuffer old = memory_.Value();
    memory_ = Napi::Persistent(ExternalArrayBuffer(env, vm.memory()));
    old.Detach();
  }

  void AdoptBase(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    IdleVcpu(env);
    auto base = NativeMemoryFile::From(info[0], "base");
    Guarded(env, [&] { vm_->AdoptBase(std::move(base)); });
  }

  Napi::Value UsesBase(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto base = NativeMemoryFile::From(info[0], "base");
    return Napi::Boolean::New(env, Open(env).base() == base);
  }

  Napi::Value PrivatePages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Vm& vm = Open(env);
    auto bitmap = Guarded(env, [&] { return vm.PrivatePages(); });
    auto array = Napi::Uint8Array::New(env, bitmap.size());
    std::copy(bitmap.begin(), bitmap.end(), array.Data());
    return array;
  }

  void DiscardPages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    IdleVcpu(env);
    Napi::Uint8Array bitmap;
    PageBitmap(info[0], memorySize_ / Vm::kPageSize, "bitmap", bitmap);
    Guarded(env, [&] { vm_->DiscardPages(bitmap.Data(), bitmap.ByteLength()); });
  }

  void Close(const Napi::CallbackInfo&) {
    if (!vm_) return;
    std::shared_ptr<Mapping> memory = vm_->memory();
    std::shared_ptr<Mapping> runState = vm_->vcpu().runState();
    CloseNative();
    // Detached, no JS can reach the mappings (older `memory` buffers were detached by
    // renewMemory), so unmap now: waiting for the finalizers would keep the VM's kernel
    // objects (held by the kvm_run mapping) and its memory alive until some later GC.
    memory_.Value().Detach();
    runState_.Value().Detach();
    if (memory) memory->Unmap();
    if (runState) runState->Unmap();
  }

  // Stops the vCPU thread and closes every fd. Safe from finalizers and cleanup hooks.
  void CloseNative() {
    {
      std::lock_guard<std::mutex> lock(gLiveMutex);
      LiveVms().erase(this);
    }
    if (poller_) poller_->Shutdown();  // a pollRunAsync() in flight ends with 'Closed'
    poller_.reset();
    if (vm_) vm_->Close();  // joins the vCPU thread: any run in flight has queued OnRunDone
    vm_.reset();
    if (runDone_) runDone_->Release();  // queued OnRunDone calls are still delivered
    runDone_.reset();
  }

  napi_env env_;
  std::unique_ptr<Vm> vm_;
  size_t memorySize_ = 0;
  Napi::Reference<Napi::ArrayBuffer> memory_;
  Napi::Reference<Napi::ArrayBuffer> runState_;
  std::optional<RunDone> runDone_;
  std::optional<Napi::Promise::Deferred> pending_;
  std::shared_ptr<Poller> poller_;  // shared with a PollWorker, which may outlive close()
  bool pollPending_ = false;
};

Napi::Value KvmInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsUndefined() && !info[0].IsString()) ThrowInvalid(env, "path", "expected a string");
  std::string path = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "/dev/kvm";
  auto sys = Guarded(env, [&] { return OpenKvm(path); });
  Napi::Object result = Napi::Object::New(env);
  result.Set("apiVersion", sys->apiVersion);
  result.Set("vcpuMmapSize", sys->vcpuMmapSize);
  Napi::Object caps = Napi::Object::New(env);
  for (const auto& [name, value] : sys->capabilities) caps.Set(name, value);
  result.Set("capabilities", caps);
  return result;
}

// Offsets and sizes in struct kvm_run as compiled against this machine's linux/kvm.h,
// for the test that checks lib/native/exits.ts against them.
Napi::Object KvmRunLayout(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
#define F(name, expr) o.Set(name, Napi::Number::New(env, static_cast<double>(expr)))
  F("size", sizeof(kvm_run));
  F("immediateExit", offsetof(kvm_run, immediate_exit));
  F("exitReason", offsetof(kvm_run, exit_reason));
  F("hwHardwareExitReason", offsetof(kvm_run, hw.hardware_exit_reason));
  F("failEntryHardwareReason", offsetof(kvm_run, fail_entry.hardware_entry_failure_reason));
  F("failEntryCpu", offsetof(kvm_run, fail_entry.cpu));
  F("ioDirection", offsetof(kvm_run, io.direction));
  F("ioSize", offsetof(kvm_run, io.size));
  F("ioPort", offsetof(kvm_run, io.port));
  F("ioCount", offsetof(kvm_run, io.count));
  F("ioDataOffset", offsetof(kvm_run, io.data_offset));
  F("mmioPhysAddr", offsetof(kvm_run, mmio.phys_addr));
  F("mmioData", offsetof(kvm_run, mmio.data));
  F("mmioLen", offsetof(kvm_run, mmio.len));
  F("mmioIsWrite", offsetof(kvm_run, mmio.is_write));
  F("internalSuberror", offsetof(kvm_run, internal.suberror));
  F("internalNdata", offsetof(kvm_run, internal.ndata));
  F("internalData", offsetof(kvm_run, internal.data));
  F("KVM_EXIT_IO", KVM_EXIT_IO);
  F("KVM_EXIT_HLT", KVM_EXIT_HLT);
  F("KVM_EXIT_MMIO", KVM_EXIT_MMIO);
  F("KVM_EXIT_SHUTDOWN", KVM_EXIT_SHUTDOWN);
  F("KVM_EXIT_FAIL_ENTRY", KVM_EXIT_FAIL_ENTRY);
  F("KVM_EXIT_INTR", KVM_EXIT_INTR);
  F("KVM_EXIT_INTERNAL_ERROR", KVM_EXIT_INTERNAL_ERROR);
  F("KVM_EXIT_IO_IN", KVM_EXIT_IO_IN);
  F("KVM_EXIT_IO_OUT", KVM_EXIT_IO_OUT);
#undef F
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                if (!info[0].IsFunction()) ThrowInvalid(info.Env(), "errorClass", "expected a class");
                SetErrorClass(info.Env(), info[0].As<Napi::Function>());
              }));
  exports.Set("kvmInfo", Napi::Function::New(env, KvmInfo));
  exports.Set("NativeVm", NativeVm::Define(env));
  Napi::Function memoryFile = NativeMemoryFile::Define(env);
  GetInstanceData(env).memoryFileClass = Napi::Persistent(memoryFile);
  exports.Set("NativeMemoryFile", memoryFile);
  // Detaches an ArrayBuffer the addon made (a view), so its mapping goes with the finalizer.
  exports.Set("releaseBuffer", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                if (!info[0].IsArrayBuffer()) ThrowInvalid(info.Env(), "buffer", "expected an ArrayBuffer");
                auto buffer = info[0].As<Napi::ArrayBuffer>();
                if (!buffer.IsDetached()) buffer.Detach();
              }));
  exports.Set("kvmRunLayout", KvmRunLayout(env));
  exports.Set("maxMemorySize", Napi::Number::New(env, static_cast<double>(Vm::kMaxMemorySize)));
  napi_add_env_cleanup_hook(env, [](void* arg) { NativeVm::CloseAllIn(static_cast<napi_env>(arg)); }, env);
  return exports;
}

}  // namespace
}  // namespace nub

static Napi::Object InitNub(Napi::Env env, Napi::Object exports) { return nub::Init(env, exports); }
NODE_API_MODULE(nub, InitNub)
