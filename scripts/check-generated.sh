#!/usr/bin/env bash
# CI guard: regenerate the gRPC bindings and fail when src/generated differs from what is committed
# (modified, deleted or untracked files), i.e. when someone changed proto/ or buf.gen.yaml without `npm run gen`.
set -euo pipefail

cd "$(dirname "$0")/.."

node scripts/gen-proto.js

changes="$(git status --porcelain --untracked-files=all -- src/generated)"
if [ -n "$changes" ]; then
  printf '%s\n' "$changes" >&2
  echo "generated code is out of date: run npm run gen and commit src/generated" >&2
  exit 1
fi
echo "generated code is up to date" >&2
