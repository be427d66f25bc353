#!/usr/bin/env bash
# Regenerates gen/ from proto/: messages, gRPC stubs and .pyi stubs.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gen
mkdir -p gen/herald/v1
uv run --frozen python -m grpc_tools.protoc \
  -I proto \
  --python_out=gen --grpc_python_out=gen --mypy_out=gen --mypy_grpc_out=gen \
  proto/herald/v1/*.proto 2> >(grep -v '^Writing mypy to' >&2)
printf '"""Generated from proto/herald: do not edit, run `make gen`."""\n' > gen/herald/__init__.py
printf '"""Generated from proto/herald/v1: do not edit, run `make gen`."""\n' > gen/herald/v1/__init__.py
