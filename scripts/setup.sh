#!/usr/bin/env bash
# Make this checkout ready to run and test, from a fresh Debian 12 + Node 20 machine. Idempotent: each step
# checks first and says what it does. Used by `npm start` (scripts/start.sh) and `npm test` (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[cuemux setup] %s\n' "$*" >&2; }

# 1. Node.js 20.19+ (engines in package.json; mocha 11 and node:zlib crc32 need it).
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || { say "Node.js >= 20.19 is needed, found $(node --version)"; exit 1; }

# 2. Debian packages: FFmpeg CLI (test reference), FFmpeg -dev libraries (beamcoder builds against them),
#    ffmsindex (benchmark peer), liblo-tools (a real OSC peer for tests), python3-grpcio/python3-protobuf (an
#    independent gRPC client in tests), jackd2 + libjack-jackd2-dev (play-audio --device jack: the addon in native/jack
#    builds against it; its tests run jackd on the dummy driver), faketime (a server on a shifted wall clock in the
#    Ping test), openssl (certificates for the TLS tests), libsdl2-dev (play-video --window: the addon in native/sdl
#    builds against it), xvfb + x11-apps (the window's tests: an X server without a screen, xwd screenshots),
#    libasound2-dev (play-audio --device alsa: the addon in native/alsa), libasound2-plugins (alsa-lib's jack plugin:
#    the ALSA tests' device), alsa-utils (aplay: the FIFO peer of bench:sync), pipewire + pipewire-jack (play-audio
#    --device pipewire: native/pipewire links PipeWire's libjack; its test runs a headless daemon), python3-numpy +
#    libxdamage1 (bench:sync --outputs real: the window observer compares pictures and hears the X server's damage),
#    chromium (the operator page's tests drive Debian's headless browser through puppeteer-core; nothing is downloaded).
PKGS=(ffmpeg pkg-config libavcodec-dev libavformat-dev libavdevice-dev libavfilter-dev libavutil-dev
      libpostproc-dev libswresample-dev libswscale-dev ffmsindex liblo-tools python3-grpcio python3-protobuf
      jackd2 libjack-jackd2-dev faketime openssl libsdl2-dev xvfb x11-apps
      libasound2-dev libasound2-plugins alsa-utils pipewire pipewire-jack python3-numpy libxdamage1 chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# 3. npm dependencies (beamcoder compiles against FFmpeg, then scripts/patch-beamcoder.js patches and rebuilds it).
stamp=node_modules/.cuemux-installed
if [ -L node_modules ]; then
  # A worktree sharing another checkout's node_modules through a link: `npm ci` would empty the link's target.
  say "node_modules is a link to $(readlink node_modules): npm ci skipped here (run it in that checkout)"
elif [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ scripts/patch-beamcoder.js -nt "$stamp" ] \
   || [ native/beamcoder/cuemux_batch.cc -nt "$stamp" ]; then
  mkdir -p .cache
  say "npm ci (compiles and patches the FFmpeg binding: a minute or two; log in .cache/npm-ci.log)"
  if ! npm ci --no-audit --no-fund > .cache/npm-ci.log 2>&1; then
    tail -n 40 .cache/npm-ci.log >&2
    say "npm ci failed: the whole log is in .cache/npm-ci.log"
    exit 1
  fi
  touch "$stamp"
fi

# 3b. Our addons, native/jack (play-audio --device jack), native/alsa (--device alsa:NAME), native/pipewire (--device
#     pipewire) and native/sdl (play-video --window); also built by npm ci's postinstall: idempotent, rebuilt when
#     their sources change (or native/common's); here a missing -dev package fails, naming it.
node scripts/build-addons.js || exit 1

# 4. Generated gRPC code and the TypeScript build.
say "generating code from proto/ and compiling"
npm run --silent build >&2
