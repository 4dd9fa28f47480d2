{
  "variables": {
    "pw_jack_dir": "<!(node -p \"const fs = require('fs'); (['/usr/lib', '/usr/lib64', ...fs.readdirSync('/usr/lib').map((d) => '/usr/lib/' + d)].map((d) => d + '/pipewire-0.3/jack').find((d) => fs.existsSync(d + '/libjack.so.0')) || 'missing')\")"
  },
  "targets": [
    {
      "target_name": "cuemux_pipewire",
      "sources": ["../jack/cuemux_jack.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "cflags": ["<!@(pkg-config --cflags jack)"],
      "libraries": ["-L<(pw_jack_dir)", "-l:libjack.so.0", "-Wl,-rpath,<(pw_jack_dir)"],
      "include_dirs": ["../common"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
