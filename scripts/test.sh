#!/usr/bin/env bash
# The whole test suite (README's second command; .ci/run calls it): set-up, generated-code check, type-checked
# lint (with the layers' import boundaries), the import-cycle check, then mocha against real FFmpeg, real files and
# real processes. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit 1
echo "[cuemux test] generated code is up to date?" >&2
bash scripts/check-generated.sh || exit 1
echo "[cuemux test] lint (import boundaries between the layers of src/ included)" >&2
npx --no-install eslint . || exit 1
echo "[cuemux test] import cycles?" >&2
node dist/scripts/check-import-cycles.js || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
npx --no-install mocha "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -oE '^ +[0-9]+ passing' "$log" | grep -oE '[0-9]+' | tail -1)
failed=$(grep -oE '^ +[0-9]+ failing' "$log" | grep -oE '[0-9]+' | tail -1)
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
