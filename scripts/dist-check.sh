#!/usr/bin/env bash
# Checks a release tarball from scripts/dist.sh as a user would use it:
# extracts dist/dyno-VERSION-linux-ARCH.tar.gz into a temporary folder and,
# with no ORT_LIB and no repository around it, runs
#   - every binary's --version, which must name VERSION and the commit;
#   - dyno-executor profile on the tiny zoo model (models/tinynet), which
#     must load lib/libonnxruntime.so.1 from the tarball and write a
#     profile of all ten blocks;
#   - the bundled library's architecture, and the systemd units through
#     systemd-analyze (verify; and the exposure score of each sandbox).
# arm64 binaries run under qemu user emulation (qemu-aarch64, with the
# arm64 C and C++ runtime of Debian's cross packages as its sysroot).
#
#   scripts/dist-check.sh [ARCH] [VERSION]   (default: arm64, the newest tarball
#                                            in DIST_DIR, default dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arch=${1:-arm64}
dist=${DIST_DIR:-dist}
if [ -n "${2:-}" ]; then
  tarball=$dist/dyno-$2-linux-$arch.tar.gz
else
  tarball=$(ls -t "$dist"/dyno-*-linux-"$arch".tar.gz 2>/dev/null | head -1)
fi
[ -n "$tarball" ] && [ -f "$tarball" ] || { echo "dist-check: no $dist/dyno-*-linux-$arch.tar.gz: run make dist" >&2; exit 1; }
[ -f models/tinynet/model.json ] || { echo "dist-check: models/tinynet is missing: run make models" >&2; exit 1; }
name=$(basename "$tarball" .tar.gz)
version=${name#dyno-}
version=${version%-linux-$arch}

run=()
machine=
case $arch in
  amd64) machine="X86-64" ;;
  arm64)
    machine="AArch64"
    if [ "$(uname -m)" != aarch64 ]; then
      command -v qemu-aarch64 >/dev/null || { echo "dist-check: qemu-aarch64 is missing: run scripts/cross-deps.sh" >&2; exit 1; }
      run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
    fi
    ;;
  *) echo "dist-check: unknown architecture $arch" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
dir=$work/$name
fail() { echo "dist-check: $name: $*" >&2; exit 1; }

echo "dist-check: $name${run:+ under ${run[0]}}" >&2
for f in bin/dyno-controller bin/dyno-executor bin/dynoctl lib/libonnxruntime.so.1 VERSION DEPLOY.md \
  systemd/dyno-controller.service systemd/dyno-cloud.service systemd/dyno-device.service \
  etc/controller.env etc/cloud.env etc/device.env LICENSES/onnxruntime-1.24.1.txt; do
  [ -e "$dir/$f" ] || fail "$f is missing"
done
readelf -h "$dir/lib/libonnxruntime.so.1" | grep -q "Machine:.*$machine" || fail "lib/libonnxruntime.so.1 is not $machine"
readelf -h "$dir/bin/dyno-executor" | grep -q "Machine:.*$machine" || fail "bin/dyno-executor is not $machine"

# The newest C library symbol version anything in the tarball needs: it
# must run on Ubuntu 22.04 (JetPack 6), whose glibc is 2.35.
max_glibc=${DIST_MAX_GLIBC:-2.35}
need=$(for f in "$dir"/bin/* "$dir"/lib/*; do readelf -V --wide "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*'; done | sed 's/GLIBC_//' | sort -uV | tail -1)
if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]; then
  fail "needs glibc $need, newer than $max_glibc"
fi
file "$dir/bin/dyno-controller" | grep -q 'statically linked' || fail "bin/dyno-controller is not static"
echo "  needs glibc ${need:-none} or newer (at most $max_glibc allowed); dyno-controller static" >&2

commit=$(sed -n 's/^commit //p' "$dir/VERSION")
for b in dyno-controller dyno-executor dynoctl; do
  v=$(cd "$work" && env -u ORT_LIB "${run[@]}" "$dir/bin/$b" --version)
  echo "  $v" >&2
  case $v in
    "$b $version (commit $commit, linux/$arch, "*) ;;
    *) fail "$b --version says \"$v\", want \"$b $version (commit $commit, linux/$arch, ...)\"" ;;
  esac
done

# Profile the tiny model with the bundled library, from outside the
# repository so that nothing but lib/ can provide ONNX Runtime.
cp -r models/tinynet "$work/tinynet"
rm -rf "$work/tinynet/profiles"
(cd "$work" && env -u ORT_LIB "${run[@]}" "$dir/bin/dyno-executor" profile tinynet --runs 3 --warmup 1 --threads 1 --class "ci-$arch" >"$work/profile.log" 2>&1) ||
  { cat "$work/profile.log" >&2; fail "dyno-executor profile failed"; }
p=$work/tinynet/profiles/ci-$arch.json
[ -f "$p" ] || fail "no profile written"
blocks=$(grep -c '"median_ms"' "$p")
[ "$blocks" -eq 10 ] || fail "profile has $blocks blocks, want 10"
grep -q '"provider": "cpu"' "$p" || fail "profile does not record the cpu provider"
grep -q 'ONNX Runtime 1.24.1 on CPU' "$p" || fail "profile does not name ONNX Runtime 1.24.1: $(grep source "$p")"
total=$(awk '/^sum/ {print $2}' "$work/profile.log")
echo "  profile of tinynet: 10 blocks, sum of medians $total ms (ONNX Runtime 1.24.1, lib/ of the tarball)" >&2

# Every variable a unit uses is set in its example environment file.
for pair in dyno-controller:controller dyno-cloud:cloud dyno-device:device; do
  unit=$dir/systemd/${pair%%:*}.service env=$dir/etc/${pair#*:}.env
  for v in $(grep -o '\${\?DYNO_[A-Z_]*' "$unit" | tr -d '${' | sort -u); do
    grep -q "^$v=" "$env" || fail "$(basename "$unit") uses $v, which etc/$(basename "$env") does not set"
  done
done

# The units: systemd-analyze reads them with the tarball's binaries in
# place of /opt/dyno.
if command -v systemd-analyze >/dev/null; then
  for u in "$dir"/systemd/*.service; do
    sed "s|/opt/dyno/|$dir/|g" "$u" >"$work/$(basename "$u")"
    if ! out=$(systemd-analyze verify --man=no "$work/$(basename "$u")" 2>&1); then
      echo "$out" >&2
      fail "systemd-analyze verify $(basename "$u")"
    fi
    score=$(systemd-analyze security --offline=yes "$work/$(basename "$u")" 2>/dev/null | awk '/Overall exposure level/ {print $(NF-2), $(NF-1)}')
    echo "  $(basename "$u"): systemd exposure ${score:-unknown}" >&2
  done
fi
echo "dist-check: $name ok" >&2
