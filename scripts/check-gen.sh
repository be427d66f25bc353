#!/usr/bin/env bash
# Fails when `make gen` would change gen/ (generated code must be committed as generated).
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(mktemp -d)
cp -r gen "$before/"
./scripts/gen.sh >/dev/null
if ! diff -r -x __pycache__ "$before/gen" gen >/dev/null; then
  diff -r -x __pycache__ "$before/gen" gen | head -20 >&2
  echo "gen/ is out of date with proto/: run 'make gen' and commit the result" >&2
  rm -rf "$before"
  exit 1
fi
rm -rf "$before"
