#include "convert.h"

#include <cstring>
#include <limits>
#include <string>

#include "errors.h"

namespace nub {
namespace {

// Field lists, each written once and used for both directions.
#define NUB_REGS(X) \
  X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) \
  X(r8) X(r9) X(r10) X(r11) X(r12) X(r13) X(r14) X(r15) X(rip) X(rflags)
// JS name, kvm_segment member, JS type.
#define NUB_SEGMENT_FIELDS(X) \
  X(base, base, U64) X(limit, limit, U32) X(selector, selector, U16) X(type, type, U8) \
  X(present, present, U8) X(dpl, dpl, U8) X(db, db, U8) X(s, s, U8) X(l, l, U8) X(g, g, U8) \
  X(avl, avl, U8)
#define NUB_SEGMENTS(X) X(cs) X(ds) X(es) X(fs) X(gs) X(ss) X(tr) X(ldt)
#define NUB_DTABLES(X) X(gdt) X(idt)
#define NUB_CONTROL(X) X(cr0, cr0) X(cr2, cr2) X(cr3, cr3) X(cr4, cr4) X(cr8, cr8) X(efer, efer) X(apicBase, apic_base)

Napi::Object ExpectObject(Napi::Value value, const std::string& path) {
  if (!value.IsObject()) ThrowInvalid(value.Env(), path, "expected an object");
  return value.As<Napi::Object>();
}

// A u64 from a BigInt, or from a non-negative safe-integer Number.
uint64_t ReadU64(Napi::Object obj, const char* key, const std::string& path) {
  Napi::Value v = obj.Get(key);
  std::string where = path + "." + key;
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t result = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowInvalid(obj.Env(), where, "BigInt out of the u64 range");
    return result;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<uint64_t>(d)))
      return static_cast<uint64_t>(d);
  }
  ThrowInvalid(obj.Env(), where, "expected a BigInt (or a non-negative safe integer)");
}

uint64_t ReadUnsigned(Napi::Object obj, const char* key, const std::string& path, uint64_t max) {
  Napi::Value v = obj.Get(key);
  std::string where = path + "." + key;
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= static_cast<double>(max) && d == static_cast<double>(static_cast<uint64_t>(d)))
      return static_cast<uint64_t>(d);
  }
  ThrowInvalid(obj.Env(), where, "expected an integer in [0, " + std::to_string(max) + "]");
}

#define NUB_READ_U64(obj, key, path) ReadU64(obj, key, path)
#define NUB_READ_U32(obj, key, path) ReadUnsigned(obj, key, path, 0xffffffffu)
#define NUB_READ_U16(obj, key, path) ReadUnsigned(obj, key, path, 0xffffu)
#define NUB_READ_U8(obj, key, path) ReadUnsigned(obj, key, path, 0xffu)
#define NUB_WRITE_U64(env, v) Napi::BigInt::New(env, static_cast<uint64_t>(v))
#define NUB_WRITE_U32(env, v) Napi::Number::New(env, static_cast<double>(v))
#define NUB_WRITE_U16 NUB_WRITE_U32
#define NUB_WRITE_U8 NUB_WRITE_U32

void ReadBytes(Napi::Object obj, const char* key, const std::string& path, void* out, size_t size) {
  Napi::Value v = obj.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      v.As<Napi::Uint8Array>().ByteLength() != size)
    ThrowInvalid(obj.Env(), path + "." + key, "expected a Uint8Array of " + std::to_string(size) + " bytes");
  std::memcpy(out, v.As<Napi::Uint8Array>().Data(), size);
}

Napi::Uint8Array BytesToJs(Napi::Env env, const void* data, size_t size) {
  Napi::Uint8Array array = Napi::Uint8Array::New(env, size);
  std::memcpy(array.Data(), data, size);
  return array;
}

Napi::Object SegmentToJs(Napi::Env env, const kvm_segment& seg) {
  Napi::Object obj = Napi::Object::New(env);
#define X(js, member, type) obj.Set(#js, NUB_WRITE_##type(env, seg.member));
  NUB_SEGMENT_FIELDS(X)
#undef X
  obj.Set("unusable", Napi::Number::New(env, seg.unusable));
  return obj;
}

kvm_segment SegmentFromJs(Napi::Object parent, const char* key, const std::string& path) {
  std::string where = path + "." + key;
  Napi::Object obj = ExpectObject(parent.Get(key), where);
  kvm_segment seg{};
#define X(js, member, type) seg.member = static_cast<decltype(seg.member)>(NUB_READ_##type(obj, #js, where));
  NUB_SEGMENT_FIELDS(X)
#undef X
  // Optional: KVM reports it, but a segment written from scratch need not mention it.
  if (!obj.Get("unusable").IsUndefined()) seg.unusable = static_cast<uint8_t>(NUB_READ_U8(obj, "unusable", where));
  return seg;
}

}  // namespace

