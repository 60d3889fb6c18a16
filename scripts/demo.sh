#!/usr/bin/env bash
# make demo: the whole loop on one machine, then the simulator and offline
# evaluation. make demo has already fetched ONNX Runtime and built the
# models, and runs this with a local influxd it stops afterwards (unless one
# was running already).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin out/demo
echo "demo: building dyno-controller, dyno-executor and dynoctl into bin/"
go build -o bin/ ./cmd/...

traces=${DYNO_TRACES:-../shared/traces}
slow_trace=$traces/norway-3g/tram.jernbanetorget-ljabru-report.2010-12-09_1222CET.log
fast_trace=$traces/norway-3g/bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log
for f in "$slow_trace" "$fast_trace"; do
  [[ -f $f ]] || { echo "demo: $f is missing: the demo needs the bandwidth traces in ../shared/traces" >&2; exit 1; }
done
influx_url=$(./scripts/influxd.sh url 2>/dev/null || true)
requests=${DYNO_DEMO_REQUESTS:-300}
slowdown=20

cat <<TXT

=== dyno demo ===
  1. THE LOOP, EMULATED ON THIS MACHINE: a controller (TLS, tokens, bbolt
     store, learning curves in InfluxDB at ${influx_url:-(none: run make influxd)}),
     a cloud executor and two device executors, all over gRPC on loopback,
     running MobileNetV2 (models/mobilenetv2, ONNX Runtime) block by block.
     Each device serves the Device API on a unix socket, and an application
     (dyno-executor load) sends it its requests and gets the answers back.
     The devices are emulated: both are a phone ${slowdown}x slower than this
     host (every device stage is stretched to ${slowdown}x what it takes here),
     while their profile says this host's speed, so the cost model's static
     choice is wrong; phone-1 sends over a real 3G trace recorded on an Oslo
     tram, phone-2 over one from a bus, each +40 ms round trip. Each serves
     $requests requests. The controller learns one policy for the device
     class from both, publishes it, and the executors decide with it locally.
     Then an operator pins the static choice to compare, and unpins.
  2. The same learning at scale, SIMULATED: dyno against the baselines on
     ResNet-50 over 20,000 requests, with regret against an oracle.
  3. Offline evaluation of the trace log the loop of step 1 left in the
     controller: what other policies would have cost on that traffic.
  4. The comparison table, EMULATED: device-only, cloud-only, static DynO
     and dyno online for a Jetson-class device, a high-end and a low-end
     phone on three traces, every row an application on the Device API.
TXT

work=out/demo/loop
rm -rf "$work" && mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}" $(cat "$work/device.pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Credentials: a self-signed certificate for 127.0.0.1 and the secrets (scripts/loopback-tokens.sh).
bin/dyno-controller gen-cert -cert "$work/tls.crt" -key "$work/tls.key" -hosts 127.0.0.1 >/dev/null
. scripts/loopback-tokens.sh
write_tokens "$work"
ctl=127.0.0.1:17070
cloud=127.0.0.1:17071
ctlctl=(--addr "$ctl" --ca "$work/tls.crt" --token-file "$work/admin.token")

influx_flags=()
[[ -n $influx_url ]] && influx_flags=(-influx-url "$influx_url" -influx-bucket dyno/autogen)
echo
echo "--- 1. starting the controller on $ctl and the cloud executor on $cloud (logs in $work/)"
bin/dyno-controller serve -listen "$ctl" -tls-cert "$work/tls.crt" -tls-key "$work/tls.key" -tokens "$work/tokens" \
  -store "$work/dyno.db" -model models/mobilenetv2 -cloud-class amd64-2cpu-cloud \
  -objective default=min-latency,floor=0.9 -publish-every 20 -publish-interval 500ms "${influx_flags[@]}" \
  >"$work/controller.log" 2>&1 &
pids+=($!)
bin/dyno-executor cloud --model models/mobilenetv2 --listen "$cloud" --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
  --token-file "$work/cloud.token" >"$work/cloud.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  bin/dynoctl status "${ctlctl[@]}" >/dev/null 2>&1 && break
  sleep 0.2
done

# device ID SLOWDOWN TRACE OFFSET REQUESTS: an emulated device executor
# serving the Device API on a unix socket, and an application (dyno-executor
# load) sending it REQUESTS of its own inputs; the executor stops (flushing
# its reports) when the application is done.
device() {
  local sock=$work/$1.sock before
  before=$(grep -c "serving the Device API" "$work/$1.log" 2>/dev/null || true)
  bin/dyno-executor device --id "$1" --model models/mobilenetv2 --device-class amd64-2cpu \
    --controller "$ctl" --ca "$work/tls.crt" --token-file "$work/executor.token" \
    --cloud "$cloud" --cloud-ca "$work/tls.crt" --cloud-token-file "$work/cloud.token" \
    --trace "$3" --trace-offset "$4" --rtt 40 --slowdown "$2" \
    --api-socket "$sock" --api-insecure --api-token-file "$work/app.token" --depth 4 >>"$work/$1.log" 2>&1 &
  local pid=$! rc=0
  echo $pid >>"$work/device.pids"
  for _ in $(seq 150); do
    [[ $(grep -c "serving the Device API" "$work/$1.log" 2>/dev/null) -gt ${before:-0} ]] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
  done
  bin/dyno-executor load --target "unix:$sock" --token-file "$work/app.token" --insecure --requests "$5" \
    --inputs random --seed "${#1}" --every 50 | sed "s/^load: /$1 app: /" || rc=$?
  kill -TERM $pid 2>/dev/null || true
  while kill -0 $pid 2>/dev/null; do sleep 0.1; done
  return $rc
}
echo
echo "--- learning: two emulated devices, $requests requests each"
began=$(date -u +%Y-%m-%dT%H:%M:%SZ)
device phone-1 "$slowdown" "$slow_trace" 0 "$requests" &
p1=$!
device phone-2 "$slowdown" "$fast_trace" 60 "$requests" &
p2=$!
wait $p1 $p2

