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

// One field of a vcpu_fields.h list: from the kvm struct `from` into the JS object `obj`,
// and from `obj` (at `where`) into the kvm struct `to`.
#define NUB_FIELD_TO_JS(js, member, type) obj.Set(#js, NUB_WRITE_##type(env, from.member));
#define NUB_FIELD_FROM_JS(js, member, type) NUB_SET_##type(to.member, obj, #js, where);

Napi::Object SegmentToJs(Napi::Env env, const kvm_segment& from) {
  Napi::Object obj = Napi::Object::New(env);
  NUB_SEGMENT_FIELDS(NUB_FIELD_TO_JS)
  return obj;
}

Napi::Object TableToJs(Napi::Env env, const kvm_dtable& from) {
  Napi::Object obj = Napi::Object::New(env);
  NUB_DTABLE_FIELDS(NUB_FIELD_TO_JS)
  return obj;
}

// A kvm struct nested in `parent` (a segment, a descriptor table); `fields` reads each field.
template <typename T, typename Fields>
T NestedFromJs(Napi::Object parent, const char* key, const std::string& path, Fields fields) {
  std::string where = path + "." + key;
  Napi::Object obj = ExpectObject(parent.Get(key), where);
  T to{};
  fields(obj, where, to);
  return to;
}

}  // namespace

Napi::Object RegsToJs(Napi::Env env, const kvm_regs& from) {
  Napi::Object obj = Napi::Object::New(env);
  NUB_REGS(NUB_FIELD_TO_JS)
  return obj;
}

kvm_regs RegsFromJs(Napi::Value value) {
  const std::string where = "regs";
  Napi::Object obj = ExpectObject(value, where);
  kvm_regs to{};
  NUB_REGS(NUB_FIELD_FROM_JS)
  return to;
}

Napi::Object SregsToJs(Napi::Env env, const kvm_sregs& from) {
  Napi::Object obj = Napi::Object::New(env);
#define X(name) obj.Set(#name, SegmentToJs(env, from.name));
  NUB_SEGMENTS(X)
#undef X
#define X(name) obj.Set(#name, TableToJs(env, from.name));
  NUB_DTABLES(X)
#undef X
  NUB_CONTROL(NUB_FIELD_TO_JS)
  return obj;
}

kvm_sregs SregsFromJs(Napi::Value value) {
  const std::string where = "sregs";
  Napi::Object obj = ExpectObject(value, where);
  kvm_sregs to{};
#define X(name) \
  to.name = NestedFromJs<kvm_segment>(obj, #name, where, [](Napi::Object obj, const std::string& where, kvm_segment& to) { NUB_SEGMENT_FIELDS(NUB_FIELD_FROM_JS) });
  NUB_SEGMENTS(X)
#undef X
#define X(name) \
  to.name = NestedFromJs<kvm_dtable>(obj, #name, where, [](Napi::Object obj, const std::string& where, kvm_dtable& to) { NUB_DTABLE_FIELDS(NUB_FIELD_FROM_JS) });
  NUB_DTABLES(X)
#undef X
  NUB_CONTROL(NUB_FIELD_FROM_JS)
  return to;
}

Napi::Object FpuToJs(Napi::Env env, const kvm_fpu& from) {
  Napi::Object obj = Napi::Object::New(env);
  NUB_FPU_FIELDS(NUB_FIELD_TO_JS)
  return obj;
}

kvm_fpu FpuFromJs(Napi::Value value) {
  const std::string where = "fpu";
  Napi::Object obj = ExpectObject(value, where);
  kvm_fpu to{};
  NUB_FPU_FIELDS(NUB_FIELD_FROM_JS)
  return to;
}

}  // namespace nub