Napi::Object RegsToJs(Napi::Env env, const kvm_regs& regs) {
  Napi::Object obj = Napi::Object::New(env);
#define X(name) obj.Set(#name, Napi::BigInt::New(env, static_cast<uint64_t>(regs.name)));
  NUB_REGS(X)
#undef X
  return obj;
}

kvm_regs RegsFromJs(Napi::Value value) {
  Napi::Object obj = ExpectObject(value, "regs");
  kvm_regs regs{};
#define X(name) regs.name = ReadU64(obj, #name, "regs");
  NUB_REGS(X)
#undef X
  return regs;
}

Napi::Object SregsToJs(Napi::Env env, const kvm_sregs& sregs) {
  Napi::Object obj = Napi::Object::New(env);
#define X(name) obj.Set(#name, SegmentToJs(env, sregs.name));
  NUB_SEGMENTS(X)
#undef X
#define X(name)                                                                        \
  {                                                                                    \
    Napi::Object table = Napi::Object::New(env);                                       \
    table.Set("base", Napi::BigInt::New(env, static_cast<uint64_t>(sregs.name.base))); \
    table.Set("limit", Napi::Number::New(env, sregs.name.limit));                      \
    obj.Set(#name, table);                                                             \
  }
  NUB_DTABLES(X)
#undef X
#define X(js, member) obj.Set(#js, Napi::BigInt::New(env, static_cast<uint64_t>(sregs.member)));
  NUB_CONTROL(X)
#undef X
  return obj;
}

kvm_sregs SregsFromJs(Napi::Value value) {
  Napi::Object obj = ExpectObject(value, "sregs");
  kvm_sregs sregs{};
#define X(name) sregs.name = SegmentFromJs(obj, #name, "sregs");
  NUB_SEGMENTS(X)
#undef X
#define X(name)                                                                   \
  {                                                                               \
    Napi::Object table = ExpectObject(obj.Get(#name), "sregs." #name);            \
    sregs.name.base = ReadU64(table, "base", "sregs." #name);                     \
    sregs.name.limit = static_cast<uint16_t>(NUB_READ_U16(table, "limit", "sregs." #name)); \
  }
  NUB_DTABLES(X)
#undef X
#define X(js, member) sregs.member = ReadU64(obj, #js, "sregs");
  NUB_CONTROL(X)
#undef X
  return sregs;
}

Napi::Object FpuToJs(Napi::Env env, const kvm_fpu& fpu) {
  Napi::Object obj = Napi::Object::New(env);
  obj.Set("fpr", BytesToJs(env, fpu.fpr, sizeof fpu.fpr));
  obj.Set("fcw", Napi::Number::New(env, fpu.fcw));
  obj.Set("fsw", Napi::Number::New(env, fpu.fsw));
  obj.Set("ftwx", Napi::Number::New(env, fpu.ftwx));
  obj.Set("lastOpcode", Napi::Number::New(env, fpu.last_opcode));
  obj.Set("lastIp", Napi::BigInt::New(env, static_cast<uint64_t>(fpu.last_ip)));
  obj.Set("lastDp", Napi::BigInt::New(env, static_cast<uint64_t>(fpu.last_dp)));
  obj.Set("xmm", BytesToJs(env, fpu.xmm, sizeof fpu.xmm));
  obj.Set("mxcsr", Napi::Number::New(env, fpu.mxcsr));
  return obj;
}

kvm_fpu FpuFromJs(Napi::Value value) {
  Napi::Object obj = ExpectObject(value, "fpu");
  kvm_fpu fpu{};
  ReadBytes(obj, "fpr", "fpu", fpu.fpr, sizeof fpu.fpr);
  fpu.fcw = static_cast<uint16_t>(NUB_READ_U16(obj, "fcw", "fpu"));
  fpu.fsw = static_cast<uint16_t>(NUB_READ_U16(obj, "fsw", "fpu"));
  fpu.ftwx = static_cast<uint8_t>(NUB_READ_U8(obj, "ftwx", "fpu"));
  fpu.last_opcode = static_cast<uint16_t>(NUB_READ_U16(obj, "lastOpcode", "fpu"));
  fpu.last_ip = ReadU64(obj, "lastIp", "fpu");
  fpu.last_dp = ReadU64(obj, "lastDp", "fpu");
  ReadBytes(obj, "xmm", "fpu", fpu.xmm, sizeof fpu.xmm);
  fpu.mxcsr = static_cast<uint32_t>(NUB_READ_U32(obj, "mxcsr", "fpu"));
  return fpu;
}

}  // namespace nub
