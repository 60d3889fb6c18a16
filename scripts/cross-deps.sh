#!/usr/bin/env bash
# The system packages `make dist` and its test need, from Debian's archive:
#   gcc-aarch64-linux-gnu  the C cross compiler cgo uses for linux/arm64
#                          (onnxruntime_go loads the library with dlopen, so
#                          only libc's headers and start files are needed)
#   qemu-user              qemu-aarch64, which runs the arm64 binaries here
#                          for the test of the arm64 tarball
# A no-op when both are installed. Needs root (or sudo) for apt-get.
set -euo pipefail
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -eq 0 ]; then
  echo "cross-deps: aarch64-linux-gnu-gcc and qemu-aarch64 already installed"
  exit 0
fi
sudo=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "cross-deps: need root or sudo to install ${need[*]} with apt-get" >&2; exit 1; }
  sudo=sudo
fi
echo "cross-deps: installing ${need[*]} from Debian's archive with apt-get (about 60 MB, once)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "cross-deps: installed ${need[*]}"
