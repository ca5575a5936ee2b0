// Turning failures into the JS NubError class (lib/errors.ts), which the loader hands
// to the addon with setErrorClass() before anything else is called.
#pragma once

#include <napi.h>

#include <string>

#include "sys_error.h"
#include "nub_errors.h"

namespace nub {

void SetErrorClass(Napi::Env env, Napi::Function errorClass);

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message,
                      Napi::Object extra = Napi::Object());
Napi::Error MakeError(Napi::Env env, const SysError& error);

[[noreturn]] inline void ThrowInvalid(Napi::Env env, const std::string& path, const std::string& message) {
  Napi::Object extra = Napi::Object::New(env);
  extra.Set("path", path);
  throw MakeError(env, code::kBadArgument, path + ": " + message, extra);
}

// Runs `body`, turning SysError/NubFailure/std::exception into a thrown NubError.
template <typename Body>
auto Guarded(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const SysError& e) {
    throw MakeError(env, e);
  } catch (const NubFailure& e) {
    throw MakeError(env, e.code, e.message);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw MakeError(env, code::kInternal, e.what());
  }
}

}  // namespace nub
