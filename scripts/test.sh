#!/usr/bin/env bash
# The whole test suite (README's second command; .ci/run calls it): set-up, generated-code check, then mocha against
# real FFmpeg, real files and real processes, with the type-checked lint (the layers' import boundaries included) and
# the import-cycle check running beside it. Ends with "N passed, N failed"; fails if any of them failed.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit 1
echo "[cuemux test] generated code is up to date?" >&2
bash scripts/check-generated.sh || exit 1

# Lint and the cycle check run beside mocha at nice 19 rather than before it: ESLint's type-checked pass is one
# thread and ~52 s of CPU on a 2-vCPU VM, while mocha's tests mostly wait on media played in real time and leave a core
# idle much of the run. At nice 19 it takes only what the tests leave (CFS weight 15 against their 1024).
lint_log=$(mktemp)
log=$(mktemp)
lint_pid=
lane_b_pid=
lane_b_log=
cleanup() {
  for pid in "$lint_pid" "$lane_b_pid"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
  rm -f "$log" "$lint_log" "$lane_b_log"
}
trap cleanup EXIT
echo "[cuemux test] lint (import boundaries between the layers of src/ included) and import cycles: beside mocha, at nice 19" >&2
( nice -n 19 npx --no-install eslint . && nice -n 19 node dist/scripts/check-import-cycles.js ) >"$lint_log" 2>&1 &
lint_pid=$!

# Two phases when run without arguments (`npm test -- ARGS` runs plain mocha with ARGS, as `npm run test:only`):
# 1. the files of LANE_A and LANE_B, the two lanes side by side, each its own mocha process running its files one
#    after the other: none of them plays media in real time or runs a show clock (CLI, index, FFmpeg adapter,
#    gRPC/HTTP/security), so the other lane beside them changes no outcome, while each spends most of its wall time
#    waiting on child processes and I/O (the whole suite used ~6 CPU-minutes in 35 wall-minutes on this 2-vCPU VM
#    under other load: latency-bound, not CPU-bound). Two processes rather than
#    mocha --parallel: its workers are reused between files, so the root-level after() hooks of test/support
#    (scratch folders, the fault table) would run for the first file of each worker only. The lanes are balanced on
#    the files' times measured in one run under other load (331 s and 338 s by those times).
# 2. every other file (players, show clocks, OSC timing, audio devices, windows), one at a time as before. The fault
#    suite is here too: its console counts a thump answered "show control stalled" as a failure, and its table
#    reports the server's latency under attack, which a lane beside it would change (one unanswered thump in 95
#    inputs of test/faults/hostile-files when it ran in a lane on this loaded VM). A new test file lands in phase 2
#    unless it is added to a lane.
LANE_A=(
  grpc-security cli cli-help ffmpeg-decode ffmpeg-picture-copy index-exactness http-media readme-promises-cli http-preview media-access
  other-languages index-store osc-codec index-freshness systemd-units rational frame-pool packet-reader
  packet-batch-wire readme-promises-server intra-skip native-release prep-queue
)
LANE_B=(
  hostile-input growing media-server operator-page corpus serve-process ffmpeg-adapter timecode index-concurrency
  index-build-batches status-command stream-memory video-presenter
)
MOCHA=(--no-config --timeout 120000 --slow 2000 --reporter spec --exit)
if [ $# -gt 0 ]; then
  npx --no-install mocha "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
else
  files_of() { for name in "$@"; do printf 'dist/test/%s.test.js\n' "$name"; done; }
  mapfile -t lane_a < <(files_of "${LANE_A[@]}")
  mapfile -t lane_b < <(files_of "${LANE_B[@]}")
  serial_files=()
  device_files=()
  for f in $(find dist/test -name '*.test.js' | sort); do
    [[ " ${lane_a[*]} ${lane_b[*]} " == *" $f "* ]] && continue
    # Real audio devices (a JACK or PipeWire graph, ALSA through it) last, once the lint is done: they judge every
    # sample against the device's own cycle times, and a starved jackd glitches (two CI runs failed in them while the
    # type-checked lint, at nice 19, still ran beside the first files of phase 2).
    if [[ "$f" == dist/test/audio-device* ]]; then device_files+=("$f"); else serial_files+=("$f"); fi
  done
  for f in "${lane_a[@]}" "${lane_b[@]}"; do
    [ -f "$f" ] || { echo "[cuemux test] scripts/test.sh names $f, which is not built" >&2; exit 1; }
  done
  lane_b_log=$(mktemp)
  echo "[cuemux test] mocha, phase 1: ${#lane_a[@]} + ${#lane_b[@]} files in two lanes side by side (the second lane's output follows the first's)" >&2
  npx --no-install mocha "${MOCHA[@]}" "${lane_b[@]}" >"$lane_b_log" 2>&1 &
  lane_b_pid=$!
  npx --no-install mocha "${MOCHA[@]}" "${lane_a[@]}" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  wait "$lane_b_pid"
  status_b=$?
  lane_b_pid=
  tee -a "$log" < "$lane_b_log"
  rm -f "$lane_b_log"
  echo "[cuemux test] mocha, phase 2: ${#serial_files[@]} files one at a time" >&2
  npx --no-install mocha "${MOCHA[@]}" "${serial_files[@]}" 2>&1 | tee -a "$log"
  status_2=${PIPESTATUS[0]}
  wait "$lint_pid"
  lint_status=$?
  lint_pid=
  echo "[cuemux test] mocha, phase 3 (real audio devices, the lint done): ${#device_files[@]} files one at a time" >&2
  npx --no-install mocha "${MOCHA[@]}" "${device_files[@]}" 2>&1 | tee -a "$log"
  status_3=${PIPESTATUS[0]}
  for x in "$status_b" "$status_2" "$status_3"; do [ "$status" -eq 0 ] && status=$x; done
fi

if [ -n "$lint_pid" ]; then
  wait "$lint_pid"
  lint_status=$?
  lint_pid=
fi
if [ "$lint_status" -ne 0 ]; then
  cat "$lint_log" >&2
  echo "[cuemux test] lint or the import-cycle check FAILED (above)" >&2
else
  echo "[cuemux test] lint and import cycles: ok ($(tail -n 1 "$lint_log"))" >&2
fi
# Summed over the phases (each mocha run prints its own "N passing" / "N failing").
passed=$(grep -oE '^ +[0-9]+ passing' "$log" | grep -oE '[0-9]+' | awk '{ n += $1 } END { print n + 0 }')
failed=$(grep -oE '^ +[0-9]+ failing' "$log" | grep -oE '[0-9]+' | awk '{ n += $1 } END { print n + 0 }')
echo "${passed} passed, ${failed} failed"
[ "$status" -ne 0 ] && exit "$status"
exit "$lint_status"
