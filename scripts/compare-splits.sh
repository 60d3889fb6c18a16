#!/usr/bin/env bash
# compare-splits.sh: the learned policy against fixed splits on one
# emulated device, each run from the same point of a real 3G trace.
# A controller and a cloud executor serve MobileNetV2 on loopback; the
# device (20x slower than this host, +40 ms round trip) learns for 300
# requests, then serves 150 with the learned policy and 150 with each
# fixed arm pinned by dynoctl (40 for cloud-only, which is slow). Needs
# make models and make build. About five minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
admin=$(secret); fleet=$(secret)
printf 'ops admin %s\nfleet executor %s\n' "$admin" "$fleet" >"$work/tokens"
echo "$admin" >"$work/admin.token"; echo "$fleet" >"$work/executor.token"; secret >"$work/cloud.token"
ctl=127.0.0.1:27070 cloud=127.0.0.1:27071
bin/dyno-controller serve --listen $ctl --insecure --tokens "$work/tokens" --store "$work/dyno.db" --model models/mobilenetv2 \
  --cloud-class amd64-2cpu-cloud --objective default=min-latency,floor=0.9 --publish-every 20 --publish-interval 500ms >"$work/ctl.log" 2>&1 &
bin/dyno-executor cloud --model models/mobilenetv2 --listen $cloud --token-file "$work/cloud.token" --insecure >"$work/cloud.log" 2>&1 &
trace=../shared/traces/norway-3g/tram.jernbanetorget-ljabru-report.2010-12-09_1222CET.log
device() { # offset requests
  bin/dyno-executor device --id phone-1 --model models/mobilenetv2 --device-class amd64-2cpu --inputs random \
    --controller $ctl --token-file "$work/executor.token" --cloud $cloud --cloud-token-file "$work/cloud.token" --insecure \
    --trace "$trace" --trace-offset "$1" --rtt 40 --slowdown 20 --requests "$2" --every 100000 | tail -1 | sed 's/^[^]]*\]: //'
}
admin=(--addr $ctl --insecure --token-file "$work/admin.token")
key=mobilenetv2/amd64-2cpu/default
echo "learning, 300 requests:   $(device 0 300)"
echo "learned policy:           $(device 600 150)"
for arm in "20 32" "9 4" "3 4" "0 8"; do
  read -r s b <<<"$arm"
  n=150; [[ $s == 0 ]] && n=40
  bin/dynoctl pin $key --split "$s" --bits "$b" "${admin[@]}" >/dev/null
  sleep 1
  printf '%-25s %s\n' "fixed s$s/b$b:" "$(device 600 $n)"
  bin/dynoctl unpin $key "${admin[@]}" >/dev/null
done
