{
  "targets": [
    {
      "target_name": "cuemux_alsa",
      "sources": ["cuemux_alsa.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-pthread"],
      "cflags": ["<!@(pkg-config --cflags alsa)"],
      "libraries": ["<!@(pkg-config --libs alsa)", "-pthread"],
      "include_dirs": ["../common"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
