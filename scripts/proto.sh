#!/usr/bin/env bash
# Regenerate (or with -check, verify) the Go code of every .proto file of the
# project with the pinned generator in internal/tools/protogen.
set -euo pipefail
cd "$(dirname "$0")/.."
check=()
[ "${1:-}" = "-check" ] && check=(-check)
status=0
# Each entry: directory, generator flags, .proto files in it.
while read -r dir flags files; do
  [ -z "$dir" ] && continue
  [ -d "$dir" ] || continue
  # shellcheck disable=SC2086
  [ "$flags" = "-" ] && flags=""
  go run ./internal/tools/protogen "${check[@]}" $flags "$dir" $files || status=1
done <<'LIST'
model/onnxpb - onnx.proto
api -grpc dyno.proto device.proto
LIST
[ $status -eq 0 ] && [ ${#check[@]} -gt 0 ] && echo "proto: generated code is up to date"
exit $status
