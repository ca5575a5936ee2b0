// What the addon keeps per Node environment (main thread or worker): the JS classes it
// instantiates from C++.
#pragma once

#include <napi.h>

namespace nub {

struct InstanceData {
  Napi::FunctionReference errorClass;       // lib/errors.ts NubError, from setErrorClass()
  Napi::FunctionReference memoryFileClass;  // NativeMemoryFile, for VMs that hand out their base
};

InstanceData& GetInstanceData(Napi::Env env);

}  // namespace nub
