#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library into .cache/onnxruntime from the
# onnxruntime-node package of the npm registry, and verify that it loads
# through onnxruntime_go. A no-op when the library is already there.
# ORT_LIB=/path/to/libonnxruntime.so uses an existing library instead.
#
#   scripts/fetch-ort.sh           the library of this machine's architecture
#   scripts/fetch-ort.sh tarball   make sure the npm tarball is in .cache/npm
#                                  and print its path (make dist takes the
#                                  x64 and arm64 libraries from it)
set -euo pipefail
ORT_VERSION=${ORT_VERSION:-1.24.1}
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cache/onnxruntime"
lib="$dest/libonnxruntime.so.1"
tgz="$root/.cache/npm/onnxruntime-node-$ORT_VERSION.tgz"

# tarball fetches onnxruntime-node once into .cache/npm (about 85 MB).
tarball() {
  if [ -f "$tgz" ]; then
    return
  fi
  command -v npm >/dev/null || { echo "deps: npm is needed to fetch onnxruntime-node (or set ORT_LIB)" >&2; exit 1; }
  echo "deps: fetching onnxruntime-node@$ORT_VERSION from the npm registry into .cache/npm (about 85 MB, once)" >&2
  mkdir -p "$(dirname "$tgz")"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  mv "$tmp/onnxruntime-node-$ORT_VERSION.tgz" "$tgz.tmp"
  rm -rf "$tmp"
  mv "$tgz.tmp" "$tgz"
}

if [ "${1:-}" = tarball ]; then
  tarball
  echo "$tgz"
  exit 0
fi
if [ -n "${ORT_LIB:-}" ]; then
  echo "deps: using ONNX Runtime from ORT_LIB=$ORT_LIB"
  (cd "$root" && go run ./executor/ort/internal/ortcheck "$ORT_LIB")
  exit 0
fi
if [ -f "$lib" ] && [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$ORT_VERSION" ]; then
  echo "deps: ONNX Runtime $ORT_VERSION already in $dest"
  exit 0
fi
case "$(uname -m)" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) echo "deps: no ONNX Runtime build for $(uname -m) in onnxruntime-node; set ORT_LIB" >&2; exit 1 ;;
esac
tarball
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tgz" -C "$tmp" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
mkdir -p "$dest"
mv "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" "$lib.tmp"
mv "$lib.tmp" "$lib"
echo "$ORT_VERSION" > "$dest/VERSION"
(cd "$root" && go run ./executor/ort/internal/ortcheck "$lib")
