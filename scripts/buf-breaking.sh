#!/usr/bin/env bash
# buf breaking (FILE rules) of the work tree against the last commit of main. When the
# work tree is that commit (CI, a clean checkout), against the commit before it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=node_modules/.bin/buf
if ! git rev-parse --verify -q main >/dev/null; then
  echo "buf breaking: no main branch yet, nothing to compare against"; exit 0
fi
against=main
if git diff --quiet main -- proto buf.yaml && [ "$(git rev-parse HEAD)" = "$(git rev-parse main)" ]; then
  against=main~1
fi
if ! git rev-parse --verify -q "$against" >/dev/null \
   || ! git cat-file -e "$against:buf.yaml" 2>/dev/null; then
  echo "buf breaking: $against has no contracts yet, nothing to compare against"; exit 0
fi
echo "buf breaking against $against"
$BUF breaking --against ".git#ref=$(git rev-parse "$against")"
