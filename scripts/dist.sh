#!/usr/bin/env bash
# Release tarballs: dist/dyno-VERSION-linux-ARCH.tar.gz for each of
# DIST_ARCHES (default "amd64 arm64"), each holding
#   bin/       dyno-controller (static), dyno-executor and dynoctl (cgo);
#              version and commit in --version
#   lib/       libonnxruntime.so.1 of the same architecture, from the same
#              onnxruntime-node npm package `make deps` uses (the binaries
#              find it there without ORT_LIB)
#   systemd/   service units with sandboxing options
#   etc/       example environment files and a tokens file
#   LICENSES/  the licence of each bundled part: ONNX Runtime and every Go
#              module linked into the binaries
#   DEPLOY.md  the deploy guide (docs/deploy.md), VERSION
# and dist/SHA256SUMS (DIST_OUT names another folder than dist/). The arm64 binaries are built with Debian's
# aarch64-linux-gnu-gcc (scripts/cross-deps.sh installs it).
#
# VERSION defaults to the latest tag (git describe), else 0.0.0-DATE-COMMIT.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arches=${DIST_ARCHES:-amd64 arm64}
ort_version=${ORT_VERSION:-1.24.1}
commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  commit+=-dirty
fi
if [ -z "${VERSION:-}" ]; then
  if VERSION=$(git describe --tags --dirty 2>/dev/null); then
    :
  else
    VERSION=0.0.0-$(git log -1 --format=%cd --date=format:%Y%m%d)-$(git rev-parse --short=12 HEAD)
  fi
fi
epoch=$(git log -1 --format=%ct)
out=${DIST_OUT:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
tgz=$(./scripts/fetch-ort.sh tarball)
pkg=github.com/dynoml/dyno/internal/cliutil
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Commit=$commit"

for arch in $arches; do
  case $arch in
    amd64) cc=${CC_AMD64:-gcc}; ortarch=x64 ;;
    arm64) cc=${CC_ARM64:-aarch64-linux-gnu-gcc}; ortarch=arm64 ;;
    *) echo "dist: unknown architecture $arch (amd64, arm64)" >&2; exit 2 ;;
  esac
  if [ "$arch" = amd64 ] && [ "$(go env GOHOSTARCH)" != amd64 ]; then
    cc=${CC_AMD64:-x86_64-linux-gnu-gcc}
  fi
  command -v "$cc" >/dev/null || { echo "dist: $cc is missing: run scripts/cross-deps.sh" >&2; exit 1; }
  name=dyno-$VERSION-linux-$arch
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  dir=$stage/$name
  mkdir -p "$dir/bin" "$dir/lib" "$dir/systemd" "$dir/etc" "$dir/LICENSES"
  echo "dist: building $name (CC=$cc)" >&2
  # The controller is pure Go: static, it runs on any Linux. The executor
  # and dynoctl load ONNX Runtime through cgo, and need the C library of
  # Debian 12 or newer (GLIBC_2.34; dist-check prints what they need).
  GOOS=linux GOARCH=$arch CGO_ENABLED=0 \
    go build -trimpath -ldflags "$ldflags" -o "$dir/bin/" ./cmd/dyno-controller
  GOOS=linux GOARCH=$arch CGO_ENABLED=1 CC=$cc \
    go build -trimpath -ldflags "$ldflags" -o "$dir/bin/" ./cmd/dyno-executor ./cmd/dynoctl
  tar -xzf "$tgz" -C "$stage" "package/bin/napi-v6/linux/$ortarch/libonnxruntime.so.1"
  mv "$stage/package/bin/napi-v6/linux/$ortarch/libonnxruntime.so.1" "$dir/lib/"
  rm -rf "$stage/package"
  cp deploy/systemd/*.service "$dir/systemd/"
  cp deploy/etc/* "$dir/etc/"
  cp docs/deploy.md "$dir/DEPLOY.md"
  printf 'dyno %s\ncommit %s\nONNX Runtime %s (onnxruntime-node, linux/%s)\n' "$VERSION" "$commit" "$ort_version" "$ortarch" >"$dir/VERSION"
  # Licences: ONNX Runtime, and every Go module linked into the binaries.
  cp deploy/licenses/onnxruntime.txt "$dir/LICENSES/onnxruntime-$ort_version.txt"
  cp "$(go env GOROOT)/LICENSE" "$dir/LICENSES/go-$(go env GOVERSION).txt"
  GOOS=linux GOARCH=$arch CGO_ENABLED=1 go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' \
    ./cmd/dyno-controller ./cmd/dyno-executor ./cmd/dynoctl | sort -u |
    while read -r path version mdir; do
      lic=$(find "$mdir" -maxdepth 1 -type f \( -iname 'LICENSE*' -o -iname 'LICENCE*' -o -iname 'COPYING*' -o -iname 'NOTICE*' \) | sort)
      if [ -z "$lic" ]; then
        echo "dist: $path $version has no licence file" >&2
        exit 1
      fi
      f="$dir/LICENSES/$(echo "$path" | tr '/' '_')@$version.txt"
      for l in $lic; do
        { echo "== $path $version: $(basename "$l")"; cat "$l"; echo; } >>"$f"
      done
    done
  (cd "$dir/LICENSES" && ls) >"$stage/licences"
  echo "dist: $(wc -l <"$stage/licences") licence files" >&2
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$stage" -czf "$out/$name.tar.gz.tmp" "$name"
  mv "$out/$name.tar.gz.tmp" "$out/$name.tar.gz"
  rm -rf "$stage"
  trap - EXIT
  echo "dist: wrote $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1))" >&2
done
(cd "$out" && sha256sum dyno-"$VERSION"-linux-*.tar.gz >SHA256SUMS)
echo "$VERSION"
