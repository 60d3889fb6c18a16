#!/usr/bin/env bash
# make demo: the most complete part of dyno that exists today.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
echo "demo: building dynoctl"
go build -o bin/dynoctl ./cmd/dynoctl

cat <<'TXT'

=== dyno demo: DynO's static cost model on the shipped examples ===
What this shows: for ResNet-50 and MobileNetV2 at 224x224, with per-block
profiles derived from published device figures (examples/, see
examples/README.md), every arm (split, bits) ranked by the analytic cost
model with its predicted stages, and the static DynO choice, under two
bandwidths: the choice changes with the link. Nothing here learns or runs a
network yet: the bandit, the controller and the executors come next.

TXT
echo "--- ResNet-50 on a low-end phone, min-latency, accuracy floor 0.75: a 3G dip (0.5 Mbit/s) against Wi-Fi (20 Mbit/s)"
bin/dynoctl plan --dir examples/resnet50 --device phone-low --bandwidth 0.5 --bandwidth 20 --rtt 40 --floor 0.75 --top 5
echo
echo "--- MobileNetV2 on a low-end phone, max-throughput, accuracy floor 0.70: 2 against 50 Mbit/s"
bin/dynoctl plan --dir examples/mobilenetv2 --device phone-low --objective max-throughput --bandwidth 2 --bandwidth 50 --rtt 40 --floor 0.70 --top 5
echo
echo "--- ResNet-50 on a Jetson, min-cloud-cost with a 25 ms SLO, throttled 2x: the device alone breaks the SLO"
bin/dynoctl plan --dir examples/resnet50 --device jetson-xavier-nx --objective min-cloud-cost --slo 25 --device-slowdown 2 --bandwidth 5 --bandwidth 100 --rtt 5 --floor 0.75 --top 5