echo
echo "--- the controller now: dynoctl status, keys, executors"
bin/dynoctl status "${ctlctl[@]}" | head -12
bin/dynoctl keys "${ctlctl[@]}"
bin/dynoctl executors "${ctlctl[@]}"

key=mobilenetv2/amd64-2cpu/default
echo
static=$(bin/dynoctl plan --dir models/mobilenetv2 --device amd64-2cpu --cloud amd64-2cpu-cloud --floor 0.9 \
  --bandwidth 1.5 --rtt 40 --top 1 --json | tr -d ' \n' | grep -o '"best":{"split":[0-9]*,"bits":[0-9]*}' | tr -dc '0-9,' | tr ',' ' ')
read -r s b <<<"$static"
echo "--- an operator pins the static choice at 1.5 Mbit/s (s$s/b$b) and phone-1 serves 60 more requests with it"
bin/dynoctl pin "$key" --split "$s" --bits "$b" "${ctlctl[@]}"
sleep 1
device phone-1 "$slowdown" "$slow_trace" 400 60 | grep ' served in '
bin/dynoctl unpin "$key" "${ctlctl[@]}"
echo "--- and unpinned: 60 more with the learned policy, from the same point of the trace"
sleep 1
device phone-1 "$slowdown" "$slow_trace" 400 60 | grep ' served in '

if [[ -n $influx_url ]]; then
  echo
  echo "--- the learning curve in InfluxDB ($influx_url, bucket dyno/autogen): mean latency of phone-1's requests, per 10 s"
  flux='from(bucket:"dyno/autogen") |> range(start:'"$began"') |> filter(fn:(r)=> r._measurement=="dyno_report" and r.executor=="phone-1" and r._field=="latency_ms") |> group() |> aggregateWindow(every:10s, fn:mean, createEmpty:false) |> keep(columns:["_time","_value"])'
  curl -sf -XPOST "$influx_url/api/v2/query" -H 'Content-Type: application/vnd.flux' -H 'Accept: application/csv' --data "$flux" | tr -d '\r' |
    awk -F, '$0 == "" || /^#/ { next } !h { for (i = 1; i <= NF; i++) col[$i] = i; h = 1; next } { printf "  %s  %8.1f ms\n", $(col["_time"]), $(col["_value"]) }' ||
    echo "  (query failed: see docs/metrics.md)"
  echo "  (docs/metrics.md has the Flux queries for every curve: cost, regret, the chosen arm, the posterior)"
fi

echo
echo "--- exporting the controller's trace log for step 3"
bin/dynoctl traces export "${ctlctl[@]}" --out "$work/traces.jsonl" --key "$key"
cleanup
trap - EXIT

echo
echo "--- 2. learning at scale, SIMULATED: scenarios/throttle-half.json (ResNet-50, low-end phone that throttles halfway), 20,000 requests"
rm -rf out/demo/traces
bin/dynoctl sim --scenario scenarios/throttle-half.json --seeds 1 --policies dyno,static,ans,egreedy,device,cloud \
  --traces out/demo/traces --curves out/demo/curves
echo "(learning curves: out/demo/curves; trace records: out/demo/traces)"

echo
echo "--- 3. offline evaluation of the loop's trace log ($work/traces.jsonl): what would static DynO,"
echo "    device-only and cloud-only have cost on that traffic? The diagnostics say how far the log supports each."
bin/dynoctl eval --traces "$work/traces.jsonl" --dir models/mobilenetv2 --device amd64-2cpu --cloud amd64-2cpu-cloud \
  --floor 0.9 --policies static,device,cloud --estimators ips,snips,dr --report out/demo/eval --no-progress
echo
echo "--- 4. the comparison table (scripts/compare.sh; DYNO_DEMO_COMPARE_REQUESTS a row, after DYNO_DEMO_COMPARE_LEARN to learn)"
DYNO_COMPARE_REQUESTS=${DYNO_DEMO_COMPARE_REQUESTS:-20} DYNO_COMPARE_LEARN=${DYNO_DEMO_COMPARE_LEARN:-80} ./scripts/compare.sh
echo
echo "demo: done. Offline report with plots: out/demo/eval/report.md; the loop's logs and store: $work/"
