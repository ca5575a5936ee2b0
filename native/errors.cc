#include "errors.h"

#include <cstring>

#include "instance_data.h"

namespace nub {

void SetErrorClass(Napi::Env env, Napi::Function errorClass) {
  GetInstanceData(env).errorClass = Napi::Persistent(errorClass);
}

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message, Napi::Object extra) {
  if (extra.IsEmpty()) extra = Napi::Object::New(env);
  auto& errorClass = GetInstanceData(env).errorClass;
  if (errorClass.IsEmpty()) {
    // Only reachable when the addon is loaded without lib/native/index.ts.
    Napi::Error error = Napi::Error::New(env, message);
    error.Set("code", code);
    return error;
  }
  Napi::Object error = errorClass.New({Napi::String::New(env, code), Napi::String::New(env, message), extra});
  return Napi::Error(env, error);
}

Napi::Error MakeError(Napi::Env env, const SysError& error) {
  const char* name = strerrorname_np(error.err);
  std::string code = name ? name : "E" + std::to_string(error.err);
  Napi::Object extra = Napi::Object::New(env);
  extra.Set("errno", error.err);
  extra.Set("syscall", error.syscall);
  if (error.ioctl) extra.Set("ioctl", error.ioctl);
  std::string message = error.message + " (" + code + ": " + std::strerror(error.err) + ")";
  return MakeError(env, code, message, extra);
}

}  // namespace nub
