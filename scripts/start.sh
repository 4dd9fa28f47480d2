#!/usr/bin/env bash
# README's first command: set up, make a demo clip a newcomer can use at once, index it, and start the server on
# embedded defaults. Extra arguments go to `cuemux serve`.
set -euo pipefail
# The folder the command was typed in (npm sets INIT_CWD; run directly, it is this shell's): the server prints its
# "Connect:" commands relative to it (`node bin/cuemux.js status ...`), so they paste as is: in a checkout `cuemux`
# is not on the PATH.
export INIT_CWD="${INIT_CWD:-$PWD}"
cd "$(dirname "$0")/.."

bash scripts/setup.sh
demo=.cache/demo-media
if [ ! -f "$demo/demo-1080p25.mp4" ]; then
  mkdir -p "$demo"
  echo "[cuemux start] generating a 10 s demo clip (H.264 1080p25 + AAC stereo) in $demo" >&2
  ffmpeg -v error -nostdin -y -f lavfi -i "testsrc2=size=1920x1080:rate=25" -f lavfi -i "sine=f=440:sample_rate=48000" \
    -t 10 -ac 2 -c:v libx264 -preset veryfast -g 25 -pix_fmt yuv420p -c:a aac "$demo/.demo.tmp.mp4"
  mv "$demo/.demo.tmp.mp4" "$demo/demo-1080p25.mp4"
fi
node bin/cuemux.js index build "$demo"
# A demo cue list, so show control works at once: oscsend 127.0.0.1 53100 /cuemux/cue/go (oscsend: liblo-tools)
cues=.cache/demo-cues.json
if [ ! -f "$cues" ]; then
  cat > "$cues" <<'JSON'
{
  "version": 1,
  "name": "cuemux demo",
  "timecodeRate": "25",
  "cues": [
    { "id": "1", "name": "demo clip", "media": "demo-1080p25.mp4" },
    { "id": "2", "name": "demo clip from 5 s, looping", "media": "demo-1080p25.mp4", "in": "00:00:05:00", "loop": true }
  ]
}
JSON
fi
# Packet batches are large short-lived buffers: have glibc give them back to the OS at once (mmap above 64 KiB) and
# keep few arenas, or the server's RSS grows far beyond what it holds (measured by npm run bench:serve).
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-65536}" MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-65536}"
# The server allocates few JavaScript objects (packet batches live in reused buffers): a 1 MiB young generation
# instead of V8's 16 MiB keeps its heap about 14 MB smaller, at no measured cost in throughput (npm run bench:serve).
export NODE_OPTIONS="--max-semi-space-size=1${NODE_OPTIONS:+ $NODE_OPTIONS}"
exec node bin/cuemux.js serve --media-root "$demo" --cue-list "$cues" "$@"
