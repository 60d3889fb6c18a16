#!/usr/bin/env bash
# The system packages `make dist` and `make dist-check` need, from Debian's
# archive, installed with apt-get:
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross
#                          the C cross compiler cgo uses for linux/arm64 and
#                          the arm64 C library headers (onnxruntime_go loads
#                          ONNX Runtime with dlopen, so nothing else links)
#   libstdc++6-arm64-cross the arm64 C++ runtime ONNX Runtime needs, for
#                          running the arm64 build here under qemu
#   qemu-user              qemu-aarch64, which runs the arm64 binaries on this
#                          machine for make dist-check
# A no-op when everything is there. Needs root (or sudo) for apt-get.
set -euo pipefail
sysroot=/usr/aarch64-linux-gnu
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f "$sysroot/include/stdlib.h" ] || need+=(libc6-dev-arm64-cross)
[ -f "$sysroot/lib/libstdc++.so.6" ] || need+=(libstdc++6-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -eq 0 ]; then
  echo "cross-deps: arm64 cross compiler, C library, C++ runtime and qemu-aarch64 already installed"
  exit 0
fi
sudo=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "cross-deps: need root or sudo to install ${need[*]} with apt-get" >&2; exit 1; }
  sudo=sudo
fi
echo "cross-deps: installing ${need[*]} from Debian's archive with apt-get (once)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "cross-deps: installed ${need[*]}"
