{
  "targets": [
    {
      "target_name": "nub",
      "sources": [
        "native/addon.cc",
        "native/convert.cc",
        "native/errors.cc",
        "native/instance_data.cc",
        "native/memory.cc",
        "native/memory_file.cc",
        "native/pagemap.cc",
        "native/poller.cc",
        "native/sys_error.cc",
        "native/system.cc",
        "native/vcpu.cc",
        "native/vm.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden"],
      "libraries": ["-lpthread", "-lrt"]
    }
  ]
}
