#include "convert.h"

#include <cstring>
#include <limits>
#include <string>

#include "errors.h"
#include "vcpu_fields.h"

namespace nub {
namespace {

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

// One reader and one writer per field type of vcpu_fields.h: SET_<type>(target, obj, key, path)
// stores a field of `obj` into `target`, WRITE_<type>(env, value) makes its JS value.
#define NUB_SET_U64(target, obj, key, path) target = ReadU64(obj, key, path)
#define NUB_SET_UNSIGNED(target, obj, key, path) \
  target = static_cast<decltype(target)>(ReadUnsigned(obj, key, path, std::numeric_limits<decltype(target)>::max()))
#define NUB_SET_U32 NUB_SET_UNSIGNED
#define NUB_SET_U16 NUB_SET_UNSIGNED
#define NUB_SET_U8 NUB_SET_UNSIGNED
#define NUB_SET_U8_OPTIONAL(target, obj, key, path) \
  if (!(obj).Get(key).IsUndefined()) NUB_SET_U8(target, obj, key, path)
#define NUB_SET_BYTES(target, obj, key, path) ReadBytes(obj, key, path, target, sizeof target)
#define NUB_WRITE_U64(env, v) Napi::BigInt::New(env, static_cast<uint64_t>(v))
#define NUB_WRITE_U32(env, v) Napi::Number::New(env, static_cast<double>(v))
#define NUB_WRITE_U16 NUB_WRITE_U32
#define NUB_WRITE_U8 NUB_WRITE_U32
#define NUB_WRITE_U8_OPTIONAL NUB_WRITE_U32
#define NUB_WRITE_BYTES(env, v) BytesToJs(env, v, sizeof v)

Napi::Object SegmentToJs(Napi::Env env, const kvm_segment& seg) {
  Napi::Object obj = Napi::Object::New(env);
#define X(js, member, type) obj.Set(#js, NUB_WRITE_##type(env, seg.member));
  NUB_SEGMENT_FIELDS(X)
#undef X
  return obj;
}

kvm_segment SegmentFromJs(Napi::Object parent, const char* key, const std::string& path) {
  std::string where = path + "." + key;
  Napi::Object obj = ExpectObject(parent.Get(key), where);
  kvm_segment seg{};
#define X(js, member, type) NUB_SET_##type(seg.member, obj, #js, where);
  NUB_SEGMENT_FIELDS(X)
#undef X
  return seg;
}

Napi::Object TableToJs(Napi::Env env, const kvm_dtable& table) {
  Napi::Object obj = Napi::Object::New(env);
#define X(js, member, type) obj.Set(#js, NUB_WRITE_##type(env, table.member));
  NUB_DTABLE_FIELDS(X)
#undef X
  return obj;
}

kvm_dtable TableFromJs(Napi::Object parent, const char* key, const std::string& path) {
  std::string where = path + "." + key;
  Napi::Object obj = ExpectObject(parent.Get(key), where);
  kvm_dtable table{};
#define X(js, member, type) NUB_SET_##type(table.member, obj, #js, where);
  NUB_DTABLE_FIELDS(X)
#undef X
  return table;
}

}  // namespace

Napi::Object RegsToJs(Napi::Env env, const kvm_regs& regs) {
  Napi::Object obj = Napi::Object::New(env);
#define X(js, member, type) obj.Set(#js, NUB_WRITE_##type(env, regs.member));
  NUB_REGS(X)
#undef X
  return obj;
}

kvm_regs RegsFromJs(Napi::Value value) {
  Napi::Object obj = ExpectObject(value, "regs");
  kvm_regs regs{};
#define X(js, member, type) NUB_SET_##type(regs.member, obj, #js, "regs");
  NUB_REGS(X)
#undef X
  return regs;
}

Napi::Object SregsToJs(Napi::Env env, const kvm_sregs& sregs) {
  Napi::Object obj = Napi::Object::New(env);
#define X(name) obj.Set(#name, SegmentToJs(env, sregs.name));
  NUB_SEGMENTS(X)
#undef X
#define X(name) obj.Set(#name, TableToJs(env, sregs.name));
  NUB_DTABLES(X)
#undef X
#define X(js, member, type) obj.Set(#js, NUB_WRITE_##type(env, sregs.member));
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
#define X(name) sregs.name = TableFromJs(obj, #name, "sregs");
  NUB_DTABLES(X)
#undef X
#define X(js, member, type) NUB_SET_##type(sregs.member, obj, #js, "sregs");
  NUB_CONTROL(X)
#undef X
  return sregs;
}

Napi::Object FpuToJs(Napi::Env env, const kvm_fpu& fpu) {
  Napi::Object obj = Napi::Object::New(env);
#define X(js, member, type) obj.Set(#js, NUB_WRITE_##type(env, fpu.member));
  NUB_FPU_FIELDS(X)
#undef X
  return obj;
}

kvm_fpu FpuFromJs(Napi::Value value) {
  Napi::Object obj = ExpectObject(value, "fpu");
  kvm_fpu fpu{};
#define X(js, member, type) NUB_SET_##type(fpu.member, obj, #js, "fpu");
  NUB_FPU_FIELDS(X)
#undef X
  return fpu;
}

}  // namespace nub
