#!/usr/bin/env bash
# Runs docs/deploy.md as written: every ```sh block, in order, as one bash
# script (set -euo pipefail) in an empty temporary folder, with RELEASE set
# to this machine's release tarball from dist/ and CONTROLLER and CLOUD to
# free loopback ports. The servers it starts are stopped however it ends;
# it fails after GUIDE_TIMEOUT seconds (600).
#
#   scripts/guide-check.sh [TARBALL]   (default: the newest tarball of this
#                                      architecture in DIST_DIR, default dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
case "$(uname -m)" in
  x86_64|amd64) arch=amd64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) echo "guide-check: no release for $(uname -m)" >&2; exit 1 ;;
esac
dist=${DIST_DIR:-dist}
tarball=${1:-$(ls -t "$dist"/dyno-*-linux-"$arch".tar.gz 2>/dev/null | head -1)}
[ -n "$tarball" ] && [ -f "$tarball" ] || { echo "guide-check: no $dist/dyno-*-linux-$arch.tar.gz: run make dist" >&2; exit 1; }
tarball=$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The sh blocks of the guide, each preceded by a line naming where it is.
awk '
  /^```sh[[:space:]]*$/ { inside = 1; printf "echo \"guide: docs/deploy.md line %d\" >&2\n", NR + 1; next }
  /^```/ && inside { inside = 0; print ""; next }
  inside { print }
' docs/deploy.md >"$work/guide.sh"
blocks=$(grep -c '^echo "guide: docs/deploy.md line' "$work/guide.sh")
[ "$blocks" -gt 0 ] || { echo "guide-check: docs/deploy.md has no sh blocks" >&2; exit 1; }

free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "guide-check: no free port" >&2
  exit 1
}
controller=127.0.0.1:$(free_port)
cloud=127.0.0.1:$(free_port)
[ "$controller" != "$cloud" ] || cloud=127.0.0.1:$(free_port)

echo "guide-check: running $blocks blocks of docs/deploy.md with $(basename "$tarball") (controller $controller, cloud $cloud)" >&2
mkdir -p "$work/trial"
cd "$work/trial"
# Its own session, so that cleanup reaches every server it started.
env -u ORT_LIB -u DYNO_ADDR -u DYNO_CA -u DYNO_TOKEN RELEASE="$tarball" CONTROLLER="$controller" CLOUD="$cloud" \
  setsid timeout "${GUIDE_TIMEOUT:-600}" bash -euo pipefail "$work/guide.sh" &
pid=$!
rc=0
wait "$pid" || rc=$?
if [ "$rc" -ne 0 ]; then
  for log in controller/controller.log cloud/cloud.log device/device.log; do
    [ -f "$log" ] && { echo "--- $log (last lines)" >&2; tail -20 "$log" >&2; }
  done
  echo "guide-check: docs/deploy.md failed (exit $rc)" >&2
  exit 1
fi
echo "guide-check: docs/deploy.md ran as written" >&2
