// kvm_regs / kvm_sregs / kvm_fpu <-> plain JS objects. 64-bit values are BigInts;
// narrower fields are Numbers. Setters validate every field and name the bad one.
#pragma once

#include <linux/kvm.h>
#include <napi.h>

namespace nub {

Napi::Object RegsToJs(Napi::Env env, const kvm_regs& regs);
kvm_regs RegsFromJs(Napi::Value value);

Napi::Object SregsToJs(Napi::Env env, const kvm_sregs& sregs);
kvm_sregs SregsFromJs(Napi::Value value);

Napi::Object FpuToJs(Napi::Env env, const kvm_fpu& fpu);
kvm_fpu FpuFromJs(Napi::Value value);

}  // namespace nub
