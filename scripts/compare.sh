#!/usr/bin/env bash
# compare.sh: one table, all rows from one run: device-only, cloud-only,
# static DynO and dyno learning online, for three EMULATED device classes
# (a Jetson-class device, a high-end and a low-end phone: this host's
# profile slowed down 2x, 5x and 20x) on three real traces (+40 ms), each
# with its objective. A controller, a cloud executor and one device
# executor per class serve MobileNetV2 on loopback; every row is an
# application (dyno-executor load) driving the device's Device API, from
# the same point of the class's trace. The fixed rows are pinned with
# dynoctl; static DynO is `dynoctl plan`'s choice at the trace's mean
# bandwidth; dyno learns for DYNO_COMPARE_LEARN requests first, then its
# row is measured like the others. Accuracy is the calibration table's for
# the arms served (the inputs are unlabelled). Needs make models, make
# build and jq. About six minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
traces=${DYNO_TRACES:-../shared/traces}
model=${DYNO_COMPARE_MODEL:-models/mobilenetv2}
n=${DYNO_COMPARE_REQUESTS:-30}
learn=${DYNO_COMPARE_LEARN:-120}
command -v jq >/dev/null || { echo "compare: needs jq" >&2; exit 1; }
# class slowdown objective in-flight trace
classes=(
  "jetson-emu 2 min-latency 1 $traces/norway-3g/bus.ljansbakken-oslo-report.2010-09-30_1114CEST.log"
  "phone-high-emu 5 max-throughput 4 $traces/fcc/trace_632966_http---www.yahoo.com"
  "phone-low-emu 20 min-latency 1 $traces/norway-3g/tram.jernbanetorget-ljabru-report.2010-12-09_1222CET.log"
)
for c in "${classes[@]}"; do
  f=${c##* }
  [[ -f $f ]] || { echo "compare: $f is missing (set DYNO_TRACES to the traces folder)" >&2; exit 1; }
done
work=$(mktemp -d)
# Every process started, the device executors of the background rows
# included, is in $work/pids.
trap 'kill $(cat "$work/pids" 2>/dev/null) $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. scripts/loopback-tokens.sh
write_tokens "$work"

# The model with this host's profiles, measured now, and each emulated
# class's: the host's slowed down by the class's factor.
m=$work/model
mkdir -p "$m/profiles"
for f in model.json accuracy.json blocks; do ln -s "$PWD/$model/$f" "$m/$f"; done
name=$(basename "$model")
k=$(grep -c '"file"' "$m/model.json")
echo "compare: profiling $name on this host"
bin/dyno-executor profile "$m" --class host --runs 10 --threads 1 >"$work/profile.log" 2>&1 || { cat "$work/profile.log" >&2; exit 1; }
bin/dyno-executor profile "$m" --role cloud --class host-cloud --runs 10 --threads 1 >>"$work/profile.log" 2>&1 || { cat "$work/profile.log" >&2; exit 1; }
for c in "${classes[@]}"; do
  read -r class slow _ <<<"$c"
  jq --argjson f "$slow" --arg c "$class" '.device_class = $c | .source += " (EMULATED class: x\($f))"
    | .blocks |= map(.median_ms *= $f | .p95_ms *= $f) | .pack_ns_per_element *= $f' "$m/profiles/host.json" >"$m/profiles/$class.json"
done

ctl=127.0.0.1:27270 cloud=127.0.0.1:27271
objectives=(--objective min-latency=min-latency,floor=0.9 --objective max-throughput=max-throughput,floor=0.9)
bin/dyno-controller serve --listen $ctl --insecure --tokens "$work/tokens" --store "$work/dyno.db" --model "$m" \
  --cloud-class host-cloud "${objectives[@]}" --publish-every 20 --publish-interval 500ms >"$work/ctl.log" 2>&1 &
echo $! >>"$work/pids"
bin/dyno-executor cloud --model "$m" --listen $cloud --token-file "$work/cloud.token" --insecure --threads 1 --workers 2 >"$work/cloud.log" 2>&1 &
echo $! >>"$work/pids"
adm=(--addr $ctl --insecure --token-file "$work/admin.token")
for _ in $(seq 50); do bin/dynoctl status "${adm[@]}" >/dev/null 2>&1 && break; sleep 0.2; done

# device CLASS SLOWDOWN OBJECTIVE TRACE: start an executor serving the API
# on a socket, from the start of its trace; prints its pid.
start_device() {
  trap - EXIT
  local sock=$work/$1.sock
  local before
  before=$(grep -c "serving the Device API" "$work/$1.log" 2>/dev/null || true)
  bin/dyno-executor device --id "$1-1" --model "$m" --device-class "$1" --cloud-class host-cloud --objective "$3" --controller $ctl \
    --token-file "$work/executor.token" --cloud $cloud --cloud-token-file "$work/cloud.token" --insecure \
    --trace "$4" --rtt 40 --slowdown "$2" --api-socket "$sock" --api-insecure --api-token-file "$work/app.token" \
    --depth 8 --register-wait 30s >>"$work/$1.log" 2>&1 &
  local pid=$!
  echo $pid >>"$work/pids"
  for _ in $(seq 150); do
    [[ $(grep -c "serving the Device API" "$work/$1.log" 2>/dev/null) -gt ${before:-0} ]] && break
    sleep 0.2
  done
  [[ $(grep -c "serving the Device API" "$work/$1.log" 2>/dev/null) -gt ${before:-0} ]] ||
    { echo "compare: the $1 executor did not start:" >&2; tail -3 "$work/$1.log" >&2; return 1; }
  echo $pid
}
# measure CLASS SLOWDOWN OBJECTIVE INFLIGHT TRACE REQUESTS ROW
measure() {
  local pid
  pid=$(start_device "$1" "$2" "$3" "$5")
  bin/dyno-executor load --target "unix://$work/$1.sock" --token-file "$work/app.token" --insecure --in-flight "$4" \
    --requests "$6" --inputs random --model "$m" --device-class "$1" --cloud-class host-cloud --device-slowdown 1 \
    --timeout 5m --json >"$work/$1.$7.json"
  # It flushes its reports and removes its socket before the next starts.
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
pin() { bin/dynoctl pin "$1" --split "$2" --bits "$3" "${adm[@]}" >/dev/null; sleep 1.5; }
unpin() { bin/dynoctl unpin "$1" "${adm[@]}" >/dev/null 2>&1 || true; sleep 1.5; }

run_class() {
  trap - EXIT
  read -r class slow obj inflight trace <<<"$1"
  local key=$name/$class/$obj
  local bw
  bw=$(awk '{ s += $2; n++ } END { printf "%.3f", s / n }' "$trace")
  plan=$(bin/dynoctl plan --dir "$m" --device "$class" --cloud host-cloud --floor 0.9 --objective "$obj" --bandwidth "$bw" --rtt 40 --top 0 --json)
  read -r ss sb <<<"$(echo "$plan" | jq -r '.[0].choice.best | "\(.split // 0) \(.bits)"')"
  read -r cs cb <<<"$(echo "$plan" | jq -r '[.[0].choice.ranked[] | select((.arm.split // 0) == 0)][0].arm | "\(.split // 0) \(.bits)"')"
  echo "$class: static DynO at $bw Mbit/s chooses s$ss/b$sb; cloud-only is s$cs/b$cb" >"$work/$class.plan"
  measure "$class" "$slow" "$obj" "$inflight" "$trace" "$learn" learning
  measure "$class" "$slow" "$obj" "$inflight" "$trace" "$n" dyno
  pin "$key" "$k" 32; measure "$class" "$slow" "$obj" "$inflight" "$trace" "$n" device-only
  pin "$key" "$cs" "$cb"; measure "$class" "$slow" "$obj" "$inflight" "$trace" "$n" cloud-only
  pin "$key" "$ss" "$sb"; measure "$class" "$slow" "$obj" "$inflight" "$trace" "$n" static
  unpin "$key"
}
echo "compare: three emulated classes, $learn requests to learn, then $n a row (about five minutes)"
# One class at a time: the emulated devices share this host's cores with
# the cloud executor, and a row's figures should not depend on another's.
for c in "${classes[@]}"; do (run_class "$c"); done

echo
echo "comparison [EMULATED devices and links; this host's profiles x the class's slowdown; $n requests a row]"
printf '%-15s %-40s %-15s %-12s %-16s %8s %8s %8s %9s %6s\n' class trace objective policy "arms (top)" "req/s" "p50 ms" "p95 ms" "bytes/req" acc
for c in "${classes[@]}"; do
  read -r class _ obj _ trace <<<"$c"
  for row in device-only cloud-only static dyno; do
    jq -r --arg c "$class" --arg t "$(basename "$trace" | cut -c1-40)" --arg o "$obj" --arg r "$row" \
      '"\($c)\t\($t)\t\($o)\t\($r)\t\(.top_arm) \((.arm_shares[.top_arm] * 100) | floor)%\t\(.throughput_rps)\t\(.latency_p50_ms)\t\(.latency_p95_ms)\t\(.bytes_per_request)\t\(.calibrated_accuracy // "-")"' \
      "$work/$class.$row.json" |
      awk -F'\t' '{ printf "%-15s %-40s %-15s %-12s %-16s %8.2f %8.1f %8.1f %9.0f %6.3f\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
  done
done
echo
for c in "${classes[@]}"; do
  read -r class _ obj _ _ <<<"$c"
  cat "$work/$class.plan"
  best=$(for row in device-only cloud-only static; do jq -r --arg r "$row" --arg o "$obj" \
      'if $o == "max-throughput" then "\($r) \(.throughput_rps)" else "\($r) \(-.latency_mean_ms)" end' "$work/$class.$row.json"; done | sort -k2 -g | tail -1)
  dyno=$(jq -r --arg o "$obj" 'if $o == "max-throughput" then .throughput_rps else -.latency_mean_ms end' "$work/$class.dyno.json")
  read -r brow bval <<<"$best"
  awk -v c="$class" -v o="$obj" -v b="$brow" -v bv="$bval" -v d="$dyno" 'BEGIN {
    unit = (o == "max-throughput") ? "req/s" : "ms mean latency"; s = (o == "max-throughput") ? 1 : -1
    printf "%s (%s): dyno %.2f %s, best fixed choice %s %.2f: %s\n", c, o, s*d, unit, b, s*bv, (d >= bv) ? "dyno at least as good" : sprintf("dyno %.0f%% behind", 100*(bv-d)/(s*bv))
  }'
done
