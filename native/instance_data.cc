#include "instance_data.h"

namespace nub {

InstanceData& GetInstanceData(Napi::Env env) {
  auto* data = env.GetInstanceData<InstanceData>();
  if (!data) {
    data = new InstanceData();
    env.SetInstanceData(data);
  }
  return *data;
}

}  // namespace nub
