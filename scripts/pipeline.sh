#!/usr/bin/env bash
# pipeline.sh: pipelined serving against DynO's cost model. A controller
# (max-throughput objective), a cloud executor and one device executor
# serving the Device API run MobileNetV2 on loopback; the device is
# EMULATED (--slowdown times slower than this host, over a real FCC
# trace plus 40 ms). The model's profiles are measured on this host first
# (dyno-executor profile), so that the cost model speaks of this host.
# An application (dyno-executor load, closed loop) drives the device with
# the learned policy, then with the device-only arm pinned; each run
# prints its throughput beside the cost model's 1/max(D, N, C) for the
# arms in use, and the last line compares the two ratios. Needs make
# models and make build. About three minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
traces=${DYNO_TRACES:-../shared/traces}
model=${DYNO_PIPELINE_MODEL:-models/mobilenetv2}
slowdown=${DYNO_PIPELINE_SLOWDOWN:-100}
trace=${DYNO_PIPELINE_TRACE:-$traces/fcc/trace_632966_http---www.yahoo.com}
inflight=${DYNO_PIPELINE_IN_FLIGHT:-6}
requests=${DYNO_PIPELINE_REQUESTS:-100}
[[ -f $trace ]] || { echo "pipeline: $trace is missing (set DYNO_TRACES to the traces folder)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. scripts/loopback-tokens.sh
write_tokens "$work"

# The model folder with profiles of this host, measured now.
m=$work/model
mkdir -p "$m/profiles"
for f in model.json accuracy.json blocks; do ln -s "$PWD/$model/$f" "$m/$f"; done
echo "pipeline: profiling $(basename "$model") on this host (device and cloud roles)"
# One ONNX Runtime thread, as the device executor runs by default; the
# device's blocks timed as the emulation runs them (the chain in order,
# each run followed by the stretch of the slowdown), not back to back.
bin/dyno-executor profile "$m" --class host --runs 15 --threads 1 --slowdown "$slowdown" >"$work/profile.log" 2>&1 || { cat "$work/profile.log" >&2; exit 1; }
bin/dyno-executor profile "$m" --role cloud --class host-cloud --runs 15 --threads 1 >>"$work/profile.log" 2>&1 || { cat "$work/profile.log" >&2; exit 1; }
name=$(basename "$model")
k=$(grep -c '"file"' "$m/model.json")

ctl=127.0.0.1:27170 cloud=127.0.0.1:27171 app=127.0.0.1:27172
bin/dyno-controller serve --listen $ctl --insecure --tokens "$work/tokens" --store "$work/dyno.db" --model "$m" \
  --cloud-class host-cloud --objective default=max-throughput,floor=0.9 --publish-every 20 --publish-interval 500ms >"$work/ctl.log" 2>&1 &
bin/dyno-executor cloud --model "$m" --listen $cloud --token-file "$work/cloud.token" --insecure --threads 1 >"$work/cloud.log" 2>&1 &
bin/dyno-executor device --id phone-1 --model "$m" --device-class host --controller $ctl --token-file "$work/executor.token" \
  --cloud $cloud --cloud-token-file "$work/cloud.token" --insecure --trace "$trace" --rtt 40 --slowdown "$slowdown" \
  --api-listen $app --api-insecure --api-token-file "$work/app.token" --depth $((2 * inflight)) --register-wait 30s >"$work/device.log" 2>&1 &
for _ in $(seq 100); do grep -q "serving the Device API" "$work/device.log" 2>/dev/null && break; sleep 0.3; done
grep -q "serving the Device API" "$work/device.log" || { cat "$work/device.log" >&2; exit 1; }
head -1 "$work/device.log"
run() { # requests
  bin/dyno-executor load --target $app --token-file "$work/app.token" --insecure --in-flight "$inflight" \
    --requests "$1" --inputs random --model "$m" --device-class host --timeout 5m
}
admin=(--addr $ctl --insecure --token-file "$work/admin.token")
key=$name/host/default
echo
echo "--- learning: $requests requests with the max-throughput objective"
run "$requests" | sed -n 2p
echo
echo "--- the learned policy: $requests requests"
learned=$(run "$requests")
echo "$learned" | tail -n +2
echo
n=$((requests / 3))
echo "--- device-only (s$k/b32) pinned: $n requests"
bin/dynoctl pin "$key" --split "$k" --bits 32 "${admin[@]}" >/dev/null
sleep 1.5
devonly=$(run "$n")
echo "$devonly" | tail -n +2
ratio() { sed -n 's/.*: \([0-9.]*\) req\/s; measured\/predicted \([0-9.]*\)$/\1 \2/p'; }
served() { sed -n 's/^load: [0-9]* served in [0-9.]* s: \([0-9.]*\) req\/s.*/\1/p'; }
read -r lp lr <<<"$(echo "$learned" | ratio)"
read -r dp dr <<<"$(echo "$devonly" | ratio)"
lm=$(echo "$learned" | served); dm=$(echo "$devonly" | served)
echo
awk -v lm="$lm" -v lp="$lp" -v dm="$dm" -v dp="$dp" 'BEGIN {
  printf "pipeline [EMULATED]: learned %.2f req/s (cost model %.2f, %+.0f%%); device-only %.2f req/s (cost model %.2f, %+.0f%%)\n", lm, lp, 100*(lm/lp-1), dm, dp, 100*(dm/dp-1)
  printf "pipeline [EMULATED]: offloading speed-up measured %.2fx, predicted %.2fx (%+.0f%%)\n", lm/dm, lp/dp, 100*((lm/dm)/(lp/dp)-1)
}'
