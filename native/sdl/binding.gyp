{
  "targets": [
    {
      "target_name": "cuemux_sdl",
      "sources": ["cuemux_sdl.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-pthread"],
      "cflags": ["<!@(pkg-config --cflags sdl2)"],
      "libraries": ["<!@(pkg-config --libs sdl2)", "-pthread"],
      "include_dirs": ["../common"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
