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
trap '[ -n "$lint_pid" ] && kill "$lint_pid" 2>/dev/null; rm -f "$log" "$lint_log"' EXIT
echo "[cuemux test] lint (import boundaries between the layers of src/ included) and import cycles: beside mocha, at nice 19" >&2
( nice -n 19 npx --no-install eslint . && nice -n 19 node dist/scripts/check-import-cycles.js ) >"$lint_log" 2>&1 &
lint_pid=$!

npx --no-install mocha "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

wait "$lint_pid"
lint_status=$?
lint_pid=
if [ "$lint_status" -ne 0 ]; then
  cat "$lint_log" >&2
  echo "[cuemux test] lint or the import-cycle check FAILED (above)" >&2
else
  echo "[cuemux test] lint and import cycles: ok ($(tail -n 1 "$lint_log"))" >&2
fi
passed=$(grep -oE '^ +[0-9]+ passing' "$log" | grep -oE '[0-9]+' | tail -1)
failed=$(grep -oE '^ +[0-9]+ failing' "$log" | grep -oE '[0-9]+' | tail -1)
echo "${passed:-0} passed, ${failed:-0} failed"
[ "$status" -ne 0 ] && exit "$status"
exit "$lint_status"
