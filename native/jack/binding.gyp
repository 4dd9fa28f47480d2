{
  "targets": [
    {
      "target_name": "cuemux_jack",
      "sources": ["cuemux_jack.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "libraries": ["<!@(pkg-config --libs jack)"],
      "cflags": ["<!@(pkg-config --cflags jack)"],
      "include_dirs": ["../common"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
