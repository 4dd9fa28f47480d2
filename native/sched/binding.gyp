{
  "targets": [
    {
      "target_name": "cuemux_sched",
      "sources": ["cuemux_sched.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-pthread"],
      "libraries": ["-pthread"],
      "include_dirs": ["../common"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
